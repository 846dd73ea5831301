"""The report's figures: Figure 3 (accuracy against rate and quality), Figure 2 (what each
representation looks like) and confusion matrices."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evaluation.classifiers import ANCHOR3, METHOD_ORDER  # noqa: E402

AXES = {"bpp": "bits per pixel", "psnr": "PSNR (dB)", "ssim": "SSIM"}
STYLE = {"Anchor 1": "o-", "Anchor 2": "s-", "Comp.": "^-", "Comp. (y)": "v--",
         "Comp. (sigma)": "d--"}


def figure3(results: pd.DataFrame, path: Path, metric: str, dataset: str) -> Path:
    """Top-k against bpp, PSNR and SSIM, a line per method with 95% intervals; Anchor 3 (the
    original images) as a horizontal reference."""
    fig, axes = plt.subplots(1, len(AXES), figsize=(4.2 * len(AXES), 3.6), sharey=True)
    reference = results[results["method"] == ANCHOR3]
    coded = results[results["quality"].notna()]
    for ax, (column, label) in zip(axes, AXES.items(), strict=True):
        for method in (m for m in METHOD_ORDER if m in set(coded["method"])):
            rows = coded[coded["method"] == method].sort_values(column)
            ax.errorbar(rows[column], 100 * rows[metric],
                        yerr=100 * np.abs(rows[[f"{metric}_low", f"{metric}_high"]].to_numpy().T
                                          - rows[metric].to_numpy()),
                        fmt=STYLE.get(method, "o-"), capsize=3, label=method)
        for _, row in reference.iterrows():
            ax.axhline(100 * row[metric], color="grey", linestyle=":",
                       label=f"{ANCHOR3} (original)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
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
            row[1 + 3 * i].set_title(f"q{q}: {coded['bpp']:.2f} bpp\n{coded['psnr']:.1f} dB, "
                                     f"SSIM {coded['ssim']:.3f}", fontsize=7)
            row[2 + 3 * i].imshow(np.abs(coded["y_hat"]).sum(0), cmap="magma")
            row[2 + 3 * i].set_title(f"q{q}: sum |y_hat|", fontsize=7)
            row[3 + 3 * i].imshow(coded["sigma"].sum(0), cmap="viridis")
            row[3 + 3 * i].set_title(f"q{q}: sum sigma_hat", fontsize=7)
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
