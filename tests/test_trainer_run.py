"""The trainer for real: torchrun with 2 gloo processes on CPU, MLflow in a SQLite store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from foundation.sets import SetId

pytestmark = pytest.mark.slow
MAIN = Path(__file__).resolve().parents[1] / "trainer" / "main.py"


def torchrun(tmp_path: Path, nproc: int, *args: str, extra: tuple = (), env: dict | None = None,
             **kw):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           **(env or {})}
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--standalone", *extra, str(MAIN), *args]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def finish(process, timeout=600) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()  # leave no ranks behind
        raise
    assert process.returncode == 0, output[-3000:]
    return output


def latent_args(shards: Path, out: Path, *more: str) -> list[str]:
    return ["--domain", "latent", "--quality", "4", "--shards", str(shards), "--init", "none",
            "--batch-size", "16", "--workers", "1", "--out", str(out), *more]


def test_latent_classifier_learns_on_two_processes(trainer_shards, tmp_path):
    output = finish(torchrun(tmp_path, 2, *latent_args(
        trainer_shards, tmp_path / "run", "--epochs", "10", "--lr", "0.02", "--lr-steps", "8")))
    top1, top5, samples = re.search(
        r"test: top-1 ([\d.]+), top-5 ([\d.]+) on (\d+) samples \(manifest: 48\)", output).groups()
    assert int(samples) == 48  # 5 test shards over 2 ranks, each sample once
    # chance is 0.25; 22 of 48 right by chance has p < 0.001
    assert float(top1) >= 0.45, output[-2000:]
    assert re.search(r"epoch 10/10: loss [\d.]+, train top-1", output)

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = mlflow.search_runs(experiment_names=["classifiers"], output_format="list")
    assert run.info.run_name == "textures/latent/q4"
    assert run.data.tags["method"] == "Comp." and run.data.tags["quality"] == "4"
    assert run.data.params["world_size"] == "2" and run.data.params["domain"] == "latent"
    assert run.data.metrics["test_samples"] == 48
    assert run.data.metrics["test_top1"] == pytest.approx(float(top1), abs=1e-4)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_top1")
    assert [m.step for m in history] == list(range(1, 11))
    for name in ("train_loss", "train_top1", "val_top5", "lr", "images_per_s"):
        assert name in run.data.metrics
    assert Path(run.data.tags["checkpoint"]).is_file()

    # one classifier, one test accuracy: the report's evaluation of the saved weights (rank 0's
    # BatchNorm statistics) agrees with what the two ranks measured in the trainer
    from classifier.data import open_shard_set
    from evaluation.classifiers import load_model, read_classifier
    from evaluation.predict import predict

    classifier = read_classifier(tmp_path / "run" / "checkpoint.pth")
    assert classifier.precision == run.data.params["precision_resolved"]  # what it ran in
    shard_set = open_shard_set(trainer_shards, "latent", SetId.of(4))
    model = load_model(classifier, shard_set.num_classes, shard_set.latent_channels)
    report = predict(model, shard_set, "test", classifier.config.input_sizes, workers=0)
    assert (report["top"][:, 0] == report["label"]).sum() == round(float(top1) * 48)

    # the trainer kept both ranks' predictions, every test sample once, marked with its
    # checkpoint and the test shards, and they are the report's, sample for sample
    from foundation import predictions

    trained = predictions.read(tmp_path / "run" / predictions.RUN_FILE, classifier.sha256,
                               shard_set.fingerprint("test"))
    assert trained is not None and sorted(trained["key"]) == sorted(report["key"])
    order = {k: i for i, k in enumerate(report["key"])}
    rows = [order[k] for k in trained["key"]]
    assert (trained["label"] == report["label"][rows]).all()
    assert (trained["top"][:, 0] == report["top"][rows, 0]).all()
    assert trained["top"].shape == (48, 4)  # top-5 of 4 classes: all of them, best first
    assert predictions.read(tmp_path / "run" / predictions.RUN_FILE, "0" * 64,
                            shard_set.fingerprint("test")) is None  # another checkpoint's


def test_resume_continues_exactly(trainer_shards, tmp_path):
    common = ("--max-steps", "2", "--lr-steps", "1")
    finish(torchrun(tmp_path, 1, *latent_args(trainer_shards, tmp_path / "a", "--epochs", "2",
                                              *common)))
    finish(torchrun(tmp_path, 1, *latent_args(trainer_shards, tmp_path / "b", "--epochs", "1",
                                              *common)))
    output = finish(torchrun(tmp_path, 1, *latent_args(trainer_shards, tmp_path / "b",
                                                       "--epochs", "2", "--resume", *common)))
    assert "resuming" in output and "after epoch 1" in output
    a = torch.load(tmp_path / "a" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    untimed = [{k: v for k, v in epoch.items() if k != "images_per_s"}
               for epoch in json.loads(a["history"])]
    assert untimed == [{k: v for k, v in epoch.items() if k != "images_per_s"}
                       for epoch in json.loads(b["history"])]


def test_a_killed_rank_restarts_from_the_checkpoint(trainer_shards, tmp_path):
    out = tmp_path / "run"
    process = torchrun(tmp_path, 2, *latent_args(trainer_shards, out, "--epochs", "3"),
                       extra=("--max-restarts", "1"))
    deadline = time.time() + 300
    while not (out / "checkpoint.pth").exists() and time.time() < deadline:
        time.sleep(0.2)
    ranks = [p for p in psutil.Process(process.pid).children() if "main.py" in " ".join(
        p.cmdline())]
    assert len(ranks) == 2
    os.kill(ranks[1].pid, signal.SIGKILL)  # mid-epoch 2
    output = finish(process)
    assert "resuming" in output and "epoch 3/3" in output
    state = torch.load(out / "checkpoint.pth", weights_only=True)
    assert state["epoch"] == 2


def test_unprepared_quality_fails_before_the_process_group(trainer_shards, tmp_path):
    start = time.time()
    process = torchrun(tmp_path, 2, "--domain", "latent", "--quality", "8", "--shards",
                       str(trainer_shards))
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0 and time.time() - start < 120
    assert "q8 set, which was not prepared" in output


def test_pixel_classifier_learns_from_the_pretrained_start(trainer_shards, tmp_path):
    """The procedural backbone (never shown these texture families) fine-tuned for 4 epochs at
    the demo's scale (256 px images resized to 72, crops of 64)."""
    output = finish(torchrun(tmp_path, 2, "--domain", "original", "--shards",
                             str(trainer_shards), "--init", "procedural", "--epochs", "4",
                             "--lr-steps", "3", "--batch-size", "16", "--resize", "72",
                             "--crop", "64", "--workers", "1", "--out", str(tmp_path / "run")))
    assert "--init procedural: " in output and "tensors loaded" in output
    top1 = float(re.search(r"test: top-1 ([\d.]+), top-5 [\d.]+ on 48 samples", output).group(1))
    # chance is 0.25; 30 of 48 right by chance has p < 1e-8
    assert top1 >= 0.625, output[-2000:]


def test_a_missing_starting_point_is_one_line(trainer_shards, tmp_path):
    closed = "http://127.0.0.1:9"  # no network, whatever the machine has
    env = {"TORCH_HOME": str(tmp_path / "empty"), "HTTPS_PROXY": closed, "https_proxy": closed}
    process = torchrun(tmp_path, 2, "--domain", "original", "--shards", str(trainer_shards),
                       "--init", "imagenet", env=env)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "resnet50-0676ba61.pth" in errors[0]
    # no traceback from the trainer's processes (torchrun still prints its own failure block)
    assert f'File "{MAIN.parent}' not in output and "FileNotFoundError" not in output

    # the same checks before torchrun (make train): the one line is all that is printed
    check = subprocess.run([sys.executable, "-m", "trainer.check", "--domain", "original",
                            "--shards", str(trainer_shards), "--init", "imagenet"],
                           env={**os.environ, **env}, capture_output=True, text=True,
                           cwd=MAIN.parents[1], timeout=300)
    assert check.returncode == 2 and check.stdout == ""
    assert check.stderr.strip().splitlines() == errors, check.stderr


def test_the_entry_point_trains_as_a_group_of_one_without_torchrun(trainer_shards, tmp_path):
    """`cdmr-train` with no torchrun environment: one process, one gloo rank, a test result."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([Path(sys.executable).parent / "cdmr-train", *latent_args(
        trainer_shards, tmp_path / "run", "--epochs", "1", "--max-steps", "2")], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads((tmp_path / "run" / "test.json").read_text())
    assert result["test_samples"] == 48
