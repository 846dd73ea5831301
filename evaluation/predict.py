"""A classifier's predictions on one split of one shard set, one row per sample."""

from __future__ import annotations

import numpy as np
import torch

from classifier.data import EvalStream, KeyedTransform, SampleTransform, ShardSet, loader
from foundation import runtime
from foundation.predictions import TOP_K
from foundation.progress import progress


@torch.inference_mode()
def predict(model: torch.nn.Module, shard_set: ShardSet, split: str, input_sizes: tuple,
            batch_size: int = 32, workers: int = 2, desc: str = "", arithmetic: str = "fp32"
            ) -> dict[str, np.ndarray]:
    """keys, labels and the top-5 predicted classes (best first) of every sample of the split;
    input_sizes: the classifier's eval transform (TrainConfig.input_sizes); arithmetic: the
    resolved precision it runs in (runtime.evaluation_precision)."""
    transform = KeyedTransform(SampleTransform(shard_set, False, *input_sizes))
    device = next(model.parameters()).device
    data = loader(EvalStream(shard_set.shards(split), transform, rank=0, world=1),
                  batch_size, workers, seed=0, device=device)
    keys, labels, top = [], [], []
    with progress(total=shard_set.counts[split], desc=desc or split, unit="img",
                  leave=False) as bar:
        for x, y, key in data:
            with runtime.autocast(device, arithmetic):
                logits = model(x.to(device, memory_format=runtime.memory_format(device)))
            logits = logits.float()
            top.append(logits.topk(min(TOP_K, logits.shape[1]), dim=1).indices.cpu().numpy())
            labels.append(y.numpy())
            keys.extend(key)
            bar.update(len(y))
    if not keys:
        raise ValueError(f"{shard_set.directory} has no {split} samples to evaluate")
    return {"key": np.array(keys), "label": np.concatenate(labels), "top": np.concatenate(top)}
