from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from foundation import schema
from prep.datasets.listing import list_dataset
from prep.datasets.synthetic import FAMILIES, texture, write_dataset


def test_written_in_minc_layout_and_deterministic(tmp_path):
    a = write_dataset(tmp_path / "a", classes=3, per_class=10, size=96, seed=5)
    b = write_dataset(tmp_path / "b", classes=3, per_class=10, size=96, seed=5)
    listing = list_dataset(a)
    assert listing.layout == "minc-2500" and listing.categories == tuple(list(FAMILIES)[:3])
    assert Counter(i.split for i in listing.items) == {"train": 24, "validate": 3, "test": 3}
    for item in listing.items:
        assert (a / item.source).read_bytes() == (b / item.source).read_bytes()
        assert Image.open(a / item.source).size == (96, 96)


def test_rerun_keeps_existing_images(tmp_path):
    root = write_dataset(tmp_path / "s", classes=1, per_class=4, size=64)
    path = root / "images" / "stripes" / "stripes_000000.jpg"
    mtime = path.stat().st_mtime_ns
    write_dataset(tmp_path / "s", classes=1, per_class=4, size=64)
    assert path.stat().st_mtime_ns == mtime


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_families_differ_and_images_within_a_family_vary():
    # every family's own pattern, before colours, lighting and the other family's blend: given
    # the same random draws, two families that are one generator (or one up to brightness and
    # contrast) correlate +-1, two different ones far less; |r| < 0.9 for every pair and draw
    y, x = np.mgrid[0:96, 0:96].astype(np.float32)
    patterns = {f: [np.asarray(render(np.random.default_rng(draw), x, y), np.float64)
                    for draw in range(3)] for f, render in FAMILIES.items()}
    for family, draws in patterns.items():
        assert all(d.shape == (96, 96) and d.std() > 0.1 for d in draws), family  # a pattern
        # its scale, orientation, noise vary from draw to draw: not one picture recoloured
        assert abs(_correlation(draws[0], draws[1])) < 0.9, family
    for a, b in combinations(FAMILIES, 2):
        for draw in range(3):
            r = _correlation(patterns[a][draw], patterns[b][draw])
            assert abs(r) < 0.9, (a, b, draw, r)
    # the images themselves: every family's two images differ (colours, scale, orientation)
    images = {f: [np.asarray(texture(f, 0, c, i, 96), np.float32) for i in range(2)]
              for c, f in enumerate(FAMILIES)}
    for family, (first, second) in images.items():
        assert np.abs(first - second).mean() > 5, family


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="classes must be"):
        write_dataset(tmp_path, classes=len(FAMILIES) + 1)
    with pytest.raises(ValueError, match="no training images"):
        write_dataset(tmp_path, per_class=2)


def test_a_folder_of_other_settings_is_refused_not_mixed(tmp_path):
    write_dataset(tmp_path, classes=2, per_class=4, size=64, seed=0)
    with pytest.raises(ValueError, match="written with other settings.*seed 0"):
        write_dataset(tmp_path, classes=2, per_class=4, size=64, seed=1)


@pytest.mark.slow
def test_prepared_synthetic_shards_match_their_manifest(trainer_shards):
    for set_name in ("original", "q4"):
        info = schema.read_dataset_json(trainer_shards / set_name)
        assert info["dataset"]["layout"] == "minc-2500" and len(info["categories"]) == 4
        assert {s: c["samples"] for s, c in info["counts"].items()} == {
            "train": 168, "validate": 24, "test": 48}
        manifest = schema.read_manifest(trainer_shards / set_name).to_pylist()
        labels = {r["key"]: r["label"] for r in manifest}
        for shard in schema.shard_paths(trainer_shards / set_name, "test"):
            for sample in schema.iter_shard(shard):
                assert sample["cls"] == labels[sample["__key__"]]
                assert info["categories"][sample["cls"]] == sample["__key__"].rsplit("_", 1)[0]
    assert info["codec"]["N"] == 64 and info["codec"]["M"] == 96  # the demo codec's sizes


def test_an_evaluation_only_set_is_all_test(tmp_path):
    out = write_dataset(tmp_path, classes=2, per_class=3, size=64, fractions=(0, 0, 1))
    labels = {split: (out / "labels" / f"{split}1.txt").read_text().split()
              for split in ("train", "validate", "test")}
    assert labels["train"] == labels["validate"] == [] and len(labels["test"]) == 6
