"""Command line -> a frozen TrainConfig (the resolved config goes into checkpoints and MLflow)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from classifier import domains, run_folder
from classifier.models import ADAPTERS, SIGMA_INPUTS, upsampling
from classifier.transforms import HINT_STRIDE, PAPER_SIZES, InputSizes
from foundation.command_line import argv_of, check_choices, command_parser, config_of, option
from foundation.runtime import device_option, precision_option
from foundation.sets import LEARNED, SetId

PAPER_BATCH = 32  # the paper's batch; lr scales linearly with the global batch


@dataclass(frozen=True)
class TrainConfig:
    """One classifier's training; each field is a flag of the trainer's command line
    (foundation.command_line), `codec` given with `quality` as --set."""

    domain: str = option(help="original: anchor 3; decoded: anchor 2; latent: compressed domain",
                         choices=tuple(domains.DOMAINS))
    shards: str = option(help="<out>/<dataset> written by `make prep`")
    quality: int | None = option(None, "learned codec quality (decoded, latent): the set q<Q>")
    codec: str = LEARNED  # of the coded set: q<Q> (learned) or jpeg<P>, webp<P>; --set gives it
    inputs: str = option("both", "latent inputs (the ablation)", choices=domains.INPUTS)
    latent_sigma: str = option("linear", "latent domain: sigma_hat as it is (the paper) or its log",
                               choices=SIGMA_INPUTS)
    latent_adapter: str = option(
        "none", "latent domain: a channel attention (squeeze and excitation) between the "
        "branches and the trunk, after Deng and Karam's feature adaptation", choices=ADAPTERS)
    rates: tuple[int, ...] = option(
        (), "latent domain: one classifier for every rate, trained on the q<Q> sets of these "
        "qualities together (validation and test: all of them; quality: the first)",
        metavar="Q")
    distill: str | None = option(
        None, "latent domain: a trained decoded-domain classifier (Anchor 2) whose conv_2x "
        "output on the decoded image the latent branches learn to match (trainer.distill)",
        metavar="CHECKPOINT")
    distill_weight: float = option(1.0, "weight of that feature hint beside the cross-entropy")
    kd_weight: float = option(
        0.0, "with --distill: weight of the teacher's softened class probabilities on the same "
        "view of the decoded image as a target (Hinton et al. 2015); 0: none")
    kd_temperature: float = option(
        4.0, "the temperature that softens both classifiers' logits for --kd-weight")
    hint_steps: int = option(
        0, "with --distill: batches that train the latent branches alone on the hint (Adam, "
        "the trunk not run) before the first epoch, FitNets' first stage")
    no_latent_flip: bool = option(
        False, "latent domain: no random horizontal flip in training (a flipped latent is not "
        "the latent of the flipped image)")
    equal_budget: bool = option(
        False, "decoded domain: name this run Anchor 2 (equal budget), the reference of a "
        "Comp. started from a trained Anchor 2; give it both runs' --epochs")
    init: str = option("imagenet", "imagenet, procedural (backbones/procedural), none, or a "
                       "state dict file")
    epochs: int = option(30)
    batch_size: int = option(PAPER_BATCH, "GLOBAL batch over all processes (per process: this / "
                             "world size); the learning rate is scaled by batch/32")
    lr: float = option(0.01, "learning rate at a global batch of 32")
    lr_steps: tuple[int, ...] = option((10, 20), "epochs after which lr is divided by 10",
                                       nargs="*")
    fresh_lr: float = option(1.0, "learning-rate multiplier of the tensors --init did not fill "
                             "(the fc; cResNet-39's latent branches)")
    momentum: float = option(0.9)
    weight_decay: float = option(5e-4)
    max_steps: int | None = option(None, "stop each epoch after this many optimizer steps "
                                   "(short runs)")
    resize: int = option(PAPER_SIZES.resize, "pixel domains: resize side")
    crop: int = option(PAPER_SIZES.crop, "pixel domains: crop side")
    latent_resize: int = option(PAPER_SIZES.latent_resize,
                                "latent domain: y_hat and sigma_hat resized to this side")
    latent_crop: int = option(PAPER_SIZES.latent_crop, "latent domain: crop side")
    workers: int | None = option(
        None, "loader workers per process (default: the node's CPUs over its processes, at "
        "least 2, so that loading scales over a GPU node's cores; on a CPU a held training "
        "split loads in process; 0: in process)")
    device: str = device_option()
    precision: str = precision_option()
    compile: bool = option(False, "torch.compile the training step (worth it for long GPU runs)")
    seed: int = option(0)
    out: str | None = option(None, "run folder (default under runs/train, named for the run "
                             "and a seed other than 0: classifier.run_folder)")
    resume: bool = option(False, "continue from the run folder's checkpoint (automatic after a "
                          "torchrun restart)")
    experiment: str = option("classifiers", "MLflow experiment")

    def __post_init__(self):
        check_choices(self)

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
    def sets_name(self) -> str:
        """The sets it reads as one name: q8, q1+4+8 (every rate), jpeg30, original."""
        return "q" + "+".join(map(str, self.rates)) if self.rates else self.set_id.name

    @property
    def run_name(self) -> str:
        """e.g. minc-2500/latent/q8, minc-2500/latent-y/q8, minc-2500/latent-rates/q1+4+8,
        minc-2500/decoded/jpeg30, minc-2500/original."""
        return "/".join(filter(None, [self.dataset,
                                      self.reader.run_label(self.inputs, bool(self.rates),
                                                            self.equal_budget),
                                      self.sets_name if self.reader.coded else ""]))

    @property
    def out_dir(self) -> Path:
        """--out, else its run folder under runs/train (each seed its own)."""
        return Path(self.out) if self.out else \
            run_folder.classifier_folder(Path("runs/train"), self.run_name, self.seed)

    def to_argv(self) -> list[str]:
        """The trainer's command line for this config (`parse` gives it back): the coded set
        by --set, then every flag that differs from its default."""
        coded = ["--set", self.set_id.name] if self.reader.coded else []
        return ["--domain", self.domain, "--shards", self.shards, *coded,
                *argv_of(self, leave_out=("domain", "shards", "quality"))]


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "torchrun trainer/main.py",
        "Train a material classifier on prepared shards with DDP (torchrun): ResNet-50 (deep "
        "stem) on original or decoded images, or cResNet-39 on y_hat + sigma_hat. Validation "
        "every epoch, test at the end, MLflow on rank 0.", TrainConfig)
    p.add_argument("--set", dest="set_name", default=None, metavar="NAME",
                   help="the coded set by its folder name instead of --quality: q<Q>, or a "
                   "classical codec's jpeg<P>, webp<P> (decoded domain only)")
    return p


def parse(argv: list[str] | None = None) -> TrainConfig:
    p = parser()
    args = vars(p.parse_args(argv))
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
    return config_of(TrainConfig, args)
