"""The paper's whole experiment matrix, start to end; every finished step is skipped on a rerun.

    python -m evaluation.pipeline --data data/minc-2500 --qualities 1 4 8   # make table2
    python -m evaluation.pipeline --preset demo                             # make demo

Steps: prep of the original set, each quality and the classical sets (JPEG, WebP; Ray; prep
resumes shard by shard), training Anchor 3, Anchor 2 and the compressed-domain classifier at
each quality and Anchor 2 on each classical set (torchrun; a run with its test result is done, a
run with a checkpoint resumes from it), then the report (evaluation, Anchor 1, Table 2, figures,
BD-accuracy, efficiency, MLflow). With several MINC-2500 splits each split gets
its own shards, runs and report, and `splits.md` gives the mean and standard deviation (of the
cells, each the mean over its seeds). With `--seeds N` every classifier is trained N times
(seeds 0..N-1; seed 0 in the folder it always had, seed k in `<folder>-seed<k>`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from evaluation import seeds
from evaluation.report import EXTRA, TABLE, write_report
from prep.codec.hyperprior import weights_file_name
from prep.common.device import resolve_device
from prep.common.tracking import UI_URL, experiment_id
from prep.datasets.listing import dataset_name
from prep.job.driver import PrepConfig
from prep.store import schema, storage
from prep.store.storage import Location
from trainer import checkpoint
from trainer.config import TrainConfig
from trainer.domains import COMP_INPUTS, DECODED, LATENT, METHOD_ORDER, ORIGINAL
from trainer.models import initial_state
from trainer.train import TEST_RESULT
from trainer.transforms import PAPER_SIZES

log = logging.getLogger(__name__)
TRAINER = Path(__file__).resolve().parent.parent / "trainer" / "main.py"


@dataclass(frozen=True)
class Experiment:
    data: str = "data/minc-2500"
    out: str = "data/shards"
    runs: str = "runs/train"
    reports: str = "reports"
    qualities: tuple[int, ...] = (1, 4, 8)
    # Pillow qualities of the classical anchors; on 24 MINC-2500 test patches JPEG 5/20/50/80
    # gave 0.24/0.46/0.76/1.24 bpp and WebP 5/20/60/90 0.18/0.29/0.57/1.43 bpp
    jpeg_qualities: tuple[int, ...] = (5, 20, 50, 80)
    webp_qualities: tuple[int, ...] = ()
    codecs: str | None = None  # folder of codec-q<Q>.pth; None: CompressAI's pretrained
    splits: tuple[int, ...] = (1,)
    epochs: int = 30
    max_steps: int | None = None  # optimizer steps per epoch at most (smoke runs)
    batch_size: int = 32
    lr: float = 0.01
    lr_steps: tuple[int, ...] = (10, 20)
    resize: int = PAPER_SIZES.resize
    crop: int = PAPER_SIZES.crop
    latent_resize: int = PAPER_SIZES.latent_resize
    latent_crop: int = PAPER_SIZES.latent_crop
    init: str = "imagenet"  # every classifier's start (trainer.models.INITS, or a file)
    latent_init: str | None = None  # the compressed-domain classifiers' start, where not `init`
    nproc: int = 2  # processes of each trainer (torchrun --nproc_per_node)
    lanes: int = 1  # trainers at once, the node's cores shared out among them as threads
    loader_workers: int | None = None  # per trainer process; None: the trainer's default
    prep_workers: int | None = None
    shard_size: int = 256
    ablations: bool = False  # also the y-only and sigma-only compressed-domain classifiers
    # Comp. learns from the Anchor 2 of its set and seed: that classifier's conv_2x map is a hint
    # for its latent branches and its weights start Comp.'s trunk (trainer.distill)
    distill: bool = False
    every_rate: bool = False  # also one cResNet-39 trained on every quality's latents together
    seeds: int = 1  # every classifier trained with seeds 0..seeds-1 (evaluation.seeds: folders)
    # an evaluation-only set (never trained on): prepared like `data` under <out>/extra-test,
    # every classifier also evaluated on its test split (MINC layout, empty train/validate)
    extra_test: str | None = None
    min_seconds: float = 2.0  # efficiency timing per batch size
    device: str = "auto"  # training, evaluation, efficiency: auto (CUDA if any), cpu, cuda
    experiment: str = "classifiers"

    @property
    def dataset(self) -> str:
        return Path(self.data).name

    @property
    def extra_label(self) -> str | None:
        """The evaluation-only set as the report names it: its folder's name."""
        return Path(self.extra_test).resolve().name if self.extra_test else None

    @property
    def classical(self) -> dict[str, tuple[int, ...]]:
        """codec -> its Pillow qualities (schema.CLASSICAL's codecs)."""
        return {"jpeg": self.jpeg_qualities, "webp": self.webp_qualities}


# The README's main command: small synthetic textures, the committed demo codecs, every
# classifier fine-tuned from the offline pretrained start (as the paper fine-tunes from
# ImageNet). Pixels and latents see the same share of the image as in the paper (256 -> 72,
# crop 64; y_hat 16x16, crop 14); sized to finish in minutes on a 2-core CPU (the README says
# what it trades). JPEG 5/60 on its 180 test textures: 0.26/1.12 bpp, beside the demo codecs'
# 0.23/0.45/1.13 (JPEG 20: 0.47; WebP 5/20/60, optional: 0.22/0.43/1.10).
DEMO = Experiment(data="data/demo-textures", out="data/demo-shards", runs="runs/demo",
                  reports="reports", codecs="codecs/demo", epochs=6, lr=0.01, lr_steps=(4,),
                  batch_size=32, resize=72, crop=64, latent_resize=16, latent_crop=14,
                  init="procedural", shard_size=48, min_seconds=1.0, jpeg_qualities=(5, 60),
                  nproc=1, lanes=2)
# The experiment on real photographs: the 4-class MINC-2500 subset in ../shared (SUBSET.md),
# coded by the project's codecs trained on its split-1 train images (codecs/minc-subset), every
# classifier fine-tuned from the procedural start; inputs halved (128 -> 112 px, latents 16 ->
# 14) to fit a CPU (the README says what this trades); the 1,800 extra test photographs of 3 of
# its classes (TEST-EXTRA.md) are evaluated beside its 134-image test split.
MINC_SUBSET = Experiment(data="../shared/data/minc-2500-subset/minc-2500",
                         out="data/minc-subset-shards", runs="runs/minc-subset",
                         reports="reports/minc-subset", codecs="codecs/minc-subset", epochs=6,
                         lr=0.01, lr_steps=(4,), resize=128, crop=112, latent_resize=16,
                         latent_crop=14, init="procedural", shard_size=128, min_seconds=1.0,
                         jpeg_qualities=(5, 20, 60), nproc=1, lanes=2,
                         extra_test="../shared/data/minc-2500-test-extra")
PRESETS = {"paper": Experiment(), "demo": DEMO, "minc-subset": MINC_SUBSET}


STAGES: list[tuple[str, float]] = []  # (step, wall seconds) of this run, in order
WALL_TIME = "wall_seconds.json"  # in a run folder: its training's wall time, start-up included


def _call(command: list[str], what: str) -> None:
    print(f"\n==> {what}\n    {' '.join(command)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command)
    STAGES.append((what, time.perf_counter() - start))
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}); fix the cause and run "
                           f"the same command again: finished steps are skipped")


def prep_configs(e: Experiment, out: Location, split: int) -> list[PrepConfig]:
    """A prep job per learned quality (each also writes the original set, once); the classical
    sets (Pillow codes them) go with the first one, which saves a Ray start-up and a pass over
    the source images, or form a job of their own where there is no learned quality."""
    base = PrepConfig(data=Path(e.data), out=out, quality=None, split=split,
                      workers=e.prep_workers, shard_size=e.shard_size)
    jobs = [replace(base, quality=q, codec_weights=Path(e.codecs) / weights_file_name(q)
                    if e.codecs else None) for q in e.qualities]
    classical = tuple((codec, q) for codec, qualities in e.classical.items() for q in qualities)
    if not classical:
        return jobs
    if not jobs:
        return [replace(base, classical=classical)]
    return [replace(jobs[0], classical=classical), *jobs[1:]]


def extra_location(e: Experiment) -> Location:
    """Where the evaluation-only set's shards go: once for all splits (it is all test)."""
    return storage.join(e.out, EXTRA)


def prep(e: Experiment, out: Location, split: int) -> None:
    for config in prep_configs(e, out, split):
        sets = ", ".join(schema.set_name(q, codec) for q, codec in config.sets() if q)
        _call([sys.executable, "-m", "prep", *config.to_argv()],
              f"prep {sets} (and the original set)")


def train_configs(e: Experiment, out: Location, runs: Path, experiment: str
                  ) -> list[TrainConfig]:
    """Every classifier of the matrix, each in its run folder under `runs`: Anchor 3, then per
    learned quality Anchor 2 and Comp. (and its ablations), then Anchor 2 on each classical
    set; each with every seed, in its own folder (evaluation.seeds.suffix)."""
    base = TrainConfig(domain=ORIGINAL.name, shards=str(storage.join(out, e.dataset)),
                       init=e.init, epochs=e.epochs, batch_size=e.batch_size, lr=e.lr,
                       lr_steps=e.lr_steps, max_steps=e.max_steps, resize=e.resize, crop=e.crop,
                       latent_resize=e.latent_resize, latent_crop=e.latent_crop,
                       workers=e.loader_workers, device=e.device, resume=True,
                       experiment=experiment)
    inputs = tuple(COMP_INPUTS) if e.ablations else ("both",)
    latent = replace(base, domain=LATENT.name, init=e.latent_init or e.init)
    configs = ([base] + [replace(base, domain=DECODED.name, quality=q) for q in e.qualities]
               + [replace(latent, quality=q, inputs=i) for q in e.qualities for i in inputs]
               + ([replace(latent, quality=e.qualities[0], rates=e.qualities)]
                  if e.every_rate and e.qualities else [])
               + [replace(base, domain=DECODED.name, quality=q, codec=codec)
                  for codec, qualities in e.classical.items() for q in qualities])
    if e.seeds < 1:
        raise ValueError(f"--seeds {e.seeds}: give 1 or more (the classifiers trained per cell)")
    found = [replace(c, seed=seed, out=str(runs / c.run_name) + seeds.suffix(seed))
             for c in configs for seed in range(e.seeds)]
    return [with_teacher(c, found) for c in found] if e.distill else found


def with_teacher(config: TrainConfig, configs: list[TrainConfig]) -> TrainConfig:
    """A compressed-domain classifier taught by, and started from, the Anchor 2 of its set and
    seed among `configs` (train_in_lanes starts it once that one has its test result)."""
    if not config.reader.latent or config.rates:  # a teacher reads one quality
        return config
    teacher = next(c for c in configs if c.domain == DECODED.name and c.quality == config.quality
                   and c.codec == config.codec and c.seed == config.seed)
    weights = str(Path(teacher.out) / checkpoint.CHECKPOINT)
    return replace(config, distill=weights, init=weights)


def waits_for(config: TrainConfig) -> list[Path]:
    """The run folders whose finished classifier this one reads (its teacher)."""
    return [Path(config.distill).parent] if config.distill else []


def is_done(folder: Path, epochs: int) -> bool:
    path = folder / checkpoint.CHECKPOINT
    return (folder / TEST_RESULT).is_file() and path.is_file() and \
        checkpoint.load(path)["epoch"] + 1 >= epochs


def train(e: Experiment, out: Location, runs: Path, experiment: str) -> None:
    pending = []
    for config in train_configs(e, out, runs, experiment):
        folder = Path(config.out)
        what = f"train {config.domain}" + (f" {config.set_name}" if config.reader.coded else "") \
            + (f" ({config.inputs})" if config.inputs != "both" else "") \
            + (" (every rate: " + " ".join(f"q{q}" for q in config.rates) + ")"
               if config.rates else "") + (f" seed {config.seed}" if e.seeds > 1 else "")
        if is_done(folder, e.epochs):
            print(f"==> {what}: done ({folder / TEST_RESULT})")
            continue
        pending.append((config, what))
    train_jobs(pending, e.nproc, e.lanes)


def trainer_command(config: TrainConfig, nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", str(TRAINER), *config.to_argv()]


def train_jobs(jobs: list[tuple[TrainConfig, str]], nproc: int, lanes: int) -> None:
    """Train every (config, what) of `jobs`, `lanes` at a time; each finished run's wall time,
    start-up included, goes into its folder (WALL_TIME)."""
    if lanes == 1:  # in order: a teacher (Anchor 2) is listed before its student
        for config, what in jobs:
            _call(trainer_command(config, nproc), what)
            _record_wall_time(config, STAGES[-1][1])
    else:
        train_in_lanes(jobs, nproc, lanes)


def _record_wall_time(config: TrainConfig, seconds: float) -> None:
    (Path(config.out) / WALL_TIME).write_text(json.dumps(seconds))


def train_in_lanes(jobs: list[tuple[TrainConfig, str]], nproc: int, lanes: int) -> None:
    """`lanes` trainers at once, each with its share of the node's cores as threads: on a CPU
    node two 1-process trainers keep both cores busy without DDP's gradient all-reduce, and
    one trainer's start-up overlaps the other's steps. Each writes train.log in its run
    folder; a failure lets the running ones finish, starts no more, and names its log."""
    threads = max(1, (os.cpu_count() or 1) // (lanes * nproc))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for name in {config.experiment for config, _ in jobs}:  # a new SQLite store's migrations
        experiment_id(name)  # and the experiment, once: lanes starting together race on them
    queue, running, failed = list(jobs), {}, []
    while (queue and not failed) or running:
        while len(running) < lanes and not failed:
            ready = [job for job in queue if all((folder / TEST_RESULT).is_file()
                                                 for folder in waits_for(job[0]))]
            if not ready:
                if not running and queue:  # nothing left that could write what they wait for
                    raise RuntimeError(f"{queue[0][1]} waits for "
                                       f"{', '.join(map(str, waits_for(queue[0][0])))}, which "
                                       f"no job of this run trains")
                break
            config, what = ready[0]
            queue.remove(ready[0])
            log_file = Path(config.out) / "train.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            command = trainer_command(config, nproc)
            print(f"\n==> {what} ({lanes} at once, {threads} thread(s) each; log {log_file})"
                  f"\n    {' '.join(command)}", flush=True)
            sink = log_file.open("ab")
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
            running[process] = (config, what, log_file, sink, time.perf_counter())
        time.sleep(0.2)
        for process in [p for p in running if p.poll() is not None]:
            config, what, log_file, sink, start = running.pop(process)
            sink.close()
            STAGES.append((what, time.perf_counter() - start))
            if process.returncode:
                failed.append(f"{what} failed (exit {process.returncode}): see {log_file}")
            else:
                _record_wall_time(config, STAGES[-1][1])
            lines = log_file.read_text(errors="replace").splitlines()
            last = next((ln for ln in reversed(lines) if ln.startswith("test:")), "")
            print(f"==> {what}: {'failed' if process.returncode else 'done'} in "
                  f"{time.perf_counter() - start:.0f} s. {last}", flush=True)
    if failed:
        raise RuntimeError("; ".join(failed) + "; fix the cause and run the same command "
                           "again: finished steps are skipped")


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
        lines[0] = f"\n({lanes} trainers at once: their rows overlap in time)\n" + lines[0]
    lines += [f"| {what} | {seconds:.1f} | {100 * seconds / total:.0f}% |"
              for what, seconds in stages]
    lines.append(f"| the pipeline, in all | {total:.1f} | 100% |")
    return "\n".join(lines)


def run(e: Experiment) -> list[Path]:
    start, reports, frames = time.perf_counter(), [], {}
    for init in {e.init, e.latent_init or e.init}:  # a missing start: one line now, not after prep
        initial_state(init)
    for split in e.splits:
        several = len(e.splits) > 1
        out = storage.join(e.out, f"split{split}") if several else storage.location(e.out)
        runs = Path(e.runs) / f"split{split}" if several else Path(e.runs)
        report_dir = Path(e.reports) / e.dataset / (f"split{split}" if several else "")
        experiment = f"{e.experiment}-split{split}" if several else e.experiment
        prep(e, out, split)
        extra = None
        if e.extra_test:  # coded like the data, split 1: its labels list only test images
            prep(replace(e, data=e.extra_test), extra_location(e), 1)
            extra = storage.join(extra_location(e), dataset_name(e.extra_test))
        train(e, out, runs, experiment)
        print("\n==> evaluate and report", flush=True)
        report_start = time.perf_counter()
        reports.append(write_report(storage.join(out, e.dataset), runs / e.dataset, report_dir,
                                    device=resolve_device(e.device), min_seconds=e.min_seconds,
                                    experiment=experiment, extra=extra,
                                    extra_label=e.extra_label))
        STAGES.append(("evaluate and report", time.perf_counter() - report_start))
        frames[split] = pd.read_parquet(report_dir / f"{TABLE}.parquet")
    if len(frames) > 1:
        reports.append(summarize_splits(frames, Path(e.reports) / e.dataset / "splits.md"))
    minutes = (time.perf_counter() - start) / 60
    print(stage_table(STAGES, time.perf_counter() - start, e.lanes))
    print(f"\ndone in {minutes:.1f} min. Report: {reports[-1]}\n"
          f"MLflow UI: make ui, then {UI_URL} (the runs are in the "
          f"'{e.experiment}' experiment, the report is the parent run '{e.dataset}/report')")
    return reports


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.pipeline", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                   help="defaults to start from (paper: the paper's recipe on MINC-2500)")
    for name, value in asdict(Experiment()).items():
        flag = "--" + name.replace("_", "-")
        if name in ("ablations", "distill", "every_rate"):
            p.add_argument(flag, action="store_true", default=None)
        elif name in ("jpeg_qualities", "webp_qualities"):  # given with no value: none
            codec = name.split("_")[0]
            p.add_argument(flag, type=int, nargs="*", default=None, metavar="P",
                           help=f"Pillow qualities of the {codec} anchors ({codec}<P> sets); "
                           "the flag alone: none")
        elif isinstance(value, tuple):
            p.add_argument(flag, type=int, nargs="+", default=None)
        else:
            kind = float if isinstance(value, float) else int if isinstance(value, int) or \
                name in ("prep_workers", "loader_workers", "max_steps") else str
            p.add_argument(flag, type=kind, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = vars(parser().parse_args(argv))
    preset = PRESETS[args.pop("preset")]
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()
                 if v is not None}
    experiment = replace(preset, **overrides)
    print("experiment:", json.dumps(asdict(experiment)), flush=True)
    try:
        run(experiment)
    except (OSError, ValueError, RuntimeError) as err:  # OSError: storage, object stores
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
