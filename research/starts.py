"""What a compressed-domain start classifies before any label is read.

A start is trainer.latent_start's file: latent branches (and adapter) over a trunk, e.g. the
transplant of an Anchor 2, whose trunk and fc it names. Each start, under cResNet-39 in the
experiment's sizes and precision, is scored on the validation and test splits (and an
evaluation-only set) twice: as it is, and with its BatchNorm statistics re-estimated on the
training latents (forward passes in train mode, no gradient, a cumulative average): a start's
BatchNorm statistics are its trunk's, from pixels, and fine-tuning replaces them within its
first steps. A start on a trained pixel classifier's trunk (a transplant) is shown beside that
classifier, on the same images at its own view and at the view its fit showed it.
docs/comp-study compares these with the fine-tuned Comp. and its Anchor 2.

    python -m research.starts runs/study/demo-textures/transplant-res/q4-seed0.pth \
        --experiment demo [--shards DIR] [--extra DIR]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import update_bn

from classifier import run_folder
from classifier.config import TrainConfig
from classifier.data import EvalStream, SampleTransform, loader, open_shard_set
from classifier.domains import DECODED, LATENT
from classifier.models import initial_state, trunk_of
from evaluation.classifiers import Classifier, load_model, read_classifier
from evaluation.predict import predict
from foundation import storage
from foundation.cli import stage_main
from foundation.runtime import DEVICES, Runtime, autocast, memory_format
from foundation.sets import SetId
from foundation.storage import Location
from pipeline import experiment
from pipeline.plan import train_configs, transplanted
from pipeline.run import extra_set
from trainer.train import build_model


def quality_of(start: Path) -> int:
    """The quality a start was fitted on, from its name (run_folder.START_NAMES)."""
    try:
        found = SetId.parse(run_folder.start_set(start))
    except ValueError:
        found = SetId()
    if not found.learned:
        raise ValueError(f"{start}: a start's name begins with its quality "
                         f"({run_folder.START_NAMES}); rename it or copy it under such a name")
    return found.quality


def reestimate_batchnorm(model: torch.nn.Module, shard_set, config: TrainConfig,
                         arithmetic: str) -> None:
    """Every BatchNorm's running statistics anew (torch's update_bn: a cumulative average over
    one pass of the training split's eval view, on the model's device), the model left in eval
    mode."""
    stream = EvalStream(shard_set.shards("train"),
                        SampleTransform(shard_set, False, *config.input_sizes), 0, 1)
    device = next(model.parameters()).device
    fmt = memory_format(device)  # the layout the classifier runs in
    with autocast(device, arithmetic):
        update_bn((x.to(device, memory_format=fmt) for x, _ in loader(stream, 32, 0, 0)), model)
    model.eval()


def scores(model, sets: dict[str, tuple], config: TrainConfig, arithmetic: str) -> dict:
    """Per named (shard set, split): Top-1 % and, per class name, (right, images)."""
    found = {}
    for name, (shard_set, split) in sets.items():
        p = predict(model, shard_set, split, config.input_sizes, workers=0,
                    arithmetic=arithmetic)
        hit = p["top"][:, 0] == p["label"]
        names = shard_set.info["categories"]
        found[name] = (100 * hit.mean(), {names[c]: (int(hit[p["label"] == c].sum()),
                                                     int((p["label"] == c).sum()))
                                          for c in np.unique(p["label"])})
    return found


def start_scores(start: Path, e: experiment.Experiment, shards: Location,
                 extra: Location | None, device: str | None = None) -> dict[str, dict]:
    """{"as is": scores, "BatchNorm re-estimated": scores} of one start, and for a start on a
    pixel classifier's trunk that classifier's scores at two views (teacher_scores); on
    `device` (default: the experiment's), in the experiment's precision."""
    quality = quality_of(start)
    comps = [c for c in train_configs(e, e.out, Path(e.runs), "starts")
             if transplanted(c) and c.quality == quality]
    if not comps:
        raise ValueError(f"{start}: experiment {e.dataset} has no Comp. of quality {quality} "
                         f"(its qualities: {e.qualities}); give the experiment it was fitted for")
    config = replace(comps[0], shards=str(shards), init=str(start))  # its sizes and adapter
    runtime = Runtime.resolve(device or e.device, e.precision)
    roots = {"validate": (shards, "validate"), "test": (shards, "test"),
             **({"extra": (extra, "test")} if extra is not None else {})}
    sets = {name: (open_shard_set(root, LATENT.name, SetId.of(quality)), split)
            for name, (root, split) in roots.items()}
    shard_set = sets["validate"][0]
    model = build_model(shard_set, config, initial_state(str(start))).to(
        runtime.device, memory_format=runtime.memory_format).eval()
    found = {"as is": scores(model, sets, config, runtime.precision)}
    reestimate_batchnorm(model, shard_set, config, runtime.precision)
    found["BatchNorm re-estimated"] = scores(model, sets, config, runtime.precision)
    if (teacher := trunk_classifier(start)) is not None:
        found.update(teacher_scores(teacher, config, roots, runtime))
    return found


def trunk_classifier(start: Path) -> Classifier | None:
    """The Anchor 2 whose trunk a start sits on (a transplant's), if any."""
    content = torch.load(start, map_location="cpu", weights_only=True)
    trunk = trunk_of(start, content.get("trunk"))
    if not trunk or not Path(trunk).is_file():
        return None  # a named start (procedural), or a plain state dict
    found = read_classifier(Path(trunk))
    return found if found.config.domain == DECODED.name else None


def teacher_scores(teacher: Classifier, config: TrainConfig, roots: dict[str, tuple],
                   runtime: Runtime) -> dict[str, dict]:
    """The start's teacher on the same images at its own view and at the view the fit showed
    it (the config's hint_stride pixels a latent cell): where the two differ, the trunk was
    fed features of another scale than it was trained on, and the start cannot carry all of
    its teacher."""
    pixel = {name: (open_shard_set(root, DECODED.name, SetId.of(config.quality)), split)
             for name, (root, split) in roots.items()}
    model = load_model(teacher, pixel["validate"][0].num_classes, None).to(
        runtime.device, memory_format=runtime.memory_format)
    own = teacher.config
    stride = config.input_sizes.hint_stride
    fit = replace(own, resize=stride * config.latent_resize, crop=stride * config.latent_crop)
    return {f"its Anchor 2 at {c.resize} -> {c.crop} px ({view})":
            scores(model, pixel, c, runtime.precision)
            for c, view in ((own, "its own view"), (fit, "the fit's view"))}


@stage_main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m research.starts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("starts", type=Path, nargs="+", help=f"start files ({run_folder.START_NAMES})")
    p.add_argument("--experiment", default="demo",
                   help="its sizes, adapter, precision and shards (pipeline/experiment.py)")
    p.add_argument("--shards", type=Path, default=None,
                   help="the dataset's shards (default: the experiment's out/dataset)")
    p.add_argument("--extra", type=Path, default=None,
                   help="an evaluation-only set's shards (default: the experiment's extra_test)")
    p.add_argument("--device", choices=DEVICES, default=None,
                   help="where the starts are scored (default: the experiment's device)")
    args = p.parse_args(argv)
    e = experiment.load(args.experiment)
    shards = args.shards or storage.join(e.out, e.dataset)
    extra = args.extra or extra_set(e)
    print("| start | weights | split | Top-1 % | per class: right / images |")
    print("|---|---|---|---:|---|")
    for start in args.starts:
        for weights, found in start_scores(start, e, shards, extra, args.device).items():
            for split, (top1, classes) in found.items():
                per_class = ", ".join(f"{c} {r}/{n}" for c, (r, n) in classes.items())
                print(f"| {start} | {weights} | {split} | {top1:.1f} | {per_class} |",
                      flush=True)


if __name__ == "__main__":
    sys.exit(main())
