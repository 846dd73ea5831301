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
CPU = torch.device("cpu")


def _amp(device: torch.device):
    """The trainer's precision: bf16 autocast on CUDA, float32 on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step(model: nn.Module, shape: tuple, classes: int, steps: int,
              device: torch.device = CPU) -> float:
    """images/s of forward + backward + SGD step on tensors already on the device, in the
    trainer's precision and memory format."""
    model = model.to(device)
    x, y = torch.randn(shape, device=device), torch.randint(0, classes, (shape[0],), device=device)
    if device.type == "cuda":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for i in range(steps + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        with _amp(device):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    return steps * shape[0] / (time.perf_counter() - start)


def loader_alone(shard_set, config, batch: int, batches: int) -> float:
    data = iter(load_data(shard_set, config, 0, batch).train_epoch(0))
    next(data)  # worker start-up is not the steady rate
    start = time.perf_counter()
    for _ in islice(data, batches):
        pass
    return batches * batch / (time.perf_counter() - start)


def trainer_loop(shard_set, config, batch: int, steps: int,
                 device: torch.device = CPU) -> float:
    model = build_model(shard_set, config, None).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ddp = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index or 0] if device.type == "cuda" else None,
        gradient_as_bucket_view=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = iter(load_data(shard_set, config, 0, batch).train_epoch(0))
    train_one_epoch(ddp, nn.CrossEntropyLoss(), optimizer, data, 1, device, _amp(device), 0,
                    False)  # warm-up and worker start-up
    _sync(device)
    start = time.perf_counter()
    train_one_epoch(ddp, nn.CrossEntropyLoss(), optimizer, data, steps, device, _amp(device), 0,
                    False)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def domain_rows(shards: Path, quality: int, batch: int, steps: int, workers: int,
                device: torch.device) -> list[dict]:
    """Per domain: the bare step, the trainer's loop and the loader alone, in images/s."""
    rows = []
    for domain in (LATENT, DECODED, ORIGINAL):
        shard_set = open_shard_set(shards, domain.name, quality)
        config = TrainConfig(domain=domain.name, shards=str(shards), quality=quality,
                             init="none", workers=workers, batch_size=batch)
        shape = ((batch, 2 * shard_set.latent_channels, config.latent_crop, config.latent_crop)
                 if domain.latent else (batch, 3, config.crop, config.crop))
        bare = bare_step(build_model(shard_set, config, None), shape, shard_set.num_classes,
                         steps, device)
        rows.append({"domain": domain.name, "input": tuple(shape[1:]), "bare": bare,
                     "trainer": trainer_loop(shard_set, config, batch, steps, device),
                     "loader": loader_alone(shard_set, config, batch, 4 * steps)})
    return rows


def process_group(device: torch.device) -> None:
    """A world of one (DDP needs a process group), on a free local port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


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
    device = CPU
    process_group(device)
    with tempfile.TemporaryDirectory() as tmp:
        shards, quality = (args.shards, args.quality) if args.shards else demo_shards(Path(tmp))
        print(f"\n# train benchmark: {shards}, batch {args.batch}, {args.steps} steps, "
              f"{torch.get_num_threads()} threads, {args.workers} loader worker(s)\n")
        print("| domain | input | bare step img/s | trainer img/s | trainer / bare | "
              "loader img/s | loader / bare |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in domain_rows(shards, quality, args.batch, args.steps, args.workers, device):
            print(f"| {r['domain']} | {r['input']} | {r['bare']:.1f} | {r['trainer']:.1f} | "
                  f"{r['trainer'] / r['bare']:.2f} | {r['loader']:.1f} | "
                  f"{r['loader'] / r['bare']:.1f} |", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
