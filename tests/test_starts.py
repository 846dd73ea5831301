"""`python -m research.starts`: a start scored as it is and with its BatchNorm statistics
re-estimated on the training latents, every test image counted once per class; a transplant
beside its teacher at two views."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from classifier import checkpoint
from classifier.backbone import write_start
from classifier.config import TrainConfig
from classifier.data import open_shard_set
from classifier.models import cresnet39, resnet50_deep_stem
from evaluation.predict import predict
from foundation.runtime import resolve_precision
from foundation.sets import SetId
from pipeline import experiment
from research import starts

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")
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
        # printed to one decimal: 3 of 16 (18.75) may print as 18.8 or 18.7, 0.05 off
        assert float(top1) == pytest.approx(100 * sum(r for r, _ in counts)
                                            / shard_set.counts[split], abs=0.05 + 1e-9)


def test_a_transplant_is_shown_beside_its_teacher_at_its_view_and_at_the_fits(
        trainer_shards, tmp_path, capsys):
    shard_set = open_shard_set(trainer_shards, "latent", SetId.of(4))
    teacher = resnet50_deep_stem(shard_set.num_classes)
    optimizer = torch.optim.SGD(teacher.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1])
    (tmp_path / "anchor2").mkdir()
    weights = checkpoint.save(tmp_path / "anchor2", teacher, optimizer, scheduler, 0,
                              TrainConfig(domain="decoded", shards=str(trainer_shards),
                                          quality=4, resize=72, crop=64), [], None,
                              precision="fp32")
    start = tmp_path / "transplant" / "q4-seed0.pth"
    branches = cresnet39(shard_set.latent_channels, shard_set.num_classes, adapter="res")
    write_start(branches.adaptation_state(), start, trunk=str(weights))
    assert starts.main([str(start), "--experiment", "demo", "--shards", str(trainer_shards)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith(f"| {start} ")]
    views = ["its Anchor 2 at 72 -> 64 px (its own view)",  # demo: latent 16, crop 14
             "its Anchor 2 at 64 -> 56 px (the fit's view)"]
    assert [(r[1], r[2]) for r in rows[4:]] == [(v, s) for v in views
                                                for s in ("validate", "test")]
    pixel = open_shard_set(trainer_shards, "decoded", SetId.of(4))
    own = predict(teacher.eval().to(memory_format=torch.channels_last), pixel, "test",
                  (72, 64, 16, 14), workers=0,
                  arithmetic=resolve_precision(experiment.load("demo").precision, CPU))
    one_image = 100 / pixel.counts["test"]  # the model's layout may tip a near tie
    assert float(rows[5][3]) == pytest.approx(100 * (own["top"][:, 0] == own["label"]).mean(),
                                              abs=one_image)


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
