"""What a prep job writes and how: its configuration, and the command line that gives it back."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from foundation.images import MAX_PIXELS
from foundation.sets import CLASSICAL, SetId
from foundation.storage import Location


@dataclass(frozen=True)
class PrepConfig:
    data: Path
    out: Location  # a local or shared path, or an object store URI (s3://, gs://)
    quality: int | None  # the learned codec's quality; None: no learned set
    split: int = 1
    seed: int = 0
    codec_weights: Path | None = None
    workers: int | None = None  # CPU actors; default: one per CPU of the cluster
    threads_per_worker: int | None = None
    device: str = "auto"  # auto | cpu | cuda
    pipeline: str = "auto"  # auto (split on GPUs) | fused | split: see choose_resources
    batch_size: int | None = None  # default: 1 on CPU, 16 on GPU
    shard_size: int = 256
    address: str | None = None  # None: a local Ray; "auto" or host:port: an existing cluster
    force: bool = False
    max_failures: int = 0
    original: bool = True  # also write the original/ set (anchor 3)
    verify: bool = False  # also compare finished shards' sha256 with their fingerprints
    max_pixels: int = MAX_PIXELS  # larger images are failures, not decoded
    classical: tuple[SetId, ...] = ()  # classical sets: jpeg30, webp50, ...
    no_wait: bool = False  # another job holds a set: refuse instead of waiting (job/lock.py)

    def to_argv(self) -> list[str]:
        """`python -m prep`'s command line for this config (prep.cli.config_from gives it
        back): every field that differs from its default, the classical sets as --jpeg P ...,
        no learned set and no classical one as --original-only."""
        argv = ["--data", str(self.data), "--out", str(self.out)]
        if self.quality is not None:
            argv += ["--quality", str(self.quality)]
        elif not self.classical:
            argv.append("--original-only")
        if not self.original:
            argv.append("--no-original")
        for codec in CLASSICAL:
            qualities = [str(s.quality) for s in self.classical if s.codec == codec]
            argv += [f"--{codec}", *qualities] if qualities else []
        default = PrepConfig(data=self.data, out=self.out, quality=self.quality)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("data", "out", "quality", "original", "classical") or \
                    value == getattr(default, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            argv += [flag] if isinstance(value, bool) else [flag, str(value)]
        return argv

    def sets(self) -> list[SetId]:
        """Every set the job writes: the original, the learned quality's, the classical ones."""
        learned = [SetId.of(self.quality)] if self.quality else []
        return [SetId()] * self.original + learned + list(self.classical)
