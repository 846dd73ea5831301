"""The generated result blocks of README.md and docs/ (evaluation/doc_blocks.py, `make docs`):
every block in the repository is what its committed data gives, and the check catches one
that is not."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier.methods import ANCHOR2, ANCHOR2_EQUAL, COMP
from evaluation import doc_blocks, tables, verdicts
from evaluation.doc_blocks import ROOT
from foundation.sets import SetId
from research.study import summary


def copy_pages(to: Path) -> list[Path]:
    """README.md and docs/**/*.md copied under `to`, at the same relative paths."""
    copies = []
    for page in doc_blocks.pages(ROOT):
        copy = to / page.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, copy)
        copies.append(copy)
    return copies


def test_every_block_in_the_docs_is_current():
    stale = doc_blocks.check(doc_blocks.pages(ROOT))
    assert not stale, "stale blocks (run `make docs`): " + ", ".join(
        f"{path.relative_to(ROOT)}: {name}" for path, name in stale)


def test_the_pages_hold_the_blocks_the_issue_asks_for():
    names = {name for page in doc_blocks.pages(ROOT)
             for name, *_ in doc_blocks.spans(page.read_text(), page)}
    assert {"demo-answer", "readme-fresh-branches", "demo-report", "minc-report",
            "study-table"} <= names
    assert not [p for p in doc_blocks.pages(ROOT) if "<!-- numbers:" in p.read_text()]


def test_an_altered_block_is_reported_stale_and_rewritten(tmp_path):
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text()
    altered = re.sub(r"textures -?\d+\.\d", "textures -1.0", original, count=1)
    assert altered != original
    readme.write_text(altered)
    assert doc_blocks.check([readme]) == [(readme, "demo-answer")]
    assert doc_blocks.rewrite([readme]) == [(readme, "demo-answer")]
    assert readme.read_text() == original


def test_an_emptied_block_in_a_copy_of_the_docs_is_stale(tmp_path):
    pages = copy_pages(tmp_path)
    study = tmp_path / "docs" / "comp-study" / "README.md"
    text = study.read_text()
    start = text.index("<!-- begin: study-table -->")
    end = text.index("<!-- end: study-table -->")
    study.write_text(text[:start] + "<!-- begin: study-table -->\n" + text[end:])
    assert doc_blocks.check(pages) == [(study, "study-table")]


def test_an_unknown_block_name_fails_naming_the_file(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n<!-- begin: no-such-block -->\nold\n<!-- end: no-such-block -->\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(page))}.*no-such-block"):
        doc_blocks.check([page])


def test_a_block_without_its_end_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- begin: demo-answer -->\nold\n<!-- begin: demo-report -->\n"
                    "<!-- end: demo-report -->\n")
    with pytest.raises(ValueError, match="demo-answer.*no `<!-- end: demo-answer -->`"):
        doc_blocks.check([page])


def test_the_rewrite_is_idempotent(tmp_path):
    pages = copy_pages(tmp_path)
    for page in pages:  # every block emptied, then generated twice
        page.write_text(re.sub(r"(<!-- begin: (\S+) -->\n).*?(\s*<!-- end: \2 -->)", r"\1\3",
                               page.read_text(), flags=re.S))
    doc_blocks.rewrite(pages)
    first = {page: page.read_text() for page in pages}
    assert doc_blocks.rewrite(pages) == []
    assert {page: page.read_text() for page in pages} == first
    assert first[tmp_path / "README.md"] == (ROOT / "README.md").read_text()


def test_an_indented_block_keeps_its_indent_and_the_page_width(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("- a bullet that ends in numbers:\n  <!-- begin: readme-fresh-branches -->\n"
                    "  <!-- end: readme-fresh-branches -->\n")
    doc_blocks.rewrite([page])
    body = page.read_text().split("\n")[2:-2]
    assert body and all(line.startswith("  ") and len(line) <= doc_blocks.WIDTH
                        for line in body)


def test_the_study_figures_are_pipeline_study_summarys():
    """The study's cells and BDs as `python -m research.study` prints them (its summary), for
    every source, row and test set."""
    s = doc_blocks.study(ROOT)
    checked = 0
    for name, runs in s.runs.items():
        runs = runs.assign(wall_s=runs.get("wall_s", np.nan))
        for metric in ("top1", "val_top1", "extra_top1"):
            if metric not in runs or runs[metric].isna().all():
                continue
            lines = summary(runs, metric).split("\n")
            sets = lines[0].split(" | ")[1:-3]
            for line in lines[2:]:
                row, *cells, bd, _, _ = [c.strip() for c in line.strip("|").split(" | ")]
                result = doc_blocks.row_result(runs, row, metric)
                for set_name, cell in zip(sets, cells, strict=True):
                    if SetId.parse(set_name).learned and cell:
                        mean, low, high, count = result.cells[set_name]
                        assert cell == (f"{100 * mean:.1f} ({count} seed{'s' if count > 1 else ''})"
                                        if count < result.seeds else
                                        f"{100 * mean:.1f} (seeds {100 * low:.1f}-{100 * high:.1f})"
                                        if count > 1 else f"{100 * mean:.1f}")
                        checked += 1
                value, low, high = result.bd or (None, None, None)
                spread = f"seeds {100 * low:+.1f} to {100 * high:+.1f}" if value is not None else ""
                assert bd == ("" if value is None else f"{100 * value:+.1f} ({spread})"), \
                    (name, row, metric)
    assert checked > 300


def test_a_seed_range_is_written_as_a_range_never_in_brackets():
    table = doc_blocks.study_table(ROOT)
    assert "seeds 77.8-78.3" in table  # the demo study's Anchor 2 at q1
    assert "seeds -16.9 to -12.0" in table  # the baseline's BD
    assert not re.search(r"\[[-+]?\d", table)


def write_report(root: Path, folder: str, bd: pd.DataFrame) -> None:
    """A copy of a committed report's data under `root`, with its BD-accuracy replaced."""
    source, target = ROOT / "docs" / folder, root / "docs" / folder
    target.mkdir(parents=True)
    for name in ("table2.csv", "efficiency.csv", "experiment.toml"):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    bd.to_csv(target / "bd_accuracy.csv", index=False)


def reference_rows(folder: str, equal: bool) -> pd.DataFrame:
    """A report's BD-accuracy with (equal) or without a Comp. row against the equal-budget
    Anchor 2: the report's own where it has one, else made 2 points further behind than
    against the plain Anchor 2."""
    bd = pd.read_csv(ROOT / "docs" / folder / "bd_accuracy.csv")
    has = (bd["curve"] == ANCHOR2_EQUAL) | (bd["reference"] == ANCHOR2_EQUAL)
    if not equal:
        return bd[~has]
    if has.any():
        return bd
    row = bd[(bd["curve"] == COMP) & (bd["reference"] == ANCHOR2)].copy()
    row["reference"] = ANCHOR2_EQUAL
    row[["bd_top1", "bd_top1_low", "bd_top1_high"]] -= 0.02
    return pd.concat([row, bd], ignore_index=True)


def gap(bd: pd.DataFrame, reference: str) -> str:
    row = bd[(bd["curve"] == COMP) & (bd["reference"] == reference)].iloc[0]
    return verdicts.bd_gap(row).text()


def test_the_answer_is_given_against_the_equal_budget_anchor2_where_a_report_has_one(tmp_path):
    folders = ("demo-report", "minc-subset-report", f"minc-subset-report/{tables.EXTRA}")
    answers, demo = {}, {}
    for equal in (False, True):
        root = tmp_path / str(equal)
        for folder in folders:
            write_report(root, folder, reference_rows(folder, equal))
        answers[equal] = doc_blocks.demo_answer(root)
        demo[equal] = reference_rows("demo-report", equal)
    plain = gap(demo[False], ANCHOR2)
    assert f"textures {plain} against the Anchor 2 it starts from (no Anchor 2 of equal budget" \
        in answers[False] and "trained as long" not in answers[False]
    assert (f"textures {gap(demo[True], ANCHOR2_EQUAL)} against an Anchor 2 trained as long"
            in answers[True])
    assert f"{plain} against the one it starts from" in answers[True]
    summary_text = doc_blocks.report_summary(tmp_path / "True", Path("docs/demo-report"),
                                             "Test split")
    assert f"against {ANCHOR2_EQUAL} {gap(demo[True], ANCHOR2_EQUAL)}" in summary_text
    assert f"against {ANCHOR2} {plain}" in summary_text
