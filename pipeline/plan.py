"""What an experiment trains, as jobs for the scheduler: each classifier's config (its set,
seed, start and run folder), the fits of the starts it needs (the pooled fit of the latent
branches on the task's latents; each transplanted Comp.'s fit to its Anchor 2) and the files
each waits for; a classifier whose run is complete is not planned again. pipeline.run turns
the jobs into Ray steps."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from classifier import checkpoint, run_folder
from classifier.config import TrainConfig
from classifier.domains import DECODED, LATENT, ORIGINAL
from classifier.methods import COMP_INPUTS
from classifier.models import ADAPTERS
from foundation import storage
from foundation.sets import SetId
from foundation.storage import Location
from pipeline.experiment import Experiment
from pipeline.schedule import Command
from trainer.latent_start import LatentFit


def train_configs(e: Experiment, out: Location, runs: Path, experiment: str
                  ) -> list[TrainConfig]:
    """Every classifier of the matrix, each in its run folder under `runs`: Anchor 3, then per
    learned quality Anchor 2 and Comp. (and its ablations), then Anchor 2 on each classical
    set; each with every seed, in its own folder (classifier.run_folder)."""
    base = TrainConfig(domain=ORIGINAL.name, shards=str(storage.join(out, e.dataset)),
                       init=e.init, epochs=e.epochs, batch_size=e.batch_size, lr=e.lr,
                       lr_steps=e.lr_steps, max_steps=e.max_steps, resize=e.resize, crop=e.crop,
                       latent_resize=e.latent_resize, latent_crop=e.latent_crop,
                       workers=e.loader_workers, device=e.device, precision=e.precision,
                       resume=True, experiment=experiment)
    inputs = tuple(COMP_INPUTS) if e.ablations else ("both",)
    latent = replace(base, domain=LATENT.name, init=latent_branches(e, runs),
                     latent_adapter=e.latent_adapter,
                     lr=e.lr if e.latent_lr is None else e.latent_lr)
    configs = ([base] + [replace(base, domain=DECODED.name, quality=q) for q in e.qualities]
               + equal_budget_anchors(base, e)
               + [replace(latent, quality=q, inputs=i) for q in e.qualities for i in inputs]
               + ([replace(latent, quality=e.qualities[0], rates=e.qualities)]
                  if e.every_rate and e.qualities else [])
               + [replace(base, domain=DECODED.name, quality=s.quality, codec=s.codec)
                  for s in e.classical])
    if e.seeds < 1:
        raise ValueError(f"--seeds {e.seeds}: give 1 or more (the classifiers trained per cell)")
    if e.latent_adapter not in ADAPTERS:
        raise ValueError(f"--latent-adapter {e.latent_adapter}: give one of {', '.join(ADAPTERS)}")
    if e.transplant_steps and e.distill:
        raise ValueError(f"--distill with --transplant-steps {e.transplant_steps}: each starts "
                         "Comp. from its Anchor 2 in its own way; choose one (--transplant-steps "
                         "0 for --distill)")
    found = [replace(c, seed=seed, out=str(run_folder.classifier_folder(runs, c.run_name, seed)))
             for c in configs for seed in range(e.seeds)]
    if e.distill:
        return [with_teacher(c, found) for c in found]
    if e.transplant_steps:
        return [replace(c, init=str(transplant_start(c, e, runs)))
                if transplanted(c) else c for c in found]
    return found


def equal_budget_anchors(base: TrainConfig, e: Experiment) -> list[TrainConfig]:
    """Where Comp. starts from its quality's trained Anchor 2 (transplant_steps, distill), it
    has trained for that Anchor 2's epochs and then its own: an Anchor 2 per quality trained
    that many epochs, its learning-rate steps stretched alike, is the reference of equal
    budget that the report measures Comp. against."""
    if not (e.transplant_steps or e.distill):
        return []
    scale = 2  # Anchor 2's epochs, then Comp.'s: the same `epochs` each
    return [replace(base, domain=DECODED.name, quality=q, equal_budget=True,
                    epochs=scale * e.epochs, lr_steps=tuple(scale * s for s in e.lr_steps))
            for q in e.qualities]


def latent_branches(e: Experiment, runs: Path) -> str:
    """Where Comp.'s latent branches start: the fit on the run's own training latents
    (latent_hint_steps), else the experiment's latent start, else the pixel start."""
    hint = task_hint(e, runs)
    return str(hint) if hint else latent_start_of(e)


def latent_start_of(e: Experiment) -> str:
    """Comp.'s start before any fit on the task: the experiment's latent start, else fresh
    latent branches on the pixel start."""
    return e.latent_init or e.init


def task_hint(e: Experiment, runs: Path) -> Path | None:
    """Where the start fitted on the run's own training latents goes (latent_hint_steps)."""
    return run_folder.task_hint(runs / e.dataset, e.latent_hint_steps) \
        if e.latent_hint_steps > 0 else None


def task_hint_job(e: Experiment, out: Location, runs: Path) -> Job | None:
    """The fit of the latent start's branches on the training latents of every learned
    quality, as a job of its own: it runs once those sets are written, beside the pixel
    classifiers, and every Comp. waits for its file (done once: the file is kept with the
    runs). None: none to fit."""
    path = task_hint(e, runs)
    if path is None:
        return None
    what = f"fit the latent branches on the training latents ({e.latent_hint_steps} steps)"
    if path.is_file():
        print(f"==> {what}: done ({path})")
        return None
    argv = LatentFit(shards=str(storage.join(out, e.dataset)), rates=e.qualities,
                     trunk=latent_start_of(e), steps=e.latent_hint_steps, out=path,
                     device=e.device, precision=e.precision, latent_adapter=e.latent_adapter,
                     latent_resize=e.latent_resize, latent_crop=e.latent_crop).to_argv()
    command = Command(("-m", "trainer.latent_start", *argv), what, creates=path)
    return Job(None, what, before=(command,), log=path.with_suffix(".log"),
               sets=tuple(SetId.of(q).name for q in e.qualities))


def transplanted(config: TrainConfig) -> bool:
    """Whether `transplant_steps` starts this classifier from its Anchor 2: Comp. on both
    inputs at one quality (an ablation's branches differ; every rate has no one Anchor 2)."""
    return config.reader.latent and config.inputs == "both" and not config.rates


def transplant_start(config: TrainConfig, e: Experiment, runs: Path) -> Path:
    """Where a transplanted Comp.'s start goes: beside its dataset's runs, one per quality
    and seed."""
    return run_folder.transplant_start(runs / e.dataset, config.set_id.name, config.seed)


def transplant_fit(config: TrainConfig, configs: list[TrainConfig], e: Experiment,
                   runs: Path) -> tuple[Path, list[str], str]:
    """(Anchor 2's run folder, the fit's command, what it does) for a transplanted Comp.: the
    Anchor 2 of its set and seed carried to the latent, its latent branches (from
    latent_branches) fitted without labels for transplant_steps to that Anchor 2's conv_2x on
    the quality's training latents, under its trunk and fc (docs/comp-study, row
    transplant-anchor2)."""
    teacher = anchor2_of(config, configs)
    weights = Path(teacher.out) / checkpoint.CHECKPOINT
    argv = LatentFit(shards=config.shards, rates=(config.quality,), trunk=str(weights),
                     steps=e.transplant_steps, out=Path(config.init), teacher=weights,
                     branches=latent_branches(e, runs), seed=config.seed, device=e.device,
                     precision=e.precision, latent_adapter=config.latent_adapter,
                     latent_resize=config.latent_resize,
                     latent_crop=config.latent_crop).to_argv()
    what = (f"fit {config.set_id}'s latent branches to its Anchor 2 seed {config.seed} "
            f"({e.transplant_steps} steps)")
    return Path(teacher.out), ["-m", "trainer.latent_start", *argv], what


def anchor2_of(config: TrainConfig, configs: list[TrainConfig]) -> TrainConfig:
    """The Anchor 2 among `configs` of a Comp.'s set and seed (its teacher, or its transplant's)."""
    return next(c for c in configs if c.domain == DECODED.name and c.quality == config.quality
                and c.codec == config.codec and c.seed == config.seed and not c.equal_budget)


def with_teacher(config: TrainConfig, configs: list[TrainConfig]) -> TrainConfig:
    """A compressed-domain classifier taught by, and started from, the Anchor 2 of its set and
    seed among `configs` (its step comes after that one's trainer)."""
    if not config.reader.latent or config.rates:  # a teacher reads one quality
        return config
    weights = str(Path(anchor2_of(config, configs).out) / checkpoint.CHECKPOINT)
    return replace(config, distill=weights, init=weights)


@dataclass(frozen=True)
class Job:
    """A classifier (or a fit alone, where `config` is None) as the pipeline plans it: the sets
    it reads, the files it waits for (a teacher's test result, the start its branches come
    from), the fits it runs first (the fit of its start), then its trainer, logged to `log`
    (default: train.log in the trainer's run folder). A start that is there already is not
    fitted again."""

    config: TrainConfig | None
    what: str
    waits: tuple[Path, ...] = ()
    before: tuple[Command, ...] = ()
    log: Path | None = None
    sets: tuple[str, ...] = ()  # default: the config's sets

    def log_file(self) -> Path:
        return self.log or run_folder.log_file(self.config.out)

    def creates(self) -> Path:
        """The file that says it is done: its trainer's test result, else its last fit's."""
        return run_folder.result_file(self.config.out) if self.config else \
            self.before[-1].creates

    def reads(self) -> tuple[str, ...]:
        c = self.config
        return self.sets or tuple(c.reader.set_for(q, c.codec).name for q in c.rates) or \
            (c.set_id.name,)


def job(config: TrainConfig, what: str, configs: list[TrainConfig] = (),
        e: Experiment | None = None, runs: Path | None = None) -> Job:
    """`config`'s Job: a taught Comp. waits for its teacher's test result; with `e`, a Comp.
    waits for the branches fitted on the task's latents (latent_hint_steps), and with its
    transplant_steps, a transplanted Comp. waits for its Anchor 2 (among `configs`) and fits
    its start first."""
    waits = (run_folder.result_file(Path(config.distill).parent),) if config.distill else ()
    hint = task_hint(e, runs) if e is not None else None
    if hint and config.reader.latent and not config.distill:  # its branches' start
        waits += (hint,)
    if e is None or not e.transplant_steps or not transplanted(config):
        return Job(config, what, waits)
    teacher, argv, fit_what = transplant_fit(config, configs, e, runs)
    start = Path(config.init)
    before = () if start.is_file() else (Command(tuple(argv), fit_what, creates=start),)
    return Job(config, what, (*waits, run_folder.result_file(teacher)), before)


def is_done(config: TrainConfig) -> bool:
    folder = Path(config.out)
    path = folder / checkpoint.CHECKPOINT
    return run_folder.finished(folder) and path.is_file() and \
        checkpoint.load(path)["epoch"] + 1 >= config.epochs


def train_jobs(e: Experiment, out: Location, runs: Path, experiment: str) -> list[Job]:
    """The pooled fit (if any) and every classifier not done yet."""
    pending = []
    configs = train_configs(e, out, runs, experiment)
    for config in configs:
        folder = Path(config.out)
        what = f"train {config.domain}" + (f" {config.set_id}" if config.reader.coded else "") \
            + (f" ({config.inputs})" if config.inputs != "both" else "") \
            + (" (every rate: " + " ".join(SetId.of(q).name for q in config.rates) + ")"
               if config.rates else "") + (" (equal budget)" if config.equal_budget else "") \
            + (f" seed {config.seed}" if e.seeds > 1 else "")
        if is_done(config):
            print(f"==> {what}: done ({run_folder.result_file(folder)})")
            continue
        pending.append(job(config, what, configs, e, runs))
    fit = task_hint_job(e, out, runs)
    return [fit, *pending] if fit else pending
