"""A predictions file is taken only for the checkpoint and the shards that made it."""

from __future__ import annotations

import numpy as np

from foundation import predictions

INFO = {"shards": {"test-000000.tar": {"bytes": 10, "sha256": "a" * 64},
                   "test-000001.tar": {"bytes": 12, "sha256": "b" * 64},
                   "train-000000.tar": {"bytes": 30, "sha256": "c" * 64}}}
FOUND = {"key": np.array(["x", "y"]), "label": np.array([0, 2]),
         "top": np.array([[0, 1, 2], [1, 2, 0]])}


def test_a_file_is_read_back_for_its_checkpoint_and_shards_only(tmp_path):
    path = tmp_path / "p.parquet"
    shards = predictions.split_fingerprint([INFO], "test")
    predictions.write(path, FOUND, "1" * 64, shards)
    read = predictions.read(path, "1" * 64, shards)
    assert list(read["key"]) == ["x", "y"] and np.array_equal(read["top"], FOUND["top"])
    assert predictions.read(path, "2" * 64, shards) is None  # another checkpoint's
    assert predictions.read(path, "1" * 64, "0" * 64) is None  # other shards
    assert predictions.read(tmp_path / "none.parquet", "1" * 64, shards) is None
    path.write_bytes(path.read_bytes()[:40])  # cut short: made again, not an error
    assert predictions.read(path, "1" * 64, shards) is None


def test_the_fingerprint_follows_the_split_and_every_shard_of_it():
    test = predictions.split_fingerprint([INFO], "test")
    assert test != predictions.split_fingerprint([INFO], "train")
    redone = {"shards": {**INFO["shards"], "test-000001.tar": {"bytes": 12, "sha256": "d" * 64}}}
    assert test != predictions.split_fingerprint([redone], "test")
    retrained = {"shards": {**INFO["shards"], "train-000000.tar": {"bytes": 31, "sha256": "e"}}}
    assert test == predictions.split_fingerprint([retrained], "test")  # the test split is the same
    assert test != predictions.split_fingerprint([INFO, redone], "test")  # pooled rates
