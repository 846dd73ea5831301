"""List a dataset's samples with their split and label: MINC-2500's layout or class folders.

Listing problems (a missing file, an unknown class, a duplicate key) become failure records,
never silent drops; a problem with the dataset as a whole is an error that says what to fix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from foundation.schema import SPLITS, sanitize_key

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm"}
CATEGORIES = "categories.txt"


@dataclass(frozen=True)
class Item:
    key: str
    source: str  # path relative to the dataset root, as the split files write it
    split: str
    label: int
    class_name: str


@dataclass(frozen=True)
class Failure:
    key: str
    source: str
    split: str
    label: int
    class_name: str
    stage: str  # list | read | encode | verify
    reason: str

    def row(self, shard: str | None = None) -> dict:
        return {**self.__dict__, "shard": shard}


@dataclass(frozen=True)
class Listing:
    name: str
    root: Path
    layout: str  # minc-2500 | class-folders
    categories: tuple[str, ...]
    split: dict  # how the split was made, recorded in dataset.json
    items: tuple[Item, ...]
    failures: tuple[Failure, ...] = field(default=())

    def path(self, item: Item) -> Path:
        return self.root / item.source


def minc_root(data: Path) -> Path | None:
    """The MINC-2500 root under `data` (the archive unpacks to minc-2500/), or None."""
    for root in (data, data / "minc-2500"):
        if (root / CATEGORIES).is_file() and (root / "labels").is_dir():
            return root
    return None


def dataset_name(data: str | Path) -> str:
    """The name list_dataset gives the dataset at `data` (its shards' folder under --out)."""
    data = Path(data).resolve()
    return (minc_root(data) or data).name


def list_dataset(data: str | Path, split: int = 1, seed: int = 0) -> Listing:
    """Dispatch on the layout found at `data`."""
    data = Path(data).resolve()
    if not data.is_dir():
        raise FileNotFoundError(
            f"dataset folder {data} does not exist. For MINC-2500 run `make data` (or download "
            f"minc-2500.tar.gz and unpack it there); for the built-in textures: `make synthetic`."
        )
    root = minc_root(data)
    if root is not None:
        return list_minc(root, split)
    return list_class_folders(data, seed=seed)


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class _Collector:
    """Items with unique keys; everything else as failures."""

    def __init__(self, categories: list[str]):
        self.labels = {name: i for i, name in enumerate(categories)}
        self.items: list[Item] = []
        self.failures: list[Failure] = []
        self.seen: dict[str, str] = {}

    def add(self, key: str, source: str, split: str, class_name: str, exists: bool, where: str):
        label = self.labels.get(class_name, -1)
        if class_name not in self.labels:
            reason = f"class folder {class_name!r} is not in {CATEGORIES}"
        elif not exists:
            reason = f"listed in {where} but the file does not exist"
        elif key in self.seen:
            reason = f"duplicate key {key!r}: already taken by {self.seen[key]}"
        else:
            self.seen[key] = source
            self.items.append(Item(key, source, split, label, class_name))
            return
        self.failures.append(Failure(key, source, split, label, class_name, "list", reason))


def list_minc(root: Path, split: int = 1) -> Listing:
    """MINC-2500: categories.txt gives label order, labels/<split><N>.txt list the images."""
    categories = _read_lines(root / CATEGORIES)
    collector = _Collector(categories)
    for split_name in SPLITS:
        split_file = root / "labels" / f"{split_name}{split}.txt"
        if not split_file.is_file():
            found = sorted(p.name for p in (root / "labels").glob("*.txt"))
            raise FileNotFoundError(
                f"{split_file} not found: split {split} is not in this dataset "
                f"(split files there: {', '.join(found) or 'none'})"
            )
        for source in _read_lines(split_file):
            parts = Path(source).parts
            class_name = parts[1] if len(parts) >= 3 and parts[0] == "images" else parts[0]
            collector.add(
                sanitize_key(Path(source).stem), source, split_name, class_name,
                (root / source).is_file(), f"labels/{split_file.name}",
            )
    return Listing(
        name=root.name, root=root, layout="minc-2500", categories=tuple(categories),
        split={"kind": "official", "number": split}, items=tuple(collector.items),
        failures=tuple(collector.failures),
    )


def list_class_folders(
    root: Path, seed: int = 0, fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)
) -> Listing:
    """root/<class>/<image>: a seeded split stratified by class (MINC-2500's proportions)."""
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listed = root / CATEGORIES
    categories = _read_lines(listed) if listed.is_file() else folders
    if not folders:
        raise ValueError(
            f"{root} holds no class folders: expected MINC-2500's layout ({CATEGORIES} and "
            f"labels/) or one folder per class with images inside"
        )
    collector = _Collector(categories)
    for class_name in folders:
        files = sorted(
            p for p in (root / class_name).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        order = list(range(len(files)))
        random.Random(f"{seed}:{class_name}").shuffle(order)
        splits = dict(zip(order, _stratum(len(files), fractions), strict=True))
        for index, path in enumerate(files):  # sorted: the first of duplicate keys wins
            split_name = splits[index]
            key = sanitize_key(f"{class_name}_{path.stem}")
            collector.add(key, f"{class_name}/{path.name}", split_name, class_name, True, "")
    return Listing(
        name=root.name, root=root, layout="class-folders", categories=tuple(categories),
        split={"kind": "seeded-stratified", "seed": seed, "fractions": list(fractions)},
        items=tuple(collector.items), failures=tuple(collector.failures),
    )


def _stratum(n: int, fractions: tuple[float, float, float]) -> list[str]:
    """Split names for n shuffled files of one class: at least one test and validate if n >= 3."""
    n_validate, n_test = (round(n * f) for f in fractions[1:])
    if n >= 3:
        n_validate, n_test = max(1, n_validate), max(1, n_test)
    n_train = max(0, n - n_validate - n_test)
    return ["train"] * n_train + ["validate"] * n_validate + ["test"] * (n - n_train - n_validate)
