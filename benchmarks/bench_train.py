"""`make bench-train`: how close the classifiers' training comes to this machine's peak, and
what bounds it. Everything is measured side by side in one run, on the same threads:

  peak        a 2048^3 GEMM in every process at once (fp32; bf16 where the CPU has it), summed
  GFLOP/img   forward + backward of one training image (torch.utils.flop_counter)
  bare step   forward + backward + SGD step on tensors already in memory, per precision and
              memory format (NCHW, channels_last)
  trainer     the trainer's train_one_epoch on real shards: DDP over the processes, the real
              loader, the trainer's precision and memory format (foundation/runtime.py)
  loader      the trainer's loader alone (read shards, decode, augment, batch)
  all-reduce  where a layout has several processes: one all-reduce of the model's gradients
              alone, what DDP adds to each step beside the bare step

The trainer and loader rows are timed after an epoch where the trainer holds a small training
split decoded (classifier.data.HELD_SAMPLES): the rate of every epoch but the first. The trainer
and the bare step of its settings are timed in alternating windows (6 of 8 steps each at the
demo's sizes), and trainer / bare is the median of the windows' ratios, their range beside it:
on a shared CPU one window's rate moves by 10% against the next.

Each row runs in the layout torchrun gives the trainer (P processes x T threads, gloo) and, for
comparison, one process with every core. Targets (issue 20): trainer >= 0.9x the bare step of
its settings; the trainer at >= 60% of the fp32 GEMM peak, or > 100% of it with bf16.

    python -m benchmarks.bench_train [--shards DIR --quality Q] [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from statistics import median

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from classifier.config import TrainConfig
from classifier.data import open_shard_set
from classifier.domains import DECODED, LATENT, ORIGINAL
from classifier.transforms import PAPER_SIZES, InputSizes
from evaluation.training_cost import flops_per_image
from foundation.command_line import add_option
from foundation.runtime import autocast, memory_format, native_bf16, resolve_precision
from foundation.sets import SetId
from trainer.distill import Supervised
from trainer.train import build_model, load_data, train_one_epoch

DEMO_CODEC = Path(__file__).resolve().parents[1] / "codecs" / "demo" / "codec-q4.pth"
CPU = torch.device("cpu")
DEMO_SIZES = InputSizes(72, 64, 16, 14)  # the demo preset's (experiments/demo.toml)
SIZES = {"demo": DEMO_SIZES, "paper": PAPER_SIZES}
BATCH = {"demo": 32, "paper": 16}  # global; the paper's 224 px steps are 12x dearer
STEPS = {"demo": 8, "paper": 2}  # a window of the interleaved timing
ROUNDS = {"demo": 6, "paper": 4}  # windows of each: bare, trainer, trainer, bare, ...
VARIANTS = (("fp32", torch.contiguous_format), ("fp32", torch.channels_last),
            ("bf16", torch.channels_last))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _format_name(fmt: torch.memory_format) -> str:
    return "channels_last" if fmt == torch.channels_last else "NCHW"


def input_shape(domain, shard_set, sizes: InputSizes, batch: int) -> tuple[int, ...]:
    if domain.latent:
        return (batch, 2 * shard_set.latent_channels, sizes.latent_crop, sizes.latent_crop)
    return (batch, 3, sizes.crop, sizes.crop)


def gemm_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of an n^3 matrix product (the machine's practical peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def bare_stepper(model: nn.Module, shape: tuple, classes: int, device: torch.device = CPU,
                 arithmetic: str = "fp32", fmt: torch.memory_format | None = None):
    """`run(steps)` -> images/s of forward + backward + SGD steps on tensors already on the
    device (by default in the trainer's memory format); the first step, which allocates and
    picks kernels, already taken."""
    fmt = memory_format(device) if fmt is None else fmt
    model = model.to(device, memory_format=fmt).train()
    x = torch.randn(shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (shape[0],), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with autocast(device, arithmetic):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def run(steps: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        return steps * shape[0] / (time.perf_counter() - start)

    step()
    return run


def bare_step(model: nn.Module, shape: tuple, classes: int, steps: int,
              device: torch.device = CPU, arithmetic: str = "fp32",
              fmt: torch.memory_format | None = None) -> float:
    """images/s of `steps` bare steps (bare_stepper) after the first."""
    return bare_stepper(model, shape, classes, device, arithmetic, fmt)(steps)


def steady_after(shard_set, batch: int, steps: int) -> int:
    """Batches to run before timing: one epoch's where the trainer holds the training split
    decoded (classifier.data.HELD_SAMPLES; the rate of every epoch after the first), else one
    (worker start-up is not the steady rate)."""
    held = shard_set.train_held and steps > 1  # not --quick
    return max(1, shard_set.counts["train"] // batch) if held else 1


def loader_alone(shard_set, config, batch: int, batches: int) -> float:
    data = iter(load_data(shard_set, config, 0, batch, CPU).train_epoch(0))
    for _ in islice(data, steady_after(shard_set, batch, batches)):
        pass
    start = time.perf_counter()
    for _ in islice(data, batches):
        pass
    return batches * batch / (time.perf_counter() - start)


def trainer_stepper(shard_set, config, batch: int, steps: int, device: torch.device = CPU,
                    group=None):
    """`run(steps)` -> images/s of this rank's train_one_epoch, in the trainer's precision and
    memory format, DDP over `group` (default: every process); warmed up first (steady_after)."""
    arithmetic = resolve_precision(config.precision, device)
    model = build_model(shard_set, config, None).to(device,
                                                    memory_format=memory_format(device))
    ddp = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index or 0] if device.type == "cuda" else None,
        gradient_as_bucket_view=True, process_group=group)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = iter(load_data(shard_set, config, 0, batch, CPU).train_epoch(0))
    amp = autocast(device, arithmetic)

    def run(n: int) -> float:
        _sync(device)
        start = time.perf_counter()
        train_one_epoch(ddp, Supervised(), optimizer, data, n, device, amp, 0, False)
        _sync(device)
        return n * batch / (time.perf_counter() - start)

    run(steady_after(shard_set, batch, steps))  # warm-up, worker start-up, samples held
    return run


def interleaved(bare, trainer, steps: int, rounds: int, timed=lambda run, steps: run(steps)
                ) -> dict:
    """The steppers `bare` and `trainer` timed by `timed` in alternating windows of `steps`
    (bare first in even rounds, the trainer first in odd ones), so that the machine's drift,
    which moves a rate by 10% between windows on a shared CPU, falls on both: each one's median
    rate and the median (and range) of the rounds' trainer / bare."""
    rates = {"bare": [], "trainer": []}
    for r in range(rounds):
        for name in ("bare", "trainer") if r % 2 == 0 else ("trainer", "bare"):
            rates[name].append(timed(bare if name == "bare" else trainer, steps))
    ratios = [t / b for t, b in zip(rates["trainer"], rates["bare"], strict=True)]
    return {"bare": median(rates["bare"]), "trainer": median(rates["trainer"]),
            "ratio": median(ratios), "ratios": (min(ratios), max(ratios))}


def domain_rows(shards: Path, quality: int, batch: int, steps: int, workers: int,
                device: torch.device, rounds: int = 4) -> list[dict]:
    """Per domain in the current process group: the bare step and the trainer's loop
    (interleaved windows of `steps`) and the loader alone, in images/s of this rank
    (bench-gpu's rows)."""
    rows = []
    for domain in (LATENT, DECODED, ORIGINAL):
        shard_set = open_shard_set(shards, domain.name, SetId.of(quality))
        config = TrainConfig(domain=domain.name, shards=str(shards), quality=quality,
                             init="none", workers=workers, batch_size=batch)
        shape = input_shape(domain, shard_set, config.input_sizes, batch)
        arithmetic = resolve_precision(config.precision, device)
        bare = bare_stepper(build_model(shard_set, config, None), shape, shard_set.num_classes,
                            device, arithmetic)
        trainer = trainer_stepper(shard_set, config, batch, steps, device)
        rows.append({"domain": domain.name, "input": tuple(shape[1:]),
                     **interleaved(bare, trainer, steps, rounds),
                     "loader": loader_alone(shard_set, config, batch, 4 * steps)})
    return rows


def allreduce_ms(model: nn.Module, group, repeats: int = 5) -> float:
    """ms of one all-reduce of the model's gradients (fp32, as DDP's buckets) over `group`,
    alone, the median of `repeats` after one."""
    grads = torch.zeros(sum(p.numel() for p in model.parameters()))
    times = []
    for _ in range(repeats + 1):
        dist.barrier(group)
        start = time.perf_counter()
        dist.all_reduce(grads, group=group)
        times.append(1000 * (time.perf_counter() - start))
    return median(times[1:])


def process_group(device: torch.device, rank: int = 0, world: int = 1,
                  port: int | None = None) -> None:
    """DDP's process group on a local port (a free one for a world of one)."""
    if port is None:
        port = free_port()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Layout:
    """L lanes (trainers at once, the pipeline's --lanes) of P processes (torchrun
    --nproc_per_node=P, one DDP group) x T threads."""

    processes: int
    threads: int
    lanes: int = 1
    full: bool = False  # every row (paper sizes, precision variants), or the demo's only
    quick: bool = False  # the code paths only: 1 step of 4 images, demo sizes (the test)
    workers: int | None = None  # loader workers per process; None: the trainer's default

    def __str__(self) -> str:
        one = f"{self.processes} x {self.threads}"
        one = f"{self.lanes} lanes of {one}" if self.lanes > 1 else one
        return one if self.workers is None else f"{one}, {self.workers} loader workers"

    def loader_workers(self) -> int | None:
        """The given workers, else None: the trainer's own default (TrainConfig: a held split
        on a CPU in process, else workers); quick: in process (the code paths, not the rates)."""
        return 0 if self.quick else self.workers


def _timed_together(measure, *args) -> float:
    """Every rank starts `measure(*args)` at once; the summed rate over the ranks."""
    dist.barrier()
    rate = torch.tensor([measure(*args)], dtype=torch.float64)
    dist.all_reduce(rate)
    return rate.item()


def _layout_rows(rank: int, layout: Layout, port: int, shards: str, quality: int,
                 results) -> None:
    """One process of a layout: every measurement, summed over the ranks; rank 0 reports."""
    torch.set_num_threads(layout.threads)
    torch.manual_seed(rank)
    world = layout.processes
    process_group(CPU, rank, world * layout.lanes, port)  # barriers and sums over every lane
    lanes = [dist.new_group(list(range(lane * world, (lane + 1) * world)))
             for lane in range(layout.lanes)]
    group = lanes[rank // world]  # DDP within the lane
    n = 256 if layout.quick else 2048
    rows = {"peak": {"fp32": _timed_together(gemm_rate, torch.float32, n)}}
    if native_bf16(CPU):
        rows["peak"]["bf16"] = _timed_together(gemm_rate, torch.bfloat16, n)
    adopted = resolve_precision("auto", CPU), memory_format(CPU)
    variants = [v for v in VARIANTS if v[0] == "fp32" or native_bf16(CPU)]
    workers = layout.loader_workers()
    for size in ("demo", "paper") if layout.full and not layout.quick else ("demo",):
        batch, steps, rounds = ((4, 1, 2) if layout.quick else
                                (BATCH[size] // world, STEPS[size], ROUNDS[size]))
        for domain in (LATENT, DECODED, ORIGINAL):
            shard_set = open_shard_set(shards, domain.name, SetId.of(quality))
            s = SIZES[size]
            config = TrainConfig(domain=domain.name, shards=shards, quality=quality, init="none",
                                 workers=workers, batch_size=batch * world, resize=s.resize,
                                 crop=s.crop, latent_resize=s.latent_resize,
                                 latent_crop=s.latent_crop)
            shape = input_shape(domain, shard_set, SIZES[size], batch)
            row = {"input": tuple(shape[1:]), "batch": batch * world}
            if domain is not ORIGINAL:  # original and decoded share the model and the input
                model = build_model(shard_set, config, None)
                row["flops"] = flops_per_image(model, tuple(shape[1:]))
                if world > 1:  # DDP's gradient averaging, each step, beside the bare step
                    row["allreduce_ms"] = allreduce_ms(model, group)
                for arithmetic, fmt in variants if layout.full else []:
                    row[arithmetic, fmt] = _timed_together(
                        bare_step, build_model(shard_set, config, None), shape,
                        shard_set.num_classes, steps, CPU, arithmetic, fmt)
            bare = bare_stepper(build_model(shard_set, config, None), shape,
                                shard_set.num_classes, CPU, *adopted)
            trainer = trainer_stepper(shard_set, config, batch, steps, CPU, group)
            row.update(interleaved(bare, trainer, steps, rounds, _timed_together))
            del bare, trainer  # the loader workers go before the next domain's start
            row["loader"] = _timed_together(loader_alone, shard_set, config, batch, 4 * steps)
            rows[size, domain.name] = row
    if rank == 0:
        results.put(rows)
    dist.destroy_process_group()


def measure_layout(layout: Layout, shards: Path, quality: int) -> dict:
    """Every row of one layout, its processes spawned fresh (no OpenMP state from the parent)."""
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_layout_rows, args=(layout, free_port(), str(shards), quality, results),
             nprocs=layout.processes * layout.lanes, join=True)
    return results.get()


def demo_shards(tmp: Path) -> tuple[Path, int]:
    """Small synthetic shards at the paper's image size, coded with the demo codec."""
    from prep.datasets.synthetic import write_dataset
    from prep.job.config import PrepConfig
    from prep.job.driver import run

    data = write_dataset(tmp / "textures", classes=4, per_class=20, size=362)
    run(PrepConfig(data=data, out=tmp / "shards", quality=4, codec_weights=DEMO_CODEC,
                   shard_size=16))
    return tmp / "shards" / "textures", 4


def print_tables(measured: dict[Layout, dict]) -> None:
    trainer_layout = next(iter(measured))
    peaks = measured[trainer_layout]["peak"]
    print("## The peak: a 2048^3 GEMM in every process at once, GFLOP/s summed\n")
    print("| layout (processes x threads) | fp32 | bf16 | bf16 / fp32 |\n|---|---:|---:|---:|")
    for layout, rows in measured.items():
        p = rows["peak"]
        bf16 = f"{p['bf16']:.0f} | {p['bf16'] / p['fp32']:.2f}" if "bf16" in p else "- | -"
        print(f"| {layout} | {p['fp32']:.0f} | {bf16} |")

    rows = measured[trainer_layout]
    models = [(key, row) for key, row in rows.items() if key != "peak" and "flops" in row]
    variants = sorted({k for _, row in models for k in row if isinstance(k, tuple)},
                      key=lambda v: VARIANTS.index(v))
    print(f"\n## The bare step by precision and memory format, img/s ({trainer_layout})\n")
    print("| model | sizes | input | GFLOP/img | " + " | ".join(
        f"{a} {_format_name(f)}" for a, f in variants) + " | best, % of fp32 peak |")
    print("|---|---|---|---:|" + "---:|" * (len(variants) + 1))
    for (size, domain), row in models:
        rates = [row.get(v) for v in variants]
        best = max(r for r in rates if r)
        model = "cResNet-39" if domain == LATENT.name else "ResNet-50"
        print(f"| {model} | {size} | {row['input']} | {row['flops'] / 1e9:.2f} | " +
              " | ".join(f"{r:.1f}" if r else "-" for r in rates) +
              f" | {100 * best * row['flops'] / 1e9 / peaks['fp32']:.0f}% |")

    adopted = resolve_precision("auto", CPU), memory_format(CPU)
    print(f"\n## The trainer in its settings ({adopted[0]}, {_format_name(adopted[1])}), "
          "img/s over all processes\n")
    print("| domain | sizes | layout | batch | bare img/s | trainer img/s | GFLOP/s | "
          "% of fp32 peak | % of bf16 peak | trainer / bare [rounds] | loader img/s | "
          "loader / bare | bare ms/step | gradient all-reduce ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for layout, rows in measured.items():
        for (size, domain), row in ((k, r) for k, r in rows.items() if k != "peak"):
            model_row = rows[size, DECODED.name if domain == ORIGINAL.name else domain]
            flops, sync = model_row["flops"], model_row.get("allreduce_ms")
            gflops = row["trainer"] * flops / 1e9
            bf16 = (f"{100 * gflops / rows['peak']['bf16']:.0f}%"
                    if "bf16" in rows["peak"] else "-")
            low, high = row["ratios"]
            print(f"| {domain} | {size} | {layout} | {row['batch']} | {row['bare']:.1f} | "
                  f"{row['trainer']:.1f} | {gflops:.0f} | "
                  f"{100 * gflops / rows['peak']['fp32']:.0f}% | {bf16} | "
                  f"{row['ratio']:.2f} [{low:.2f}, {high:.2f}] | {row['loader']:.0f} | "
                  f"{row['loader'] / row['bare']:.1f} | "
                  f"{1000 * row['batch'] * layout.lanes / row['bare']:.0f} | "
                  f"{'-' if sync is None else f'{sync:.0f}'} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=Path, default=None,
                   help="a prepared dataset folder (default: small synthetic shards at 362 px)")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--quick", action="store_true",
                   help="every code path with 1 step of 4 images (the benchmark's test)")
    add_option(p, TrainConfig, "workers", flags=("--loader-workers",), dest="loader_workers")
    p.add_argument("--processes", type=int, default=2,
                   help="the trainer's processes in the first, full layout (torchrun "
                   "--nproc_per_node; make train's NPROC); then 1 x every core, and one "
                   "1-thread trainer per core (the demo's lanes)")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    layouts = [Layout(args.processes, max(1, cores // args.processes), full=True,
                      quick=args.quick, workers=args.loader_workers),
               Layout(1, cores, quick=args.quick, workers=args.loader_workers)]
    if cores > 1:  # the demo's: a 1-process trainer per core
        layouts.append(Layout(1, 1, lanes=cores, quick=args.quick, workers=args.loader_workers))
    with tempfile.TemporaryDirectory() as tmp:
        shards, quality = (args.shards, args.quality) if args.shards else demo_shards(Path(tmp))
        print(f"\n# train benchmark: {shards}, {cores} cores, native bf16: "
              f"{native_bf16(CPU)}; global batch {BATCH} at the sizes {SIZES}\n")
        print_tables({layout: measure_layout(layout, shards, quality) for layout in layouts})


if __name__ == "__main__":
    main()
