"""The run folder of a classifier, and the starts fitted beside it: one owner, as
foundation/schema.py is of a shard set. Every stage that writes or reads these names (the
trainer, the pipeline, evaluation, the study and its tools) asks this module; nothing else
spells them (tests/test_run_folder.py scans the project for them).

A run folder holds its trainer's checkpoints (classifier.checkpoint), its log, its test result
(written last: the run is complete, and a rerun skips it) and its wall time (the pipeline's:
start-up and the fit of its start included). Beside the run folders lie the starts fitted for
them without labels (trainer.latent_start): latent branches fitted on the task's latents, and
each transplanted Comp.'s start, carried from its Anchor 2.

Seeds have one spelling, `seed<k>`, in two layouts. The pipeline trains seed k of a classifier
in `<runs>/<run name>-seed<k>`, beside seed 0 in `<runs>/<run name>`: seed 0 keeps the folder a
single-seed experiment always had, so runs made before seeds existed resume as seed 0 and a
one-seed report (the demo's) names its classifiers as it always did. The study, whose rows
always had several seeds, nests each under its row and set, seed 0 too:
`<runs>/<row>/<set>/seed<k>`. Both stay because both hold finished runs that a rerun finds by
these names (a study may be writing one now): moving either layout onto the other would train
its runs again.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from foundation.storage import write_atomic

TEST_RESULT = "test.json"  # written last: the run is complete
WALL_TIME = "wall_seconds.json"  # a JSON number, written by the pipeline's step (pipeline.schedule)
TRAIN_LOG = "train.log"  # the trainer's output, where the pipeline runs it
TRANSPLANT = "transplant"  # the pipeline's folder of Comp. starts carried from their Anchor 2s
START_NAMES = "q<Q>[-seed<k>].pth"  # a start fitted for one quality, in either layout


def seed_name(seed: int) -> str:
    """A seed as every name spells it: a study's run folder, an MLflow run of one seed."""
    return f"seed{seed}"


def seed_suffix(seed: int) -> str:
    """What a seed adds to a pipeline's name (a run folder, a transplant start, a cached
    prediction): nothing for seed 0, whose names predate seeds."""
    return f"-{seed_name(seed)}" if seed else ""


# what a run folder holds

def result_file(folder: Path) -> Path:
    """A run's test result (not `test_...`: pytest would collect it where a test imports it)."""
    return Path(folder) / TEST_RESULT


def finished(folder: Path) -> bool:
    """Whether a run is complete: its test result is there."""
    return result_file(folder).is_file()


def write_result(folder: Path, test: dict) -> None:
    """The trainer's last word, atomic: a reader sees the whole result or none."""
    write_atomic(result_file(folder), json.dumps(test, indent=1).encode())


def read_result(folder: Path) -> dict:
    return json.loads(result_file(folder).read_text())


def wall_time_file(folder: Path) -> Path:
    return Path(folder) / WALL_TIME


def read_wall_time(folder: Path) -> float:
    """A run's wall seconds; NaN where the pipeline did not train it."""
    path = wall_time_file(folder)
    return float(json.loads(path.read_text())) if path.is_file() else math.nan


def log_file(folder: Path) -> Path:
    return Path(folder) / TRAIN_LOG


# the pipeline's layout (and the trainer's default): <runs>/<run name>[-seed<k>]

def classifier_folder(runs: Path, run_name: str, seed: int) -> Path:
    return Path(runs) / f"{run_name}{seed_suffix(seed)}"


def task_hint(dataset_runs: Path, steps: int) -> Path:
    """The latent branches fitted on the task's training latents for `steps`, beside the
    dataset's runs."""
    return Path(dataset_runs) / f"latent-hint-task-{steps}.pth"


def transplant_start(dataset_runs: Path, set_name: str, seed: int) -> Path:
    """A transplanted Comp.'s start: one per set and seed (q4.pth, q4-seed1.pth), in one folder
    beside the dataset's runs."""
    return Path(dataset_runs) / TRANSPLANT / f"{set_name}{seed_suffix(seed)}.pth"


def is_transplant_start(path: str | Path) -> bool:
    return Path(path).parent.name == TRANSPLANT


def transplant_starts(path: str | Path) -> str:
    """A transplant start named for all of its folder's (`.../transplant/<set>.pth`): the
    report lists one start for Comp., whose sets and seeds each had their own."""
    return str(transplant_start(Path(path).parent.parent, "<set>", 0))


# the study's layout: <runs>/<row>/<set>/seed<k>, each fitted start under the row that made it

def study_folder(runs: Path, row: str, set_name: str, seed: int) -> Path:
    """A study run's folder: its row, its set (q4, q1+4+8), its seed."""
    return Path(runs) / row / set_name / seed_name(seed)


def study_hint(runs: Path, row: str) -> Path:
    """A row's latent branches fitted on the task's latents, every quality pooled."""
    return Path(runs) / f"{row}.pth"


def study_start(runs: Path, row: str, set_name: str, seed: int | None) -> Path:
    """A row's transplant start: per set, and per seed unless every seed's run is carried from
    the one Anchor 2 (seed None)."""
    name = set_name if seed is None else f"{set_name}-{seed_name(seed)}"
    return Path(runs) / row / f"{name}.pth"


def start_set(path: str | Path) -> str:
    """The set a fitted start is for, from its name in either layout (q4-seed1.pth: q4)."""
    return re.sub(r"-seed\d+$", "", Path(path).stem)
