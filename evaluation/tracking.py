"""The report in MLflow: one parent run per dataset holding the report's files, the Top-1/Top-5
matrix and the BD-accuracy of every pair of curves, and a child run per Table 2 cell (method x
set) with its metrics, linked to the classifier's training run.

Select the children in the MLflow UI and compare them (e.g. top1 against bpp) to see the matrix.
Running the report again updates the same runs instead of adding new ones.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pandas as pd

from evaluation.evaluate import slug
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


def metric_name(metric: str, *labels: str) -> str:
    """The one place a metric name is built from labels (methods, curves, sets): each label
    slugged, e.g. top1/comp-y/q1, bd_top1/comp/anchor-2-jpeg; MLflow refuses parentheses and
    most punctuation in names ("Comp. (y)")."""
    return "/".join([metric, *(slug(label, "") for label in labels)])


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
        summary += [Metric(metric_name(k, row["method"], set_name), float(row[k]), now, 0)
                    for k in ("top1", "top5")]
        if row["mlflow_run_id"]:  # the training run points to the report too
            try:
                client.set_tag(row["mlflow_run_id"], "report_run_id", parent)
            except MlflowException as err:  # trained against another tracking store
                log.warning("training run %s: %s", row["mlflow_run_id"], err)
    for row in ([] if bd is None else bd.to_dict("records")):
        summary += [Metric(metric_name(k, row["curve"], row["reference"]), float(row[k]),
                           now, 0) for k in BD_METRICS if not math.isnan(float(row[k]))]
    client.log_batch(parent, metrics=summary)  # the whole matrix on the parent's own page
    client.log_artifacts(parent, str(folder))
    client.set_terminated(parent)
    return parent
