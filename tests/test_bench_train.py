"""`make bench-train`'s code paths on small shards: every layout, table and column measured."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_train

pytestmark = pytest.mark.slow


def test_every_table_is_measured(trainer_shards, capsys):
    bench_train.main(["--shards", str(trainer_shards), "--quality", "4", "--quick"])
    out = capsys.readouterr().out
    sections = {part.split()[1]: part for part in out.split("## ")[1:]}  # peak, bare, trainer
    peak, bare, trainer = sections["peak:"], sections["bare"], sections["trainer"]
    rows = [line for line in peak.splitlines() if line.startswith("| ") and "layout" not in line]
    assert [r.split(" | ")[0][2:] for r in rows] == ["2 x 1", "1 x 2", "2 lanes of 1 x 1"]
    assert all(float(r.split(" | ")[1]) > 0 for r in rows)
    models = [line for line in bare.splitlines() if line.startswith("| cResNet")
              or line.startswith("| ResNet")]
    assert len(models) == 2 and all(re.search(r"\| \d+% \|$", m) for m in models)
    runs = [line for line in trainer.splitlines() if re.match(r"\| (latent|decoded|original) ",
                                                              line)]
    assert len(runs) == 9  # 3 domains x 3 layouts
    for line in runs:
        cells = line.split(" | ")
        assert float(cells[4]) > 0 and float(cells[5]) > 0  # bare, trainer img/s
        ratio, low, high = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cells[9]).groups())
        assert 0 < low <= ratio <= high  # trainer / bare: the median of the rounds, their range
