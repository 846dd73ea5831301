"""The pretraining corpus: procedural image families that share no family with
prep.datasets.synthetic.

Offline there are no ImageNet weights, so the classifiers' starting point is a ResNet-50
pretrained here on images that no evaluated set contains (`make pretrain`; model card:
backbones/procedural/README.md). Learning to see from procedural images works (Baradad et al.,
"Learning to See by Looking at Noise", NeurIPS 2021; Kataoka et al., FractalDB, ACCV 2020).
Three generators, each class one fixed program of its generator:

- dead leaves: occluding shapes (disc, square, triangle, bar) with power-law sizes, small or
  large (8 classes);
- IFS fractals: each class one random iterated function system (FractalDB), drawn by the
  chaos game at a random pose, scale and colouring, 1-3 copies per image;
- random-filter textures: each class one fixed random stack of convolutions (random sizes,
  dilations and non-linearities) applied to white noise, coloured at random per image.

Colours are drawn per image, independently of the class. Deterministic: image i of class c
depends only on (seed, c, i) and the class's program only on (seed, c).

    python -m prep.datasets.procedural --out data/procedural --per-class 160 --size 96
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from foundation.cli import stage_main
from prep.datasets.synthetic import write_layout

SHAPES = ("disc", "square", "triangle", "bar")


def _pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two colours far enough apart that the pattern shows (an image's, not its class's)."""
    dark, light = rng.random(3) * 0.55, 0.45 + rng.random(3) * 0.55
    return (dark, light) if rng.random() < 0.5 else (light, dark)


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """n colours around a random palette of 2-4 hues (an image's colours, not its class's)."""
    palette = rng.random((int(rng.integers(2, 5)), 3))
    return np.clip(palette[rng.integers(len(palette), size=n)] + rng.normal(0, 0.08, (n, 3)),
                   0, 1)


def dead_leaves(shape: str, large: bool) -> Callable:
    """Occluding shapes, radius density ~ r^-3 (Lee, Mumford and Huang's dead leaves model)."""

    def render(rng: np.random.Generator, size: int) -> Image.Image:
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        r_min, r_max = size / 48, size / (2.5 if large else 9)
        u = rng.random(4000)  # inverse CDF of p(r) ~ r^-3 on [r_min, r_max]
        radii = (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5
        coverage, count = 0.0, 0
        colours = np.uint8(_colours(rng, len(radii)) * 255)
        while coverage < 4 * size * size and count < len(radii):
            r, (cx, cy) = radii[count], rng.uniform(-0.1, 1.1, 2) * size
            angle = rng.uniform(0, 2 * np.pi)
            fill = tuple(int(v) for v in colours[count])
            if shape == "disc":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            else:
                corners = {"square": 4, "triangle": 3, "bar": 4}[shape]
                t = angle + np.arange(corners) * 2 * np.pi / corners
                if shape == "bar":  # a thin rectangle: 1:5
                    t = angle + np.array([0.2, np.pi - 0.2, np.pi + 0.2, -0.2])
                draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in t], fill=fill)
            coverage += np.pi * r * r
            count += 1
        return image

    return render


def _ifs_points(a, b, p, rng: np.random.Generator, chains: int = 2048, steps: int = 24):
    """The chaos game: `chains` points iterated in parallel, the first 8 steps dropped."""
    points, cloud = rng.uniform(-1, 1, (chains, 2)), []
    for step in range(steps):
        pick = rng.choice(len(p), size=chains, p=p)
        points = np.einsum("nij,nj->ni", a[pick], points) + b[pick]
        if step >= 8:
            cloud.append(points)
    cloud = np.concatenate(cloud)
    return (cloud - np.median(cloud, 0)) / (np.percentile(np.abs(cloud), 98, 0) + 1e-6)


def _filling(cloud: np.ndarray, side: int = 32) -> float:
    ix = np.clip((cloud * 0.5 + 0.5) * side, 0, side - 1).astype(int)
    return len(np.unique(ix[:, 0] * side + ix[:, 1])) / side**2


def _ifs_maps(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random IFS of 2-4 contractive affine maps (A, b), probabilities ~ |det A|; drawn again
    until its attractor fills a fifth of its box (FractalDB's filling-rate filter)."""
    while True:
        n = int(rng.integers(2, 5))
        a = rng.uniform(-1, 1, (n, 2, 2))
        a *= rng.uniform(0.45, 0.9, (n, 1, 1)) / np.linalg.norm(a, 2, axis=(1, 2))[:, None, None]
        b = rng.uniform(-1, 1, (n, 2))
        p = np.abs(np.linalg.det(a)) + 0.02
        p /= p.sum()
        if _filling(_ifs_points(a, b, p, rng, 512)) >= 0.2:
            return a, b, p


def fractal(program_seed: list[int]) -> Callable:
    a, b, p = _ifs_maps(np.random.default_rng(program_seed))

    def render(rng: np.random.Generator, size: int) -> Image.Image:
        jitter = 1 + rng.normal(0, 0.03, a.shape)  # each image a slightly different instance
        cloud = _ifs_points(a * jitter, b, p, rng)
        canvas = np.zeros((size + 1, size + 1), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            theta, scale = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.6) * size
            rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
            xy = cloud @ rot.T * scale + rng.uniform(0.25, 0.75, 2) * size
            ix = xy[np.all((xy >= 0) & (xy < size), axis=1)].astype(int)
            for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):  # 2x2 splats: strokes, not dust
                np.add.at(canvas, (ix[:, 1] + dy, ix[:, 0] + dx), 1.0)
        density = np.log1p(canvas[:size, :size])
        density /= max(float(density.max()), 1e-6)
        background, ink = _pair(rng)
        rgb = background + density[..., None] * (ink - background)
        return Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255 + 0.5), "RGB")

    return render


def random_filters(program_seed: list[int]) -> Callable:
    """Smooth noise through a fixed random stack of convolutions: a texture per class."""
    g = torch.Generator().manual_seed(int(np.random.default_rng(program_seed).integers(2**62)))

    def draw(high: int) -> int:
        return int(torch.randint(1, high + 1, (), generator=g))

    layers = []
    for cin, cout in ((4, 8), (8, 8), (8, 1)):
        k, dilation, kind = 2 * draw(3) + 1, draw(3), draw(3)  # 3-7, 1-3, non-linearity
        weight = torch.randn(cout, cin, k, k, generator=g) / (cin * k) ** 0.5
        layers.append((weight, dilation, kind))
    grain = draw(4)  # the noise's cell size in pixels
    stretch = 1 + 2 * float(torch.rand((), generator=g))  # its anisotropy

    def render(rng: np.random.Generator, size: int) -> Image.Image:
        pad = sum((w.shape[-1] - 1) * d for w, d, _ in layers) // 2 + 1
        side = size + 2 * pad
        noise = rng.standard_normal((1, 4, side // grain + 1, int(side / grain / stretch) + 1))
        x = F.interpolate(torch.from_numpy(noise.astype(np.float32)), size=(side, side),
                          mode="bicubic", align_corners=False)
        for weight, dilation, kind in layers:
            x = F.conv2d(x, weight, dilation=dilation, padding="same")
            x = (x - x.mean()) / (x.std() + 1e-6)
            x = torch.tanh(x) if kind == 1 else x.abs() if kind == 2 else torch.tanh(4 * x)
        t = x[0, 0, pad:pad + size, pad:pad + size].numpy()
        low, high = np.percentile(t, [2, 98])
        t = np.clip((t - low) / max(float(high - low), 1e-6), 0, 1)
        dark, light = _pair(rng)
        rgb = dark + t[..., None] * (light - dark)
        return Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255 + 0.5), "RGB")

    return render


def families(seed: int, fractals: int = 24, filters: int = 24) -> dict[str, Callable]:
    """Class name -> render(rng, size)."""
    out = {f"leaves-{s}-{'large' if large else 'small'}": dead_leaves(s, large)
           for s in SHAPES for large in (False, True)}
    out |= {f"fractal-{i:02d}": fractal([seed, 1, i]) for i in range(fractals)}
    out |= {f"filters-{i:02d}": random_filters([seed, 2, i]) for i in range(filters)}
    return out


def write_corpus(out: str | Path, per_class: int = 160, size: int = 96, seed: int = 0,
                 fractions: tuple[float, float, float] = (0.8, 0.05, 0.15),
                 fractals: int = 24, filters: int = 24) -> Path:
    """The corpus in MINC-2500's layout (split 1); existing images are kept (resumable)."""
    if size < 32 or per_class < 3:
        raise ValueError(f"need size >= 32 and per_class >= 3, got {size} and {per_class}")
    renders = families(seed, fractals, filters)
    names = list(renders)

    def render(c: int, i: int) -> Image.Image:
        return renders[names[c]](np.random.default_rng([seed, 3, c, i]), size)

    return write_layout(out, names, render, per_class, fractions,
                        f"Procedural pretraining corpus (cdmr prep.procedural): {len(names)} "
                        f"classes x {per_class} images, {size}x{size}, seed {seed}")


def contact_sheet(path: str | Path, seed: int = 0, size: int = 96, shown: int = 12,
                  per_class: int = 3) -> Path:
    """A figure: images of `shown` pretraining classes beside every family of
    prep.datasets.synthetic
    (the demo's and the tests' families), so anyone can see that they differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prep.datasets.synthetic import FAMILIES, texture

    renders = families(seed)
    names = list(renders)
    picked = [names[round(i * (len(names) - 1) / (shown - 1))] for i in range(shown)]
    blocks = (
        [(n, [renders[n](np.random.default_rng([seed, 3, names.index(n), i]), size)
              for i in range(per_class)]) for n in picked],
        [(f, [texture(f, 1, c, i, 256, 0.2).resize((size, size)) for i in range(per_class)])
         for c, f in enumerate(FAMILIES)])
    height = max(len(b) for b in blocks)
    fig, axes = plt.subplots(height, 2 * per_class, figsize=(2 * per_class * 1.2, height * 1.0),
                             gridspec_kw={"wspace": 0.05, "hspace": 0.1})
    for ax in axes.flat:
        ax.axis("off")
    for column, (block, title) in enumerate(zip(blocks, (
            "pretraining corpus (prep.datasets.procedural)",
            "evaluated families (prep.datasets.synthetic)"),
            strict=True)):
        axes[0, column * per_class].set_title(title, fontsize=8, loc="left")
        for r, (label, images) in enumerate(block):
            for i, image in enumerate(images):
                ax = axes[r, column * per_class + i]
                ax.imshow(image)
                if i == 0:
                    ax.text(0.03, 0.05, label, fontsize=6.5, transform=ax.transAxes,
                            bbox={"facecolor": "white", "alpha": 0.8, "pad": 1.5,
                                  "linewidth": 0})
    fig.subplots_adjust(left=0.01, right=0.99, top=0.96, bottom=0.01)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


@stage_main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m prep.datasets.procedural", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/procedural"))
    p.add_argument("--per-class", type=int, default=160)
    p.add_argument("--size", type=int, default=96, help="side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fractals", type=int, default=24, help="IFS fractal classes")
    p.add_argument("--filters", type=int, default=24, help="random-filter texture classes")
    p.add_argument("--figure", type=Path, default=None,
                   help="instead: draw pretraining classes beside prep.datasets.synthetic's "
                   "families")
    args = p.parse_args(argv)
    if args.figure:
        print(contact_sheet(args.figure, args.seed, args.size))
        return
    path = write_corpus(args.out, args.per_class, args.size, args.seed,
                        fractals=args.fractals, filters=args.filters)
    print(f"wrote {len(families(args.seed, args.fractals, args.filters))} classes x "
          f"{args.per_class} images to {path}")


if __name__ == "__main__":
    main()
