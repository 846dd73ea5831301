"""The report of one dataset: Table 2, Figures 2 and 3, confusion matrices, BD-accuracy of every
pair of curves, the measured cost of compressed-domain inference, all under reports/<dataset>/
and in one MLflow parent run. This module runs the steps; `tables` writes the text, `examples`
picks Figure 2's images, `efficiency` measures the cost, and one `Catalogue` opens every shard
set once for all of them.

    python -m evaluation.report --shards data/shards/minc-2500 [--runs runs/train/minc-2500]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from classifier import run_folder
from classifier.domains import ORIGINAL
from evaluation import bd, efficiency, figures, seeds, tables, tracking, training_cost
from evaluation.catalogue import Catalogue
from evaluation.classifiers import find_classifiers, read_classifier
from evaluation.evaluate import (
    CONFUSION,
    HITS,
    LOADER_WORKERS,
    RESULTS,
    common_arguments,
    evaluate_all,
    evaluate_target,
    slug,
    targets,
)
from evaluation.examples import gather_examples
from foundation import storage
from foundation.cli import stage_main
from foundation.command_line import command_parser
from foundation.runtime import resolve_device
from foundation.storage import Location

log = logging.getLogger(__name__)

BD_RESULTS = tables.BD_RESULTS
TABLE, EXTRA = tables.TABLE, tables.EXTRA
SETTINGS = tracking.SETTINGS


def write_report(root: Location, runs: str | Path, out: str | Path, device: str = "cpu",
                 min_seconds: float = 2.0, log_mlflow: bool = True, experiment: str = "classifiers",
                 extra: Location | None = None, extra_label: str | None = None,
                 settings: str | None = None) -> Path:
    """extra: the shards of an evaluation-only set (never trained on), evaluated beside the
    run's own test split with its labels mapped by class name; extra_label names it.
    settings: the experiment that made the runs, as its TOML (pipeline.experiment), kept in
    the report (SETTINGS) and on its MLflow parent run."""
    catalogue, out = Catalogue(root), Path(out)
    dataset = catalogue.dataset
    classifiers = find_classifiers(runs)
    inits = defaultdict(set)  # start -> the methods trained from it
    for c in classifiers:
        if not c.config.distill:
            inits[start_name(c.config.init)].add(c.trained_method)
    taught = any(c.config.distill for c in classifiers)
    transplanted = any(run_folder.is_transplant_start(c.config.init) for c in classifiers)
    original = catalogue.shard_set(ORIGINAL.name)
    names = list(original.info["categories"])
    own = _evaluate(catalogue, classifiers, out, device, names)
    results, cells, bd_results = own[RESULTS], own[TABLE], own[BD_RESULTS]
    qualities = catalogue.qualities()
    for metric in ("top1", "top5"):
        figures.figure3(cells, out / f"figure3_{metric}.png", metric, dataset)
    examples = gather_examples(catalogue, qualities)
    if examples:
        figures.figure2(examples, qualities, out / "figure2.png", dataset)
    confusion_figures(cells, own[CONFUSION], names, out / "confusion")
    inference = efficiency.measure_efficiency(catalogue, classifiers, qualities,
                                              torch.device(device), min_seconds)
    inference.to_csv(out / "efficiency.csv", index=False)
    table = tables.table2(cells, dataset, _present(catalogue, original), len(names))
    cost = training_cost.training_cost(catalogue, classifiers, taught or transplanted)
    cost.to_csv(out / f"{training_cost.COST}.csv", index=False)
    sections = [f"# Report: {dataset}\n", table, training_cost.cost_markdown(cost),
                tables.pattern(cells, own[HITS], inits, bd_results, taught=taught,
                               transplanted=transplanted),
                "![Figure 3, Top-1](figure3_top1.png)\n\n![Figure 3, Top-5](figure3_top5.png)\n"
                + figures.SEEDS_NOTE * bool(cells["seeds"].max() > 1),
                tables.bd_markdown(bd_results)]
    held_out = None
    if extra is not None:
        label = extra_label or storage.name(extra)
        extra_catalogue = Catalogue(extra)
        held_out = _evaluate(extra_catalogue, classifiers, out / EXTRA, device, names)
        where = f"evaluation-only set `{label}` (never trained on)"
        present = _present(extra_catalogue, extra_catalogue.shard_set(ORIGINAL.name))
        extra_table = tables.table2(held_out[TABLE], dataset, present, len(names), where)
        (out / EXTRA / "table2.md").write_text(extra_table)
        sections += [extra_table, tables.pattern(held_out[TABLE], held_out[HITS], inits,
                                                 held_out[BD_RESULTS], where, taught,
                                                 transplanted),
                     tables.bd_markdown(held_out[BD_RESULTS], where)]
    sections.append(tables.efficiency_markdown(inference,
                                               efficiency.device_name(torch.device(device))))
    if examples:
        sections.append("## Figure 2: examples\n\n![Figure 2](figure2.png)\n")
    if dataset.startswith("minc-2500") and _present(catalogue, original) == len(names):
        sections.append(tables.paper_comparison(cells))  # all 23 classes
    sections.append(tables.unfinished(classifiers))
    if settings is not None:
        (out / SETTINGS).write_text(settings)
        sections.append(f"## The experiment ({SETTINGS})\n\n```toml\n{settings.strip()}\n```\n")
    report = out / "README.md"
    (out / "table2.md").write_text(table)
    report.write_text("\n".join(s for s in sections if s))
    if log_mlflow:  # a tracking server that does not answer is one line, not a failed report
        run_id = tracking.log_or_keep(experiment, dataset, cells, results, out, bd_results,
                                      held_out and {k: held_out[k] for k in (TABLE, BD_RESULTS)})
        if run_id:
            print(f"MLflow: parent run {run_id} in experiment {experiment!r}")
    return report


def evaluate_classifier(root: Location, checkpoint: Path, out: str | Path, device: str = "cpu",
                        extra: Location | None = None) -> int:
    """One classifier's cells as write_report evaluates them (the same targets, label space,
    loader workers and caches under `out`, the report's folder), so that a classifier is
    evaluated as soon as it is trained and the report reads its predictions; the cells."""
    catalogue, out = Catalogue(root), Path(out)
    names = list(catalogue.shard_set(ORIGINAL.name).info["categories"])
    classifier = [read_classifier(Path(checkpoint))]
    cells = [(catalogue, out, t) for t in targets(classifier, catalogue.prepared_sets())]
    if extra is not None:
        other = Catalogue(extra)
        cells += [(other, out / EXTRA, t) for t in targets(classifier, other.prepared_sets())]
    for where, folder, target in cells:
        evaluate_target(target, where, "test", folder, torch.device(device), LOADER_WORKERS,
                        names)
    return len(cells)


def start_name(init: str) -> str:
    """A start as the report names it: the transplanted Comp.'s starts, one per set and seed,
    as one."""
    return run_folder.transplant_starts(init) if run_folder.is_transplant_start(init) else init


def _present(catalogue: Catalogue, original) -> int:
    """Classes with test images in a dataset."""
    manifest = catalogue.manifest(original)
    return manifest.loc[manifest["split"] == "test", "label"].nunique()


def _evaluate(catalogue: Catalogue, classifiers, out: Path, device: str, names: list[str]
              ) -> dict[str, pd.DataFrame]:
    """Every classifier on a dataset's test split (labels mapped to `names` by class name):
    evaluate's tables, the cells over seeds (TABLE) and BD-accuracy, written to `out`."""
    evaluated = evaluate_all(catalogue, classifiers, out, device=device, categories=names)
    cells = seeds.over_seeds(evaluated[RESULTS])
    bd_results = bd.bd_table(evaluated[RESULTS], evaluated[HITS])
    for name, frame in ((TABLE, cells), (BD_RESULTS, bd_results)):
        frame.to_csv(out / f"{name}.csv", index=False)
        frame.to_parquet(out / f"{name}.parquet", index=False)
    # per image and cell, right or not: what every paired interval of the report resamples
    evaluated[HITS].to_parquet(out / f"{HITS}.parquet", index=False)
    return evaluated | {TABLE: cells, BD_RESULTS: bd_results}


def confusion_figures(cells: pd.DataFrame, confusion: pd.DataFrame, names: list[str],
                      folder: Path) -> None:
    """A confusion matrix per table cell (its seeds' counts summed)."""
    folder.mkdir(exist_ok=True)
    for row in cells.itertuples():
        cell = confusion[(confusion["method"] == row.method) & (confusion["set"] == row.set)]
        cell = cell.groupby(["true", "predicted"], as_index=False)["count"].sum()
        counts = np.zeros((len(names), len(names)), dtype=np.int64)
        counts[cell["true"], cell["predicted"]] = cell["count"]
        pooled = f", {row.seeds} seeds pooled" if row.seeds > 1 else ""
        figures.confusion_figure(counts, names,
                                 f"{row.method}, {row.set}: Top-1 {100 * row.top1:.1f}%{pooled}",
                                 folder / f"{slug(row.method, row.set)}.png")


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "python -m evaluation.report",
        "Evaluate every trained classifier and write the report (Table 2, Figures 2 and 3, "
        "confusion matrices, measured efficiency) to reports/<dataset>/, logged as one MLflow "
        "parent run with a child run per table cell.")
    common_arguments(p)
    p.add_argument("--min-seconds", type=float, default=2.0,
                   help="efficiency: time each path at least this long per batch size")
    p.add_argument("--experiment", default="classifiers", help="MLflow experiment")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--extra-test", default=None, metavar="SHARDS",
                   help="the shards (<out>/<dataset>) of an evaluation-only set, prepared with the "
                   "same codecs: every classifier is also evaluated on its test split")
    return p


@stage_main
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    dataset = storage.name(args.shards)
    report = write_report(args.shards, args.runs or f"runs/train/{dataset}",
                          args.out or f"reports/{dataset}", resolve_device(args.device),
                          args.min_seconds, not args.no_mlflow, args.experiment, args.extra_test)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
