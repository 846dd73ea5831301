"""Training across nodes: two torchrun launchers (one per "node") on this machine meet through
c10d rendezvous, as `torchrun --nnodes=2 --rdzv-backend=c10d --rdzv-endpoint=<host>:<port>` on
two machines would, and train one model together."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.ray_nodes import free_port
from tests.test_trainer_run import MAIN, latent_args

pytestmark = pytest.mark.slow


def launcher(tmp_path, endpoint: str, args: list[str]) -> subprocess.Popen:
    """One node's `torchrun --nnodes=2 --nproc_per_node=1` (no --node-rank: rendezvous
    assigns it)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=cdmr-two-nodes",
               "--max-restarts=0", str(MAIN), *args]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_launchers_train_one_model_with_c10d_rendezvous(trainer_shards, tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    args = latent_args(trainer_shards, tmp_path / "run", "--epochs", "1", "--max-steps", "2")
    nodes = [launcher(tmp_path, endpoint, args) for _ in range(2)]
    outputs = []
    for node in nodes:
        output, _ = node.communicate(timeout=420)
        outputs.append(output)
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]
    # rank 0 ran on one of the launchers; the test set was read once over both ranks
    [rank0] = [o for o in outputs if "test: top-1" in o]
    assert re.search(r"test: top-1 [\d.]+, top-5 [\d.]+ on 48 samples \(manifest: 48\)", rank0)
    assert (tmp_path / "run" / "checkpoint.pth").is_file()

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = mlflow.search_runs(experiment_names=["classifiers"], output_format="list")
    assert run.data.params["world_size"] == "2" and run.data.metrics["test_samples"] == 48
