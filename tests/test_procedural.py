"""The pretraining corpus: deterministic, its own families, in MINC-2500's layout."""

import numpy as np
from PIL import Image

from prep.datasets.procedural import families, write_corpus
from prep.datasets.synthetic import FAMILIES


def test_corpus_is_deterministic_and_in_minc_layout(tmp_path):
    a = write_corpus(tmp_path / "a", per_class=4, size=48, fractals=2, filters=2)
    b = write_corpus(tmp_path / "b", per_class=4, size=48, fractals=2, filters=2)
    names = (a / "categories.txt").read_text().split()
    assert len(names) == 8 + 2 + 2
    files = sorted(p.relative_to(a) for p in (a / "images").rglob("*.jpg"))
    assert len(files) == 4 * len(names)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert len((a / "labels" / "test1.txt").read_text().split()) == len(names)


def test_classes_are_not_the_evaluated_families_and_images_vary():
    renders = families(seed=0, fractals=3, filters=3)
    assert not {n.split("-")[0] for n in renders} & set(FAMILIES)
    for name, render in renders.items():
        first, second = (np.asarray(render(np.random.default_rng(i), 64)) for i in (1, 2))
        assert first.shape == (64, 64, 3) and not np.array_equal(first, second), name
        assert first.std() > 5, name  # a pattern, not a flat colour


def test_contact_sheet_is_a_real_figure(tmp_path):
    from prep.datasets.procedural import contact_sheet

    with Image.open(contact_sheet(tmp_path / "sheet.png", size=32, shown=3, per_class=2)) as im:
        assert min(im.size) > 200 and np.asarray(im.convert("L")).std() > 10
