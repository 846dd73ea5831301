"""The pretraining corpus: deterministic, its own families, in MINC-2500's layout."""

from itertools import combinations

import numpy as np
from PIL import Image

from prep.datasets.procedural import families, write_corpus
from prep.datasets.synthetic import FAMILIES, texture


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


def test_contact_sheet_shows_every_family_beside_the_corpus(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from prep.datasets import synthetic
    from prep.datasets.procedural import contact_sheet

    rendered = []  # every evaluated family's image the sheet asked for: (family, image)

    def spy(family, *args, **kwargs):
        rendered.append((family, texture(family, *args, **kwargs)))
        return rendered[-1][1]

    monkeypatch.setattr(synthetic, "texture", spy)
    kept = []  # the figure, left open to look inside it
    monkeypatch.setattr(plt, "close", kept.append)
    size, shown, per_class = 32, 3, 2
    path = contact_sheet(tmp_path / "sheet.png", size=size, shown=shown, per_class=per_class)
    monkeypatch.undo()
    [figure] = kept
    try:
        with Image.open(path) as im:
            assert min(im.size) > 200 and np.asarray(im.convert("L")).std() > 10
        # a row per family (there are more families than corpus classes shown), per_class
        # images of a corpus class on the left, per_class of a family on the right
        assert len(figure.axes) == len(FAMILIES) * 2 * per_class
        grid = np.array(figure.axes).reshape(len(FAMILIES), 2 * per_class)
        shown_images = [[[np.asarray(i.get_array()) for i in ax.get_images()] for ax in row]
                        for row in grid]
        corpus = [label for row in grid for label in (t.get_text() for t in row[0].texts)]
        assert len(set(corpus)) == shown and set(corpus) <= set(families(0))
        assert [[t.get_text() for t in row[per_class].texts] for row in grid] == [
            [f] for f in FAMILIES]
        # one label a row and block, on its first image
        assert sum(len(ax.texts) for ax in grid.flat) == shown + len(FAMILIES)
        for r, row in enumerate(shown_images):
            for c, images in enumerate(row):
                drawn = r < shown or c >= per_class  # the corpus block is `shown` rows high
                assert len(images) == drawn, (r, c)
                if drawn:
                    assert images[0].shape == (size, size, 3) and np.ptp(images[0]) > 0, (r, c)
            for block in (row[:per_class], row[per_class:]):  # not one image repeated
                for a, b in combinations([images[0] for images in block if images], 2):
                    assert not np.array_equal(a, b), r
        # each family's row shows that family's own images, rendered for the sheet
        assert [f for f, _ in rendered] == [f for f in FAMILIES for _ in range(per_class)]
        for r, family in enumerate(FAMILIES):
            ours = [image for f, image in rendered if f == family]
            for i in range(per_class):
                expected = np.asarray(ours[i].resize((size, size)))
                assert np.array_equal(shown_images[r][per_class + i][0], expected), family
    finally:
        plt.close(figure)
