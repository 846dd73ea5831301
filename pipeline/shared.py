"""What every node of a cluster must see, checked at the start of a run rather than found
missing an hour in: the runs folder (checkpoints, fitted starts, test results), the reports,
local shard folders and a file-based MLflow store, shared; the dataset, at the same path.
Object stores (s3://, gs://) and tracking servers are seen from everywhere by design and are
not checked.

The driver writes a marker in each shared folder; a task pinned to each alive node looks for
it there, and for the dataset.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from foundation import storage
from foundation.storage import Location

MARKER = ".cdmr-shared-check-"


def folders(paths: list[Location], tracking_uri: str) -> list[Path]:
    """The local folders among `paths`, and the folder of a SQLite or file MLflow store."""
    local = [Path(p) for p in paths if not storage.is_remote(p)]
    for prefix in ("sqlite:///", "file://"):
        if tracking_uri.startswith(prefix):
            store = Path(tracking_uri[len(prefix):])
            local.append(store.parent if prefix == "sqlite:///" else store)
    if "://" not in tracking_uri:  # a plain path is a file store
        local.append(Path(tracking_uri))
    return list(dict.fromkeys(local))


def _mark(folder: Path, token: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{MARKER}{token}"
    marker.write_text(token)
    return marker


def _unseen(markers: list[str], token: str, present: list[str]) -> tuple[list[str], list[str]]:
    """On one node: the markers it does not see (or sees with other contents), and the paths
    of `present` that are not there."""
    return ([m for m in markers if not Path(m).is_file() or Path(m).read_text() != token],
            [p for p in present if not Path(p).exists()])


def check(paths: list[Location], tracking_uri: str, present: list[Location] = (),
          min_nodes: int = 2) -> str | None:
    """On a cluster of `min_nodes` alive nodes or more, a ValueError naming the first folder a
    node does not see, or the first of the local paths `present` (the dataset) a node does not
    have; else what was checked, in one line (None: one node, nothing to check)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < min_nodes:
        return None
    token = uuid.uuid4().hex
    local = folders(paths, tracking_uri)
    here = [str(p) for p in present if not storage.is_remote(p)]
    markers = [_mark(f, token) for f in local]
    try:
        look = ray.remote(_unseen)
        seen = ray.get([look.options(num_cpus=0, max_retries=0, scheduling_strategy=(
            NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))).remote(
            [str(m) for m in markers], token, here) for n in nodes], timeout=300)
    finally:
        for m in markers:
            m.unlink(missing_ok=True)
    for node, (unseen, missing) in zip(nodes, seen, strict=True):
        if missing:
            raise ValueError(
                f"{missing[0]} is not on the Ray node at {node['NodeManagerAddress']}: the "
                f"dataset must be at the same path on every node (downloaded on each at set-up, "
                f"or on a shared filesystem; docs/paper.md, what the nodes share)")
        if unseen:
            folder = Path(unseen[0]).parent
            raise ValueError(
                f"{folder} is not shared: the Ray node at {node['NodeManagerAddress']} does not "
                f"see what this driver wrote there; give an absolute path on a filesystem every "
                f"node mounts (NFS, EFS) for the runs, the reports, local shards and a file-based "
                f"MLflow store, or an object store (s3://) for the shards and a tracking server "
                f"(docs/paper.md, what the nodes share)")
    return f"shared by the {len(nodes)} nodes: {', '.join(map(str, local))}"
