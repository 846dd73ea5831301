"""MLflow set-up shared by every stage: a SQLite store in the project folder by default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORE = "mlflow.db"
# MLflow 3.17's UI opens an experiment on its GenAI overview (traces, token usage). The
# experiment tag says it is model training; the 3.17.2 UI also needs its workflow switch, which
# the `?workflowType=machine_learning` query sets (then the runs table, with Top-1, comes first).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
UI_QUERY = "?workflowType=machine_learning"
UI_URL = f"http://127.0.0.1:5000/#/experiments{UI_QUERY}"  # what `make ui` serves
# `mlflow ui` also starts a GenAI job runner (7 huey consumers, 10 processes, 2.2 GiB here)
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# a server that asks for a user (foundation.tracking_server): MLflow's client sends these itself
CREDENTIALS = "MLFLOW_TRACKING_USERNAME/PASSWORD"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:///<cwd>/mlflow.db (the file store is refused)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_STORE}"


def refusal(err: Exception) -> str | None:
    """One line when the server refused the caller rather than the request (HTTP 401: no user
    or a wrong password; 403: a user without the permission), else None: not an outage, and
    not the record's fault."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException) and (code := err.get_http_status_code()) in (401, 403):
        return f"refused (HTTP {code}): check {CREDENTIALS}"
    return None


def artifact_location() -> str | None:
    """Artifacts beside a SQLite store rather than in whatever folder the process runs in."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def experiment_id(name: str) -> str:
    """The experiment's id, created (with artifact_location) when missing; marked as model
    training (EXPERIMENT_KIND), also when an older run created it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=artifact_location(),
                                        tags=EXPERIMENT_KIND)
    for key, value in EXPERIMENT_KIND.items():
        if found.tags.get(key) != value:
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def start_run(experiment: str, run_name: str, tags: dict | None = None, run_id: str | None = None):
    """An MLflow run (resumed when run_id is given); the caller ends it."""
    import logging

    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema migrations of a new store
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment_id=experiment_id(experiment))
    return mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, tags=tags)
