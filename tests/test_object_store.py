"""Shards on an object store: prep writes to s3:// on a real S3-compatible server (moto's, on
127.0.0.1), resumes there, and the trainer's streams read it back; the bytes equal a local run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter

import pytest
from torch.utils.data import DataLoader

from classifier.data import EvalStream, open_shard_set
from foundation import schema
from foundation.sets import SetId
from tests.conftest import SMALL_PREP_ARGS
from tests.ray_nodes import free_port

pytestmark = pytest.mark.slow
BUCKET = "cdmr-shards"
OUT = f"s3://{BUCKET}/runs"


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A moto S3 server on loopback with one bucket; the variables a user sets for it."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=log, stderr=subprocess.STDOUT)
    env = {"AWS_ACCESS_KEY_ID": "cdmr-test", "AWS_SECRET_ACCESS_KEY": "cdmr-test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/moto-api/", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        client(env).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def client(env: dict):
    """boto3, as `aws s3` sees the bucket: independent of the project's storage code."""
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        region_name=env["AWS_DEFAULT_REGION"])


def objects(env: dict, prefix: str) -> dict[str, str]:
    """key -> ETag of every object under the prefix."""
    listed = client(env).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"][len(prefix):]: o["ETag"] for o in listed.get("Contents", [])}


def prep(env: dict, data, weights, tmp_path) -> str:
    """`python -m prep --out s3://...` as a user runs it, with its own local Ray."""
    command = [sys.executable, "-m", "prep", "--data", str(data), "--out", OUT,
               "--codec-weights", str(weights), *SMALL_PREP_ARGS]
    ray_tmp = tempfile.mkdtemp(prefix="cdmr-ray-", dir="/tmp")  # short socket paths
    try:
        result = subprocess.run(
            command, env={**os.environ, **env, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmp},
            cwd=tmp_path, capture_output=True, text=True, timeout=400)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def s3_shards(s3_env, synthetic_small, codec_q1, tmp_path_factory) -> str:
    prep(s3_env, synthetic_small, codec_q1, tmp_path_factory.mktemp("prep"))
    return f"{OUT}/synthetic-small"


def test_prep_writes_the_local_bytes_to_s3_and_resumes_there(
        s3_env, s3_shards, small_shards, synthetic_small, codec_q1, tmp_path):
    s3 = client(s3_env)
    for name in ("original", "q1"):
        prefix = f"runs/synthetic-small/{name}/"
        stored = objects(s3_env, prefix)
        shards = sorted(k for k in stored if k.endswith(".tar"))
        assert shards == [p.name for p in schema.shard_paths(small_shards / name)]
        assert {schema.MANIFEST, schema.FAILURES, schema.DATASET_JSON} <= stored.keys()
        assert not [k for k in stored if ".tmp-" in k]
        for shard in shards:
            body = s3.get_object(Bucket=BUCKET, Key=prefix + shard)["Body"].read()
            assert body == (small_shards / name / shard).read_bytes(), shard

    # lose one shard, leave what a crashed writer leaves: the rerun redoes only that shard
    q1 = "runs/synthetic-small/q1/"
    s3.delete_object(Bucket=BUCKET, Key=q1 + "train-000002.tar")
    s3.put_object(Bucket=BUCKET, Key=q1 + ".train-000002.tar.tmp-dead", Body=b"partial")
    before = objects(s3_env, q1)
    output = prep(s3_env, synthetic_small, codec_q1, tmp_path)
    assert f"{OUT}/synthetic-small/original: 6 of 6 shards already done" in output
    assert f"{OUT}/synthetic-small/q1: 5 of 6 shards already done" in output
    after = objects(s3_env, q1)
    assert ".train-000002.tar.tmp-dead" not in after
    assert {k: v for k, v in after.items() if k.endswith(".tar")} == {
        k: v for k, v in before.items() if k.endswith(".tar")} | {
        "train-000002.tar": after["train-000002.tar"]}
    body = s3.get_object(Bucket=BUCKET, Key=q1 + "train-000002.tar")["Body"].read()
    assert body == (small_shards / "q1" / "train-000002.tar").read_bytes()
    for name in (schema.MANIFEST, schema.FAILURES):  # the same rows (Parquet is reproducible)
        body = s3.get_object(Bucket=BUCKET, Key=q1 + name)["Body"].read()
        assert body == (small_shards / "q1" / name).read_bytes(), name


def test_trainer_streams_read_each_sample_once_from_s3(s3_env, s3_shards, monkeypatch):
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    shard_set = open_shard_set(s3_shards, "latent", SetId.of(1))
    assert shard_set.counts == {"train": 32, "validate": 4, "test": 4}
    manifest = schema.read_manifest(shard_set.directory).to_pylist()
    for split in ("train", "test"):
        seen = Counter()
        for rank in range(2):  # two ranks, two forked loader workers each
            stream = EvalStream(shard_set.shards(split), lambda raw: raw["__key__"], rank, 2)
            seen.update(DataLoader(stream, batch_size=None, num_workers=2))
        assert seen == Counter(r["key"] for r in manifest if r["split"] == split)


def test_unreachable_store_and_unknown_scheme_are_explained(
        s3_env, synthetic_small, codec_q1, ray_local, monkeypatch, capsys):
    from prep.cli import main

    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing there
    argv = ["--data", str(synthetic_small), "--out", f"s3://{BUCKET}/elsewhere",
            "--codec-weights", str(codec_q1), *SMALL_PREP_ARGS]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"s3://{BUCKET}/elsewhere" in error and "AWS_ENDPOINT_URL" in error
    with pytest.raises(ValueError, match="unsupported storage scheme ftp://"):
        open_shard_set("ftp://host/shards/synthetic-small", "latent", SetId.of(1))
