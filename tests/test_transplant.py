"""transplant_steps: each Comp. starts from the Anchor 2 of its set and seed carried to the
latent; its step fits that start after the Anchor 2's and before its trainer."""

from dataclasses import replace
from pathlib import Path

import pytest

from classifier.config import TrainConfig
from classifier.run_folder import TEST_RESULT, WALL_TIME
from foundation import storage
from pipeline import plan as pipeline_plan
from pipeline.experiment import load
from pipeline.plan import job, train_configs
from pipeline.run import job_steps
from pipeline.schedule import Command, Resources
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
        [command] = planned.before
        argv, what = list(command.argv), command.what
        weights = str(folder / "checkpoint.pth")
        assert argv[:2] == ["-m", "trainer.latent_start"] and command.creates == start
        fit = latent_start.parse(argv[2:])
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


def test_a_step_fits_its_start_after_what_it_waits_for_and_before_its_trainer(tmp_path):
    """Ray dependencies from the files a job waits for: the student's step comes after the
    pooled fit's and its teacher's, fits its start, then trains; the pooled fit after the prep
    of every latent set it reads; a file that is there already is no wait, and one that no
    step writes is one line."""
    pooled = tmp_path / "latent-hint-task.pth"
    teacher = TrainConfig(domain="decoded", shards="s", quality=4, out=str(tmp_path / "a2"))
    student = TrainConfig(domain="latent", shards="s", quality=4, out=str(tmp_path / "comp"))
    other = TrainConfig(domain="original", shards="s", out=str(tmp_path / "a3"))
    fit = Command(("-m", "trainer.latent_start", "fit"), "fit latent", creates=tmp_path / "s.pth")
    jobs = [pipeline_plan.Job(student, "student", (pooled, tmp_path / "a2" / TEST_RESULT), (fit,)),
            pipeline_plan.Job(None, "pooled", before=(Command(("-m", "fit"), "pooled",
                                                             creates=pooled),),
                             log=tmp_path / "pooled.log", sets=("q1", "q4")),
            pipeline_plan.Job(teacher, "teacher"), pipeline_plan.Job(other, "other")]
    writers = {"original": "prep q1", "q1": "prep q1", "q4": "prep q4"}
    steps = job_steps(jobs, 1, Resources(cpus=1, threads=1), writers)
    by_name = {s.what: s for s in steps}
    assert [s.what for s in steps] == ["pooled", "teacher", "student", "other"]  # needs first
    assert by_name["pooled"].after == ("prep q1", "prep q4")
    assert by_name["pooled"].log == tmp_path / "pooled.log" and by_name["pooled"].wall_time is None
    # on GPUs a fit alone (one process) asks for one of a trainer's GPUs
    [gpu_fit] = job_steps(jobs[1:2], 2, Resources(cpus=2, gpus=2), writers)
    assert gpu_fit.resources == Resources(cpus=2, gpus=1)
    assert by_name["other"].after == ("prep q1",) and by_name["teacher"].after == ("prep q4",)
    comp = by_name["student"]
    assert comp.after == ("prep q4", "pooled", "teacher")
    assert [c.what for c in comp.commands] == ["fit latent", "student"]
    assert comp.commands[1].argv[:6] == ("-m", "torch.distributed.run", "--standalone",
                                         "--nproc_per_node=1", "-m", "trainer.main")
    assert comp.commands[1].argv[6:] == tuple(student.to_argv())
    assert comp.wall_time == tmp_path / "comp" / WALL_TIME
    assert comp.log == tmp_path / "comp" / "train.log"
    assert comp.resume == "python " + " ".join(comp.commands[1].argv)
    # the teacher done before: no step of its own, and its file is no wait
    (tmp_path / "a2").mkdir()
    (tmp_path / "a2" / TEST_RESULT).write_text("{}")
    again = job_steps([jobs[0], jobs[1]], 1, Resources(), writers)
    assert again[-1].after == ("prep q4", "pooled")
    with pytest.raises(ValueError, match=f"student waits for {pooled}, which no step of this "
                       "run writes"):
        job_steps([jobs[0]], 1, Resources(), writers)
    # fewer slots than trainers: the trainer that needs no trainer and that none needs (Anchor
    # 3 here) starts later than what the chain needs, listed last; with a slot each, at once
    assert by_name["other"].later_than == ()
    assert job_steps(jobs, 1, Resources(), writers, slots=3)[-1].later_than == ()
    ordered = job_steps(jobs, 1, Resources(), writers, slots=2)
    assert [s.what for s in ordered] == ["pooled", "teacher", "student", "other"]
    assert ordered[-1].later_than == ("pooled", "teacher") and ordered[-1].after == ("prep q1",)
    assert [s.later_than for s in ordered[:-1]] == [(), (), ()]


def test_an_experiments_adapter_and_latent_sizes_reach_comp_and_both_fits(tmp_path):
    e = replace(DEMO, qualities=(4,), latent_adapter="res", latent_resize=32, latent_crop=28)
    runs = tmp_path / "runs"
    configs = train_configs(e, storage.location(tmp_path / "shards"), runs, "x")
    [comp] = [c for c in configs if c.domain == "latent"]
    assert comp.latent_adapter == "res" and "--latent-adapter" in comp.to_argv()
    assert (comp.latent_resize, comp.latent_crop) == (32, 28)
    [transplant] = job(comp, "x", configs, e, runs).before
    [pooled] = pipeline_plan.task_hint_job(e, storage.location(tmp_path / "shards"), runs).before
    # the teacher sees what the trunk will
    for command in (transplant, pooled):
        fit = latent_start.parse(list(command.argv[2:]))
        assert (fit.latent_adapter, fit.latent_resize, fit.latent_crop) == ("res", 32, 28)
    assert all(c.latent_adapter == "none" for c in configs if c.domain != "latent")
    with pytest.raises(ValueError, match="give one of none, se, res"):
        train_configs(replace(e, latent_adapter="big"), storage.location(tmp_path), runs, "x")
