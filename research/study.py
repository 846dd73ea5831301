"""The compressed-domain diagnosis study: variants of the latent classifier's recipe, each
trained with several seeds at every learned quality of an experiment, beside Anchor 2 trained
with the same seeds; per cell the test Top-1 over the seeds (mean, min-max), per row the
BD-accuracy against Anchor 2 and the wall time of its runs.

    python -m research.study --experiment demo --rows anchor2 baseline log-sigma --seeds 3

Each run is the trainer itself (torchrun, the experiment's recipe with the row's changes:
research/rows/<row>.toml, an experiment file over it; Row), in
runs/study/<dataset>/<row>/<set>/seed<k>; a run with its test result is skipped, so the study
resumes. The trainer's test result is the report's (one classifier, one test accuracy). Rows:
`python -m research.study --list`.

`--split F` runs split F of the data (MINC-2500's layout) with its own shards and runs, as
python -m pipeline keeps several splits apart (<out>/split<F>, <runs>/split<F>/<dataset>): one
fold of a prep.datasets.folds root a call, whose test split is that fold's held-out images.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from classifier import checkpoint, run_folder
from classifier.config import TrainConfig
from classifier.models import initial_state
from evaluation.catalogue import Catalogue
from evaluation.classifiers import read_classifier
from evaluation.evaluate import Target, evaluate_target
from evaluation.seeds import STUDY_REFERENCE as REFERENCE
from evaluation.seeds import row_result, seeds_range
from foundation import schema, storage
from foundation.cli import stage_main
from foundation.runtime import torch_device
from foundation.sets import LEARNED, SetId
from foundation.storage import Location
from pipeline import experiment as experiment_file
from pipeline.experiment import Experiment
from pipeline.plan import job, latent_start_of, train_configs
from pipeline.run import all_prep_configs, extra_set, prep, prep_configs
from pipeline.run import train as train_on_ray
from prep.datasets.listing import dataset_name
from prep.job import driver
from research.row import READ_BY_OTHERS, ROWS, reads, trained
from trainer import latent_start
from trainer.latent_start import LatentFit

RESULTS = "study.csv"
PER_CLASS = "per_class.csv"
HITS = "hits.parquet"  # per run, set, split and image: right or not
TABLES = "study.md"  # the tables of RESULTS and PER_CLASS
SELECTION = "selection"  # the selection set: its shards' folder, its split in the results
TRUNK_LAYERS = ("layer2", "layer3", "layer4")
TRUNK_START = "procedural-trunk.pth"  # the procedural start's conv_3x..conv_5x alone


def cells(e: Experiment, rows: list[str], seeds: int, runs: Path) -> list[tuple]:
    """(row, set name, quality, seed, TrainConfig) of every run, dependencies first: per row its
    recipe's classifier of the kind it trains, at each learned quality (learned sets only)."""
    out = storage.location(e.out)
    hinted = [r for r in rows if ROWS[r].reads_latent_init]
    if hinted and not e.latent_init:
        raise ValueError(f"rows {', '.join(hinted)}: the experiment has no latent_init (the "
                         f"latent start they read); set it, e.g. to a `make latent-hint` file")
    ordered = sorted(rows, key=lambda r: r not in READ_BY_OTHERS)
    found = []
    for row in ordered:
        spec = ROWS[row]
        recipe = spec.recipe(e)
        for config in train_configs(recipe, out, runs, "study"):
            if config.method != spec.trains or config.codec != LEARNED:
                continue
            for seed in range(seeds):
                run = spec.config(replace(config, seed=seed), recipe, runs)
                set_name = run.sets_name  # q4, or q1+4+8 for every rate
                folder = run_folder.study_folder(runs, row, set_name, seed)
                found.append((row, set_name, run.quality, seed,
                              replace(run, out=str(folder), experiment=f"study-{row}")))
    return found


def train(all_cells: list[tuple], e: Experiment, needed: bool) -> None:
    """Train every cell without a test result, the preset's lanes at a time: the rows others
    start from (`needed`), or the rest; each run's wall time goes beside its test result."""
    jobs = [job(config, f"{row} {set_name} seed {seed}")
            for row, set_name, _, seed, config in all_cells
            if (row in READ_BY_OTHERS) == needed
            and not run_folder.finished(config.out)]
    train_on_ray(jobs, e)


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
                                             torch_device(config.device), 2, label_space)
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
        if not run_folder.finished(folder):
            continue
        test = run_folder.read_result(folder)
        val_top1 = checkpoint.load(folder / checkpoint.CHECKPOINT)["history"][-1]["val_top1"]
        for q in config.rates or (quality,):
            name = SetId.of(q).name if config.rates else set_name
            hits, names = test_hits(config, q, catalogue, "rates" if config.rates else "test")
            top1, samples = ((float(hits["top1"].mean()), len(hits)) if config.rates else
                             (test["test_top1"], test["test_samples"]))
            found = {"row": row, "set": name, "quality": q, "seed": seed,
                     "bpp": bpp.get(name, math.nan), "top1": top1, "samples": samples,
                     "val_top1": val_top1,
                     "wall_s": run_folder.read_wall_time(folder)}
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
    """Each fitted start a Comp. run needs that is not there yet (trainer.latent_start: no label
    is read), as the pipeline fits its own: for the row's latent_hint_steps, its latent start
    (latent_init, else fresh branches on the pixel start) fitted to the pixel start's conv_2x
    on the training latents of its qualities pooled; for its transplant_steps, per quality
    those branches fitted further to the conv_2x of that quality's trained Anchor 2 (the run's
    seed's, or transplant_seed's) under its trunk. Each file goes under the row that made it
    (Row.hint_file, Row.transplant_file), shared by the rows built on it."""
    shards = storage.join(e.out, e.dataset)
    for row, _, quality, seed, config in all_cells:
        if not config.reader.latent:
            continue
        spec = ROWS[row]
        recipe = spec.recipe(e)
        # the adapter is fitted with the branches
        shape = {"shards": str(shards), "device": e.device, "precision": e.precision,
                 "latent_adapter": recipe.latent_adapter,
                 "latent_resize": recipe.latent_resize, "latent_crop": recipe.latent_crop}
        branches = latent_start_of(recipe)
        if recipe.latent_hint_steps:
            pooled = spec.hint_file(runs)
            if not pooled.is_file():
                latent_start.fit_file(LatentFit(rates=recipe.qualities, trunk=branches,
                                                steps=recipe.latent_hint_steps, out=pooled,
                                                **shape))
            branches = str(pooled)
        path = spec.transplant_file(runs, quality, seed)
        if recipe.transplant_steps and not path.is_file():
            teacher_seed = spec.teacher_seed(seed)
            teacher = trained(runs, REFERENCE, SetId.of(quality).name, teacher_seed)
            latent_start.fit_file(LatentFit(rates=(quality,), trunk=str(teacher),
                                            steps=recipe.transplant_steps, out=path,
                                            teacher=teacher, branches=branches,
                                            seed=teacher_seed, **shape))


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
    p = argparse.ArgumentParser(prog="python -m research.study", description=__doc__,
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
                   "what python -m research.selection chooses rows on")
    p.add_argument("--tables", type=Path, default=None, metavar="FOLDER",
                   help=f"write FOLDER's {TABLES} again from its {RESULTS} and {PER_CLASS} "
                   "(a committed study's; the experiment names its evaluation-only set)")
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    p.add_argument("--no-train", action="store_true",
                   help="only the table of the runs that have finished (while a study runs)")
    args = p.parse_args(argv)
    if args.list:
        width = max(map(len, ROWS))
        for name, row in ROWS.items():
            print(f"{name:{width}} {row.what}")
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
        table += ("\n\nOn the selection set (never trained on; what python -m research.selection "
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
