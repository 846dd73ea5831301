"""Several training seeds of one cell: the cell over its seeds, a study row over its seeds.
Where each seed's run lives is classifier.run_folder's."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evaluation.bd import bd_accuracy
from evaluation.metrics import wilson_interval
from foundation.sets import SetId

CELL = ["method", "set"]  # a table cell: one per method and set, whatever the seeds
STUDY_REFERENCE = "anchor2"  # the study's row every BD is measured against


def seeds_range(low: float, high: float, signed: bool = False) -> str:
    """A range over seeds (0..1 values in points), never in brackets: brackets are a 95%
    interval."""
    return (f"seeds {100 * low:+.1f} to {100 * high:+.1f}" if signed else
            f"seeds {100 * low:.1f}-{100 * high:.1f}")


def over_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell from one row per cell and seed: Top-1/Top-5 the mean over the seeds,
    `_low/_high` the 95% Wilson interval of that mean over the test images, `_min/_max` the
    range over the seeds, `seeds` how many; the set's columns (bpp, ...) from the first seed.
    With one seed the values are that seed's."""
    if "seed" not in results.columns:
        results = results.assign(seed=0)
    rows = []
    for _, group in results.sort_values("seed", kind="stable").groupby(CELL, sort=False):
        row = group.iloc[0].to_dict()
        n = int(row["samples"])
        for k in ("top1", "top5"):
            mean = float(group[k].mean())
            low, high = wilson_interval(mean * n, n)
            row |= {k: mean, f"{k}_low": low, f"{k}_high": high, f"{k}_min": group[k].min(),
                    f"{k}_max": group[k].max()}
        rows.append(row | {"seeds": len(group), "seed": ",".join(map(str, group["seed"]))})
    cells = pd.DataFrame(rows)
    cells["quality"] = cells["quality"].astype("Int64")
    return cells


@dataclass(frozen=True)
class RowResult:
    """One row of a source on one metric (top1, val_top1, extra_top1): per set its mean over
    the seeds, their min and max and how many; the BD against the mean Anchor 2 curve with the
    range of the per-seed BDs (each seed's curve against that mean): research.study.summary."""

    cells: dict[str, tuple[float, float, float, int]]
    seeds: int
    bd: tuple[float, float, float] | None


def row_result(runs: pd.DataFrame, row: str, metric: str = "top1") -> RowResult:
    if metric not in runs:
        return RowResult({}, 0, None)
    results = runs.dropna(subset=[metric])
    group = results[results["row"] == row]
    per_set = group.groupby("set")[metric]
    cells = {s: (per_set.mean()[s], per_set.min()[s], per_set.max()[s], per_set.count()[s])
             for s in per_set.mean().index}
    coded = [s for s in results["set"].unique() if SetId.parse(s).coded]
    reference = results[results["row"] == STUDY_REFERENCE].groupby("set")[["bpp", metric]].mean()
    bd = None
    if row != STUDY_REFERENCE and len(reference) >= 2 and set(coded) <= set(group["set"]):
        ref = reference.loc[coded].sort_values("bpp")
        curve = group.groupby("set")[["bpp", metric]].mean().loc[ref.index]
        per_seed = [bd_accuracy(ref["bpp"], ref[metric], ref["bpp"],
                                g.set_index("set").loc[ref.index, metric])
                    for _, g in group.groupby("seed") if set(coded) <= set(g["set"])]
        bd = (float(bd_accuracy(ref["bpp"], ref[metric], curve["bpp"], curve[metric])),
              float(min(per_seed)), float(max(per_seed)))
    return RowResult(cells, group["seed"].nunique(), bd)
