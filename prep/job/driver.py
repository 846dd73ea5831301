"""The prep job: plan the shards, hand them to the actors (pool.py), merge the manifests.

One job writes the original set, the learned codec's set of one quality and any classical
(JPEG, WebP) sets. Shards are the unit of work and of resume. SIGINT or SIGTERM of the driver
stops the actors (what they were writing stays temporary and is removed by the next run, which
finishes the job).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

import pyarrow as pa

from foundation import schema, storage
from foundation.coding import scale_table
from foundation.hyperprior import ARCHITECTURE, METRIC, CodecWeights, codec_sizes, load_codec
from foundation.progress import progress
from foundation.sets import SetId
from foundation.storage import Location
from prep.codec import classical
from prep.datasets.listing import Listing, list_dataset
from prep.job import lock
from prep.job.config import PrepConfig
from prep.job.plan import SHUFFLE_SEED, check_or_record, clear_set, plan_record, plan_shards
from prep.job.pool import ActorPool, Resources, choose_resources
from prep.job.shards import ShardResult, ShardTask, complete_shards, part_paths

log = logging.getLogger(__name__)

@dataclass
class SetSummary:
    set_dir: Location
    set_id: SetId
    counts: dict = field(default_factory=dict)  # split -> samples
    failures: list[dict] = field(default_factory=list)
    shards_total: int = 0
    shards_skipped: int = 0
    damaged: list[str] = field(default_factory=list)  # finished shards found damaged, redone


@dataclass
class PrepSummary:
    sets: list[SetSummary]
    resources: Resources | None
    encoded_images: int = 0
    seconds: float = 0.0
    peak_rss_bytes: dict = field(default_factory=dict)  # worker -> bytes
    nodes: set = field(default_factory=set)  # Ray node ids whose workers wrote shards
    workers_started: int = 0  # more than resources.workers when dead workers were replaced
    completions: list = field(default_factory=list)  # (seconds since start, images) per shard

    @property
    def steady_rate(self) -> float | None:
        """img/s between the first and the last shard to finish: no start-up, no first shard."""
        if len(self.completions) < 3:
            return None
        (first, _), *rest = sorted(self.completions)
        return sum(n for _, n in rest) / max(rest[-1][0] - first, 1e-9)

    @property
    def failed_keys(self) -> set[str]:
        return {f["key"] for s in self.sets for f in s.failures}


def versions() -> dict[str, str]:
    names = ("torch", "compressai", "ray", "webdataset", "numpy", "pyarrow", "pillow", "zstandard")
    return {"python": platform.python_version(), **{n: metadata.version(n) for n in names}}


def _tasks(listing: Listing, set_dir: Location, set_id: SetId, weights_sha,
           config) -> tuple[SetSummary, list[ShardTask]]:
    """The set's summary so far and its shard tasks still to do."""
    plan = plan_shards(listing.items, config.shard_size)
    storage.makedirs(set_dir)
    if config.force:
        clear_set(set_dir)
    encoder = classical.encoder_info(set_id.codec, set_id.quality) if set_id.classical else None
    check_or_record(set_dir, plan_record(listing, plan, set_id, weights_sha, encoder=encoder),
                    config.force)
    schema.remove_stale_temporaries(set_dir)
    schema.remove_stale_temporaries(storage.join(set_dir, schema.PARTS))
    done, damaged = complete_shards(set_dir, config.verify)
    todo = [
        ShardTask(str(set_dir), name, str(listing.root), set_id, items, config.max_pixels)
        for name, items in plan.items() if name not in done
    ]
    return SetSummary(set_dir, set_id, shards_total=len(plan),
                      shards_skipped=len(plan) - len(todo), damaged=damaged), todo


def _on_sigterm(handler) -> None:
    """Set the SIGTERM handler where Python allows it (the main thread; None: one set outside
    Python, left alone)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt("SIGTERM") inside, as SIGINT raises KeyboardInterrupt,
    so that the `finally` blocks stop the actors and a local Ray (the handler that ray.init
    installs would tear Ray down under the running job). A signal that lands in a blocking
    ray.get or ray.wait comes out of Ray as a bare KeyboardInterrupt (its check_status drops the
    handler's exception), so the name is kept here and put back."""
    received: list[str] = []

    def interrupt(signum, frame) -> None:
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(received[-1])

    previous = signal.getsignal(signal.SIGTERM)
    _on_sigterm(interrupt)
    try:
        yield
    except KeyboardInterrupt as stop:
        if stop.args or not received:
            raise
        raise KeyboardInterrupt(received[-1]) from stop
    finally:
        _on_sigterm(previous)


def run(config: PrepConfig) -> PrepSummary:
    """Prepare the sets of `config.sets()`; resumable."""
    sets = config.sets()
    if not sets:
        raise ValueError("nothing to write: ask for the original set, a learned-codec quality "
                         "or a classical codec's qualities")
    for s in sets:
        if s.classical:
            classical.check(s.codec, s.quality)  # before Ray starts
    listing = list_dataset(config.data, config.split, config.seed)
    weights, codec_info = _codec(config) if config.quality else (None, None)
    set_dirs = [schema.set_dir(config.out, listing.name, s) for s in sets]
    with lock.hold(set_dirs, wait=not config.no_wait):  # one job per set, before any write
        return _run_held(config, sets, listing, weights, codec_info)


def _run_held(config: PrepConfig, sets, listing: Listing, weights, codec_info) -> PrepSummary:
    import ray

    with ray_session(config.address), sigterm_as_interrupt():
        resources = choose_resources(config, ray.cluster_resources())
        summaries, tasks = [], []
        for set_id in sets:
            set_dir = schema.set_dir(config.out, listing.name, set_id)
            set_summary, todo = _tasks(listing, set_dir, set_id,
                                       weights.sha256 if set_id.learned else None, config)
            summaries.append(set_summary)
            tasks += todo
        summary = PrepSummary(summaries, resources)
        for s in summaries:
            for note in s.damaged:
                print(note)
            print(f"{s.set_dir}: {s.shards_skipped} of {s.shards_total} shards already done")
        if tasks:
            _encode(tasks, resources, weights, summary)
        for s in summaries:
            _finish_set(s, listing, config, _set_codec(s, codec_info), resources)
        return summary


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for the jobs run inside: a Ray that is already up is used as it is; otherwise one is
    started (local, or the cluster at `address`) and shut down at the end, so that several
    jobs in one process pay its start-up once. The SIGTERM handler that ray.init sets (exit at
    once) goes with it."""
    import ray

    if ray.is_initialized():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        _on_sigterm(previous)


def _codec(config: PrepConfig) -> tuple[CodecWeights, dict]:
    """Resolve and check the weights on the driver, before any actor starts."""
    from foundation.hyperprior import resolve_weights

    weights = resolve_weights(config.quality, config.codec_weights)
    model = load_codec(weights)
    info = {
        "name": ARCHITECTURE, "metric": METRIC, "quality": config.quality, **codec_sizes(model),
        "weights_source": weights.source, "weights_sha256": weights.sha256,
        "scale_table": scale_table(model),
    }
    return weights, info


def _set_codec(s: SetSummary, learned_info: dict | None) -> dict | None:
    """dataset.json's `codec`: the learned codec's, a classical encoder's, None (original)."""
    if not s.set_id.coded:
        return None
    return learned_info if s.set_id.learned else classical.encoder_info(s.set_id.codec,
                                                                         s.set_id.quality)


def _encode(tasks: list[ShardTask], resources: Resources, weights, summary: PrepSummary) -> None:
    import ray

    images = sum(len(t.items) for t in tasks)
    print(f"encoding {images} images in {len(tasks)} shards on {resources.describe()}")
    start = time.perf_counter()
    pool = ActorPool(resources, ray.put(weights))
    sets = list(dict.fromkeys(t.set_id.name for t in tasks))
    bars = {
        name: progress(total=sum(len(t.items) for t in tasks if t.set_id.name == name),
                       unit="img", desc=name, position=i, smoothing=0.1)
        for i, name in enumerate(sets)
    }
    done = defaultdict(int)

    def on_done(task: ShardTask, result: ShardResult) -> None:
        bar = bars[task.set_id.name]
        done[task.set_id.name] += 1
        bar.update(len(task.items))
        bar.set_postfix_str(f"shards {done[task.set_id.name]}", refresh=False)
        summary.completions.append((time.perf_counter() - start, len(task.items)))
        worker = result.worker
        summary.peak_rss_bytes[worker] = max(summary.peak_rss_bytes.get(worker, 0),
                                             result.peak_rss_bytes)
        summary.nodes.add(result.node)

    try:
        errors = pool.run(tasks, on_done)
    finally:
        for bar in bars.values():
            bar.close()
        pool.shutdown()
        summary.workers_started = pool.started
    summary.encoded_images = images
    summary.seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(
            f"{len(errors)} shard(s) could not be written; the finished ones are kept and the "
            f"same command codes only the rest once the cause is fixed:\n  " + "\n  ".join(errors)
        )


def _finish_set(s: SetSummary, listing: Listing, config: PrepConfig, codec_info, resources):
    """Merge the per-shard rows into the set's manifest, failures and dataset.json."""
    names = [storage.name(p) for p in schema.shard_paths(s.set_dir)]
    rows = [schema.read_table(part_paths(s.set_dir, n)[0]) for n in names]
    manifest = (pa.concat_tables(rows) if rows
                else schema.manifest_schema(s.set_id).empty_table())
    shard_failures = [schema.read_table(part_paths(s.set_dir, n)[1]) for n in names]
    listed = pa.Table.from_pylist([f.row() for f in listing.failures], schema.failure_schema())
    failures = pa.concat_tables([listed, *shard_failures])
    schema.write_table(manifest, storage.join(s.set_dir, schema.MANIFEST))
    schema.write_table(failures, storage.join(s.set_dir, schema.FAILURES))
    s.failures = failures.to_pylist()
    splits = manifest.column("split").to_pylist()
    s.counts = {split: splits.count(split) for split in schema.SPLITS}
    failed = defaultdict(int)
    for f in s.failures:
        failed[f["split"]] += 1
    info = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": {"name": listing.name, "root": str(listing.root), "layout": listing.layout},
        "split": listing.split,
        "categories": list(listing.categories),
        "set": s.set_id.name,
        "codec": codec_info,
        "counts": {split: {"samples": s.counts[split], "failures": failed[split],
                           "shards": sum(n.startswith(split + "-") for n in names)}
                   for split in schema.SPLITS},
        "shard_size": config.shard_size,
        schema.PREP_COMMAND: _recorded(config),  # what a reader is told to replay
        schema.FINGERPRINTS: {n: asdict(schema.read_fingerprint(s.set_dir, n)) for n in names},
        "shard_order": f"each split shuffled with seed {SHUFFLE_SEED} (plan.py)",
        "device": resources.device if resources else None,
        "verified": _verified(s, resources),
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    storage.write_atomic(storage.join(s.set_dir, schema.DATASET_JSON),
                        json.dumps(info, indent=1, allow_nan=True).encode())


def _recorded(config: PrepConfig) -> list[str]:
    """The job's command line with its local paths absolute, so that it works from any folder,
    and without --out: a reader adds where the set is then (the same set written elsewhere, on a
    cluster or moved, records the same command)."""
    weights = config.codec_weights
    argv = replace(config, data=Path(config.data).absolute(),
                   codec_weights=None if weights is None else Path(weights).absolute()).to_argv()
    at = argv.index("--out")
    return argv[:at] + argv[at + 2:]


def _verified(s: SetSummary, resources: Resources | None) -> str | None:
    """dataset.json's note of what was checked where (learned sets only)."""
    if not s.set_id.learned or resources is None:
        return None
    where = "a transform actor" if resources.transformers else "the same worker"
    return (f"per image, y_hat and the scale indexes entropy-decoded from the strings on the "
            f"CPU (h_s on the CPU, batch 1, as a reader decodes) equal the transforms' values "
            f"(on {resources.device}, in {where}, batches of {resources.batch_size}); images "
            f"that differ are failures (stage verify)")


def too_many_failures(config: PrepConfig, summary: PrepSummary) -> str | None:
    """The error when more inputs failed than `config.max_failures` allows; None otherwise."""
    failed = len(summary.failed_keys)
    if failed <= config.max_failures:
        return None
    return (f"{failed} input(s) failed, more than --max-failures {config.max_failures}; the "
            f"good shards are kept (see {schema.FAILURES} in each set)")


def describe(summary: PrepSummary) -> str:
    """The summary printed at the end of a job."""
    lines = []
    for s in summary.sets:
        total = sum(s.counts.values())
        counts = ", ".join(f"{k} {v}" for k, v in s.counts.items())
        lines.append(f"{s.set_dir}: {total} samples ({counts}) in {s.shards_total} shards, "
                     f"{len(s.failures)} failure(s)")
        for f in s.failures[:10]:
            lines.append(f"  failed {f['key']} ({f['source']}): {f['reason']}")
        if len(s.failures) > 10:
            lines.append(f"  ... and {len(s.failures) - 10} more in {schema.FAILURES}")
    if summary.encoded_images:
        rate = summary.encoded_images / summary.seconds
        peak = max(summary.peak_rss_bytes.values(), default=0) / 2**20
        nodes = len(summary.nodes - {""}) or 1
        lines.append(f"wrote {summary.encoded_images} images in {summary.seconds:.1f} s "
                     f"({rate:.2f} img/s) on {summary.resources.describe()} on {nodes} "
                     f"node(s); peak worker memory {math.ceil(peak)} MiB")
    return "\n".join(lines)

