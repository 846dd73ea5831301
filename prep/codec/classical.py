"""Classical codecs (Pillow's JPEG and WebP) as anchors at equal rate: encode each image to a
file, decode that file, and measure it as foundation.coding measures the learned codec.

bpp counts the file's bytes (headers included, as a stored JPEG costs them) over the original
pixels. Pillow's defaults otherwise (JPEG: 4:2:0 chroma subsampling, no Huffman optimisation;
WebP: lossy, method 4), as prep.codec.rd_compare and CompressAI's own JPEG baseline use it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from PIL import Image, features

from foundation.coding import image_metrics, to_tensor
from foundation.sets import CLASSICAL

QUALITIES = range(1, 101)  # Pillow's quality scale for both codecs (0 is allowed but degenerate)


@dataclass
class ClassicalCoded:
    data: bytes  # the file as the encoder wrote it
    decoded: Image.Image  # that file decoded, 8-bit RGB
    bpp: float
    psnr: float
    ms_ssim: float  # NaN for images too small for five scales
    ssim: float


def check(codec: str, quality: int) -> None:
    if codec not in CLASSICAL:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(CLASSICAL)}")
    if quality not in QUALITIES:
        raise ValueError(f"{codec} quality {quality} is outside Pillow's 1..100")
    if codec == "webp" and not features.check("webp"):
        raise RuntimeError("this Pillow has no WebP support: install a Pillow wheel built with "
                           "libwebp, or leave --webp out")


def encoder_info(codec: str, quality: int) -> dict:
    """What the set's bytes depend on (dataset.json, and the resume check)."""
    if codec == "jpeg":
        turbo = features.version("libjpeg_turbo")
        library = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
    else:
        library = f"libwebp {features.version('webp')}"
    return {"name": codec, "quality": quality, "encoder": "Pillow", "pillow": Image.__version__,
            "library": library, "settings": "Pillow defaults"}


def encode(image: Image.Image, codec: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=CLASSICAL[codec], quality=quality)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def code_classical(images: list[Image.Image], codec: str, quality: int) -> list[ClassicalCoded]:
    """Code a batch of images of one size (one metrics call for the batch)."""
    check(codec, quality)
    files = [encode(image, codec, quality) for image in images]
    decoded = [decode(data) for data in files]
    cpu = torch.device("cpu")
    metrics = image_metrics(to_tensor(images, cpu), to_tensor(decoded, cpu))
    return [
        ClassicalCoded(data=data, decoded=image_hat,
                       bpp=8.0 * len(data) / (image.width * image.height),
                       **{name: values[i] for name, values in metrics.items()})
        for i, (image, data, image_hat) in enumerate(zip(images, files, decoded, strict=True))
    ]
