"""Trained classifiers as the evaluation sees them: found in a runs folder, loaded, named.

The methods are the paper's: Anchor 3 (original-trained ResNet-50 on original images),
Anchor 1 (that same model on decoded images of each quality, not retrained), Anchor 2 (the
decoded-trained ResNet-50 of quality Q on decoded images of Q), Comp. (cResNet-39 on y_hat and
sigma_hat of Q; "Comp. (y)" and "Comp. (sigma)" are the single-input ablations). Beyond the
paper, Anchor 1 and Anchor 2 also run on a classical codec's sets (JPEG, WebP): a curve is a
method on one codec's sets, e.g. "Anchor 2 (JPEG)".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from classifier import checkpoint
from classifier.config import TrainConfig
from classifier.methods import METHOD_ORDER
from foundation import storage
from foundation.runtime import evaluation_precision
from foundation.sets import CODECS, LEARNED

CODEC_LABELS = {LEARNED: "", "jpeg": "JPEG", "webp": "WebP"}


def curve_name(method: str, codec: str | None) -> str:
    """A method on one codec's sets: `Anchor 2` (the learned codec), `Anchor 2 (JPEG)`."""
    label = CODEC_LABELS[codec] if codec else ""
    return f"{method} ({label})" if label else method


@dataclass(frozen=True)
class Classifier:
    """One trained checkpoint and what it was trained on."""

    path: Path
    config: TrainConfig
    epoch: int  # epochs completed
    mlflow_run_id: str
    # the precision its training resolved (fp32, bf16), which it is evaluated in; None: a
    # checkpoint written before the trainer kept it
    precision: str | None = None

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def trained_method(self) -> str:
        return self.config.method

    def precision_on(self, device: torch.device) -> str:
        """The precision it is evaluated in on `device`: its training's (runtime's
        evaluation_precision)."""
        return evaluation_precision(self.precision, self.config.precision, device)

    @cached_property  # read once: a classifier serves several cells (Anchor 3 and Anchor 1)
    def sha256(self) -> str:
        return storage.sha256(self.path)


def read_classifier(path: Path) -> Classifier:
    state = checkpoint.load(path)
    config = dict(state["config"], lr_steps=tuple(state["config"]["lr_steps"]))
    return Classifier(path, TrainConfig(**config), state["epoch"] + 1, state["mlflow_run_id"],
                      state.get("precision"))


def find_classifiers(runs: str | Path) -> list[Classifier]:
    """Every checkpoint under a runs folder (e.g. runs/train/<dataset>), in method order."""
    runs = Path(runs)
    if not runs.is_dir():
        raise FileNotFoundError(f"runs folder {runs} does not exist: train the classifiers first "
                                f"(torchrun trainer/main.py ..., or make table2)")
    found = [read_classifier(p) for p in sorted(runs.rglob(checkpoint.CHECKPOINT))]
    if not found:
        raise FileNotFoundError(f"no checkpoints under {runs}: train the classifiers first")
    return sorted(found, key=lambda c: (METHOD_ORDER.index(c.trained_method),
                                        CODECS.index(c.config.codec),
                                        c.config.quality or 0, c.config.seed))


def load_model(classifier: Classifier, num_classes: int, latent_channels: int | None) -> nn.Module:
    """The checkpoint's network in eval mode, on the CPU."""
    config, state = classifier.config, checkpoint.load(classifier.path)["model"]
    trained_classes = state["fc.weight"].shape[0]
    if trained_classes != num_classes:
        raise ValueError(f"{classifier.path} was trained on {trained_classes} classes, the set "
                         f"it is evaluated on has {num_classes}: evaluate it on its own dataset")
    model = config.network(num_classes, latent_channels)
    model.load_state_dict(state)
    return model.eval()
