"""Per image: pad, encode to the real bitstream, entropy-decode y_hat and sigma_hat, run g_s.

Two steps, so that a GPU node can run them on different processors: `transform` runs the
codec's networks on the model's device, for a batch (z, round(y), the scale indexes from
h_s(z_hat), x_hat = g_s(round(y)), the metrics); `entropy_code` writes one image's strings on
the CPU and entropy-decodes y_hat and the scale indexes from the strings alone, with h_s on the
CPU, as every reader of the shards decodes them. The compressed-domain representation stored
is that decode; where it differs from the transforms' values (h_s in floating point can pick
other indexes on another device: CompressAI issues #235/#279/#309) the image is a failure.
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
class Transformed:
    """One image's results of the codec's transforms, on the CPU: what the entropy coder needs
    (z, round(y), the scale indexes from h_s(z_hat)) and what needs only y_hat (x_hat)."""

    z: np.ndarray  # (N, zh, zw) float32, h_a's output
    y_symbols: np.ndarray  # (M, h, w) int32, round(y): what y's string codes
    scale_index: np.ndarray  # (M, h, w) int32, from h_s(z_hat) on the transform device
    decoded: np.ndarray  # (H, W, 3) uint8, g_s(round(y)) at the original size
    psnr: float
    ms_ssim: float
    ssim: float
    pad: tuple[int, int, int, int]
    device: str  # where the transforms ran


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
    mismatch: str | None  # None: the CPU's decode of the strings equals the transforms' values


def to_tensor(images: list, device: torch.device) -> torch.Tensor:
    """PIL images or (H, W, 3) uint8 arrays of one size -> (B, 3, H, W) in [0, 1]."""
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
def transform(model: ScaleHyperprior, images: list) -> list[Transformed]:
    """The codec's transforms on its device, for a batch of images of one size: g_a, h_a, h_s
    on z_hat and g_s on round(y), with the metrics. No entropy coding: z_hat is z's
    quantisation, which is exactly what z's string decodes to."""
    device = next(model.parameters()).device
    sizes = {np.asarray(image).shape[:2] for image in images}
    if len(sizes) != 1:
        raise ValueError("a batch must hold images of one size")
    [(height, width)] = sizes
    x = to_tensor(images, device)
    pad, unpad = compute_padding(height, width, min_div=PAD_MULTIPLE)
    y = model.g_a(F.pad(x, pad, mode="constant", value=0))
    z = model.h_a(torch.abs(y))
    bottleneck = model.entropy_bottleneck
    medians = bottleneck._extend_ndims(bottleneck._get_medians().detach(), 2)
    # contiguous, as z's decoded string is: h_s on another memory layout can round otherwise
    z_hat = bottleneck.quantize(z, "dequantize", medians).contiguous()
    indexes = model.gaussian_conditional.build_indexes(model.h_s(z_hat))
    y_hat = torch.round(y)
    x_hat = F.pad(model.g_s(y_hat).clamp_(0, 1), unpad)
    x_hat = torch.round(x_hat * 255.0) / 255.0  # metrics on the 8-bit image that is stored
    # image by image: the same figures whatever the batch (batched reductions differ in the
    # last bits, and the manifest must not depend on --batch-size)
    per_image = [image_metrics(x[i:i + 1], x_hat[i:i + 1]) for i in range(len(images))]
    metrics = {name: [m[name][0] for m in per_image] for name in per_image[0]}
    pixels = np.uint8(x_hat.mul(255.0).permute(0, 2, 3, 1).cpu().numpy().round())
    z_cpu, y_cpu = z.float().cpu().numpy(), y_hat.int().cpu().numpy()
    indexes_cpu = indexes.int().cpu().numpy()
    return [
        Transformed(z=z_cpu[i], y_symbols=y_cpu[i], scale_index=indexes_cpu[i],
                    decoded=pixels[i], pad=pad, device=str(device),
                    **{name: values[i] for name, values in metrics.items()})
        for i in range(len(images))
    ]


@torch.inference_mode()
def entropy_code(model: ScaleHyperprior, t: Transformed) -> Coded:
    """One image's strings, then y_hat and the scale indexes entropy-decoded from them alone
    with `model` (on the CPU, as every reader decodes) and compared with the transforms'."""
    z = torch.from_numpy(t.z)[None]
    z_shape = tuple(t.z.shape[-2:])
    z_strings = model.entropy_bottleneck.compress(z)
    sent_indexes = torch.from_numpy(t.scale_index)[None]
    y_strings = model.gaussian_conditional.compress(torch.from_numpy(t.y_symbols)[None].float(),
                                                    sent_indexes)
    y_hat, indexes = entropy_decode(model, y_strings, z_strings, z_shape)
    height, width = t.decoded.shape[:2]
    return Coded(
        y_string=y_strings[0], z_string=z_strings[0], z_shape=z_shape,
        y_hat=y_hat[0].numpy(), scale_index=indexes[0].int().numpy(),
        decoded=Image.fromarray(t.decoded, "RGB"),
        bpp=8.0 * (len(y_strings[0]) + len(z_strings[0])) / (width * height),
        psnr=t.psnr, ms_ssim=t.ms_ssim, ssim=t.ssim, pad=t.pad,
        mismatch=_mismatch(t, indexes[0].int(), y_hat[0], str(next(model.parameters()).device)),
    )


def _mismatch(t: Transformed, indexes: torch.Tensor, y_hat: torch.Tensor,
              decoder: str) -> str | None:
    """Why the decode on `decoder` differs from the transforms' values, or None."""
    wrong_indexes = int((indexes != torch.from_numpy(t.scale_index)).sum())
    wrong_y = int((y_hat != torch.from_numpy(t.y_symbols).float()).sum())
    if not (wrong_indexes or wrong_y):
        return None
    return (f"entropy-decoded on {decoder}, {wrong_indexes} of {indexes.numel()} scale indexes "
            f"and {wrong_y} y_hat values differ from the transforms' on {t.device} (h_s in "
            f"floating point picked other indexes; docs/shards.md)")


def code_images(model: ScaleHyperprior, images: list,
                decoder: ScaleHyperprior | None = None) -> list[Coded]:
    """Code a batch of images of one size: the transforms on `model`'s device, the entropy
    coding and the check on `decoder` (default: `model` when it is on the CPU, else a CPU copy)."""
    if decoder is None:
        decoder = cpu_decoder(model)
    return [entropy_code(decoder, t) for t in transform(model, images)]


def cpu_decoder(model: ScaleHyperprior) -> ScaleHyperprior:
    """`model` when it is on the CPU, else a CPU copy: made once by a caller that codes image by
    image on a GPU, not once per call."""
    if next(model.parameters()).device.type == "cpu":
        return model
    import copy

    return copy.deepcopy(model).cpu()


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
