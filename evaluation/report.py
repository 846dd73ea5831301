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
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evaluation import bd, efficiency, figures, tables, tracking
from evaluation.catalogue import Catalogue
from evaluation.classifiers import find_classifiers
from evaluation.evaluate import CONFUSION, HITS, RESULTS, common_arguments, evaluate_all, slug
from evaluation.examples import gather_examples
from prep.store import storage
from prep.store.storage import Location
from trainer.domains import ORIGINAL

log = logging.getLogger(__name__)

BD_RESULTS = "bd_accuracy"


def write_report(root: Location, runs: str | Path, out: str | Path, device: str = "cpu",
                 min_seconds: float = 2.0, log_mlflow: bool = True, experiment: str = "classifiers"
                 ) -> Path:
    catalogue, out = Catalogue(root), Path(out)
    dataset = catalogue.dataset
    classifiers = find_classifiers(runs)
    evaluated = evaluate_all(catalogue, classifiers, out, device=device)
    results = evaluated[RESULTS]
    bd_results = bd.bd_table(results, evaluated[HITS])
    bd_results.to_csv(out / f"{BD_RESULTS}.csv", index=False)
    bd_results.to_parquet(out / f"{BD_RESULTS}.parquet", index=False)
    qualities = catalogue.qualities()
    for metric in ("top1", "top5"):
        figures.figure3(results, out / f"figure3_{metric}.png", metric, dataset)
    examples = gather_examples(catalogue, qualities)
    if examples:
        figures.figure2(examples, qualities, out / "figure2.png", dataset)
    original = catalogue.shard_set(ORIGINAL.name)
    names = list(original.info["categories"])
    manifest = catalogue.manifest(original)
    present = manifest.loc[manifest["split"] == "test", "label"].nunique()
    confusion_figures(results, evaluated[CONFUSION], names, out / "confusion")
    cost = efficiency.measure_efficiency(catalogue, classifiers, qualities, torch.device(device),
                                         min_seconds)
    cost.to_csv(out / "efficiency.csv", index=False)
    table = tables.table2(results, dataset, present, len(names))
    sections = [f"# Report: {dataset}\n", table,
                tables.pattern(results, {c.config.init for c in classifiers}, bd_results),
                "![Figure 3, Top-1](figure3_top1.png)\n\n![Figure 3, Top-5](figure3_top5.png)\n",
                tables.bd_markdown(bd_results),
                tables.efficiency_markdown(cost, efficiency.device_name(torch.device(device)))]
    if examples:
        sections.append("## Figure 2: examples\n\n![Figure 2](figure2.png)\n")
    if dataset.startswith("minc-2500") and present == len(names):  # all 23 classes
        sections.append(tables.paper_comparison(results))
    sections.append(tables.unfinished(classifiers))
    report = out / "README.md"
    (out / "table2.md").write_text(table)
    report.write_text("\n".join(s for s in sections if s))
    if log_mlflow:
        run_id = tracking.log_report(experiment, dataset, results, out, bd_results)
        print(f"MLflow: parent run {run_id} in experiment {experiment!r}")
    return report


def confusion_figures(results: pd.DataFrame, confusion: pd.DataFrame, names: list[str],
                      folder: Path) -> None:
    """A confusion matrix per table cell."""
    folder.mkdir(exist_ok=True)
    for row in results.itertuples():
        cell = confusion[(confusion["method"] == row.method) & (confusion["set"] == row.set)]
        counts = np.zeros((len(names), len(names)), dtype=np.int64)
        counts[cell["true"], cell["predicted"]] = cell["count"]
        figures.confusion_figure(counts, names,
                                 f"{row.method}, {row.set}: Top-1 {100 * row.top1:.1f}%",
                                 folder / f"{slug(row.method, row.set)}.png")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.report",
        description="Evaluate every trained classifier and write the report (Table 2, "
        "Figures 2 and 3, confusion matrices, measured efficiency) to reports/<dataset>/, "
        "logged as one MLflow parent run with a child run per table cell.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common_arguments(p)
    p.add_argument("--min-seconds", type=float, default=2.0,
                   help="efficiency: time each path at least this long per batch size")
    p.add_argument("--experiment", default="classifiers", help="MLflow experiment")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    dataset = storage.name(args.shards)
    try:
        report = write_report(args.shards, args.runs or f"runs/train/{dataset}",
                              args.out or f"reports/{dataset}", args.device, args.min_seconds,
                              not args.no_mlflow, args.experiment)
    except (OSError, ValueError, RuntimeError) as err:  # OSError: storage, object stores
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
