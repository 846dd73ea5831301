"""Experiments as files: the project's TOML files, a user's own on a base, the errors a wrong
file gets, and the effective experiment written back as a file that reads the same."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from foundation import storage
from foundation.cli import stage_main
from pipeline import experiment
from pipeline.experiment import Experiment, load, to_toml
from pipeline.plan import train_configs
from pipeline.run import experiment_from

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["paper", "demo", "minc-subset"])
def test_each_project_experiment_names_every_key_and_reads_back(name):
    path = ROOT / "experiments" / f"{name}.toml"
    text = path.read_text()
    keys = {line.split("=")[0].strip() for line in text.splitlines()
            if "=" in line and not line.startswith("#")}
    assert keys == {f.name for f in fields(Experiment)}  # a reader sees the whole recipe
    assert load(name) == load(path)
    assert load(name) == load_text(to_toml(load(name)))


def load_text(text: str) -> Experiment:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "e.toml"
        path.write_text(text)
        return load(path)


def test_the_paper_is_the_default_and_the_demo_its_cpu_version():
    assert load("paper") == Experiment()
    demo = load("demo")
    assert (demo.init, demo.codecs, demo.epochs, demo.lanes) == ("procedural", "codecs/demo", 6, 2)
    assert (demo.latent_resize, demo.latent_crop, demo.extra_test) == (16, 14, None)


def test_a_users_file_starts_from_its_base_and_sets_what_differs(tmp_path):
    (tmp_path / "mine.toml").write_text('base = "minc-subset"\ndata = "photos"\n'
                                        'extra_test = ""\nqualities = [4]\nlr = 1\n')
    (tmp_path / "more.toml").write_text('base = "mine.toml"\nseeds = 3\nablations = true\n')
    mine = load(tmp_path / "more.toml")  # a base file is found beside the file that names it
    assert mine == replace(load("minc-subset"), data="photos", extra_test=None, qualities=(4,),
                           lr=1.0, seeds=3, ablations=True)
    assert mine.dataset == "photos" and isinstance(mine.lr, float)
    # a base by its name alone is the file of that name beside it before one in experiments/;
    # a description says what a file is, changes nothing and is not inherited
    (tmp_path / "demo.toml").write_text('base = "more"\ndescription = "fewer seeds"\nseeds = 2\n')
    (tmp_path / "last.toml").write_text('base = "demo"\n')
    assert load(tmp_path / "last.toml") == replace(mine, seeds=2)
    files = experiment.chain(tmp_path / "demo.toml")
    assert [(path.name, table) for path, table in files] == [
        ("minc-subset.toml", dict(files[0][1])), ("mine.toml", {"data": "photos",
         "extra_test": "", "qualities": [4], "lr": 1}),
        ("more.toml", {"seeds": 3, "ablations": True}),
        ("demo.toml", {"description": "fewer seeds", "seeds": 2})]


@pytest.mark.parametrize("text, message", [
    ("lrr = 3", r"unknown key 'lrr'; the keys are data, out,"),
    ("lr = 'fast'", r"lr = 'fast': give a number"),
    ("qualities = 4", r"qualities = 4: give a list of integers"),
    ("epochs = 1.5", r"epochs = 1.5: give an integer"),
    ("seeds = true", r"seeds = True: give an integer"),
    ("ablations = 1", r"ablations = 1: give true or false"),
    ("codecs = 3", r"codecs = 3: give a string or \"\" for none"),
    ("base = 'nowhere'", r"experiment 'nowhere': no such file, nor one of demo, minc-subset"),
    ("lr = [", r"not TOML"),
    ("description = 3", r"description = 3: give a string"),
])
def test_a_wrong_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "wrong.toml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=message) as caught:
        load(path)
    assert "\n" not in str(caught.value) and ("wrong.toml" in str(caught.value)
                                              or "nowhere" in str(caught.value))


def test_a_base_chain_that_comes_back_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ValueError, match="its base chain comes back to itself"):
        load(tmp_path / "a.toml")


def test_command_line_flags_win_over_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "demo"\nablations = true\nepochs = 3\n')
    e = experiment_from(["--experiment", str(path), "--epochs", "2", "--no-ablations",
                         "--jpeg-qualities", "--lr", "0.5"])
    assert (e.epochs, e.ablations, e.jpeg_qualities, e.lr, e.init) == (2, False, (), 0.5,
                                                                        "procedural")


def test_the_precision_reaches_every_classifier_and_a_wrong_one_is_refused(tmp_path):
    e = experiment_from(["--experiment", "demo", "--precision", "fp32"])
    configs = train_configs(e, storage.location(tmp_path / "s"), tmp_path, "x")
    # Anchor 3, Anchor 2 and Comp. at 3 qualities, 2 JPEG Anchor 2s, 3 of equal budget
    assert len(configs) == 12 and {c.precision for c in configs} == {"fp32"}
    with pytest.raises(ValueError, match=r"^--precision fp16: give one of auto, fp32, bf16$"):
        train_configs(replace(e, precision="fp16"), storage.location(tmp_path / "s"), tmp_path,
                      "x")


def test_a_comp_started_from_its_anchor2_gets_an_anchor2_of_equal_budget(tmp_path):
    from pipeline.plan import anchor2_of

    e = experiment_from(["--experiment", "demo", "--epochs", "5", "--lr-steps", "2", "4",
                         "--seeds", "2"])
    configs = train_configs(e, storage.location(tmp_path / "s"), tmp_path, "x")
    equal = [c for c in configs if c.equal_budget]
    assert sorted((c.quality, c.seed) for c in equal) == [(q, s) for q in (1, 4, 8)
                                                          for s in (0, 1)]
    assert {(c.domain, c.method, c.epochs, c.lr_steps, c.lr) for c in equal} == {
        ("decoded", "Anchor 2 (equal budget)", 10, (4, 8), e.lr)}
    assert {Path(c.out).relative_to(tmp_path).parts[1] for c in equal} == {"decoded-equal-budget"}
    for comp in (c for c in configs if c.domain == "latent"):  # its start: the plain Anchor 2
        teacher = anchor2_of(comp, configs)
        assert not teacher.equal_budget and teacher.epochs == 5 and teacher.seed == comp.seed
    # a Comp. from the pixel start trains as long as Anchor 2: no such reference
    fresh = train_configs(replace(e, transplant_steps=0), storage.location(tmp_path / "s"),
                          tmp_path, "x")
    assert not any(c.equal_budget for c in fresh)


def test_comps_own_learning_rate_reaches_every_comp_and_no_pixel_classifier(tmp_path):
    from research import study

    e = experiment_from(["--experiment", "demo", "--latent-lr", "0.001", "--ablations",
                         "--every-rate"])
    configs = train_configs(e, storage.location(tmp_path / "s"), tmp_path, "x")
    latent = [c for c in configs if c.domain == "latent"]
    assert len(latent) == 3 * 3 + 1 and {c.lr for c in latent} == {0.001}
    assert {c.lr for c in configs if c.domain != "latent"} == {0.01}
    assert latent[0].to_argv()[latent[0].to_argv().index("--lr") + 1] == "0.001"
    # the study's rows change the baseline's recipe, which keeps the preset's one lr
    rows = ["anchor2", "baseline", "transplant-res-lr-0.001"]
    lr = {c[0]: c[4].lr for c in study.cells(e, rows, 1, tmp_path)}
    assert lr == {"anchor2": 0.01, "baseline": 0.01, "transplant-res-lr-0.001": 0.001}


def test_the_pipeline_names_a_missing_experiment_in_one_line():
    done = subprocess.run([sys.executable, "-m", "pipeline", "--experiment", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("error: experiment 'nope': no such file, nor one of "
                           f"{', '.join(experiment.names())} (experiments/)\n")


def test_stage_main_makes_expected_errors_one_line_and_exit_2(capsys, monkeypatch):
    @stage_main
    def fails(argv):
        raise FileNotFoundError(f"{argv[0]} does not exist: prepare it first")

    assert fails(["shards/q4"]) == 2
    assert capsys.readouterr().err == "error: shards/q4 does not exist: prepare it first\n"
    monkeypatch.setenv("RANK", "1")  # under torchrun only rank 0 says it
    assert fails(["x"]) == 2 and capsys.readouterr().err == ""
    monkeypatch.setenv("CDMR_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        fails(["x"])
    assert stage_main(lambda argv: None)([]) == 0  # a main that returns nothing: success


def test_the_entry_points_are_installed_and_speak_in_one_line(tmp_path):
    scripts = Path(sys.executable).parent
    done = subprocess.run([scripts / "cdmr-prep", "--data", str(tmp_path / "none"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and str(tmp_path / "none") in done.stderr
    for name in ("cdmr-pipeline", "cdmr-train", "cdmr-report", "cdmr-study"):
        assert (scripts / name).is_file(), f"{name}: run `make setup` (pip install -e .)"
