"""transplant_steps: each Comp. starts from the Anchor 2 of its set and seed carried to the
latent; its lane fits that start after the Anchor 2 and before the trainer."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from classifier.config import TrainConfig
from classifier.run_files import TEST_RESULT, WALL_TIME
from foundation import storage
from pipeline import run as pipeline_run
from pipeline.experiment import load
from pipeline.run import job, train_configs, train_in_lanes
from trainer import latent_start

DEMO = load("demo")


def test_each_comp_is_fitted_to_the_anchor2_of_its_set_and_seed(tmp_path):
    e = replace(DEMO, qualities=(1, 8), seeds=2, transplant_steps=7, ablations=True,
                every_rate=True, jpeg_qualities=(5,))
    runs = tmp_path / "runs"
    configs = train_configs(e, storage.location(tmp_path / "shards"), runs, "x")
    hint = str(runs / "demo-textures" / "latent-hint-task-1000.pth")
    transplanted = [c for c in configs if c.domain == "latent" and c.inputs == "both"
                    and not c.rates]
    assert len(transplanted) == 4
    for c in transplanted:
        start = Path(c.init)
        assert start.parent == runs / "demo-textures" / "transplant"
        assert start.name == Path(c.out).name + ".pth"  # q1.pth, q1-seed1.pth
        planned = job(c, "x", configs, e, runs)
        branches, result = planned.waits  # the pooled fit's file, its Anchor 2's test result
        assert str(branches) == hint and result.name == TEST_RESULT
        folder = result.parent
        teacher = next(t for t in configs if Path(t.out) == folder)
        assert (teacher.domain, teacher.set_id, teacher.seed) == ("decoded", c.set_id, c.seed)
        [(command, what)] = planned.before
        argv = list(command)
        weights = str(folder / "checkpoint.pth")
        assert argv[1:3] == ["-m", "trainer.latent_start"]
        fit = latent_start.parse(argv[3:])
        assert (fit.teacher, fit.trunk, fit.branches, fit.rates, fit.steps, fit.seed, fit.out) \
            == (Path(weights), weights, hint, (c.quality,), 7, c.seed, Path(c.init))
        assert f"seed {c.seed}" in what
    # the ablations and the every-rate classifier keep the branches' start and wait for it alone
    for c in configs:
        if c.domain == "latent" and c not in transplanted:
            planned = job(c, "x", configs, e, runs)
            assert c.init == hint and planned.waits == (Path(hint),) and planned.before == ()
    assert not any(job(c, "x", configs, e, runs).waits for c in configs if c.domain != "latent")
    # a start already fitted is not fitted again
    start = Path(transplanted[0].init)
    start.parent.mkdir(parents=True)
    start.write_bytes(b"")
    assert job(transplanted[0], "x", configs, e, runs).before == ()
    with pytest.raises(ValueError, match="choose one"):
        train_configs(replace(e, distill=True), storage.location(tmp_path), runs, "x")


def test_a_lane_fits_a_start_after_what_it_waits_for_and_before_its_trainer(tmp_path,
                                                                           monkeypatch):
    """Real subprocesses in 2 lanes: the pooled fit runs in a lane beside a pixel trainer; the
    student's fit starts once the pooled fit's file and the teacher's test result are there,
    its trainer after its fit, in the same lane; its wall time covers both."""
    order, pooled = tmp_path / "order.txt", tmp_path / "latent-hint-task.pth"

    def step(name: str, writes: Path | None = None) -> list[str]:
        code = (f"import pathlib, time; time.sleep(0.3); "
                f"open({str(order)!r}, 'a').write({name!r} + '\\n')")
        if writes is not None:
            code += f"; pathlib.Path({str(writes)!r}).write_text('{{}}')"
        return [sys.executable, "-c", code]

    monkeypatch.setattr(pipeline_run, "experiment_id", lambda name: None)
    monkeypatch.setattr(pipeline_run, "trainer_command", lambda config, nproc: step(
        f"train {config.domain}", Path(config.out) / TEST_RESULT))
    teacher = TrainConfig(domain="decoded", shards="s", quality=4, out=str(tmp_path / "a2"))
    student = TrainConfig(domain="latent", shards="s", quality=4, out=str(tmp_path / "comp"))
    other = TrainConfig(domain="original", shards="s", out=str(tmp_path / "a3"))
    jobs = [pipeline_run.Job(None, "pooled", before=((tuple(step("fit pooled", pooled)),
                                                       "fit pooled"),),
                             log=tmp_path / "pooled.log"),
            pipeline_run.Job(student, "student", (pooled, tmp_path / "a2" / TEST_RESULT),
                             ((tuple(step("fit latent")), "fit"),)),
            pipeline_run.Job(teacher, "teacher"), pipeline_run.Job(other, "other")]
    train_in_lanes(jobs, 1, 2)
    lines = order.read_text().splitlines()
    assert set(lines[:2]) == {"fit pooled", "train decoded"}  # side by side
    assert lines.index("train decoded") < lines.index("fit latent") < lines.index("train latent")
    assert sorted(lines) == ["fit latent", "fit pooled", "train decoded", "train latent",
                             "train original"]
    assert json.loads((tmp_path / "comp" / WALL_TIME).read_text()) >= 0.6
    assert (tmp_path / "pooled.log").is_file()  # a fit alone logs where its Job says


def test_a_ready_job_that_fits_its_start_goes_before_trainers_alone(tmp_path, monkeypatch):
    """The longest first: a Comp. whose lane fits its start (fit and trainer) starts before
    the pixel trainers listed ahead of it, so that the lanes end together."""
    order = tmp_path / "order.txt"

    def step(name: str) -> list[str]:
        return [sys.executable, "-c", f"open({str(order)!r}, 'a').write({name!r} + '\\n')"]

    monkeypatch.setattr(pipeline_run, "experiment_id", lambda name: None)
    monkeypatch.setattr(pipeline_run, "trainer_command",
                        lambda config, nproc: step(f"train {Path(config.out).name}"))
    pixel = [TrainConfig(domain="decoded", shards="s", quality=q, out=str(tmp_path / f"a2-{q}"))
             for q in (1, 4, 8)]
    comp = TrainConfig(domain="latent", shards="s", quality=4, out=str(tmp_path / "comp"))
    jobs = [*(pipeline_run.Job(c, "pixel") for c in pixel),
            pipeline_run.Job(comp, "comp", before=((tuple(step("fit comp")), "fit"),))]
    train_in_lanes(jobs, 1, 1)  # one lane: the order it picks is the order they run
    assert order.read_text().splitlines() == ["fit comp", "train comp", "train a2-1",
                                              "train a2-4", "train a2-8"]


def test_an_experiments_adapter_and_latent_sizes_reach_comp_and_both_fits(tmp_path):
    e = replace(DEMO, qualities=(4,), latent_adapter="res", latent_resize=32, latent_crop=28)
    runs = tmp_path / "runs"
    configs = train_configs(e, storage.location(tmp_path / "shards"), runs, "x")
    [comp] = [c for c in configs if c.domain == "latent"]
    assert comp.latent_adapter == "res" and "--latent-adapter" in comp.to_argv()
    assert (comp.latent_resize, comp.latent_crop) == (32, 28)
    [(transplant, _)] = job(comp, "x", configs, e, runs).before
    [(pooled, _)] = pipeline_run.task_hint_job(e, storage.location(tmp_path / "shards"),
                                              runs).before
    for command in (list(transplant), list(pooled)):  # the teacher sees what the trunk will
        for flag, value in (("--latent-adapter", "res"), ("--latent-resize", "32"),
                            ("--latent-crop", "28")):
            assert command[command.index(flag) + 1] == value, flag
    assert all(c.latent_adapter == "none" for c in configs if c.domain != "latent")
    with pytest.raises(ValueError, match="give one of none, se, res"):
        train_configs(replace(e, latent_adapter="big"), storage.location(tmp_path), runs, "x")
