"""`make bench-train`: per domain, the model alone, the trainer's real loop, and the loader alone.

  bare step   images/s of forward + backward + SGD step on random tensors of the domain's shape
  trainer     images/s of train_one_epoch on real shards (world size 1, the real loader)
  loader      images/s of the loader alone (read shards, decode, augment, batch)
Targets: trainer >= 0.9x bare step; loader >= 10x the model's rate in the latent domain.

    python -m benchmarks.bench_train [--shards DIR --quality Q] [--steps 6] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from trainer.config import TrainConfig
from trainer.data import open_shard_set
from trainer.domains import DECODED, LATENT, ORIGINAL
from trainer.train import build_model, load_data, train_one_epoch

DEMO_CODEC = Path(__file__).resolve().parents[1] / "codecs" / "demo" / "codec-q4.pth"


def bare_step(model: nn.Module, shape: tuple, classes: int, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(shape), torch.randint(0, classes, (shape[0],))
    model.train()
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * shape[0] / (time.perf_counter() - start)


def loader_alone(shard_set, config, batch: int, batches: int) -> float:
    data = iter(load_data(shard_set, config, 0, batch).train_epoch(0))
    next(data)  # worker start-up is not the steady rate
    start = time.perf_counter()
    for _ in islice(data, batches):
        pass
    return batches * batch / (time.perf_counter() - start)


def trainer_loop(shard_set, config, batch: int, steps: int) -> float:
    model = build_model(shard_set, config, None)
    ddp = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = iter(load_data(shard_set, config, 0, batch).train_epoch(0))
    train_one_epoch(ddp, nn.CrossEntropyLoss(), optimizer, data, 1, torch.device("cpu"),
                    nullcontext(), 0, False)  # warm-up and worker start-up
    start = time.perf_counter()
    train_one_epoch(ddp, nn.CrossEntropyLoss(), optimizer, data, steps, torch.device("cpu"),
                    nullcontext(), 0, False)
    return steps * batch / (time.perf_counter() - start)


def demo_shards(tmp: Path) -> tuple[Path, int]:
    """Small synthetic shards at the paper's image size, coded with the demo codec."""
    from prep.datasets.synthetic import write_dataset
    from prep.job.driver import PrepConfig, run

    data = write_dataset(tmp / "textures", classes=4, per_class=20, size=362)
    run(PrepConfig(data=data, out=tmp / "shards", quality=4, codec_weights=DEMO_CODEC,
                   shard_size=16))
    return tmp / "shards" / "textures", 4


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=Path, default=None)
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        shards, quality = (args.shards, args.quality) if args.shards else demo_shards(Path(tmp))
        print(f"\n# train benchmark: {shards}, batch {args.batch}, {args.steps} steps, "
              f"{torch.get_num_threads()} threads, {args.workers} loader worker(s)\n")
        print("| domain | input | bare step img/s | trainer img/s | trainer / bare | "
              "loader img/s | loader / bare |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for domain in (LATENT, DECODED, ORIGINAL):
            shard_set = open_shard_set(shards, domain.name, quality)
            config = TrainConfig(domain=domain.name, shards=str(shards), quality=quality,
                                 init="none", workers=args.workers, batch_size=args.batch)
            shape = ((args.batch, 2 * shard_set.latent_channels, config.latent_crop,
                      config.latent_crop) if domain.latent
                     else (args.batch, 3, config.crop, config.crop))
            bare = bare_step(build_model(shard_set, config, None), shape, shard_set.num_classes,
                             args.steps)
            loop = trainer_loop(shard_set, config, args.batch, args.steps)
            load = loader_alone(shard_set, config, args.batch, 4 * args.steps)
            print(f"| {domain.name} | {tuple(shape[1:])} | {bare:.1f} | {loop:.1f} | "
                  f"{loop / bare:.2f} | {load:.1f} | {load / bare:.1f} |", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
