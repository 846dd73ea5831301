"""Shard sets as PyTorch data for each domain, split over ranks and loader workers.

Training: every rank draws shards with replacement (seeded by seed, epoch, rank and worker) and
yields exactly `steps` batches per epoch, so ranks never wait on each other at the end of an
epoch however uneven the shards are. Evaluation: each sample goes to exactly one (rank, worker)
slot (whole shards when there are enough of them, else every slot-th sample), so counts reduced
over ranks equal the manifest's.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from classifier import domains
from classifier.transforms import PAPER_SIZES, InputSizes
from foundation import predictions, schema, storage
from foundation.sets import SetId

HELD_SAMPLES = 2048  # a training split of at most this many is held decoded (TrainStream)


@dataclass(frozen=True)
class ShardSet:
    """A prepared set as a domain reads it."""

    directory: Path | str  # a local path, or an object store URI
    domain: str
    info: dict  # dataset.json
    counts: dict  # split -> samples

    @property
    def num_classes(self) -> int:
        return len(self.info["categories"])

    @property
    def latent_channels(self) -> int | None:
        return (self.info.get("codec") or {}).get("M")  # None: no latents (original, JPEG)

    @property
    def train_held(self) -> bool:
        """Whether the training split is small enough to be held decoded (HELD_SAMPLES)."""
        return self.counts["train"] <= HELD_SAMPLES

    def shards(self, split: str) -> list[str]:
        """The shards prep recorded for a split (their sizes checked by open_shard_set)."""
        return [str(storage.join(self.directory, name))
                for name in sorted(self.info[schema.FINGERPRINTS])
                if schema.shard_split(name) == split]

    def fingerprint(self, split: str) -> str:
        """The split's data, hashed (predictions made on it carry this)."""
        return predictions.split_fingerprint([self.info], split)

    def codec_weights(self) -> list[str]:
        """The sha256 of the learned codec's weights that made its latents ([]: none)."""
        codec = self.info.get("codec") or {}
        return [codec["weights_sha256"]] if "weights_sha256" in codec else []


def open_shard_set(root: str | Path, domain: str, set_id: SetId | None = None,
                   splits: tuple[str, ...] = schema.SPLITS) -> ShardSet:
    """Check everything a run needs before any process group exists, the size of every shard of
    `splits` included; errors are one line that says what to do. `set_id` names the coded set
    (q4, jpeg30); the original domain ignores it."""
    set_id = domains.get(domain).reads(set_id)
    name = set_id.name
    root = storage.location(root)
    if not storage.is_dir(root):
        raise FileNotFoundError(f"shard folder {root} does not exist: run `make prep` first "
                                f"(it writes <out>/<dataset>/)")
    directory = storage.join(root, name)
    if not storage.is_dir(directory):
        found = sorted(n for n, folder in storage.listdir(root).items() if folder)
        how = "`make prep Q=...`" if set_id.learned else f"`python -m prep --{set_id.codec} ...`"
        raise FileNotFoundError(
            f"{directory} does not exist: the {domain} domain needs the {name} set, which was "
            f"not prepared (sets in {root}: {', '.join(found) or 'none'}); run {how}")
    info = schema.read_dataset_json(directory)
    schema.check_shards(directory, info, splits)
    counts = {split: info["counts"][split]["samples"] for split in schema.SPLITS}
    return ShardSet(directory, domain, info, counts)


@dataclass(frozen=True)
class PooledShardSet(ShardSet):
    """Learned sets of several qualities read as one (one classifier for every rate): the
    first's dataset.json, every part's shards and counts."""

    parts: tuple[ShardSet, ...] = ()

    def shards(self, split: str) -> list[str]:
        return [shard for part in self.parts for shard in part.shards(split)]

    def fingerprint(self, split: str) -> str:
        return predictions.split_fingerprint([part.info for part in self.parts], split)

    def codec_weights(self) -> list[str]:
        return [weights for part in self.parts for weights in part.codec_weights()]


def open_rates(root: str | Path, qualities: tuple[int, ...],
               splits: tuple[str, ...] = schema.SPLITS) -> PooledShardSet:
    """The latent sets of `qualities` as one (open_shard_set's checks for each); an error
    where they cannot feed one classifier (other latent channels, scales or classes)."""
    parts = tuple(open_shard_set(root, domains.LATENT.name, SetId.of(q), splits) for q in qualities)
    first = parts[0]
    for part in parts[1:]:
        for what, value in (("latent channels", lambda s: s.latent_channels),
                            ("scale table", lambda s: s.info["codec"]["scale_table"]),
                            ("classes", lambda s: s.info["categories"])):
            if value(part) != value(first):
                raise ValueError(
                    f"--rates: {part.directory} and {first.directory} differ in their {what}: "
                    f"one classifier for every rate needs latents of one shape (CompressAI's "
                    f"qualities 1-5 have M=192, 6-8 M=320: choose rates of one group)")
    counts = {split: sum(p.counts[split] for p in parts) for split in schema.SPLITS}
    return PooledShardSet(first.directory, first.domain, first.info, counts, parts)


class SampleTransform:
    """Raw sample -> (input tensor, label), decoding only the members the domain reads;
    `hint`: the input is (latent, decoded image) for feature distillation (trainer.distill)."""

    def __init__(self, shard_set: ShardSet, train: bool, resize: int, crop: int,
                 latent_resize: int = PAPER_SIZES.latent_resize,
                 latent_crop: int = PAPER_SIZES.latent_crop,
                 hint_stride: int = PAPER_SIZES.hint_stride, hint: bool = False,
                 latent_flip: bool = True):
        reader = domains.get(shard_set.domain)
        self.members = (schema.LABEL, *reader.decodes(hint))
        self.input = reader.transform(shard_set.info, train,
                                      InputSizes(resize, crop, latent_resize, latent_crop,
                                                 hint_stride), hint, latent_flip)

    def decode(self, raw: dict) -> dict:
        """The members the domain reads, decoded: no random draw (a TrainStream may hold it)."""
        return schema.decode_sample(raw, only=self.members)

    def apply(self, sample: dict) -> tuple[torch.Tensor, int]:
        """A decoded sample's input (the augmentation draws here; `sample` is not changed)."""
        return self.input(sample), sample[schema.LABEL]

    def __call__(self, raw: dict) -> tuple[torch.Tensor, int]:
        return self.apply(self.decode(raw))


class KeyedTransform:
    """An eval transform that keeps each sample's key (to count every sample once and to
    name it in the predictions)."""

    def __init__(self, transform: SampleTransform):
        self.transform = transform

    def __call__(self, raw: dict) -> tuple[torch.Tensor, int, str]:
        x, label = self.transform(raw)
        return x, label, raw["__key__"]


class Shared:
    """An integer in shared memory: the training process sets it, its persistent loader
    workers (forked once, at the start of a run) read it when an iteration starts."""

    def __init__(self, value: int = 0):
        self._value = multiprocessing.RawValue("q", value)

    def set(self, value: int) -> None:
        self._value.value = value

    def __int__(self) -> int:
        return self._value.value


class SplitShards:
    """The shards of several splits; `select` picks the one the next iteration reads."""

    def __init__(self, shards: dict[str, list[str]]):
        self.names, self.shards, self._index = list(shards), shards, Shared()

    def select(self, split: str) -> SplitShards:
        self._index.set(self.names.index(split))
        return self

    def current(self) -> list[str]:
        return self.shards[self.names[int(self._index)]]


def _slot(rank: int, world: int) -> tuple[int, int]:
    """This loader worker's (slot, slots) over all ranks and their workers."""
    worker = get_worker_info()
    w, workers = (worker.id, worker.num_workers) if worker else (0, 1)
    return rank * workers + w, world * workers


class TrainStream(IterableDataset):
    """An endless, seeded stream of transformed samples, shards drawn with replacement.

    `epoch` may be a Shared: persistent workers then follow the epoch the trainer sets, and
    each iteration reseeds a worker's random state from (seed, epoch, slot), so the stream does
    not depend on how long the worker has lived (a resumed run sees the same samples).

    `hold` (a SampleTransform's decode and apply): each shard's samples are decoded once and
    held in the worker, then drawn again every epoch: the same stream, without decoding a
    small split's images (most of a pixel loader's time) every epoch."""

    def __init__(self, shards: list[str], transform, rank: int, world: int, seed: int,
                 epoch: int | Shared, buffer: int = 256, hold: bool = False):
        self.shards, self.transform, self.rank, self.world = shards, transform, rank, world
        self.seed, self.epoch, self.buffer, self.hold = seed, epoch, buffer, hold
        self.held: dict[str, list[dict]] = {}  # shard -> decoded samples, in this process

    def samples(self, shard: str) -> Iterator:
        """A shard's samples, each ready for the transform's draw (decoded where held)."""
        if not self.hold:
            return schema.iter_raw_shard(shard)
        if shard not in self.held:
            self.held[shard] = [self.transform.decode(raw) for raw in schema.iter_raw_shard(shard)]
        return iter(self.held[shard])

    def __iter__(self) -> Iterator:
        slot, _ = _slot(self.rank, self.world)
        key = f"{self.seed}:{int(self.epoch)}:{slot}"
        rng = random.Random(key)
        # the transforms draw from the process's global state: a worker's, or in process the
        # training process's (nothing else in its loop draws), seeded so a resumed run draws
        # the same augmentations
        state = random.Random(key + ":transforms").getrandbits(63)
        torch.manual_seed(state)
        random.seed(state)
        np.random.seed(state % 2**32)
        pool: list = []
        draw = self.transform.apply if self.hold else self.transform
        while True:
            for sample in self.samples(rng.choice(self.shards)):
                pool.append(sample)
                if len(pool) >= self.buffer:
                    yield draw(pool.pop(rng.randrange(len(pool))))


class EvalStream(IterableDataset):
    """Each sample of the shards exactly once over all (rank, worker) slots; `shards` may be a
    SplitShards, read at the start of each iteration."""

    def __init__(self, shards: list[str] | SplitShards, transform, rank: int, world: int):
        self.shards, self.transform, self.rank, self.world = shards, transform, rank, world

    def __iter__(self) -> Iterator:
        slot, slots = _slot(self.rank, self.world)
        shards = self.shards.current() if isinstance(self.shards, SplitShards) else self.shards
        if len(shards) >= slots:  # whole shards per slot: each tar read once
            for shard in shards[slot::slots]:
                for raw in schema.iter_raw_shard(shard):
                    yield self.transform(raw)
            return
        index = 0
        for shard in shards:  # fewer shards than slots: every slots-th sample
            for raw in schema.iter_raw_shard(shard):
                if index % slots == slot:
                    yield self.transform(raw)
                index += 1


def loader(dataset: IterableDataset, batch_size: int, workers: int, seed: int,
           persistent: bool = False, device: torch.device | None = None) -> DataLoader:
    """Batches for `device` (default the CPU): pinned host memory only where they go to a GPU."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, generator=generator,
                      pin_memory=device is not None and device.type == "cuda",
                      persistent_workers=persistent and workers > 0)


def start_workers(*loaders: DataLoader) -> None:
    """Fork the persistent workers now. Forking later, from a process whose MLflow and tqdm
    threads may hold a lock, once left a worker hung at its start (1 run in ~20)."""
    for data in loaders:
        iter(data)
