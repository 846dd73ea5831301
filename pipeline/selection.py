"""Choose a recipe on a selection set by a rule fixed before the runs, then read the test split.

    python -m pipeline.study --experiment demo --seeds 3 --selection data/demo-selection \
        --rows anchor2 transplant-res-lr-0.001 transplant-res transplant-anchor2-seed
    python -m pipeline.selection runs/study/demo-textures --incumbent transplant-res-lr-0.001 \
        --challengers transplant-res transplant-anchor2-seed

The selection set is images of the task that no run trains on (`--selection` of the study: for
the demo, synthetic textures of another seed, 300 a class against the validation split's 10): big
enough that the rows' differences stand out of its noise. The rule (RULE) reads only the
selection set's per-image hits; the test split's figures are computed after the choice and shown
beside it, for the record, not for choosing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import bd
from foundation.cli import stage_main
from pipeline.study import HITS, RESULTS, SELECTION

REFERENCE = "anchor2"
RULE = ("**The rule, fixed before the runs.** Each row is trained with the same seeds at every "
        "quality. Its score is the BD-accuracy of its mean curve over the seeds against the "
        f"`{REFERENCE}` row's, on the selection set. A challenger replaces the adopted row only "
        "where its BD against the adopted row on the selection set has its whole 95% interval "
        f"above 0 ({bd.RESAMPLES} bootstrap resamples of the selection images, the same draw "
        "for every curve, each row's seeds resampled); of several such challengers, the one "
        "with the highest BD. Otherwise the adopted row stays. The test split is read after the "
        "choice, for the record.")


@dataclass(frozen=True)
class Decision:
    adopted: str
    incumbent: str
    selection: pd.DataFrame  # bd.compare of the rows and the reference on the selection set


def row_curves(results: pd.DataFrame, hits: pd.DataFrame, rows: list[str], split: str
               ) -> list[bd.Curve]:
    """Each row's curve on one split: its sets by increasing bpp, its seeds' per-image hits
    on the images every run of these rows was scored on."""
    found = hits[(hits["split"] == split) & hits["row"].isin(rows)]
    keys = sorted(set.intersection(*(set(g["key"]) for _, g in
                                     found.groupby(["row", "set", "seed"]))))
    rates = results.groupby("set")["bpp"].mean().sort_values()
    curves = []
    for row in rows:
        mine = found[found["row"] == row]
        sets = [s for s in rates.index if s in set(mine["set"])]
        seeds = sorted(mine["seed"].unique())
        matrix = np.stack([np.stack([
            mine[(mine["set"] == s) & (mine["seed"] == seed)].set_index("key").loc[
                keys, "top1"].to_numpy(bool) for s in sets]) for seed in seeds])
        curves.append(bd.Curve(row, tuple(sets), rates[sets].to_numpy(float), matrix))
    return curves


def pair(table: pd.DataFrame, curve: str, reference: str) -> pd.Series:
    return table[(table["curve"] == curve) & (table["reference"] == reference)].iloc[0]


def decide(results: pd.DataFrame, hits: pd.DataFrame, incumbent: str,
           challengers: list[str], reference: str = REFERENCE) -> Decision:
    """RULE, on the selection set alone."""
    rows = [*challengers, incumbent, reference]
    table = bd.compare(row_curves(results, hits, rows, SELECTION))
    beating = [(pair(table, c, incumbent).bd_top1, c) for c in challengers
               if pair(table, c, incumbent).bd_top1_low > 0]
    return Decision(max(beating)[1] if beating else incumbent, incumbent, table)


def _bd(row: pd.Series) -> str:
    return (f"{100 * row.bd_top1:+.1f} [{100 * row.bd_top1_low:+.1f}, "
            f"{100 * row.bd_top1_high:+.1f}]")


def markdown(decision: Decision, results: pd.DataFrame, hits: pd.DataFrame,
             challengers: list[str], reference: str = REFERENCE) -> str:
    """The choice, then per row its selection and (read after) test figures side by side."""
    rows = [decision.incumbent, *challengers]
    test = bd.compare(row_curves(results, hits, [*rows, reference], "test"))
    sets = list(results.groupby("set")["bpp"].mean().sort_values().index)
    lines = ["| row | " + " | ".join(f"selection {s}" for s in sets)
             + f" | selection BD vs {reference} | selection BD vs {decision.incumbent} | "
             + " | ".join(f"test {s}" for s in sets) + f" | test BD vs {reference} |",
             "|---|" + "---:|" * (2 * len(sets) + 3)]
    for row in rows:
        mine = results[results["row"] == row].groupby("set")
        against = ("" if row == decision.incumbent
                   else _bd(pair(decision.selection, row, decision.incumbent)))
        lines.append(
            f"| {row} | " + " | ".join(f"{100 * mine[f'{SELECTION}_top1'].mean()[s]:.1f}"
                                       for s in sets)
            + f" | {_bd(pair(decision.selection, row, reference))} | {against} | "
            + " | ".join(f"{100 * mine['top1'].mean()[s]:.1f}" for s in sets)
            + f" | {_bd(pair(test, row, reference))} |")
    first = results.iloc[0]
    seeds = results.groupby("row")["seed"].nunique().min()
    verdict = (f"**Adopted: {decision.adopted}**" + (
        " (the adopted row stays: no challenger's interval against it lies above 0)."
        if decision.adopted == decision.incumbent else
        f", in place of {decision.incumbent}."))
    return (f"{RULE}\n\n{verdict}\n\nTop-1 in % (the mean over {seeds} seeds) on the selection "
            f"set ({int(first[f'{SELECTION}_samples'])} images a quality) and on the test split "
            f"({int(first['samples'])} images, read after the choice); BD in points with its 95% "
            "bootstrap interval.\n\n" + "\n".join(lines) + "\n")


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.selection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", type=Path, help=f"the study's output folder ({RESULTS}, {HITS})")
    p.add_argument("--incumbent", required=True, help="the row the experiment has adopted")
    p.add_argument("--challengers", nargs="+", required=True)
    p.add_argument("--reference", default=REFERENCE)
    p.add_argument("--out", type=Path, default=None,
                   help="where selection.md goes (default: the study folder)")
    args = p.parse_args(argv)
    results = pd.read_csv(args.study / RESULTS)
    if f"{SELECTION}_top1" not in results:
        raise ValueError(f"{args.study / RESULTS} has no selection scores: run the study with "
                         "--selection <images never trained on>")
    hits = pd.read_parquet(args.study / HITS)
    decision = decide(results, hits, args.incumbent, args.challengers, args.reference)
    text = markdown(decision, results, hits, args.challengers, args.reference)
    (args.out or args.study).joinpath("selection.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
