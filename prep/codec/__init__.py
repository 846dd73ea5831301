"""The codecs: the learned one (its model, coding, training, rate-distortion) and the
classical anchors (Pillow JPEG, WebP)."""
