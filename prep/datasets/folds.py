"""k-fold cross-validation over a MINC-layout split, written as a MINC-layout root whose split f
is fold f: what a recipe is chosen on where no image is spare (docs/comp-study/selection.md).

    python -m prep.datasets.folds ../shared/data/minc-2500-subset/minc-2500 --split 1 --k 3 \
        --seed 0 --out data/minc-subset-folds

The source split's train and validate images are dealt into k shares, class by class in a
seeded order, so that each class's share in a fold is within one image of its equal share (and
so are its train and its validate images, and each fold's size). Fold f is split f of the new root:
test<f>.txt is its share, the images its classifiers are scored on (held out from its training);
train<f>.txt and validate<f>.txt are the source's train and validate images outside that share
(the trainer's per-epoch check, never scored: a set holds an image in one split only, so the
share cannot be listed as validate too). Every train and validate image is in exactly one fold's
test list; the source's test images are in no list. images/ is a link to the source's images (no
copies), categories.txt a copy of the source's, README.txt how the folds were made.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

from foundation.cli import stage_main
from prep.datasets.listing import CATEGORIES, Listing, list_minc, minc_root

IMAGES = "images"
FOLDED = ("train", "validate")  # the source's splits that the folds share out
README = "README.txt"


def fold_of(listing: Listing, k: int, seed: int) -> dict[str, int]:
    """Each train or validate image's fold (1..k) by its source line: per class (in label
    order) its train images, then its validate images, each in an order seeded by the seed, the
    class and the split, dealt round the folds, each starting at the fold after the last one
    dealt (so each class, and each class's train and validate images, within one image of an
    equal share a fold)."""
    folds, dealt = {}, 0
    for name in listing.categories:
        for split in FOLDED:
            mine = sorted((i for i in listing.items
                           if i.split == split and i.class_name == name), key=lambda i: i.key)
            random.Random(f"{seed}:{name}:{split}").shuffle(mine)
            for item in mine:
                folds[item.source] = dealt % k + 1
                dealt += 1
    return folds


def _source(source: str | Path, split: int) -> tuple[Path, Listing]:
    """The source's MINC root and the listing of its split, refused where it cannot be folded
    whole: a listing problem would leave an image out of every fold."""
    data = Path(source).resolve()
    root = minc_root(data)
    if root is None:
        raise ValueError(f"{data} is not in MINC-2500's layout ({CATEGORIES} and labels/): the "
                         f"folds are written from a MINC-layout root")
    listing = list_minc(root, split)
    if listing.failures:
        first = listing.failures[0]
        raise ValueError(f"{root} split {split}: {len(listing.failures)} listing problem(s), "
                         f"e.g. {first.source}: {first.reason}; the folds must hold every image")
    outside = [i.source for i in listing.items if Path(i.source).parts[0] != IMAGES]
    if outside:
        raise ValueError(f"{root} split {split} lists {outside[0]}, outside {IMAGES}/ (the "
                         f"folds link to {IMAGES}/ alone)")
    return root, listing


def write_folds(source: str | Path, out: str | Path, split: int = 1, k: int = 3,
                seed: int = 0) -> Path:
    """Write the k folds of `source`'s split `split` as the MINC-layout root `out` (splits
    1..k); a folder written with other settings is refused, the same settings rewrite it."""
    if k < 2:
        raise ValueError(f"--k {k}: give 2 or more folds")
    root, listing = _source(source, split)
    folds = fold_of(listing, k, seed)
    if len(folds) < k:
        raise ValueError(f"{root} split {split} has {len(folds)} train and validate images, "
                         f"fewer than --k {k}")
    out = Path(out)
    sizes = Counter(folds.values())
    description = (
        f"k-fold cross-validation (cdmr prep.datasets.folds) of {root} split {split}: k = {k}, "
        f"seed {seed}. Split f is fold f: test<f>.txt its share of the source's train and "
        f"validate images ({'/'.join(str(sizes[f]) for f in range(1, k + 1))} images, each "
        f"class dealt evenly in a seeded order), train<f>.txt and validate<f>.txt the source's "
        f"train and validate images outside it. The source's test images are in no list. "
        f"{IMAGES}/ links to {root / IMAGES}.\n")
    record = out / README  # written first: a rerun must have the same settings
    if record.is_file() and record.read_text() != description:
        raise ValueError(f"{out} holds folds made with other settings ({record}: "
                         f"{record.read_text().strip()}); remove it or choose another --out")
    link = out / IMAGES
    ours = link.is_symlink() and link.resolve() == (root / IMAGES).resolve()
    if (link.exists() or link.is_symlink()) and not ours:
        raise ValueError(f"{link} is there and is not a link to {root / IMAGES}; remove it or "
                         f"choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(description)
    if not ours:
        link.symlink_to(root / IMAGES, target_is_directory=True)
    (out / CATEGORIES).write_text((root / CATEGORIES).read_text())
    (out / "labels").mkdir(exist_ok=True)
    kept = sorted((i for i in listing.items if i.split in FOLDED), key=lambda i: i.source)
    for f in range(1, k + 1):
        lists = {"train": [], "validate": [], "test": []}
        for item in kept:
            lists["test" if folds[item.source] == f else item.split].append(item.source)
        for name, sources in lists.items():
            (out / "labels" / f"{name}{f}.txt").write_text("".join(s + "\n" for s in sources))
    return out


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m prep.datasets.folds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="a MINC-layout root (or the folder above it)")
    p.add_argument("--out", type=Path, required=True, help="the folds' root (a new folder)")
    p.add_argument("--split", type=int, default=1, help="the source's split to fold")
    p.add_argument("--k", type=int, default=3, help="the number of folds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    path = write_folds(args.source, args.out, args.split, args.k, args.seed)
    print(f"wrote {args.k} folds of {args.source} split {args.split} to {path} (splits "
          f"1..{args.k}; test<f>.txt: fold f's held-out images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
