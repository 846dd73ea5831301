"""The selection rule on made-up study results: a challenger must beat the adopted row beyond the
selection set's noise, and the test split never decides."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import selection
from pipeline.study import SELECTION

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
