"""The study on tiny data, for real: prep with the demo codecs, torchrun trainers in two lanes, a
distilled run that waits for its teacher, one classifier for every rate scored on each quality,
and the table with validation beside test; one fold of a folds root as its own split."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from classifier.run_folder import TEST_RESULT
from evaluation.classifiers import read_classifier
from foundation import storage
from pipeline.experiment import load
from prep.datasets.folds import write_folds
from prep.datasets.synthetic import write_dataset
from research import study

DEMO = load("demo")

pytestmark = pytest.mark.slow
CODECS = Path(__file__).resolve().parents[1] / "codecs" / "demo"


def test_distillation_and_every_rate_run_and_are_scored(synthetic_small, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    e = replace(DEMO, data=str(synthetic_small), out=str(tmp_path / "shards"), qualities=(1, 8),
                codecs=str(CODECS), epochs=1, max_steps=2, batch_size=8, resize=40, crop=32,
                jpeg_qualities=(), loader_workers=1, shard_size=8, prep_workers=2)
    runs = tmp_path / "runs"
    for row in ("latent-hint-task", "transplant-anchor2"):  # each fit 3 steps
        spec = study.ROWS[row]
        fits = {k: 3 for k in ("latent_hint_steps", "transplant_steps") if spec.changes.get(k)}
        monkeypatch.setitem(study.ROWS, row, replace(spec, changes=spec.changes | fits))
    selection = write_dataset(tmp_path / "selection", classes=4, per_class=3, size=128, seed=5,
                              fractions=(0, 0, 1))
    results, classes, hits = study.run(e, ["distill-anchor2", "every-rate", "latent-hint-task",
                                           "transplant-anchor2"], 1, runs,
                                       selection=str(selection))
    assert sorted(zip(results["row"], results["set"], strict=True)) == [
        ("anchor2", "q1"), ("anchor2", "q8"), ("distill-anchor2", "q1"),
        ("distill-anchor2", "q8"), ("every-rate", "q1"), ("every-rate", "q8"),
        ("latent-hint-task", "q1"), ("latent-hint-task", "q8"), ("transplant-anchor2", "q1"),
        ("transplant-anchor2", "q8")]
    # the task's hint: fitted once, before its runs, over the experiment's latent start
    hint = torch.load(runs / "latent-hint-task.pth", weights_only=True)
    assert hint["trunk"] == DEMO.latent_init and set(hint["codecs"]) == {
        storage.sha256(CODECS / f"codec-q{q}.pth") for q in (1, 8)}
    assert read_classifier(runs / "latent-hint-task" / "q1" / "seed0" / "checkpoint.pth"
                           ).config.init == str(runs / "latent-hint-task.pth")
    # the transplant: per quality, latent-hint-task's branches fitted further to that
    # quality's trained Anchor 2, whose trunk and fc the start names
    task_branches = {k: v for k, v in hint["model"].items() if k.startswith("branches.")}
    for q in (1, 8):
        start = torch.load(runs / "transplant-anchor2" / f"q{q}.pth", weights_only=True)
        assert (runs / "transplant-anchor2" / start["trunk"]).resolve() == (
            runs / "anchor2" / f"q{q}" / "seed0" / "checkpoint.pth").resolve()
        assert set(start["model"]) == set(hint["model"]) and any(
            not torch.equal(start["model"][k], v) for k, v in task_branches.items())
    assert (results["samples"] == 4).all() and results["val_top1"].between(0, 1).all()
    student = read_classifier(runs / "distill-anchor2" / "q8" / "seed0" / "checkpoint.pth")
    teacher = str(runs / "anchor2" / "q8" / "seed0" / "checkpoint.pth")
    assert student.config.distill == student.config.init == teacher
    # one classifier, one run folder, scored on each of its rates' test splits
    assert os.listdir(runs / "every-rate") == ["q1+8"]
    table = study.summary(results)
    assert "| every-rate |" in table and "| distill-anchor2 |" in table
    # per class, the same test images and the same right answers as each run's Top-1
    per_run = classes[classes["split"] == "test"].groupby(["row", "set", "seed"])[
        ["right", "images"]].sum()
    joined = results.set_index(["row", "set", "seed"]).join(per_run)
    assert len(per_run) == len(results) and (joined["images"] == joined["samples"]).all()
    assert ((joined["right"] / joined["images"] - joined["top1"]).abs() < 1e-9).all()
    # every run also scored on the selection set, image by image: 12 images never trained on
    assert (results["selection_samples"] == 12).all()
    per_image = hits.groupby(["row", "set", "seed", "split"])["top1"].agg(["mean", "size"])
    for split, column in (("test", "top1"), ("selection", "selection_top1")):
        scored = per_image.xs(split, level="split")
        joined = results.set_index(["row", "set", "seed"]).join(scored)
        assert len(scored) == len(results) and (
            (joined["mean"] - joined[column]).abs() < 1e-9).all()
    by_class = study.class_summary(classes, "test")
    assert "| every-rate | q8 |" in by_class and by_class.count("\n") == len(per_run) + 1


def test_a_fold_is_a_split_of_its_own_scored_on_its_held_out_images(synthetic_small, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = write_folds(synthetic_small, tmp_path / "textures-folds", k=3, seed=0)
    e = replace(DEMO, data=str(data), out=str(tmp_path / "shards"), qualities=(1,),
                codecs=str(CODECS), epochs=1, max_steps=2, batch_size=8, resize=40, crop=32,
                jpeg_qualities=(), loader_workers=1, shard_size=8, prep_workers=2)
    e, runs = study.of_split(e, tmp_path / "runs", 2)
    results, _, hits = study.run(e, ["anchor2"], 1, runs)
    # fold 2's shards and run apart; its test split (the trainer's and the hits) its held-out
    # images, read from the source's images through the folds root's link
    assert runs == tmp_path / "runs" / "split2" / "textures-folds"
    assert (runs / "anchor2" / "q1" / "seed0" / TEST_RESULT).is_file()
    assert (tmp_path / "shards" / "split2" / "textures-folds" / "q1").is_dir()
    assert not (tmp_path / "shards" / "textures-folds").exists()
    held_out = {Path(s).stem for s in (data / "labels" / "test2.txt").read_text().split()}
    assert len(held_out) == 12 and set(hits["key"]) == held_out
    assert list(results["samples"]) == [12] and list(results["row"]) == ["anchor2"]
