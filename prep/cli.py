"""`python -m prep`: encode a texture dataset with the learned codec (and, as anchors at equal
rate, Pillow's JPEG or WebP) into WebDataset shards."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from foundation.cli import stage_main
from foundation.command_line import command_parser, config_of
from foundation.sets import CLASSICAL, SetId
from prep.job.config import DEFAULT_QUALITY, PrepConfig
from prep.job.driver import describe, run, too_many_failures


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "python -m prep",
        "Encode a dataset with CompressAI's bmshj2018-hyperprior (MS-SSIM) on Ray actors into "
        "WebDataset shards: <out>/<dataset>/q<Q>/ (bitstreams, y_hat, sigma_hat index, decoded "
        "image), <out>/<dataset>/original/ (original bytes) and, with --jpeg or --webp, "
        "<out>/<dataset>/jpeg<P>/ and webp<P>/ (the file's bytes and the decoded image, bpp "
        "from the file's bytes), each with manifest.parquet, failures.parquet and "
        "dataset.json. Running it again resumes.", PrepConfig)
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
    return config_of(PrepConfig, vars(args))


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
