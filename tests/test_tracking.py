"""The report in MLflow: metric names built from method labels that MLflow would refuse."""

from __future__ import annotations

import pandas as pd
import pytest

from evaluation import tracking
from evaluation.seeds import over_seeds
from tests.test_report import results, row


def test_ablation_labels_reach_mlflow_as_slugged_metric_names(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    frame = results([row("Comp.", 1, .70), row("Comp. (y)", 1, .60),
                     row("Comp. (sigma)", 1, .50)])
    frame = frame.assign(mlflow_run_id="", trained_on="x", checkpoint="c.pth", top5_low=.9,
                         top5_high=.97, seed=0)
    bd = pd.DataFrame([{"curve": "Comp. (y)", "reference": "Anchor 2 (JPEG)", "bd_top1": -0.1,
                        "bd_top1_low": -0.2, "bd_top1_high": 0.0}])
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "README.md").write_text("report")
    parent = tracking.log_report("classifiers", "tiny", over_seeds(frame), frame,
                                 tmp_path / "report", bd)
    metrics = MlflowClient(uri).get_run(parent).data.metrics
    assert metrics["top1/comp-y/q1"] == pytest.approx(frame.top1[1])
    assert metrics["top1/comp-sigma/q1"] == pytest.approx(frame.top1[2])
    assert metrics["bd_top1/comp-y/anchor-2-jpeg"] == pytest.approx(-0.1)
