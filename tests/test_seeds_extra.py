"""Seeds, ablations and an evaluation-only set through the pipeline on tiny data: every
classifier trained with 2 seeds, the report's mean and spread, MLflow's run per seed, the
ablations' metrics in MLflow, and Table 2 on an extra test-only set of 3 of the 4 classes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from foundation import storage
from pipeline.experiment import Experiment
from pipeline.plan import train_configs
from prep.datasets.synthetic import texture

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EXTRA_CLASSES, EXTRA_PER_CLASS = 3, 3


def test_seed_zero_keeps_its_folder_and_other_seeds_train_beside_it(tmp_path):
    e = Experiment(data="data/minc-2500", qualities=(1,), jpeg_qualities=(), seeds=2)
    folders = [(c.seed, Path(c.out).relative_to(tmp_path)) for c in
               train_configs(e, storage.location(tmp_path / "s"), tmp_path, "x")]
    assert folders[:2] == [(0, Path("minc-2500/original")), (1, Path("minc-2500/original-seed1"))]
    assert (1, Path("minc-2500/latent/q1-seed1")) in folders and len(folders) == 6


def extra_set(root: Path, names: list[str]) -> Path:
    """A test-only set in MINC-2500's layout (as minc-2500-test-extra): 3 of the 4 classes,
    listed in another order than the training set's, empty train and validate lists."""
    chosen = list(reversed(names[:EXTRA_CLASSES]))
    sources = []
    for name in chosen:
        (root / "images" / name).mkdir(parents=True)
        for i in range(EXTRA_PER_CLASS):
            source = f"images/{name}/{name}_{i:06d}.jpg"
            texture(name, 7, names.index(name), i, 128, 0.2).save(root / source, quality=90)
            sources.append(source)
    (root / "labels").mkdir()
    (root / "labels" / "test1.txt").write_text("\n".join(sources) + "\n")
    for split in ("train", "validate"):
        (root / "labels" / f"{split}1.txt").write_text("")
    (root / "categories.txt").write_text("\n".join(chosen) + "\n")
    return root


@pytest.fixture(scope="module")
def seeded(synthetic_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("seeded")
    names = (synthetic_small / "categories.txt").read_text().split()
    extra = extra_set(root / "test-extra", names)
    command = [sys.executable, "-m", "pipeline", "--experiment", "demo",
               "--data", str(synthetic_small), "--out", str(root / "shards"),
               "--runs", str(root / "runs"), "--reports", str(root / "reports"),
               "--codecs", str(ROOT / "codecs" / "demo"), "--qualities", "1", "--jpeg-qualities",
               "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--resize", "40",
               "--crop", "32", "--nproc", "1", "--loader-workers", "1", "--shard-size", "8",
               "--prep-workers", "2", "--min-seconds", "0.02", "--seeds", "2", "--ablations",
               "--extra-test", str(extra), "--latent-hint-steps", "3",
               "--transplant-steps", "3"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)  # 12 trainings: minutes, more on a loaded machine
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"root": root, "report": root / "reports" / synthetic_small.name,
            "dataset": synthetic_small.name}


def test_the_table_shows_the_mean_and_spread_of_two_seeds(seeded):
    results = pd.read_csv(seeded["report"] / "results.csv")
    cells = pd.read_csv(seeded["report"] / "table2.csv")
    assert set(results["seed"]) == {0, 1} and len(results) == 2 * len(cells)
    assert (cells["seeds"] == 2).all()
    comp = cells[(cells["method"] == "Comp.") & (cells["set"] == "q1")].iloc[0]
    runs = results[(results["method"] == "Comp.") & (results["set"] == "q1")]["top1"]
    assert comp.top1 == pytest.approx(runs.mean())
    assert (comp.top1_min, comp.top1_max) == pytest.approx((runs.min(), runs.max()))
    table = (seeded["report"] / "table2.md").read_text()
    assert f"seeds {100 * runs.min():.1f}-{100 * runs.max():.1f}" in table
    assert "mean over its seeds" in table
    for method in ("Comp. (y)", "Comp. (sigma)"):
        assert f"| {method} |" in table


def test_mlflow_has_a_run_per_seed_and_the_ablations_metrics(seeded):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{seeded['root'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("classifiers").experiment_id
    training = client.search_runs([experiment], "tags.domain != ''")
    # Anchor 3, Anchor 2, Anchor 2 (equal budget), Comp., Comp. (y), Comp. (sigma) at q1,
    # each with seeds 0 and 1
    assert len(training) == 12
    by_cell = {}
    for run in training:
        by_cell.setdefault(run.data.tags["cdmr.cell"], set()).add(
            (run.data.params["seed"], run.data.tags["seed"]))
    assert by_cell == {cell: {("0", "0"), ("1", "1")} for cell in (
        "Anchor 3/original", "Anchor 2/q1", "Anchor 2 (equal budget)/q1", "Comp./q1",
        "Comp. (y)/q1", "Comp. (sigma)/q1")}
    [parent] = client.search_runs([experiment], "tags.`cdmr.report` = "
                                  f"'{seeded['dataset']}'")
    [cell] = client.search_runs([experiment], "tags.`cdmr.cell` = 'Comp. (y)/q1' and "
                                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    per_seed = client.search_runs([experiment],
                                  f"tags.`mlflow.parentRunId` = '{cell.info.run_id}'")
    assert sorted(r.data.tags["seed"] for r in per_seed) == ["0", "1"]
    metrics = parent.data.metrics
    assert metrics["top1/comp-y/q1"] == pytest.approx(cell.data.metrics["top1"])
    assert {"top1/comp-sigma/q1", "extra-test/top1/comp-y/q1"} <= set(metrics)


def test_the_extra_set_gets_its_own_table_with_its_sample_count(seeded):
    text = (seeded["report"] / "README.md").read_text()
    images = EXTRA_CLASSES * EXTRA_PER_CLASS
    assert f"evaluation-only set `test-extra` (never trained on) ({images} images)" in text
    assert text.index("## Table 2: ") < text.index("evaluation-only set `test-extra`")
    extra = pd.read_csv(seeded["report"] / "extra-test" / "results.csv")
    assert (extra["samples"] == images).all() and set(extra["seed"]) == {0, 1}
    assert "for 3 classes (the classes present" in text  # of the 4-class label space
    per_class = pd.read_csv(seeded["report"] / "extra-test" / "per_class.csv")
    counted = per_class[(per_class["method"] == "Anchor 3") & (per_class["seed"] == 0)]
    # the training set's label order: its first 3 classes hold the extra images, the 4th none
    assert counted["samples"].tolist() == [EXTRA_PER_CLASS] * EXTRA_CLASSES + [0]
