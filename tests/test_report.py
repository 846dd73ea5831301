"""The report's text from a results table: Table 2's layout (with the classical anchors), the
paper's pattern checked with the intervals, BD-accuracy, and the mean and spread over MINC-2500's
splits."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from classifier.methods import ANCHOR2, ANCHOR3, COMP
from evaluation.metrics import wilson_interval
from evaluation.tables import bd_markdown, pattern, table2
from evaluation.tracking import metric_name
from evaluation.verdicts import MIN_DROP, PAPER_GAP
from foundation.sets import SetId
from pipeline.run import summarize_splits

N = 5750  # test images of MINC-2500 (23 x 250)


def row(method: str, quality: int | None, top1: float, top5: float = 0.95, bpp: float = 0.5,
        codec: str = "learned", n: int = N):
    hits = round(top1 * n)
    low, high = wilson_interval(hits, n)
    prefix, label = ("q", "") if codec == "learned" else (codec, f" ({codec.upper()})")
    return {"method": method, "quality": quality,
            "set": f"{prefix}{quality}" if quality else "original",
            "codec": codec if quality else None, "curve": method + (label if quality else ""),
            "top1": hits / n, "top1_low": low, "top1_high": high, "top5": top5, "samples": n,
            "bpp": bpp, "psnr": 30.0, "ms_ssim": 0.95, "ssim": 0.9}


def results(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["quality"] = frame["quality"].astype("Int64")
    return frame


def nested_hits(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell, its first round(top1 * samples) test images right: a less accurate cell's
    right images lie inside a more accurate one's, the closest two classifiers can agree (the
    narrowest paired interval: a verdict that passes a gap here passes it everywhere)."""
    return pd.concat([pd.DataFrame({"curve": r.curve, "set": r.set, "seed": 0,
                                    "key": [f"k{i:05d}" for i in range(int(r.samples))],
                                    "top1": np.arange(int(r.samples)) < round(r.top1 * r.samples)})
                      for r in frame.itertuples()], ignore_index=True)


def checked(frame: pd.DataFrame, inits=None, bd=None) -> str:
    """The report's pattern section for these cells, each with nested_hits."""
    return pattern(frame, nested_hits(frame), inits or {"procedural": {ANCHOR2}}, bd)


def paper_like() -> pd.DataFrame:
    """The paper's Table 2 (Anchor 2 at q8 stands in for its q4)."""
    return results([row("Anchor 3", None, .815), row("Anchor 1", 1, .603),
                    row("Anchor 1", 8, .810), row("Anchor 2", 1, .771), row("Anchor 2", 8, .799),
                    row("Comp.", 1, .726), row("Comp.", 8, .766)])


def test_table2_has_a_row_per_method_and_a_column_per_quality():
    text = table2(paper_like(), "minc-2500", 23, 23)
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == "| | q1 | q8 |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "rate and quality", "Anchor 1", "Anchor 2", "Comp."]
    assert "60.3 (95.0)" in lines[3]  # Anchor 1 at q1
    assert "Top-1 81.5" in text and "5750 images" in text  # Anchor 3 as the reference


def test_chance_counts_the_classes_present_and_top5_is_flagged_when_uninformative():
    full = table2(paper_like(), "minc-2500", 23, 23)
    assert "Chance: Top-1 4.3%, Top-5 21.7% for 23 classes." in full
    assert "uninformative" not in full
    subset = table2(paper_like(), "minc-2500-subset", 4, 23)
    assert "Top-1 25.0%, Top-5 100.0% for 4 classes (the classes present" in subset
    assert "of a 23-class label space" in subset and "**Top-5 is uninformative here**" in subset
    assert "Top-1 16.7%, Top-5 83.3% for 6 classes." in table2(paper_like(), "demo", 6, 6)


def test_a_missing_cell_says_not_trained():
    frame = results([row("Anchor 1", 1, .6), row("Anchor 1", 8, .8), row("Comp.", 8, .76)])
    lines = table2(frame, "x", 23, 23).splitlines()
    comp = next(line for line in lines if line.startswith("| Comp."))
    assert comp.startswith("| Comp. | not trained |")


def test_the_papers_pattern_holds_where_the_numbers_say_so():
    text = checked(paper_like())
    findings = "\n".join(line for line in text.splitlines() if line[:3] in ("1. ", "2. ", "3. "))
    assert findings.count("holds here") == 4  # 1, 2, 3 at q1 and q8
    assert "differs" not in findings and "inconclusive" not in findings
    # finding 2: Anchor 2 77.1 - Anchor 1 60.3 = 16.8 of Anchor 3's 21.2-point drop, 6.2
    # points beyond half of it
    assert "a gain of +16.8 [" in text and "+6.2 [" in text


def test_a_reversed_pattern_is_reported_as_different():
    frame = results([row("Anchor 3", None, .82), row("Anchor 1", 1, .40), row("Anchor 1", 8, .80),
                     row("Anchor 2", 1, .41), row("Comp.", 1, .80), row("Comp.", 8, .92),
                     row("Anchor 2", 8, .48)])
    lines = checked(frame).split("\n")
    assert "holds here" in lines[2]  # Anchor 1 falls with the rate by 40 points
    # Anchor 2 gains 1 point at q1 where 21 were needed: it recovers less than half
    assert "**differs here**: less than 50% of the drop recovered" in lines[3]
    assert lines[4].count("**differs here: ahead**") == 2  # Comp. well ahead


def test_finding1_asks_for_a_quarter_of_the_papers_drop():
    assert MIN_DROP == pytest.approx(0.052, abs=1e-3)  # 20.8 / 4
    def finding1(high: float, low: float, n: int) -> str:
        frame = results([row("Anchor 1", 1, low, n=n), row("Anchor 1", 8, high, n=n)])
        return next(line for line in checked(frame).splitlines() if line.startswith("1. "))
    assert "holds here" in finding1(.80, .70, N)  # 10 points on 5750 images
    assert "**differs here**: the drop is smaller" in finding1(.80, .79, N)  # 1 point
    assert "inconclusive" in finding1(.80, .74, 180)  # 6 points on 180 images
    assert "**differs here**" in finding1(.70, .80, N)  # a rise


def test_finding2_asks_for_half_of_the_drop_recovered():
    def finding2(anchor2: float, n: int = N) -> str:
        frame = results([row("Anchor 3", None, .80, n=n), row("Anchor 1", 1, .60, n=n),
                         row("Anchor 1", 8, .79, n=n), row("Anchor 2", 1, anchor2, n=n)])
        return next(line for line in checked(frame).splitlines() if line.startswith("2. "))
    assert "holds here" in finding2(.75)  # 15 of 20 points back
    assert "**differs here**" in finding2(.66)  # 6 of 20: beyond the noise of 5750 images
    assert "inconclusive" in finding2(.71, 180)  # 11 of 20 on 180 images
    assert "holds here" not in finding2(.69)  # 9 of 20: less than half


def test_splits_give_mean_and_standard_deviation(tmp_path):
    frames = {s: results([row("Comp.", 1, top1), row("Anchor 3", None, .8)])
              for s, top1 in ((1, .70), (2, .72), (3, .74))}
    text = summarize_splits(frames, tmp_path / "splits.md").read_text()
    comp = next(line for line in text.splitlines() if line.startswith("| Comp."))
    assert "72.00 ± 2.00" in comp and comp.endswith("| 3 |")  # 70, 72, 74 %
    assert text.index("| Anchor 3") < text.index("| Comp.")  # the paper's order


def test_jpeg_anchors_get_their_own_rows_and_a_column_per_set_with_its_bpp():
    frame = results([*paper_like().to_dict("records"),
                     row("Anchor 1", 5, .50, bpp=0.24, codec="jpeg"),
                     row("Anchor 1", 50, .78, bpp=0.76, codec="jpeg"),
                     row("Anchor 2", 5, .70, bpp=0.24, codec="jpeg"),
                     row("Anchor 1", 8, .79, bpp=0.31, codec="jpeg")])  # JPEG 8 is no q8
    text = table2(frame, "minc-2500", 23, 23)
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == "| | q1 | q8 |"  # the paper's table first, as it was
    start = lines.index("| | jpeg5 | jpeg8 | jpeg50 |")
    assert start > next(i for i, line in enumerate(lines) if line.startswith("| Comp. |"))
    jpeg = lines[start:]
    assert jpeg[2].startswith("| rate and quality | 0.240 bpp")
    assert jpeg[3].startswith("| Anchor 1 (JPEG) | 50.0 (95.0)")
    assert jpeg[4].startswith("| Anchor 2 (JPEG) | 70.0 (95.0)") and "not trained" in jpeg[4]
    # the learned codec's q8 cell is its own, not JPEG quality 8's
    anchor1 = next(line for line in lines if line.startswith("| Anchor 1 |"))
    assert "81.0 (95.0)" in anchor1 and "79.0" not in anchor1
    assert checked(frame).count("holds here") == 4


def test_bd_accuracy_is_reported_with_its_interval_and_reading():
    table = pd.DataFrame([
        {"curve": "Comp.", "reference": "Anchor 2", "bd_top1": -0.031, "bd_top1_low": -0.06,
         "bd_top1_high": -0.002, "bpp_low": 0.12, "bpp_high": 0.85, "images": 180,
         "resamples": 2000},
        {"curve": "Anchor 2", "reference": "Anchor 2 (JPEG)", "bd_top1": 0.01,
         "bd_top1_low": -0.02, "bd_top1_high": 0.04, "bpp_low": 0.26, "bpp_high": 1.1,
         "images": 180, "resamples": 2000},
        {"curve": "Anchor 1", "reference": "Anchor 1 (WebP)", "bd_top1": math.nan,
         "bd_top1_low": math.nan, "bd_top1_high": math.nan, "bpp_low": math.nan,
         "bpp_high": math.nan, "images": 180, "resamples": 2000},
    ])
    text = bd_markdown(table)
    assert "| Comp. | Anchor 2 | **-3.1** | [-6.0, -0.2] | 0.120-0.850 | behind |" in text
    assert "| Anchor 2 | Anchor 2 (JPEG) | **+1.0** | [-2.0, +4.0]" in text
    assert "within noise" in text and "no common bpp range" in text
    assert "2000 bootstrap resamples of the 180 test images" in text
    assert metric_name("bd_top1", "Comp.", "Anchor 2 (JPEG)") == "bd_top1/comp/anchor-2-jpeg"


def finding3(comp: float, anchor2: float, n: int, shuffled: bool = False, **more) -> str:
    """Finding 3's sentence for one quality: Comp. and Anchor 2 measured on n images (nested
    hits, or with `shuffled` Comp.'s right images drawn at random, apart from Anchor 2's)."""
    frame = results([row("Comp.", 4, comp, n=n) | more, row("Anchor 2", 4, anchor2, n=n)])
    hits = nested_hits(frame)
    if shuffled:
        comp_rows = hits["curve"] == "Comp."
        hits.loc[comp_rows, "top1"] = np.random.default_rng(0).permutation(
            hits.loc[comp_rows, "top1"].to_numpy())
    text = pattern(frame, hits, {"procedural": {ANCHOR2}})
    [line] = [line for line in text.splitlines() if line.startswith("3. ")]
    return line


def test_finding3_holds_only_where_the_whole_interval_is_within_the_papers_gap():
    assert PAPER_GAP == 0.07  # the paper's largest gap, 6.9 points at q4
    # 4 points behind on 5750 images: the whole interval within 7
    assert re.search(r"gap -4\.0 \[-4\.\d, -3\.\d\]: holds here", finding3(.76, .80, N))
    # level on 134 images: the interval holds 0 but lies above -7
    assert "holds here" in finding3(.78, .78, 134)
    # the subset's real report: 22.4 points behind on 134 images is no "few points"
    line = finding3(.5746, .7985, 134)
    assert "Comp. 57.5 [49.0, 65.5], Anchor 2 79.9 [72.3, 85.8]" in line
    assert "**differs here: far behind**" in line and "holds here" not in line
    assert "**differs here: ahead**" in finding3(.85, .75, N)


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("n", [134, 180])
@pytest.mark.parametrize("points", [13, 15, 17])
def test_a_gap_of_13_to_17_points_never_holds(points: int, n: int, shuffled: bool):
    # nested hits agree as closely as two classifiers can (the narrowest paired interval);
    # shuffled ones as independent classifiers would (a wide one, reaching above -7)
    line = finding3(.80 - points / 100, .80, n, shuffled)
    assert "holds here" not in line
    assert ("far behind" if not shuffled or points == 17 and n == 180 else "inconclusive") in line


def test_finding3_is_inconclusive_where_the_interval_holds_the_papers_gap():
    # 8 points on 180 images: the interval reaches both sides of -7
    line = finding3(.72, .80, 180)
    assert "inconclusive here (the interval holds -7 points" in line
    assert "holds here" not in line and "far behind" not in line


def test_finding3_over_the_whole_curve_reads_the_bd_interval():
    frame = results([row("Comp.", 1, .57, n=134), row("Anchor 2", 1, .80, n=134)])
    bd = pd.DataFrame([{"curve": "Comp.", "reference": "Anchor 2", "bd_top1": -0.21,
                        "bd_top1_low": -0.30, "bd_top1_high": -0.12}])
    text = checked(frame, bd=bd)
    assert ("Over the whole curve (BD-accuracy, Comp. minus Anchor 2 at equal rate): "
            "-21.0 [-30.0, -12.0] points: **differs here: far behind**") in text
    assert "paired bootstrap interval" in text  # the rule is written out
    bd.loc[0, ["bd_top1", "bd_top1_low", "bd_top1_high"]] = (-0.03, -0.05, -0.01)
    assert "-3.0 [-5.0, -1.0] points: holds here" in checked(frame, bd=bd)
    bd.loc[0, ["bd_top1", "bd_top1_low", "bd_top1_high"]] = (-0.05, -0.10, -0.01)
    assert "-5.0 [-10.0, -1.0] points: inconclusive here" in checked(frame, bd=bd)


def test_comp_is_measured_against_the_equal_budget_anchor2_where_there_is_one():
    frame = results([row("Comp.", 4, .74, n=180), row("Anchor 2", 4, .76, n=180),
                     row("Anchor 2 (equal budget)", 4, .90, n=180)])
    bd = pd.DataFrame([{"curve": "Comp.", "reference": r, "bd_top1": v, "bd_top1_low": v - .02,
                        "bd_top1_high": v + .02}
                       for r, v in (("Anchor 2", -0.02), ("Anchor 2 (equal budget)", -0.16))])
    line = next(x for x in checked(frame, bd=bd).splitlines() if x.startswith("3. "))
    assert "Comp. minus Anchor 2 (equal budget) in points" in line
    assert "Anchor 2 (equal budget) 90.0" in line and "(against Anchor 2: -2.2 [" in line
    assert "gap -16.1 [" in line and "far behind" in line  # decided against the equal budget
    assert "minus Anchor 2 (equal budget) at equal rate): -16.0" in line


def test_the_report_names_each_start_and_what_started_from_it():
    frame = results([row("Comp.", 4, .70), row("Anchor 2", 4, .80)])
    assert "these started from `--init procedural`." in checked(frame)
    text = checked(frame, {"procedural": {ANCHOR2, ANCHOR3}, "latent-hint-demo": {COMP}})
    assert ("these started from `--init latent-hint-demo` (Comp.) and `--init procedural` "
            "(Anchor 3, Anchor 2).") in text


def test_one_classifier_for_every_rate_is_a_cell_at_each_rate_and_a_row_of_table2():
    from pathlib import Path

    from classifier.config import TrainConfig
    from evaluation.classifiers import Classifier
    from evaluation.evaluate import targets

    config = TrainConfig(domain="latent", shards="d", quality=1, rates=(1, 4, 8))
    cells = targets([Classifier(Path("c.pth"), config, 30, "")], [SetId.of(1), SetId.of(4)])
    assert [(c.method, c.set_id.name) for c in cells] == [("Comp. (every rate)", f"q{q}")
                                                       for q in (1, 4, 8)]
    results = pd.DataFrame([row("Anchor 2", 1, 0.80), row("Comp. (every rate)", 1, 0.75),
                            row("Comp. (every rate)", 4, 0.78)])
    assert "| Comp. (every rate) |" in table2(results, "d", 4, 4)
