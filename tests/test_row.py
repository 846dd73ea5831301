"""A study row as a file (research/rows/): what it holds, what it reads, the errors a wrong file
gets. That every row plans the runs it planned as a Python constant: test_study_rows.py."""

from __future__ import annotations

import pytest

from pipeline import experiment
from research import row


def test_a_row_reads_the_runs_whose_checkpoints_it_names_not_the_starts_beside_them():
    assert row.reads(row.ROWS["trunk-anchor3"]) == ["anchor3"]
    # its start lies in transplant-res/, a fit beside that row's runs: only its teacher is read
    assert row.reads(row.ROWS["transplant-res-lr-0.001"]) == ["anchor2"]
    assert row.reads(row.ROWS["latent-hint-task"]) == []
    assert row.READ_BY_OTHERS == {"anchor2", "anchor3"}


def test_a_row_file_holds_what_it_changes_from_its_base():
    """Each row's own keys (beyond its description) change what its base gives, so a row's file
    reads as the difference that its name stands for."""
    for name in row.ROWS:
        *below, (path, table) = experiment.chain(row.ROWS_FOLDER / f"{name}.toml")
        own = {k: v for k, v in table.items() if k != experiment.DESCRIPTION}
        assert own or name in ("anchor2", "anchor3"), f"{name} changes nothing"
        if not below:  # a change of the study's experiment itself
            continue
        base = row.ROWS[below[-1][0].stem]
        given = base.changes | {row.TRAINER_TABLE: base.trainer, row.ROW_TABLE: {
            "trains": base.trains, "transplant_seed": base.transplant_seed}}
        for key, value in own.items():
            if isinstance(value, dict):
                same = {k for k, v in value.items() if given[key].get(k) == v}
            else:
                same = {key} if key in given and given[key] == experiment.values(
                    {key: value}, path)[key] else set()
            assert not same, f"{name} sets {same} as its base {base.name} has them"


@pytest.mark.parametrize("text, message", [
    ('latent_lr = 0.001\n', r"a row says what it changes: description = "),
    ('description = "x"\n[trainer]\nlatent_sigmaa = "log"\n',
     r"\[trainer\] latent_sigmaa: the keys are batch_size, codec,"),
    ('description = "x"\n[row]\ntrains = 2\n', r"\[row\] trains = 2: give a str"),
    ('description = "x"\n[row]\ntrains = "Anchor 4"\n', r"trains = 'Anchor 4': give one of Anch"),
    ('description = "x"\nlatent_sigma = "log"\n', r"unknown key 'latent_sigma'"),
    ('description = "x"\n[trainer]\ninit = { row = "anchor2", sed = 0 }\n',
     r"\[trainer.init\] sed: the keys are row, seed, set"),
    ('description = "x"\n[trainer]\ninit = { seed = 0 }\n',
     r"\[trainer.init\] names a trained run by its row: row = \"anchor2\""),
    ('description = "x"\n[trainer]\ninit = { row = "anchor2", seed = "0" }\n',
     r"\[trainer.init\] seed = '0': give a int"),
])
def test_a_wrong_row_file_is_one_line_naming_the_file_and_the_key(tmp_path, monkeypatch, text,
                                                                  message):
    monkeypatch.setattr(row, "ROWS_FOLDER", tmp_path)
    (tmp_path / "wrong.toml").write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        row.read_row("wrong")
    assert "\n" not in str(caught.value) and "wrong.toml" in str(caught.value)
