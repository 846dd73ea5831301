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
from itertools import chain, count
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from foundation import schema
from foundation.cli import stage_main
from trainer import precision
from trainer.backbone import write_start
from trainer.config import TrainConfig
from trainer.data import EvalStream, SampleTransform, loader, open_rates
from trainer.distill import adaptation_steps, frozen_stem, hint_error
from trainer.models import (
    ADAPTATION_PARTS,
    ADAPTERS,
    NAMED_FILES,
    initial_state,
    resnet50_deep_stem,
)
from trainer.train import build_model, init_process_group, load_data

TRANSPLANT = "transplant"  # the folder of a run's Comp. starts carried from its Anchor 2s
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


def fit(model, teacher: nn.Module, batches, steps: int, lr: float, log_every: int = 100,
        arithmetic: str = "fp32") -> list[float]:
    """trainer.distill's adaptation steps on the CPU in `arithmetic` (a resolved precision),
    the learning rate cosine-decayed over `steps`; the mean hint error of each `log_every`
    steps (1: as far from the teacher as a map of zeros)."""
    cpu = torch.device("cpu")
    errors, window, start = [], [], time.perf_counter()
    steps_run = adaptation_steps(model, teacher, batches, steps, cpu,
                                 precision.autocast(cpu, arithmetic), lr, cosine=True)
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
    transform: centre crop, no flip), in eval mode: the mean over batches of 64 weighted by
    their size, printed ("none" without a validation split). The training batches' error
    alone cannot show a fit that learned its images."""
    stream = EvalStream(shard_set.shards("validate"),
                        SampleTransform(shard_set, False, *config.input_sizes, hint=True), 0, 1)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for (latent, image), _ in loader(stream, 64, 0, 0):
            total += hint_error(model.features(latent), teacher(image)).item() * len(latent)
            count += len(latent)
    model.train()
    return f"{total / count:.3f}" if count else "none"


def fit_argv(shards, rates: tuple[int, ...], trunk: str, steps: int, out: Path,
             teacher: Path | None = None, branches: str | None = None, seed: int = 0,
             arithmetic: str = "auto", adapter: str = "none", latent_resize: int = 16,
             latent_crop: int = 14) -> list[str]:
    """This command's arguments (after `python -m trainer.latent_start`); the latent sizes
    are the classifier's, so that the teacher sees the view its trunk will be fed at."""
    return [str(shards), "--rates", *map(str, rates), "--trunk", trunk, "--steps", str(steps),
            "--out", str(out), "--latent-resize", str(latent_resize),
            "--latent-crop", str(latent_crop), *(["--teacher", str(teacher)] if teacher else []),
            *(["--branches", branches] if branches else []), "--seed", str(seed),
            "--precision", arithmetic, *(["--latent-adapter", adapter] if adapter != "none"
                                         else [])]


def fit_file(*args, **kwargs) -> None:
    """This command in-process (fit_argv's arguments: the pipeline's and the study's fit on a
    task's latents); a RuntimeError where it failed, after its own one-line error."""
    argv = fit_argv(*args, **kwargs)
    if main(argv):
        raise RuntimeError(f"the latent branches were not fitted (python -m trainer.latent_start "
                           f"{' '.join(argv)}): see its error above")


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.latent_start", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", help="a dataset folder of latent sets (prep), e.g. the corpus's")
    p.add_argument("--rates", type=int, nargs="+", required=True, metavar="Q",
                   help="the qualities whose latents are pooled")
    p.add_argument("--teacher", type=Path, default=NAMED_FILES["procedural"],
                   help="the pixel backbone (or a trained pixel classifier's checkpoint.pth) "
                        "whose stem and conv_2x are the hint")
    p.add_argument("--trunk", default="procedural",
                   help="where conv_3x..conv_5x (and the fc, where it fits) come from (a "
                        "start's name or file; named in the output, which holds the branches "
                        "alone)")
    p.add_argument("--branches", default=None, metavar="START",
                   help="where the latent branches start (a start's name or file that holds "
                        "them); default: --trunk's, fresh where it has none")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--latent-resize", type=int, default=16)
    p.add_argument("--latent-crop", type=int, default=14)
    p.add_argument("--latent-adapter", choices=ADAPTERS, default="none",
                   help="cResNet-39's adapter between the branches and the trunk: fitted with "
                   "the branches (fresh where the start has none)")
    p.add_argument("--seed", type=int, default=0, help="the draws, crops and flips of the fit")
    p.add_argument("--precision", default="auto", choices=precision.PRECISIONS,
                   help="the fit's autocast (trainer.precision; auto: bf16 where faster)")
    p.add_argument("--log-every", type=int, default=100, help="steps per printed hint error")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    config = TrainConfig(domain="latent", shards=args.shards, rates=tuple(args.rates),
                         init=args.trunk, batch_size=args.batch_size, seed=args.seed,
                         latent_adapter=args.latent_adapter,
                         latent_resize=args.latent_resize, latent_crop=args.latent_crop,
                         distill=str(args.teacher), quality=args.rates[0])
    shard_set = open_rates(config.shards, config.rates)
    teacher = backbone_stem(args.teacher)
    start = initial_state(config.init)
    if args.branches:
        start = {**(start or {}), **{k: v for k, v in initial_state(args.branches).items()
                                     if k.split(".")[0] in ADAPTATION_PARTS}}
    torch.manual_seed(args.seed)  # the tensors the start does not hold (a fresh adapter)
    model = build_model(shard_set, config, start)
    before = held_out_error(model, teacher, shard_set, config)
    print(f"hint error on the validation split before the fit: {before}", flush=True)
    arithmetic = precision.resolve(args.precision, torch.device("cpu"))
    held = held_batches(shard_set, config, args.seed)
    if held is not None:
        errors = fit(model, teacher, held, args.steps, args.lr, args.log_every, arithmetic)
    else:
        init_process_group("gloo")  # the trainer's loaders shard by rank
        try:
            data = load_data(shard_set, config, 0, config.batch_size, torch.device("cpu"))
            epochs = chain.from_iterable(data.train_epoch(e) for e in count())
            errors = fit(model, teacher, epochs, args.steps, args.lr, args.log_every, arithmetic)
        finally:
            dist.destroy_process_group()
    after = held_out_error(model, teacher, shard_set, config)
    size, digest = write_start(model.adaptation_state(), args.out, trunk=args.trunk,
                               codecs=shard_set.codec_weights())
    print(f"wrote {args.out}: {size / 2**10:.0f} KiB, sha256 {digest}; hint error "
          f"{errors[0]:.3f} over the first {min(args.log_every, args.steps)} steps, "
          f"{errors[-1]:.3f} over the last; on the validation split {before} before the fit, "
          f"{after} after")
    return 0


if __name__ == "__main__":
    main()
