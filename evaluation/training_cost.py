"""What each classifier of a report cost to train, and what its path cost: a Comp. that starts
from a trained Anchor 2 (transplant_steps, distill) needs that Anchor 2 trained first, so its
path's cost holds that Anchor 2's too.

Arithmetic: forward and backward FLOPs of one training image (torch's counter, a multiply-add is
2) times the images trained on (the trainer's steps per epoch times the batch, every epoch done).
Wall time: what the pipeline recorded in the run folder (classifier.run_folder: the trainer's
start-up and the label-free fit of a transplanted start included; none where the run was trained
by hand).
The label-free fits (latent_hint_steps, transplant_steps) are in the wall time, not the FLOPs.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from classifier import run_folder
from classifier.methods import ANCHOR2, COMP
from evaluation.catalogue import Catalogue
from evaluation.classifiers import Classifier
from foundation.sets import SetId

COST = "training_cost"  # the report's table: training_cost.csv


def flops_per_image(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Forward + backward FLOPs of one image of `shape` (a batch of 2 is counted, then halved:
    BatchNorm trains on a batch)."""
    x = torch.randn((2, *shape))
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def training_input(c: Classifier, latent_channels: int | None) -> tuple[int, ...]:
    """One training input's shape: y_hat and sigma_hat stacked on channels, or an RGB crop."""
    config = c.config
    if config.reader.latent:
        return (2 * latent_channels, config.latent_crop, config.latent_crop)
    return (3, config.crop, config.crop)


def own_cost(catalogue: Catalogue, classifiers: list[Classifier]) -> pd.DataFrame:
    """A row per classifier: its method, set, seed, epochs done, images trained on, GFLOPs per
    image and in all, wall seconds."""
    rows, per_image = [], {}
    for c in classifiers:
        config = c.config
        shard_set = catalogue.shard_set(config.domain, config.set_id)
        train = sum(catalogue.shard_set(config.domain, SetId.of(q)).counts["train"]
                    for q in config.rates) if config.rates else shard_set.counts["train"]
        shape = training_input(c, shard_set.latent_channels if config.reader.latent else None)
        key = (config.method, shape, config.latent_adapter)
        if key not in per_image:
            model = config.network(shard_set.num_classes, shard_set.latent_channels
                                   if config.reader.latent else None)
            per_image[key] = flops_per_image(model, shape) / 1e9
        images = c.epoch * config.steps_per_epoch(train) * config.batch_size
        rows.append({"method": config.method, "set": config.set_id.name,
                     "quality": config.quality, "codec": config.codec, "seed": config.seed,
                     "epochs": c.epoch, "images": images, "gflops_per_image": per_image[key],
                     "gflops": images * per_image[key],
                     "wall_s": run_folder.read_wall_time(c.path.parent),
                     "start": config.init})
    return pd.DataFrame(rows)


def path_cost(own: pd.DataFrame, started_from_anchor2: bool) -> pd.DataFrame:
    """own_cost with the path's cost beside each row (path_gflops, path_wall_s): a Comp.
    started from its Anchor 2 adds that Anchor 2's (the same set and seed)."""
    anchor2 = own[own["method"] == ANCHOR2].set_index(["set", "seed"])
    paths = []
    for row in own.itertuples(index=False):
        gflops, wall = row.gflops, row.wall_s
        if started_from_anchor2 and row.method == COMP and (row.set, row.seed) in anchor2.index:
            teacher = anchor2.loc[(row.set, row.seed)]
            gflops, wall = gflops + teacher.gflops, wall + teacher.wall_s
        paths.append({"path_gflops": gflops, "path_wall_s": wall})
    return pd.concat([own.reset_index(drop=True), pd.DataFrame(paths)], axis=1)


def training_cost(catalogue: Catalogue, classifiers: list[Classifier],
                  started_from_anchor2: bool) -> pd.DataFrame:
    """A row per classifier: its own cost and its path's (path_cost)."""
    return path_cost(own_cost(catalogue, classifiers), started_from_anchor2)


def cost_markdown(cost: pd.DataFrame) -> str:
    """Per cell (method and set), the mean over its seeds: epochs, images, TFLOPs and wall time
    of its own training and of its path."""
    cells = cost.groupby(["method", "set"], sort=False).agg(
        epochs=("epochs", "mean"), images=("images", "mean"), gflops=("gflops", "mean"),
        path_gflops=("path_gflops", "mean"), wall_s=("wall_s", "mean"),
        path_wall_s=("path_wall_s", "mean"), seeds=("seed", "nunique")).reset_index()

    def seconds(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.0f}"

    lines = ["| method | set | epochs | images trained on | TFLOPs | wall s | path TFLOPs | "
             "path wall s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in cells.itertuples(index=False):
        lines.append(f"| {r.method} | {r.set} | {r.epochs:.0f} | {r.images:.0f} | "
                     f"{r.gflops / 1e3:.1f} | {seconds(r.wall_s)} | {r.path_gflops / 1e3:.1f} | "
                     f"{seconds(r.path_wall_s)} |")
    several = " (the mean over its seeds)" if cells["seeds"].max() > 1 else ""
    return ("## What each path cost to train\n\n"
            f"Per cell{several}: the epochs and images it trained on, the arithmetic of that "
            "training (forward and backward FLOPs of a training image, torch's counter, times "
            "the images) and its wall time as the pipeline recorded it (start-up and the "
            "label-free fit of its start included; `-`: not recorded). *Path*: what a "
            "classifier needs trained before it can be used; for a Comp. started from its "
            "quality's trained Anchor 2, that Anchor 2's cost is added. The label-free fits "
            "of the latent branches are in the wall time, not in the FLOPs. `"
            f"{COST}.csv` holds every classifier's row.\n\n" + "\n".join(lines) + "\n")
