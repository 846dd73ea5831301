"""The result numbers of README.md and docs/, generated from committed data.

A page holds its numbers in named blocks:

    <!-- begin: demo-answer -->
    (generated markdown)
    <!-- end: demo-answer -->

Each name is a key of BLOCKS: a function of the repository's root that reads committed files
only, the reports' CSVs (docs/demo-report, docs/minc-subset-report) and the study's runs
(docs/comp-study: the CSVs that docs/comp-study/sources.toml names, with what the runs do not
say: the data set, the machine and precision, each row in a few words). The numbers are the
project's own: the reports' BD-accuracy and verdicts (evaluation.bd, evaluation.verdicts),
their Table 2 (evaluation.tables), and the study's BD as `python -m research.study` computes it
(research.study.summary; tests/test_doc_blocks.py checks that the two agree).

    python -m evaluation.doc_blocks            # rewrite every block (make docs)
    python -m evaluation.doc_blocks --check    # exit 1 naming each stale block, by file and name

Brackets are a 95% interval on every page; a range over seeds is written `seeds a-b`.
"""

from __future__ import annotations

import argparse
import functools
import re
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from classifier.domains import DECODED, LATENT
from classifier.methods import ANCHOR2, ANCHOR2_EQUAL, ANCHOR3, COMP
from evaluation import tables, verdicts
from evaluation.classifiers import curve_name
from evaluation.seeds import STUDY_REFERENCE as REFERENCE
from evaluation.seeds import row_result, seeds_range
from foundation.cli import stage_main
from foundation.sets import LEARNED, SetId

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path("docs/demo-report")
MINC = Path("docs/minc-subset-report")
STUDY = Path("docs/comp-study")
SOURCES = STUDY / "sources.toml"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)<!-- begin: (?P<name>\S+) -->[ \t]*$")
END = "<!-- end: {} -->"
WIDTH = 100


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def points(x: float) -> str:
    return f"{100 * x:+.1f}"


# ---------------------------------------------------------------- the reports

@dataclass(frozen=True)
class Report:
    """One committed report's results on one test set (the report's folder, or its extra-test)."""

    table: pd.DataFrame  # table2.csv: a row per cell over its seeds
    bd: pd.DataFrame  # bd_accuracy.csv
    efficiency: pd.DataFrame  # efficiency.csv (the report's folder)
    experiment: dict  # experiment.toml (the report's folder)


@functools.cache
def report(root: Path, folder: Path) -> Report:
    top = folder.parent if folder.name == tables.EXTRA else folder
    return Report(pd.read_csv(root / folder / f"{tables.TABLE}.csv"),
                  pd.read_csv(root / folder / f"{tables.BD_RESULTS}.csv"),
                  pd.read_csv(root / top / "efficiency.csv"),
                  tomllib.loads((root / top / "experiment.toml").read_text()))


def comp_bd(r: Report) -> list[tuple[str, verdicts.Gap]]:
    """Comp.'s BD-accuracy against its reference: the equal-budget Anchor 2 where the report has
    one, then the plain Anchor 2."""
    rows = r.bd[r.bd["curve"] == COMP]
    return [(ref, verdicts.bd_gap(rows[rows["reference"] == ref].iloc[0]))
            for ref in (ANCHOR2_EQUAL, ANCHOR2) if ref in set(rows["reference"])]


def verdict(g: verdicts.Gap) -> str:
    """Finding 3's word for a BD (evaluation.verdicts)."""
    return verdicts.comp_against_pixels(g)


def against(found: list[tuple[str, verdicts.Gap]], starts: bool) -> str:
    """Comp.'s BD against its reference with the verdict: the equal-budget Anchor 2 with the
    plain one beside it, or the plain one alone (`starts`: Comp. started from it)."""
    (reference, g), *rest = found
    if reference == ANCHOR2_EQUAL:
        plain = f", {rest[0][1].text()} against the one it starts from" if rest else ""
        return f"{g.text()} against an Anchor 2 trained as long (*{verdict(g)}*){plain}"
    of = " it starts from (no Anchor 2 of equal budget there yet)" if starts else ""
    return f"{g.text()} against the Anchor 2{of} (*{verdict(g)}*)"


def gflops_ratio(r: Report) -> float:
    """How many times the pixel path's GFLOPs per image the compressed-domain path's are."""
    cost = r.efficiency.groupby("path")["gflops_per_image"].mean()
    return cost["pixel domain"] / cost["compressed domain"]


def starts_from_anchor2(r: Report) -> bool:
    return bool(r.experiment.get("transplant_steps") or r.experiment.get("distill"))


def images(r: Report) -> int:
    return int(r.table["samples"].iloc[0])


def demo_answer(root: Path) -> str:
    """README's one-paragraph answer: how far Comp. is from Anchor 2, on the demo and on the
    extra photographs, what its path saves, and where it starts."""
    demo, extra = report(root, DEMO), report(root, MINC / tables.EXTRA)
    start = (" Comp. starts from a trained Anchor 2, carried to the latent without labels."
             if starts_from_anchor2(demo) and starts_from_anchor2(extra) else "")
    return (
        "**Does the compressed domain work, and how far behind is it?** BD-accuracy over the "
        "whole rate curve (Comp. minus Anchor 2, in points, with its 95% interval): on the "
        f"demo's {images(demo)} test textures {against(comp_bd(demo), starts_from_anchor2(demo))}"
        f"; on {images(extra):,} real MINC-2500 photographs held out from training "
        f"{against(comp_bd(extra), starts_from_anchor2(extra))}. The paper: 4.5 to 6.9 behind "
        "(*holds*: the whole interval within 7). Its path costs "
        f"{gflops_ratio(demo):.1f}x (demo) and {gflops_ratio(report(root, MINC)):.1f}x "
        "(photographs) fewer GFLOPs an image than decoding and ResNet-50." + start)


def report_summary(root: Path, folder: Path, where: str) -> str:
    """A report's Table 2 of the learned codec (tables.codec_table) under Anchor 3's cell, then
    Comp.'s BD-accuracy against its references with finding 3's verdict, and Anchor 2's against
    JPEG's."""
    r = report(root, folder)
    head = f"**{where}, {images(r):,} images.**"
    anchor3 = r.table[r.table["method"] == ANCHOR3]
    if len(anchor3):
        a = anchor3.iloc[0]
        spread = f" {seeds_range(a.top1_min, a.top1_max)}" if int(a.get("seeds", 1)) > 1 else ""
        head += (f" Anchor 3 on the originals: {pct(a.top1)} [{pct(a.top1_low)}, "
                 f"{pct(a.top1_high)}]{spread}.")
    bds = "; ".join(f"against {ref} {g.text()}: *{verdict(g)}*" for ref, g in comp_bd(r))
    jpeg = r.bd[(r.bd["curve"] == ANCHOR2) & (r.bd["reference"] == curve_name(ANCHOR2, "jpeg"))]
    pixels = (f" Anchor 2 against Anchor 2 on JPEG at equal rate: "
              f"{verdicts.bd_gap(jpeg.iloc[0]).text()}." if len(jpeg) else "")
    return (f"{head}\n\n{tables.codec_table(r.table, LEARNED)}\n\n"
            f"BD-accuracy of Comp. (finding 3's verdict): {bds}.{pixels}")


def gflops_line(r: Report) -> str:
    return (f"Per image, Comp.'s path from the bitstream costs {gflops_ratio(r):.1f}x fewer "
            "GFLOPs than decoding and running ResNet-50.")


def demo_report(root: Path) -> str:
    """docs/results.md's summary of docs/demo-report."""
    return f"{report_summary(root, DEMO, 'Test split')}\n\n{gflops_line(report(root, DEMO))}"


def minc_report(root: Path) -> str:
    """docs/results.md's summary of docs/minc-subset-report: its test split, its extra set."""
    return (f"{report_summary(root, MINC, 'Test split')}\n\n"
            f"{report_summary(root, MINC / tables.EXTRA, 'The extra photographs')}\n\n"
            f"{gflops_line(report(root, MINC))}")


def adopted_minc_test(root: Path) -> str:
    """docs/comp-study/selection.md: the photographs' report, read after the choice, for the
    adopted recipe: Comp.'s BD on the test split and on the extra photographs."""
    test, extra = report(root, MINC), report(root, MINC / tables.EXTRA)
    return (f"Read after the choice (docs/minc-subset-report): Comp. on the {images(test)} test "
            f"images {against(comp_bd(test), starts_from_anchor2(test))}; on the "
            f"{images(extra):,} extra photographs "
            f"{against(comp_bd(extra), starts_from_anchor2(extra))}.")


# ---------------------------------------------------------------- the study

@dataclass(frozen=True)
class Source:
    """One reference Anchor 2 and the rows measured against it (docs/comp-study/sources.toml)."""

    files: tuple[str, ...]
    dataset: str
    machine: str
    precision: str
    anchor2_from: str = ""
    bpp_from: str = ""
    pipeline_row: str = ""
    weights: dict = field(default_factory=dict)
    machines: dict = field(default_factory=dict)
    rename: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.files[0]

    def machine_of(self, row: str) -> str:
        return f"{self.machines.get(row, self.machine)}, {self.precision}"


@dataclass(frozen=True)
class Study:
    sources: dict[str, Source]
    runs: dict[str, pd.DataFrame]  # per source: a row per run and set (research.study's columns)
    what: dict[str, str]  # what each row changes
    adopted: dict[str, list[str]]  # per experiment file, the (source, row) it adopted


def _bpp(frame: pd.DataFrame) -> dict[str, float]:
    return frame.groupby("set")["bpp"].first().to_dict()


def _rows(frame: pd.DataFrame, source: Source, bpp: dict[str, float]) -> pd.DataFrame:
    """One file as research.study's rows: a study.csv as it is; a pipeline's per-seed CSV its
    decoded q<Q> runs as anchor2 and its latent runs as source.pipeline_row; research.starts'
    Top-1 (in %) each of source.weights as its row, the validation split as val_top1."""
    if "domain" in frame:
        rows = {DECODED.name: REFERENCE, LATENT.name: source.pipeline_row}
        frame = frame[frame["domain"].isin(rows) & frame["set"].map(
            lambda s: SetId.parse(s).learned)]
        return frame.assign(row=frame["domain"].map(rows), bpp=frame["set"].map(bpp))
    if "weights" in frame:
        frame = frame[frame["weights"].isin(source.weights)].assign(
            row=lambda f: f["weights"].map(source.weights),
            set=lambda f: f["q"].map(lambda q: SetId.of(int(q)).name),
            top1=lambda f: f["top1"] / 100)
        frame = frame.pivot_table(index=["row", "set", "seed"], columns="split",
                                  values="top1").reset_index()
        return frame.rename(columns={"test": "top1", "validate": "val_top1"}).assign(
            bpp=lambda f: f["set"].map(bpp))
    return frame


@functools.cache
def study(root: Path) -> Study:
    """Every source of sources.toml with its runs, each file as research.study's rows."""
    spec = tomllib.loads((root / SOURCES).read_text())
    folder = root / STUDY
    sources, runs = {}, {}
    for entry in spec["source"]:
        source = Source(**{**entry, "files": tuple(entry["files"])})
        files = {f: pd.read_csv(folder / f) for f in source.files}
        bpp = _bpp(pd.read_csv(folder / source.bpp_from) if source.bpp_from else
                   pd.concat(f for f in files.values() if "row" in f))
        frames = [_rows(frame, source, bpp).assign(file=f) for f, frame in files.items()]
        if source.anchor2_from:
            frame = pd.read_csv(folder / source.anchor2_from)
            frames.append(frame[frame["row"] == REFERENCE].assign(file=source.anchor2_from))
        frame = pd.concat(frames, ignore_index=True).drop_duplicates(["row", "set", "seed"])
        frame["row"] = frame["row"].replace(source.rename)
        # research.starts' Top-1 has no image count: its starts are scored on the same split
        frame["samples"] = frame["samples"].fillna(frame["samples"].dropna().iloc[0])
        sources[source.name], runs[source.name] = source, frame
    return Study(sources, runs, spec["rows"], spec.get("adopted", {}))


def cell_parts(cell: tuple[float, float, float, int], seeds: int) -> tuple[str, str]:
    """A cell as its mean and the seeds' range (or how many seeds, where fewer than the row's)."""
    mean, low, high, count = cell
    if count < seeds:
        return pct(mean), f"{count} seed{'s' if count > 1 else ''}"
    return pct(mean), "" if count == 1 else seeds_range(low, high)


def bd_parts(bd: tuple[float, float, float] | None) -> tuple[str, str]:
    if bd is None:
        return "", ""
    value, low, high = bd
    return points(value), seeds_range(low, high, signed=True)


def in_cell(parts: tuple[str, str]) -> str:
    """A table cell: the value over a small range."""
    value, spread = parts
    return f"{value}<br><sub>{spread}</sub>" if spread else value


def in_text(parts: tuple[str, str]) -> str:
    value, spread = parts
    return f"{value} ({spread})" if spread else value


def scored_on(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The test sets a source's runs were scored on: (metric, its images' column, its word)."""
    found = [("top1", "samples", "test")]
    if "extra_top1" in runs and runs["extra_top1"].notna().any():
        found.append(("extra_top1", "extra_samples", "extra"))
    return found


def shown_rows(s: Study, name: str) -> list[str]:
    """A source's rows in the table, in the order of sources.toml's [rows] (Anchor 2 first, but
    not where it is another source's); rows scored on no learned set (Anchor 3) are left out."""
    runs = s.runs[name]
    rows = [r for r in runs["row"].unique()
            if any(SetId.parse(x).learned for x in runs.loc[runs["row"] == r, "set"])
            and not (r == REFERENCE and s.sources[name].anchor2_from)]
    order = list(s.what)
    return sorted(rows, key=lambda r: order.index(r) if r in order else len(order))


def _checked(s: Study, name: str, row: str) -> pd.DataFrame:
    if name not in s.sources:
        raise ValueError(f"{SOURCES}: no source {name!r} (the sources: {', '.join(s.sources)})")
    runs = s.runs[name]
    if row not in set(runs["row"]):
        raise ValueError(f"{SOURCES}: {name} has no row {row!r}")
    if row not in s.what:
        raise ValueError(f"{SOURCES}: row {row!r} of {name} has no entry in [rows]")
    return runs


def study_table(root: Path, picks: tuple[tuple[str, str], ...] = (), link: str = "") -> str:
    """The study's rows as one table: per source (sources.toml) and test set, each row's mean
    Top-1 at each quality with the seeds' range, its BD against the source's Anchor 2 with the
    per-seed BDs' range and, on the test split's lines, its validation BD. picks: (source, row)
    to show (default: every row of every source), grouped by source in the order given; link:
    the path from the page to docs/comp-study/."""
    s = study(root)
    picks = picks or tuple((name, row) for name in s.sources for row in shown_rows(s, name))
    sets = sorted({q for runs in s.runs.values() for q in runs["set"]
                   if SetId.parse(q).learned}, key=SetId.parse)
    lines = ["| row | what it changes | runs | test images | machine | " + " | ".join(sets)
             + " | BD vs Anchor 2 | validation BD |", "|---" * (len(sets) + 7) + "|"]
    for name in dict.fromkeys(name for name, _ in picks):
        runs, source = s.runs[name], s.sources[name]
        rows = [row for n, row in picks if n == name]
        for metric, count, word in scored_on(runs):
            for row in rows:
                found = _checked(s, name, row)
                found = found[found["row"] == row]
                result = row_result(runs, row, metric)
                cells = [in_cell(cell_parts(result.cells[q], result.seeds))
                         if q in result.cells else "" for q in sets]
                validation = (in_cell(bd_parts(row_result(runs, row, "val_top1").bd))
                              if metric == "top1" else "")
                file = found["file"].iloc[0]
                lines.append(
                    f"| {row} | {s.what[row]} | [{file}]({link}{file}) | {source.dataset}, "
                    f"{int(found[count].dropna().iloc[0]):,} {word} | {source.machine_of(row)} | "
                    + " | ".join(cells) + f" | {in_cell(bd_parts(result.bd))} | {validation} |")
    return "\n".join(lines)


METRICS = {"": ("top1", ""), "val": ("val_top1", " on validation"),
           "extra": ("extra_top1", " on the extra photographs")}


def _bd(s: Study, name: str, row: str, on: str) -> tuple[float, float, float]:
    metric, where = METRICS[on]
    bd = row_result(_checked(s, name, row), row, metric).bd
    if bd is None:
        raise ValueError(f"{SOURCES}: {name} has no BD of {row!r}{where}")
    return bd


def bd_of(s: Study, name: str, row: str, on: str = "") -> str:
    """A row's BD against Anchor 2 with the seeds' range (on: "", "val" or "extra")."""
    return in_text(bd_parts(_bd(s, name, row, on)))


FIGURES = {"": "BD", "val": "validation BD", "extra": "extra BD"}


def figure(s: Study, name: str, item: str) -> tuple[str, str]:
    """One figure of a source, as (its row, the figure's mean): `row` (its BD against Anchor
    2) or `row:q1` (a cell), either with `@val` or `@extra` (validation, the extra photographs;
    default the test split)."""
    spec, _, on = item.partition("@")
    row, _, set_name = spec.rpartition(":")
    if not row or not set_name.startswith("q"):
        row, set_name = spec, ""
    if not set_name:
        return row, f"{FIGURES[on]} {points(_bd(s, name, row, on)[0])}"
    metric, where = METRICS[on]
    cells = row_result(_checked(s, name, row), row, metric).cells
    if set_name not in cells:
        raise ValueError(f"{SOURCES}: {name} has no {set_name} of {row!r}{where}")
    return row, f"{set_name}{where} {pct(cells[set_name][0])}"


def quote(*groups: tuple[str, ...]) -> Callable[[Path], str]:
    """A block of figures, each group a source and its items (see figure), a row's figures
    together: the means a page's sentence is about (their seeds' ranges: the study's table)."""
    def block(root: Path) -> str:
        s, texts = study(root), []
        for name, *items in groups:
            rows: dict[str, list[str]] = {}
            for row, text in (figure(s, name, i) for i in items):
                rows.setdefault(row, []).append(text)
            texts.append(f"`{name}`: " + "; ".join(f"{row} {', '.join(found)}"
                                                  for row, found in rows.items()) + ".")
        return " ".join(texts)
    return block


def adopted(s: Study, preset: str) -> tuple[str, str]:
    """The study's (source, row) that an experiment file adopted (sources.toml's [adopted])."""
    if preset not in s.adopted:
        raise ValueError(f"{SOURCES}: [adopted] has no {preset!r}")
    name, row = s.adopted[preset]
    return name, row


def fresh_branches(root: Path) -> str:
    """README's difference from the paper: fresh latent branches against the adopted starts."""
    s = study(root)
    (demo, demo_row), (minc, minc_row) = adopted(s, "demo"), adopted(s, "minc-subset")
    return (
        f"fresh branches (the study's `baseline`) put Comp.'s BD against Anchor 2 at "
        f"{bd_of(s, 'study.csv', 'baseline')} on the demo, where the demo's recipe "
        f"(`{demo_row}`) is at {bd_of(s, demo, demo_row)}; on the photographs' validation split "
        f"at {bd_of(s, minc, 'baseline', 'val')}, where their recipe (`{minc_row}`) is at "
        f"{bd_of(s, minc, minc_row, 'val')}.")


def adopted_rows(root: Path) -> str:
    """docs/results.md's part of the study's table: each preset's row beside its source's
    Anchor 2 and, where that source ran it, the baseline."""
    s = study(root)
    picks = []
    for preset in ("demo", "minc-subset"):
        name, row = adopted(s, preset)
        rows = (REFERENCE, "baseline", row) if "baseline" in set(s.runs[name]["row"]) else (
            REFERENCE, row)
        picks += [(name, r) for r in rows]
    return study_table(root, tuple(picks), link="comp-study/")


# ---------------------------------------------------------------- the blocks and the pages

FIRST_FIT, XEON, ZEN4 = "latent-hint-task-first-fit.csv", "xeon/study.csv", "zen4/study.csv"
XEON_FP32, MINC_ZEN4 = "xeon-fp32/study.csv", "minc-2500-zen4/study.csv"
START_BN = "transplant-res start, BatchNorm re-estimated"
BLOCKS: dict[str, Callable[[Path], str]] = {
    # README.md
    "demo-answer": demo_answer,
    "readme-fresh-branches": fresh_branches,
    # docs/results.md
    "demo-report": demo_report,
    "minc-report": minc_report,
    "selection-minc-test": adopted_minc_test,
    "study-adopted": adopted_rows,
    # docs/comp-study/README.md: the table, and the figures each finding quotes
    "study-table": study_table,
    "study-front-end": quote(("study.csv", "anchor2:q1", "anchor2-fresh-stem:q1", "baseline",
                              "trunk-none", "trunk-anchor3", "trunk-anchor2")),
    "study-hint": quote(("study.csv", "baseline", "baseline@val", "baseline:q8", "latent-hint",
                         "latent-hint@val", "latent-hint:q8", "latent-hint-task",
                         "latent-hint-task@val", "latent-hint-task-300", "latent-hint-task-3000"),
                        (FIRST_FIT, "latent-hint-task")),
    "study-depth": quote((ZEN4, "latent-hint-task", "latent-hint-task-res",
                          "transplant-anchor2-seed", "transplant-anchor2-seed@val",
                          "transplant-res", "transplant-res@val"),
                         (XEON, "pipeline: latent-hint-task", "transplant-anchor2")),
    "study-rate": quote((ZEN4, "transplant-res", "transplant-res@val", "transplant-res-lr-0.001",
                         "transplant-res-lr-0.001@val"),
                        (XEON_FP32, "transplant-res", "transplant-res@val",
                         "transplant-res-lr-0.001", "transplant-res-lr-0.001@val",
                         "pipeline: transplant-res-lr-0.001", "transplant-res start",
                         "transplant-res start@val", START_BN, f"{START_BN}@val")),
    "study-soft-targets": quote((ZEN4, "transplant-anchor2-seed", "transplant-kd"),
                                (XEON_FP32, "transplant-res", "transplant-res-kd"),
                                (MINC_ZEN4, "transplant-res@extra", "transplant-res-kd@extra",
                                 "transplant-res-up@extra", "transplant-res-up-kd@extra")),
    "study-photographs": quote(("minc-2500/study.csv", "baseline", "baseline@extra"),
                               (MINC_ZEN4, "baseline", "baseline@extra", "transplant-res",
                                "transplant-res@extra")),
    "study-adopted-minc": quote((MINC_ZEN4, "baseline@val", "transplant-res@val",
                                 "transplant-res-lr-0.001@val", "transplant-res-kd@val",
                                 "transplant-res-up@val", "transplant-res-up-kd@val")),
}


def pages(root: Path) -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def spans(text: str, path: Path) -> list[tuple[str, str, int, int]]:
    """Each block of a page: its name, its indent, and the lines of its content (start, end:
    the line after its begin marker, the line of its end marker)."""
    lines, found, i = text.split("\n"), [], 0
    while i < len(lines):
        begin = BEGIN.match(lines[i])
        if begin:
            name, indent = begin["name"], begin["indent"]
            if name not in BLOCKS:
                raise ValueError(f"{path}: no block named {name!r} (line {i + 1}); the blocks: "
                                 + ", ".join(sorted(BLOCKS)))
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip() == END.format(name) or BEGIN.match(lines[j])), None)
            if end is None or BEGIN.match(lines[end]):
                raise ValueError(f"{path}: block {name!r} (line {i + 1}) has no "
                                 f"`{END.format(name)}` before the next block or the end")
            found.append((name, indent, i + 1, end))
            i = end
        i += 1
    return found


@functools.cache
def generate(name: str, root: Path) -> str:
    """A block's markdown, once a run (the committed data does not change under it)."""
    return BLOCKS[name](root)


def generated(name: str, indent: str, root: Path) -> list[str]:
    """A block's lines as the page holds them: its paragraphs wrapped to the page's width (a
    table row, a line starting with `|`, as it is), each line indented as its begin marker."""
    lines = []
    for line in generate(name, root).split("\n"):
        wrapped = ([line] if line.startswith("|") or not line else
                   textwrap.wrap(line, WIDTH - len(indent), break_on_hyphens=False))
        lines += [f"{indent}{w}" if w else w for w in wrapped]
    return lines


def render(text: str, path: Path, root: Path = ROOT) -> tuple[str, list[str]]:
    """The page with every block generated again, and the names of the blocks that changed."""
    lines, stale = text.split("\n"), []
    for name, indent, start, end in reversed(spans(text, path)):
        fresh = generated(name, indent, root)
        if lines[start:end] != fresh:
            stale.append(name)
            lines[start:end] = fresh
    return "\n".join(lines), stale[::-1]


def check(paths: list[Path], root: Path = ROOT) -> list[tuple[Path, str]]:
    """(page, block) of every block that differs from what its data gives."""
    return [(path, name) for path in paths
            for name in render(path.read_text(), path, root)[1]]


def rewrite(paths: list[Path], root: Path = ROOT) -> list[tuple[Path, str]]:
    """Every block generated again in place; (page, block) of those that changed."""
    changed = []
    for path in paths:
        text, stale = render(path.read_text(), path, root)
        if stale:
            path.write_text(text)
            changed += [(path, name) for name in stale]
    return changed


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.doc_blocks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if a block differs from what its data gives")
    args = p.parse_args(argv)
    found = (check if args.check else rewrite)(pages(ROOT))
    for path, name in found:
        print(f"{path.relative_to(ROOT)}: block {name} "
              + ("is stale (make docs rewrites it)" if args.check else "rewritten"))
    if not found:
        print("every block is current" if args.check else "no block changed")
    return 1 if args.check and found else 0


if __name__ == "__main__":
    raise SystemExit(main())
