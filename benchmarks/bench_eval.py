"""`make bench-eval`: the cost of a prediction from the bitstream, compressed domain against
pixels, with the paper's sizes: bmshj2018-hyperprior of quality Q (N, M as published), real
362x362 MINC-2500 images coded to real strings, cResNet-39 on 28x28 latents, ResNet-50 at 224.

Codec weights: CompressAI's pretrained file where it is in the torch.hub cache, else seeded
weights of the same architecture (the cost of g_s, h_s and the classifiers does not depend on
the weights; the range coder's work does, through the rate: seeded weights code to several
bpp, far above a trained codec, so their entropy decoding is slower than a trained codec's and
the speed-up it leaves is a lower bound). Target: the compressed domain at least 6x faster end
to end at q1 and q8 on this CPU.

    python -m benchmarks.bench_eval [--qualities 1 8] [--images DIR] [--min-seconds 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from classifier.models import cresnet39, resnet50_deep_stem
from evaluation.efficiency import Bitstream, Paths, device_name, measure
from foundation.coding import code_images
from foundation.hyperprior import (
    CodecWeights,
    fetch_pretrained,
    init_weights,
    load_codec,
    read_weights_file,
    sha256_of,
)

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "minc-2500-sample" / \
    "minc-2500" / "images"
CLASSES = 23  # MINC-2500


def codec_weights(quality: int, folder: Path | None = None) -> tuple[CodecWeights, str]:
    """The codec of quality Q: codec-q<Q>.pth of `folder`, else CompressAI's pretrained file,
    else seeded weights of its architecture."""
    if folder is not None:
        return read_weights_file(folder / f"codec-q{quality}.pth"), folder.name
    try:
        return fetch_pretrained(quality), "pretrained"
    except FileNotFoundError:
        data = init_weights(quality, seed=0, latent_gain=40.0)
        return CodecWeights(data, f"seeded q{quality}", sha256_of(data)), "seeded"


def bitstreams(codec, images: list[Image.Image]) -> list[Bitstream]:
    return [Bitstream(c.y_string, c.z_string, c.z_shape, c.pad)
            for c in code_images(codec, images)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qualities", type=int, nargs="+", default=[1, 8])
    p.add_argument("--images", type=Path, default=SAMPLE, help="folder of images (362 px)")
    p.add_argument("--count", type=int, default=8, help="distinct images coded")
    p.add_argument("--codecs", type=Path, default=None,
                   help="folder of codec-q<Q>.pth (e.g. codecs/minc-subset); default: "
                   "CompressAI's pretrained files, else seeded weights")
    p.add_argument("--min-seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    files = sorted(f for f in args.images.rglob("*") if f.suffix.lower() in (".jpg", ".png"))
    images = [Image.open(f).convert("RGB") for f in files[: args.count]]
    size = images[0].size
    images = [im for im in images if im.size == size]
    print(f"{device_name(torch.device('cpu'))}; {len(images)} images of {size[0]}x{size[1]}")
    print(f"{'q':>2} {'codec':>10} {'batch':>5}  {'path':<30}{'ms/img':>9}{'img/s':>8}"
          f"{'GFLOPs':>8}")
    for quality in args.qualities:
        weights, kind = codec_weights(quality, args.codecs)
        codec = load_codec(weights)
        streams = bitstreams(codec, images)
        bpp = sum(8 * (len(b.y_string) + len(b.z_string)) for b in streams) / (
            len(streams) * size[0] * size[1])
        print(f"q{quality}: {kind} weights, N={codec.g_a[0].out_channels}, "
              f"M={codec.g_a[6].out_channels}, bitstreams {bpp:.2f} bpp")
        channels = codec.g_a[6].out_channels
        paths = Paths(codec, cresnet39(channels, CLASSES).eval(),
                      resnet50_deep_stem(CLASSES).eval())
        for row in measure(paths, streams, min_seconds=args.min_seconds):
            print(f"{quality:>2} {kind:>10} {row['batch']:>5}  {row['path']:<30}"
                  f"{row['ms_per_image']:>9.2f}{row['images_per_s']:>8.2f}"
                  f"{row['gflops_per_image']:>8.2f}")


if __name__ == "__main__":
    main()
