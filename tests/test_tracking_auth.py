"""The tracking server with MLflow's basic-auth app (foundation.tracking_server), started for
real on 127.0.0.1 with its own auth database and an admin password from the environment: a
request without a user is refused, a run logged with the credentials in the environment reads
back, and refused credentials are one line, their records kept."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from foundation.journal import JOURNAL, Journal, make_experiment, read_records
from foundation.journal import main as deliver
from foundation.tracking import CREDENTIALS, refusal
from foundation.tracking_server import answers
from foundation.tracking_server import main as serve

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "admin"
CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=10"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m foundation.tracking_server` on a free port; stopped with its workers."""
    folder = tmp_path_factory.mktemp("tracking-auth")
    config = folder / "basic_auth.ini"
    config.write_text(f"[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{folder / 'auth.db'}\nadmin_username = {ADMIN}\n")
    password, port = secrets.token_urlsafe(16), free_port()
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password  # MLflow's; nowhere in a file
    command = [sys.executable, "-m", "foundation.tracking_server", "--port", str(port),
               "--store", f"sqlite:///{folder / 'mlflow.db'}", "--auth-config", str(config),
               "--workers", "1"]
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # its uvicorn workers in its group
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {(folder / 'server.log').read_text()}")
            time.sleep(0.5)
        yield SimpleNamespace(url=url, password=password)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
        log.close()


@pytest.fixture
def client_env(server, tmp_path, monkeypatch):
    """The server's URI; no credentials, not even MLflow's ~/.mlflow/credentials."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def get(url: str, user: str | None = None, password: str | None = None) -> dict:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.mark.slow  # the server starts in 10-30 s
def test_a_request_without_a_user_or_with_a_wrong_password_is_refused(server, client_env):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    for user, password in ((None, None), (ADMIN, "not-the-password"), ("nobody", "x" * 12)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(server.url + SEARCH, user, password)
        assert refused.value.code == 401
    with pytest.raises(MlflowException) as refused:
        MlflowClient(server.url).search_experiments()
    assert refused.value.get_http_status_code() == 401
    assert refusal(refused.value) == f"refused (HTTP 401): check {CREDENTIALS}"
    # the admin's own credentials pass the same REST call
    assert [e["name"] for e in get(server.url + SEARCH, ADMIN, server.password)["experiments"]]
    # the pipeline, before its trainers: one line, not a traceback
    assert make_experiment("refused") == (
        f"warning: MLflow at {server.url}: refused (HTTP 401): check {CREDENTIALS}; the runs "
        f"keep their records in their folders' {JOURNAL} until it takes them")


def test_a_server_away_is_one_line_before_the_trainers(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # no one there
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # fail_fast sets them, monkeypatch restores
    start = time.monotonic()
    line = make_experiment("away")
    assert line.startswith("warning: MLflow at http://127.0.0.1:") and JOURNAL in line, line
    assert time.monotonic() - start < 60  # not MLflow's 7 retries with back-off


@pytest.mark.slow  # the server starts in 10-30 s
def test_a_run_logged_with_the_credentials_in_the_environment_reads_back(server, client_env,
                                                                         tmp_path):
    """The trainer's path (the journal) with MLFLOW_TRACKING_USERNAME/PASSWORD set."""
    from mlflow.tracking import MlflowClient

    client_env.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    client_env.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    journal = Journal(tmp_path / JOURNAL, wait_s=60)
    journal.start("auth", "anchor3", {"seed": "0"})
    journal.log_params({"epochs": 1})
    journal.log_metrics({"val_top1": 0.75}, step=1)
    assert journal.finish() == 0
    run = MlflowClient(server.url).get_run(journal.run_id)
    assert run.data.metrics["val_top1"] == pytest.approx(0.75)
    assert run.data.params["epochs"] == "1" and run.info.status == "FINISHED"
    experiments = get(server.url + SEARCH, ADMIN, server.password)["experiments"]
    assert "auth" in [e["name"] for e in experiments]


@pytest.mark.slow  # the server starts in 10-30 s
def test_refused_credentials_are_one_line_and_the_records_are_kept(server, client_env,
                                                                   tmp_path, caplog):
    """A wrong password is not an outage and not a bad record: the journal says so once, keeps
    every record, and delivers them once the right credentials are given."""
    from mlflow.tracking import MlflowClient

    client_env.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    client_env.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    path = tmp_path / JOURNAL
    journal = Journal(path, wait_s=3)
    journal.start("auth", "refused", {})
    journal.log_metrics({"val_top1": 0.5}, step=1)
    assert journal.finish() == 3  # start, metrics, end: all kept
    lines = [r.getMessage() for r in caplog.records]
    assert len([x for x in lines if f"refused (HTTP 401): check {CREDENTIALS}" in x]) == 1
    assert not [x for x in lines if "skipped" in x or "does not answer" in x], lines
    assert [r["op"] for r in read_records(path)] == ["start", "metrics", "end"]

    client_env.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    assert deliver([str(path), "--wait", "60"]) == 0
    [run_id] = [json.loads(Path(f"{path}.state").read_text())["run_id"]]
    assert MlflowClient(server.url).get_run(run_id).data.metrics["val_top1"] == 0.5


@pytest.mark.slow  # the server starts in 10-30 s
def test_the_report_is_kept_when_refused_and_logged_with_the_credentials(server, client_env,
                                                                          tmp_path, caplog):
    """The report's runs and files (artifacts, through the server) with the credentials; one
    line and the report kept without them."""
    from mlflow.tracking import MlflowClient

    from evaluation import tracking
    from evaluation.seeds import over_seeds
    from tests.test_report import results, row

    frame = results([row("Anchor 3", None, .80)]).assign(
        mlflow_run_id="", trained_on="original", checkpoint="c.pth", top5_low=.9,
        top5_high=.97, seed=0)
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "README.md").write_text("report")
    assert tracking.log_or_keep("classifiers", "tiny", over_seeds(frame), frame, folder) is None
    [line] = [r.getMessage() for r in caplog.records if "kept in" in r.getMessage()]
    assert f"{server.url} refused (HTTP 401): check {CREDENTIALS}" in line

    client_env.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    client_env.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    parent = tracking.log_or_keep("classifiers", "tiny", over_seeds(frame), frame, folder)
    client = MlflowClient(server.url)
    assert client.get_run(parent).data.metrics["top1/anchor-3/original"] == frame.top1[0]
    assert [f.path for f in client.list_artifacts(parent)] == ["README.md"]


def test_an_auth_config_missing_inside_the_repository_or_incomplete_is_refused(tmp_path,
                                                                               capsys):
    """Before any server starts: one line, exit 2."""
    incomplete = tmp_path / "basic_auth.ini"
    incomplete.write_text("[mlflow]\ndefault_permission = READ\n")
    for config, says in ((tmp_path / "none.ini", "does not exist"),
                         (ROOT / "pyproject.toml", "inside the repository"),
                         (incomplete, "lacks database_uri")):
        assert serve(["--port", str(free_port()), "--auth-config", str(config)]) == 2
        assert says in capsys.readouterr().err
