"""The report's text from a results table: Table 2's layout, the paper's pattern checked with
the intervals, and the mean and spread over MINC-2500's splits."""

from __future__ import annotations

import pandas as pd

from evaluation.metrics import wilson_interval
from evaluation.pipeline import summarize_splits
from evaluation.report import pattern, table2

N = 5750  # test images of MINC-2500 (23 x 250)


def row(method: str, quality: int | None, top1: float, top5: float = 0.95, bpp: float = 0.5):
    hits = round(top1 * N)
    low, high = wilson_interval(hits, N)
    return {"method": method, "quality": quality, "set": f"q{quality}" if quality else "original",
            "top1": hits / N, "top1_low": low, "top1_high": high, "top5": top5, "samples": N,
            "bpp": bpp, "psnr": 30.0, "ms_ssim": 0.95, "ssim": 0.9}


def results(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["quality"] = frame["quality"].astype("Int64")
    return frame


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
    text = pattern(paper_like(), {"imagenet"})
    assert text.count("holds here") == 3 and "differs" not in text


def test_a_reversed_pattern_is_reported_as_different():
    frame = results([row("Anchor 1", 1, .40), row("Anchor 1", 8, .80), row("Anchor 2", 1, .41),
                     row("Comp.", 1, .80), row("Comp.", 8, .92), row("Anchor 2", 8, .48)])
    text = pattern(frame, {"procedural"})
    assert "1. *" in text and "holds here" in text  # Anchor 1 falls with the rate
    assert "within noise" in text.split("\n")[3]  # Anchor 2 vs Anchor 1 at q1: 41 vs 40 %
    assert "**differs here**" in text.split("\n")[4]  # Comp. well ahead of Anchor 2


def test_splits_give_mean_and_standard_deviation(tmp_path):
    frames = {s: results([row("Comp.", 1, top1), row("Anchor 3", None, .8)])
              for s, top1 in ((1, .70), (2, .72), (3, .74))}
    text = summarize_splits(frames, tmp_path / "splits.md").read_text()
    comp = next(line for line in text.splitlines() if line.startswith("| Comp."))
    assert "72.00 ± 2.00" in comp and comp.endswith("| 3 |")  # 70, 72, 74 %
    assert text.index("| Anchor 3") < text.index("| Comp.")  # the paper's order
