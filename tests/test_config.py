"""Configs write their own command lines: what the pipeline runs parses back to the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.sets import SetId
from prep.cli import config_from
from prep.job.config import PrepConfig
from trainer.config import TrainConfig, parse


@pytest.mark.parametrize("config", [
    TrainConfig(domain="original", shards="data/shards/minc-2500"),
    TrainConfig(domain="latent", shards="s3://b/shards/minc-2500", quality=8, inputs="y",
                epochs=6, lr_steps=(4,), resize=72, crop=64, latent_resize=16, latent_crop=14,
                init="procedural", max_steps=2, out="runs/x", resume=True),
    TrainConfig(domain="decoded", shards="d", quality=20, codec="jpeg", lr_steps=()),
    TrainConfig(domain="latent", shards="d", quality=1, rates=(1, 4, 8)),
    TrainConfig(domain="latent", shards="d", quality=4, distill="runs/a2/checkpoint.pth",
                distill_weight=0.5, init="runs/a2/checkpoint.pth"),
])
def test_train_config_round_trips_through_its_command_line(config):
    assert parse(config.to_argv()) == config


@pytest.mark.parametrize("config", [
    PrepConfig(data=Path("data/minc-2500"), out="data/shards", quality=8),
    PrepConfig(data=Path("d"), out="s3://b/p", quality=1, split=3, shard_size=48, workers=2,
               codec_weights=Path("codecs/demo/codec-q1.pth")),
    PrepConfig(data=Path("d"), out="o", quality=None,
               classical=(SetId("jpeg", 5), SetId("webp", 60))),
    PrepConfig(data=Path("d"), out="o", quality=None),  # --original-only
    PrepConfig(data=Path("d"), out="o", quality=4, original=False, force=True, verify=True),
])
def test_prep_config_round_trips_through_its_command_line(config):
    assert config_from(config.to_argv()) == config


def test_one_classifier_for_every_rate_is_named_for_its_rates():
    config = parse(["--domain", "latent", "--shards", "data/shards/d", "--rates", "1", "4", "8"])
    assert (config.quality, config.rates, config.qualities) == (1, (1, 4, 8), (1, 4, 8))
    assert config.run_name == "d/latent-rates/q1+4+8" and config.method == "Comp. (every rate)"


@pytest.mark.parametrize(("argv", "message"), [
    (["--domain", "decoded", "--rates", "1", "4"], "reads latents"),
    (["--domain", "latent", "--rates", "1", "4", "--quality", "4"], "named after the first"),
])
def test_bad_rates_are_explained(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse([*argv, "--shards", "d"])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("workers, held, device, expected", [
    (None, True, "cpu", 0),  # a held split on a CPU: in process
    (None, False, "cpu", None),  # streamed from the shards: the default workers
    (None, True, "cuda", None),  # a GPU's loop: workers keep it fed
    (3, True, "cpu", 3),  # --workers wins
])
def test_a_held_split_on_a_cpu_loads_in_the_training_process(workers, held, device, expected):
    config = TrainConfig(domain="latent", shards="s", workers=workers)
    assert config.train_loader_workers(held, device) == (
        config.loader_workers if expected is None else expected)
