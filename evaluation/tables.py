"""The report's text: Table 2 laid out as the paper's, the paper's findings checked against the
results with their intervals (the verdicts), BD-accuracy, the comparison with the paper's numbers,
the measured cost and the unfinished classifiers, as markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd

from classifier.methods import (
    ANCHOR1,
    ANCHOR2,
    ANCHOR2_EQUAL,
    ANCHOR3,
    COMP,
    COMP_RATES,
    METHOD_ORDER,
)
from evaluation import verdicts
from evaluation.classifiers import CODEC_LABELS, Classifier, curve_name
from foundation.sets import CLASSICAL, LEARNED, SetId

# Deng and Karam, Table 2 (MINC-2500 split 1, test): Top-1 (Top-5) in %.
PAPER = {ANCHOR3: {None: (81.50, 97.58)},
         ANCHOR1: {1: (60.26, 87.88), 4: (77.13, 96.40), 8: (81.04, 97.55)},
         ANCHOR2: {1: (77.06, None), 4: (79.93, None)},
         COMP: {1: (72.59, None), 4: (73.03, None), 8: (76.56, None)}}
TABLE_METHODS = METHOD_ORDER[1:]  # a row each; Anchor 3 is the table's reference line
BD_RESULTS = "bd_accuracy"
TABLE = "table2"  # one row per cell over its seeds (seeds.over_seeds): table2.csv/.parquet
EXTRA = "extra-test"  # the evaluation-only set's results, under the report's folder


def _seeds(row) -> int:
    return int(getattr(row, "seeds", 1))


def _cell(row: pd.Series) -> str:
    """Top-1 (Top-5), its test-image interval and, with several seeds, their range."""
    spread = (f" seeds {100 * row.top1_min:.1f}-{100 * row.top1_max:.1f}"
              if _seeds(row) > 1 else "")
    return (f"{100 * row.top1:.1f} ({100 * row.top5:.1f}) "
            f"<br><sub>[{100 * row.top1_low:.1f}, {100 * row.top1_high:.1f}]{spread}</sub>")


def chance(present: int, label_space: int) -> str:
    """What a guess scores, over the classes the test split holds."""
    of = (f" (the classes present in the test split, of a {label_space}-class label space)"
          if present != label_space else "")
    text = (f"Chance: Top-1 {100 / present:.1f}%, Top-5 {100 * min(5, present) / present:.1f}% "
            f"for {present} classes{of}.")
    if present <= 5:
        text += (f" **Top-5 is uninformative here**: with {present} classes any classifier "
                 "that ranks the classes present first scores 100%.")
    return text


def codec_table(results: pd.DataFrame, codec: str) -> str:
    """One codec's sets laid out like the paper's Table 2: a row per curve (a method on these
    sets), a column per set with its rate and quality."""
    rows = results[results["codec"] == codec]
    if rows.empty:
        return ""
    sets = rows.drop_duplicates("set").sort_values("quality")
    head = "| | " + " | ".join(sets["set"]) + " |\n|---|" + "---|" * len(sets)
    rate = [f"{r.bpp:.3f} bpp<br>{r.psnr:.2f} dB, MS-SSIM {r.ms_ssim:.3f}, SSIM {r.ssim:.3f}"
            for r in sets.itertuples()]
    lines = [head, "| rate and quality | " + " | ".join(rate) + " |"]
    for method in (m for m in TABLE_METHODS if m in set(rows["method"])):
        cells = []
        for set_name in sets["set"]:
            found = rows[(rows["method"] == method) & (rows["set"] == set_name)]
            cells.append(_cell(found.iloc[0]) if len(found) else "not trained")
        lines.append(f"| {curve_name(method, codec)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table2(results: pd.DataFrame, dataset: str, present: int, label_space: int,
           where: str = "test split") -> str:
    """Laid out like the paper's Table 2 (a row per method, a column per quality), then the
    same for each classical codec's sets (its anchors at their own rates); results: a row per
    cell (seeds.over_seeds); where: the images it was measured on."""
    learned = codec_table(results, LEARNED)
    classical = [
        f"**{CODEC_LABELS[codec]}** (Pillow; set `{codec}<P>`: quality P): the anchors on its "
        f"decoded images, at its own rates.\n\n" + codec_table(results, codec)
        for codec in CLASSICAL if codec in set(results["codec"])]
    anchor3 = results[results["method"] == ANCHOR3]
    reference = ("Anchor 3 (ResNet-50 trained and tested on the original images): not trained."
                 if anchor3.empty else
                 f"Anchor 3 (ResNet-50 trained and tested on the original images, "
                 f"{anchor3.iloc[0].bpp:.2f} bpp as stored): Top-1 {100 * anchor3.iloc[0].top1:.1f}"
                 f" [{100 * anchor3.iloc[0].top1_low:.1f}, {100 * anchor3.iloc[0].top1_high:.1f}]"
                 + (f" seeds {100 * anchor3.iloc[0].top1_min:.1f}-"
                    f"{100 * anchor3.iloc[0].top1_max:.1f}" if _seeds(anchor3.iloc[0]) > 1 else "")
                 + f", Top-5 {100 * anchor3.iloc[0].top5:.1f}.")
    samples = int(results["samples"].iloc[0])
    tables = "\n\n".join(filter(None, [learned, *classical]))
    several = max(_seeds(r) for r in results.itertuples())
    seeds = (f" With {several} seeds a cell is the mean over its seeds (each classifier trained "
             "once per seed; Anchor 1: each seed's Anchor 3 model); below it the 95% Wilson "
             "interval of that mean over the test images and `seeds min-max`, the range of the "
             "seeds' own Top-1." if several > 1 else "")
    return (f"## Table 2: {dataset}, {where} ({samples} images)\n\n{reference} "
            f"{chance(present, label_space)}\n\n{tables}\n\nTop-1 (Top-5) in %; below, the 95% "
            "Wilson interval of Top-1. Anchor 1: the Anchor 3 model on decoded images (not "
            "retrained); Anchor 2: ResNet-50 trained on decoded images of that set; Comp.: "
            "cResNet-39 on y_hat and sigma_hat" + (
                "; Comp. (every rate): one cResNet-39 trained on the latents of every quality "
                "together" if COMP_RATES in set(results["method"]) else "") + f".{seeds}\n")


def _learned(results: pd.DataFrame) -> pd.DataFrame:
    """The paper's cells: the original set and the learned codec's."""
    return results[results["codec"].isna() | (results["codec"] == LEARNED)]


def _top1(results: pd.DataFrame, method: str, quality: int | None) -> pd.Series | None:
    rows = results[(results["method"] == method) & (
        results["quality"].isna() if quality is None else results["quality"] == quality)]
    return rows.iloc[0] if len(rows) else None


def _pct(row: pd.Series) -> str:
    """Top-1 with its noise interval as Table 2 prints it (verdicts.cell_interval)."""
    low, high = verdicts.cell_interval(row)
    return f"{100 * row.top1:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def cell_hits(hits: pd.DataFrame, rows: list[pd.Series]) -> list[np.ndarray]:
    """Each cell's Top-1 hits, (seeds, images), on the test images all of them share, in one
    order (hits: evaluate's HITS, a row per cell, seed and image)."""
    frames = [hits[(hits["curve"] == r.curve) & (hits["set"] == r.set)] for r in rows]
    keys = sorted(set.intersection(*(set(f["key"]) for f in frames)))
    return [f.pivot(index="seed", columns="key", values="top1")[keys].to_numpy(bool)
            for f in frames]


def reference_anchor2(results: pd.DataFrame, quality: int) -> pd.Series | None:
    """What Comp. is measured against at a quality: the Anchor 2 trained for Comp.'s whole
    budget where there is one (Comp. started from a trained Anchor 2), else Anchor 2."""
    found = _top1(results, ANCHOR2_EQUAL, quality)
    return found if found is not None else _top1(results, ANCHOR2, quality)


def pattern(results: pd.DataFrame, hits: pd.DataFrame, inits: dict[str, set[str]],
            bd_results: pd.DataFrame | None = None, where: str = "", taught: bool = False,
            transplanted: bool = False) -> str:
    """The paper's three findings, each tested at its size against these results (the rule:
    evaluation.verdicts): the cells the table prints, their differences with paired intervals
    from `hits` (evaluate's HITS) and the BD-accuracy of Comp. against its reference Anchor 2.
    inits: each start (`--init`) and the methods that started from it; taught: Comp. learned
    from, and started from, the Anchor 2 of its set (`--distill`); transplanted: Comp. started
    from the Anchor 2 of its set carried to the latent (`transplant_steps`)."""
    results = _learned(results)
    qualities = sorted(int(q) for q in results["quality"].dropna().unique())
    if not qualities:
        return ""
    low, high = qualities[0], qualities[-1]
    lines = []
    a1_low, a1_high = _top1(results, ANCHOR1, low), _top1(results, ANCHOR1, high)
    if a1_low is not None and a1_high is not None and low != high:
        g = verdicts.difference(*cell_hits(hits, [a1_high, a1_low]))
        lines.append(
            f"1. *Classifying decoded images with the original-trained model loses accuracy as "
            f"the rate falls* (paper, Anchor 1: 81.0 at q8, 60.3 at q1, a drop of 20.8). Here: "
            f"{_pct(a1_high)} at {SetId.of(high)}, {_pct(a1_low)} at {SetId.of(low)}, a drop "
            f"of {g.text()} points: {verdicts.words(1, verdicts.anchor1_drop(g))}.")
    a2, a3 = _top1(results, ANCHOR2, low), _top1(results, ANCHOR3, None)
    if a2 is not None and a1_low is not None and a3 is not None:
        a2_hits, a1_hits, a3_hits = cell_hits(hits, [a2, a1_low, a3])
        gain = verdicts.difference(a2_hits, a1_hits)
        share = verdicts.MIN_RECOVERED
        excess = verdicts.contrast([a2_hits, a1_hits, a3_hits], [1.0, share - 1.0, -share])
        lines.append(
            f"2. *Training on decoded images recovers most of it* (paper at q1: Anchor 2 77.1 "
            f"against Anchor 1 60.3, of Anchor 3's 81.5). Here at {SetId.of(low)}: {_pct(a2)} "
            f"against {_pct(a1_low)}, of Anchor 3's {_pct(a3)}: a gain of {gain.text()} "
            f"points, {excess.text()} beyond {100 * share:.0f}% of the drop: "
            f"{verdicts.words(2, verdicts.anchor2_recovery(excess))}.")
    comp = [(q, _top1(results, COMP, q), reference_anchor2(results, q),
             _top1(results, ANCHOR2, q)) for q in qualities]
    comp = [row for row in comp if row[1] is not None and row[2] is not None]
    if comp:
        cells = []
        for q, c, ref, a2 in comp:
            g = verdicts.difference(*cell_hits(hits, [c, ref]))
            plain = ""
            if a2 is not None and ref.method != ANCHOR2:
                against = verdicts.difference(*cell_hits(hits, [c, a2]))
                plain = f" (against {ANCHOR2}: {against.text()})"
            cells.append(f"{SetId.of(q)}: {COMP} {_pct(c)}, {ref.method} {_pct(ref)}, gap "
                         f"{g.text()}{plain}: {verdicts.words(3, verdicts.comp_against_pixels(g))}")
        reference = comp[0][2].method
        overall = _finding3_overall(bd_results, reference)
        lines.append(
            "3. *The compressed domain comes within a few points of the pixel domain without "
            "decoding* (paper: Comp. 72.6-76.6 against Anchor 2 77.1-79.9, 4.5 to 6.9 points "
            f"behind). Here, Comp. minus {reference} in points: " + "; ".join(cells) + "."
            + (f" {overall}" if overall else ""))
    start = (f"`--init {next(iter(inits))}`" if len(inits) == 1 else " and ".join(
        f"`--init {i}` ({', '.join(sorted(methods, key=METHOD_ORDER.index))})"
        for i, methods in sorted(inits.items())))
    return (f"## The paper's pattern, checked{_on(where)}\n\n" + "\n".join(lines) + "\n\n"
            + verdicts.RULE + _seeds_note(results) + "\n\nThe paper fine-tunes every classifier "
            f"from ImageNet; these started from {start}." + (
                " Comp. started instead from the trained Anchor 2 of its set and seed, whose "
                "conv_2x map on the decoded image was a hint for its latent branches "
                "(`--distill`, trainer/distill.py): not in the paper, so Comp. here needs "
                "Anchor 2 to be trained first, though never decodes at inference." if taught
                else "") + (
                " Comp. started from the trained Anchor 2 of its set and seed carried to the "
                "latent: its latent branches fitted, without labels, to that Anchor 2's conv_2x "
                "map on the training latents, under its trunk and fc (`transplant_steps`): not "
                "in the paper, so Comp. here needs Anchor 2 to be trained first, though never "
                "decodes at inference." if transplanted else "") + (
                f" Such a Comp. has trained for its Anchor 2's epochs and its own, so it is "
                f"measured against {ANCHOR2_EQUAL}: ResNet-50 on the same decoded images for "
                "that many epochs, its learning-rate schedule stretched alike."
                if taught or transplanted else "") + "\n")


def _finding3_overall(bd_results: pd.DataFrame | None, reference: str = ANCHOR2) -> str:
    """Finding 3 over the whole curve: the BD-accuracy of Comp. against its reference."""
    if bd_results is None or bd_results.empty:
        return ""
    rows = bd_results[(bd_results["curve"] == COMP) & (bd_results["reference"] == reference)]
    if rows.empty or np.isnan(rows.iloc[0].bd_top1):
        return ""
    g = verdicts.bd_gap(rows.iloc[0])
    return (f"Over the whole curve (BD-accuracy, Comp. minus {reference} at equal rate): "
            f"{g.text()} points: {verdicts.words(3, verdicts.comp_against_pixels(g))}.")


def _seeds_note(results: pd.DataFrame) -> str:
    if "seeds" not in results or results["seeds"].max() <= 1:
        return ""
    return (f" Each cell is the mean over its seeds ({int(results['seeds'].min())} to "
            f"{int(results['seeds'].max())} a cell); the intervals above are those widened "
            "by the seeds' range.")


def _reading(row) -> str:
    if np.isnan(row.bd_top1):
        return "no common bpp range"
    if row.bd_top1_low > 0:
        return "ahead"
    return "behind" if row.bd_top1_high < 0 else "within noise (the interval holds 0)"


def _on(where: str) -> str:
    return f" on the {where}" if where else ""


def bd_markdown(table: pd.DataFrame, where: str = "") -> str:
    """BD-accuracy of every pair of curves, with its interval and what it says."""
    if table.empty:
        return ""
    first = table.iloc[0]
    several = int(table[["seeds", "reference_seeds"]].max().max()) if "seeds" in table else 1
    seeds = (" With several seeds each point is the mean over its seeds and each resample also "
             "draws every curve's seeds with replacement (one draw for all of a curve's points), "
             "so the interval holds the seeds' variation too." if several > 1 else "")
    lines = ["| curve | reference | BD Top-1 (points) | 95% interval | common bpp | reading |",
             "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        span = ("-" if np.isnan(row.bpp_low) else f"{row.bpp_low:.3f}-{row.bpp_high:.3f}")
        interval = ("-" if np.isnan(row.bd_top1_low) else
                    f"[{100 * row.bd_top1_low:+.1f}, {100 * row.bd_top1_high:+.1f}]")
        value = "-" if np.isnan(row.bd_top1) else f"**{100 * row.bd_top1:+.1f}**"
        lines.append(f"| {row.curve} | {row.reference} | {value} | {interval} | {span} | "
                     f"{_reading(row)} |")
    return (f"## BD-accuracy: one number per pair of curves{_on(where)}\n\n"
            "The mean Top-1 difference, curve minus reference, over the bpp range both span "
            "(Bjontegaard's delta with accuracy in place of PSNR: a piecewise cubic (PCHIP) fit "
            "of Top-1 against log10 bpp, integrated over the common range). Positive: the curve "
            f"is more accurate at equal rate. The interval: {int(first.resamples)} bootstrap "
            f"resamples of the {int(first.images)} test images, the same images for every "
            "point (the rates stay fixed)." + seeds + " `" + BD_RESULTS + ".csv` holds the "
            "numbers.\n\n"
            + "\n".join(lines) + "\n")


def paper_comparison(results: pd.DataFrame) -> str:
    results = _learned(results)
    lines = ["| method | quality | paper Top-1 (Top-5) | ours Top-1 (Top-5) |", "|---|---|---|---|"]
    for method, cells in PAPER.items():
        for q, (top1, top5) in cells.items():
            found = results[(results["method"] == method) & (
                results["quality"].isna() if q is None else results["quality"] == q)]
            ours = (f"{100 * found.iloc[0].top1:.2f} ({100 * found.iloc[0].top5:.2f})"
                    if len(found) else "not run")
            paper = f"{top1:.2f}" + (f" ({top5:.2f})" if top5 else "")
            lines.append(f"| {method} | {'original' if q is None else q} | {paper} | {ours} |")
    return "## Against the paper (MINC-2500 split 1)\n\n" + "\n".join(lines) + "\n"


def efficiency_markdown(table: pd.DataFrame, device: str) -> str:
    lines = ["| quality | batch | path | ms / image | images / s | GFLOPs / image |",
             "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        ratio = row.path.startswith("speed-up")
        fmt = (lambda v: f"**{v:.1f}x**") if ratio else (lambda v: f"{v:.2f}")
        lines.append(f"| {SetId.of(row.quality)} | {row.batch} | {row.path} | "
                     f"{fmt(row.ms_per_image)} | {fmt(row.images_per_s)} | "
                     f"{fmt(row.gflops_per_image)} |")
    first = table.iloc[0]
    return (f"## Cost of a prediction from the bitstream ({device})\n\n"
            f"Images {first.image}; classifier inputs {first.classifier_input}. Both paths "
            "entropy-decode the stored strings (z_hat, h_s, scale indexes, y_hat); the "
            "compressed-domain path then runs cResNet-39 on y_hat and sigma_hat, the pixel path "
            "g_s and ResNet-50. Median wall time after a warm-up; FLOPs from torch's counter "
            "(the range coder's integer work is not counted).\n\n" + "\n".join(lines) + "\n")



def unfinished(classifiers: list[Classifier]) -> str:
    lines = [f"- {c.path}: {c.epoch} of {c.config.epochs} epochs" for c in classifiers
             if not c.finished]
    return ("## Unfinished classifiers (evaluated as they are)\n\n" + "\n".join(lines) + "\n"
            if lines else "")
