"""What a prep job writes and how: its configuration, and the command line that gives it back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foundation.command_line import argv_of, check_choices, option
from foundation.hyperprior import QUALITIES
from foundation.images import MAX_PIXELS
from foundation.runtime import device_option
from foundation.sets import CLASSICAL, SetId
from foundation.storage import Location

DEFAULT_QUALITY = 8  # the learned codec's, when no other coded set is asked for


@dataclass(frozen=True)
class PrepConfig:
    """A prep job; each field is a flag of `python -m prep` (foundation.command_line), the
    classical sets given as --jpeg P ... and --webp P ... (prep.cli)."""

    data: Path = option(Path("data/minc-2500"), "MINC-2500 (categories.txt, images/, labels/) "
                        "or one folder per class")
    out: Location = option("data/shards", "output root: a local or shared path, or "
                           "s3://bucket/prefix, gs://...", type=str)
    quality: int | None = option(  # None: no learned set
        None, f"learned codec quality (1 = lowest rate); default {DEFAULT_QUALITY}, none when "
        "only --jpeg/--webp sets are asked for", flags=("--quality", "-q"), choices=QUALITIES)
    split: int = option(1, "MINC-2500 split number (1-5)")
    seed: int = option(0, "seed of the stratified split of a class-folder dataset")
    codec_weights: Path | None = option(
        None, "a state dict (torch.save) of the codec, any N, M; default: CompressAI's "
        "pretrained file from the torch.hub cache (downloaded if missing)")
    workers: int | None = option(
        None, "workers (default: one per CPU; with GPUs, split pipeline: one per CPU not "
        "driving a GPU; fused: one per GPU)")
    threads_per_worker: int | None = option(
        None, "torch threads per worker (default: CPUs / workers; 1 in the split pipeline)")
    device: str = device_option(help="auto: GPUs if the Ray cluster has them")
    pipeline: str = option(  # see job.pool.choose_resources
        "auto", "split: one transform actor per GPU feeds a CPU worker on every other core "
        "(the default with GPUs); fused: each worker runs the whole codec",
        choices=("auto", "fused", "split"))
    batch_size: int | None = option(
        None, "images transformed together (default: 1 on CPU, 16 on GPU and in the split "
        "pipeline)")
    shard_size: int = option(256, "samples per shard")
    address: str | None = option(
        None, "Ray cluster address ('auto' inside a cluster); default: a local Ray")
    force: bool = option(False, "redo every shard of the sets")
    verify: bool = option(
        False, "also check finished shards' sha256 (reads them all; a resume always checks "
        "their sizes) and redo those that differ")
    no_wait: bool = option(  # job/lock.py
        False, "when another prep job is writing one of the sets, exit at once (exit 2) "
        "instead of waiting for it")
    max_pixels: int = option(
        MAX_PIXELS, "larger images are recorded as failures, never decoded (the default fits a "
        "CPU worker's memory, see docs/data.md)")
    max_failures: int = option(
        0, "exit non-zero when more inputs than this fail (good shards are kept)")
    original: bool = option(True, "do not write the original/ set (anchor 3)")
    classical: tuple[SetId, ...] = ()  # classical sets: jpeg30, webp50, ...

    def __post_init__(self):
        check_choices(self)

    def to_argv(self) -> list[str]:
        """`python -m prep`'s command line for this config (prep.cli.config_from gives it
        back): every flag that differs from its default (the data and the output always), the
        classical sets as --jpeg P ..., no learned set and no classical one as
        --original-only."""
        argv = argv_of(self, always=("data", "out"))
        for codec in CLASSICAL:
            qualities = [str(s.quality) for s in self.classical if s.codec == codec]
            argv += [f"--{codec}", *qualities] if qualities else []
        return argv + (["--original-only"] if self.quality is None and not self.classical
                       else [])

    def sets(self) -> list[SetId]:
        """Every set the job writes: the original, the learned quality's, the classical ones."""
        learned = [SetId.of(self.quality)] if self.quality else []
        return [SetId()] * self.original + learned + list(self.classical)
