"""`python -m pipeline.starts`: a start scored as it is and with its BatchNorm statistics
re-estimated on the training latents, every test image counted once per class."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from foundation.sets import SetId
from pipeline import experiment, starts
from trainer.data import open_shard_set

pytestmark = pytest.mark.slow

DEMO_START = Path(__file__).resolve().parents[1] / "backbones" / "latent-hint-demo" / \
    "branches.pth"


def test_a_start_is_scored_per_class_before_and_after_batchnorm(trainer_shards, tmp_path,
                                                                 capsys):
    start = tmp_path / "q4-seed0.pth"
    shutil.copy(DEMO_START, start)
    assert starts.main([str(start), "--experiment", "demo", "--shards", str(trainer_shards)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith(f"| {start} ")]
    shard_set = open_shard_set(trainer_shards, "latent", SetId.of(4))
    assert [(r[1], r[2]) for r in rows] == [(w, s) for w in ("as is", "BatchNorm re-estimated")
                                            for s in ("validate", "test")]
    for _, _, split, top1, per_class in rows:
        counts = [tuple(map(int, n.split("/")))
                  for n in re.findall(r"\d+/\d+", per_class)]
        assert sum(n for _, n in counts) == shard_set.counts[split]
        assert float(top1) == pytest.approx(100 * sum(r for r, _ in counts)
                                            / shard_set.counts[split], abs=0.05)


def test_batchnorm_is_a_cumulative_average_over_the_training_split(trainer_shards):
    e = experiment.load("demo")
    config = starts.TrainConfig(domain="latent", shards=str(trainer_shards), quality=4,
                                latent_resize=e.latent_resize, latent_crop=e.latent_crop,
                                init="none", latent_adapter="res")
    shard_set = open_shard_set(trainer_shards, "latent", SetId.of(4))
    model = starts.build_model(shard_set, config, None)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = norms[0].running_mean.clone()
    starts.reestimate_batchnorm(model, shard_set, config, "fp32")
    batches = math.ceil(shard_set.counts["train"] / 32)
    assert all(int(m.num_batches_tracked) == batches for m in norms)
    assert not torch.equal(norms[0].running_mean, before) and not model.training


def test_a_start_without_its_quality_in_its_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="begins with its quality"):
        starts.quality_of(tmp_path / "transplant.pth")
