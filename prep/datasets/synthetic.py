"""The built-in synthetic texture set, written in MINC-2500's layout (the offline default).

Each class is a procedural texture family (stripes, cells, wood rings, ...). Colours, scale,
orientation and lighting are drawn independently of the class, and every image is blended
with a texture of another family and noise, so the classes are distinct but not trivially so.
Deterministic: image i of class c depends only on (seed, c, i).

    python -m prep.datasets.synthetic --out data/synthetic-textures --classes 10 --per-class 100
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from foundation import storage
from foundation.cli import stage_main

Generator = Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]


def _fbm(rng: np.random.Generator, size: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Fractal noise in [0, 1]: octaves of bicubically upsampled white noise."""
    total = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        cells = base * 2**octave
        noise = Image.fromarray(rng.random((cells, cells), dtype=np.float32), "F")
        total += np.asarray(noise.resize((size, size), Image.BICUBIC)) / 2**octave
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _rotate(rng, x, y):
    theta = rng.uniform(0, np.pi)
    return x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)


def _worley(rng, x, y, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances to the nearest and second-nearest of random points (tiled, so no borders)."""
    centres = rng.random((points, 2)) * x.max()
    period = x.max()
    d = np.full((2, *x.shape), np.inf, np.float32)
    for cx, cy in centres:
        dx = np.abs(x - cx)
        dy = np.abs(y - cy)
        dist = np.hypot(np.minimum(dx, period - dx), np.minimum(dy, period - dy))
        second = np.minimum(d[1], np.maximum(d[0], dist))
        d[0] = np.minimum(d[0], dist)
        d[1] = second
    return d[0], d[1]


def stripes(rng, x, y):
    u, _ = _rotate(rng, x, y)
    return np.sin(2 * np.pi * u * rng.uniform(0.02, 0.07) + 6 * _fbm(rng, x.shape[0], 3))


def checker(rng, x, y):
    u, v = _rotate(rng, x, y)
    f = rng.uniform(0.015, 0.05)
    return np.tanh(4 * np.sin(2 * np.pi * f * u) * np.sin(2 * np.pi * f * v))


def dots(rng, x, y):
    u, v = _rotate(rng, x, y)
    f = rng.uniform(0.03, 0.08)
    return np.tanh(6 * (np.cos(2 * np.pi * f * u) * np.cos(2 * np.pi * f * v) - 0.4))


def clouds(rng, x, y):
    return 2 * _fbm(rng, x.shape[0], 6, base=int(rng.integers(2, 6))) - 1


def cells(rng, x, y):
    d1, _ = _worley(rng, x, y, int(rng.integers(12, 40)))
    return 1 - 2 * d1 / d1.max()


def cracks(rng, x, y):
    d1, d2 = _worley(rng, x, y, int(rng.integers(8, 25)))
    return np.tanh(0.3 * (d2 - d1)) * 2 - 1


def rings(rng, x, y):
    cx, cy = rng.uniform(-1, 2, 2) * x.max()
    r = np.hypot(x - cx, y - cy) + 25 * _fbm(rng, x.shape[0], 4)
    return np.sin(2 * np.pi * r * rng.uniform(0.03, 0.08))


def weave(rng, x, y):
    u, v = _rotate(rng, x, y)
    f = rng.uniform(0.04, 0.09)
    a, b = np.sin(2 * np.pi * f * u), np.sin(2 * np.pi * f * v)
    over = np.sign(np.sin(np.pi * f * u) * np.sin(np.pi * f * v))
    return np.where(over > 0, a, b)


def brushed(rng, x, y):
    """Directional streaks: noise stretched along one axis, then rotated."""
    size = x.shape[0]
    noise = Image.fromarray(rng.random((size // 16, size * 2), dtype=np.float32), "F")
    streaks = np.asarray(noise.resize((size * 2, size * 2), Image.BILINEAR))
    angle = float(rng.uniform(0, 180))
    rotated = Image.fromarray(streaks, "F").rotate(angle, resample=Image.BILINEAR)
    half = size // 2
    crop = np.asarray(rotated)[half:half + size, half:half + size]
    return (crop - crop.mean()) / (crop.std() + 1e-6) / 2


def speckle(rng, x, y):
    size = x.shape[0]
    fine = rng.standard_normal((size, size)).astype(np.float32)
    return np.tanh(fine * (0.5 + _fbm(rng, size, 3)))


FAMILIES: dict[str, Generator] = {
    "stripes": stripes, "checker": checker, "dots": dots, "clouds": clouds, "cells": cells,
    "cracks": cracks, "rings": rings, "weave": weave, "brushed": brushed, "speckle": speckle,
}


def texture(family: str, seed: int, class_index: int, index: int, size: int = 362,
            max_mix: float = 0.45) -> Image.Image:
    """One RGB texture image of a family, blended with up to `max_mix` of another family;
    deterministic in (seed, class_index, index)."""
    rng = np.random.default_rng([seed, class_index, index])
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    pattern = FAMILIES[family](rng, x, y)
    others = [f for f in FAMILIES if f != family]
    distractor = FAMILIES[others[int(rng.integers(len(others)))]](rng, x, y)
    mix = rng.uniform(0.0, max_mix)
    t = (1 - mix) * pattern + mix * distractor
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    dark, light = rng.random(3), rng.random(3)  # colours carry no class information
    rgb = dark + t[..., None] * (light - dark)
    tilt = rng.uniform(-0.3, 0.3, 2)
    shade = 1 + tilt[0] * (x / size - 0.5) + tilt[1] * (y / size - 0.5)
    rgb = rgb * shade[..., None] + rng.normal(0, rng.uniform(0.01, 0.06), rgb.shape)
    return Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255 + 0.5), "RGB")


def write_layout(out: str | Path, names: list[str], render: Callable[[int, int], Image.Image],
                 per_class: int, fractions: tuple[float, float, float], readme: str,
                 quality: int = 90) -> Path:
    """Write `per_class` images of each class, `render(class_index, index)`, in MINC-2500's
    layout (split 1, first images train, then validate, then test); existing images are kept,
    so an interrupted run resumes."""
    # a share of 0 is none (an evaluation-only set: all test); any other, at least one image
    n_validate, n_test = (max(1, round(per_class * f)) if f > 0 else 0 for f in fractions[1:])
    n_train = per_class - n_validate - n_test
    if n_train < 0 or n_train == 0 and fractions[0] > 0:
        raise ValueError(f"per_class={per_class} leaves no training images")
    out = Path(out)
    description = (f"{readme}; split 1 = {n_train}/{n_validate}/{n_test} per class "
                   f"(train/validate/test), JPEG q{quality}, MINC-2500's layout.\n")
    record = out / "README.txt"  # written first: a resumed run must have the same settings
    if record.is_file() and record.read_text() != description:
        raise ValueError(f"{out} holds images written with other settings ({record}: "
                         f"{record.read_text().strip()}); remove it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(description)
    splits = {"train": [], "validate": [], "test": []}
    for c, name in enumerate(names):
        (out / "images" / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            source = f"images/{name}/{name}_{i:06d}.jpg"
            path = out / source
            if not path.is_file():
                with storage.open_write(path) as file:
                    render(c, i).save(file, format="JPEG", quality=quality)
            split = "train" if i < n_train else "validate" if i < n_train + n_validate else "test"
            splits[split].append(source)
    (out / "labels").mkdir(exist_ok=True)
    for split, sources in splits.items():
        (out / "labels" / f"{split}1.txt").write_text("\n".join(sources) + "\n")
    (out / "categories.txt").write_text("\n".join(names) + "\n")
    return out


def write_dataset(out: str | Path, classes: int = 10, per_class: int = 100, size: int = 362,
                  seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  quality: int = 90, max_mix: float = 0.45) -> Path:
    """Write the set in MINC-2500's layout (split 1); existing images are kept (resumable)."""
    if not 1 <= classes <= len(FAMILIES):
        raise ValueError(f"classes must be 1..{len(FAMILIES)}, got {classes}")
    if size < 64 or per_class < 1:
        raise ValueError(f"need size >= 64 and per_class >= 1, got {size} and {per_class}")
    names = list(FAMILIES)[:classes]
    return write_layout(
        out, names, lambda c, i: texture(names[c], seed, c, i, size, max_mix), per_class,
        # the record's words are compared on a resume: they keep the module's first name
        fractions, f"Synthetic textures (cdmr prep.synthetic): {classes} classes x {per_class} "
        f"images, {size}x{size}, seed {seed}, distractor mix <= {max_mix}", quality)


@stage_main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m prep.datasets.synthetic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/synthetic-textures"))
    p.add_argument("--classes", type=int, default=10, help=f"1..{len(FAMILIES)}")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--size", type=int, default=362, help="side in pixels (MINC-2500: 362)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-mix", type=float, default=0.45,
                   help="largest share of another family blended into an image (difficulty)")
    p.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1),
                   metavar=("TRAIN", "VALIDATE", "TEST"), help="split shares per class")
    args = p.parse_args(argv)
    path = write_dataset(args.out, args.classes, args.per_class, args.size, args.seed,
                         tuple(args.fractions), max_mix=args.max_mix)
    print(f"wrote {args.classes} classes x {args.per_class} images to {path}")


if __name__ == "__main__":
    main()
