"""Command line -> a frozen TrainConfig (the resolved config goes into checkpoints and MLflow)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from torch import nn

from foundation.sets import LEARNED, SetId
from trainer import domains, precision
from trainer.models import ADAPTERS, SIGMA_INPUTS, upsampling
from trainer.transforms import HINT_STRIDE, PAPER_SIZES, InputSizes

PAPER_BATCH = 32  # the paper's batch; lr scales linearly with the global batch


@dataclass(frozen=True)
class TrainConfig:
    domain: str
    shards: str
    quality: int | None = None
    codec: str = LEARNED  # of the coded set: q<Q> (learned) or jpeg<P>, webp<P>
    inputs: str = "both"  # latent domain: y, sigma or both (domains.INPUTS)
    latent_sigma: str = "linear"  # latent domain: sigma_hat as it is or its log (SIGMA_INPUTS)
    latent_adapter: str = "none"  # latent domain: ADAPTERS (trainer.models.CResNet39)
    # latent domain: one classifier for every rate, trained on the train splits of these
    # learned sets together (quality: the first; validation and test read them all)
    rates: tuple[int, ...] = ()
    distill: str | None = None  # latent domain: a trained Anchor 2's checkpoint (trainer.distill)
    distill_weight: float = 1.0  # the conv_2x hint's weight beside the cross-entropy
    # with distill: the weight of the teacher's softened class probabilities (its logits over
    # kd_temperature) as a target beside the labels, Hinton et al.'s distillation; 0: none
    kd_weight: float = 0.0
    kd_temperature: float = 4.0
    hint_steps: int = 0  # with distill: batches that fit the latent branches to the hint first
    no_latent_flip: bool = False  # latent domain: no random flip in training (LatentTransform)
    # decoded domain: this Anchor 2 is the equal-budget reference of a Comp. that starts from a
    # trained Anchor 2 (given both runs' epochs); it names the method and run folder, no more
    equal_budget: bool = False
    init: str = "imagenet"
    epochs: int = 30
    batch_size: int = 32  # global, over all processes
    lr: float = 0.01  # at the paper's batch of 32
    lr_steps: tuple[int, ...] = (10, 20)
    fresh_lr: float = 1.0  # learning-rate multiplier of the tensors --init did not fill
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_steps: int | None = None
    resize: int = PAPER_SIZES.resize
    crop: int = PAPER_SIZES.crop
    latent_resize: int = PAPER_SIZES.latent_resize
    latent_crop: int = PAPER_SIZES.latent_crop
    workers: int | None = None  # loader workers per process; None: train_loader_workers
    device: str = "auto"
    precision: str = "auto"  # autocast: auto (bf16 where faster than fp32), fp32, bf16
    compile: bool = False  # torch.compile the training step
    seed: int = 0
    out: str | None = None
    resume: bool = False
    experiment: str = "classifiers"

    @property
    def loader_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        return max(2, (os.cpu_count() or 1) // processes)

    def train_loader_workers(self, held: bool, device_type: str) -> int:
        """loader_workers, but a training split held decoded on a CPU loads in the training
        process by default: its per-batch work is a few ms, and worker processes that take a
        core in the middle of a step stall it (`make bench-train` measures both)."""
        if self.workers is None and held and device_type != "cuda":
            return 0
        return self.loader_workers

    def steps_per_epoch(self, train_samples: int) -> int:
        """Optimizer steps an epoch takes over `train_samples` (at least one; max_steps caps)."""
        steps = max(1, train_samples // self.batch_size)
        return min(steps, self.max_steps) if self.max_steps else steps

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / PAPER_BATCH

    @property
    def input_sizes(self) -> InputSizes:
        """resize, crop, latent resize, latent crop, the teacher's pixels a latent cell
        (SampleTransform's order)."""
        return InputSizes(self.resize, self.crop, self.latent_resize, self.latent_crop,
                          HINT_STRIDE * upsampling(self.latent_adapter))

    @property
    def reader(self) -> domains.Domain:
        return domains.get(self.domain)

    def network(self, num_classes: int, latent_channels: int | None) -> nn.Module:
        """The domain's architecture with this config's options, freshly initialised."""
        return self.reader.model(num_classes, latent_channels, self.inputs,
                                 sigma=self.latent_sigma, adapter=self.latent_adapter)

    @property
    def method(self) -> str:
        """The paper's name for this classifier: Anchor 3, Anchor 2, Comp., Comp. (y), ..."""
        return self.reader.method_name(self.inputs, bool(self.rates), self.equal_budget)

    @property
    def qualities(self) -> tuple[int, ...]:
        """The learned qualities it reads: its rates, else its own quality (if coded)."""
        return self.rates or ((self.quality,) if self.quality is not None else ())

    @property
    def dataset(self) -> str:
        return Path(self.shards).name

    @property
    def set_id(self) -> SetId:
        """The shard set the run reads: original, q8, jpeg30, ..."""
        return self.reader.set_for(self.quality, self.codec)

    @property
    def run_name(self) -> str:
        """e.g. minc-2500/latent/q8, minc-2500/latent-y/q8, minc-2500/latent-rates/q1+4+8,
        minc-2500/decoded/jpeg30, minc-2500/original."""
        sets = "q" + "+".join(map(str, self.rates)) if self.rates else self.set_id.name
        return "/".join(filter(None, [self.dataset,
                                      self.reader.run_label(self.inputs, bool(self.rates),
                                                            self.equal_budget),
                                      sets if self.reader.coded else ""]))

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs/train") / self.run_name

    def to_argv(self) -> list[str]:
        """The trainer's command line for this config (`parse` gives it back): the coded set by
        --set, then every field that differs from its default."""
        argv = ["--domain", self.domain, "--shards", self.shards]
        if self.reader.coded:
            argv += ["--set", self.set_id.name]
        default = TrainConfig(domain=self.domain, shards=self.shards)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("domain", "shards", "quality", "codec") or \
                    value == getattr(default, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):  # store_true flags
                argv.append(flag)
            elif isinstance(value, tuple):
                argv += [flag, *map(str, value)]
            else:
                argv += [flag, str(value)]
        return argv


def parser() -> argparse.ArgumentParser:
    d = TrainConfig(domain=domains.LATENT.name, shards="")
    p = argparse.ArgumentParser(
        prog="torchrun trainer/main.py",
        description="Train a material classifier on prepared shards with DDP (torchrun): "
        "ResNet-50 (deep stem) on original or decoded images, or cResNet-39 on y_hat + "
        "sigma_hat. Validation every epoch, test at the end, MLflow on rank 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--domain", choices=tuple(domains.DOMAINS), required=True,
                   help="original: anchor 3; decoded: anchor 2; latent: compressed domain")
    p.add_argument("--shards", required=True, help="<out>/<dataset> written by `make prep`")
    p.add_argument("--quality", type=int, default=None,
                   help="learned codec quality (decoded, latent): the set q<Q>")
    p.add_argument("--set", dest="set_name", default=None, metavar="NAME",
                   help="the coded set by its folder name instead: q<Q>, or a classical codec's "
                   "jpeg<P>, webp<P> (decoded domain only)")
    p.add_argument("--inputs", choices=domains.INPUTS, default=d.inputs,
                   help="latent inputs (the ablation)")
    p.add_argument("--latent-sigma", choices=SIGMA_INPUTS, default=d.latent_sigma,
                   help="latent domain: sigma_hat as it is (the paper) or its log")
    p.add_argument("--latent-adapter", choices=ADAPTERS, default=d.latent_adapter,
                   help="latent domain: a channel attention (squeeze and excitation) between "
                   "the branches and the trunk, after Deng and Karam's feature adaptation")
    p.add_argument("--rates", type=int, nargs="+", default=[], metavar="Q",
                   help="latent domain: one classifier for every rate, trained on the q<Q> sets "
                   "of these qualities together (validation and test: all of them)")
    p.add_argument("--distill", default=None, metavar="CHECKPOINT",
                   help="latent domain: a trained decoded-domain classifier (Anchor 2) whose "
                   "conv_2x output on the decoded image the latent branches learn to match")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="weight of that feature hint beside the cross-entropy")
    p.add_argument("--kd-weight", type=float, default=d.kd_weight,
                   help="with --distill: weight of the teacher's softened class probabilities on "
                   "the same view of the decoded image as a target (Hinton et al. 2015)")
    p.add_argument("--kd-temperature", type=float, default=d.kd_temperature,
                   help="the temperature that softens both classifiers' logits for --kd-weight")
    p.add_argument("--hint-steps", type=int, default=d.hint_steps,
                   help="with --distill: batches that train the latent branches alone on the "
                   "hint (Adam, the trunk not run) before the first epoch, FitNets' first stage")
    p.add_argument("--no-latent-flip", action="store_true",
                   help="latent domain: no random horizontal flip in training (a flipped latent "
                   "is not the latent of the flipped image)")
    p.add_argument("--equal-budget", action="store_true",
                   help="decoded domain: name this run Anchor 2 (equal budget), the reference of "
                   "a Comp. started from a trained Anchor 2; give it both runs' --epochs")
    p.add_argument("--init", default=d.init,
                   help="imagenet, procedural (backbones/procedural), none, or a state dict file")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="GLOBAL batch over all processes (per process: this / world size); "
                   "the learning rate is scaled by batch/32")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate at a global batch of 32")
    p.add_argument("--lr-steps", type=int, nargs="*", default=list(d.lr_steps),
                   help="epochs after which lr is divided by 10")
    p.add_argument("--fresh-lr", type=float, default=d.fresh_lr,
                   help="learning-rate multiplier of the tensors --init did not fill (the fc; "
                   "cResNet-39's latent branches)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop each epoch after this many optimizer steps (short runs)")
    p.add_argument("--resize", type=int, default=d.resize, help="pixel domains: resize side")
    p.add_argument("--crop", type=int, default=d.crop, help="pixel domains: crop side")
    p.add_argument("--latent-resize", type=int, default=d.latent_resize,
                   help="latent domain: y_hat and sigma_hat resized to this side")
    p.add_argument("--latent-crop", type=int, default=d.latent_crop,
                   help="latent domain: crop side")
    p.add_argument("--workers", type=int, default=None,
                   help="loader workers per process (default: the node's CPUs over its "
                   "processes, at least 2, so that loading scales over a GPU node's cores; "
                   "on a CPU a held training split loads in process; 0: in process)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    p.add_argument("--precision", choices=precision.PRECISIONS, default=d.precision,
                   help="autocast precision: auto = bf16 where it is faster than fp32 (CUDA with "
                   "bf16, CPUs with AMX, AMD CPUs with AVX-512 BF16), else fp32; bf16 needs "
                   "native bf16")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (worth it for long GPU runs)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=None, help="run folder (default runs/train/<run name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's checkpoint (automatic after a "
                   "torchrun restart)")
    p.add_argument("--experiment", default=d.experiment, help="MLflow experiment")
    return p


def parse(argv: list[str] | None = None) -> TrainConfig:
    p = parser()
    args = vars(p.parse_args(argv))
    args["lr_steps"], args["rates"] = tuple(args["lr_steps"]), tuple(args["rates"])
    name = args.pop("set_name")
    if name is not None:
        try:
            chosen = SetId.parse(name)
        except ValueError as err:
            p.error(f"--set: {err}")
        if not chosen.coded:
            p.error("--set original: the original images are --domain original, without --set")
        if args["quality"] is not None and chosen != SetId.of(args["quality"]):
            p.error(f"--set {name} and --quality {args['quality']} disagree: give one of them")
        args |= {"codec": chosen.codec, "quality": chosen.quality}
    if args["equal_budget"] and args["domain"] != domains.DECODED.name:
        p.error(f"--equal-budget names an Anchor 2 (--domain decoded), not --domain "
                f"{args['domain']}")
    if args["rates"]:
        if args["domain"] != domains.LATENT.name:
            p.error(f"--rates: one classifier for every rate reads latents, not --domain "
                    f"{args['domain']}")
        args["quality"] = args["quality"] or args["rates"][0]
        if args["quality"] != args["rates"][0]:
            p.error(f"--rates {' '.join(map(str, args['rates']))}: its run is named after the "
                    f"first, q{args['rates'][0]}; leave out --quality/--set or give that one")
    return TrainConfig(**args)
