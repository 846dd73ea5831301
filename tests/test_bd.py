"""BD-accuracy against cases computed by hand, and its bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation.bd import Curve, bd_accuracy, bd_table, compare

IMAGES = 1000


def hits(accuracies, seed: int) -> np.ndarray:
    """(points, IMAGES) Top-1 hits with exactly these accuracies, on random images."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((len(accuracies), IMAGES), dtype=bool)
    for row, accuracy in zip(rows, accuracies, strict=True):
        row[rng.permutation(IMAGES)[:round(accuracy * IMAGES)]] = True
    return rows


# Top-1 = 0.5 + 0.1 k at bpp = 0.1 * 3^k: a straight line in log bpp. The second curve is the
# same line lifted by 0.05 and sampled half a step to the right; they share bpp 0.17..0.9.
BPP_A = 0.1 * 3.0 ** np.arange(3)
ACC_A = np.array([0.5, 0.6, 0.7])
BPP_B = 0.1 * 3.0 ** (np.arange(3) + 0.5)
ACC_B = 0.5 + 0.1 * (np.arange(3) + 0.5) + 0.05


def test_two_lines_with_a_known_offset_give_that_offset():
    assert bd_accuracy(BPP_A, ACC_A, BPP_B, ACC_B) == pytest.approx(0.05, abs=1e-12)
    assert bd_accuracy(BPP_B, ACC_B, BPP_A, ACC_A) == pytest.approx(-0.05, abs=1e-12)


def test_a_hand_computed_partial_overlap():
    # x = log10 bpp. A: 0.4 at x=-1, 0.8 at x=0 (A(x) = 0.8 + 0.4x); B: 0.6 at x=-0.5, 0.9 at
    # x=1 (B(x) = 0.7 + 0.2x). Over the common x in [-0.5, 0]: mean A = A(-0.25) = 0.7, mean B
    # = B(-0.25) = 0.65, so B - A = -0.05.
    assert bd_accuracy([0.1, 1.0], [0.4, 0.8], [10 ** -0.5, 10.0], [0.6, 0.9]) == pytest.approx(
        -0.05, abs=1e-12)


def test_curves_without_a_common_range_have_no_value():
    assert math.isnan(bd_accuracy([0.1, 0.2], [0.5, 0.6], [0.3, 0.5], [0.7, 0.8]))


def test_a_curve_needs_two_increasing_rates():
    with pytest.raises(ValueError, match="two or more points of increasing positive bpp"):
        bd_accuracy([0.5], [0.5], [0.3, 0.5], [0.7, 0.8])
    with pytest.raises(ValueError, match="increasing"):
        bd_accuracy([0.5, 0.2], [0.5, 0.6], [0.3, 0.5], [0.7, 0.8])


def test_the_bootstrap_interval_holds_the_offset():
    a = Curve("Anchor 2", ("q1", "q4", "q8"), BPP_A, hits(ACC_A, 0)[None])
    b = Curve("Anchor 2 (JPEG)", ("jpeg5", "jpeg20", "jpeg60"), BPP_B, hits(ACC_B, 1)[None])
    [row] = compare([b, a], resamples=500).to_dict("records")
    assert (row["curve"], row["reference"]) == ("Anchor 2 (JPEG)", "Anchor 2")
    assert row["bd_top1"] == pytest.approx(0.05, abs=1e-12)
    assert row["bd_top1_low"] < 0.05 < row["bd_top1_high"]
    # the spread of a difference of accuracies on 1000 images: a few points, not zero
    assert 0.01 < row["bd_top1_high"] - row["bd_top1_low"] < 0.1
    assert (row["bpp_low"], row["bpp_high"]) == pytest.approx((BPP_B[0], BPP_A[-1]))
    assert row["images"] == IMAGES


def test_the_table_pairs_every_curve_from_evaluate_results():
    """evaluate's results and hits (a row per image and cell) -> one row per pair of curves,
    the compressed domain first, the learned codec before JPEG; Anchor 3 is no curve."""
    keys = [f"k{i:04d}" for i in range(IMAGES)]
    learned, jpeg = ("q1", "q4", "q8"), ("jpeg5", "jpeg20", "jpeg60")
    cells = [("Anchor 3", None, "original", 3.0, 0.9)]
    cells += [("Comp.", "learned", *p) for p in zip(learned, BPP_A, ACC_A, strict=True)]
    cells += [("Anchor 2", "learned", *p) for p in zip(learned, BPP_A, ACC_A - 0.1, strict=True)]
    cells += [("Anchor 2", "jpeg", *p) for p in zip(jpeg, BPP_B, ACC_B, strict=True)]
    results, frames = [], []
    for i, (method, codec, set_name, bpp, accuracy) in enumerate(cells):
        curve = method if codec in (None, "learned") else f"{method} (JPEG)"
        results.append({"method": method, "codec": codec, "curve": curve, "set": set_name,
                        "bpp": bpp})
        frames.append(pd.DataFrame({"curve": curve, "set": set_name, "key": keys,
                                    "top1": hits([accuracy], i)[0]}))
    table = bd_table(pd.DataFrame(results), pd.concat(frames), resamples=200)
    pairs = list(zip(table["curve"], table["reference"], strict=True))
    assert pairs == [("Comp.", "Anchor 2"), ("Comp.", "Anchor 2 (JPEG)"),
                     ("Anchor 2", "Anchor 2 (JPEG)")]
    bd = dict(zip(pairs, table["bd_top1"], strict=True))
    assert bd[("Comp.", "Anchor 2")] == pytest.approx(0.1, abs=1e-12)
    assert bd[("Comp.", "Anchor 2 (JPEG)")] == pytest.approx(-0.05, abs=1e-12)
    assert bd[("Anchor 2", "Anchor 2 (JPEG)")] == pytest.approx(-0.15, abs=1e-12)
    assert (table["bd_top1_low"] < table["bd_top1"]).all()
    assert (table["bd_top1"] < table["bd_top1_high"]).all()


def test_with_two_seeds_bd_reads_the_mean_curve_and_the_interval_holds_the_seeds_spread():
    a = Curve("Anchor 2", ("q1", "q4", "q8"), BPP_A, hits(ACC_A, 0)[None])
    sets = ("jpeg5", "jpeg20", "jpeg60")
    one = Curve("Anchor 2 (JPEG)", sets, BPP_B, hits(ACC_B, 1)[None])
    # two trainings 6 points apart whose mean is the one-seed curve
    two = Curve("Anchor 2 (JPEG)", sets, BPP_B,
                np.stack([hits(ACC_B + 0.03, 1), hits(ACC_B - 0.03, 2)]))
    [single] = compare([one, a], resamples=500).to_dict("records")
    [seeded] = compare([two, a], resamples=500).to_dict("records")
    assert seeded["bd_top1"] == pytest.approx(0.05, abs=1e-12) == single["bd_top1"]
    assert (seeded["seeds"], seeded["reference_seeds"]) == (2, 1)
    width = {k: r["bd_top1_high"] - r["bd_top1_low"] for k, r in (("1", single), ("2", seeded))}
    assert width["2"] > width["1"] + 0.03  # a resample drawing one seed twice moves 3 points
