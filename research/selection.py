"""Choose a recipe on a selection set by a rule fixed before the runs, then read the test split.

    python -m research.study --experiment demo --seeds 3 --selection data/demo-selection \
        --rows anchor2 transplant-res-lr-0.001 transplant-res transplant-anchor2-seed
    python -m research.selection runs/study/demo-textures --incumbent transplant-res-lr-0.001 \
        --challengers transplant-res transplant-anchor2-seed

The selection set is images of the task that no run trains on (`--selection` of the study: for
the demo, synthetic textures of another seed, 300 a class against the validation split's 10): big
enough that the rows' differences stand out of its noise. The rule (RULE) reads only the
selection set's per-image hits; the test split's figures are computed after the choice and shown
beside it, for the record, not for choosing.

Where no image is spare (the photographs), k-fold cross-validation: one study a fold of a
prep.datasets.folds root (`--split F`), each fold's test split its held-out images, and their
studies given together:

    python -m research.selection runs/study-folds/split{1,2,3}/minc-subset-folds \
        --incumbent transplant-res --challengers transplant-res-up

The selection images are then every train and validation image of the source split, each scored
by the fold's classifier that did not train on it (folds); no test split is read.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import bd
from evaluation.report import EXTRA
from foundation.cli import stage_main
from research.study import HITS, RESULTS, SELECTION

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


def folds(studies: list[tuple[pd.DataFrame, pd.DataFrame]], rows: list[str]
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The results and hits of one study of `rows` on the selection images from the studies of
    the k folds (each the results and hits of a study of one fold: its test split the fold's
    held-out images): per row, set and seed the folds' test images together (their keys
    disjoint, every train and validation image once, scored by the fold's run that did not train
    on it) as the selection split, its Top-1 and mean bpp over all of them; no test split."""
    results, hits, runs = [], [], None
    for fold, (found, scored) in enumerate(studies, 1):
        if {"extra_top1", f"{EXTRA}_top1"} & set(found):  # either name a study gave it
            raise ValueError(f"fold {fold}'s study scored the evaluation-only set (test images, "
                             "read after the choice): run its study again with --extra-test "
                             "\"\" (--no-train: no run is trained again)")
        found = found[found["row"].isin(rows)]
        mine = set(zip(found["row"], found["set"], found["seed"], strict=True))
        if runs is None and set(rows) - set(found["row"]):
            raise ValueError(f"fold 1's study has no runs of rows "
                             f"{', '.join(sorted(set(rows) - set(found['row'])))}")
        if runs is not None and runs != mine:
            raise ValueError(f"fold {fold}'s study differs from fold 1's in the runs of rows "
                             f"{', '.join(rows)}: {sorted(runs ^ mine)} (run every row, set "
                             "and seed in every fold)")
        runs = mine
        results.append(found.assign(fold=fold))
        hits.append(scored[(scored["split"] == "test") & scored["row"].isin(rows)]
                    .assign(split=SELECTION, fold=fold))
    hits = pd.concat(hits, ignore_index=True)
    owners = hits.drop_duplicates(["key", "fold"])
    if owners["key"].duplicated().any():
        key = owners.loc[owners["key"].duplicated(), "key"].iloc[0]
        raise ValueError(f"image {key} is held out in two of the studies: give the studies of "
                         "the folds of one prep.datasets.folds root, one each")
    results = pd.concat(results, ignore_index=True)
    cell = ["row", "set", "seed"]
    results = results.assign(coded=results["bpp"] * results["samples"]).groupby(cell).agg(
        coded=("coded", "sum"), samples=("samples", "sum"), folds=("fold", "nunique"))
    scored = hits.groupby(cell)["top1"].agg(["mean", "size"])
    results = results.assign(bpp=results["coded"] / results["samples"],
                             **{f"{SELECTION}_top1": scored["mean"],
                                f"{SELECTION}_samples": scored["size"]})
    return results.drop(columns=["coded", "samples"]).reset_index(), hits.drop(columns="fold")


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
    """The choice, then per row its selection and (read after) test figures side by side; the
    folds' (no test split read: results without `top1`) the selection figures alone."""
    rows = [decision.incumbent, *challengers]
    tested = "top1" in results
    test = bd.compare(row_curves(results, hits, [*rows, reference], "test")) if tested else None
    sets = list(results.groupby("set")["bpp"].mean().sort_values().index)
    lines = ["| row | " + " | ".join(f"selection {s}" for s in sets)
             + f" | selection BD vs {reference} | selection BD vs {decision.incumbent} |"
             + (" " + " | ".join(f"test {s}" for s in sets) + f" | test BD vs {reference} |"
                if tested else ""),
             "|---|" + "---:|" * ((2 if tested else 1) * len(sets) + (3 if tested else 2))]
    for row in rows:
        mine = results[results["row"] == row].groupby("set")
        against = ("" if row == decision.incumbent
                   else _bd(pair(decision.selection, row, decision.incumbent)))
        lines.append(
            f"| {row} | " + " | ".join(f"{100 * mine[f'{SELECTION}_top1'].mean()[s]:.1f}"
                                       for s in sets)
            + f" | {_bd(pair(decision.selection, row, reference))} | {against} |"
            + (" " + " | ".join(f"{100 * mine['top1'].mean()[s]:.1f}" for s in sets)
               + f" | {_bd(pair(test, row, reference))} |" if tested else ""))
    first = results.iloc[0]
    seeds = results.groupby("row")["seed"].nunique().min()
    verdict = (f"**Adopted: {decision.adopted}**" + (
        " (the adopted row stays: no challenger's interval against it lies above 0)."
        if decision.adopted == decision.incumbent else
        f", in place of {decision.incumbent}."))
    where = (f"on the selection set ({int(first[f'{SELECTION}_samples'])} images a quality) and "
             f"on the test split ({int(first['samples'])} images, read after the choice)"
             if tested else
             f"on the selection images: the held-out images of {int(first['folds'])} folds "
             f"({int(first[f'{SELECTION}_samples'])} a quality, every train and validation "
             "image once), each scored by the fold's classifier that did not train on it")
    note = ("" if tested else " No test split was read: the pipeline's report reads it after "
            "the choice.")
    return (f"{RULE}\n\n{verdict}\n\nTop-1 in % (the mean over {seeds} "
            f"seed{'s' if tested or seeds > 1 else ''}) {where}; BD in points with its 95% "
            f"bootstrap interval.{note}\n\n" + "\n".join(lines) + "\n")


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m research.selection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", type=Path, nargs="+", metavar="study",
                   help=f"the study's output folder ({RESULTS}, {HITS}); several: the studies "
                   "of the k folds of a prep.datasets.folds root, one each")
    p.add_argument("--incumbent", required=True, help="the row the experiment has adopted")
    p.add_argument("--challengers", nargs="+", required=True)
    p.add_argument("--reference", default=REFERENCE)
    p.add_argument("--out", type=Path, default=None,
                   help="where selection.md goes (default: the study folder; the folds' "
                   "studies: the folder that holds them all)")
    args = p.parse_args(argv)
    studies = [(pd.read_csv(s / RESULTS), pd.read_parquet(s / HITS)) for s in args.studies]
    if len(studies) > 1:
        results, hits = folds(studies, [*args.challengers, args.incumbent, args.reference])
    else:
        [(results, hits)] = studies
        if f"{SELECTION}_top1" not in results:
            raise ValueError(f"{args.studies[0] / RESULTS} has no selection scores: run the "
                             "study with --selection <images never trained on>, or give the "
                             "studies of every fold of a prep.datasets.folds root")
    decision = decide(results, hits, args.incumbent, args.challengers, args.reference)
    text = markdown(decision, results, hits, args.challengers, args.reference)
    out = args.out or Path(os.path.commonpath([s.resolve() for s in args.studies]))
    out.mkdir(parents=True, exist_ok=True)
    out.joinpath("selection.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
