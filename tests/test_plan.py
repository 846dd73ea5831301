"""The shard plan: shards mix the classes, so training batches are close to i.i.d."""

import json
from collections import Counter
from itertools import islice

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from classifier.data import TrainStream
from foundation import schema
from prep.datasets.listing import list_dataset
from prep.job.config import PrepConfig
from prep.job.driver import run
from prep.job.plan import PLAN_FILE, plan_shards

# MINC-2500 has 2,125 train images a class, shards of 256 and a stream buffer of 256; 24
# classes of ~40 train images with shards and a buffer of 32 keep those proportions small
CLASSES, PER_CLASS, BATCH, SHARD, BUFFER = 24, 48, 16, 32, 32


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory):
    """24 classes x 48 small images, one folder per class (a seeded 85/5/10 split)."""
    root = tmp_path_factory.mktemp("many") / "many-classes"
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        (root / f"class{c:02d}").mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c:02d}" / f"img{i:03d}.png")
    return root


def label_of(raw) -> int:
    return schema.decode_sample(raw, only=(schema.LABEL,))[schema.LABEL]


def test_plan_shuffles_each_split_the_same_way_every_time(many_classes):
    items = list_dataset(many_classes).items
    plan = plan_shards(items, SHARD)
    assert plan == plan_shards(tuple(reversed(items)), SHARD)  # input order does not matter
    first = [item.key.split("_")[0] for item in plan[schema.shard_name("train", 0)]]
    assert len(set(first)) >= 10  # a sorted plan put one or two classes in a shard
    assert Counter(i.key for s in plan.values() for i in s) == Counter(i.key for i in items)


def test_training_batches_mix_classes_like_iid_batches(many_classes, ray_local, tmp_path):
    run(PrepConfig(data=many_classes, out=tmp_path, quality=None, workers=2, shard_size=SHARD))
    shards = [str(p) for p in schema.shard_paths(tmp_path / "many-classes" / "original", "train")]
    labels = [r["label"] for r in schema.read_manifest(tmp_path / "many-classes" / "original")
              .to_pylist() if r["split"] == "train"]
    p = np.bincount(labels) / len(labels)
    iid = float(np.sum(1 - (1 - p) ** BATCH))  # expected distinct classes of an i.i.d. batch
    distinct = []
    for rank in range(2):  # 2 ranks x 2 loader workers, the trainer's stream and buffer
        stream = TrainStream(shards, label_of, rank, 2, seed=0, epoch=0, buffer=BUFFER)
        batches = DataLoader(stream, batch_size=BATCH, num_workers=2)
        distinct += [len(set(b.tolist())) for b in islice(batches, 20)]
    assert np.mean(distinct) >= 0.8 * iid, (np.mean(distinct), iid)


def test_folder_written_by_the_sorted_plan_is_refused(many_classes, ray_local, tmp_path):
    config = PrepConfig(data=many_classes, out=tmp_path, quality=None, workers=2, shard_size=64)
    run(config)
    record_path = tmp_path / "many-classes" / "original" / schema.PARTS / PLAN_FILE
    old = json.loads(record_path.read_text())
    del old["shuffle_seed"]  # what the sorted plan recorded
    record_path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="shuffle_seed.*Pass --force"):
        run(config)
    run(PrepConfig(**{**config.__dict__, "force": True}))
    assert "shuffle_seed" in json.loads(record_path.read_text())
