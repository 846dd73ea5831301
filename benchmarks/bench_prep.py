"""`make bench-prep`: prep throughput, scaling, worker memory and bytes per shard member.

Side by side in one run, on the same images:
  (a) the codec in a bare in-process loop on all cores: read + decode JPEG, code_images (reference)
  (b) the Ray job with its default settings (one worker per CPU, 1 thread each)
  (c) the Ray job with 1 worker and with 2 workers, 1 thread each
  (d) the CPU stages of the split pipeline alone (a GPU node's CPU workers: the strings, their
      decode on the CPU and its check, the members): 1 core, then 2 threads of one process
      and 2 processes, on transforms computed beforehand
  (e) jobs with nothing left to do (their sets written by (b)): 3 `python -m prep` processes
      one after another, against the 3 jobs in one process on one Ray (what the pipeline does):
      the start-up that a pipeline pays per prep job
Each job row: the encoding phase (actor start-up included), its steady state (between the first
and the last shard to finish) and end to end (Ray start, listing, manifests too).
Then the storage of each member per sample against the original JPEG.

    python -m benchmarks.bench_prep [--data DIR] [--quality 8] [--weights FILE] [--images N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
from PIL import Image

from foundation import schema
from foundation.coding import code_images, entropy_code, transform
from foundation.hyperprior import codec_sizes, init_weights, load_codec, read_weights_file
from prep.datasets.listing import list_dataset
from prep.job.config import PrepConfig
from prep.job.driver import run

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/minc-2500-sample/minc-2500"


def seeded_codec(quality: int, path: Path) -> Path:
    """The paper's architecture for this quality, seeded weights with a non-trivial latent.

    Compute does not depend on the weights; the entropy coder's work does (these latents code
    to ~7 bpp, more than a trained codec's, so coding here is slower than it would be).
    """
    path.write_bytes(init_weights(quality, latent_gain=40.0))
    return path


def bare_loop(paths: list[Path], weights_file: Path) -> float:
    """(a): images/s of decode + code_images in one process with every core."""
    torch.set_num_threads(os.cpu_count() or 1)
    model = load_codec(read_weights_file(weights_file))
    code_images(model, [Image.open(paths[0]).convert("RGB")])  # warm-up
    start = time.perf_counter()
    for path in paths:
        code_images(model, [Image.open(path).convert("RGB")])
    return len(paths) / (time.perf_counter() - start)


_STAGES: dict = {}  # the decoder and the transforms, inherited by forked processes


def cpu_stages(indexes: list[int]) -> int:
    """What a CPU worker of the split pipeline does per image, for these images."""
    decoder = _STAGES["decoder"]
    for i in indexes:
        c = entropy_code(decoder, _STAGES["transformed"][i])
        schema.encode_latent(c.y_hat), schema.encode_scale_index(c.scale_index)
        schema.encode_png(c.decoded)
    return len(indexes)


def cpu_stage_rates(paths: list[Path], weights_file: Path) -> dict[str, float]:
    """(d): images/s of the CPU stages on 1 core, in 2 threads and in 2 processes."""
    torch.set_num_threads(1)
    model = load_codec(read_weights_file(weights_file))
    _STAGES.update(decoder=model, transformed=[
        t for path in paths for t in transform(model, [Image.open(path).convert("RGB")])])
    everything, halves = list(range(len(paths))), [list(range(len(paths)))[i::2] for i in (0, 1)]
    cpu_stages(everything[:2])  # warm-up
    rates = {}
    for label, pool in [("1 core", None), ("2 threads, 1 process", ThreadPoolExecutor(2)),
                        ("2 processes", ProcessPoolExecutor(2, mp_context=get_context("fork")))]:
        start = time.perf_counter()
        done = cpu_stages(everything) if pool is None else sum(pool.map(cpu_stages, halves))
        rates[label] = done / (time.perf_counter() - start)
        if pool is not None:
            pool.shutdown()
    return rates


def job(data: Path, out: Path, quality: int, weights: Path, **kw) -> dict:
    start = time.perf_counter()
    summary = run(PrepConfig(data=data, out=out, quality=quality, codec_weights=weights,
                             original=False, shard_size=8, force=True, **kw))
    wall = time.perf_counter() - start
    return {
        "wall": summary.encoded_images / wall,
        "encode": summary.encoded_images / summary.seconds,
        "steady": summary.steady_rate,
        "peak_mib": max(summary.peak_rss_bytes.values()) / 2**20,
        "resources": summary.resources.describe(),
        "set_dir": summary.sets[0].set_dir,
    }


NOOP_JOBS = 3
ONE_RAY = """import sys
from prep.cli import config_from
from prep.job.driver import ray_session, run
with ray_session(None):
    for _ in range(int(sys.argv[1])):
        run(config_from(sys.argv[2:]))
"""


def noop_jobs(config: PrepConfig) -> dict[str, float]:
    """(e): seconds for NOOP_JOBS jobs of `config` whose shards are all done, each in a process
    of its own, and all in one process on one Ray."""
    argv, quiet = config.to_argv(), {"stdout": subprocess.DEVNULL, "check": True}
    start = time.perf_counter()
    for _ in range(NOOP_JOBS):
        subprocess.run([sys.executable, "-m", "prep", *argv], **quiet)
    apart = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", ONE_RAY, str(NOOP_JOBS), *argv], **quiet)
    return {"apart": apart, "together": time.perf_counter() - start}


def storage(set_dir: Path, root: Path) -> list[tuple[str, float]]:
    manifest = schema.read_manifest(set_dir).to_pylist()
    original = statistics.mean((root / r["source"]).stat().st_size for r in manifest)
    rows = [("original JPEG (reference)", original)]
    for column, member in [("y_bytes", schema.Y_STRING), ("z_bytes", schema.Z_STRING),
                           ("latent_bytes", schema.LATENT), ("scales_bytes", schema.SCALES),
                           ("decoded_bytes", schema.DECODED)]:
        rows.append((member, statistics.mean(r[column] for r in manifest)))
    both = statistics.mean(r["latent_bytes"] + r["scales_bytes"] for r in manifest)
    rows.append((f"{schema.LATENT} + {schema.SCALES}", both))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SAMPLE)
    p.add_argument("--quality", type=int, default=8)
    p.add_argument("--weights", type=Path, default=None,
                   help="codec weights (default: the paper's q architecture, seeded weights)")
    p.add_argument("--images", type=int, default=120)
    args = p.parse_args(argv)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights or seeded_codec(args.quality, tmp / "codec.pth")
        listing = list_dataset(args.data)
        data = subset(listing, args.images, tmp / "data")
        paths = [data / i.source for i in list_dataset(data).items]
        sizes = codec_sizes(load_codec(read_weights_file(weights)))
        print(f"# prep benchmark: {len(paths)} images of {listing.name} "
              f"({Image.open(paths[0]).size[0]} px), quality {args.quality}, codec N={sizes['N']} "
              f"M={sizes['M']} ({weights.name}), {cpus} CPUs, torch {torch.__version__}\n")
        reference = bare_loop(paths, weights)
        rows = [(f"(a) bare loop, 1 process x {cpus} threads", reference, None, None, None, None)]
        runs = {}
        for label, kw in [("(b) Ray job, defaults", {}),
                          ("(c) Ray job, 1 worker x 1 thread", {"workers": 1,
                                                                 "threads_per_worker": 1}),
                          ("(c) Ray job, 2 workers x 1 thread", {"workers": 2,
                                                                  "threads_per_worker": 1})]:
            runs[label] = r = job(data, tmp / "out", args.quality, weights, **kw)
            rows.append((f"{label} [{r['resources']}]", r["encode"], r["steady"], r["wall"],
                         r["peak_mib"], r["encode"] / reference))
        print("| setting | img/s (encoding) | img/s (steady) | img/s (end to end) | "
              "peak MiB/worker | encoding x (a) |")
        print("|---|---:|---:|---:|---:|---:|")
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        for label, rate, steady, wall, peak, ratio in rows:
            print(f"| {label} | {rate:.2f} | {fmt(steady, '.2f')} | {fmt(wall, '.2f')} "
                  f"| {fmt(peak, '.0f')} | {fmt(ratio, '.2f')} |")
        one = runs["(c) Ray job, 1 worker x 1 thread"]
        two = runs["(c) Ray job, 2 workers x 1 thread"]
        print(f"\n2 workers / 1 worker: {two['encode'] / one['encode']:.2f}x encoding, "
              f"{two['steady'] / one['steady']:.2f}x steady (target >= 1.7)")
        print(f"(b) / (a): {runs['(b) Ray job, defaults']['encode'] / reference:.2f}x "
              "(target >= 0.9)\n")
        stages = cpu_stage_rates(paths, weights)
        print("| (d) CPU stages of the split pipeline | img/s | x 1 core |")
        print("|---|---:|---:|")
        for label, rate in stages.items():
            print(f"| {label} | {rate:.2f} | {rate / stages['1 core']:.2f} |")
        print(f"\nper core {stages['1 core']:.2f} img/s: a node's CPU workers (one per core "
              "not driving a GPU) code about cores x this\n")
        noop = noop_jobs(PrepConfig(data=data, out=tmp / "out", quality=args.quality,
                                    codec_weights=weights, original=False, shard_size=8))
        print(f"| (e) {NOOP_JOBS} prep jobs with nothing left to do | s | s per job | x apart |")
        print("|---|---:|---:|---:|")
        for label, key in [("a process each (python -m prep)", "apart"),
                           ("one process, one Ray (the pipeline)", "together")]:
            print(f"| {label} | {noop[key]:.1f} | {noop[key] / NOOP_JOBS:.1f} "
                  f"| {noop[key] / noop['apart']:.2f} |")
        print()
        print("| member | bytes per sample | x original JPEG |")
        print("|---|---:|---:|")
        table = storage(runs["(b) Ray job, defaults"]["set_dir"], data)
        for name, value in table:
            print(f"| {name} | {value:,.0f} | {value / table[0][1]:.2f} |")


def subset(listing, n: int, dest: Path) -> Path:
    """The first n images (by split file order), linked into a small MINC-layout copy."""
    items = listing.items[:n]
    root = dest / listing.name
    (root / "labels").mkdir(parents=True)
    (root / "categories.txt").write_text("\n".join(listing.categories) + "\n")
    for split in schema.SPLITS:
        lines = [i.source for i in items if i.split == split]
        (root / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    for item in items:
        target = root / item.source
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(listing.path(item), target)
    return root


if __name__ == "__main__":
    main()
