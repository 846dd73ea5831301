"""`python -m prep`: encode a texture dataset with the learned codec (and, as anchors at equal
rate, Pillow's JPEG or WebP) into WebDataset shards."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from foundation.cli import stage_main
from foundation.hyperprior import QUALITIES
from foundation.images import MAX_PIXELS
from foundation.sets import CLASSICAL, SetId
from prep.job.config import PrepConfig
from prep.job.driver import describe, run, too_many_failures

DEFAULT_QUALITY = 8  # the learned codec's, when no other coded set is asked for


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m prep",
        description="Encode a dataset with CompressAI's bmshj2018-hyperprior (MS-SSIM) on Ray "
        "actors into WebDataset shards: <out>/<dataset>/q<Q>/ (bitstreams, y_hat, sigma_hat "
        "index, decoded image), <out>/<dataset>/original/ (original bytes) and, with --jpeg or "
        "--webp, <out>/<dataset>/jpeg<P>/ and webp<P>/ (the file's bytes and the decoded "
        "image, bpp from the file's bytes), each with manifest.parquet, failures.parquet and "
        "dataset.json. Running it again resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quality", "-q", type=int, default=None, choices=QUALITIES,
                   help=f"learned codec quality (1 = lowest rate); default {DEFAULT_QUALITY}, "
                   "none when only --jpeg/--webp sets are asked for")
    p.add_argument("--data", type=Path, default=Path("data/minc-2500"),
                   help="MINC-2500 (categories.txt, images/, labels/) or one folder per class")
    p.add_argument("--out", default="data/shards",
                   help="output root: a local or shared path, or s3://bucket/prefix, gs://...")
    p.add_argument("--split", type=int, default=1, help="MINC-2500 split number (1-5)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the stratified split of a class-folder dataset")
    p.add_argument("--codec-weights", type=Path, default=None,
                   help="a state dict (torch.save) of the codec, any N, M; default: "
                   "CompressAI's pretrained file from the torch.hub cache (downloaded if missing)")
    p.add_argument("--workers", type=int, default=None,
                   help="workers (default: one per CPU; with GPUs, split pipeline: one per CPU "
                   "not driving a GPU; fused: one per GPU)")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="torch threads per worker (default: CPUs / workers; 1 in the split "
                   "pipeline)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: GPUs if the Ray cluster has them")
    p.add_argument("--pipeline", choices=("auto", "fused", "split"), default="auto",
                   help="split: one transform actor per GPU feeds a CPU worker on every other "
                   "core (the default with GPUs); fused: each worker runs the whole codec")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images transformed together (default: 1 on CPU, 16 on GPU and in the "
                   "split pipeline)")
    p.add_argument("--shard-size", type=int, default=256, help="samples per shard")
    p.add_argument("--address", default=None,
                   help="Ray cluster address ('auto' inside a cluster); default: a local Ray")
    p.add_argument("--force", action="store_true", help="redo every shard of the sets")
    p.add_argument("--verify", action="store_true",
                   help="also check finished shards' sha256 (reads them all; a resume always "
                   "checks their sizes) and redo those that differ")
    p.add_argument("--no-wait", action="store_true",
                   help="when another prep job is writing one of the sets, exit at once "
                   "(exit 2) instead of waiting for it")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help="larger images are recorded as failures, never decoded (the default "
                   "fits a CPU worker's memory, see docs/data.md)")
    p.add_argument("--max-failures", type=int, default=0,
                   help="exit non-zero when more inputs than this fail (good shards are kept)")
    p.add_argument("--no-original", dest="original", action="store_false",
                   help="do not write the original/ set")
    for codec in CLASSICAL:
        p.add_argument(f"--{codec}", type=int, nargs="+", default=None, metavar="P",
                       help=f"also write {codec}<P>/ sets: Pillow's {codec} encoder at these "
                       "qualities (1-100), classical anchors at equal rate")
    p.add_argument("--original-only", action="store_true",
                   help="write only the original/ set (no codec; e.g. a pretraining corpus)")
    return p


def config_from(argv: list[str] | None = None) -> PrepConfig:
    """The command line as a PrepConfig (a bad combination exits with the parser's message)."""
    args = parser().parse_args(argv)
    if args.original_only and not args.original:
        parser().error("--original-only and --no-original leave nothing to write")
    args.classical = tuple(SetId(codec, quality) for codec in CLASSICAL
                           for quality in dict.fromkeys(getattr(args, codec) or ()))
    if args.original_only and (args.quality or args.classical):
        parser().error("--original-only writes no coded set: drop --quality, --jpeg, --webp")
    if args.quality is None and not args.original_only and not args.classical:
        args.quality = DEFAULT_QUALITY
    for name in ("original_only", *CLASSICAL):
        delattr(args, name)
    return PrepConfig(**vars(args))


@stage_main
def main(argv: list[str] | None = None) -> int:
    config = config_from(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run(config)
    except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM (job.run raises it for both)
        name = stop.args[0] if stop.args else "SIGINT"
        print(f"interrupted ({name}): the workers are stopped and the finished shards kept; "
              f"the same command codes the rest", file=sys.stderr)
        return 128 + signal.Signals[name]
    print(describe(summary))
    if error := too_many_failures(config, summary):
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
