"""Accuracy, its 95% interval, per-class accuracy and confusion counts."""

from __future__ import annotations

import math

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


def test_one_point_is_within_noise_at_the_papers_test_size():
    low, high = wilson_interval(4686, 5750)
    assert high - low > 0.02  # the point: +-1 point differences are not significant


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
