"""Read any image file as 8-bit RGB, saying what was converted, or fail with a reason."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

MIN_SIDE = 64  # the codec's downsampling factor: smaller images have no latent to speak of
# Larger images are failures, their size read from the header, never decoded. Coding one image
# at q8 on a CPU takes about 0.65 GiB per million pixels on top of the worker's 1.2 GiB
# (measured: 1024^2 1.8 GiB, 2048^2 3.9 GiB at peak), so 4096^2 would need ~12 GiB and
# Pillow's own limit (89 M pixels; an error only at twice that) tens of GiB.
MAX_PIXELS = 2048 * 2048


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


def decode_rgb(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode image bytes fully (a truncated file fails here, not later in training); images of
    more than `max_pixels` fail before they are decoded."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_pixels(image.size, max_pixels)
            image.load()
            file_format = image.format or "unknown"
            rgb, conversion = to_rgb(image)
            rgb.load()
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"not an image: PIL cannot identify the format of {name}") from None
    except Image.DecompressionBombError as err:
        raise BadImage(f"decompression bomb, not decoded: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for corrupt data
        raise BadImage(f"truncated or corrupt image: {err}") from None
    width, height = rgb.size
    if min(width, height) < MIN_SIDE:
        raise BadImage(f"image is {width}x{height}; the codec needs at least {MIN_SIDE} px a side")
    return LoadedImage(rgb=rgb, format=file_format, conversion=conversion)


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise BadImage(
            f"image is {width}x{height} ({width * height / 1e6:.1f} M pixels), over --max-pixels "
            f"{max_pixels} ({max_pixels / 1e6:.1f} M): not decoded; coding it could exhaust the "
            f"worker's memory. Raise --max-pixels where workers have the memory (docs/data.md)")
