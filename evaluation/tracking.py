"""The report in MLflow: one parent run per dataset holding the report's files, the Top-1/Top-5
matrix and the BD-accuracy of every pair of curves, and a child run per Table 2 cell (method x
set) with its metrics, linked to the classifier's training run.

Select the children in the MLflow UI and compare them (e.g. top1 against bpp) to see the matrix.
Running the report again updates the same runs instead of adding new ones.

A tracking server that does not answer does not fail the report (log_or_keep): its files stay
in the report's folder and `python -m evaluation.tracking <folder> --dataset D` logs them later.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import pandas as pd

from evaluation.evaluate import RESULTS, slug
from evaluation.tables import BD_RESULTS
from prep.common import journal
from prep.common.tracking import experiment_id as find_experiment
from prep.common.tracking import tracking_uri

log = logging.getLogger(__name__)
REPORT_TAG = "cdmr.report"  # value: the dataset
CELL_TAG = "cdmr.cell"  # value: "<method>/<set>"
METRICS = ("top1", "top1_low", "top1_high", "top5", "top5_low", "top5_high", "samples", "bpp",
           "psnr", "ms_ssim", "ssim")
BD_METRICS = ("bd_top1", "bd_top1_low", "bd_top1_high")


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


def bd_metric_name(metric: str, curve: str, reference: str) -> str:
    """e.g. bd_top1/comp/anchor-2-jpeg (MLflow refuses parentheses in metric names)."""
    return f"{metric}/{slug(curve, '')}/{slug(reference, '')}"


def log_report(experiment: str, dataset: str, results: pd.DataFrame, folder: Path,
               bd: pd.DataFrame | None = None) -> str:
    """The parent run's id. bd: one row per pair of curves (evaluation.bd)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    experiment_id = find_experiment(experiment)
    parent = _run(client, experiment_id, f"{dataset}/report", {REPORT_TAG: dataset},
                  {REPORT_TAG: dataset})
    now, summary = int(time.time() * 1000), []
    for row in results.to_dict("records"):
        set_name = row["set"]  # original, q4, jpeg30: it names the codec and its quality
        cell = f"{row['method']}/{set_name}"
        tags = {CELL_TAG: cell, "mlflow.parentRunId": parent, "method": row["method"],
                "quality": set_name, "codec": "" if pd.isna(row["codec"]) else row["codec"],
                "curve": row["curve"], "dataset": dataset,
                "classifier_run_id": row["mlflow_run_id"], "trained_on": row["trained_on"]}
        child = _run(client, experiment_id, f"{dataset}/{row['method']}/{set_name}", tags,
                     {CELL_TAG: cell, "mlflow.parentRunId": parent})
        metrics = [Metric(k, float(row[k]), now, 0) for k in METRICS
                   if not math.isnan(float(row[k]))]
        params = [] if client.get_run(child).data.params else [
            Param("method", row["method"]), Param("quality", set_name),
            Param("checkpoint", row["checkpoint"])]
        client.log_batch(child, metrics=metrics, params=params,
                         tags=[RunTag(k, str(v)) for k, v in tags.items()])
        client.set_terminated(child)
        summary += [Metric(f"{k}/{row['method']}/{set_name}", float(row[k]), now, 0)
                    for k in ("top1", "top5")]
        if row["mlflow_run_id"]:  # the training run points to the report too
            try:
                client.set_tag(row["mlflow_run_id"], "report_run_id", parent)
            except MlflowException as err:  # trained against another tracking store
                log.warning("training run %s: %s", row["mlflow_run_id"], err)
    for row in ([] if bd is None else bd.to_dict("records")):
        summary += [Metric(bd_metric_name(k, row["curve"], row["reference"]), float(row[k]),
                           now, 0) for k in BD_METRICS if not math.isnan(float(row[k]))]
    client.log_batch(parent, metrics=summary)  # the whole matrix on the parent's own page
    client.log_artifacts(parent, str(folder))
    client.set_terminated(parent)
    return parent



def log_or_keep(experiment: str, dataset: str, results: pd.DataFrame, folder: Path,
                bd: pd.DataFrame | None = None) -> str | None:
    """log_report, or, when the tracking server does not answer, None and one line saying
    where the report is kept and the command that logs it later."""
    from mlflow.exceptions import MlflowException

    journal.fail_fast()  # a gone server: seconds, not MLflow's 7 retries per call
    try:
        return log_report(experiment, dataset, results, folder, bd)
    except (MlflowException, OSError) as err:  # OSError: requests' connection errors
        command = (f"python -m evaluation.tracking {folder} --dataset {dataset} "
                   f"--experiment {experiment}")
        log.warning("MLflow: %s did not take the report (%s); it is kept in %s: log it with "
                    "`%s`", tracking_uri(), journal.first_line(err), folder, command)
        return None


def main(argv: list[str] | None = None) -> int:
    """Log a written report (its results and BD-accuracy files) to MLflow."""
    p = argparse.ArgumentParser(prog="python -m evaluation.tracking", description=main.__doc__)
    p.add_argument("folder", type=Path, help="the report's folder (reports/<dataset>)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--experiment", default="classifiers")
    args = p.parse_args(argv)
    files = [args.folder / f"{name}.parquet" for name in (RESULTS, BD_RESULTS)]
    for path in files:
        if not path.is_file():
            print(f"error: {path} not found: is {args.folder} a report's folder?",
                  file=sys.stderr)
            return 2
    results, bd = (pd.read_parquet(path) for path in files)
    run_id = log_or_keep(args.experiment, args.dataset, results, args.folder, bd)
    if run_id is None:
        return 1
    print(f"MLflow: parent run {run_id} in experiment {args.experiment!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
