"""Several training seeds of one cell: where each seed's run lives and the cell over its seeds.

Seed 0 keeps the run folder a single-seed experiment always had (`<runs>/<dataset>/latent/q8`),
so runs made before seeds existed resume and count as seed 0; seed k > 0 trains beside it in
`<run folder>-seed<k>` (`latent/q8-seed1`, `original-seed1`).
"""

from __future__ import annotations

import pandas as pd

from evaluation.metrics import wilson_interval

CELL = ["method", "set"]  # a table cell: one per method and set, whatever the seeds


def suffix(seed: int) -> str:
    """What a seed adds to a run folder's or a cached prediction's name: nothing for seed 0."""
    return f"-seed{seed}" if seed else ""


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
