"""The whole pipeline on a real two-node Ray cluster on this machine (`ray start --head` and
`ray start --address`, one CPU each), submitted with `ray job submit`: its trainers run on both
nodes, its report has every cell and they equal a single-node run's; then a run whose worker
node is killed while a trainer runs on it still ends with every cell.

The nodes share this machine's checkout and folders (no --working-dir: `make
cluster-experiment` adds it), as a cluster's nodes share the runs folder (pipeline/shared.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import ray_nodes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
CELLS = {("Anchor 3", "original"), ("Anchor 1", "q1"), ("Anchor 2", "q1"), ("Comp.", "q1")}


def tiny(data: Path, root: Path, runs: str) -> list[str]:
    """A tiny demo: one quality, no classical sets, no fitted starts: 3 trainers, 1 process
    each (1 thread: one CPU a node, 2 cores for the single-node run, 2 lanes)."""
    return [sys.executable, "-m", "pipeline", "--experiment", "demo", "--data", str(data),
            "--out", str(root / "shards"), "--runs", str(root / runs), "--reports",
            str(root / f"reports-{runs}"), "--codecs", str(ROOT / "codecs" / "demo"),
            "--qualities", "1", "--jpeg-qualities", "--latent-hint-steps", "0",
            "--transplant-steps", "0", "--epochs", "1", "--max-steps", "2", "--batch-size", "8",
            "--resize", "40", "--crop", "32", "--nproc", "1", "--loader-workers", "1",
            "--shard-size", "8", "--prep-workers", "2", "--min-seconds", "0.05"]


def results(root: Path, runs: str, data: Path) -> pd.DataFrame:
    table = pd.read_parquet(root / f"reports-{runs}" / data.name / "results.parquet")
    return table.set_index(["method", "set"]).sort_index()


def submit(cluster: ray_nodes.RayNodes, name: str, entrypoint: list[str], store: Path):
    env = json.dumps({"env_vars": {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}})
    return cluster.ray("job", "submit", "--address", cluster.dashboard, "--submission-id", name,
                       "--runtime-env-json", env, "--", *entrypoint, timeout=900)


def trainer_tasks(cluster: ray_nodes.RayNodes, state: str | None = None) -> list[dict]:
    """The pipeline's trainer tasks as Ray's state API lists them (their node included)."""
    filters = ["--filter", f"state={state}"] if state else []
    listed = cluster.ray("list", "tasks", "--address", cluster.dashboard, "--format", "json",
                         "--detail", "--limit", "1000", *filters)
    assert listed.returncode == 0, listed.stderr
    return [t for t in json.loads(listed.stdout) if t["name"].startswith("train ")]


@pytest.fixture(scope="module")
def two_nodes():
    cluster = ray_nodes.start(cpus_per_node=1, nodes=2)
    yield cluster
    cluster.stop()


def test_trainers_run_on_both_nodes_and_a_dead_node_costs_no_cell(two_nodes, synthetic_small,
                                                                     tmp_path):
    job = submit(two_nodes, "pipeline-two-nodes", tiny(synthetic_small, tmp_path, "runs"),
                 tmp_path / "mlflow.db")
    assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-3000:]
    assert "shared by the 2 nodes" in job.stdout and "succeeded" in job.stdout
    nodes = {n["node_id"] for n in two_nodes.alive_nodes()}
    trained = trainer_tasks(two_nodes)
    assert len({t["name"] for t in trained}) == 3
    assert len(nodes) == 2 and {t["node_id"] for t in trained} == nodes
    cluster = results(tmp_path, "runs", synthetic_small)
    assert set(cluster.index) == CELLS

    # the single-node reference: this machine's own Ray, 2 cores, 2 lanes of 1 thread, on the
    # same shards (a cluster's prep equals one machine's byte for byte: test_cluster_prep)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'local.db'}"}
    env.pop("RAY_ADDRESS", None)
    local = subprocess.run(tiny(synthetic_small, tmp_path, "local"), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    assert "shards already done" in local.stdout
    # the same seeds and one thread per trainer on both: the same predictions, to the digit
    single = results(tmp_path, "local", synthetic_small)
    pd.testing.assert_frame_equal(cluster[["top1", "top5", "samples", "bpp"]],
                                  single[["top1", "top5", "samples", "bpp"]])

    # again, into new runs; the worker node dies while a trainer runs on it
    worker = next(n["node_id"] for n in two_nodes.alive_nodes() if not n["is_head_node"])
    killed, over, seen = threading.Event(), threading.Event(), []

    def kill_the_worker_when_it_trains() -> None:
        while not over.is_set():
            try:
                running = trainer_tasks(two_nodes, "RUNNING")
            except (AssertionError, ValueError, subprocess.TimeoutExpired) as err:
                seen.append(repr(err))
                continue
            seen.append([(t["name"], t.get("node_id")) for t in running])
            if any(t.get("node_id") == worker for t in running):
                os.killpg(two_nodes.processes[1].pid, signal.SIGKILL)  # its raylet, workers
                killed.set()
                return
            time.sleep(0.5)

    killer = threading.Thread(target=kill_the_worker_when_it_trains, daemon=True)
    killer.start()
    again = submit(two_nodes, "pipeline-node-dies", tiny(synthetic_small, tmp_path, "again"),
                   tmp_path / "mlflow.db")
    over.set()
    killer.join(timeout=30)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-3000:]
    assert killed.is_set(), f"no trainer ran on the worker node {worker}: {seen}"
    assert len(two_nodes.alive_nodes()) == 1  # the run ended on the head alone
    assert set(results(tmp_path, "again", synthetic_small).index) == CELLS
    retried = [t for t in trainer_tasks(two_nodes) if t["attempt_number"] > 0]
    assert retried, "no trainer was run again after its node died"
