"""Configs write their own command lines: what the pipeline runs parses back to the config,
each parser's defaults are its config's, and a bad choice is refused whatever makes a config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from classifier.config import TrainConfig, parse
from foundation import storage
from foundation.sets import SetId
from prep.cli import config_from
from prep.job.config import DEFAULT_QUALITY, PrepConfig
from trainer import latent_start
from trainer.latent_start import LatentFit


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


@pytest.mark.parametrize("fit", [
    LatentFit(shards="data/shards/d", rates=(1, 4, 8), out=Path("b.pth")),
    LatentFit(shards="s3://b/d", rates=(4,), out=Path("runs/t/q4-seed1.pth"),
              teacher=Path("runs/a2/checkpoint.pth"), trunk="runs/a2/checkpoint.pth",
              branches="runs/latent-hint-task.pth", steps=300, lr=5e-4, batch_size=16,
              latent_resize=32, latent_crop=28, latent_adapter="up-res", seed=1,
              device="auto", precision="fp32", log_every=10),
])
def test_latent_fit_round_trips_through_its_command_line(fit):
    assert latent_start.parse(fit.to_argv()) == fit


def test_each_parser_defaults_to_its_config():
    assert parse(["--domain", "latent", "--shards", "d"]) == TrainConfig(domain="latent",
                                                                        shards="d")
    assert config_from([]) == PrepConfig(quality=DEFAULT_QUALITY)
    assert latent_start.parse(["d", "--rates", "4", "--out", "b.pth"]) == LatentFit(
        shards="d", rates=(4,), out=Path("b.pth"))


def test_the_pipelines_fit_command_is_the_fit_it_asks_for(tmp_path):
    """The pooled fit's command as pipeline/plan.py builds it parses back to the fit of the
    experiment's settings; the teacher left out is the procedural backbone."""
    from pipeline import plan
    from pipeline.experiment import load

    e = replace(load("demo"), device="cpu", precision="fp32", latent_adapter="res")
    [command] = plan.task_hint_job(e, storage.location("d"), tmp_path).before
    assert command.argv[:2] == ("-m", "trainer.latent_start")
    assert latent_start.parse(list(command.argv[2:])) == LatentFit(
        shards=str(storage.join("d", e.dataset)), rates=e.qualities, trunk=e.latent_init,
        steps=e.latent_hint_steps, out=command.creates, device="cpu", precision="fp32",
        latent_adapter="res", latent_resize=e.latent_resize, latent_crop=e.latent_crop)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TrainConfig(domain="latent", shards="d", precision="fp16"),
     "--precision fp16: give one of auto, fp32, bf16"),
    (lambda: TrainConfig(domain="pixels", shards="d"),
     "--domain pixels: give one of original, decoded, latent"),
    (lambda: PrepConfig(pipeline="both"), "--pipeline both: give one of auto, fused, split"),
    (lambda: PrepConfig(quality=9), "--quality 9: give one of 1, 2, 3, 4, 5, 6, 7, 8"),
    (lambda: LatentFit(shards="d", rates=(4,), out=Path("o"), device="gpu"),
     "--device gpu: give one of auto, cpu, cuda"),
])
def test_a_bad_choice_is_refused_whatever_makes_the_config(make, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        make()


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
