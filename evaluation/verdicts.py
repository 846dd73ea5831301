"""When a difference between two results is beyond the noise, and what the paper's findings say
of it: the one place the report's verdicts are decided, from the numbers its tables print.

The noise of a table cell is its 95% Wilson interval of Top-1 over the test images, widened to
the range over seeds where several were trained. The difference of two cells gets Newcombe's
hybrid score interval (his method 10, built from the two cells' intervals; it treats the cells
as independent, which is conservative for cells measured on the same images). A difference is
beyond the noise when its interval excludes 0. Where BD-accuracy compares the two curves, its
bootstrap interval is the noise of the curves' difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

# Finding 3: the compressed domain trails the pixel domain by a few points; the paper's largest
# gap is 6.9 points (q4: Comp. 73.03 against Anchor 2 79.93), so a gap of at most 7 is its claim.
PAPER_GAP = 0.07
HOLDS, FAR_BEHIND, AHEAD, WITHIN_NOISE = "holds", "far behind", "ahead", "within noise"

RULE = (f"**How the verdicts are decided.** The noise of a cell is its 95% Wilson interval "
        f"of Top-1 over the test images, widened to the range over seeds where several seeds were "
        f"trained; a difference of two cells gets Newcombe's interval built from theirs (method "
        f"10), and BD-accuracy its bootstrap interval. A difference is *beyond the noise* when its "
        f"interval excludes 0. Finding 3 *holds* where Comp. is behind Anchor 2 beyond the noise "
        f"and the interval's upper end is no more than {100 * PAPER_GAP:.0f} points behind (the "
        f"paper's largest gap, 6.9); it is *far behind* where even that end is more than "
        f"{100 * PAPER_GAP:.0f} points behind, *ahead* where Comp. leads beyond the noise, and "
        f"*within noise* where the interval holds 0.")


@dataclass(frozen=True)
class Gap:
    """a minus b in Top-1 (0..1) with its 95% interval."""

    value: float
    low: float
    high: float

    def text(self) -> str:
        return f"{100 * self.value:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def cell_interval(row: pd.Series) -> tuple[float, float]:
    """A cell's Top-1 noise: its Wilson interval, widened to the range over seeds if any."""
    low, high = row.top1_low, row.top1_high
    if "top1_min" in row.index and not pd.isna(row.top1_min):
        low, high = min(low, row.top1_min), max(high, row.top1_max)
    return low, high


def gap(a: pd.Series, b: pd.Series) -> Gap:
    """Newcombe's hybrid score interval of a - b from the two cells' intervals."""
    (a_low, a_high), (b_low, b_high) = cell_interval(a), cell_interval(b)
    value = a.top1 - b.top1
    return Gap(value, value - math.hypot(a.top1 - a_low, b_high - b.top1),
               value + math.hypot(a_high - a.top1, b.top1 - b_low))


def bd_gap(row) -> Gap:
    """A BD-accuracy row (evaluation.bd) as a gap with its bootstrap interval."""
    return Gap(row.bd_top1, row.bd_top1_low, row.bd_top1_high)


def direction(g: Gap, expected_positive: bool) -> str:
    """Findings 1 and 2: the expected sign beyond the noise, the other sign, or neither."""
    if g.low <= 0 <= g.high:
        return "within noise here (the difference's interval holds 0)"
    return "holds here" if (g.low > 0) == expected_positive else "**differs here**"


def comp_against_pixels(g: Gap) -> str:
    """Finding 3 for one gap, Comp. minus Anchor 2: HOLDS, FAR_BEHIND, AHEAD or WITHIN_NOISE."""
    if g.low > 0:
        return AHEAD
    if g.high >= 0:
        return WITHIN_NOISE
    return FAR_BEHIND if g.high < -PAPER_GAP else HOLDS


def finding3_words(verdict: str) -> str:
    """The verdict as the report says it."""
    return {HOLDS: "holds here",
            FAR_BEHIND: f"**differs here: far behind** (more than {100 * PAPER_GAP:.0f} points "
                        "behind beyond the noise)",
            AHEAD: "**differs here: ahead** (Comp. leads beyond the noise)",
            WITHIN_NOISE: "within noise here (the interval holds 0)"}[verdict]
