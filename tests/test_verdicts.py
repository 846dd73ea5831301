"""The verdicts' rules at their boundaries, and the paired bootstrap against what pairing means."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.verdicts import (
    AHEAD,
    DIFFERS,
    FAR_BEHIND,
    HOLDS,
    INCONCLUSIVE,
    MIN_DROP,
    Gap,
    anchor1_drop,
    anchor2_recovery,
    comp_against_pixels,
    contrast,
    difference,
)


def test_finding3_at_each_boundary():
    assert comp_against_pixels(Gap(-0.03, -0.0699, 0.01)) == HOLDS  # level, within 7
    assert comp_against_pixels(Gap(-0.03, -0.0699, -0.001)) == HOLDS  # behind, within 7
    assert comp_against_pixels(Gap(-0.05, -0.0701, -0.03)) == INCONCLUSIVE
    assert comp_against_pixels(Gap(-0.10, -0.15, -0.0699)) == INCONCLUSIVE
    assert comp_against_pixels(Gap(-0.10, -0.15, -0.0701)) == FAR_BEHIND
    assert comp_against_pixels(Gap(0.02, 0.0001, 0.04)) == AHEAD
    assert comp_against_pixels(Gap(0.02, -0.0001, 0.04)) == HOLDS
    # the cases: 15 points on 180 and 15.7 on 134 images, Newcombe's wide intervals
    assert comp_against_pixels(Gap(-0.150, -0.239, -0.058)) == INCONCLUSIVE
    assert comp_against_pixels(Gap(-0.157, -0.26, -0.05)) == INCONCLUSIVE


def test_findings_1_and_2_at_their_sizes():
    assert anchor1_drop(Gap(0.08, MIN_DROP + 1e-4, 0.1)) == HOLDS
    assert anchor1_drop(Gap(0.05, 0.01, MIN_DROP + 1e-4)) == INCONCLUSIVE
    assert anchor1_drop(Gap(0.02, -0.01, MIN_DROP - 1e-4)) == DIFFERS
    assert anchor2_recovery(Gap(0.02, 0.001, 0.04)) == HOLDS
    assert anchor2_recovery(Gap(0.0, -0.01, 0.01)) == INCONCLUSIVE
    assert anchor2_recovery(Gap(-0.03, -0.05, -0.001)) == DIFFERS


def cell(right: np.ndarray, seeds: int = 1) -> np.ndarray:
    return np.tile(right, (seeds, 1))


def test_the_value_is_the_difference_of_the_mean_top1():
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 200)) < 0.8, rng.random((2, 200)) < 0.6
    assert difference(a, b).value == pytest.approx(a.mean() - b.mean())
    g = contrast([a, b, a], [1.0, -0.5, -0.5])
    assert g.value == pytest.approx(0.5 * (a.mean() - b.mean()))
    assert g.low < g.value < g.high


def test_pairing_narrows_the_interval_of_classifiers_that_agree():
    n = 400
    a = np.arange(n) < 320  # 80%
    b = np.arange(n) < 280  # 70%, its right images among a's: they disagree on 40 images
    paired = difference(cell(a), cell(b))
    # the same accuracies with b's right images apart from a's
    apart = difference(cell(a), cell(np.random.default_rng(0).permutation(b)))
    assert paired.value == pytest.approx(0.1) and apart.value == pytest.approx(0.1)
    # paired: the 40 discordant images decide, sd = sqrt(0.1 * 0.9 / 400) = 0.015
    assert paired.high - paired.low == pytest.approx(2 * 1.96 * 0.015, rel=0.15)
    # apart: sd = sqrt((0.8 * 0.2 + 0.7 * 0.3 - 2 cov) / 400), at least 0.025 with cov <= 0.02
    assert apart.high - apart.low > 1.5 * (paired.high - paired.low)


def test_seeds_that_disagree_widen_the_interval():
    n = 300
    a = np.arange(n) < 240
    spread = np.stack([np.arange(n) < k for k in (210, 240, 270)])  # 70, 80, 90%
    one = difference(cell(a, 3), cell(a, 3))
    several = difference(spread, cell(a, 3))
    assert one.value == several.value == 0
    assert one.low == one.high == 0  # the same hits: no noise at all
    assert several.low < -0.02 and several.high > 0.02


def test_cells_on_other_images_cannot_be_paired():
    with pytest.raises(ValueError, match="same test images"):
        difference(np.ones((1, 10), bool), np.ones((1, 12), bool))
