"""The report in MLflow: one parent run per dataset holding the report's files, the Top-1/Top-5
matrix and the BD-accuracy of every pair of curves, and a child run per Table 2 cell (method x
set) with its metrics, linked to the classifier's training run. With several seeds the cell's
run holds the mean over its seeds and the range, and a run per seed nests under it (tag
`seed`); each training run gets the tags `seed` and `cdmr.cell`, so the runs table grouped by
that tag shows a cell's seeds together.

Select the children in the MLflow UI and compare them (e.g. top1 against bpp) to see the matrix.
Running the report again updates the same runs instead of adding new ones.

A tracking server that does not answer, or refuses the credentials (MLFLOW_TRACKING_USERNAME/
PASSWORD), does not fail the report (log_or_keep): its files stay in the report's folder and
`python -m evaluation.tracking <folder> --dataset D` logs them later.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd

from classifier import run_folder
from classifier.methods import ANCHOR1
from evaluation.evaluate import RESULTS, slug
from evaluation.tables import BD_RESULTS, EXTRA, TABLE
from foundation import journal
from foundation.cli import stage_main
from foundation.tracking import experiment_id as find_experiment
from foundation.tracking import refusal, tracking_uri

log = logging.getLogger(__name__)
REPORT_TAG = "cdmr.report"  # value: the dataset
CELL_TAG = "cdmr.cell"  # value: "<method>/<set>"
METRICS = ("top1", "top1_low", "top1_high", "top5", "top5_low", "top5_high", "samples", "bpp",
           "psnr", "ms_ssim", "ssim")
BD_METRICS = ("bd_top1", "bd_top1_low", "bd_top1_high")
SEED_METRICS = ("top1_min", "top1_max", "top5_min", "top5_max", "seeds")  # a cell over seeds
SETTINGS = "experiment.toml"  # in a report's folder: the experiment that made it, as tags
EXTRA_PREFIX = "extra-test"  # the evaluation-only set's metrics on the parent run


def _find(client, experiment_id: str, tags: dict) -> str | None:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment_id], query, max_results=1)
    return runs[0].info.run_id if runs else None


def _run(client, experiment_id: str, name: str, tags: dict, find: dict) -> str:
    run_id = _find(client, experiment_id, find)
    if run_id is None:
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    return run_id


def metric_name(metric: str, *labels: str) -> str:
    """The one place a metric name is built from labels (methods, curves, sets): each label
    slugged, e.g. top1/comp-y/q1, bd_top1/comp/anchor-2-jpeg; MLflow refuses parentheses and
    most punctuation in names ("Comp. (y)")."""
    return "/".join([metric, *(slug(label, "") for label in labels)])


def log_report(experiment: str, dataset: str, cells: pd.DataFrame, results: pd.DataFrame,
               folder: Path, bd: pd.DataFrame | None = None,
               extra: dict[str, pd.DataFrame] | None = None) -> str:
    """The parent run's id. cells: a row per table cell over its seeds (seeds.over_seeds);
    results: a row per cell and seed; bd: one row per pair of curves (evaluation.bd); extra:
    the evaluation-only set's cells ("table2") and BD ("bd_accuracy"), on the parent only."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    experiment_id = find_experiment(experiment)
    parent = _run(client, experiment_id, f"{dataset}/report", {REPORT_TAG: dataset},
                  {REPORT_TAG: dataset})
    now, summary = int(time.time() * 1000), []
    for row in cells.to_dict("records"):
        cell_run = _log_cell(client, experiment_id, parent, dataset, row, now)
        seeds = results[(results["method"] == row["method"]) & (results["set"] == row["set"])]
        for seed_row in seeds.to_dict("records"):
            if row["seeds"] > 1:  # a run per seed under its cell's run
                _log_cell(client, experiment_id, cell_run, dataset, seed_row, now)
            if row["method"] != ANCHOR1:  # Anchor 1's classifier is Anchor 3's: tagged there
                _tag_training_run(client, seed_row, parent)
        summary += [Metric(metric_name(k, row["method"], row["set"]), float(row[k]), now, 0)
                    for k in ("top1", "top5")]
    summary += _bd_metrics(bd, now)
    for row in ([] if extra is None else extra["table2"].to_dict("records")):
        summary += [Metric(metric_name(f"{EXTRA_PREFIX}/{k}", row["method"], row["set"]),
                           float(row[k]), now, 0) for k in ("top1", "top5")]
    summary += _bd_metrics(None if extra is None else extra["bd_accuracy"], now, EXTRA_PREFIX)
    client.log_batch(parent, metrics=summary, tags=_settings_tags(folder / SETTINGS))
    client.log_artifacts(parent, str(folder))
    client.set_terminated(parent)
    return parent


def _settings_tags(path: Path) -> list:
    """The experiment's keys as tags experiment.<key> (tags, not params: a rerun with another
    value updates them, where MLflow refuses to change a param)."""
    from mlflow.entities import RunTag

    if not path.is_file():
        return []
    return [RunTag(f"experiment.{key}", str(value))
            for key, value in tomllib.loads(path.read_text()).items()]


def _log_cell(client, experiment_id: str, parent: str, dataset: str, row: dict, now: int
              ) -> str:
    """A table cell's run under `parent`: over its seeds (row from seeds.over_seeds, `seeds`
    set) or one seed's (row from evaluate, `seed` an int) under the cell's run."""
    from mlflow.entities import Metric, Param, RunTag

    set_name = row["set"]  # original, q4, jpeg30: it names the codec and its quality
    cell = f"{row['method']}/{set_name}"
    one_seed = "seeds" not in row
    tags = {CELL_TAG: cell, "mlflow.parentRunId": parent, "method": row["method"],
            "quality": set_name, "codec": "" if pd.isna(row["codec"]) else row["codec"],
            "curve": row["curve"], "dataset": dataset, "trained_on": row["trained_on"]}
    tags |= ({"seed": str(row["seed"]), "classifier_run_id": row["mlflow_run_id"]} if one_seed
             else {"seeds": str(row["seeds"])} | (
                 {"classifier_run_id": row["mlflow_run_id"]} if row["seeds"] == 1 else {}))
    name = f"{dataset}/{row['method']}/{set_name}" + \
        (f"/{run_folder.seed_name(row['seed'])}" if one_seed else "")
    run = _run(client, experiment_id, name, tags,
               {k: tags[k] for k in (CELL_TAG, "mlflow.parentRunId", "seed") if k in tags})
    metrics = [Metric(k, float(row[k]), now, 0) for k in METRICS + SEED_METRICS
               if k in row and not math.isnan(float(row[k]))]
    params = [] if client.get_run(run).data.params else [
        Param("method", row["method"]), Param("quality", set_name),
        Param("checkpoint", row["checkpoint"])]
    client.log_batch(run, metrics=metrics, params=params,
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])
    client.set_terminated(run)
    return run


def _tag_training_run(client, row: dict, report: str) -> None:
    """The training run of one seed's cell points to the report and carries its cell and seed
    (group the runs table by the tag cdmr.cell to see a cell's seeds together)."""
    from mlflow.exceptions import MlflowException

    if not row["mlflow_run_id"]:
        return
    try:
        for key, value in (("report_run_id", report), ("seed", str(row["seed"])),
                           (CELL_TAG, f"{row['method']}/{row['set']}")):
            client.set_tag(row["mlflow_run_id"], key, value)
    except MlflowException as err:  # trained against another tracking store
        log.warning("training run %s: %s", row["mlflow_run_id"], err)


def _bd_metrics(bd: pd.DataFrame | None, now: int, prefix: str = "") -> list:
    from mlflow.entities import Metric

    rows = [] if bd is None else bd.to_dict("records")
    return [Metric(metric_name(prefix + ("/" if prefix else "") + k, row["curve"],
                               row["reference"]), float(row[k]), now, 0)
            for row in rows for k in BD_METRICS if not math.isnan(float(row[k]))]

def log_or_keep(experiment: str, dataset: str, cells: pd.DataFrame, results: pd.DataFrame,
                folder: Path, bd: pd.DataFrame | None = None,
                extra: dict[str, pd.DataFrame] | None = None) -> str | None:
    """log_report, or, when the tracking server does not answer or refuses the credentials,
    None and one line saying which, where the report is kept and the command that logs it
    later."""
    from mlflow.exceptions import MlflowException

    journal.fail_fast()  # a gone server: seconds, not MLflow's 7 retries per call
    try:
        return log_report(experiment, dataset, cells, results, folder, bd, extra)
    except (MlflowException, OSError) as err:  # OSError: requests' connection errors
        command = (f"python -m evaluation.tracking {folder} --dataset {dataset} "
                   f"--experiment {experiment}")
        why = refusal(err) or f"did not take the report ({journal.first_line(err)})"
        log.warning("MLflow: %s %s; it is kept in %s: log it with `%s`", tracking_uri(), why,
                    folder, command)
        return None


@stage_main
def main(argv: list[str] | None = None) -> int:
    """Log a written report (its results and BD-accuracy files) to MLflow."""
    p = argparse.ArgumentParser(prog="python -m evaluation.tracking", description=main.__doc__)
    p.add_argument("folder", type=Path, help="the report's folder (reports/<dataset>)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--experiment", default="classifiers")
    args = p.parse_args(argv)

    files = [args.folder / f"{name}.parquet" for name in (TABLE, RESULTS, BD_RESULTS)]
    for path in files:
        if not path.is_file():
            print(f"error: {path} not found: is {args.folder} a report's folder?",
                  file=sys.stderr)
            return 2
    cells, results, bd = (pd.read_parquet(path) for path in files)
    held_out = args.folder / EXTRA  # the evaluation-only set's table and BD, where there is one
    extra = ({name: pd.read_parquet(held_out / f"{name}.parquet") for name in (TABLE, BD_RESULTS)}
             if (held_out / f"{TABLE}.parquet").is_file() else None)
    run_id = log_or_keep(args.experiment, args.dataset, cells, results, args.folder, bd, extra)
    if run_id is None:
        return 1
    print(f"MLflow: parent run {run_id} in experiment {args.experiment!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
