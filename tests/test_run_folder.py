"""One owner of the run folder: the names in a classifier's run folder, of the starts fitted
beside it and a seed's spelling appear in classifier/run_folder.py and in no other source file
(Python strings, the experiments' and the study rows' TOML). A stage that spelled them itself
would drift from the others, as two seed conventions once did (issue 40). Prose (docstrings)
may name them; tests may too."""

from __future__ import annotations

import ast
import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from classifier import run_folder
from classifier.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
OWNER = ROOT / "classifier" / "run_folder.py"
PACKAGES = ("foundation", "prep", "classifier", "trainer", "evaluation", "pipeline", "research",
            "benchmarks")
DATA = ("experiments", "research/rows")  # TOML whose strings may hold paths ({runs}/...)
# what only the owner spells, as it reads in a string (an f-string's fields as {})
NAMES = {
    "the test result": r"\btest\.json\b",
    "the wall time": r"\bwall_seconds\.json\b",
    "the trainer's log": r"\btrain\.log\b",
    "the transplant starts' folder": r"(^|/)transplant(/|$)",
    "the task hint's start": r"latent-hint-task-\{",
    "a seed in a name": r"(^|[-/_])seed(\d|\{|<)",  # seed1, -seed{k}, /seed{seed}, -seed<k>
}


def python_strings(path: Path) -> Iterator[tuple[str, str]]:
    """(where, text) of every string in a module but its prose: a string that is a statement
    of its own (a docstring) is left out."""
    tree = ast.parse(path.read_text(), str(path))
    prose = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield f"{node.lineno}", "".join(v.value if isinstance(v, ast.Constant) else "{}"
                                            for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in prose:
            yield f"{node.lineno}", node.value


def toml_strings(value, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from toml_strings(inner, f"{where}.{key}".lstrip("."))
    elif isinstance(value, list):
        for inner in value:
            yield from toml_strings(inner, where)
    elif isinstance(value, str):
        yield where, value


def spelled(path: Path) -> Iterator[tuple[str, str]]:
    """(what, where) of each owner's name that `path` spells."""
    found = python_strings(path) if path.suffix == ".py" else \
        toml_strings(tomllib.loads(path.read_text()))
    for where, text in found:
        for what, pattern in NAMES.items():
            if re.search(pattern, text):
                yield what, f"{path.relative_to(ROOT)}:{where}: {what} in {text!r}"


def sources() -> list[Path]:
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
            if p != OWNER] + [p for folder in DATA for p in sorted((ROOT / folder).glob("*.toml"))]


def test_only_the_owner_spells_the_run_folder():
    wrong = list(dict.fromkeys(where for path in sources() for _, where in spelled(path)))
    assert not wrong, "ask classifier.run_folder instead of spelling its names:\n" + \
        "\n".join(wrong)


def test_the_scan_finds_each_name_where_it_is_spelled():
    """Each pattern finds its name in the owner (a pattern that matched nothing would pass the
    test above whatever the project spells), and the scan reads every package and row."""
    assert {what for what, _ in spelled(OWNER)} == set(NAMES)
    files = sources()
    assert len(files) > 80 and ROOT / "pipeline" / "run.py" in files
    assert ROOT / "research" / "rows" / "distill.toml" in files


@pytest.mark.parametrize(("seed", "pipeline", "study"), [
    (0, "runs/d/latent/q4", "runs/anchor2/q4/seed0"),
    (2, "runs/d/latent/q4-seed2", "runs/anchor2/q4/seed2")])
def test_a_seed_in_each_layout(seed, pipeline, study):
    """Seed 0 keeps the pipeline's folder of before seeds; the study names every seed."""
    runs = Path("runs")
    assert run_folder.classifier_folder(runs, "d/latent/q4", seed) == Path(pipeline)
    assert run_folder.study_folder(runs, "anchor2", "q4", seed) == Path(study)


def test_a_hand_run_seed_trains_beside_seed_0():
    """The trainer's default folder is the pipeline's layout under runs/train: a --seed 1 run
    by hand does not resume seed 0's."""
    config = TrainConfig(domain="latent", shards="data/shards/d", quality=8)
    assert config.out_dir == Path("runs/train/d/latent/q8")
    assert replace(config, seed=1).out_dir == Path("runs/train/d/latent/q8-seed1")


def test_start_names_read_back():
    """A start's set comes back from its name in either layout; the report names the
    pipeline's transplant starts as one."""
    pipeline = run_folder.transplant_start(Path("runs/d"), "q4", 1)
    study = run_folder.study_start(Path("runs"), "transplant-res", "q8", 0)
    assert (pipeline, study) == (Path("runs/d/transplant/q4-seed1.pth"),
                                 Path("runs/transplant-res/q8-seed0.pth"))
    assert [run_folder.start_set(p) for p in (pipeline, study)] == ["q4", "q8"]
    assert run_folder.is_transplant_start(pipeline) and not run_folder.is_transplant_start(study)
    assert run_folder.transplant_starts(pipeline) == str(Path("runs/d/transplant/<set>.pth"))


def test_a_run_is_finished_by_its_test_result(tmp_path):
    assert not run_folder.finished(tmp_path) and math.isnan(run_folder.read_wall_time(tmp_path))
    run_folder.write_result(tmp_path, {"test_top1": 0.5})
    run_folder.wall_time_file(tmp_path).write_text("12.5")
    assert run_folder.finished(tmp_path) and run_folder.read_result(tmp_path)["test_top1"] == 0.5
    assert run_folder.read_wall_time(tmp_path) == 12.5
