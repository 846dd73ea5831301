"""Is it the information or the learning? A linear probe on each learned set's latents.

Per sample, per latent channel: the mean of |y_hat|, the standard deviation of y_hat and the mean
of log(sigma_hat) over the whole latent, a 3M-vector that keeps what a texture's channel energy
says and nothing of where. A multinomial logistic regression (L-BFGS, weights standardised on
the train split, L2 chosen on the validation split) is trained on the train split and scored on
the test split. If the probe's Top-1 rises with the rate while the trained cResNet-39's does
not, the classifier is short of learning, not of information.

    python -m research.probe data/demo-shards/demo-textures --qualities 1 4 8
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from foundation import schema, storage
from foundation.cli import stage_main
from foundation.sets import SetId

L2 = (1e-4, 1e-3, 1e-2, 1e-1)  # chosen on the validation split


def features(directory, split: str) -> tuple[np.ndarray, np.ndarray]:
    info = schema.read_dataset_json(directory)
    table = np.asarray(info["codec"]["scale_table"], dtype=np.float64)
    rows, labels = [], []
    for shard in schema.shard_paths(directory, split):
        for sample in schema.iter_shard(shard, only=(schema.LABEL, schema.LATENT, schema.SCALES)):
            y = sample[schema.LATENT].astype(np.float64).reshape(len(sample[schema.LATENT]), -1)
            sigma = table[sample[schema.SCALES].astype(np.int64)].reshape(len(y), -1)
            rows.append(np.concatenate([np.abs(y).mean(1), y.std(1), np.log(sigma).mean(1)]))
            labels.append(sample[schema.LABEL])
    return np.stack(rows), np.asarray(labels)


def fit(x: np.ndarray, y: np.ndarray, classes: int, l2: float) -> torch.nn.Linear:
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], classes, dtype=torch.float64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt) + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def accuracy(model: torch.nn.Linear, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def probe(directory) -> dict:
    (xtr, ytr), (xva, yva), (xte, yte) = (features(directory, s)
                                          for s in ("train", "validate", "test"))
    mean, std = xtr.mean(0), xtr.std(0) + 1e-8
    xtr, xva, xte = ((x - mean) / std for x in (xtr, xva, xte))
    classes = int(max(ytr.max(), yte.max())) + 1
    scored = [(accuracy(fit(xtr, ytr, classes, l2), xva, yva), l2) for l2 in L2]
    val, l2 = max(scored, key=lambda s: (s[0], -s[1]))  # ties: the stronger penalty
    model = fit(xtr, ytr, classes, l2)
    return {"l2": l2, "val_top1": val, "train_top1": accuracy(model, xtr, ytr),
            "test_top1": accuracy(model, xte, yte), "test_samples": len(yte)}


@stage_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m research.probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", help="<out>/<dataset> written by prep")
    p.add_argument("--qualities", type=int, nargs="+", required=True)
    args = p.parse_args(argv)
    print("| set | probe test Top-1 | train | validation | L2 | test images |")
    print("|---|---:|---:|---:|---:|---:|")
    for q in args.qualities:
        directory = storage.join(args.shards, SetId.of(q).name)
        if not storage.is_dir(directory):
            print(f"error: {directory} does not exist: prepare q{q} first", file=sys.stderr)
            return 2
        r = probe(directory)
        print(f"| q{q} | {100 * r['test_top1']:.1f} | {100 * r['train_top1']:.1f} | "
              f"{100 * r['val_top1']:.1f} | {r['l2']:g} | {r['test_samples']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
