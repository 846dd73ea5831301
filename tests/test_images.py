import io

import numpy as np
import pytest
from PIL import Image

from foundation.images import BadImage, decode_rgb


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


@pytest.fixture
def rgb() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (100, 120, 3), dtype=np.uint8), "RGB")


def test_rgb_jpeg_is_unchanged(rgb):
    loaded = decode_rgb(encode(rgb, "JPEG"))
    assert loaded.format == "JPEG" and loaded.conversion == "" and loaded.rgb.size == (120, 100)


@pytest.mark.parametrize(
    ("mode", "fmt", "note"),
    [("L", "JPEG", "grayscale (L) to RGB"), ("CMYK", "JPEG", "CMYK (CMYK) to RGB"),
     ("RGBA", "PNG", "RGBA to RGB (alpha dropped)"), ("P", "PNG", "palette (P) to RGB")],
)
def test_conversions_are_named(rgb, mode, fmt, note):
    loaded = decode_rgb(encode(rgb.convert(mode), fmt))
    assert loaded.rgb.mode == "RGB" and loaded.conversion == note


def test_16_bit_png_is_scaled_not_clipped():
    wide = np.full((80, 80), 40000, dtype=np.uint16)
    loaded = decode_rgb(encode(Image.fromarray(wide), "PNG"))
    assert "16-bit grayscale" in loaded.conversion
    assert np.asarray(loaded.rgb)[0, 0].tolist() == [round(40000 / 257)] * 3


@pytest.mark.parametrize(
    ("make", "reason"),
    [(lambda rgb: b"", "empty file"),
     (lambda rgb: b"this is a text file", "not an image"),
     (lambda rgb: encode(rgb, "JPEG")[:600], "truncated or corrupt"),
     (lambda rgb: encode(rgb.resize((40, 200)), "PNG"), "at least 64 px")],
)
def test_bad_inputs_fail_with_reason(rgb, make, reason):
    with pytest.raises(BadImage, match=reason):
        decode_rgb(make(rgb))
