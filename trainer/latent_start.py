"""A start for the compressed-domain classifier made from the pixel one's (`make latent-hint`).

cResNet-39's latent branches stand where ResNet-50's stem and conv_2x stand (trainer.distill).
The pixel classifiers inherit a trained stem; the latent branches start fresh and must learn
from the task's few images. Here they learn on the procedural corpus's latents, without labels,
to hand conv_3x the map the procedural backbone's stem and conv_2x make of the same (decoded)
image: FitNets' hint (Romero et al. 2015), run on the data the pixel start was trained on,
before any task. The trunk (conv_3x..conv_5x) is the procedural backbone's, untouched, so the
file holds the branches alone (136 KiB) and names the trunk they sit on: `--init FILE` gives
the whole cResNet-39 without fc (an experiment's latent_init). The branches fit one codec's
latents: the shipped start (`--init latent-hint-demo`, backbones/latent-hint-demo) the demo
codecs'. An experiment's `latent_hint_steps` runs the same fit from its latent start on the
task's own training latents (still no label) before Comp. trains.

    python -m trainer.latent_start data/latent-hint-shards/demo/procedural-256-16 --rates 1 4 8 \
        --out backbones/latent-hint-demo/branches.pth
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, count
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from classifier.backbone import write_start
from classifier.config import TrainConfig
from classifier.data import EvalStream, SampleTransform, loader, open_rates
from classifier.models import (
    ADAPTATION_PARTS,
    NAMED_FILES,
    initial_state,
    resnet50_deep_stem,
)
from foundation import schema
from foundation.cli import stage_main
from foundation.command_line import (
    argv_of,
    check_choices,
    command_parser,
    config_of,
    like,
    option,
)
from foundation.runtime import Runtime, device_option, precision_option
from trainer.distill import adaptation_steps, frozen_stem, hint_error
from trainer.train import build_model, init_process_group, load_data

MAX_HELD = 8192  # training samples held decoded by a fit (about 250 KB each at 256 px)


def backbone_stem(path: Path) -> nn.Module:
    """The deep stem and conv_2x of a pixel backbone file or of a trained pixel classifier's
    checkpoint (its fc is not read), frozen, in eval mode."""
    model = resnet50_deep_stem(1)
    state = {k: v for k, v in initial_state(str(path)).items() if not k.startswith("fc.")}
    missing = model.load_state_dict(state, strict=False).missing_keys
    if any(not k.startswith("fc.") for k in missing):
        raise ValueError(f"--teacher {path}: not a deep-stem ResNet-50 backbone (missing "
                         f"{', '.join(k for k in missing if not k.startswith('fc.'))[:200]})")
    return frozen_stem(model)


def fit(model, teacher: nn.Module, batches, steps: int, lr: float, log_every: int,
        runtime: Runtime) -> list[float]:
    """trainer.distill's adaptation steps on the runtime's device and precision (the model
    and the teacher there), the learning rate cosine-decayed over `steps`; the mean hint error
    of each `log_every` steps (1: as far from the teacher as a map of zeros)."""
    errors, window, start = [], [], time.perf_counter()
    steps_run = adaptation_steps(model, teacher, batches, steps, runtime.device,
                                 runtime.autocast(), lr, cosine=True)
    for step, error in enumerate(steps_run, 1):
        window.append(error)
        if step % log_every == 0 or step == steps:
            errors.append(sum(window) / len(window))
            print(f"step {step}/{steps}: hint error {errors[-1]:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            window = []
    return errors


def held_batches(shard_set, config: TrainConfig, seed: int = 0) -> Iterator[tuple] | None:
    """Endless batches of (latent, image) drawn at random from the training split, each sample
    through the trainer's training transform (its crop and flip, the image cut alike). The
    samples are decoded once and held in memory: a fit draws each of a small task's many
    times (1,000 steps of 32 from the demo's 1,080 latents: 30 each), and decoding is most of
    a step read from the shards. None where there are more than MAX_HELD: there the fit reads
    the shards as the trainer does."""
    if shard_set.counts["train"] > MAX_HELD:
        return None
    transform = SampleTransform(shard_set, True, *config.input_sizes, hint=True,
                                latent_flip=not config.no_latent_flip)
    samples = [schema.decode_sample(raw, only=transform.members)
               for shard in shard_set.shards("train") for raw in schema.iter_raw_shard(shard)]
    if not samples:
        raise ValueError(f"{shard_set.directory}: no training samples to fit the hint on")
    torch.manual_seed(seed)  # the transform's crops and flips

    def batches():
        while True:
            drawn = torch.randint(len(samples), (config.batch_size,)).tolist()
            latents, images = zip(*(transform.input(samples[i]) for i in drawn), strict=True)
            yield (torch.stack(latents), torch.stack(images)), None
    return batches()


def held_out_error(model, teacher: nn.Module, shard_set, config: TrainConfig) -> str:
    """The hint error on the shards' validation split, each sample once (the evaluation
    transform: centre crop, no flip), in eval mode, in fp32 on the model's device: the mean
    over batches of 64 weighted by their size, printed ("none" without a validation split).
    The training batches' error alone cannot show a fit that learned its images."""
    stream = EvalStream(shard_set.shards("validate"),
                        SampleTransform(shard_set, False, *config.input_sizes, hint=True), 0, 1)
    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for (latent, image), _ in loader(stream, 64, 0, 0, device=device):
            latent, image = latent.to(device), image.to(device)
            total += hint_error(model.features(latent), teacher(image)).item() * len(latent)
            count += len(latent)
    model.train()
    return f"{total / count:.3f}" if count else "none"


@dataclass(frozen=True)
class LatentFit:
    """One fit, each field a flag of this command (foundation.command_line); the latent sizes
    are the classifier's, so that the teacher sees the view its trunk will be fed at."""

    shards: str = option(help="a dataset folder of latent sets (prep), e.g. the corpus's",
                         positional=True)
    rates: tuple[int, ...] = option(help="the qualities whose latents are pooled", metavar="Q")
    out: Path = option(help="the file the fitted branches (and adapter) go to")
    teacher: Path = option(NAMED_FILES["procedural"], "the pixel backbone (or a trained pixel "
                           "classifier's checkpoint.pth) whose stem and conv_2x are the hint")
    trunk: str = option("procedural", "where conv_3x..conv_5x (and the fc, where it fits) come "
                        "from (a start's name or file; named in the output, which holds the "
                        "branches alone)")
    branches: str | None = option(None, "where the latent branches start (a start's name or "
                                  "file that holds them); default: --trunk's, fresh where it "
                                  "has none", metavar="START")
    steps: int = option(1000, "Adam's steps")
    lr: float = like(TrainConfig, "lr", default=1e-3,
                     help="Adam's learning rate, cosine-decayed to 0 over the steps")
    batch_size: int = like(TrainConfig, "batch_size", help="the fit's batch (one process)")
    latent_resize: int = like(TrainConfig, "latent_resize", default=16)
    latent_crop: int = like(TrainConfig, "latent_crop", default=14)
    latent_adapter: str = like(TrainConfig, "latent_adapter",
                               help="cResNet-39's adapter between the branches and the trunk: "
                               "fitted with the branches (fresh where the start has none)")
    seed: int = like(TrainConfig, "seed", help="the draws, crops and flips of the fit")
    # the fits the project ships, and its studies', ran on the CPU: a fit's numbers differ by
    # device, so only an explicit choice moves one
    device: str = device_option("cpu", "where the fit runs (auto: CUDA where there is a GPU)")
    precision: str = precision_option(help="the fit's autocast: auto = bf16 where it is faster "
                                      "than fp32 on the fit's device")
    log_every: int = option(100, "steps per printed hint error")

    def __post_init__(self):
        check_choices(self)

    def to_argv(self) -> list[str]:
        """This command's arguments (after `python -m trainer.latent_start`)."""
        return argv_of(self)

    @property
    def classifier(self) -> TrainConfig:
        """The compressed-domain classifier the branches are fitted for: its model, sizes and
        transform, the teacher as its hint."""
        return TrainConfig(domain="latent", shards=self.shards, rates=self.rates,
                           init=self.trunk, batch_size=self.batch_size, seed=self.seed,
                           latent_adapter=self.latent_adapter,
                           latent_resize=self.latent_resize, latent_crop=self.latent_crop,
                           distill=str(self.teacher), quality=self.rates[0])


def fit_file(fit: LatentFit) -> None:
    """This command in-process, through its command line (the study's fits on a task's
    latents); a RuntimeError where it failed, after its own one-line error."""
    argv = fit.to_argv()
    if main(argv):
        raise RuntimeError(f"the latent branches were not fitted (python -m trainer.latent_start "
                           f"{' '.join(argv)}): see its error above")


def parser() -> argparse.ArgumentParser:
    return command_parser("python -m trainer.latent_start", __doc__, LatentFit,
                          argparse.RawDescriptionHelpFormatter)


def parse(argv: list[str] | None = None) -> LatentFit:
    return config_of(LatentFit, vars(parser().parse_args(argv)))


@stage_main
def main(argv: list[str] | None = None) -> int:
    job = parse(argv)
    config = job.classifier
    runtime = Runtime.resolve(job.device, job.precision)
    shard_set = open_rates(config.shards, config.rates)
    teacher = backbone_stem(job.teacher).to(runtime.device)
    start = initial_state(config.init)
    if job.branches:
        start = {**(start or {}), **{k: v for k, v in initial_state(job.branches).items()
                                     if k.split(".")[0] in ADAPTATION_PARTS}}
    torch.manual_seed(job.seed)  # the tensors the start does not hold (a fresh adapter)
    model = build_model(shard_set, config, start).to(runtime.device)
    before = held_out_error(model, teacher, shard_set, config)
    print(f"hint error on the validation split before the fit: {before}", flush=True)
    held = held_batches(shard_set, config, job.seed)
    if held is not None:
        errors = fit(model, teacher, held, job.steps, job.lr, job.log_every, runtime)
    else:
        init_process_group("gloo")  # the trainer's loaders shard by rank
        try:
            data = load_data(shard_set, config, 0, config.batch_size, runtime.device)
            epochs = chain.from_iterable(data.train_epoch(e) for e in count())
            errors = fit(model, teacher, epochs, job.steps, job.lr, job.log_every, runtime)
        finally:
            dist.destroy_process_group()
    after = held_out_error(model, teacher, shard_set, config)
    size, digest = write_start(model.adaptation_state(), job.out, trunk=job.trunk,
                               codecs=shard_set.codec_weights())
    print(f"wrote {job.out}: {size / 2**10:.0f} KiB, sha256 {digest}; hint error "
          f"{errors[0]:.3f} over the first {min(job.log_every, job.steps)} steps, "
          f"{errors[-1]:.3f} over the last; on the validation split {before} before the fit, "
          f"{after} after")
    return 0


if __name__ == "__main__":
    main()
