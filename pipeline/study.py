"""The compressed-domain diagnosis study: variants of the latent classifier's recipe, each
trained with several seeds at every learned quality of an experiment, beside Anchor 2 trained
with the same seeds; per cell the test Top-1 over the seeds (mean, min-max), per row the
BD-accuracy against Anchor 2 and the wall time of its runs.

    python -m pipeline.study --experiment demo --rows anchor2 baseline log-sigma --seeds 3

Each run is the trainer itself (torchrun, the preset's recipe with the row's changes), in
runs/study/<dataset>/<row>/<set>/seed<k>; a run with its test result is skipped, so the study
resumes. The trainer's test result is the report's (one classifier, one test accuracy). Rows:
`python -m pipeline.study --list`.

`--split F` runs split F of the data (MINC-2500's layout) with its own shards and runs, as
python -m pipeline keeps several splits apart (<out>/split<F>, <runs>/split<F>/<dataset>): one
fold of a prep.datasets.folds root a call, whose test split is that fold's held-out images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from evaluation.catalogue import Catalogue
from evaluation.classifiers import read_classifier
from evaluation.evaluate import Target, evaluate_target
from evaluation.seeds import row_result, seeds_range
from foundation import schema, storage
from foundation.cli import stage_main
from foundation.sets import LEARNED, SetId
from foundation.storage import Location
from pipeline import experiment as experiment_file
from pipeline.experiment import Experiment
from pipeline.run import (
    WALL_TIME,
    all_prep_configs,
    extra_set,
    job,
    latent_start_of,
    prep,
    prep_configs,
    train_configs,
)
from pipeline.run import train as train_jobs
from prep.datasets.listing import dataset_name
from prep.job import driver
from trainer import checkpoint, latent_start
from trainer.config import TrainConfig
from trainer.domains import DECODED, LATENT, ORIGINAL
from trainer.models import initial_state
from trainer.train import TEST_RESULT

RESULTS = "study.csv"
PER_CLASS = "per_class.csv"
HITS = "hits.parquet"  # per run, set, split and image: right or not
TABLES = "study.md"  # the tables of RESULTS and PER_CLASS
SELECTION = "selection"  # the selection set: its shards' folder, its split in the results
TRUNK_LAYERS = ("layer2", "layer3", "layer4")


@dataclass(frozen=True)
class Row:
    """One variant: the domain it trains and the TrainConfig fields it changes ({q}: the
    quality, {seed}: the run's seed, {runs}: the study's run folder of the dataset,
    {latent_init}: the experiment's latent_init)."""

    what: str
    domain: str = LATENT.name
    changes: tuple[tuple[str, object], ...] = ()
    every_rate: bool = False  # one classifier on every quality's latents, evaluated on each
    hint_steps: int = 0  # >0: its init, latent_init fitted on the task's latents (task_hint_job)
    # with hint_steps: the fit's teacher and trunk ({runs}, {q}), one fit per quality on that
    # quality's latents, its branches starting from the fitted start of the row hint_from
    hint_teacher: str = ""
    hint_from: str = ""

    def config(self, base: TrainConfig, quality: int, runs: Path, latent_init: str
               ) -> TrainConfig:
        fields = {k: v.format(q=quality, seed=base.seed, runs=runs, latent_init=latent_init)
                  if isinstance(v, str) else v for k, v in self.changes}
        return replace(base, **fields)


def trained(row: str, set_name: str = "q{q}", seed: int | str = "{seed}") -> str:
    """A row's trained classifier as a Row field names it: run_folder's checkpoint."""
    return f"{{runs}}/{row}/{set_name}/seed{seed}/{checkpoint.CHECKPOINT}"


ANCHOR2_OF_SEED = trained("anchor2")
ANCHOR2_SEED0 = trained("anchor2", seed=0)


def transplant_row(what: str, starts: str, hint_from: str, *changes: tuple) -> Row:
    """A row started from hint_from's start fitted further, for 300 steps, to the Anchor 2 of
    the quality and the run's own seed (one start a quality and seed, in {runs}/<starts>/)."""
    return Row(what, changes=(("init", f"{{runs}}/{starts}/q{{q}}-seed{{seed}}.pth"), *changes),
               hint_steps=300, hint_teacher=ANCHOR2_OF_SEED, hint_from=hint_from)


LATENT_UP = (("latent_resize", 32), ("latent_crop", 28))  # 2x the cells: the paper's 23 -> 32
# the Anchor 2 of the run's quality and seed a teacher of soft targets alone (no conv_2x hint)
SOFT_TARGETS = (("distill", ANCHOR2_OF_SEED), ("distill_weight", 0.0), ("kd_weight", 1.0))
TRUNK_START = "procedural-trunk.pth"  # the procedural start's conv_3x..conv_5x alone
LATENT_START = "latent-start-q4.pth"  # docs/comp-study/README.md says how it is made
ROWS = {
    "anchor2": Row("Anchor 2: ResNet-50 on the decoded images (the reference)", DECODED.name),
    "anchor3": Row("Anchor 3: ResNet-50 on the original images", ORIGINAL.name),
    "baseline": Row("Comp. from the pixel start (y_hat and sigma_hat, crop 14 of 16, the "
                    "procedural trunk, fresh latent branches): what each row changes"),
    "log-sigma": Row("log(sigma_hat) at the input", changes=(("latent_sigma", "log"),)),
    "trunk-none": Row("the trunk from random weights", changes=(("init", "none"),)),
    "trunk-anchor3": Row("the trunk from the trained Anchor 3 (seed 0)",
                         changes=(("init", trained("anchor3", "original", 0)),)),
    "trunk-anchor2": Row("the trunk from the trained Anchor 2 of the same quality (seed 0)",
                         changes=(("init", ANCHOR2_SEED0),)),
    "latent-whole": Row("the whole latent (16 of 16, no crop)",
                        changes=(("latent_resize", 16), ("latent_crop", 16))),
    "latent-up": Row("the latent upsampled 2x, then cropped (32, crop 28, as the paper's 23 "
                     "-> 32)", changes=LATENT_UP),
    "latent-no-flip": Row("no random flip of the latent in training (a flipped latent is "
                          "not the latent of the flipped image)",
                          changes=(("no_latent_flip", True),)),
    "epochs-10": Row("10 epochs instead of 6 (lr /10 after 7): about Anchor 2's wall time",
                     changes=(("epochs", 10), ("lr_steps", (7,)))),
    "adapter-se": Row("a channel attention (squeeze and excitation) between the branches and "
                      "the trunk", changes=(("latent_adapter", "se"),)),
    "adapter-se-anchor2": Row("the channel attention, the trunk from the trained Anchor 2 "
                              "(the follow-up's adaptation)",
                              changes=(("latent_adapter", "se"),
                                       ("init", ANCHOR2_SEED0))),
    "distill": Row("the trained Anchor 2 of the same quality and seed as teacher: its conv_2x "
                   "map on the decoded image a hint for the latent branches (trainer.distill)",
                   changes=(("distill", ANCHOR2_OF_SEED),)),
    "distill-anchor2": Row("the hint, and the trunk from that same Anchor 2 (the follow-up's "
                           "adaptation from pixel-domain weights, our way)",
                           changes=(("distill", ANCHOR2_OF_SEED), ("init", ANCHOR2_OF_SEED))),
    "fresh-lr-10": Row("the tensors --init did not fill (latent branches, fc) at 10x the "
                       "learning rate", changes=(("fresh_lr", 10.0),)),
    "anchor2-fresh-stem": Row("Anchor 2 with its stem and conv_2x fresh, the trunk alone from "
                              "the procedural start, as Comp. starts (is the gap the latent, or "
                              "the pretrained stem Comp. lacks?)", DECODED.name,
                              changes=(("init", "{runs}/" + TRUNK_START),)),
    "latent-start": Row("every tensor but the fc from a cResNet-39 pretrained on the latents "
                        "of the procedural corpus (coded at q4): the latent branches start "
                        "trained, as the pixel classifiers' stem does",
                        changes=(("init", "{runs}/" + LATENT_START),)),
    "latent-hint": Row("the latent branches fitted, without labels, to the procedural "
                       "backbone's conv_2x on the procedural corpus (trainer.latent_start), "
                       "the trunk the procedural one: the pixel start carried to the latent "
                       "(the experiment's latent_init)", changes=(("init", "{latent_init}"),)),
    "latent-hint-epochs-10": Row("latent-hint's start and 10 epochs (lr /10 after 7)",
                                 changes=(("init", "{latent_init}"), ("epochs", 10),
                                          ("lr_steps", (7,)))),
    "latent-hint-task": Row("latent-hint's start fitted further, without labels, on the "
                            "task's own training latents (every quality pooled, 1,000 steps "
                            "as the corpus fit): the branches meet the task's images before "
                            "its labels", changes=(("init", "{runs}/latent-hint-task.pth"),),
                            hint_steps=1000),
    "latent-hint-task-epochs-10": Row("latent-hint-task's start and 10 epochs (lr /10 after 7)",
                                      changes=(("init", "{runs}/latent-hint-task.pth"),
                                               ("epochs", 10), ("lr_steps", (7,))),
                                      hint_steps=1000),
    "latent-hint-task-3000": Row("latent-hint-task with 3,000 fitting steps",
                                 changes=(("init", "{runs}/latent-hint-task-3000.pth"),),
                                 hint_steps=3000),
    "latent-hint-task-500": Row("latent-hint-task with 500 fitting steps",
                                changes=(("init", "{runs}/latent-hint-task-500.pth"),),
                                hint_steps=500),
    "latent-hint-task-300": Row("latent-hint-task with 300 fitting steps (what the demo's "
                                "wall time can pay)",
                                changes=(("init", "{runs}/latent-hint-task-300.pth"),),
                                hint_steps=300),
    "transplant-anchor2": Row("the trained Anchor 2 of the quality (seed 0) carried to the "
                              "latent: latent-hint-task's branches fitted further, without "
                              "labels, to its conv_2x on that quality's training latents "
                              "(300 steps), under its trunk and fc",
                              changes=(("init", "{runs}/transplant-anchor2/q{q}.pth"),),
                              hint_steps=300, hint_teacher=ANCHOR2_SEED0,
                              hint_from="latent-hint-task"),
    "transplant-anchor2-seed": transplant_row("transplant-anchor2 with the Anchor 2 of the "
                                              "quality and the run's own seed, one fit a run "
                                              "(the demo's recipe: transplant_steps)",
                                              "transplant-anchor2-seed", "latent-hint-task"),
    "transplant-kd": transplant_row("transplant-anchor2-seed, and that Anchor 2's class "
                                    "probabilities (temperature 4) on the same view of the "
                                    "decoded image a target beside the labels in fine-tuning "
                                    "(Hinton et al.'s distillation, weight 1)",
                                    "transplant-anchor2-seed", "latent-hint-task",
                                    *SOFT_TARGETS),
    "latent-hint-task-res": Row("latent-hint-task with the residual adapter (two conv_2x "
                                "bottleneck blocks after the branches), fitted with them",
                                changes=(("init", "{runs}/latent-hint-task-res.pth"),
                                         ("latent_adapter", "res")), hint_steps=1000),
    "transplant-res": transplant_row("transplant-anchor2-seed with the residual adapter: "
                                     "latent-hint-task-res's branches and adapter fitted to the "
                                     "Anchor 2 of the quality and seed", "transplant-res",
                                     "latent-hint-task-res", ("latent_adapter", "res")),
    "transplant-res-lr-0.001": transplant_row("transplant-res fine-tuned at a tenth of the "
                                              "learning rate (0.001): the start already "
                                              "classifies, keep what it carries",
                                              "transplant-res", "latent-hint-task-res",
                                              ("latent_adapter", "res"), ("lr", 0.001)),
    "transplant-res-epochs-18": transplant_row("transplant-res trained 18 epochs instead of 6 "
                                               "(lr /10 after 12): on the photographs a Comp. "
                                               "run costs a third of an Anchor 2 run, so this "
                                               "is about Anchor 2's wall time",
                                               "transplant-res", "latent-hint-task-res",
                                               ("latent_adapter", "res"), ("epochs", 18),
                                               ("lr_steps", (12,))),
    "transplant-res-kd": transplant_row("transplant-res, and its Anchor 2's soft targets as "
                                        "transplant-res-up-kd's, on the view the 14-of-16 "
                                        "latent is cut to: half the scale that Anchor 2 was "
                                        "trained at on the photographs", "transplant-res",
                                        "latent-hint-task-res", ("latent_adapter", "res"),
                                        *SOFT_TARGETS),
    "latent-hint-task-res-up": Row("latent-hint-task-res on the latent upsampled 2x (32, crop "
                                   "28): the teacher's view is the pixel classifiers' (4 pixels "
                                   "a latent cell)",
                                   changes=(("init", "{runs}/latent-hint-task-res-up.pth"),
                                            ("latent_adapter", "res"), *LATENT_UP),
                                   hint_steps=1000),
    "transplant-res-up": transplant_row("transplant-res on the latent upsampled 2x (32, crop 28): "
                                        "its Anchor 2's conv_2x at the scale that Anchor 2 was "
                                        "trained at, where the photographs' 14 of 16 cells are "
                                        "a 56-pixel view of its 112-pixel input",
                                        "transplant-res-up", "latent-hint-task-res-up",
                                        ("latent_adapter", "res"), *LATENT_UP),
    "transplant-res-up-lr-0.001": transplant_row("transplant-res-up fine-tuned at a tenth of "
                                                 "the learning rate (0.001): a start that "
                                                 "carries its Anchor 2 needs less changing",
                                                 "transplant-res-up", "latent-hint-task-res-up",
                                                 ("latent_adapter", "res"), *LATENT_UP,
                                                 ("lr", 0.001)),
    "transplant-res-up-kd": transplant_row("transplant-res-up, and its Anchor 2's class "
                                           "probabilities (temperature 4) on the decoded "
                                           "image's view at that Anchor 2's own scale a target "
                                           "beside the labels (transplant-kd's distillation, "
                                           "weight 1)", "transplant-res-up",
                                           "latent-hint-task-res-up", ("latent_adapter", "res"),
                                           *LATENT_UP, *SOFT_TARGETS),
    "latent-hint-task-up-res": Row("latent-hint-task-res with a learned 2x upsampling before "
                                   "the adapter's blocks (adapter up-res), on the latent as it "
                                   "is (16, crop 14): the teacher's view is the pixel "
                                   "classifiers' (8 pixels a latent cell)",
                                   changes=(("init", "{runs}/latent-hint-task-up-res.pth"),
                                            ("latent_adapter", "up-res")), hint_steps=1000),
    "transplant-up-res": transplant_row("transplant-res-up with the upsampling learned: the "
                                        "trunk reads 28 cells as there, made by a stride-2 "
                                        "transposed convolution from the 14 latent cells, each "
                                        "sub-cell by its own weights, instead of bilinear "
                                        "upsampling before the branches",
                                        "transplant-up-res", "latent-hint-task-up-res",
                                        ("latent_adapter", "up-res")),
    "every-rate": Row("one classifier for every rate: trained on the latents of every quality "
                      "together (3x the steps of one quality's), evaluated on each",
                      every_rate=True),
    "y-only": Row("y_hat alone (the ablation)", changes=(("inputs", "y"),)),
    "sigma-only": Row("sigma_hat alone (the ablation)", changes=(("inputs", "sigma"),)),
}


def reads(spec: Row) -> list[str]:
    """The rows whose trained classifiers `spec` reads, as a start or a teacher: those whose
    checkpoint (`trained`) a change or its hint_teacher names."""
    paths = [v for _, v in spec.changes if isinstance(v, str)] + [spec.hint_teacher]
    return sorted({p.split("/")[1] for p in paths
                   if p.startswith("{runs}/") and p.endswith("/" + checkpoint.CHECKPOINT)})


READ_BY_OTHERS = frozenset(r for spec in ROWS.values() for r in reads(spec))  # trained first


def run_folder(runs: Path, row: str, set_name: str, seed: int) -> Path:
    return runs / row / set_name / f"seed{seed}"


def cells(e: Experiment, rows: list[str], seeds: int, runs: Path) -> list[tuple]:
    """(row, set name, quality, seed, TrainConfig) of every run, dependencies first."""
    out = storage.location(e.out)
    # every latent row starts where the baseline does, from the pixel start (init), whatever
    # start, adapter and learning rate the preset gives Comp. (latent_init, latent_adapter,
    # latent_lr): one baseline for every row and preset
    base = {c.domain: c if c.domain != LATENT.name else replace(c, init=e.init,
                                                                latent_adapter="none", lr=e.lr)
            for c in train_configs(e, out, runs, "study")
            if c.inputs == "both" and c.codec == LEARNED and not c.equal_budget}
    hinted = [r for r in rows if ("init", "{latent_init}") in ROWS[r].changes]
    if hinted and not e.latent_init:
        raise ValueError(f"rows {', '.join(hinted)}: the experiment has no latent_init (the "
                         f"latent start they read); set it, e.g. to a `make latent-hint` file")
    ordered = sorted(rows, key=lambda r: r not in READ_BY_OTHERS)
    found = []
    for row in ordered:
        spec = ROWS[row]
        qualities = ((None,) if spec.domain == ORIGINAL.name else
                     e.qualities[:1] if spec.every_rate else e.qualities)
        for quality in qualities:
            for seed in range(seeds):
                rates = e.qualities if spec.every_rate else ()
                config = spec.config(replace(base[spec.domain], quality=quality, seed=seed,
                                             rates=rates), quality, runs, e.latent_init)
                set_name = Path(config.run_name).name  # q4, or q1+4+8 for every rate
                folder = run_folder(runs, row, set_name, seed)
                found.append((row, set_name, quality, seed,
                              replace(config, out=str(folder), experiment=f"study-{row}")))
    return found


def train(all_cells: list[tuple], e: Experiment, needed: bool) -> None:
    """Train every cell without a test result, the preset's lanes at a time: the rows others
    start from (`needed`), or the rest; each run's wall time goes beside its test result."""
    jobs = [job(config, f"{row} {set_name} seed {seed}")
            for row, set_name, _, seed, config in all_cells
            if (row in READ_BY_OTHERS) == needed
            and not (Path(config.out) / TEST_RESULT).is_file()]
    train_jobs(jobs, e)


def test_hits(config: TrainConfig, quality: int | None, catalogue: Catalogue, cache: str,
              label_space: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """A run's classifier on the test split of the catalogue's set of `quality` (the report's
    evaluation; predictions cached in the run folder under `cache`, the trainer's own test pass
    where it is that split): per test image its key, label and whether its top class is right
    (top1), and the class names; label_space: the classifier's class names where the catalogue
    is an evaluation-only set."""
    classifier = read_classifier(Path(config.out) / checkpoint.CHECKPOINT)
    target = Target(classifier.trained_method, config.reader.set_for(quality), config.domain,
                    classifier)
    predictions, shard_set = evaluate_target(target, catalogue, "test", Path(config.out) / cache,
                                             torch.device("cpu"), 2, label_space)
    names = label_space or list(shard_set.info["categories"])
    return pd.DataFrame({"key": predictions["key"], "label": predictions["label"],
                         "top1": predictions["top"][:, 0] == predictions["label"]}), names


def collect(all_cells: list[tuple], bpp: dict[str, float], catalogue: Catalogue,
            others: dict[str, Catalogue] | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A row per run and set it is scored on: its trainer's test result (one classifier for
    every rate: the report's evaluation on each quality), its last validation Top-1, and on
    each evaluation-only set of `others` (by name: extra, the held-out test photographs;
    selection, what the recipe is chosen on) its Top-1 on that set's test split
    (<name>_top1). Beside it, per run, set, split (test and others) and class: the images and
    those the run got right; and per run, set, split and image: right or not (the hits that the
    selection's bootstrap resamples)."""
    rows, classes, all_hits = [], [], []
    for row, set_name, quality, seed, config in all_cells:
        folder = Path(config.out)
        if not (folder / TEST_RESULT).is_file():
            continue
        test = json.loads((folder / TEST_RESULT).read_text())
        val_top1 = checkpoint.load(folder / checkpoint.CHECKPOINT)["history"][-1]["val_top1"]
        wall = folder / WALL_TIME
        for q in config.rates or (quality,):
            name = SetId.of(q).name if config.rates else set_name
            hits, names = test_hits(config, q, catalogue, "rates" if config.rates else "test")
            top1, samples = ((float(hits["top1"].mean()), len(hits)) if config.rates else
                             (test["test_top1"], test["test_samples"]))
            found = {"row": row, "set": name, "quality": q, "seed": seed,
                     "bpp": bpp.get(name, math.nan), "top1": top1, "samples": samples,
                     "val_top1": val_top1,
                     "wall_s": json.loads(wall.read_text()) if wall.is_file() else math.nan}
            scored = [("test", hits)]
            for split, other in (others or {}).items():
                split_hits, _ = test_hits(config, q, other, split, names)
                found[f"{split}_top1"] = float(split_hits["top1"].mean())
                found[f"{split}_samples"] = len(split_hits)
                scored.append((split, split_hits))
            rows.append(found)
            for split, split_hits in scored:
                all_hits.append(split_hits[["key", "top1"]].assign(
                    row=row, set=name, seed=seed, split=split))
                for label, group in split_hits.groupby("label"):
                    classes.append({"row": row, "set": name, "seed": seed, "split": split,
                                    "class": names[label], "right": int(group["top1"].sum()),
                                    "images": len(group)})
    hits = pd.concat(all_hits, ignore_index=True) if all_hits else pd.DataFrame()
    return pd.DataFrame(rows), pd.DataFrame(classes), hits


def class_summary(classes: pd.DataFrame, split: str) -> str:
    """A markdown table of one test split: per row and set, each class's Top-1 over the seeds
    (their right answers over their images)."""
    found = classes[classes["split"] == split]
    names = sorted(found["class"].unique())
    sums = found.groupby(["row", "set", "class"], sort=False)[["right", "images"]].sum()
    images = found.groupby("class")["images"].first()  # a run's, the same in every run
    lines = ["| row | set | " + " | ".join(f"{n} ({images[n]})" for n in names) + " |",
             "|---|---|" + "---:|" * len(names)]
    for (row, set_name), group in sums.groupby(level=[0, 1], sort=False):
        cell = group.droplevel([0, 1])
        lines.append(f"| {row} | {set_name} | " + " | ".join(
            f"{100 * cell.loc[n, 'right'] / cell.loc[n, 'images']:.1f}" if n in cell.index
            else "" for n in names) + " |")
    return "\n".join(lines)


def mean_bpp(shards: str, qualities: tuple[int, ...]) -> dict[str, float]:
    """Each learned set's mean bpp over its test split (the manifest's)."""
    rates = {}
    for q in qualities:
        name = SetId.of(q).name
        manifest = schema.read_manifest(storage.join(shards, name)).to_pandas()
        rates[name] = float(manifest.loc[manifest["split"] == "test", "bpp"].mean())
    return rates


def summary(results: pd.DataFrame, metric: str = "top1") -> str:
    """A markdown table: per row and set the mean Top-1 over the seeds and their range (metric:
    the column, top1, val_top1, extra_top1 or selection_top1); BD against Anchor 2 (mean curves;
    the range: seed k of the row against the mean Anchor 2 curve); mean wall time of a run."""
    results = results.dropna(subset=[metric])  # runs of an earlier study may lack it
    sets = sorted(results["set"].unique(), key=SetId.parse)
    head = "| row | " + " | ".join(sets) + " | BD vs Anchor 2 (seed range) | seeds | s/run |"
    lines = [head, "|---|" + "---|" * len(sets) + "---|---:|---:|"]
    for row, group in results.groupby("row", sort=False):
        result = row_result(results, row, metric)
        texts = []
        for s in sets:
            if s not in result.cells:
                texts.append("")
                continue
            mean, low, high, count = result.cells[s]
            texts.append(f"{100 * mean:.1f} ({count} seed{'s' if count > 1 else ''})"
                         if count < result.seeds else
                         f"{100 * mean:.1f}" + (f" ({seeds_range(low, high)})" if count > 1
                                                else ""))
        bd = ("" if result.bd is None else f"{100 * result.bd[0]:+.1f} "
              f"({seeds_range(*result.bd[1:], signed=True)})")
        lines.append(f"| {row} | " + " | ".join(texts) +
                     f" | {bd} | {result.seeds} | {group['wall_s'].mean():.0f} |")
    return "\n".join(lines)


def write_trunk_start(init: str, path: Path) -> None:
    """`init`'s conv_3x..conv_5x alone (what cResNet-39 takes of it), for a pixel classifier
    that starts as the compressed-domain one does."""
    state = initial_state(init)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v for k, v in state.items() if k.split(".")[0] in TRUNK_LAYERS}, path)


def fit_task_hints(e: Experiment, all_cells: list[tuple], runs: Path) -> None:
    """Each task-hint row's start that is not there yet (trainer.latent_start: no label is
    read), for the row's steps: the experiment's latent_init (as the pipeline: fresh branches
    on the pixel start where it has none) fitted further to the pixel start's conv_2x on the
    training latents of its qualities pooled; or, for a row with a
    hint_teacher, per quality its hint_from row's branches fitted to that teacher's conv_2x on
    the quality's latents, under the teacher's trunk."""
    shards = storage.join(e.out, e.dataset)

    def fitted(row: str, quality: int | None = None, seed: int = 0) -> Path:
        spec = ROWS[row]
        path = Path(dict(spec.changes)["init"].format(runs=runs, q=quality, seed=seed))
        if path.is_file():
            return path
        changes = dict(spec.changes)
        shape = {"arithmetic": e.precision,  # the adapter is fitted with the branches
                 "adapter": changes.get("latent_adapter", "none"),
                 "latent_resize": changes.get("latent_resize", e.latent_resize),
                 "latent_crop": changes.get("latent_crop", e.latent_crop)}
        if not spec.hint_teacher:
            latent_start.fit_file(shards, e.qualities, latent_start_of(e), spec.hint_steps,
                                  path, **shape)
            return path
        teacher = Path(spec.hint_teacher.format(runs=runs, q=quality, seed=seed))
        latent_start.fit_file(shards, (quality,), str(teacher), spec.hint_steps, path,
                              teacher=teacher, branches=str(fitted(spec.hint_from)), seed=seed,
                              **shape)
        return path

    def fit_of(row: str, quality: int | None, seed: int) -> tuple:
        """The fit a run needs: one per row, per quality (a teacher), or per quality and seed
        (a teacher of the run's seed)."""
        spec = ROWS[row]
        per_seed = "{seed}" in dict(spec.changes)["init"]
        return row, quality if spec.hint_teacher else None, seed if per_seed else 0

    for fit in dict.fromkeys(fit_of(c[0], c[2], c[3]) for c in all_cells if ROWS[c[0]].hint_steps):
        fitted(*fit)


def selection_set(e: Experiment, data: str) -> Location:
    """Where a selection set's shards go: prepared like the evaluation-only set, apart."""
    return storage.join(storage.join(e.out, SELECTION), dataset_name(data))


def of_split(e: Experiment, runs: Path, split: int | None) -> tuple[Experiment, Path]:
    """The experiment and the study's run folder of the dataset for `--split`: none, the
    experiment's first split in the folders it always had; a split, its own shards and runs
    (python -m pipeline's folders of one of several splits)."""
    if split is None:
        return e, runs / e.dataset
    return (replace(e, splits=(split,), out=str(storage.join(e.out, f"split{split}"))),
            runs / f"split{split}" / e.dataset)


def run(e: Experiment, rows: list[str], seeds: int, runs: Path, train_missing: bool = True,
        selection: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Prepare the learned sets (and the evaluation-only set, and the selection set: images
    never trained on, all in its test split, that the rows are chosen on), train every missing
    run of `rows` (and of the rows they start from) and collect the results of those finished
    (per run and set, per class and per image: collect)."""
    rows = list(dict.fromkeys([r for row in rows for r in reads(ROWS[row])] + rows))
    all_cells = cells(e, rows, seeds, runs)
    if any(c[4].init == str(runs / TRUNK_START) for c in all_cells):
        write_trunk_start(e.init, runs / TRUNK_START)
    extra = extra_set(e)
    if train_missing:
        learned = replace(e, jpeg_qualities=(), webp_qualities=())  # no classical rows
        with driver.ray_session(None):  # one Ray start for every step
            prep(all_prep_configs(learned, storage.location(e.out), e.splits[0])
                 + (prep_configs(replace(learned, data=selection),
                                 storage.join(e.out, SELECTION), 1) if selection else []))
            train(all_cells, e, needed=True)  # the rows others start from: a fit may read them
            fit_task_hints(e, all_cells, runs)
            train(all_cells, e, needed=False)
    bpp = mean_bpp(str(storage.join(e.out, e.dataset)), e.qualities)
    others = ({"extra": Catalogue(extra)} if extra is not None else {}) | (
        {SELECTION: Catalogue(selection_set(e, selection))} if selection else {})
    return collect(all_cells, bpp, Catalogue(storage.join(e.out, e.dataset)), others)


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="demo", metavar="NAME|FILE",
                   help="the recipe the rows change (experiments/ or a TOML file)")
    p.add_argument("--data", default=None, help="the experiment's data folder otherwise")
    p.add_argument("--split", type=int, default=None, metavar="F",
                   help="the data's split F (MINC-2500's layout; a fold of prep.datasets.folds), "
                   "its shards and runs apart (<out>/split<F>, <runs>/split<F>/<dataset>); the "
                   "experiment's first split otherwise, in the folders it always had")
    p.add_argument("--extra-test", default=None, metavar="DATA",
                   help='the experiment\'s evaluation-only set otherwise; "" for none (on a '
                   "choice's folds: those are test images, read after the choice)")
    p.add_argument("--rows", nargs="+", default=["anchor2", "baseline"], choices=sorted(ROWS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--qualities", type=int, nargs="+", default=None,
                   help="the experiment's learned qualities otherwise (a first look at one)")
    p.add_argument("--runs", type=Path, default=Path("runs/study"))
    p.add_argument("--out", type=Path, default=None, help=f"where {RESULTS} and the table go "
                   "(default: the runs folder)")
    p.add_argument("--earlier", type=Path, default=None, metavar="CSV",
                   help=f"an earlier {RESULTS}: its rows that this study does not run join the "
                   "table (marked `earlier` in the results)")
    p.add_argument("--selection", default=None, metavar="DATA",
                   help="a set of images never trained on (all in its test split, e.g. "
                   "synthetic textures of another seed) that every run is also scored on: "
                   "what python -m pipeline.selection chooses rows on")
    p.add_argument("--tables", type=Path, default=None, metavar="FOLDER",
                   help=f"write FOLDER's {TABLES} again from its {RESULTS} and {PER_CLASS} "
                   "(a committed study's; the experiment names its evaluation-only set)")
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    p.add_argument("--no-train", action="store_true",
                   help="only the table of the runs that have finished (while a study runs)")
    args = p.parse_args(argv)
    if args.list:
        for name, row in ROWS.items():
            print(f"{name:14} {row.what}")
        return 0
    e = experiment_file.load(args.experiment)
    if args.tables:  # the tables again from a study's own CSVs: nothing is run
        classes = args.tables / PER_CLASS
        write_tables(pd.read_csv(args.tables / RESULTS),
                     pd.read_csv(classes) if classes.is_file() else pd.DataFrame(), args.tables,
                     e.extra_label)
        print(f"wrote {args.tables / TABLES}")
        return 0
    if args.data:
        e = replace(e, data=args.data)
    if args.qualities:
        e = replace(e, qualities=tuple(args.qualities))
    if args.extra_test is not None:
        e = replace(e, extra_test=args.extra_test or None)
    e, runs = of_split(e, args.runs, args.split)
    results, classes, hits = run(e, args.rows, args.seeds, runs,
                                 train_missing=not args.no_train, selection=args.selection)
    if args.earlier:
        earlier = pd.read_csv(args.earlier)
        kept = earlier[~earlier["row"].isin(results["row"])].assign(earlier=True)
        results = pd.concat([results.assign(earlier=False), kept], ignore_index=True)
    out = args.out or runs
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / RESULTS, index=False)
    classes.to_csv(out / PER_CLASS, index=False)
    hits.to_parquet(out / HITS, index=False)
    print("\n" + write_tables(results, classes, out, e.extra_label))
    return 0


def write_tables(results: pd.DataFrame, classes: pd.DataFrame, out: Path,
                 extra_label: str | None) -> str:
    """study.md in `out`: the summary of every metric the results hold, then by class."""
    table = summary(results) + "\n\nValidation Top-1 (what a recipe is chosen on):\n\n" + \
        summary(results, "val_top1")
    if f"{SELECTION}_top1" in results:
        table += ("\n\nOn the selection set (never trained on; what python -m pipeline.selection "
                  "chooses on):\n\n" + summary(results, f"{SELECTION}_top1"))
    if "extra_top1" in results and results["extra_top1"].notna().any():
        table += (f"\n\nOn the evaluation-only set {extra_label} (its test split):\n\n"
                  + summary(results, "extra_top1"))
    for split in classes["split"].unique() if len(classes) else ():
        table += (f"\n\nTop-1 by class on the {split} split, over the seeds (a class's images "
                  f"in parentheses):\n\n" + class_summary(classes, split))
    (out / TABLES).write_text(table + "\n")
    return table


if __name__ == "__main__":
    sys.exit(main())
