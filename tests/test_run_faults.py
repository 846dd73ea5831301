"""Faults of a training run, injected for real (docs/faults.md): the
tracking server going away mid-run (a real `mlflow server`, a real torchrun) and damaged
checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.ray_nodes import free_port

pytestmark = pytest.mark.slow
MAIN = Path(__file__).resolve().parents[1] / "trainer" / "main.py"


class Server:
    """`mlflow server` on 127.0.0.1 with a SQLite store, stopped and started by the test."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
                   str(self.port), "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                   "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(command, cwd=self.folder, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)  # its workers in its group
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"mlflow server on {self.uri} did not start in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "server"
    folder.mkdir()
    server = Server(folder)
    server.start()
    yield server
    server.stop()


def torchrun(tmp_path: Path, shards: Path, out: Path, *more: str, uri: str, wait_s: int = 60):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1",
           "CDMR_TRACKING_WAIT_S": str(wait_s)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
               "--standalone", str(MAIN), "--domain", "latent", "--quality", "1", "--shards",
               str(shards), "--init", "none", "--batch-size", "8", "--max-steps", "1",
               "--workers", "1", "--out", str(out), *more]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_a_tracking_outage_of_two_epochs_loses_no_metric(small_shards, server, tmp_path):
    """The server stops after epoch 1 and is back two epochs later: training does not wait,
    says so in one line, and the server ends with every epoch's metrics."""
    from mlflow.tracking import MlflowClient

    process = torchrun(tmp_path, small_shards, tmp_path / "run", "--epochs", "6",
                       uri=server.uri)
    lines, stopped_at = [], None
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("epoch 1/6") and stopped_at is None:
                server.stop()
                stopped_at = time.time()
            elif line.startswith("epoch 3/6"):
                server.start()
        process.wait(timeout=300)
    finally:
        process.kill()
    output = "".join(lines)
    assert process.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "MlflowException" not in output
    assert len([x for x in lines if "does not answer" in x]) == 1, output[-3000:]
    assert "not delivered" not in output
    [run] = MlflowClient(server.uri).search_runs(
        [MlflowClient(server.uri).get_experiment_by_name("classifiers").experiment_id])
    history = MlflowClient(server.uri).get_metric_history(run.info.run_id, "val_top1")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]
    assert run.data.metrics["test_samples"] == 4 and run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "6"
    assert not (tmp_path / "run" / "tracking-journal.jsonl").exists()  # all delivered


def test_records_left_at_the_end_are_one_line_and_delivered_later(small_shards, tmp_path):
    """No server for the whole run: it trains to the end, says in one line where the records
    are and the command that delivers them; that command, once a server answers, does."""
    from mlflow.tracking import MlflowClient

    server = Server(tmp_path)
    process = torchrun(tmp_path, small_shards, tmp_path / "run", "--epochs", "2",
                       uri=server.uri, wait_s=1)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    journal = tmp_path / "run" / "tracking-journal.jsonl"
    [line] = [x for x in output.splitlines() if "not delivered" in x]
    assert str(journal) in line and f"python -m foundation.journal {journal}" in line
    assert "Traceback" not in output
    server.start()
    try:
        command = line.split("`")[1].split()  # as the user pastes it
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri}
        delivered = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True,
                                   text=True, timeout=120, cwd=MAIN.parents[1])
        assert delivered.returncode == 0, delivered.stderr[-2000:]
        client = MlflowClient(server.uri)
        [run] = client.search_runs([client.get_experiment_by_name("classifiers").experiment_id])
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_top1")) \
            == [1, 2]
        assert "test_top1" in run.data.metrics and run.info.status == "FINISHED"
    finally:
        server.stop()


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(small_shards, tmp_path):
    """The newest checkpoint truncated: one line, the previous one is used; then both zeroed:
    one line naming them and how to start over."""
    import torch

    from classifier import checkpoint

    out, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = torchrun(tmp_path, small_shards, out, "--epochs", "2", uri=uri)
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output[-3000:]
    newest, previous = out / checkpoint.CHECKPOINT, out / checkpoint.PREVIOUS
    assert torch.load(previous, weights_only=True)["epoch"] == 0
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    again = torchrun(tmp_path, small_shards, out, "--epochs", "3", "--resume", uri=uri)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output[-3000:]
    [line] = [x for x in output.splitlines() if "is damaged" in x]
    assert line.startswith(f"{newest} is damaged (") and line.endswith(": skipped")
    assert "Traceback" not in output
    assert f"resuming {previous} after epoch 1" in output
    assert "epoch 2/3" in output and "epoch 3/3" in output
    assert torch.load(newest, weights_only=True)["epoch"] == 2
    assert torch.load(previous, weights_only=True)["epoch"] == 1
    assert (out / checkpoint.DAMAGED).is_file()  # set aside, not rotated into PREVIOUS

    for path in (newest, previous):  # none readable
        path.write_bytes(bytes(path.stat().st_size))
    last = torchrun(tmp_path, small_shards, out, "--epochs", "4", "--resume", uri=uri)
    output, _ = last.communicate(timeout=300)
    assert last.returncode != 0
    [line] = [x for x in output.splitlines() if x.startswith("error: ")]
    assert f"no readable checkpoint in {out}" in line and "remove them" in line
    assert f'File "{MAIN.parent}' not in output  # no traceback from the trainer


def test_a_report_without_its_tracking_server_is_kept_and_logged_later(tmp_path, caplog,
                                                                          monkeypatch):
    """The report's MLflow step with no server: one line naming the folder and the command;
    that command, once a server answers, logs the report."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from evaluation import tracking
    from evaluation.seeds import over_seeds
    from tests.test_report import paper_like

    folder = tmp_path / "report"
    folder.mkdir()
    results = paper_like().assign(mlflow_run_id="", checkpoint="ckpt", trained_on="original")
    bd = pd.DataFrame([{"curve": "Comp.", "reference": "Anchor 2", "bd_top1": -0.02,
                        "bd_top1_low": -0.03, "bd_top1_high": -0.01}])
    cells = over_seeds(results.assign(seed=0))
    results.to_parquet(folder / "results.parquet", index=False)
    cells.to_parquet(folder / "table2.parquet", index=False)
    bd.to_parquet(folder / "bd_accuracy.parquet", index=False)
    server = Server(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    try:
        start = time.time()
        assert tracking.log_or_keep("classifiers", "textures", cells, results, folder,
                                    bd) is None
        assert time.time() - start < 60  # not MLflow's minutes of retries
        [line] = [r.getMessage() for r in caplog.records if "did not take" in r.getMessage()]
        command = line.split("`")[1].split()
        assert command[:3] == ["python", "-m", "evaluation.tracking"] and str(folder) in line
        server.start()
        logged = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True,
                                timeout=120, cwd=MAIN.parents[1])
        assert logged.returncode == 0, logged.stderr[-2000:]
        client = MlflowClient(server.uri)
        runs = client.search_runs([client.get_experiment_by_name("classifiers").experiment_id])
        assert len(runs) == 1 + len(results)  # the parent and a child per cell
    finally:
        server.stop()


def test_a_failed_trainer_stops_only_what_needs_it(synthetic_small, tmp_path):
    """python -m pipeline with Comp.'s fitted start damaged: its trainer fails, its evaluation
    does not run, the rest trains and the report is written without it; the run ends with one
    line for the failure, its log and the command that resumes it, and exit code 2."""
    import pandas as pd

    from tests.test_cluster_pipeline import tiny

    runs = tmp_path / "runs" / synthetic_small.name
    start = runs / "transplant" / "q1.pth"  # the fit is skipped: its file is there
    start.parent.mkdir(parents=True)
    start.write_bytes(b"not a start")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run([*tiny(synthetic_small, tmp_path, "runs"), "--transplant-steps", "3"],
                          cwd=MAIN.parents[1], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    log = runs / "latent" / "q1" / "train.log"
    assert line.startswith(f"error: train latent q1 failed (exit 1): see {log}; resume it alone: "
                           "python -m torch.distributed.run --standalone --nproc_per_node=1 -m "
                           "trainer.main --domain latent")
    assert line.endswith("; not run after it: evaluate latent q1"), line
    said = log.read_text()  # the trainer's own failure (not a signal: not run again)
    assert said.count("trainer.main FAILED") == 1 and "received by PID" not in said
    assert "fix the cause and run the same command again" in done.stderr
    results = pd.read_parquet(tmp_path / "reports-runs" / synthetic_small.name /
                              "results.parquet")
    assert set(zip(results["method"], results["set"], strict=True)) == {
        ("Anchor 3", "original"), ("Anchor 1", "q1"), ("Anchor 2", "q1"),
        ("Anchor 2 (equal budget)", "q1")}
