"""Accuracy with its uncertainty, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: sound near 0 and 1, unlike p +- z*se."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials ** 2))
    # at 0 or n right an end is exactly 0 or 1 (centre - half rounds to 2.8e-17 for 0 of 7)
    return (0.0 if successes == 0 else max(0.0, centre - half),
            1.0 if successes == trials else min(1.0, centre + half))


def accuracy(labels: np.ndarray, top: np.ndarray) -> dict[str, float]:
    """Top-1 and Top-5 (top: predicted classes, best first) with 95% Wilson intervals."""
    n = len(labels)
    result: dict[str, float] = {"samples": n}
    for k in (1, 5):
        hits = int((top[:, :k] == labels[:, None]).any(axis=1).sum())
        low, high = wilson_interval(hits, n)
        result |= {f"top{k}": hits / n, f"top{k}_low": low, f"top{k}_high": high}
    return result


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def per_class_accuracy(counts: np.ndarray) -> np.ndarray:
    """Recall of each true class (NaN for a class with no samples)."""
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)
