"""A classifier's predictions on one split of a shard set: one Parquet file, a row per sample
(key, label, the top-5 classes best first). The file carries the sha256 of the checkpoint that
made it and a fingerprint of the split's shards, so a reader takes it only for that same
classifier on that same data. The trainer writes its test pass (RUN_FILE, in the run folder);
evaluation caches its own and reads the trainer's instead of predicting again."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foundation import schema, storage

TOP_K = 5
RUN_FILE = "test-predictions.parquet"  # the trainer's test pass, beside its checkpoint
_CHECKPOINT, _SHARDS = b"checkpoint_sha256", b"shards_sha256"


def split_fingerprint(infos: list[dict], split: str) -> str:
    """The sha256 of what prep recorded (dataset.json) of a split's shards in one or more sets,
    in order: their names, sizes and sha256."""
    shards = [{name: record for name, record in info[schema.FINGERPRINTS].items()
               if schema.shard_split(name) == split} for info in infos]
    return hashlib.sha256(json.dumps(shards, sort_keys=True).encode()).hexdigest()


def write(path: Path, predictions: dict, checkpoint_sha256: str, shards_sha256: str) -> None:
    table = pa.table({"key": predictions["key"], "label": predictions["label"],
                      "top": list(predictions["top"])})
    table = table.replace_schema_metadata({_CHECKPOINT: checkpoint_sha256,
                                           _SHARDS: shards_sha256})
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_atomic(path, buffer.getvalue())


def read(path: Path, checkpoint_sha256: str, shards_sha256: str) -> dict | None:
    """The predictions, or None where there are none of that checkpoint on those shards (a
    damaged file among them: it is made again)."""
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        return None
    marks = table.schema.metadata or {}
    if (marks.get(_CHECKPOINT, b"").decode(), marks.get(_SHARDS, b"").decode()) != (
            checkpoint_sha256, shards_sha256):
        return None
    return {"key": table["key"].to_numpy(zero_copy_only=False), "label": table["label"].to_numpy(),
            "top": np.stack(table["top"].to_numpy(zero_copy_only=False))}
