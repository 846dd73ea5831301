"""Per image: pad, encode to the real bitstream, entropy-decode y_hat and sigma_hat, run g_s.

The compressed-domain representation comes from the strings, never from the encoder's tensors:
z_hat is entropy-decoded from z's string (CompressAI's own compress does the same), the scale
indexes follow from h_s(z_hat), and y_hat is entropy-decoded from y's string with them. The
encoder's round(y) is kept only to check that the decode was exact (issues #235/#279/#309:
h_s in floating point can pick other indexes on another device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior
from compressai.ops import compute_padding
from PIL import Image
from pytorch_msssim import ms_ssim, ssim

PAD_MULTIPLE = 64  # g_a and h_a downsample by 2^6 in all
MS_SSIM_MIN_SIDE = 161  # five scales of an 11-pixel window


@dataclass
class Coded:
    y_string: bytes
    z_string: bytes
    z_shape: tuple[int, int]
    y_hat: np.ndarray  # (M, h, w) float32 holding integers
    scale_index: np.ndarray  # (M, h, w) index into the Gaussian conditional's scale table
    decoded: Image.Image  # x_hat at the original size, 8-bit RGB
    bpp: float
    psnr: float
    ms_ssim: float  # NaN for images too small for five scales
    ssim: float
    pad: tuple[int, int, int, int]  # left, right, top, bottom
    exact: bool  # the decoded y_hat equals the encoder's round(y)


def to_tensor(images: list[Image.Image], device: torch.device) -> torch.Tensor:
    array = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def entropy_decode(model: ScaleHyperprior, y_strings, z_strings, z_shape):
    """y_hat and the scale indexes from the strings alone, without g_s."""
    z_hat = model.entropy_bottleneck.decompress(z_strings, z_shape)
    indexes = model.gaussian_conditional.build_indexes(model.h_s(z_hat))
    y_hat = model.gaussian_conditional.decompress(y_strings, indexes, z_hat.dtype)
    return y_hat, indexes


def scale_table(model: ScaleHyperprior) -> list[float]:
    """sigma for each scale index, as the coder uses it."""
    return [float(s) for s in model.gaussian_conditional.scale_table]


@torch.inference_mode()
def code_images(model: ScaleHyperprior, images: list[Image.Image]) -> list[Coded]:
    """Code a batch of images of one size."""
    device = next(model.parameters()).device
    width, height = images[0].size
    if any(image.size != (width, height) for image in images):
        raise ValueError("a batch must hold images of one size")
    x = to_tensor(images, device)
    pad, unpad = compute_padding(height, width, min_div=PAD_MULTIPLE)
    y = model.g_a(F.pad(x, pad, mode="constant", value=0))
    z = model.h_a(torch.abs(y))
    z_shape = tuple(z.shape[-2:])
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = model.entropy_bottleneck.decompress(z_strings, z_shape)
    indexes = model.gaussian_conditional.build_indexes(model.h_s(z_hat))
    y_strings = model.gaussian_conditional.compress(y, indexes)
    y_hat = model.gaussian_conditional.decompress(y_strings, indexes, z_hat.dtype)
    exact = (y_hat == torch.round(y)).flatten(1).all(dim=1).tolist()
    x_hat = F.pad(model.g_s(y_hat).clamp_(0, 1), unpad)
    x_hat = torch.round(x_hat * 255.0) / 255.0  # metrics on the 8-bit image that is stored
    metrics = image_metrics(x, x_hat)
    pixels = np.uint8(x_hat.mul(255.0).permute(0, 2, 3, 1).cpu().numpy().round())
    y_hat_cpu, indexes_cpu = y_hat.cpu().numpy(), indexes.cpu().numpy()
    return [
        Coded(
            y_string=y_strings[i], z_string=z_strings[i], z_shape=z_shape,
            y_hat=y_hat_cpu[i], scale_index=indexes_cpu[i],
            decoded=Image.fromarray(pixels[i], "RGB"),
            bpp=8.0 * (len(y_strings[i]) + len(z_strings[i])) / (width * height),
            pad=pad, exact=exact[i], **{name: values[i] for name, values in metrics.items()},
        )
        for i in range(len(images))
    ]


def image_metrics(x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, list[float]]:
    """PSNR (dB), MS-SSIM and SSIM per image, on [0, 1] RGB."""
    mse = (x - x_hat).pow(2).flatten(1).mean(dim=1)
    psnr = [math.inf if m == 0 else -10.0 * math.log10(m) for m in mse.tolist()]
    ssims = ssim(x, x_hat, data_range=1.0, size_average=False).tolist()
    if min(x.shape[-2:]) >= MS_SSIM_MIN_SIDE:
        ms_ssims = ms_ssim(x, x_hat, data_range=1.0, size_average=False).tolist()
    else:
        ms_ssims = [math.nan] * x.shape[0]
    return {"psnr": psnr, "ms_ssim": ms_ssims, "ssim": ssims}
