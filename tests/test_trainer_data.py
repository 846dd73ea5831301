"""The trainer's data: exactly-once evaluation for any world size, equal training batches."""

from collections import Counter
from itertools import islice

import pytest
import torch
from torch.utils.data import DataLoader

from classifier.data import EvalStream, SampleTransform, TrainStream, open_shard_set
from foundation import schema
from foundation.sets import SetId

pytestmark = pytest.mark.slow


def keys_of(raw):
    return raw["__key__"]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 2])
def test_every_test_sample_is_evaluated_once(trainer_shards, world, workers):
    shards = [str(p) for p in schema.shard_paths(trainer_shards / "q4", "test")]
    assert len(shards) == 5
    seen = Counter()
    for rank in range(world):
        stream = EvalStream(shards, keys_of, rank, world)
        seen.update(DataLoader(stream, batch_size=None, num_workers=workers))
    manifest = schema.read_manifest(trainer_shards / "q4").to_pylist()
    assert seen == Counter(r["key"] for r in manifest if r["split"] == "test")


def test_training_stream_is_seeded_and_endless(trainer_shards):
    shards = [str(p) for p in schema.shard_paths(trainer_shards / "q4", "train")]
    first = list(islice(TrainStream(shards, keys_of, 0, 2, seed=0, epoch=3, buffer=8), 300))
    again = list(islice(TrainStream(shards, keys_of, 0, 2, seed=0, epoch=3, buffer=8), 300))
    other_rank = list(islice(TrainStream(shards, keys_of, 1, 2, seed=0, epoch=3, buffer=8), 300))
    assert first == again and first != other_rank
    assert len(first) == 300 > 168  # more than the train split: it repeats


@pytest.mark.parametrize("domain", ["decoded", "latent"])
def test_a_held_training_stream_draws_the_same_inputs_every_epoch(trainer_shards, domain):
    """Decoded once and held in the loader workers, the training split gives the tensors a
    stream that decodes every sample every time gives: the same draws, the same augmentation,
    in every epoch (persistent workers follow the epoch) and the cache is not changed by it."""
    from classifier.data import Shared, loader

    shard_set = open_shard_set(trainer_shards, domain, SetId.of(4))
    transform = SampleTransform(shard_set, True, 48, 40, 8, 6)
    streams = {hold: TrainStream(shard_set.shards("train"), transform, 0, 1, seed=5,
                                 epoch=Shared(0), buffer=8, hold=hold) for hold in (False, True)}
    batches = {}
    for hold, stream in streams.items():
        data = loader(stream, 8, 2, 0, persistent=True)
        batches[hold] = []
        for epoch in (0, 1):
            stream.epoch.set(epoch)
            batches[hold] += list(islice(data, 30))  # 240 draws of 168 samples, 2 workers
    assert len(batches[True]) == len(batches[False]) == 60
    for (x, y), (x_held, y_held) in zip(batches[False], batches[True], strict=True):
        assert torch.equal(x, x_held) and torch.equal(y, y_held)
    assert not torch.equal(batches[True][0][0], batches[True][30][0])  # epochs differ


def test_latent_sample_is_y_then_sigma_at_28px(trainer_shards):
    shard_set = open_shard_set(trainer_shards, "latent", SetId.of(4))
    [raw] = islice(schema.iter_raw_shard(shard_set.shards("validate")[0]), 1)
    x, label = SampleTransform(shard_set, False, 256, 224)(raw)
    m = shard_set.latent_channels
    assert x.shape == (2 * m, 28, 28) and 0 <= label < 4
    table = torch.tensor(shard_set.info["codec"]["scale_table"])
    assert x[m:].min() >= table.min() - 1e-6  # sigma, as the coder used it


@pytest.mark.parametrize(("domain", "quality", "message"), [
    ("latent", 8, "q8 set, which was not prepared"),
    ("decoded", None, "needs --quality"),
    ("pixels", 4, "not one of original, decoded, latent"),
])
def test_bad_requests_are_explained(trainer_shards, domain, quality, message):
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        open_shard_set(trainer_shards, domain, SetId.of(quality))


def test_missing_shard_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `make prep` first"):
        open_shard_set(tmp_path / "nowhere", "original", SetId.of(None))
