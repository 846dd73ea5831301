"""The study runner's plan (rows, seeds, run folders, dependencies) and its summary table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pipeline.experiment import load
from research import study

DEMO = load("demo")


def test_every_row_runs_each_quality_and_seed_in_its_own_folder(tmp_path):
    runs = tmp_path / "runs"
    cells = study.cells(replace(DEMO, qualities=(1, 8)), ["log-sigma", "trunk-anchor2",
                                                          "anchor2"], 2, runs)
    # the rows others start from come first: trunk-anchor2 reads anchor2's checkpoints
    assert [c[0] for c in cells] == ["anchor2"] * 4 + ["log-sigma"] * 4 + ["trunk-anchor2"] * 4
    folders = {Path(c[4].out) for c in cells}
    assert len(folders) == 12 and runs / "log-sigma" / "q8" / "seed1" in folders
    row, set_name, quality, seed, config = cells[-1]
    assert (row, set_name, quality, seed) == ("trunk-anchor2", "q8", 8, 1)
    assert config.init == str(runs / "anchor2" / "q8" / "seed0" / "checkpoint.pth")
    assert config.domain == "latent" and config.seed == 1 and config.epochs == DEMO.epochs
    log_sigma = next(c[4] for c in cells if c[0] == "log-sigma")
    assert log_sigma.latent_sigma == "log" and "--latent-sigma" in log_sigma.to_argv()
    assert next(c[4] for c in cells if c[0] == "anchor2").domain == "decoded"


def test_every_latent_row_starts_from_the_pixel_start_but_the_latent_hint_rows(tmp_path):
    assert DEMO.latent_init == "latent-hint-demo" and DEMO.init == "procedural"
    rows = ["baseline", "latent-hint", "latent-hint-epochs-10", "latent-hint-task"]
    inits = {c[0]: c[4].init for c in study.cells(DEMO, rows, 1, tmp_path)}
    assert inits == {"baseline": "procedural", "latent-hint": "latent-hint-demo",
                     "latent-hint-epochs-10": "latent-hint-demo",
                     "latent-hint-task": str(tmp_path / "latent-hint-task.pth")}
    with pytest.raises(ValueError, match="rows latent-hint: the experiment has no latent_init"):
        study.cells(replace(DEMO, latent_init=""), ["baseline", "latent-hint", "latent-hint-task"],
                    1, tmp_path)
    # a fitted row without latent_init fits fresh branches on the pixel start, as the pipeline
    fresh = study.cells(replace(DEMO, latent_init=""), ["latent-hint-task"], 1, tmp_path)
    assert fresh[0][4].init == str(tmp_path / "latent-hint-task.pth")


def test_the_summary_gives_the_seed_spread_and_bd_against_anchor2():
    rows = []
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        for set_name, bpp, reference in (("q1", 0.2, 0.70), ("q8", 1.0, 0.80)):
            rows.append({"row": "anchor2", "set": set_name, "seed": seed, "bpp": bpp,
                         "top1": reference + shift, "wall_s": 60.0})
            rows.append({"row": "baseline", "set": set_name, "seed": seed, "bpp": bpp,
                         "top1": reference - 0.10 + shift, "wall_s": 40.0})
    table = study.summary(pd.DataFrame(rows))
    baseline = next(line for line in table.splitlines() if line.startswith("| baseline"))
    cells = [c.strip() for c in baseline.split("|")[1:-1]]
    assert cells[1] == "62.0 (seeds 60.0-64.0)" and cells[2] == "72.0 (seeds 70.0-74.0)"
    bd, seeds_range = cells[3].split(" (seeds ")
    assert float(bd) == pytest.approx(-10.0, abs=0.05)
    low, high = (float(v) for v in seeds_range.rstrip(")").split(" to "))
    assert (low, high) == pytest.approx((-12.0, -8.0), abs=0.05)
    assert "[" not in table  # brackets are a 95% interval, never a range over seeds
    assert cells[4] == "3" and cells[5] == "40"


def test_a_distilled_run_learns_from_the_anchor2_of_its_own_seed(tmp_path):
    runs = tmp_path / "runs"
    cells = study.cells(replace(DEMO, qualities=(4,)), ["distill-anchor2", "anchor2"], 2, runs)
    assert [c[0] for c in cells] == ["anchor2"] * 2 + ["distill-anchor2"] * 2
    for _, _, _, seed, config in cells[2:]:
        teacher = str(runs / "anchor2" / "q4" / f"seed{seed}" / "checkpoint.pth")
        assert config.distill == config.init == teacher
        assert ["--distill", teacher] == config.to_argv()[config.to_argv().index("--distill"):][:2]


def test_a_transplant_starts_from_its_fit_per_quality_after_anchor2(tmp_path):
    cells = study.cells(replace(DEMO, qualities=(1, 8)), ["transplant-anchor2", "anchor2"], 1,
                        tmp_path)
    assert [(c[0], c[2]) for c in cells] == [("anchor2", 1), ("anchor2", 8),
                                             ("transplant-anchor2", 1), ("transplant-anchor2", 8)]
    assert cells[-1][4].init == str(tmp_path / "transplant-anchor2" / "q8.pth")


def test_a_transplant_of_the_runs_own_seed_fits_once_per_quality_and_seed(tmp_path,
                                                                         monkeypatch):
    e = replace(DEMO, qualities=(1, 8))
    cells = study.cells(e, ["transplant-anchor2-seed"], 2, tmp_path)
    fits = []

    def fit_file(fit):
        fits.append((fit.rates, Path(fit.trunk).parent.name, fit.out.name, fit.seed, fit.steps,
                     fit.branches))
        fit.out.parent.mkdir(parents=True, exist_ok=True)
        fit.out.write_bytes(b"")

    monkeypatch.setattr(study.latent_start, "fit_file", fit_file)
    study.fit_task_hints(e, cells, tmp_path)
    hint = str(tmp_path / "latent-hint-task.pth")
    assert fits[0][2] == "latent-hint-task.pth" and fits[0][4] == 1000  # the pooled fit first
    assert sorted(fits[1:]) == [((q,), f"seed{k}", f"q{q}-seed{k}.pth", k, 300, hint)
                                for q in (1, 8) for k in (0, 1)]
    latent = [c[4] for c in cells if c[0] == "transplant-anchor2-seed"]
    assert {c.init for c in latent} == {
        str(tmp_path / "transplant-anchor2-seed" / f"q{q}-seed{k}.pth") for q in (1, 8)
        for k in (0, 1)}
    study.fit_task_hints(e, cells, tmp_path)  # every start there: nothing fitted again
    assert len(fits) == 5


def test_a_row_on_the_upsampled_latent_fits_and_trains_at_its_sizes(tmp_path, monkeypatch):
    e = replace(DEMO, qualities=(4,))
    cells = study.cells(e, ["transplant-res-up"], 1, tmp_path)
    shapes = []

    def fit_file(fit):
        shapes.append((fit.out.name, fit.latent_adapter, fit.latent_resize, fit.latent_crop))
        fit.out.parent.mkdir(parents=True, exist_ok=True)
        fit.out.write_bytes(b"")

    monkeypatch.setattr(study.latent_start, "fit_file", fit_file)
    study.fit_task_hints(e, cells, tmp_path)
    assert shapes == [("latent-hint-task-res-up.pth", "res", 32, 28),  # pooled, then transplant
                      ("q4-seed0.pth", "res", 32, 28)]
    [comp] = [c[4] for c in cells if c[0] == "transplant-res-up"]
    assert (comp.latent_resize, comp.latent_crop, comp.latent_adapter) == (32, 28, "res")


@pytest.mark.parametrize("row, starts, changed", [
    ("transplant-res-up-kd", "transplant-res-up",
     {"kd_weight": 1.0, "distill_weight": 0.0, "latent_resize": 32, "latent_crop": 28}),
    ("transplant-res-epochs-18", "transplant-res", {"epochs": 18, "lr_steps": (12,)})])
def test_a_row_on_another_rows_starts_fits_none_of_its_own(tmp_path, monkeypatch, row, starts,
                                                           changed):
    e = replace(DEMO, qualities=(4,))
    cells = study.cells(e, [starts, row], 2, tmp_path)
    fits = []

    def fit_file(fit):
        fits.append(fit.out.relative_to(tmp_path).as_posix())
        fit.out.parent.mkdir(parents=True, exist_ok=True)
        fit.out.write_bytes(b"")

    monkeypatch.setattr(study.latent_start, "fit_file", fit_file)
    study.fit_task_hints(e, cells, tmp_path)
    pooled = study.ROWS[starts].hint_from
    assert fits == [f"{pooled}.pth", f"{starts}/q4-seed0.pth", f"{starts}/q4-seed1.pth"]
    taught = [(c[3], c[4]) for c in cells if c[0] == row]
    assert [seed for seed, _ in taught] == [0, 1]
    for seed, config in taught:
        assert config.init == str(tmp_path / starts / f"q4-seed{seed}.pth")
        assert config.latent_adapter == "res"
        assert {k: getattr(config, k) for k in changed} == changed
    if "kd_weight" in changed:  # the teacher: the Anchor 2 of the run's own seed
        assert [c.distill for _, c in taught] == [
            str(tmp_path / "anchor2" / "q4" / f"seed{seed}" / "checkpoint.pth") for seed in (0, 1)]


def test_a_split_has_its_own_shards_and_runs_and_the_first_split_its_folders_as_ever(
        tmp_path, monkeypatch):
    """--split F (a fold of prep.datasets.folds): F's shards in <out>/split<F>, its runs in
    <runs>/split<F>/<dataset>, prepared from split F; without it, nothing moves."""
    minc = load("minc-subset")
    data, runs = tmp_path / "minc-subset-folds", tmp_path / "runs"
    seen = {}

    class Stop(Exception):
        pass

    def run(e, rows, seeds, runs, train_missing=True, selection=None):
        seen.update(e=e, runs=runs)
        raise Stop

    monkeypatch.setattr(study, "run", run)
    argv = ["--experiment", "minc-subset", "--data", str(data), "--runs", str(runs),
            "--seeds", "1", "--rows", "anchor2", "transplant-res"]
    with pytest.raises(Stop):
        study.main(argv)
    assert seen["runs"] == runs / "minc-subset-folds"
    assert (seen["e"].out, seen["e"].splits, seen["e"].extra_test) == (
        minc.out, (1,), minc.extra_test)
    with pytest.raises(Stop):
        study.main([*argv, "--split", "2", "--extra-test", ""])
    e = seen["e"]
    assert seen["runs"] == runs / "split2" / "minc-subset-folds"
    assert e.splits == (2,) and e.out == str(Path(minc.out) / "split2") and e.extra_test is None

    # the study of that split: prepared from split 2 into its folder, trained and scored there
    monkeypatch.undo()
    e = replace(e, out=str(tmp_path / "shards" / "split2"))
    prepared, scored = [], {}
    monkeypatch.setattr(study, "prep", prepared.extend)
    monkeypatch.setattr(study, "train", lambda *args, **kwargs: None)
    monkeypatch.setattr(study, "fit_task_hints", lambda *args: None)
    monkeypatch.setattr(study, "mean_bpp", lambda shards, qualities: scored.update(bpp=shards))

    def collect(all_cells, bpp, catalogue, others=None):
        scored.update(cells=all_cells, others=others)
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()

    monkeypatch.setattr(study, "collect", collect)
    study.run(e, ["anchor2", "transplant-res"], 1, seen["runs"])
    shards = tmp_path / "shards" / "split2" / "minc-subset-folds"
    assert prepared and {(c.split, str(c.data), c.out) for c in prepared} == {
        (2, str(data), tmp_path / "shards" / "split2")}  # no evaluation-only set
    assert scored["bpp"] == str(shards) and scored["others"] == {}
    assert {c[4].shards for c in scored["cells"]} == {str(shards)}
    assert all(Path(c[4].out).is_relative_to(runs / "split2" / "minc-subset-folds")
               for c in scored["cells"])


@pytest.mark.parametrize("folder, experiment", [
    ("", "demo"), ("zen4", "demo"), ("xeon", "demo"), ("xeon-fp32", "demo"),
    ("selection-demo", "demo"), ("minc-2500", "minc-subset"), ("minc-2500-zen4", "minc-subset")])
def test_a_committed_studys_tables_are_what_its_csvs_give(folder, experiment, tmp_path):
    from pipeline.experiment import load

    committed = Path(__file__).resolve().parents[1] / "docs" / "comp-study" / folder
    classes = committed / study.PER_CLASS
    study.write_tables(pd.read_csv(committed / study.RESULTS),
                       pd.read_csv(classes) if classes.is_file() else pd.DataFrame(), tmp_path,
                       load(experiment).extra_label)
    assert (tmp_path / study.TABLES).read_text() == (committed / study.TABLES).read_text()


def test_the_rows_are_listed_with_what_each_changes(capsys):
    assert study.main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(study.ROWS)
    assert listed[list(study.ROWS).index("log-sigma")].endswith(" log(sigma_hat) at the input")
