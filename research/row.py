"""A row of the compressed-domain study (research.study): research/rows/<row>.toml, an experiment
file over the experiment the study runs, read by pipeline/experiment.py, and the trainer config
of each of its runs.

A row's file holds what it changes and its description, on `base = "<row>"` where it builds on
another row (its chain's root changes the study's experiment itself). Experiment keys reach the
trainer as the pipeline gives them (train_configs), the fits included: latent_hint_steps and
transplant_steps, whose files go under the last row of the chain to change what each fit reads,
so that the rows built on it share them. What an experiment cannot say goes in two tables:
[row], which classifier of the experiment the row trains and whose Anchor 2 it is carried from;
[trainer], fields of the trainer's own (TrainConfig) that the pipeline gives every classifier
alike, where a trained run of another row is named by its row, set and seed, and
classifier.run_folder says where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from classifier import checkpoint, run_folder
from classifier.config import TrainConfig
from classifier.methods import COMP, METHOD_ORDER
from evaluation.seeds import STUDY_REFERENCE as REFERENCE
from foundation.sets import SetId
from pipeline import experiment as experiment_file
from pipeline.experiment import Experiment
from pipeline.plan import transplanted

ROWS_FOLDER = Path(__file__).resolve().parent / "rows"
TRAINER_TABLE, ROW_TABLE = "trainer", "row"  # a row file's tables beside its experiment keys
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}
ROW_KEYS = {"trains": str, "transplant_seed": int}
# a [trainer] field naming another row's trained run: {row = "anchor2", set = "q4", seed = 0}
TRAINED_KEYS = {"row": str, "set": str, "seed": int}
# what each of the study's fits reads: rows that change none of it after a row share its file
HINT_READS = {"latent_init", "latent_hint_steps", "latent_adapter", "latent_resize", "latent_crop"}
TRANSPLANT_READS = HINT_READS | {"transplant_steps", "transplant_seed"}


@dataclass(frozen=True)
class Row:
    """One variant: the study's experiment with the changes of rows/<name>.toml, its base chain
    first (pipeline/experiment.py reads it). `changes`: the Experiment fields it sets, which
    reach the trainer as the pipeline gives them (train_configs), the fits included
    (latent_hint_steps, transplant_steps). The file's [row] table: `trains`, which classifier
    of that experiment the row trains (the paper's name: Anchor 2, Comp. (every rate), ...;
    Comp. by default), and `transplant_seed`, the seed of the Anchor 2 that every seed's Comp.
    is carried from (the run's own otherwise). Its [trainer] table: TrainConfig fields an
    experiment cannot say, since the pipeline gives every classifier the same, set last: a
    string with {runs} (the study's run folder of the dataset), {q} (the quality) and {seed}
    (the run's seed) filled, or a table naming another row's trained run, trained first, whose
    checkpoint it becomes (`row`, and `set` and `seed`, the run's own by default)."""

    name: str
    what: str
    changes: dict
    trainer: dict
    trains: str = COMP
    transplant_seed: int | None = None
    # the rows whose fitted starts it reads: the last of its chain to change what each fit reads
    hint_from: str = ""
    transplant_from: str = ""

    def recipe(self, e: Experiment) -> Experiment:
        return replace(e, **self.changes, seeds=1)  # the study runs the seeds itself

    def hint_file(self, runs: Path) -> Path:
        """The latent start fitted on the task's latents, every quality pooled."""
        return run_folder.study_hint(runs, self.hint_from)

    def transplant_file(self, runs: Path, quality: int, seed: int) -> Path:
        """The start carried from the Anchor 2 of the quality (and of the seed)."""
        return run_folder.study_start(runs, self.transplant_from, SetId.of(quality).name,
                                      seed if self.transplant_seed is None else None)

    def teacher_seed(self, seed: int) -> int:
        return seed if self.transplant_seed is None else self.transplant_seed

    def config(self, config: TrainConfig, e: Experiment, runs: Path) -> TrainConfig:
        """A run of this row from its recipe's classifier (seed set): Comp. started from the
        study's own files and runs (the pipeline keeps its own elsewhere), then the trainer
        fields."""
        quality, seed = config.quality, config.seed
        if transplanted(config) and e.transplant_steps:
            config = replace(config, init=str(self.transplant_file(runs, quality, seed)))
        elif config.reader.latent and e.latent_hint_steps:
            config = replace(config, init=str(self.hint_file(runs)))
        if config.reader.latent and not config.rates and e.distill:  # taught and started
            teacher = str(trained(runs, REFERENCE, SetId.of(quality).name, seed))
            config = replace(config, distill=teacher, init=teacher)
        return replace(config, **{k: trainer_value(v, runs, quality, seed)
                                  for k, v in self.trainer.items()})

    @property
    def reads_latent_init(self) -> bool:
        """Whether its Comp. trains from the experiment's latent start as it is (latent-hint):
        it keeps latent_init, fits nothing and names no start of its own."""
        return (self.trains == COMP and "latent_init" not in self.changes
                and not self.changes.get("latent_hint_steps")
                and not self.changes.get("transplant_steps") and "init" not in self.trainer)


def read_row(name: str) -> Row:
    """rows/<name>.toml and its base chain as a Row."""
    changes, trainer, keys, owners = {}, {}, {}, {}
    chain = experiment_file.chain(ROWS_FOLDER / f"{name}{experiment_file.SUFFIX}")
    for path, table in chain:
        table = dict(table)
        trainer |= _named_runs(_checked(table.pop(TRAINER_TABLE, {}), TRAIN_FIELDS, path,
                                        TRAINER_TABLE), path)
        row = _checked(table.pop(ROW_TABLE, {}), ROW_KEYS, path, ROW_TABLE)
        keys |= row
        own = experiment_file.values(table, path)
        changes |= own
        for fit, reads in (("hint_from", HINT_READS), ("transplant_from", TRANSPLANT_READS)):
            if reads & (own.keys() | row.keys()):
                owners[fit] = path.stem
    path, table = chain[-1]
    what = table.get(experiment_file.DESCRIPTION)
    if not what:
        raise ValueError(f"{path}: a row says what it changes: description = \"...\"")
    if keys.get("trains", COMP) not in METHOD_ORDER:
        raise ValueError(f"{path}: [{ROW_TABLE}] trains = {keys['trains']!r}: give one of "
                         f"{', '.join(METHOD_ORDER)}")
    return Row(name, what, changes, trainer, **keys, **owners)


def _checked(table: dict, known, path: Path, name: str) -> dict:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{path}: [{name}] {', '.join(unknown)}: the keys are "
                         f"{', '.join(sorted(known))}")
    if isinstance(known, dict):  # the [row] table's own types
        for key, value in table.items():
            if type(value) is not known[key]:
                raise ValueError(f"{path}: [{name}] {key} = {value!r}: give a "
                                 f"{known[key].__name__}")
    return table


def _named_runs(table: dict, path: Path) -> dict:
    """A [trainer] table whose tables each name a trained run: its row, its set and seed."""
    for key, value in table.items():
        if isinstance(value, dict) and "row" not in _checked(value, TRAINED_KEYS, path,
                                                              f"{TRAINER_TABLE}.{key}"):
            raise ValueError(f"{path}: [{TRAINER_TABLE}.{key}] names a trained run by its row: "
                             f'row = "{REFERENCE}"')
    return table


def trained(runs: Path, row: str, set_name: str, seed: int) -> Path:
    """A row's trained classifier: its run's checkpoint."""
    return run_folder.study_folder(runs, row, set_name, seed) / checkpoint.CHECKPOINT


def trainer_value(value, runs: Path, quality: int | None, seed: int):
    """A [trainer] field for one run: a trained run it names as its checkpoint (the run's own
    set and seed unless it says), a string with {runs}, {q} and {seed} filled, else as it is."""
    if isinstance(value, dict):
        return str(trained(runs, value["row"], value.get("set", SetId.of(quality).name),
                           value.get("seed", seed)))
    return value.format(runs=runs, q=quality, seed=seed) if isinstance(value, str) else value


ROWS = {name: read_row(name) for name in sorted(p.stem for p in ROWS_FOLDER.glob("*.toml"))}


def reads(spec: Row) -> list[str]:
    """The rows whose trained classifiers `spec` reads, as a start or a teacher: those a
    trainer field names, and Anchor 2 where Comp. is carried from it (transplant_steps) or
    taught by it (distill)."""
    named = {v["row"] for v in spec.trainer.values() if isinstance(v, dict)}
    teacher = spec.changes.get("transplant_steps") or spec.changes.get("distill")
    return sorted(named | ({REFERENCE} if teacher else set()))


READ_BY_OTHERS = frozenset(r for spec in ROWS.values() for r in reads(spec))  # trained first
