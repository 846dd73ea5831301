"""Every trained classifier on every prepared set it applies to: one tidy table of results.

    python -m evaluation.evaluate --shards data/shards/minc-2500 --runs runs/train/minc-2500

Predictions are cached per (method, set) with the checkpoint's sha256, so running it again after
training one more classifier evaluates only that one. The sets are the learned codec's (q<Q>)
and any classical codec's (jpeg<P>, webp<P>): Anchor 1 and Anchor 2 apply to both.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from classifier import run_folder
from classifier.data import ShardSet
from classifier.domains import DECODED
from classifier.methods import ANCHOR1
from evaluation import metrics
from evaluation.catalogue import Catalogue
from evaluation.classifiers import Classifier, curve_name, find_classifiers, load_model
from evaluation.predict import predict
from foundation import predictions, schema, storage
from foundation.cli import stage_main
from foundation.command_line import command_parser
from foundation.runtime import DEVICES, memory_format, resolve_device
from foundation.sets import SetId

log = logging.getLogger(__name__)

RESULTS, PER_CLASS, CONFUSION = "results", "per_class", "confusion"
PREDICTIONS = "predictions"
HITS = "hits"  # per test image, cell and seed: Top-1 right or not (the report keeps it)
LOADER_WORKERS = 2  # an evaluation's loader processes


@dataclass(frozen=True)
class Target:
    """One cell of the matrix: a method at a quality, read by one classifier."""

    method: str
    set_id: SetId
    domain: str  # how the classifier reads the set: original, decoded or latent
    classifier: Classifier

    @property
    def curve(self) -> str:
        return curve_name(self.method, self.set_id.codec if self.set_id.coded else None)

    @property
    def slug(self) -> str:
        return slug(self.method, self.set_id.name)

    @property
    def seed(self) -> int:
        """The training seed of the classifier that reads the cell (Anchor 1: Anchor 3's)."""
        return self.classifier.config.seed


def slug(method: str, set_name: str) -> str:
    """A file name for a table cell: `Comp. (y)`, `q4` -> `comp-y-q4`."""
    return re.sub(r"[^a-z0-9]+", "-", f"{method}-{set_name}".lower()).strip("-")


def targets(classifiers: list[Classifier], sets: list[SetId]) -> list[Target]:
    """Anchor 1 reuses the original-trained model on each prepared coded set (not retrained);
    one classifier for every rate reads each of its qualities' sets."""
    cells = []
    for c in classifiers:
        cells += [Target(c.trained_method, c.config.reader.set_for(q, c.config.codec),
                         c.config.domain, c) for q in c.config.rates or (c.config.quality,)]
        if not c.config.reader.coded:
            cells += [Target(ANCHOR1, s, DECODED.name, c) for s in sets]
    return cells


def set_quality(manifest: pd.DataFrame, split: str) -> dict[str, float]:
    """Mean bpp, PSNR, MS-SSIM and SSIM of a split, from the manifest (the original set: the
    originals' own bits per pixel)."""
    rows = manifest[manifest["split"] == split]
    if "bpp" not in rows:
        bpp = rows["original_bytes"] * 8 / (rows["width"] * rows["height"])
        return {"bpp": float(bpp.mean()), "psnr": math.nan, "ms_ssim": math.nan, "ssim": math.nan}
    return {k: float(rows[k].mean()) for k in ("bpp", "psnr", "ms_ssim", "ssim")}


def check_counts(predictions: dict, shard_set: ShardSet, split: str,
                 manifest: pd.DataFrame | None = None) -> None:
    """Every sample of the split evaluated exactly once, or an error naming what differs;
    `manifest`: the set's, if it was read already."""
    table = schema.read_manifest(shard_set.directory).to_pandas() if manifest is None else manifest
    expected = set(table.loc[table["split"] == split, "key"])
    keys = list(predictions["key"])
    if len(keys) != len(set(keys)) or set(keys) != expected:
        raise RuntimeError(
            f"{shard_set.directory} {split}: evaluated {len(keys)} samples ({len(set(keys))} "
            f"distinct), the manifest lists {len(expected)}; the shards and the manifest "
            f"disagree: prepare the set again")


def label_map(set_names: list[str], label_space: list[str], where) -> np.ndarray:
    """A set's label -> the classifiers' label for the same class name (an evaluation-only set
    may list other classes, or in another order); an error naming a class they never knew."""
    unknown = [name for name in set_names if name not in label_space]
    if unknown:
        raise ValueError(f"{where} has classes the classifiers were not trained on "
                         f"({', '.join(unknown)}); evaluate it only with classifiers of a label "
                         f"space that holds them ({', '.join(label_space)})")
    return np.array([label_space.index(name) for name in set_names], dtype=np.int64)


def evaluate_target(target: Target, catalogue: Catalogue, split: str, out: Path,
                    device: torch.device, workers: int, label_space: list[str] | None = None
                    ) -> tuple[dict, ShardSet]:
    """The cell's predictions (cached), labels in the classifier's label space (label_space:
    its class names, default the set's own)."""
    shard_set = catalogue.shard_set(target.domain, target.set_id, splits=(split,))
    names = list(shard_set.info["categories"])
    label_space = label_space or names
    sha256, shards = target.classifier.sha256, shard_set.fingerprint(split)
    seed = run_folder.seed_suffix(target.seed)  # a seed's predictions apart from seed 0's
    cache = out / PREDICTIONS / f"{target.slug}{seed}-{split}.parquet"
    found = predictions.read(cache, sha256, shards)
    if found is None and target.domain == target.classifier.config.domain:
        # the trainer's own test pass of this checkpoint on these shards
        found = predictions.read(target.classifier.path.parent / predictions.RUN_FILE, sha256,
                                 shards)
        if found is not None:
            predictions.write(cache, found, sha256, shards)
    if found is None:
        classifier = target.classifier
        model = load_model(classifier, len(label_space), shard_set.latent_channels)
        model = model.to(device, memory_format=memory_format(device))
        found = predict(model, shard_set, split, classifier.config.input_sizes, workers=workers,
                        desc=f"{target.method} {target.set_id}",
                        arithmetic=classifier.precision_on(device))
        predictions.write(cache, found, sha256, shards)
    check_counts(found, shard_set, split, catalogue.manifest(shard_set))
    if names != label_space:
        labels = label_map(names, label_space, shard_set.directory)[found["label"]]
        found = found | {"label": labels}
    return found, shard_set


def evaluate_all(catalogue: Catalogue, classifiers: list[Classifier], out: str | Path,
                 split: str = "test", device: str = "cpu", workers: int = LOADER_WORKERS,
                 categories: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The results (a row per cell and seed), per-class and confusion tables, also written to
    <out> as Parquet and CSV. categories: the classifiers' class names where the catalogue is
    another dataset (an evaluation-only set): its labels are mapped to them by name, Top-1 is
    over the classifiers' whole output."""
    out = Path(out)
    results, per_class, confusion, hits = [], [], [], []
    for target in targets(classifiers, catalogue.prepared_sets()):
        c = target.classifier
        if not c.finished:
            log.warning("%s: %d of %d epochs done; evaluating it as it is", c.path, c.epoch,
                        c.config.epochs)
        predictions, shard_set = evaluate_target(target, catalogue, split, out,
                                                 torch.device(device), workers, categories)
        cell = {"dataset": catalogue.dataset, "split": split, "method": target.method,
                "quality": target.set_id.quality, "set": target.set_id.name,
                "codec": target.set_id.codec if target.set_id.coded else None,
                "curve": target.curve, "seed": target.seed}
        results.append(cell | metrics.accuracy(predictions["label"], predictions["top"])
                       | set_quality(catalogue.manifest(shard_set), split)
                       | {"checkpoint": str(c.path), "epochs_done": c.epoch,
                          "epochs": c.config.epochs, "mlflow_run_id": c.mlflow_run_id,
                          "trained_on": c.config.run_name})
        hits.append(pd.DataFrame({"curve": target.curve, "set": target.set_id.name,
                                  "seed": target.seed, "key": predictions["key"],
                                  "top1": predictions["top"][:, 0] == predictions["label"]}))
        names = categories or shard_set.info["categories"]
        counts = metrics.confusion(predictions["label"], predictions["top"][:, 0], len(names))
        recall = metrics.per_class_accuracy(counts)
        per_class += [cell | {"label": label, "class_name": name, "accuracy": recall[label],
                              "samples": int(counts[label].sum())}
                      for label, name in enumerate(names)]
        confusion += [cell | {"true": t, "predicted": p, "count": int(counts[t, p])}
                      for t in range(len(names)) for p in range(len(names))]
    tables = {RESULTS: pd.DataFrame(results), PER_CLASS: pd.DataFrame(per_class),
              CONFUSION: pd.DataFrame(confusion)}
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame["quality"] = frame["quality"].astype("Int64")
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
    (out / "categories.json").write_text(json.dumps(names))
    return tables | {HITS: pd.concat(hits, ignore_index=True)}


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "python -m evaluation.evaluate",
        "Evaluate every trained classifier (runs folder) on every prepared set it applies to "
        "(Anchor 3, Anchor 1, Anchor 2, Comp.): Top-1/Top-5 with 95% Wilson intervals, "
        "per-class accuracy, confusion matrices, and each set's bpp/PSNR/MS-SSIM/SSIM.")
    common_arguments(p)
    p.add_argument("--split", default="test", choices=schema.SPLITS)
    p.add_argument("--workers", type=int, default=2, help="loader workers")
    return p


def common_arguments(p: argparse.ArgumentParser) -> None:
    """Where the shards, the trained runs and the results are, and the device."""
    p.add_argument("--shards", required=True, help="<out>/<dataset> written by `make prep`")
    p.add_argument("--runs", default=None, help="trained runs (default runs/train/<dataset>)")
    p.add_argument("--out", default=None, help="results folder (default reports/<dataset>)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto: CUDA where there is a GPU, else the CPU")


@stage_main
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    dataset = storage.name(args.shards)
    out = Path(args.out or f"reports/{dataset}")
    classifiers = find_classifiers(args.runs or f"runs/train/{dataset}")
    tables = evaluate_all(Catalogue(args.shards), classifiers, out, args.split,
                          resolve_device(args.device), args.workers)
    columns = ["curve", "set", "top1", "top1_low", "top1_high", "top5", "samples", "bpp"]
    print(tables[RESULTS][columns].to_string(index=False, float_format="%.3f"))
    print(f"results: {out / (RESULTS + '.parquet')} (and .csv, per_class, confusion)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
