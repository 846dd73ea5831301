"""Faults injected for real, each checked as a user would (docs/faults.md).

Damaged shards are caught by their recorded size (sha256 with --verify) and redone; a bad image
fails alone; an interrupted or storage-starved job leaves no partial shard; every such error is
one line that says what to do.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from PIL import Image

from foundation import schema, storage
from foundation.sets import SetId
from prep.cli import config_from
from prep.cli import main as prep_main
from prep.datasets.listing import Item
from prep.job.config import PrepConfig
from prep.job.driver import run
from prep.job.shards import ShardEncoder, ShardTask, part_paths
from tests.conftest import SMALL_PREP_ARGS
from tests.ray_nodes import free_port

pytestmark = pytest.mark.slow
DATASET = "synthetic-small"


def copy_set(small_shards: Path, tmp_path: Path) -> Path:
    """A private copy of the session's prepared set (out/<dataset>), to damage."""
    root = tmp_path / "out" / DATASET
    shutil.copytree(small_shards, root)
    return root


def keys_in(set_dir: Path) -> Counter:
    return Counter(s["__key__"] for p in schema.shard_paths(set_dir)
                   for s in schema.iter_shard(p, only=()))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


def tiny_classifier(runs: Path) -> Path:
    """A checkpoint of the latent classifier at q1, as the trainer writes it (a stand-in
    network: evaluation fails on the shards before it loads the weights)."""
    import torch

    from classifier import checkpoint
    from classifier.config import TrainConfig

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1])
    out = runs / "latent" / "q1"
    out.mkdir(parents=True)
    config = TrainConfig(domain="latent", shards=str(runs), quality=1, epochs=1)
    checkpoint.save(out, model, optimizer, scheduler, 0, config, [], None, precision="fp32")
    return runs


def prep_config(data: Path, out: Path, weights: Path, *more: str) -> PrepConfig:
    """The config of small_shards' command (SMALL_PREP_ARGS), to resume a copy of it."""
    return config_from(["--data", str(data), "--out", str(out), "--codec-weights", str(weights),
                        *SMALL_PREP_ARGS, *more])


# --- damaged shards ------------------------------------------------------------------------------


def test_a_truncated_shard_is_one_line_and_its_command_redoes_it(
        small_shards, tmp_path, ray_local, capsys):
    from classifier.data import open_shard_set
    from evaluation.evaluate import main as evaluate_main
    from trainer.train import main as train_main

    root = copy_set(small_shards, tmp_path)
    for name in ("train-000001.tar", "test-000000.tar"):  # a node lost mid-copy
        path = root / "q1" / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    assert train_main(["--domain", "latent", "--quality", "1", "--shards", str(root),
                       "--init", "none", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    [line] = error_lines(err)
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    assert f"shard {root / 'q1' / 'test-000000.tar'} is " in line and "truncated" in line

    runs = tiny_classifier(tmp_path / "runs")
    assert evaluate_main(["--shards", str(root), "--runs", str(runs),
                          "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    assert f"shard {root / 'q1' / 'test-000000.tar'} is " in error_lines(err)[0]

    command = re.search(r"`(python -m prep [^`]+)`", line).group(1)
    assert prep_main(shlex.split(command)[3:]) == 0  # the command, as the user pastes it
    out = capsys.readouterr().out
    assert re.search(r"q1/train-000001.tar is \d+ bytes, \d+ when written \(damaged or "
                     r"truncated\): redoing it", out)
    assert f"{root / 'q1'}: 4 of 6 shards already done" in out
    assert f"{root / 'original'}: 6 of 6 shards already done" in out
    for name in ("train-000001.tar", "test-000000.tar"):
        assert (root / "q1" / name).read_bytes() == (small_shards / "q1" / name).read_bytes()
    counts = open_shard_set(root, "latent", SetId.of(1)).counts
    assert counts == {"train": 32, "validate": 4, "test": 4}


def test_a_bit_flipped_shard_is_redone_with_verify(
        small_shards, synthetic_small, codec_q1, tmp_path, ray_local, capsys):
    root = copy_set(small_shards, tmp_path)
    path = root / "q1" / "train-000002.tar"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # a disk error: the same size, one bit off
    path.write_bytes(bytes(data))

    summary = run(prep_config(synthetic_small, root.parent, codec_q1))
    assert summary.encoded_images == 0  # the size is right: a resume alone cannot see it
    summary = run(prep_config(synthetic_small, root.parent, codec_q1, "--verify"))
    out = capsys.readouterr().out
    assert (f"{path} has the recorded size but not the recorded sha256 (damaged): "
            f"redoing it") in out
    assert f"{root / 'q1'}: 5 of 6 shards already done" in out
    assert summary.encoded_images == 8
    assert path.read_bytes() == (small_shards / "q1" / path.name).read_bytes()


def test_shards_without_fingerprints_are_checked_and_adopted(
        small_shards, synthetic_small, codec_q1, tmp_path, ray_local, capsys):
    """A set prepared before fingerprints were recorded: the trainer asks for one prep run,
    which reads every shard once, keeps the whole ones and redoes a damaged one."""
    from classifier.data import open_shard_set

    root = copy_set(small_shards, tmp_path)
    for set_name in ("original", "q1"):
        for record in (root / set_name / schema.PARTS).glob("*.tar.json"):
            record.unlink()
        info_path = root / set_name / schema.DATASET_JSON
        info = json.loads(info_path.read_text())
        del info[schema.FINGERPRINTS]
        info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"records no shard sizes .* `python -m prep "):
        open_shard_set(root, "latent", SetId.of(1))
    damaged = root / "q1" / "validate-000000.tar"
    damaged.write_bytes(damaged.read_bytes()[:3000])
    kept = {p: p.stat().st_mtime_ns for p in root.rglob("*.tar") if p != damaged}

    summary = run(prep_config(synthetic_small, root.parent, codec_q1))
    assert f"{damaged} has no fingerprint and does not read whole" in capsys.readouterr().out
    assert summary.encoded_images == 4
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # read, not coded again
    assert damaged.read_bytes() == (small_shards / "q1" / damaged.name).read_bytes()
    assert open_shard_set(root, "latent", SetId.of(1)).counts["validate"] == 4


# --- bad images ----------------------------------------------------------------------------------


def minc_layout(root: Path, extra: dict[str, bytes]) -> Path:
    """MINC-2500's layout: classes a and b, 6 good 96x80 JPEGs each; `extra` files (class a)
    join the train split, so they share a shard with the good train images."""
    rng = np.random.default_rng(0)
    splits = {"train": [], "validate": [], "test": []}
    for class_name in ("a", "b"):
        (root / "images" / class_name).mkdir(parents=True)
        for i in range(6):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(
                buffer, format="JPEG")
            source = f"images/{class_name}/{class_name}_{i}.jpg"
            (root / source).write_bytes(buffer.getvalue())
            splits["train" if i < 4 else ("validate", "test")[i - 4]].append(source)
    for name, data in extra.items():
        (root / "images" / "a" / name).write_bytes(data)
        splits["train"].append(f"images/a/{name}")
    (root / "categories.txt").write_text("a\nb\n")
    (root / "labels").mkdir()
    for split, sources in splits.items():
        (root / "labels" / f"{split}1.txt").write_text("\n".join(sources) + "\n")
    return root


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_bomb_and_a_huge_image_fail_alone(tmp_path, codec_q1, ray_local, capsys):
    bomb = png(Image.new("1", (14000, 14000)))  # 196 M pixels in 24 KB
    huge = png(Image.new("L", (2049, 2049)))  # just over the default --max-pixels (2048^2)
    data = minc_layout(tmp_path / "hostile", {"a_bomb.png": bomb, "a_huge.png": huge})
    argv = ["--data", str(data), "--out", str(tmp_path / "out"), "--codec-weights",
            str(codec_q1), "-q", "1", "--workers", "2", "--shard-size", "16"]
    assert prep_main(argv) == 1  # 2 failures > --max-failures 0; every good image is kept
    assert "2 input(s) failed" in capsys.readouterr().err
    for set_name in ("original", "q1"):
        set_dir = tmp_path / "out" / "hostile" / set_name
        failures = {f["key"]: f for f in pq.read_table(set_dir / schema.FAILURES).to_pylist()}
        assert failures.keys() == {"a_bomb", "a_huge"}
        assert "decompression bomb, not decoded" in failures["a_bomb"]["reason"]
        assert "2049x2049 (4.2 M pixels), over --max-pixels 4194304" in failures["a_huge"][
            "reason"]
        shard = failures["a_bomb"]["shard"]
        assert shard == failures["a_huge"]["shard"] == "train-000000.tar"
        assert keys_in(set_dir) == Counter({f"{c}_{i}": 1 for c in "ab" for i in range(6)})
        with_bomb = {s["__key__"] for s in schema.iter_shard(set_dir / shard, only=())}
        assert with_bomb == {f"{c}_{i}" for c in "ab" for i in range(4)}  # its 8 good images


def test_a_codec_error_fails_only_its_image(tmp_path, codec_q1, monkeypatch):
    """In a batch of 4, the codec fails on one image: the batch is coded again image by image,
    the bad one is recorded with the reason, the other 3 are written."""
    from foundation import coding
    from foundation.hyperprior import read_weights_file

    data = minc_layout(tmp_path / "data", {})
    dark = Image.new("RGB", (96, 80))
    dark.save(data / "images" / "a" / "a_1.jpg", format="JPEG")  # the one the codec fails on
    real = coding.transform

    def flaky(model, images):
        if any(np.asarray(image).max() < 8 for image in images):
            raise RuntimeError("simulated codec failure")
        return real(model, images)

    monkeypatch.setattr(coding, "transform", flaky)
    items = tuple(Item(f"a_{i}", f"images/a/a_{i}.jpg", "train", 0, "a") for i in range(4))
    set_dir = tmp_path / "q1"
    set_dir.mkdir()
    encoder = ShardEncoder(read_weights_file(codec_q1), batch_size=4)
    task = ShardTask(str(set_dir), "train-000000.tar", str(data), SetId.of(1), items)
    result = encoder.write(task)
    assert (result.samples, result.failures) == (3, 1)
    [failure] = pq.read_table(part_paths(set_dir, "train-000000.tar")[1]).to_pylist()
    assert failure["key"] == "a_1" and failure["stage"] == "encode"
    assert failure["reason"] == "coding failed: RuntimeError: simulated codec failure"
    assert keys_in(set_dir) == Counter({"a_0": 1, "a_2": 1, "a_3": 1})


def test_a_transform_device_that_disagrees_with_the_cpu_decode_is_recorded(tmp_path, codec_q1):
    """Transforms whose h_s differs from the CPU's (as a GPU's floating point can) pick other
    scale indexes: the CPU's decode of the strings differs, and each image is a failure with
    the counts, not a shard with latents that no reader gets back."""
    import torch

    from foundation.hyperprior import load_codec, read_weights_file

    data = minc_layout(tmp_path / "data", {})
    items = tuple(Item(f"a_{i}", f"images/a/a_{i}.jpg", "train", 0, "a") for i in range(2))
    set_dir = tmp_path / "q1"
    set_dir.mkdir()
    weights = read_weights_file(codec_q1)
    encoder = ShardEncoder(weights, batch_size=2)
    encoder.model = load_codec(weights)  # the transforms' copy, perturbed
    with torch.no_grad():
        encoder.model.h_s[-2].bias.add_(0.5)  # its last convolution
    task = ShardTask(str(set_dir), "train-000000.tar", str(data), SetId.of(1), items)
    result = encoder.write(task)
    assert (result.samples, result.failures) == (0, 2)
    failures = pq.read_table(part_paths(set_dir, "train-000000.tar")[1]).to_pylist()
    assert {f["stage"] for f in failures} == {"verify"}
    assert all("scale indexes" in f["reason"] and "differ from the transforms' on cpu"
               in f["reason"] for f in failures)


# --- interruptions and storage -------------------------------------------------------------------


class FullDisk:
    """A file whose device fills up after `room` bytes, as write() reports it (ENOSPC)."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_no_space_leaves_no_partial_shard_and_names_the_location(tmp_path, monkeypatch):
    data = minc_layout(tmp_path / "data", {})
    items = tuple(Item(f"a_{i}", f"images/a/a_{i}.jpg", "train", 0, "a") for i in range(4))
    set_dir = tmp_path / "out" / "original"
    set_dir.mkdir(parents=True)
    task = ShardTask(str(set_dir), "train-000000.tar", str(data), SetId(), items)
    started = []

    def full_disk(path, mode="r", *args, **kwargs):
        started.append(path)
        return FullDisk(open(path, mode, *args, **kwargs), room=12_000)

    monkeypatch.setattr(storage, "open", full_disk, raising=False)  # the write path's open()
    with pytest.raises(OSError) as raised:
        ShardEncoder(None).write(task)
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value) == (
        f"[Errno 28] cannot write {set_dir / 'train-000000.tar'}: No space left on device; "
        f"free space on that filesystem or choose another --out")
    assert started and not Path(started[0]).exists()  # the partial tar was there, now removed
    assert not [p for p in set_dir.rglob("*") if p.is_file()]  # no tar, part or fingerprint

    monkeypatch.undo()  # space freed: the same task writes the shard
    ShardEncoder(None).write(task)
    size = (set_dir / "train-000000.tar").stat().st_size
    assert schema.read_fingerprint(set_dir, "train-000000.tar").bytes == size
    assert keys_in(set_dir) == Counter({f"a_{i}": 1 for i in range(4)})


def ray_processes(ray_tmp: str) -> list[psutil.Process]:
    """The processes of the Ray that a driver started with RAY_TMPDIR=ray_tmp."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("RAY_TMPDIR") == ray_tmp:
                found.append(process)
        except (psutil.Error, OSError):
            pass
    return found


@pytest.fixture(scope="module")
def longer_set(tmp_path_factory) -> Path:
    """160 synthetic textures (80 shards of 2): a job long enough to be stopped midway on an
    idle machine (40 images were coded before the signal arrived)."""
    from prep.datasets.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("longer") / DATASET, classes=4, per_class=40,
                         size=128)


def test_sigterm_keeps_its_name_where_ray_drops_the_handlers_exception():
    """A signal that lands in a blocking ray.get comes out of Ray as a bare KeyboardInterrupt
    (its check_status): the driver must still exit 143 for SIGTERM, not 130 (CI of stop 30)."""
    from prep.job.driver import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as stop, sigterm_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        except KeyboardInterrupt:
            raise KeyboardInterrupt() from None  # what Ray's check_status raises
    assert stop.value.args == ("SIGTERM",)
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(KeyboardInterrupt) as stop, sigterm_as_interrupt():
        raise KeyboardInterrupt()  # SIGINT's own: stays bare, the CLI names it SIGINT
    assert stop.value.args == ()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_killed_driver_stops_its_workers_and_the_rerun_completes(
        signum, longer_set, codec_q1, tmp_path, ray_local, capsys):
    out = tmp_path / "out"
    q1 = out / DATASET / "q1"
    ray_tmp = tempfile.mkdtemp(prefix="cdmr-ray-", dir="/tmp")  # short socket paths
    path = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmp,
           "PYTHONPATH": os.pathsep.join(filter(None, path))}  # this checkout's prep
    # `python -m prep` as a user runs it in a terminal: a shell that started this test suite in
    # the background hands SIGINT down ignored, so the driver restores Python's handler first
    foreground = ("import runpy, signal, sys; signal.signal(signal.SIGINT, "
                  "signal.default_int_handler); sys.argv[0] = 'prep'; "
                  "runpy.run_module('prep', run_name='__main__')")
    driver = subprocess.Popen(
        [sys.executable, "-c", foreground, "--data", str(longer_set), "--out", str(out),
         "--codec-weights", str(codec_q1), "-q", "1", "--workers", "2", "--shard-size", "2",
         "--no-original"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not schema.shard_paths(q1) and time.time() < deadline and driver.poll() is None:
            time.sleep(0.05)
        driver.send_signal(signum)  # mid-job: the first of 80 q1 shards is done
        _, err = driver.communicate(timeout=120)
    finally:
        driver.kill()
    try:
        assert driver.returncode == 128 + signum, err[-3000:]
        assert f"interrupted ({signal.Signals(signum).name}): the workers are stopped" in err
        deadline = time.time() + 30
        while ray_processes(ray_tmp) and time.time() < deadline:
            time.sleep(0.5)
        assert not ray_processes(ray_tmp)  # its actors and its local Ray are gone
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    for path in schema.shard_paths(q1):  # every shard under its final name is whole
        assert schema.read_fingerprint(q1, path.name).bytes == path.stat().st_size

    summary = run(PrepConfig(data=longer_set, out=out, quality=1, codec_weights=codec_q1,
                             workers=2, shard_size=2, original=False))
    done = re.search(r"q1: (\d+) of 80 shards already done", capsys.readouterr().out)
    assert 1 <= int(done.group(1)) < 80 and summary.encoded_images > 0
    assert keys_in(q1) == Counter({k: 1 for k in schema.read_manifest(q1).column("key")
                                   .to_pylist()})
    assert len(schema.read_manifest(q1)) == 160
    assert not list(q1.rglob(".*.tmp-*"))


def test_an_unreachable_store_is_one_line_in_evaluation_and_the_report(
        tmp_path, monkeypatch, capsys):
    """(prep's side: tests/test_object_store.py)"""
    from evaluation.evaluate import main as evaluate_main
    from evaluation.report import main as report_main

    for name, value in {"AWS_ACCESS_KEY_ID": "cdmr-test", "AWS_SECRET_ACCESS_KEY": "cdmr-test",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(name, value)  # nothing listens there
    runs = tiny_classifier(tmp_path / "runs")
    shards = "s3://cdmr-shards/runs/" + DATASET
    for main in (evaluate_main, report_main):
        assert main(["--shards", shards, "--runs", str(runs), "--out",
                     str(tmp_path / "report")]) == 2
        err = capsys.readouterr().err
        [line] = error_lines(err)
        assert shards in line and "AWS_ENDPOINT_URL" in line and "Traceback" not in err



# --- one redo command for every kind of set -------------------------------------------------


@pytest.fixture(scope="module")
def four_sets(tmp_path_factory, synthetic_small, codec_q1, ray_local) -> Path:
    """synthetic_small's original, q1, jpeg5 and webp5 sets, written by one prep job."""
    out = tmp_path_factory.mktemp("four-sets")
    assert prep_main(["--data", str(synthetic_small), "--out", str(out), "--codec-weights",
                      str(codec_q1), *SMALL_PREP_ARGS, "--jpeg", "5", "--webp", "5"]) == 0
    return out / DATASET


FOUR = {"original": ["--domain", "original"], "q1": ["--domain", "latent", "--quality", "1"],
        "jpeg5": ["--domain", "decoded", "--set", "jpeg5"],
        "webp5": ["--domain", "decoded", "--set", "webp5"]}


def damage_and_ask(root: Path, capsys) -> dict[str, str]:
    """Truncate validate-000000.tar of every set; the redo command trainer.check prints for
    each, in its one line."""
    from trainer.check import main as check_main

    commands = {}
    for set_name, args in FOUR.items():
        path = root / set_name / "validate-000000.tar"
        path.write_bytes(path.read_bytes()[:1000])
        assert check_main([*args, "--shards", str(root), "--init", "none"]) == 2
        err = capsys.readouterr().err
        [line] = error_lines(err)
        assert "Traceback" not in err and f"shard {path} is 1000 bytes" in line
        commands[set_name] = re.search(r"`(python -m prep [^`]+)`", line).group(1)
    return commands


def test_every_kind_of_set_is_redone_by_its_one_line_command(four_sets, tmp_path, capsys):
    root = copy_set(four_sets, tmp_path)
    commands = damage_and_ask(root, capsys)
    assert len(set(commands.values())) == 1  # the job that wrote them, replayed
    argv = shlex.split(commands["jpeg5"])
    assert argv[:3] == ["python", "-m", "prep"] and "--jpeg" in argv and "--webp" in argv
    ray_tmp = tempfile.mkdtemp(prefix="cdmr-ray-", dir="/tmp")
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmp,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    try:  # as a user runs it: a process of its own, no shell
        done = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for set_name in FOUR:
        assert f"{root / set_name}: 5 of 6 shards already done" in done.stdout
        name = "validate-000000.tar"
        assert (root / set_name / name).read_bytes() == (four_sets / set_name / name).read_bytes()

    for set_name in FOUR:  # sets written before the command was recorded
        info_path = root / set_name / schema.DATASET_JSON
        info = json.loads(info_path.read_text())
        del info[schema.PREP_COMMAND]
        info_path.write_text(json.dumps(info))
    for set_name, command in damage_and_ask(root, capsys).items():
        assert prep_main(shlex.split(command)[3:]) == 0
        assert f"{root / set_name}: 5 of 6 shards already done" in capsys.readouterr().out
        name = "validate-000000.tar"
        assert (root / set_name / name).read_bytes() == (four_sets / set_name / name).read_bytes()


# --- one job per set folder ----------------------------------------------------------------------


def prep_process(data: Path, out: Path, weights: Path, *more: str) -> subprocess.Popen:
    """`python -m prep` in a process of its own, with its own local Ray."""
    ray_tmp = tempfile.mkdtemp(prefix="cdmr-ray-", dir="/tmp")  # short socket paths
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmp,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "prep", "--data", str(data), "--out", str(out),
         "--codec-weights", str(weights), *SMALL_PREP_ARGS, "--no-original", *more],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_job_on_a_set_waits_for_the_first_and_codes_nothing_twice(
        synthetic_small, codec_q1, tmp_path, ray_local, capsys):
    from prep.job import lock

    out = tmp_path / "out"
    q1 = out / DATASET / "q1"
    first = prep_process(synthetic_small, out, codec_q1)
    second = refused = None
    try:
        deadline = time.time() + 300
        while not (q1 / lock.LOCK).exists() and time.time() < deadline and \
                first.poll() is None:
            time.sleep(0.05)
        holder = json.loads((q1 / lock.LOCK).read_text())
        assert holder["pid"] == first.pid
        second = prep_process(synthetic_small, out, codec_q1)
        refused = prep_process(synthetic_small, out, codec_q1, "--no-wait")
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 2 and "Traceback" not in err
        [line] = error_lines(err)
        assert f"{q1} is being written by prep job pid {first.pid} on " in line
        assert "--no-wait" in line
        first_out, first_err = first.communicate(timeout=300)
        second_out, second_err = second.communicate(timeout=300)
    finally:
        for process in (first, second, refused):
            if process is not None:
                process.kill()
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == 0, second_err[-3000:]
    assert f"{q1}: 0 of 6 shards already done" in first_out
    assert f"{q1} is being written by prep job pid {first.pid} on " in second_out
    assert f"{q1}: 6 of 6 shards already done" in second_out  # nothing coded twice
    assert "wrote " not in second_out
    assert not (q1 / lock.LOCK).exists()

    # a lock left by a killed job on this host: its pid is gone
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (q1 / lock.LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid,
                                             "started": time.time(), "token": "killed"}))
    assert prep_main(["--data", str(synthetic_small), "--out", str(out), "--codec-weights",
                      str(codec_q1), *SMALL_PREP_ARGS, "--no-original", "--no-wait"]) == 0
    assert f"{q1}: taking over the lock of a prep job pid {gone.pid}" in \
        capsys.readouterr().out
    # ... and one on another host that stopped its heartbeat
    (q1 / lock.LOCK).write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x"}))
    old = time.time() - lock.STALE_S - 1
    os.utime(q1 / lock.LOCK, (old, old))
    said = []
    with lock.hold([q1], wait=False, say=said.append):
        assert json.loads((q1 / lock.LOCK).read_text())["pid"] == os.getpid()
    assert len(said) == 1 and "on elsewhere" in said[0] and not (q1 / lock.LOCK).exists()
