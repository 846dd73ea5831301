"""Accuracy, its 95% interval, per-class accuracy and confusion counts."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from evaluation.metrics import accuracy, confusion, per_class_accuracy, wilson_interval


@pytest.mark.parametrize("hits, n, low, high", [
    (50, 100, 0.4038, 0.5962),  # textbook values of the Wilson score interval
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (4686, 5750, 0.8047, 0.8248),  # the paper's Anchor 3: 81.50% of 23 x 250 test images
])
def test_wilson_interval_matches_known_values(hits, n, low, high):
    got = wilson_interval(hits, n)
    assert got == pytest.approx((low, high), abs=1e-4)


Z = NormalDist().inv_cdf(0.975)  # the two-sided 95% quantile, not the module's constant


def score_roots(hits: int, n: int) -> np.ndarray:
    """The Wilson interval from its definition, by another road than the module's closed form:
    the proportions pi where the score statistic (p - pi) / sqrt(pi (1 - pi) / n) is +-z, the
    roots of (1 + z^2/n) pi^2 - (2p + z^2/n) pi + p^2 = 0."""
    p = hits / n
    return np.sort(np.roots([1 + Z * Z / n, -(2 * p + Z * Z / n), p * p]).real)


@pytest.mark.parametrize("hits, n", [(0, 10), (1, 10), (3, 7), (10, 10), (50, 100), (81, 100),
                                     (999, 1000), (4686, 5750)])
def test_wilson_interval_is_where_the_score_test_meets_z(hits, n):
    low, high = wilson_interval(hits, n)
    assert (low, high) == pytest.approx(tuple(score_roots(hits, n)), abs=1e-9)
    p = hits / n
    for bound in (low, high):
        if 1e-9 < bound < 1 - 1e-9:  # at 0 and 1 (none but rounding) the statistic is 0/0
            assert abs(p - bound) / math.sqrt(bound * (1 - bound) / n) == pytest.approx(Z, rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 7, 20, 100])
def test_the_interval_holds_its_estimate_and_is_symmetric(n):
    assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0  # exactly
    for hits in range(n + 1):
        low, high = wilson_interval(hits, n)
        assert 0 <= low <= hits / n + 1e-12 and hits / n - 1e-12 <= high <= 1, (hits, n)
        # never narrower than at 0 or n right, where p (1 - p) = 0: z^2 / (n + z^2)
        assert high - low >= Z * Z / (n + Z * Z) - 1e-12, (hits, n)
        mirrored = wilson_interval(n - hits, n)  # k of n right is n - k of n wrong
        assert (low, high) == pytest.approx((1 - mirrored[1], 1 - mirrored[0]), abs=1e-12)
    if n % 2 == 0:  # one half: centred on 0.5
        low, high = wilson_interval(n // 2, n)
        assert (low + high) / 2 == pytest.approx(0.5, abs=1e-12)


def test_the_interval_narrows_as_one_over_root_n():
    # p = 0.8 at n = 25, 100, ..., 25600: the width is 2 z sqrt(p (1 - p) / n) (1 - 0.84/n + ...),
    # so quadrupling n halves it, within 1% from n = 100 on
    widths = []
    for n in (25 * 4 ** i for i in range(6)):
        low, high = wilson_interval(round(0.8 * n), n)
        widths.append(high - low)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False)), widths
    for wider, narrower in zip(widths[1:], widths[2:], strict=False):
        assert narrower / wider == pytest.approx(0.5, rel=0.01), widths


def test_one_point_is_within_noise_at_the_papers_test_size():
    # the paper's Anchor 3, 81.50% of 5,750 test images: the 95% interval is +-1 point (Wald's
    # z sqrt(p (1 - p) / n) = 1.004 points; Wilson's half-width within 0.1% of it at this n, its
    # centre 0.02 points nearer one half: 1.03 points below p, 0.98 above)
    n, hits = 5750, 4686
    p = hits / n
    low, high = wilson_interval(hits, n)
    assert (high - low) / 2 == pytest.approx(Z * math.sqrt(p * (1 - p) / n), rel=0.01)
    assert 0.0095 < p - low < 0.0105 and 0.0095 < high - p < 0.0105
    # so a classifier one point better on the same number of images is not told apart by the
    # intervals: they overlap (the point: +-1 point differences are not significant)
    better_low, _ = wilson_interval(hits + round(0.01 * n), n)
    assert better_low < high


def test_accuracy_counts_top1_and_top5():
    labels = np.array([0, 1, 2, 3])
    top = np.array([[0, 1, 2, 3, 4], [2, 1, 0, 3, 4], [5, 6, 7, 8, 9], [3, 0, 1, 2, 4]])
    result = accuracy(labels, top)
    assert result["top1"] == 0.5 and result["top5"] == 0.75 and result["samples"] == 4
    assert result["top1_low"] < 0.5 < result["top1_high"]


def test_confusion_and_per_class_accuracy():
    counts = confusion(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), num_classes=3)
    assert counts.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    recall = per_class_accuracy(counts)
    assert recall[:2].tolist() == [0.5, 2 / 3] and math.isnan(recall[2])
