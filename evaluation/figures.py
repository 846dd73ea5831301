"""The report's figures: Figure 3 (accuracy against rate and quality), Figure 2 (what each
representation looks like) and confusion matrices."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from classifier.methods import (  # noqa: E402
    ANCHOR1,
    ANCHOR2,
    ANCHOR2_EQUAL,
    ANCHOR3,
    COMP,
    COMP_INPUTS,
    COMP_RATES,
    METHOD_ORDER,
)
from foundation.sets import CODECS, LEARNED, SetId  # noqa: E402

AXES = {"bpp": "bits per pixel (log scale)", "psnr": "PSNR (dB)", "ssim": "SSIM"}
# a method keeps its marker and colour on every codec; the codec sets the line
MARKERS = {ANCHOR1: ("o", "C0"), ANCHOR2: ("s", "C1"), ANCHOR2_EQUAL: ("D", "C7"),
           COMP: ("^", "C2"),
           COMP_INPUTS["y"]: ("v", "C3"), COMP_INPUTS["sigma"]: ("d", "C4"),
           COMP_RATES: ("P", "C5")}
LINES = {LEARNED: "-", "jpeg": "--", "webp": "-."}
SEEDS_NOTE = ("\nWith several seeds each point is the mean over its seeds, the thin bar its 95% "
              "Wilson interval over the test images, the thick bar the range of the seeds' own "
              "values.\n")


def _rate_label(value: float, _position) -> str:
    """0.2, 0.3, 0.5, 1, 2 on the log bpp axis; the other ticks unlabelled."""
    mantissa = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if round(mantissa, 6) in (1, 2, 3, 5) else ""


def curves(results: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Figure 3's lines: (curve, its rows) for each method on each codec's sets, the paper's
    method order, the learned codec first."""
    coded = results[results["quality"].notna()]
    return sorted(coded.groupby("curve", sort=False), key=lambda g: (
        METHOD_ORDER.index(g[1]["method"].iloc[0]), CODECS.index(g[1]["codec"].iloc[0])))


def figure3(results: pd.DataFrame, path: Path, metric: str, dataset: str) -> Path:
    """Top-k against bpp, PSNR and SSIM, a line per curve (a method on one codec's sets) with
    95% intervals (and the seeds' range where a cell has several); Anchor 3 (the original
    images) as a horizontal reference. results: a row per cell (seeds.over_seeds)."""
    fig, axes = plt.subplots(1, len(AXES), figsize=(4.2 * len(AXES), 3.6), sharey=True)
    reference = results[results["method"] == ANCHOR3]
    for ax, (column, label) in zip(axes, AXES.items(), strict=True):
        for curve, rows in curves(results):
            rows = rows.sort_values(column)
            marker, colour = MARKERS.get(rows["method"].iloc[0], ("o", None))
            ax.errorbar(rows[column], 100 * rows[metric],
                        yerr=100 * np.abs(rows[[f"{metric}_low", f"{metric}_high"]].to_numpy().T
                                          - rows[metric].to_numpy()),
                        marker=marker, color=colour, linestyle=LINES[rows["codec"].iloc[0]],
                        capsize=3, label=curve)
            if rows.get("seeds", pd.Series([1])).max() > 1:  # the seeds' range, thick
                ax.vlines(rows[column], 100 * rows[f"{metric}_min"], 100 * rows[f"{metric}_max"],
                          color=colour, linewidth=4, alpha=0.5)
        for _, row in reference.iterrows():
            ax.axhline(100 * row[metric], color="grey", linestyle=":",
                       label=f"{ANCHOR3} (original)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")  # BD-accuracy integrates over log bpp
    for ticks in (axes[0].xaxis.set_major_formatter, axes[0].xaxis.set_minor_formatter):
        ticks(FuncFormatter(_rate_label))
    axes[0].set_ylabel(f"{metric.replace('top', 'Top-')} accuracy (%)")
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{dataset}: {metric.replace('top', 'Top-')} against rate and quality (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def figure2(examples: list[dict], qualities: list[int], path: Path, dataset: str) -> Path:
    """A row per example: the original; per quality the decoded image (PSNR/SSIM), the
    channel-summed y_hat and sigma_hat."""
    columns = 1 + 3 * len(qualities)
    fig, axes = plt.subplots(len(examples), columns, figsize=(1.9 * columns, 2.0 * len(examples)),
                             squeeze=False)
    for row, example in zip(axes, examples, strict=True):
        row[0].imshow(example["original"])
        row[0].set_title(f"{example['class_name']}\noriginal", fontsize=8)
        for i, q in enumerate(qualities):
            coded = example["coded"][q]
            row[1 + 3 * i].imshow(coded["decoded"])
            row[1 + 3 * i].set_title(f"{SetId.of(q)}: {coded['bpp']:.2f} bpp\n"
                                     f"{coded['psnr']:.1f} dB, SSIM {coded['ssim']:.3f}",
                                     fontsize=7)
            row[2 + 3 * i].imshow(np.abs(coded["y_hat"]).sum(0), cmap="magma")
            row[2 + 3 * i].set_title(f"{SetId.of(q)}: sum |y_hat|", fontsize=7)
            row[3 + 3 * i].imshow(coded["sigma"].sum(0), cmap="viridis")
            row[3 + 3 * i].set_title(f"{SetId.of(q)}: sum sigma_hat", fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{dataset}: test examples", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_figure(counts: np.ndarray, names: list[str], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (rows: true class)."""
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 2.5 + 0.35 * len(names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    if len(names) <= 12:
        for (t, p), value in np.ndenumerate(counts):
            ax.text(p, t, str(value), ha="center", va="center", fontsize=6,
                    color="white" if rates[t, p] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
