from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from prep.datasets.listing import list_dataset


def test_minc_sample_follows_official_split_and_categories(minc_sample):
    listing = list_dataset(minc_sample)
    assert listing.layout == "minc-2500" and listing.name == "minc-2500"
    assert len(listing.categories) == 23 and listing.categories[0] == "brick"
    assert Counter(i.split for i in listing.items) == {"train": 80, "validate": 16, "test": 24}
    labels = {i.class_name: i.label for i in listing.items}
    assert labels == {c: listing.categories.index(c) for c in ("brick", "carpet", "ceramic",
                                                               "fabric")}
    assert not listing.failures
    assert {i.key for i in listing.items if i.split == "test" and i.class_name == "brick"} == {
        f"brick_0000{n}" for n in range(24, 30)}


def test_archive_parent_folder_is_accepted(minc_sample):
    assert list_dataset(minc_sample.parent).root == minc_sample


def test_missing_split_names_the_file(minc_sample):
    with pytest.raises(FileNotFoundError, match=r"test3\.txt|train3\.txt"):
        list_dataset(minc_sample, split=3)


def make_minc(root: Path, lines: dict[str, list[str]], categories=("brick", "wood")) -> Path:
    (root / "labels").mkdir(parents=True)
    (root / "categories.txt").write_text("\n".join(categories) + "\n")
    for split, entries in lines.items():
        (root / "labels" / f"{split}1.txt").write_text("\n".join(entries) + "\n")
        for entry in entries:
            if "missing" not in entry:
                (root / entry).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (64, 64)).save(root / entry)
    return root


def test_listing_problems_become_failures(tmp_path):
    root = make_minc(tmp_path / "minc", {
        "train": ["images/brick/brick_1.jpg", "images/brick/missing_2.jpg",
                  "images/glass/glass_3.jpg"],
        "validate": ["images/wood/wood_4.jpg"],
        "test": ["images/brick/brick_1.jpg"],  # the same image listed again: duplicate key
    })
    listing = list_dataset(root)
    assert [i.key for i in listing.items] == ["brick_1", "wood_4"]
    reasons = {f.key: f.reason for f in listing.failures}
    assert "does not exist" in reasons["missing_2"]
    assert "'glass' is not in categories.txt" in reasons["glass_3"]
    assert "duplicate key" in reasons["brick_1"]


def make_folders(root: Path, per_class: dict[str, int]) -> Path:
    for name, n in per_class.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (64, 64), (i, 0, 0)).save(root / name / f"{i:03d}.png")
    return root


def test_class_folders_get_a_seeded_stratified_split(tmp_path):
    root = make_folders(tmp_path / "folders", {"a": 40, "b": 20})
    first, again = list_dataset(root, seed=3), list_dataset(root, seed=3)
    other = list_dataset(root, seed=4)
    assert first.layout == "class-folders" and first.categories == ("a", "b")
    per = Counter((i.class_name, i.split) for i in first.items)
    assert per == {("a", "train"): 34, ("a", "validate"): 2, ("a", "test"): 4,
                   ("b", "train"): 17, ("b", "validate"): 1, ("b", "test"): 2}
    assert first.items == again.items
    assert {i.key for i in first.items if i.split == "test"} != {
        i.key for i in other.items if i.split == "test"}
    assert first.split == {"kind": "seeded-stratified", "seed": 3, "fractions": [0.85, 0.05, 0.1]}


def test_class_folder_keys_are_unique_and_dot_free(tmp_path):
    root = make_folders(tmp_path / "folders", {"x.y": 3})
    Image.new("RGB", (64, 64)).save(root / "x.y" / "000.jpg")  # same stem as 000.png
    listing = list_dataset(root)
    assert all("." not in i.key for i in listing.items)
    assert [f.reason for f in listing.failures] == [
        "duplicate key 'x_y_000': already taken by x.y/000.jpg"]


def test_missing_dataset_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        list_dataset(tmp_path / "nowhere")
