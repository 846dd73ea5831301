"""A finished run's model as a starting point for other classifiers (`--init FILE|name`).

    python -m classifier.backbone runs/pretrain/procedural/checkpoint.pth \
        backbones/procedural/resnet50.pth

Keeps every tensor but the classifier head (fc: its classes are the corpus's, not the task's),
floating-point tensors in float16 (half the size; the loader widens them back to float32).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
from pathlib import Path

import torch

from classifier import checkpoint
from classifier.models import INITS
from foundation.cli import stage_main
from foundation.storage import write_atomic


def export(run_checkpoint: Path, out: Path) -> tuple[int, str]:
    """Write the backbone; returns its size in bytes and its sha256."""
    return write_start(checkpoint.load(run_checkpoint)["model"], out)


def write_start(state: dict[str, torch.Tensor], out: Path, trunk: str | None = None,
                codecs: list[str] = ()) -> tuple[int, str]:
    """A model's tensors as a start: without fc, float16; with `trunk` (a start's name or
    file), a file of these tensors that classifier.models.initial_state lays over the trunk's,
    and the sha256 of the codec weights whose latents they were fitted to (`codecs`). A trunk
    file is named relative to `out`'s folder, so that a runs folder can move whole.
    Returns its size and sha256."""
    backbone = {k: v.half() if v.is_floating_point() else v
                for k, v in state.items() if not k.startswith("fc.")}
    if trunk is not None and trunk not in INITS:
        trunk = os.path.relpath(Path(trunk).resolve(), out.resolve().parent)
    buffer = io.BytesIO()
    torch.save(backbone if trunk is None else
               {"trunk": trunk, "model": backbone, "codecs": list(codecs)}, buffer)
    data = buffer.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data)
    return len(data), hashlib.sha256(data).hexdigest()


@stage_main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m classifier.backbone", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pth")
    p.add_argument("out", type=Path, help="the backbone file to write")
    args = p.parse_args(argv)
    size, digest = export(args.checkpoint, args.out)
    print(f"wrote {args.out}: {size / 2**20:.1f} MiB, sha256 {digest}")


if __name__ == "__main__":
    main()
