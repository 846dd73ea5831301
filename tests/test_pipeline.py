"""A small demo end to end, for real: synthetic textures -> the committed demo codecs and JPEG ->
Ray prep -> 9 classifiers with torchrun -> evaluation (Anchor 1 included) -> report with
BD-accuracy -> MLflow."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from classifier.data import open_shard_set
from classifier.methods import ANCHOR1, ANCHOR2, ANCHOR2_EQUAL, ANCHOR3, COMP
from evaluation import figures, tracking
from evaluation.catalogue import Catalogue
from evaluation.classifiers import load_model, read_classifier
from evaluation.evaluate import check_counts
from evaluation.examples import gather_examples
from evaluation.predict import predict
from foundation import schema
from foundation.hyperprior import load_codec, read_weights_file
from foundation.sets import SetId

pytestmark = pytest.mark.slow
CODECS = Path(__file__).resolve().parents[1] / "codecs" / "demo"


def pipeline(root: Path, data: Path, *more: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline", "--experiment", "demo",
               "--data", str(data), "--out", str(root / "shards"), "--runs", str(root / "runs"),
               "--reports", str(root / "reports"), "--codecs", str(CODECS), "--qualities", "1", "8",
               "--epochs", "1", "--max-steps", "2", "--batch-size", "8",
               "--resize", "40", "--crop", "32", "--nproc", "2", "--loader-workers", "1",
               "--shard-size", "8", "--prep-workers", "2", "--min-seconds", "0.05",
               "--jpeg-qualities", "5", "60", "--latent-hint-steps", "3",
               "--transplant-steps", "3", *more]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    return subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo(synthetic_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    first = pipeline(root, synthetic_small)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = root / "reports" / synthetic_small.name
    return {"root": root, "data": synthetic_small, "report": report, "output": first.stdout,
            "results": pd.read_parquet(report / "results.parquet"),
            "shards": root / "shards" / synthetic_small.name}


def test_the_table_has_every_method_and_set_that_was_trained(demo):
    results = demo["results"]
    cells = set(zip(results["method"], results["set"], strict=True))
    assert cells == {(ANCHOR3, "original"), (ANCHOR1, "q1"), (ANCHOR1, "q8"), (ANCHOR2, "q1"),
                     (ANCHOR2, "q8"), (COMP, "q1"), (COMP, "q8"), (ANCHOR1, "jpeg5"),
                     (ANCHOR1, "jpeg60"), (ANCHOR2, "jpeg5"), (ANCHOR2, "jpeg60"),
                     (ANCHOR2_EQUAL, "q1"), (ANCHOR2_EQUAL, "q8")}
    table2 = (demo["report"] / "table2.md").read_text()
    for text in ("| Anchor 1 |", "| Anchor 2 |", "| Comp. |", "| | q1 | q8 |", "Anchor 3",
                 "| | jpeg5 | jpeg60 |", "| Anchor 1 (JPEG) |", "| Anchor 2 (JPEG) |"):
        assert text in table2
    # the JPEG sets' bpp is their files' bytes: it rises with the quality
    jpeg = results[results["codec"] == "jpeg"].groupby("set")["bpp"].first()
    assert 0 < jpeg["jpeg5"] < jpeg["jpeg60"]
    assert [name for name, _ in figures.curves(results)] == [
        "Anchor 1", "Anchor 1 (JPEG)", "Anchor 2", "Anchor 2 (JPEG)", "Anchor 2 (equal budget)",
        "Comp."]
    assert "done in" in demo["output"] and "make ui" in demo["output"]
    # the stage table: every prep job (JPEG with the first), every classifier, the report
    stages = re.findall(r"^\| ((?:prep|train|evaluate)[^|]*) \| ([\d.]+) \|", demo["output"], re.M)
    assert [s for s, _ in stages if s.startswith("prep")] == [
        "prep q1, jpeg5, jpeg60 (and the original set)", "prep q8 (and the original set)"]
    assert sum(s.startswith("train") for s, _ in stages) == 9
    # each classifier evaluated as soon as it is trained: the original model on every set
    # (Anchor 3, Anchor 1 on q1, q8, jpeg5, jpeg60), then the report from their predictions
    assert sum(s.startswith("evaluate ") for s, _ in stages) == 9 + 1
    assert re.search(r"^==> evaluate original: done in \d+ s\. 5 cell\(s\) evaluated$",
                     demo["output"], re.M)
    assert stages[-1][0] == "evaluate and report" and all(float(t) > 0 for _, t in stages)
    # the same table beside the report, with the machine and the arithmetic it ran in
    written = (demo["report"] / "stages.md").read_text()
    assert f"| {stages[0][0]} | {stages[0][1]} |" in written and " cores" in written
    assert re.search(r" in (fp32|bf16) \(`--precision auto`\)", written)
    # the latent start fitted on this run's training latents in a lane after prep, beside the
    # pixel trainers: every Comp. trains after it
    steps = re.findall(r"^\| ([^|]+) \| [\d.]+ \|", demo["output"], re.M)
    fit = steps.index("fit the latent branches on the training latents (3 steps)")
    assert fit >= 2 and all(i > fit for i, s in enumerate(steps) if s.startswith("train latent"))
    assert re.search(r"fit the latent branches .* done in \d+ s\. wrote .*hint error",
                     demo["output"])


def test_anchor1_is_the_original_model_on_decoded_images_not_retrained(demo):
    results = demo["results"]
    anchor3 = results[results["method"] == ANCHOR3].iloc[0]
    anchor1 = results[results["method"] == ANCHOR1]
    assert set(anchor1["checkpoint"]) == {anchor3["checkpoint"]}
    assert not any(p.name == "anchor1" for p in (demo["root"] / "runs").rglob("*"))
    # the cached Anchor 1 predictions are what the original model predicts on decoded q1 images
    classifier = read_classifier(Path(anchor3["checkpoint"]))
    decoded = open_shard_set(demo["shards"], "decoded", SetId.of(1))
    model = load_model(classifier, decoded.num_classes, None)
    fresh = predict(model, decoded, "test", classifier.config.input_sizes, workers=0)
    cached = pd.read_parquet(demo["report"] / "predictions" / "anchor-1-q1-test.parquet")
    order = np.argsort(fresh["key"])
    assert list(fresh["key"][order]) == sorted(cached["key"])
    cached = cached.sort_values("key")
    assert np.array_equal(fresh["top"][order], np.stack(cached["top"].to_numpy()))


def test_the_report_predicts_only_the_cells_no_trainer_has_tested(demo, tmp_path, monkeypatch):
    from evaluation import evaluate
    from evaluation.catalogue import Catalogue
    from evaluation.classifiers import find_classifiers

    predicted = []
    real = evaluate.predict
    monkeypatch.setattr(evaluate, "predict",
                        lambda *a, desc="", **kw: predicted.append(desc) or real(*a, **kw))
    runs = demo["root"] / "runs" / demo["data"].name
    tables = evaluate.evaluate_all(Catalogue(demo["shards"]), find_classifiers(runs), tmp_path)
    # Anchor 1 alone: the original model on each coded set; every trainer tested its own set
    assert sorted(predicted) == sorted(f"{ANCHOR1} {s}" for s in ("q1", "q8", "jpeg5", "jpeg60"))
    mine = tables["results"].sort_values(["method", "set"])["top1"].to_numpy()
    report = demo["results"].sort_values(["method", "set"])["top1"].to_numpy()
    assert np.array_equal(mine, report)


def test_every_test_sample_is_evaluated_once(demo):
    for row in demo["results"].itertuples():
        manifest = schema.read_manifest(demo["shards"] / row.set).to_pandas()
        assert row.samples == (manifest["split"] == "test").sum() > 0
    shard_set = open_shard_set(demo["shards"], "latent", SetId.of(8))
    keys = pd.read_parquet(demo["report"] / "predictions" / "comp-q8-test.parquet")["key"]
    check_counts({"key": keys.to_numpy()}, shard_set, "test")  # exactly the manifest's keys
    with pytest.raises(RuntimeError, match="evaluated .* distinct"):
        check_counts({"key": np.concatenate([keys, keys[:1]])}, shard_set, "test")
    with pytest.raises(RuntimeError, match="the manifest lists"):
        check_counts({"key": keys[1:].to_numpy()}, shard_set, "test")


def test_comp_is_charged_its_anchor2_and_has_an_anchor2_of_equal_budget(demo):
    cost = pd.read_csv(demo["report"] / "training_cost.csv").set_index(["method", "set"])
    for q in ("q1", "q8"):
        comp, anchor2, equal = (cost.loc[(m, q)] for m in (COMP, ANCHOR2, ANCHOR2_EQUAL))
        # the test trains 1 epoch of 2 steps of 8 images: the equal budget is both runs' steps
        assert (anchor2.epochs, anchor2.images, comp.images) == (1, 16, 16)
        assert (equal.epochs, equal.images) == (2, anchor2.images + comp.images)
        assert comp.path_gflops == pytest.approx(comp.gflops + anchor2.gflops)
        assert comp.path_wall_s == pytest.approx(comp.wall_s + anchor2.wall_s)
        assert anchor2.path_gflops == anchor2.gflops and equal.path_gflops == equal.gflops
        assert equal.gflops == pytest.approx(2 * anchor2.gflops) and comp.gflops > 0
    report = (demo["report"] / "README.md").read_text()
    assert "## What each path cost to train" in report
    assert "Comp. minus Anchor 2 (equal budget) in points" in report


def test_bd_accuracy_compares_every_pair_of_curves(demo):
    table = pd.read_csv(demo["report"] / "bd_accuracy.csv")
    pairs = set(zip(table["curve"], table["reference"], strict=True))
    assert {("Comp.", "Anchor 2"), ("Comp.", "Anchor 1"), ("Anchor 2", "Anchor 2 (JPEG)"),
            ("Anchor 1", "Anchor 1 (JPEG)"), ("Anchor 2 (JPEG)", "Anchor 1 (JPEG)")} <= pairs
    assert len(pairs) == 15  # 6 curves
    comp = table[(table["curve"] == "Comp.") & (table["reference"] == "Anchor 2")].iloc[0]
    assert comp.bd_top1_low <= comp.bd_top1 <= comp.bd_top1_high
    q1 = demo["results"][demo["results"]["set"] == "q1"]
    assert comp.images == q1["samples"].iloc[0] > 0  # every test image, resampled
    assert "## BD-accuracy" in (demo["report"] / "README.md").read_text()


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def _kept_open(monkeypatch, draw):
    """(the figure `draw` makes, the file it writes): the figure left open to look inside."""
    kept = []
    with monkeypatch.context() as patch:
        patch.setattr(figures.plt, "close", kept.append)
        path = draw()
    [figure] = kept
    return figure, path


def test_figures_draw_every_curve_and_example(demo, tmp_path, monkeypatch):
    report = demo["report"]
    dataset = (report / "README.md").read_text().splitlines()[0].removeprefix("# Report: ")
    cells = pd.read_parquet(report / "table2.parquet")  # what the report drew Figure 3 from
    expected = dict(list(cells[cells["quality"].notna()].groupby("curve")))
    assert len(expected) > 1
    [anchor3] = cells.index[cells["method"] == ANCHOR3]
    for metric in ("top1", "top5"):
        name = f"figure3_{metric}.png"
        figure, path = _kept_open(monkeypatch, lambda m=metric, n=name: figures.figure3(
            cells, tmp_path / n, m, dataset))
        try:
            assert np.array_equal(_png(path), _png(report / name)), name  # the report's figure
            assert len(figure.axes) == 3  # against bpp, PSNR, SSIM
            for ax, column in zip(figure.axes, ("bpp", "psnr", "ssim"), strict=True):
                # a curve is an errorbar: its data line, its caps and bars
                drawn = {c.get_label(): c.lines[0] for c in ax.containers}
                assert set(drawn) == set(expected), (name, column)
                for curve, rows in expected.items():
                    line = drawn[curve]
                    points = sorted(zip(line.get_xdata(), line.get_ydata(), strict=True))
                    assert np.array(points) == pytest.approx(np.array(sorted(zip(
                        rows[column], 100 * rows[metric], strict=True)))), (name, column, curve)
                    assert line.get_visible() and line.get_linestyle() != "None"
                    assert line.get_marker() not in (None, "", "None")
                    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
                    assert all(x0 < x < x1 and y0 < y < y1 for x, y in points), (column, curve)
                [reference] = [line for line in ax.lines
                               if line.get_label() == f"{ANCHOR3} (original)"]
                assert set(reference.get_ydata()) == {100 * cells.loc[anchor3, metric]}
            legend = [t.get_text() for t in figure.axes[-1].get_legend().get_texts()]
            assert sorted(legend) == sorted([*expected, f"{ANCHOR3} (original)"])
        finally:
            figures.plt.close(figure)
    # Figure 2: a row per class's first test image, its original, then per quality the decoded
    # image and the two latent maps
    catalogue = Catalogue(demo["shards"])
    qualities = catalogue.qualities()
    examples = gather_examples(catalogue, qualities)
    assert len(examples) == 4 and qualities == [1, 8]  # synthetic_small's 4 classes
    figure, path = _kept_open(monkeypatch, lambda: figures.figure2(
        examples, qualities, tmp_path / "figure2.png", dataset))
    try:
        assert np.array_equal(_png(path), _png(report / "figure2.png"))
        grid = np.array(figure.axes).reshape(len(examples), 1 + 3 * len(qualities))
        for row, example in zip(grid, examples, strict=True):
            assert all(len(ax.get_images()) == 1 for ax in row)
            shown = [np.asarray(ax.get_images()[0].get_array()) for ax in row]
            assert np.array_equal(shown[0], example["original"])
            assert example["class_name"] in row[0].get_title()
            for i, q in enumerate(qualities):
                coded = example["coded"][q]
                assert np.array_equal(shown[1 + 3 * i], coded["decoded"]), q
                assert f"q{q}" in row[1 + 3 * i].get_title()
                for latent in shown[2 + 3 * i: 4 + 3 * i]:  # y_hat, sigma_hat: a cell a pixel
                    assert latent.shape == coded["y_hat"].shape[1:], q
    finally:
        figures.plt.close(figure)
    assert len(list((report / "confusion").glob("*.png"))) == len(demo["results"])
    text = (report / "README.md").read_text()
    assert "![Figure 3, Top-1](figure3_top1.png)" in text and "figure2.png" in text


def _gflops(network, *shape: int, device: str = "cpu") -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(*shape, device=device))
    return counter.get_total_flops() / 1e9


def _network_gflops(config, classes: int, latent_channels: int | None, *shape: int) -> float:
    """A classifier's architecture counted on the meta device: shapes only, no weights."""
    with torch.device("meta"):
        network = config.network(classes, latent_channels).eval()
    return _gflops(network, *shape, device="meta")


def test_efficiency_the_compressed_domain_needs_fewer_flops(demo):
    cost = pd.read_csv(demo["report"] / "efficiency.csv")
    assert set(cost["quality"]) == {1, 8} and set(cost["batch"]) == {1, 32}
    results = demo["results"]
    for q in (1, 8):
        # each path's networks counted here, apart from the report: the codec's h_s (the
        # entropy decoding both share), then cResNet-39 on the latent crop, or g_s on the
        # padded image and ResNet-50 on the pixel crop
        trained = {m: read_classifier(Path(results.loc[(results["method"] == m)
                                                       & (results["set"] == f"q{q}"),
                                                       "checkpoint"].iloc[0])).config
                   for m in (COMP, ANCHOR2)}
        comp, anchor2 = trained[COMP], trained[ANCHOR2]
        assert comp.inputs == "both"  # y_hat and sigma_hat, M channels each
        shard_set = open_shard_set(demo["shards"], "latent", SetId.of(q))
        classes, m = shard_set.num_classes, shard_set.latent_channels
        manifest = schema.read_manifest(demo["shards"] / f"q{q}").to_pandas()
        assert set(zip(manifest["width"], manifest["height"], strict=True)) == {(128, 128)}
        side = math.ceil(128 / 64) * 64  # padded to the hyperprior's multiple of 64
        codec = load_codec(read_weights_file(CODECS / f"codec-q{q}.pth"), torch.device("cpu"))
        decode = _gflops(codec.h_s, 1, codec.N, side // 64, side // 64)
        latent = decode + _network_gflops(comp, classes, m, 1, 2 * m, comp.latent_crop,
                                          comp.latent_crop)
        pixel = decode + _gflops(codec.g_s, 1, m, side // 16, side // 16) + _network_gflops(
            anchor2, classes, None, 1, 3, anchor2.crop, anchor2.crop)
        # at this test's sizes the margin is narrow but exact (FLOPs are counted, not timed):
        # cResNet-39 with its res adapter on 14x14 cells, 0.57 GFLOPs, against g_s on 128 px,
        # 0.37, and ResNet-50 on 32 px, 0.22; at the demo's sizes 0.62 against 2.39 a path
        assert latent < pixel
        for batch, rows in cost[cost["quality"] == q].groupby("batch"):
            by_path = rows.set_index("path")
            c, p = by_path.loc["compressed domain"], by_path.loc["pixel domain"]
            d, speedup = by_path.loc["of which entropy decoding"], by_path.loc[
                "speed-up (pixel / compressed)"]
            assert set(rows["classifier_input"]) == {
                f"latent {comp.latent_crop}x{comp.latent_crop}, "
                f"pixels {anchor2.crop}x{anchor2.crop}"}
            # FLOPs: the tensor work of the networks; the resizes and the range coder's integer
            # work are not counted, and they would be under 0.1% of either path here
            assert d.gflops_per_image == pytest.approx(decode, rel=0.01), batch
            assert c.gflops_per_image == pytest.approx(latent, rel=0.01), batch
            assert p.gflops_per_image == pytest.approx(pixel, rel=0.01), batch
            assert d.gflops_per_image < c.gflops_per_image < p.gflops_per_image, batch
            assert speedup.gflops_per_image == pytest.approx(pixel / latent, rel=0.02)
            assert speedup.gflops_per_image > 1
            # times: ms per image and images/s are one measurement each; the speed-up of
            # each against the other column's ratio
            for row in (c, p, d):
                assert row.ms_per_image > 0 and row.ms_per_image * row.images_per_s == (
                    pytest.approx(1000, rel=1e-9)), (batch, row.name)
            assert speedup.ms_per_image == pytest.approx(c.images_per_s / p.images_per_s)
            assert speedup.images_per_s == pytest.approx(p.ms_per_image / c.ms_per_image)
    assert "speed-up" in (demo["report"] / "README.md").read_text()


def test_the_mlflow_parent_run_holds_the_report(demo):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{demo['root'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("classifiers")
    [parent] = client.search_runs([experiment.experiment_id], "tags.`cdmr.report` = "
                                  f"'{demo['data'].name}'")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"README.md", "table2.md", "figure3_top1.png", "figure2.png", "results.csv",
            "efficiency.csv", "experiment.toml"} <= artifacts
    # the effective experiment: demo.toml with the test's flags over it
    tags = parent.data.tags
    assert (tags["experiment.init"], tags["experiment.epochs"], tags["experiment.qualities"],
            tags["experiment.data"]) == ("procedural", "1", "[1, 8]", str(demo["data"]))
    assert "## The experiment (experiment.toml)" in (demo["report"] / "README.md").read_text()
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == len(demo["results"]) == 13
    by_cell = {(r.data.tags["method"], r.data.tags["quality"]): r for r in children}
    for row in demo["results"].itertuples():
        child = by_cell[(row.method, row.set)]  # the set names codec and quality: q1, jpeg5
        assert child.data.metrics["top1"] == pytest.approx(row.top1)
        assert child.data.metrics["bpp"] == pytest.approx(row.bpp)
    training = client.search_runs([experiment.experiment_id], "tags.domain = 'latent'")
    assert training and all(r.data.tags["report_run_id"] == parent.info.run_id for r in training)
    # offline, every pixel classifier fine-tunes from the procedural stand-in for ImageNet, and
    # Comp. from the latent branches fitted to it on the demo codecs' latents (demo.toml)
    every_run = client.search_runs([experiment.experiment_id], "tags.domain != ''")
    assert len(every_run) == 9
    runs = demo["root"] / "runs" / demo["data"].name
    hint, transplant = runs / "latent-hint-task-3.pth", runs / "transplant"
    assert {(r.data.tags["domain"] == "latent", r.data.params["init"]) for r in every_run} == {
        (False, "procedural"), (True, str(transplant / "q1.pth")),
        (True, str(transplant / "q8.pth"))}
    assert torch.load(hint, weights_only=True)["trunk"] == "latent-hint-demo"
    # each Comp. from its Anchor 2 carried to the latent: that run's weights under the branches
    for q in (1, 8):
        start = torch.load(transplant / f"q{q}.pth", weights_only=True)
        assert (transplant / start["trunk"]).resolve() == (
            runs / "decoded" / f"q{q}" / "checkpoint.pth").resolve()  # named from its folder
        parts = {k.split(".")[0] for k in start["model"]}
        assert parts == {"branches", "adapter"}  # the demo's residual adapter, fitted too
    assert "transplant/<set>.pth` (Comp.)" in (demo["report"] / "README.md").read_text()
    bd = pd.read_csv(demo["report"] / "bd_accuracy.csv")
    metrics = client.get_run(parent.info.run_id).data.metrics
    for row in bd.dropna(subset=["bd_top1"]).itertuples():
        name = tracking.metric_name("bd_top1", row.curve, row.reference)
        assert metrics[name] == pytest.approx(row.bd_top1)
    assert "bd_top1/comp/anchor-2" in metrics


def test_a_second_run_skips_every_finished_step(demo):
    again = pipeline(demo["root"], demo["data"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": done (") == 10  # every classifier and the latent start's fit
    assert "torch.distributed.run" not in again.stdout
    assert again.stdout.count("already done") >= 2
    results = pd.read_parquet(demo["report"] / "results.parquet")
    pd.testing.assert_series_equal(results["top1"], demo["results"]["top1"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{demo['root'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("classifiers")
    assert len(client.search_runs([experiment.experiment_id], "tags.`cdmr.report` = "
                                  f"'{demo['data'].name}'")) == 1  # updated, not duplicated


def test_a_missing_codec_fails_with_its_name(synthetic_small, tmp_path):
    result = pipeline(tmp_path, synthetic_small, "--codecs", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "nowhere/codec-q1.pth" in result.stdout + result.stderr


ONE_RAY = """import sys
from pathlib import Path

import ray

from pipeline.run import prep
from prep.job.config import PrepConfig
from foundation.sets import SetId

started = ray.init
ray.init = lambda *a, **k: (print("ray.init"), started(*a, **k))[1]
data, out = Path(sys.argv[1]), Path(sys.argv[2])
prep([PrepConfig(data=data, out=out, quality=None, classical=(SetId("jpeg", 5),)),
      PrepConfig(data=data, out=out, quality=None, classical=(SetId("jpeg", 60),),
                 original=False)])
"""


def test_the_prep_jobs_of_a_run_share_one_ray(synthetic_small, tmp_path):
    done = subprocess.run([sys.executable, "-c", ONE_RAY, str(synthetic_small), str(tmp_path)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("ray.init") == 1
    # each a Ray task, the second after the first
    assert re.findall(r"^==> (prep [^:\n]*): done in", done.stdout, re.M) == [
        "prep jpeg5 (and the original set)", "prep jpeg60"]
    assert "==> prep jpeg60 (after prep jpeg5 (and the original set))" in done.stdout
    for name in ("original", "jpeg5", "jpeg60"):
        assert schema.read_manifest(tmp_path / synthetic_small.name / name).num_rows == 40

def test_the_mlflow_ui_shows_the_runs_and_their_top1(demo):
    """The MLflow UI on loopback, rendered by headless Chromium: the report's parent run page
    lists every cell's run and its Top-1; a screenshot goes to docs/ (not committed)."""
    from mlflow.tracking import MlflowClient

    from evaluation import browser

    if browser.chromium() is None:
        pytest.skip("chromium is not installed (`make browser` installs Debian's package)")
    store = demo["root"] / "mlflow.db"
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("classifiers")
    [parent] = client.search_runs([experiment.experiment_id], "tags.`cdmr.report` = "
                                  f"'{demo['data'].name}'")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    with browser.mlflow_ui(store) as base:
        # the first view of the experiment is its runs table, not MLflow's GenAI overview
        first = browser.page_text(browser.experiment_url(base, experiment.experiment_id))
        url = browser.run_url(base, experiment.experiment_id, parent.info.run_id)
        text = browser.page_text(url)
        shot = browser.screenshot(url, Path(__file__).resolve().parents[1] / "docs" /
                                  "mlflow-ui-test.png")
    assert f"{demo['data'].name}/report" in text
    assert f"{demo['data'].name}/report" in first and f"{demo['data'].name}/latent/q1" in first
    cells = [f"{demo['data'].name}/{row.method}/{row.set}" for row in demo["results"].itertuples()]
    listed = [cell for cell in cells if cell in text]  # the cells' child runs: the page lists 10
    assert len(listed) == min(10, len(cells)) and ("Load more" in text) == (len(cells) > 10)
    for row in demo["results"].itertuples():
        name = tracking.metric_name("top1", row.method, row.set)  # e.g. top1/anchor-1/q1
        shown = re.search(rf"{re.escape(name)} ([\d.]+)", text)
        assert shown and float(shown.group(1)) == pytest.approx(row.top1, abs=1e-3), row.set
    with Image.open(shot) as image:
        assert image.size == (1920, 1200)
        assert np.asarray(image.convert("L"), dtype=np.float32).std() > 10
