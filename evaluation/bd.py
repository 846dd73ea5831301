"""BD-accuracy: one number per pair of accuracy-rate curves, with a bootstrap interval.

Bjontegaard's delta with Top-1 accuracy in place of PSNR: fit each curve's accuracy against
log10(bpp) with a piecewise cubic Hermite interpolant (PCHIP, the `pchip` of the bjontegaard
package and of JVET's current common test conditions; it needs only two points and never
overshoots, where Bjontegaard's cubic polynomial needs four), integrate both over their common
log-bpp range and divide by its length: the mean accuracy difference at equal rate, in points.

The interval resamples the test images with replacement, the same draw for every point of
every curve (the curves are measured on the same images, so their differences are paired),
and recomputes each point's accuracy from the per-image predictions; the rates stay fixed.
With several training seeds a point is the mean over its seeds (the mean curve), and each
resample also draws every curve's seeds with replacement (a curve's draw for all its points;
the seeds of different curves are different trainings), so the interval holds both the test
images' and the seeds' variation. One seed gives exactly the single-seed numbers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from classifier.methods import ANCHOR1, ANCHOR2, ANCHOR2_EQUAL, COMP, COMP_INPUTS, COMP_RATES
from foundation.sets import CODECS

RESAMPLES = 2000
LEVEL = 0.95


def _mean_over(log_rate: np.ndarray, accuracy: np.ndarray, low: float, high: float) -> np.ndarray:
    """Mean of the PCHIP fit over [low, high]; accuracy is (points,) or (points, resamples)."""
    fit = PchipInterpolator(log_rate, accuracy, axis=0, extrapolate=False)
    return fit.integrate(low, high) / (high - low)


def _log_rates(bpp) -> np.ndarray:
    rates = np.asarray(bpp, dtype=np.float64)
    if len(rates) < 2 or np.any(rates <= 0) or np.any(np.diff(rates) <= 0):
        raise ValueError(f"a curve needs two or more points of increasing positive bpp, got "
                         f"{rates.tolist()}")
    return np.log10(rates)


def common_range(bpp_a, bpp_b) -> tuple[float, float] | None:
    """The bpp range both curves span, or None where they do not overlap."""
    low, high = max(min(bpp_a), min(bpp_b)), min(max(bpp_a), max(bpp_b))
    return (low, high) if high > low else None


def bd_accuracy(bpp_ref, acc_ref, bpp, acc) -> np.ndarray | float:
    """Mean of (curve - reference) over the common bpp range; NaN where there is none.

    Points sorted by increasing bpp; accuracies (points,) or (points, resamples) for many
    curves at once (then one value per resample)."""
    x_ref, x = _log_rates(bpp_ref), _log_rates(bpp)
    span = common_range(x_ref, x)
    if span is None:
        return math.nan
    return _mean_over(x, np.asarray(acc, float), *span) - _mean_over(
        x_ref, np.asarray(acc_ref, float), *span)


@dataclass(frozen=True)
class Curve:
    """A method on one codec's sets: points by increasing bpp, Top-1 hits per test image."""

    name: str
    sets: tuple[str, ...]
    bpp: np.ndarray  # (points,)
    hits: np.ndarray  # (seeds, points, images), bool, images in one shared key order

    @property
    def accuracy(self) -> np.ndarray:
        """(points,): the mean over the seeds and the images."""
        return self.hits.mean(axis=(0, 2))

    @property
    def seeds(self) -> int:
        return self.hits.shape[0]


def _order(method: str, codec: str) -> tuple[int, int]:
    """Pairs read as `earlier minus later`: the compressed domain before the pixel anchors,
    retrained before not retrained, the learned codec before the classical ones."""
    methods = (COMP, COMP_RATES, COMP_INPUTS["y"], COMP_INPUTS["sigma"], ANCHOR2_EQUAL, ANCHOR2,
               ANCHOR1)
    return CODECS.index(codec), methods.index(method)


def curves(results: pd.DataFrame, hits: pd.DataFrame) -> tuple[list[Curve], int]:
    """Every coded curve with two or more points, on the test images all of them share; and
    how many images that is. results: evaluate's table (method, codec, curve, set, bpp, seed:
    a row per cell and seed); hits: its HITS (curve, set, seed, key, top1). A curve keeps the
    seeds every one of its points has."""
    if "seed" not in hits.columns:
        results, hits = results.assign(seed=0), hits.assign(seed=0)
    coded = results[results["codec"].notna()].sort_values(["bpp", "seed"])
    points = coded.drop_duplicates(["curve", "set"])
    counts = points["curve"].value_counts()
    points = points[points["curve"].map(counts) >= 2]
    cells = {name: group.set_index("key")["top1"]
             for name, group in hits.groupby(["curve", "set", "seed"], sort=False)}
    shared = [set(cells[(row.curve, row.set, row.seed)].index) for row in
              coded[coded["curve"].isin(points["curve"])].itertuples()]
    order = sorted(set.intersection(*shared)) if shared else []
    found = []
    for name, rows in sorted(points.groupby("curve", sort=False),
                             key=lambda g: _order(g[1]["method"].iloc[0], g[1]["codec"].iloc[0])):
        seeds = sorted(set.intersection(*(set(coded.loc[(coded["curve"] == name) & (
            coded["set"] == s), "seed"]) for s in rows["set"])))
        matrix = [[cells[(name, s, seed)].loc[order].to_numpy(bool) for s in rows["set"]]
                  for seed in seeds]
        found.append(Curve(name, tuple(rows["set"]), rows["bpp"].to_numpy(float),
                           np.array(matrix).reshape(len(seeds), len(rows), len(order))))
    return found, len(order)


def bootstrap_accuracy(curve: Curve, draws: np.ndarray, seed_draws: np.ndarray) -> np.ndarray:
    """(points, resamples): each point's accuracy on each resample of the images (draws:
    resamples x images) and of the curve's seeds (seed_draws: resamples x seeds)."""
    per_seed = np.stack([np.stack([hits[draws].mean(axis=1) for hits in points])
                         for points in curve.hits])  # (seeds, points, resamples)
    resamples = np.arange(draws.shape[0])
    return np.mean([per_seed[seed_draws[:, k], :, resamples].T
                    for k in range(seed_draws.shape[1])], axis=0)


def compare(curve_list: list[Curve], resamples: int = RESAMPLES, level: float = LEVEL,
            seed: int = 0) -> pd.DataFrame:
    """BD-accuracy of every pair (the earlier curve minus the later one, in Top-1 points of
    0..1), its bootstrap interval and the common bpp range; one row per pair."""
    images = curve_list[0].hits.shape[2] if curve_list else 0
    draws = np.random.default_rng(seed).integers(0, images, size=(resamples, images))
    seed_rng = np.random.default_rng([seed, 1])  # apart: the image draws stay those of one seed
    resampled = {c.name: bootstrap_accuracy(c, draws, seed_rng.integers(
        0, c.seeds, size=(resamples, c.seeds))) for c in curve_list} if images else {}
    rows = []
    for a, b in itertools.combinations(curve_list, 2):
        span = common_range(a.bpp, b.bpp)
        value = bd_accuracy(b.bpp, b.accuracy, a.bpp, a.accuracy)
        low = high = math.nan
        if span is not None and images:
            spread = bd_accuracy(b.bpp, resampled[b.name], a.bpp, resampled[a.name])
            low, high = np.quantile(spread, [(1 - level) / 2, (1 + level) / 2])
        rows.append({"curve": a.name, "reference": b.name, "bd_top1": value,
                     "bd_top1_low": float(low), "bd_top1_high": float(high),
                     "bpp_low": span[0] if span else math.nan,
                     "bpp_high": span[1] if span else math.nan,
                     "points": len(a.bpp), "reference_points": len(b.bpp), "images": images,
                     "seeds": a.seeds, "reference_seeds": b.seeds,
                     "resamples": resamples, "fit": "pchip of Top-1 on log10(bpp)"})
    return pd.DataFrame(rows)


def bd_table(results: pd.DataFrame, hits: pd.DataFrame, **kw) -> pd.DataFrame:
    """evaluate's results and hits -> one row per pair of curves (see compare)."""
    found, _ = curves(results, hits)
    return compare(found, **kw)
