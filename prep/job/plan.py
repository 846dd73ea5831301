"""The deterministic shard plan of a set, and the record that lets a rerun resume it safely."""

from __future__ import annotations

import hashlib
import json
import random

from foundation import schema, storage
from foundation.sets import SetId
from foundation.storage import Location
from prep.datasets.listing import Item, Listing

PLAN_FILE = "plan.json"
# Keys start with the class name: shards cut from the sorted keys would hold one class each and
# a training stream's buffer could not mix them. Each split is shuffled with this seed first.
SHUFFLE_SEED = 0


def plan_shards(items: tuple[Item, ...], shard_size: int,
                seed: int = SHUFFLE_SEED) -> dict[str, tuple[Item, ...]]:
    """Shard name -> items: per split, sorted by key then shuffled with `seed` (the same order
    on every run and node), `shard_size` a shard."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    plan = {}
    for split in schema.SPLITS:
        keyed = sorted((item for item in items if item.split == split), key=lambda i: i.key)
        random.Random(f"{seed}:{split}").shuffle(keyed)
        for index, start in enumerate(range(0, len(keyed), shard_size)):
            plan[schema.shard_name(split, index)] = tuple(keyed[start:start + shard_size])
    return plan


def plan_record(listing: Listing, plan: dict, set_id: SetId, weights_sha256: str | None,
                seed: int = SHUFFLE_SEED, encoder: dict | None = None):
    """What the shards of a set depend on; a rerun must match it to reuse them. `encoder`: a
    classical codec's library and settings (another libjpeg gives other bytes)."""
    layout = {name: [item.key for item in items] for name, items in plan.items()}
    record = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": listing.name,
        "split": listing.split,
        "set": set_id.name,
        "weights_sha256": weights_sha256,
        "shuffle_seed": seed,
        "shards_sha256": hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest(),
    }
    return record | ({"encoder": encoder} if encoder else {})


def check_or_record(set_dir: Location, record: dict, force: bool) -> None:
    """Refuse to mix shards of different plans in one folder (unless --force starts over)."""
    path = storage.join(set_dir, schema.PARTS, PLAN_FILE)
    if storage.is_file(path) and not force:
        previous = json.loads(storage.read_bytes(path))
        changed = sorted(k for k in record.keys() | previous.keys()
                         if record.get(k) != previous.get(k))
        if changed:
            raise ValueError(
                f"{set_dir} holds shards of another plan (changed: {', '.join(changed)}). "
                f"Pass --force to redo them, or choose another --out."
            )
    storage.makedirs(storage.parent(path))
    storage.write_atomic(path, json.dumps(record, indent=1, sort_keys=True).encode())


def clear_set(set_dir: Location) -> None:
    """--force: remove a set's shards, parts and manifests (nothing else in the folder)."""
    for path in schema.shard_paths(set_dir):
        storage.remove(path)
    for name in (schema.MANIFEST, schema.FAILURES, schema.DATASET_JSON):
        storage.remove(storage.join(set_dir, name))
    for path in storage.glob(storage.join(set_dir, schema.PARTS), "*"):
        storage.remove(path)
