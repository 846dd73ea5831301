"""docs/getting-started.md as a new user runs it: every ```sh block, in order and as written, in a
fresh folder that holds the project's files, after each ```toml block is written to the file its
first line names. Fewer and smaller images come through the variables the Makefile reads from
the environment (DEMO_TEXTURES, PIPELINE_ARGS); the commands themselves are the page's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.experiment import load
from pipeline.plan import train_configs

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"
OUTPUTS = {".git", "data", "runs", "reports", "mlflow.db", "mlartifacts", ".pytest_cache"}
SMALL = {
    "DEMO_TEXTURES": "--classes 3 --per-class 10 --size 96 --max-mix 0.2 "
                     "--fractions 0.6 0.2 0.2 --seed 1",
    "PIPELINE_ARGS": "--qualities 4 --jpeg-qualities --epochs 1 --max-steps 2 --batch-size 8 "
                     "--resize 40 --crop 32 --shard-size 8 --prep-workers 1 --min-seconds 0.05 "
                     "--latent-hint-steps 3 --transplant-steps 3",
}
CLASSES = ("brick", "carpet", "ceramic")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", PAGE.read_text(), re.M | re.S)


def test_the_page_says_what_the_demo_experiment_does():
    demo, text = load("demo"), " ".join(PAGE.read_text().split())
    configs = train_configs(demo, Path("shards"), Path("runs"), "x")
    assert f"trains the {len(configs)} classifiers" in text and len(configs) == 12
    assert demo.jpeg_qualities == (5, 60) and "JPEG 5 and 60" in text
    assert demo.qualities == (1, 4, 8) and "qualities 1, 4 and 8" in text
    assert blocks("sh") and blocks("toml")


@pytest.mark.slow
def test_a_new_user_runs_the_page_and_gets_both_reports(tmp_path, minc_sample):
    project = tmp_path / "project"
    project.mkdir()
    for entry in ROOT.iterdir():  # a checkout of the project, without anything it wrote
        if entry.name not in OUTPUTS:
            (project / entry.name).symlink_to(entry)
    for name in CLASSES:  # the user's photographs: real ones, one folder per class
        (project / "my-photos" / name).mkdir(parents=True)
        for image in sorted((minc_sample / "images" / name).glob("*.jpg"))[:30]:
            shutil.copy(image, project / "my-photos" / name)
    for block in blocks("toml"):
        name = block.splitlines()[0].removeprefix("# ").strip()
        (project / name).write_text(block)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | SMALL
    for command in blocks("sh"):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=project, env=env,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    demo = project / "reports" / "demo-textures"
    assert "Table 2" in (demo / "README.md").read_text()
    assert load(demo / "experiment.toml").codecs == "codecs/demo"
    photos = project / "reports" / "my-photos"
    table = (photos / "table2.md").read_text()
    assert "| Comp. |" in table and "| Anchor 2 |" in table and "3 classes" in table
    effective = load(photos / "experiment.toml")  # the base's keys, the file's, the overrides
    assert (effective.data, effective.codecs, effective.init, effective.qualities,
            effective.extra_test) == ("my-photos", "codecs/minc-subset", "procedural", (4,), None)
    assert (project / "mlflow.db").is_file()
