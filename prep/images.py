"""Read any image file as 8-bit RGB, saying what was converted, or fail with a reason."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

MIN_SIDE = 64  # the codec's downsampling factor: smaller images have no latent to speak of


class BadImage(ValueError):
    """An input that cannot be used; the message is the reason recorded for it."""


@dataclass(frozen=True)
class LoadedImage:
    rgb: Image.Image
    format: str  # PIL's name of the file format: JPEG, PNG, ...
    conversion: str  # "" when the file was already 8-bit RGB


def to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    """8-bit RGB from any PIL mode, and a note of what changed ("" if nothing)."""
    mode = image.mode
    if mode == "RGB":
        return image, ""
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit) grayscale: PIL's convert("L") clips instead of scaling.
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or wide.max() > 255 else 255.0
        gray = np.clip(np.round(wide * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB"), f"16-bit grayscale ({mode}) to 8-bit RGB"
    if mode in ("RGBA", "LA", "PA"):
        return image.convert("RGB"), f"{mode} to RGB (alpha dropped)"
    names = {"L": "grayscale", "1": "bilevel", "P": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr"}
    return image.convert("RGB"), f"{names.get(mode, mode)} ({mode}) to RGB"


def decode_rgb(data: bytes, name: str = "image") -> LoadedImage:
    """Decode image bytes fully (a truncated file fails here, not later in training)."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            file_format = image.format or "unknown"
            rgb, conversion = to_rgb(image)
            rgb.load()
    except UnidentifiedImageError:
        raise BadImage(f"not an image: PIL cannot identify the format of {name}") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for corrupt data
        raise BadImage(f"truncated or corrupt image: {err}") from None
    width, height = rgb.size
    if min(width, height) < MIN_SIDE:
        raise BadImage(f"image is {width}x{height}; the codec needs at least {MIN_SIDE} px a side")
    return LoadedImage(rgb=rgb, format=file_format, conversion=conversion)
