"""Which augmentations of a latent are latents of an augmented image (docs/comp-study).

The latent classifier is trained on random crops and, as the pixel ones, random horizontal
flips of y_hat. A crop of whole cells is the latent of a shifted image (the analysis transform
is a stack of strided convolutions); a flip is not, since its filters are not mirror-symmetric.
This measures both with a codec on real images: the squared difference, relative to the latent's
energy, between

- flip: y(flip(x)) and flip(y(x));
- shift: y(x shifted by one cell, 16 px) and y(x) rolled by one cell (the wrapped column
  included, so this overstates the crop's error).

    python -m research.equivariance --codecs codecs/demo --images data/demo-textures/images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from foundation.cli import stage_main
from foundation.coding import to_tensor
from foundation.hyperprior import load_codec, read_weights_file, weights_file_name
from foundation.images import decode_rgb

CELL = 16  # pixels per latent cell: the hyperprior's analysis transform downsamples 16x


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).pow(2).mean() / b.pow(2).mean().clamp_min(1e-12)).item()


@torch.inference_mode()
def measure(codec, images: list[Path]) -> dict[str, float]:
    """Mean relative error of the flip and of the one-cell shift over `images`."""
    flips, shifts = [], []
    for path in images:
        x = to_tensor([decode_rgb(path.read_bytes(), str(path)).rgb], torch.device("cpu"))
        side = CELL * (min(x.shape[-2:]) // CELL)
        x = x[..., :side, :side]
        y = torch.round(codec.g_a(x))
        flips.append(relative(torch.round(codec.g_a(x.flip(-1))), y.flip(-1)))
        shifts.append(relative(torch.round(codec.g_a(torch.roll(x, CELL, -1))),
                               torch.roll(y, 1, -1)))
    return {"flip": float(np.mean(flips)), "shift": float(np.mean(shifts)),
            "images": len(images)}


def table(codecs: Path, qualities: list[int], images: list[Path]) -> str:
    lines = ["| quality | flip: y(flip x) vs flip y(x) | shift: y(x + 16 px) vs y(x) + 1 cell "
             "| images |", "|---|---:|---:|---:|"]
    for q in qualities:
        codec = load_codec(read_weights_file(codecs / weights_file_name(q))).eval()
        m = measure(codec, images)
        lines.append(f"| q{q} | {m['flip']:.3f} | {m['shift']:.3f} | {m['images']} |")
    return "\n".join(lines) + "\n"


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m research.equivariance", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codecs", type=Path, required=True, help="a folder of codec-q<Q>.pth")
    p.add_argument("--images", type=Path, required=True, help="a folder of images (recursive)")
    p.add_argument("--qualities", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--every", type=int, default=25, help="take every n-th image, sorted")
    args = p.parse_args(argv)
    images = sorted(f for f in args.images.rglob("*")
                    if f.suffix.lower() in (".jpg", ".jpeg", ".png"))[::args.every]
    if not images:
        raise FileNotFoundError(f"--images {args.images}: no .jpg or .png files in it")
    torch.set_num_threads(1)
    print(table(args.codecs, args.qualities, images), end="")
    return 0


if __name__ == "__main__":
    main()
