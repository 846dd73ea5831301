"""The prep job on a real two-node Ray cluster on this machine, submitted with `ray job submit`:
workers run on both nodes and the shards equal those of a single-node run, byte for byte."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from foundation import schema
from tests import ray_nodes
from tests.conftest import SMALL_PREP_ARGS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    cluster = ray_nodes.start(cpus_per_node=1, nodes=2)
    yield cluster
    cluster.stop()


def set_contents(set_dir: Path) -> dict:
    """What a user compares between two runs: every shard's bytes, the manifest and failure
    files (Parquet is reproducible), and dataset.json but for its creation time."""
    info = schema.read_dataset_json(set_dir)
    info.pop("created")
    return {
        "shards": {p.name: p.read_bytes() for p in schema.shard_paths(set_dir)},
        "manifest": (set_dir / schema.MANIFEST).read_bytes(),
        "failures": (set_dir / schema.FAILURES).read_bytes(),
        "dataset.json": info,
        "keys": Counter(r["key"] for r in schema.read_manifest(set_dir).to_pylist()),
    }


def test_job_submitted_to_two_nodes_writes_the_single_node_shards(
        two_nodes, synthetic_small, codec_q1, small_shards, tmp_path):
    out = tmp_path / "cluster"
    entrypoint = [sys.executable, "-m", "prep", "--data", str(synthetic_small), "--out", str(out),
                  "--codec-weights", str(codec_q1), *SMALL_PREP_ARGS]
    job = two_nodes.ray("job", "submit", "--address", two_nodes.dashboard,
                        "--submission-id", "prep-two-nodes", "--", *entrypoint, timeout=400)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "on 2 node(s)" in job.stdout and "succeeded" in job.stdout

    # the encoder actors ran on both nodes, as `ray list actors` shows them
    listed = two_nodes.ray("list", "actors", "--address", two_nodes.dashboard, "--format",
                           "json", "--detail", "--filter", "class_name=ShardEncoder")
    assert listed.returncode == 0, listed.stderr
    actors = json.loads(listed.stdout)
    nodes = {n["node_id"] for n in two_nodes.alive_nodes()}
    assert len(nodes) == 2 and {a["node_id"] for a in actors} == nodes

    # the same command on one node (the session's local Ray) gave the same bytes
    for name in ("original", "q1"):
        got = set_contents(out / "synthetic-small" / name)
        expected = set_contents(small_shards / name)
        assert sorted(got["shards"]) == [
            "test-000000.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar",
            "train-000003.tar", "validate-000000.tar"]
        assert got["shards"] == expected["shards"]
        assert len(got["keys"]) == 40 and set(got["keys"].values()) == {1}
        assert got == expected
