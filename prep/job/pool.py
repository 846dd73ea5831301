"""The prep job's actors: how many of which kind, where, and the shard tasks spread over them.

Without GPUs each worker runs the whole codec. With GPUs (the split pipeline) one transform actor
per GPU runs the codec's networks for the CPU workers of its node, which entropy-code, check
and write the shards. Shards are the unit of work: an actor that dies has its shards handed to
a fresh actor, and a shard only appears when complete, so each key lands exactly once.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from foundation.runtime import resolve_device
from prep.job.shards import ShardEncoder, ShardTask, Transformer

if TYPE_CHECKING:
    from prep.job.config import PrepConfig

log = logging.getLogger(__name__)

ACTOR_PREFIX = "prep-encoder"
MAX_ATTEMPTS = 3  # per shard, across actor deaths


@dataclass(frozen=True)
class Resources:
    workers: int
    device: str  # where the codec's transforms run
    num_cpus: float
    num_gpus: float
    threads: int
    batch_size: int
    transformers: int = 0  # split pipeline: actors that run the transforms for the workers
    transformer_cpus: float = 0.0

    def describe(self) -> str:
        if self.transformers:
            return (f"{self.transformers} {self.device} transform actor(s) feeding "
                    f"{self.workers} CPU worker(s) x {self.threads} thread(s), "
                    f"batch {self.batch_size}")
        kind = "GPU" if self.device == "cuda" else "CPU"
        return (f"{self.workers} {kind} worker(s) x {self.threads} thread(s), "
                f"batch {self.batch_size}")


def choose_resources(config: PrepConfig, cluster: dict) -> Resources:
    """Actors and their shares of the cluster, from the cluster's resources and the config.

    fused: each worker runs the whole codec (one per GPU, or one per CPU without GPUs).
    split (the default with GPUs): one transform actor per GPU runs the networks in batches;
    a CPU worker on every other core entropy-codes, checks, encodes the members and writes
    the shards, so that the cores, not the GPU, set the pace. With `--device cpu` the
    transform actor runs on a CPU (the same code path, for tests)."""
    gpus = int(cluster.get("GPU", 0))
    cpus = max(1, int(cluster.get("CPU", os.cpu_count() or 1)))
    use_gpu = resolve_device(config.device, gpus > 0, "the Ray cluster") == "cuda"
    split = config.pipeline == "split" or (config.pipeline == "auto" and use_gpu)
    if split:
        transformers = gpus if use_gpu else 1
        workers = config.workers or max(1, cpus - transformers)
        share = min(1.0, cpus / (workers + transformers))  # fractional: all start on few CPUs
        return Resources(workers, "cuda" if use_gpu else "cpu", share, 0,
                         config.threads_per_worker or 1, config.batch_size or 16,
                         transformers, share)
    if use_gpu:
        workers = min(config.workers or gpus, gpus)
        threads = config.threads_per_worker or max(1, min(4, cpus // workers))
        return Resources(workers, "cuda", min(threads, cpus / workers), 1,
                         threads, config.batch_size or 16)
    workers = config.workers or cpus
    threads = config.threads_per_worker or max(1, cpus // workers)
    # fractional CPUs so that more workers than CPUs still start (they share the cores)
    return Resources(workers, "cpu", min(threads, cpus / workers), 0, threads,
                     config.batch_size or 1)


class ActorPool:
    """Shard tasks over actors, two in flight per actor; dead actors are replaced. In the split
    pipeline, worker i is fed by transform actor i mod T and placed on its node where it can;
    Ray restarts a transform actor that dies and retries its calls."""

    def __init__(self, resources: Resources, weights_ref):
        import ray

        self.ray = ray
        self.resources = resources
        self.weights_ref = weights_ref
        self.run_id = uuid.uuid4().hex[:6]
        self.started = 0
        self.remote = ray.remote(ShardEncoder)
        self.transformers = [self._new_transformer(i) for i in range(resources.transformers)]
        self.nodes = ray.get([t.node.remote() for t in self.transformers])
        self.actors = [self._new_actor(slot) for slot in range(resources.workers)]

    def _new_transformer(self, index: int):
        r = self.resources
        return self.ray.remote(Transformer).options(
            name=f"{ACTOR_PREFIX}-{self.run_id}-transform-{index}",
            num_cpus=r.transformer_cpus, num_gpus=1 if r.device == "cuda" else 0,
            max_restarts=MAX_ATTEMPTS, max_task_retries=MAX_ATTEMPTS,
        ).remote(self.weights_ref, r.device, None if r.device == "cuda" else r.threads)

    def _new_actor(self, slot: int):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        r = self.resources
        self.started += 1
        options = {"name": f"{ACTOR_PREFIX}-{self.run_id}-{self.started}",
                   "num_cpus": r.num_cpus, "num_gpus": r.num_gpus, "max_restarts": 0}
        transformer = None
        if self.transformers:
            transformer = self.transformers[slot % len(self.transformers)]
            node = self.nodes[slot % len(self.transformers)]
            if node:  # beside its transform actor: images do not cross the network
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        device = "cpu" if transformer else r.device
        return self.remote.options(**options).remote(self.weights_ref, device, r.threads,
                                                     r.batch_size, transformer=transformer)

    def run(self, tasks: list[ShardTask], on_done) -> list[str]:
        """Run every task; returns the errors of shards that could not be written."""
        ray = self.ray
        queue = deque((task, 1) for task in tasks)
        inflight: dict = {}  # ref -> (slot, actor, task, attempt)
        errors = []

        def fill(slot: int) -> None:
            while queue and sum(1 for v in inflight.values() if v[0] == slot) < 2:
                task, attempt = queue.popleft()
                actor = self.actors[slot]
                inflight[actor.write.remote(task)] = (slot, actor, task, attempt)

        for slot in range(len(self.actors)):
            fill(slot)
        while inflight:
            [ref], _ = ray.wait(list(inflight), num_returns=1)
            slot, actor, task, attempt = inflight.pop(ref)
            try:
                on_done(task, ray.get(ref))
            except ray.exceptions.RayActorError as err:
                log.warning("a worker died while writing %s; a new worker redoes it", task.shard)
                if self.actors[slot] is actor:  # its other task fails too: replace it once
                    self.actors[slot] = self._new_actor(slot)
                if attempt < MAX_ATTEMPTS:
                    queue.appendleft((task, attempt + 1))
                else:
                    errors.append(f"{task.path}: its worker died {attempt} times; if it ran out "
                                  f"of memory, lower --max-pixels or --batch-size, or run fewer "
                                  f"--workers ({str(err).splitlines()[0]})")
            except ray.exceptions.RayTaskError as err:
                errors.append(_shard_error(task, err.cause))
            fill(slot)
        return errors

    def shutdown(self) -> None:
        for actor in self.actors + self.transformers:
            self.ray.kill(actor)


def _shard_error(task: ShardTask, cause: BaseException) -> str:
    """A shard that failed as a whole, in one line: images fail alone, so this is its storage
    (the error names the file and what to fix) or a bug."""
    if isinstance(cause, OSError):
        return str(cause)
    return (f"{task.path}: unexpected {type(cause).__name__}: {cause} (a bug in prep, not in the "
            f"data: please report it)")
