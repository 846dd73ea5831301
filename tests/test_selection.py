"""The selection rule on made-up study results: a challenger must beat the adopted row beyond the
selection set's noise, and the test split never decides; on the k folds' studies, their held-out
images are the selection set and no test split is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research import selection
from research.study import HITS, RESULTS, SELECTION

SETS = {"q1": 0.2, "q4": 0.5, "q8": 1.1}
IMAGES = {"test": 180, SELECTION: 1800}


def study(top1: dict[str, dict[str, float]], seeds: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and per-image hits of rows with these Top-1 on each split (every set and seed
    alike; each run's right images drawn at random)."""
    rng = np.random.default_rng(0)
    results, hits = [], []
    for row, scores in top1.items():
        for s, bpp in SETS.items():
            for seed in range(seeds):
                found = {"row": row, "set": s, "seed": seed, "bpp": bpp,
                         "samples": IMAGES["test"], f"{SELECTION}_samples": IMAGES[SELECTION]}
                for split, n in IMAGES.items():
                    right = np.zeros(n, bool)
                    right[rng.permutation(n)[:round(scores[split] * n)]] = True
                    found["top1" if split == "test" else f"{split}_top1"] = right.mean()
                    hits.append(pd.DataFrame({"key": [f"{split}{i:04d}" for i in range(n)],
                                              "top1": right, "row": row, "set": s,
                                              "seed": seed, "split": split}))
                results.append(found)
    return pd.DataFrame(results), pd.concat(hits, ignore_index=True)


def scores(selection_top1: float, test_top1: float) -> dict[str, float]:
    return {SELECTION: selection_top1, "test": test_top1}


def test_a_challenger_clearly_better_on_the_selection_set_is_adopted():
    results, hits = study({"anchor2": scores(.80, .80), "old": scores(.70, .75),
                           "better": scores(.78, .70), "same": scores(.705, .90)})
    decision = selection.decide(results, hits, "old", ["better", "same"])
    assert decision.adopted == "better"  # 8 points on 1800 images, against 0.5 for "same"
    text = selection.markdown(decision, results, hits, ["better", "same"])
    assert "**Adopted: better**, in place of old." in text and selection.RULE in text
    line = next(x for x in text.splitlines() if x.startswith("| better |"))
    assert "| 78.0 | 78.0 | 78.0 | -2.0 [" in line and "| +8.0 [" in line
    assert "| 70.0 | 70.0 | 70.0 | -10.0 [" in line  # test, read after the choice


def test_the_adopted_row_stays_where_no_challenger_beats_it_beyond_the_noise():
    # "close" leads by 1 point on the selection set and by 15 on test: the test cannot choose
    results, hits = study({"anchor2": scores(.80, .80), "old": scores(.70, .70),
                           "close": scores(.71, .85)})
    decision = selection.decide(results, hits, "old", ["close"])
    low = selection.pair(decision.selection, "close", "old").bd_top1_low
    assert low <= 0 and decision.adopted == "old"
    assert "the adopted row stays" in selection.markdown(decision, results, hits, ["close"])


FOLD_IMAGES = (401, 401, 400)  # the photographs' 1,202 train and validation images in 3 folds


def fold_studies(top1: dict[str, float], seeds: int = 1
                 ) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The results and hits of the studies of 3 folds: rows with this Top-1 on each fold's test
    split (its held-out images, keys of their own), each fold's rates a little apart."""
    rng = np.random.default_rng(0)
    studies = []
    for fold, n in enumerate(FOLD_IMAGES, 1):
        results, hits = [], []
        for row, score in top1.items():
            for s, bpp in SETS.items():
                for seed in range(seeds):
                    right = np.zeros(n, bool)
                    right[rng.permutation(n)[:round(score * n)]] = True
                    results.append({"row": row, "set": s, "seed": seed, "bpp": bpp + fold / 100,
                                    "top1": right.mean(), "samples": n, "val_top1": 0.5})
                    hits.append(pd.DataFrame({"key": [f"f{fold}-{i:04d}" for i in range(n)],
                                              "top1": right, "row": row, "set": s,
                                              "seed": seed, "split": "test"}))
        studies.append((pd.DataFrame(results), pd.concat(hits, ignore_index=True)))
    return studies


def test_the_folds_held_out_images_are_the_selection_images_and_no_test_is_read():
    rows = ["better", "same", "old", "anchor2"]
    studies = fold_studies({"anchor2": .80, "old": .70, "better": .78, "same": .705})
    results, hits = selection.folds(studies, rows)
    # every fold's held-out image once, by the fold's run, in every row, set and seed
    assert (results["selection_samples"] == sum(FOLD_IMAGES)).all() and "top1" not in results
    assert (hits.groupby(["row", "set", "seed"])["key"].nunique() == sum(FOLD_IMAGES)).all()
    assert set(hits["split"]) == {SELECTION} and (results["folds"] == 3).all()
    q1 = results.set_index(["row", "set"]).loc[("old", "q1")]
    assert q1["bpp"] == pytest.approx(sum((0.2 + f / 100) * n for f, n in
                                          enumerate(FOLD_IMAGES, 1)) / sum(FOLD_IMAGES))
    assert q1["selection_top1"] == pytest.approx(sum(round(.7 * n) for n in FOLD_IMAGES)
                                                 / sum(FOLD_IMAGES))
    decision = selection.decide(results, hits, "old", ["better", "same"])
    assert decision.adopted == "better"  # 8 points on 1,202 images, against 0.5 for "same"
    text = selection.markdown(decision, results, hits, ["better", "same"])
    assert "**Adopted: better**, in place of old." in text and selection.RULE in text
    assert "held-out images of 3 folds (1202 a quality" in text
    assert "No test split was read" in text and "test q1" not in text
    head = next(x for x in text.splitlines() if x.startswith("| row |"))
    assert head == ("| row | selection q1 | selection q4 | selection q8 | selection BD vs "
                    "anchor2 | selection BD vs old |")
    line = next(x for x in text.splitlines() if x.startswith("| better |"))
    assert line.startswith("| better | 78.0 | 78.0 | 78.0 | -2.0 [") and line.count("|") == 7
    # a challenger 1 point ahead on the folds does not replace the incumbent
    results, hits = selection.folds(fold_studies({"anchor2": .80, "old": .70, "close": .71}),
                                    ["close", "old", "anchor2"])
    assert selection.decide(results, hits, "old", ["close"]).adopted == "old"


def test_studies_that_are_not_one_roots_folds_are_refused():
    rows = ["better", "old", "anchor2"]
    studies = fold_studies({"anchor2": .80, "old": .70, "better": .78})
    with pytest.raises(ValueError, match="image f1-0000 is held out in two of the studies"):
        selection.folds([studies[0], studies[1], studies[0]], rows)
    results, hits = studies[2]
    short = results[~((results["row"] == "old") & (results["set"] == "q4"))]
    with pytest.raises(ValueError, match=r"fold 3's study differs .*\('old', 'q4', 0\)"):
        selection.folds([*studies[:2], (short, hits)], rows)
    with pytest.raises(ValueError, match="fold 1's study has no runs of rows worse"):
        selection.folds(studies, [*rows, "worse"])
    with pytest.raises(ValueError, match="scored the evaluation-only set"):
        selection.folds([(studies[0][0].assign(extra_top1=0.5), studies[0][1]), *studies[1:]],
                        rows)


def test_the_command_reads_the_folds_studies_and_writes_beside_them(tmp_path, capsys):
    folders = []
    for fold, (results, hits) in enumerate(
            fold_studies({"anchor2": .80, "old": .70, "better": .78}), 1):
        folder = tmp_path / f"split{fold}" / "minc-subset-folds"
        folder.mkdir(parents=True)
        results.to_csv(folder / RESULTS, index=False)
        hits.to_parquet(folder / HITS, index=False)
        folders.append(str(folder))
    assert selection.main([*folders, "--incumbent", "old", "--challengers", "better"]) == 0
    assert "**Adopted: better**" in (tmp_path / "selection.md").read_text()
    assert selection.main([folders[0], "--incumbent", "old", "--challengers", "better"]) == 2
    assert "or give the studies of every fold" in capsys.readouterr().err


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "comp-study"


@pytest.mark.parametrize("folder, studies, incumbent, challengers", [
    ("selection-demo", ("",), "transplant-res-lr-0.001",
     ("transplant-res", "transplant-anchor2-seed")),
    ("selection-minc", ("split1", "split2", "split3"), "transplant-res", ("transplant-res-up",)),
])
def test_the_committed_choice_is_what_the_rule_gives_on_the_committed_runs(
        tmp_path, folder, studies, incumbent, challengers):
    """docs/comp-study/selection.md's results: the demo's selection set, the photos' 3 folds."""
    study = COMMITTED / folder
    selection.main([*(str(study / s) for s in studies), "--incumbent", incumbent,
                    "--challengers", *challengers, "--out", str(tmp_path)])
    assert (tmp_path / "selection.md").read_text() == (study / "selection.md").read_text()
