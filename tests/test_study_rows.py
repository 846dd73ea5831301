"""Every study row plans the same runs as the rows did when they were a Python constant: the
trainer's config of each run, the fits the study makes before them, the rows each reads and the
experiments that refuse a row (tests/fixtures/study_rows.json, made from that code). A
committed study's numbers keep their meaning only while this holds."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from classifier.config import TrainConfig
from pipeline.experiment import load
from research import study
from research.row import ROWS, reads

FROZEN = json.loads((Path(__file__).parent / "fixtures" / "study_rows.json").read_text())
EXPERIMENTS = [name for name in FROZEN if name != "made_by"]


def plain(value, runs: Path):
    """A value as the fixture holds it: lists for tuples, the run folder as {runs}."""
    return json.loads(json.dumps(value, default=str).replace(str(runs), "{runs}"))


def changed(config: TrainConfig) -> dict:
    default = TrainConfig(domain=config.domain, shards=config.shards)
    return {f.name: getattr(config, f.name) for f in fields(config)
            if f.name in ("domain", "shards") or getattr(config, f.name) != getattr(default,
                                                                                   f.name)}


def planned(found: dict) -> list[str]:
    """The rows the experiment runs, in the order they were planned in (their fits' order)."""
    return [row for row in found["reads"] if row not in found["errors"]]


@pytest.fixture(params=EXPERIMENTS)
def frozen(request):
    found = FROZEN[request.param]
    e = replace(load(request.param), qualities=tuple(found["qualities"]))
    return e, found


def test_the_rows_are_the_frozen_rows():
    assert sorted(ROWS) == sorted(FROZEN["demo"]["reads"])


def test_every_row_trains_the_runs_it_trained(frozen, tmp_path):
    e, found = frozen
    cells = study.cells(e, planned(found), found["seeds"], tmp_path)
    got = [[row, set_name, quality, seed,
            {k: v for k, v in plain(changed(config), tmp_path).items()
             if found["common"].get(k, object()) != v}]
           for row, set_name, quality, seed, config in cells]
    assert all(plain(changed(c[4]), tmp_path).items() >= found["common"].items() for c in cells)
    by_row = lambda listing, row: [c for c in listing if c[0] == row]  # noqa: E731
    for row in planned(found):  # one row at a time: a difference names its row
        assert by_row(got, row) == by_row(found["cells"], row), row
    assert got == found["cells"]  # and in the same order: the rows others read first


def test_every_row_fits_the_starts_it_fitted(frozen, tmp_path, monkeypatch):
    e, found = frozen
    cells = study.cells(e, planned(found), found["seeds"], tmp_path)
    fits = []

    def fit_file(fit):
        # the frozen fits name the fit's settings as fit_file's keywords did then
        assert fit.device == e.device
        named = {"shards": fit.shards, "rates": list(fit.rates), "trunk": fit.trunk,
                 "steps": fit.steps, "out": fit.out}
        if fit.branches is not None:  # a transplant: carried from its Anchor 2
            named.update(teacher=fit.teacher, branches=fit.branches, seed=fit.seed)
        fits.append(plain({**named, "arithmetic": fit.precision, "adapter": fit.latent_adapter,
                           "latent_resize": fit.latent_resize, "latent_crop": fit.latent_crop},
                          tmp_path))
        fit.out.parent.mkdir(parents=True, exist_ok=True)
        fit.out.write_bytes(b"")

    monkeypatch.setattr(study.latent_start, "fit_file", fit_file)
    study.fit_task_hints(e, cells, tmp_path)
    assert fits == found["fits"]


def test_every_row_reads_the_rows_it_read_and_is_refused_where_it_was(frozen, tmp_path):
    e, found = frozen
    assert {name: reads(spec) for name, spec in ROWS.items()} == found["reads"]
    for row, error in found["errors"].items():
        with pytest.raises(ValueError) as refused:
            study.cells(e, [row], 1, tmp_path)
        assert str(refused.value) == error
