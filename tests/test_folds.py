"""k-fold cross-validation folds of a MINC-layout split: a partition of its train and validate
images, stratified, seeded, never a test image, readable as MINC splits 1..k."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from prep.datasets import folds
from prep.datasets.listing import list_dataset

# a made-up split 1 with uneven classes: 7 + 2 brick, 4 + 1 wood, 1 glass; 2 test a class
COUNTS = {"brick": (7, 2, 2), "wood": (4, 1, 2), "glass": (1, 0, 2)}


def tiny_minc(root: Path) -> Path:
    """COUNTS' images (train, validate, test a class) in MINC-2500's layout, split 1."""
    lines = {"train": [], "validate": [], "test": []}
    for name, counts in COUNTS.items():
        (root / "images" / name).mkdir(parents=True)
        n = 0
        for split, count in zip(lines, counts, strict=True):
            for _ in range(count):
                source = f"images/{name}/{name}_{n:06d}.jpg"
                Image.new("RGB", (8, 8)).save(root / source)
                lines[split].append(source)
                n += 1
    (root / "labels").mkdir()
    for split, sources in lines.items():
        (root / "labels" / f"{split}1.txt").write_text("\n".join(sources) + "\n")
    (root / "categories.txt").write_text("\n".join(COUNTS) + "\n")
    (root / "README.txt").write_text("a made-up MINC layout\n")
    return root


def lists(root: Path, k: int) -> dict[int, dict[str, list[str]]]:
    """Per fold, per split, the lines of its label file."""
    return {f: {s: (root / "labels" / f"{s}{f}.txt").read_text().split()
                for s in ("train", "validate", "test")} for f in range(1, k + 1)}


def check_folds(source: Path, out: Path, k: int) -> None:
    """What a user checks of the folds of `source` split 1."""
    original = list_dataset(source)
    by_split = {s: {i.source for i in original.items if i.split == s}
                for s in ("train", "validate", "test")}
    written = lists(out, k)
    shares = [set(written[f]["test"]) for f in written]
    # the shares partition train + validate: every image held out once, in one fold
    assert sum(len(s) for s in shares) == len(set().union(*shares))
    assert set().union(*shares) == by_split["train"] | by_split["validate"]
    for f, split_lists in written.items():
        # the rest of each fold: the source's train and validate images outside its share
        assert set(split_lists["train"]) == by_split["train"] - shares[f - 1]
        assert set(split_lists["validate"]) == by_split["validate"] - shares[f - 1]
        # no file of any fold holds a source test image
        assert not set().union(*map(set, split_lists.values())) & by_split["test"]
        # each fold is a MINC split that lists without a problem, its images through the link
        listing = list_dataset(out, split=f)
        assert not listing.failures and Counter(i.split for i in listing.items) == {
            s: len(v) for s, v in split_lists.items() if v}
    # stratified: each class's share in a fold within one image of an equal share, and so its
    # train and its validate images
    for pool in (by_split["train"] | by_split["validate"], by_split["train"],
                 by_split["validate"]):
        classes = Counter(Path(s).parts[1] for s in pool)
        for share in shares:
            mine = Counter(Path(s).parts[1] for s in share & pool)
            assert all(abs(mine[c] - n / k) < 1 for c, n in classes.items()), (mine, classes)
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1
    assert (out / "images").is_symlink() and (out / "images").resolve() == (
        source / "images").resolve()
    assert (out / "categories.txt").read_text() == (source / "categories.txt").read_text()


def test_folds_partition_train_and_validate_stratified_and_never_hold_a_test_image(tmp_path):
    source = tiny_minc(tmp_path / "minc")
    for k in (2, 3, 4):
        out = folds.write_folds(source, tmp_path / f"folds{k}", split=1, k=k, seed=0)
        check_folds(source, out, k)
        readme = (out / "README.txt").read_text()
        assert f"{source.resolve()} split 1: k = {k}, seed 0" in readme


def test_folds_of_the_real_sample(minc_sample, tmp_path):
    out = folds.write_folds(minc_sample, tmp_path / "sample-folds", k=3, seed=0)
    check_folds(minc_sample, out, 3)
    assert [len(fold["test"]) for fold in lists(out, 3).values()] == [32, 32, 32]  # 96 / 3


def test_folds_are_deterministic_for_a_seed(tmp_path):
    source = tiny_minc(tmp_path / "minc")
    first = lists(folds.write_folds(source, tmp_path / "a", k=3, seed=0), 3)
    assert lists(folds.write_folds(source, tmp_path / "b", k=3, seed=0), 3) == first
    # the same settings again over the same folder: the same files
    assert lists(folds.write_folds(source, tmp_path / "a", k=3, seed=0), 3) == first
    others = [lists(folds.write_folds(source, tmp_path / f"s{seed}", k=3, seed=seed), 3)
              for seed in (1, 2, 3)]
    assert any(other != first for other in others)


def test_a_folder_made_with_other_settings_is_refused(tmp_path):
    source = tiny_minc(tmp_path / "minc")
    out = folds.write_folds(source, tmp_path / "folds", k=3, seed=0)
    before = lists(out, 3)
    for settings in ({"k": 2, "seed": 0}, {"k": 3, "seed": 1}):
        with pytest.raises(ValueError, match="made with other settings.*k = 3, seed 0"):
            folds.write_folds(source, out, **settings)
    assert lists(out, 3) == before
    with pytest.raises(ValueError, match="made with other settings"):  # the source itself
        folds.write_folds(source, source, k=3)
    with pytest.raises(ValueError, match="give 2 or more folds"):
        folds.write_folds(source, tmp_path / "one", k=1)


def test_the_command_writes_the_folds(tmp_path, capsys):
    source = tiny_minc(tmp_path / "minc")
    out = tmp_path / "folds"
    assert folds.main([str(source), "--out", str(out), "--k", "3", "--seed", "0"]) == 0
    assert "wrote 3 folds" in capsys.readouterr().out
    check_folds(source, out, 3)
    assert folds.main([str(source), "--out", str(out), "--k", "4"]) == 2  # other settings
    assert "other settings" in capsys.readouterr().err
