"""The paper's whole experiment matrix, start to end; every finished step is skipped on a rerun.

    python -m pipeline --experiment paper --qualities 1 4 8   # make table2
    python -m pipeline --experiment demo                      # make demo
    python -m pipeline --experiment my.toml --data photos     # a file of your own, a flag over it

The experiment is a TOML file (pipeline/experiment.py; experiments/ holds paper, demo and
minc-subset); every key of it is also a flag, which overrides the file. The effective
experiment goes into the report's folder (experiment.toml) and onto its MLflow parent run.

Steps: prep of the original set, each quality and the classical sets (Ray actors; prep resumes
shard by shard), training Anchor 3, Anchor 2 and the compressed-domain classifier at each quality
and Anchor 2 on each classical set (torchrun; a run with its test result is done, a run with a
checkpoint resumes from it), then the report (evaluation, Anchor 1, Table 2, figures,
BD-accuracy, efficiency, MLflow). Every step is a Ray task on one Ray session, after the steps
it needs (pipeline/schedule.py): on this machine, or on the cluster that RAY_ADDRESS or
`ray job submit` names, whose nodes must share the runs (pipeline/shared.py). With several
MINC-2500 splits each split gets its own shards, runs and report, and `splits.md` gives the mean
and standard deviation (of the cells, each the mean over its seeds). With `--seeds N` every
classifier is trained N times (seeds 0..N-1; seed 0 in the folder it always had, seed k in
`<folder>-seed<k>`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from classifier import checkpoint, run_folder
from classifier.config import TrainConfig
from classifier.methods import METHOD_ORDER
from classifier.models import initial_state
from evaluation.report import EXTRA, TABLE, evaluate_classifier, write_report
from foundation import journal, storage
from foundation.cli import stage_main
from foundation.hyperprior import weights_file_name
from foundation.runtime import Runtime, machine, resolve_device
from foundation.storage import Location
from foundation.tracking import UI_URL, tracking_uri
from pipeline import experiment as experiment_file
from pipeline import schedule, shared
from pipeline.experiment import Experiment
from pipeline.plan import Job, train_jobs
from pipeline.schedule import Command, Resources, Step
from prep.datasets.listing import dataset_name
from prep.job import driver
from prep.job.config import PrepConfig

log = logging.getLogger(__name__)


STAGES: list[tuple[str, float]] = []  # (step, wall seconds) of this run, in order
STAGES_FILE = "stages.md"  # beside the report: the stage table and the machine


def prep_configs(e: Experiment, out: Location, split: int) -> list[PrepConfig]:
    """A prep job per learned quality (each also writes the original set, once); the classical
    sets (Pillow codes them) go with the first one, which saves a Ray start-up and a pass over
    the source images, or form a job of their own where there is no learned quality."""
    base = PrepConfig(data=Path(e.data), out=out, quality=None, split=split,
                      workers=e.prep_workers, shard_size=e.shard_size)
    jobs = [replace(base, quality=q, codec_weights=Path(e.codecs) / weights_file_name(q)
                    if e.codecs else None) for q in e.qualities]
    if not e.classical:
        return jobs
    if not jobs:
        return [replace(base, classical=e.classical)]
    return [replace(jobs[0], classical=e.classical), *jobs[1:]]


def all_prep_configs(e: Experiment, out: Location, split: int) -> list[PrepConfig]:
    """prep_configs, then those of the evaluation-only set (coded like the data, as split 1:
    its labels list only test images)."""
    extra = prep_configs(replace(e, data=e.extra_test), extra_location(e), 1) \
        if e.extra_test else []
    return prep_configs(e, out, split) + extra


def extra_set(e: Experiment) -> Location | None:
    """The evaluation-only set's shards (None: the experiment has none)."""
    return storage.join(extra_location(e), dataset_name(e.extra_test)) if e.extra_test else None


def extra_location(e: Experiment) -> Location:
    """Where the evaluation-only set's shards go: once for all splits (it is all test)."""
    return storage.join(e.out, EXTRA)


def codec_weights(e: Experiment) -> list[str]:
    """The sha256 of the experiment's learned codec files that exist ([]: CompressAI's)."""
    files = [Path(e.codecs) / weights_file_name(q) for q in e.qualities] if e.codecs else []
    return [storage.sha256(f) for f in files if f.is_file()]


def prep_what(config: PrepConfig) -> str:
    sets = ", ".join(s.name for s in config.sets() if s.coded)
    return f"prep {sets}" + " (and the original set)" * config.original


def prep_job(config: PrepConfig) -> str:
    """One prep job, in its Ray task: it creates its actors from inside the task, on the run's
    Ray; returns what it printed (what was done before, its summary) for the driver to print."""
    with contextlib.redirect_stdout(io.StringIO()) as said:
        summary = driver.run(config)
    if error := driver.too_many_failures(config, summary):
        raise RuntimeError(error)
    return said.getvalue() + driver.describe(summary)


def prep_steps(configs: list[PrepConfig]) -> list[Step]:
    """A step per prep job, each after the one before: every job writes the original set too
    (done once, then skipped) under its lock, and one job's actors take every core already.
    The task asks for no CPU: it only plans and hands shards to its actors, which ask for the
    CPUs (and GPUs) themselves; a task that held a CPU while its actors wait for CPUs would
    starve them on a small machine (on 2 cores, one of two actors would never start)."""
    steps: list[Step] = []
    for config in configs:
        what = prep_what(config)
        if what in {s.what for s in steps}:  # the evaluation-only set's jobs
            what += f" of {Path(config.data).name}"
        steps.append(Step(what, call=partial(prep_job, config), resources=Resources(cpus=0),
                          after=tuple(s.what for s in steps[-1:]),
                          resume=f"python -m prep {' '.join(config.to_argv())}"))
    return steps


def set_writers(configs: list[PrepConfig], steps: list[Step]) -> dict[str, str]:
    """Set name -> the prep step its trainers come after: the last of the split's own prep
    steps (`configs`' steps, listed first), whichever writes it. Ray has no priorities, so a
    trainer started beside prep would take the cores (or GPUs) that the next job's actors wait
    for, and the pooled fit, which reads every learned set, would wait the longer."""
    last = steps[len(configs) - 1].what if configs else ""
    return {set_id.name: last for config in configs for set_id in config.sets()}


def trainer_argv(config: TrainConfig, nproc: int) -> tuple[str, ...]:
    """torchrun on one node with the trainer (after `python`): the trainer as a module, so that
    each node runs its own copy of the project (the job's working directory on a cluster)."""
    return ("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "trainer.main", *config.to_argv())


def trainer_resources(e: Experiment) -> Resources:
    """What a trainer (and a fit) asks Ray for. With GPUs: `nproc` of them, its own, and as
    many CPUs for its processes. On CPU nodes: its share of a node's cores, `lanes` trainers
    to a node (the largest: trainers are not split over nodes), those cores its processes'
    threads (2 cores, 2 lanes, 1 process: 1 thread each, as the demo has always trained)."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if resolve_device(e.device, gpus > 0, "the Ray cluster") == "cuda":
        return Resources(cpus=e.nproc, gpus=e.nproc)
    cpus = max(1, node_cpus() // e.lanes)
    return Resources(cpus=cpus, threads=max(1, cpus // e.nproc))


def trainer_slots(trainer: Resources) -> int:
    """How many trainers asking for `trainer` the Ray cluster runs at once."""
    import ray

    if trainer.gpus:
        return int(ray.cluster_resources().get("GPU", 0)) // trainer.gpus
    return sum(int(n["Resources"].get("CPU", 0) // trainer.cpus) for n in ray.nodes()
               if n["Alive"])


def node_cpus() -> int:
    """The CPUs of the cluster's largest node (this machine's, on one)."""
    import ray

    return max(int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"])


def job_steps(jobs: list[Job], nproc: int, resources: Resources,
              writers: dict[str, str] | None = None, slots: int | None = None) -> list[Step]:
    """The jobs as steps, each after the steps that write what it needs: the prep step of each
    set it reads (`writers`: set name -> step), the steps whose files it waits for (a fitted
    start, a teacher's test result); a file that is there already is no wait. Listed so that
    every step comes after those it needs, else in the jobs' order. A trainer asks for
    `resources`, a fit alone (one process) for one GPU of them at most. With fewer `slots` (how
    many trainers run at once) than trainers, the chains go first (`chains_first`)."""
    writers = writers or {}
    producers = {job.creates(): job.what for job in jobs}
    steps = {}
    for j in jobs:
        after = [writers[s] for s in j.reads() if s in writers]
        for path in j.waits:
            if path in producers:
                after.append(producers[path])
            elif not path.is_file():
                raise ValueError(f"{j.what} waits for {path}, which no step of this run writes")
        trainer = Command(trainer_argv(j.config, nproc), j.what) if j.config else None
        steps[j.what] = Step(
            j.what, commands=(*j.before, *([trainer] if trainer else [])),
            after=tuple(dict.fromkeys(after)), log=j.log_file(),
            resources=resources if j.config else replace(resources, gpus=min(resources.gpus, 1)),
            wall_time=run_folder.wall_time_file(j.config.out) if j.config else None,
            resume=(trainer or j.before[-1]).line)
    if slots is not None and sum(1 for j in jobs if j.config) > slots:
        steps = chains_first(steps, set(writers.values()))
    ordered: list[Step] = []
    while steps:  # dependencies first
        ready = next(s for s in steps.values()
                     if all(a not in steps for a in (*s.after, *s.later_than)))
        ordered.append(steps.pop(ready.what))
    return ordered


def chains_first(steps: dict[str, Step], prep: set[str]) -> dict[str, Step]:
    """The steps, where the trainers that no step needs and that need none (Anchor 3, the
    equal-budget and JPEG anchors) start later than every step a chain needs (the Anchor 2s,
    the pooled fit) and are listed last. Ray starts ready tasks in the order they became ready:
    these, ready once their sets are written, would otherwise take every slot before any Comp.
    (which needs its Anchor 2 and a fit) is ready, and the Comps would end the run alone on a
    machine with slots to spare. Only an order: a failed Anchor 2 stops none of them."""
    needed = dict.fromkeys(a for s in steps.values() for a in s.after if a not in prep)
    loose = [w for w, s in steps.items()
             if w not in needed and s.wall_time is not None and set(s.after) <= prep]
    if not needed:
        return steps
    later = {w: replace(steps[w], later_than=tuple(needed)) for w in loose}
    return {w: s for w, s in steps.items() if w not in later} | later


def run_steps(steps: list[Step]) -> None:
    """Steps on this process's Ray (started for them if none is up); every failure a line of
    one RuntimeError, once the others are over."""
    with driver.ray_session(None):
        done = schedule.run(steps)
    STAGES.extend(stage for o in done.outcomes for stage in o.stages)
    if failures := done.failures():
        raise RuntimeError("\n".join(failures))


def prep(configs: list[PrepConfig]) -> None:
    """The prep jobs, one after another on one Ray (the study's prep)."""
    run_steps(prep_steps(configs))


def train(jobs: list[Job], e: Experiment) -> None:
    """The jobs, as many at once as their resources allow (the study's training)."""
    with driver.ray_session(None):
        resources = trainer_resources(e)
        run_steps(job_steps(jobs, e.nproc, resources, slots=trainer_slots(resources)))


def summarize_splits(frames: dict[int, pd.DataFrame], path: Path) -> Path:
    """Mean and standard deviation over the splits of each method and quality."""
    table = pd.concat([f.assign(split_number=s) for s, f in frames.items()])
    table["quality"] = table["quality"].astype("Int64")
    grouped = table.groupby(["method", "set"], sort=False)[["top1", "top5", "bpp"]]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    lines = ["| method | set | Top-1 mean ± std | Top-5 mean ± std | bpp | splits |",
             "|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    for row in sorted(stats.itertuples(index=False), key=lambda r: (order.get(r[0], 99), r[1])):
        method, set_name, t1m, t1s, _, t5m, t5s, _, bpp, _, n = row
        lines.append(f"| {method} | {set_name} | {100 * t1m:.2f} ± {100 * (t1s or 0):.2f} | "
                     f"{100 * t5m:.2f} ± {100 * (t5s or 0):.2f} | {bpp:.3f} | {n} |")
    path.write_text(f"# Over splits {', '.join(map(str, frames))}\n\n" + "\n".join(lines) + "\n")
    return path


def stage_table(stages: list[tuple[str, float]], total: float, lanes: int = 1) -> str:
    """The wall time of every step of this run (skipped steps are not listed)."""
    lines = ["\n| step | wall s | share |", "|---|---:|---:|"]
    if lanes > 1:
        lines[0] = (f"\n(steps run at once, up to {lanes} trainers, as Ray finds them ready: "
                    "their rows overlap in time)\n") + lines[0]
    lines += [f"| {what} | {seconds:.1f} | {100 * seconds / total:.0f}% |"
              for what, seconds in stages]
    lines.append(f"| the pipeline, in all | {total:.1f} | 100% |")
    return "\n".join(lines)


def evaluate_job(shards: Location, run: Path, report_dir: Path, e: Experiment,
                 threads: int | None) -> str:
    """One classifier's cells, in its Ray task, into the report's caches (Anchor 3's are Anchor
    1's too): on CPUs with the report's threads, so that its predictions are the report's to
    the bit."""
    if threads:
        torch.set_num_threads(threads)
    cells = evaluate_classifier(shards, run / checkpoint.CHECKPOINT, report_dir,
                                resolve_device(e.device), extra_set(e))
    return f"{cells} cell(s) evaluated"


def evaluation_steps(jobs: list[Job], e: Experiment, out: Location, report_dir: Path,
                     trainer: Resources, prep: tuple[str, ...]) -> list[Step]:
    """Each classifier trained in this run evaluated as soon as it is, after its trainer and
    the last prep step (`prep`: Anchor 1 reads every coded set; the evaluation-only set), so
    that the report finds its predictions; a lane (or a GPU) each."""
    shards = storage.join(out, e.dataset)
    return [Step(f"evaluate {j.what.removeprefix('train ')}", after=(*prep, j.what),
                 resources=replace(trainer, gpus=min(trainer.gpus, 1), threads=None),
                 call=partial(evaluate_job, shards, Path(j.config.out), report_dir, e,
                              None if trainer.gpus else node_cpus()))
            for j in jobs if j.config]


def report_job(shards: Location, runs: Path, report_dir: Path, e: Experiment, experiment: str,
               threads: int) -> str:
    """The report, in its Ray task: every classifier evaluated (from the caches of the
    evaluation steps), the tables and figures. Its threads are set here: a Ray worker is reused
    by tasks of other sizes."""
    torch.set_num_threads(threads)
    path = write_report(shards, runs, report_dir, device=resolve_device(e.device),
                        min_seconds=e.min_seconds, experiment=experiment, extra=extra_set(e),
                        extra_label=e.extra_label, settings=experiment_file.to_toml(e))
    return f"report: {path}"


def report_step(e: Experiment, out: Location, runs: Path, report_dir: Path, experiment: str,
                trainer: Resources) -> Step:
    """The report once every classifier is over: a GPU where the trainers have them, else a
    whole node (as many threads as it had in the driver's process on one machine)."""
    shards = storage.join(out, e.dataset)
    cpus = trainer.cpus if trainer.gpus else max(1, node_cpus())
    return Step("evaluate and report", resources=Resources(cpus, min(trainer.gpus, 1)),
                call=partial(report_job, shards, runs / e.dataset, report_dir, e, experiment,
                             int(cpus)),
                resume=f"python -m evaluation.report --shards {shards} --runs "
                f"{runs / e.dataset} --out {report_dir} --experiment {experiment}")


def run(e: Experiment) -> list[Path]:
    start, reports, frames, failures = time.perf_counter(), [], {}, []
    # a missing start: one line now, not after prep; latent branches fitted to other codecs: a
    # warning now, not in a trainer's log
    initial_state(e.init)
    if e.latent_init:
        initial_state(e.latent_init, codec_weights(e))
    with driver.ray_session(None):  # one Ray for every step of every split
        data = [d for d in (e.data, e.extra_test) if d]
        if seen := shared.check([e.runs, e.reports, e.out], tracking_uri(), data):
            print(seen, flush=True)
        resources = trainer_resources(e)
        for split in e.splits:
            several = len(e.splits) > 1
            out = storage.join(e.out, f"split{split}") if several else storage.location(e.out)
            runs = Path(e.runs) / f"split{split}" if several else Path(e.runs)
            report_dir = Path(e.reports) / e.dataset / (f"split{split}" if several else "")
            experiment = f"{e.mlflow_experiment}-split{split}" if several else e.mlflow_experiment
            own = prep_configs(e, out, split)
            prep = prep_steps(own + all_prep_configs(e, out, split)[len(own):])
            if away := journal.make_experiment(experiment):
                print(away, flush=True)
            jobs = train_jobs(e, out, runs, experiment)
            steps = job_steps(jobs, e.nproc, resources, set_writers(own, prep),
                              trainer_slots(resources))
            evaluations = evaluation_steps(jobs, e, out, report_dir, resources,
                                           tuple(s.what for s in prep[-1:]))
            done = schedule.run([*prep, *steps, *evaluations], closing=report_step(
                e, out, runs, report_dir, experiment, resources))
            STAGES.extend(stage for o in done.outcomes for stage in o.stages)
            failures += done.failures()
            if done.outcomes[-1].ok:
                reports.append(report_dir / "README.md")
                frames[split] = pd.read_parquet(report_dir / f"{TABLE}.parquet")
    if len(frames) > 1:
        reports.append(summarize_splits(frames, Path(e.reports) / e.dataset / "splits.md"))
    table = stage_table(STAGES, time.perf_counter() - start, e.lanes)
    print(table)
    runtime = Runtime.resolve(e.device, e.precision)
    (Path(e.reports) / e.dataset).mkdir(parents=True, exist_ok=True)
    (Path(e.reports) / e.dataset / STAGES_FILE).write_text(
        f"# The pipeline's stages\n\nWhat `python -m pipeline` timed, on "
        f"{machine(runtime.device)} in {runtime.precision} "
        f"(`--precision {e.precision}`); a step done before is not listed.\n{table}\n")
    if failures:
        raise RuntimeError("\n".join(failures) + "\nthe other steps are done; fix the cause "
                           "and run the same command again: finished steps are skipped")
    print(f"\ndone in {(time.perf_counter() - start) / 60:.1f} min. Report: {reports[-1]}\n"
          f"MLflow UI: make ui, then {UI_URL} (the runs are in the "
          f"'{e.mlflow_experiment}' experiment, the report is the parent run '{e.dataset}/report')")
    return reports


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="paper", metavar="NAME|FILE",
                   help=f"the experiment: one of {', '.join(experiment_file.names())} "
                   "(experiments/) or a TOML file of your own; the flags below override it")
    for name, value in asdict(Experiment()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif name in ("jpeg_qualities", "webp_qualities"):  # given with no value: none
            codec = name.split("_")[0]
            p.add_argument(flag, type=int, nargs="*", default=None, metavar="P",
                           help=f"Pillow qualities of the {codec} anchors ({codec}<P> sets); "
                           "the flag alone: none")
        elif isinstance(value, tuple):
            p.add_argument(flag, type=int, nargs="+", default=None)
        else:
            p.add_argument(flag, type=experiment_file.kind(name)[0], default=None)
    return p


def experiment_from(argv: list[str] | None = None) -> Experiment:
    """The experiment a command line names, with its flags over the file's values."""
    args = vars(parser().parse_args(argv))
    chosen = experiment_file.load(args.pop("experiment"))
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()
                 if v is not None}
    return replace(chosen, **overrides)


@stage_main
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    e = experiment_from(argv)
    print("experiment:", json.dumps(asdict(e)), flush=True)
    run(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
