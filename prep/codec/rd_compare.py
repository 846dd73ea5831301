"""Rate-distortion of codecs against JPEG (Pillow) on a dataset's test split, with a plot.

For each codec: mean bpp (from the real strings), PSNR and MS-SSIM over the test images; for
JPEG: the same at Pillow qualities 5..95, and its MS-SSIM and PSNR interpolated at each codec's
bpp ("JPEG at equal bpp").

    python -m prep.codec.rd_compare --data data/synthetic-textures \
        --codecs codecs/demo/codec-q*.pth \
        --plot codecs/demo/rd.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from foundation.cli import stage_main
from foundation.coding import code_images
from foundation.hyperprior import codec_sizes, load_codec, read_weights_file
from prep.codec.classical import code_classical
from prep.datasets.listing import list_dataset

JPEG_QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def test_images(data: Path, limit: int | None) -> list[Image.Image]:
    listing = list_dataset(data)
    items = [i for i in listing.items if i.split == "test"][:limit]
    return [Image.open(listing.path(i)).convert("RGB") for i in items]


def codec_point(path: Path, images: list[Image.Image]) -> dict:
    model = load_codec(read_weights_file(path))
    coded = [code_images(model, [image])[0] for image in images]
    return {"codec": str(path), **codec_sizes(model),
            **{k: float(np.mean([getattr(c, k) for c in coded])) for k in ("bpp", "psnr",
                                                                           "ms_ssim")}}


def jpeg_curve(images: list[Image.Image]) -> list[dict]:
    curve = []
    for quality in JPEG_QUALITIES:
        coded = [code_classical([image], "jpeg", quality)[0] for image in images]
        curve.append({"quality": quality, **{k: float(np.mean([getattr(c, k) for c in coded]))
                                             for k in ("bpp", "psnr", "ms_ssim")}})
    return curve


def at_bpp(curve: list[dict], bpp: float, metric: str) -> float:
    """JPEG's metric at this bpp (linear interpolation; NaN outside JPEG's range)."""
    xs = [p["bpp"] for p in curve]
    if not xs[0] <= bpp <= xs[-1]:
        return float("nan")
    return float(np.interp(bpp, xs, [p[metric] for p in curve]))


def plot(points: list[dict], curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "ms_ssim", "MS-SSIM"), (axes[1], "psnr", "PSNR (dB)")):
        ax.plot([p["bpp"] for p in curve], [p[metric] for p in curve], "o-", label="JPEG (Pillow)")
        ax.plot([p["bpp"] for p in points], [p[metric] for p in points], "s-",
                label="learned codecs (bmshj2018-hyperprior)")
        for p in points:
            ax.annotate(p["codec"].removesuffix(".pth"), (p["bpp"], p[metric]), fontsize=8)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@stage_main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m prep.codec.rd_compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--codecs", type=Path, nargs="+", required=True)
    p.add_argument("--images", type=int, default=None, help="first N test images")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    images = test_images(args.data, args.images)
    curve = jpeg_curve(images)
    points = [codec_point(path, images) for path in sorted(args.codecs)]
    print(f"{len(images)} test images of {args.data}")
    print("| codec | N, M | bpp | PSNR dB | MS-SSIM | JPEG MS-SSIM at equal bpp | "
          "JPEG PSNR at equal bpp |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for p_ in points:
        print(f"| {p_['codec']} | {p_['N']}, {p_['M']} | {p_['bpp']:.3f} | {p_['psnr']:.2f} | "
              f"{p_['ms_ssim']:.4f} | {at_bpp(curve, p_['bpp'], 'ms_ssim'):.4f} | "
              f"{at_bpp(curve, p_['bpp'], 'psnr'):.2f} |")
    if args.plot:
        plot(points, curve, args.plot)
    if args.json:
        args.json.write_text(json.dumps({"codecs": points, "jpeg": curve}, indent=1))


if __name__ == "__main__":
    main()
