"""Per-epoch checkpoints: written atomically by rank 0, read with weights_only=True.

The newest is CHECKPOINT, the one before it PREVIOUS: a damaged newest (a node lost while
copying the run folder, a full disk outside this code's writes) costs one epoch, not the run.
"""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from foundation.storage import write_atomic

CHECKPOINT = "checkpoint.pth"
PREVIOUS = "checkpoint.previous.pth"
DAMAGED = "checkpoint.damaged.pth"  # a newest that could not be read, set aside on resume


class Damaged(ValueError):
    """No checkpoint of a run folder can be read."""


def save(out_dir: Path, model, optimizer, scheduler, epoch: int, config, history: list,
         run_id: str | None, *, precision: str) -> Path:
    """Everything a resumed run needs to continue exactly, and the precision its training
    resolved (fp32, bf16), which its evaluation runs in (`precision`; a checkpoint written
    before it was kept has none)."""
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "epoch": epoch,
        "rng": {"torch": torch.get_rng_state(), "python": json.dumps(random.getstate()),
                "numpy": json.dumps(np.random.get_state()[1].tolist())},
        "config": json.dumps(asdict(config)), "history": json.dumps(history),
        "mlflow_run_id": run_id or "", "precision": precision,
    }
    if torch.cuda.is_available():
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = out_dir / CHECKPOINT
    if path.is_file():  # a rename: the newest is never absent, only under one of two names
        os.replace(path, out_dir / PREVIOUS)
    write_atomic(path, buffer.getvalue())
    return path


def load(path: Path) -> dict:
    """A checkpoint; a damaged one (cut short, zeroed, not a checkpoint) is a Damaged error
    in one line naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["config"] = json.loads(state["config"])
        state["history"] = json.loads(state["history"])
        state["epoch"]
    except FileNotFoundError:
        raise
    except Exception as err:  # torch's zip reader, unpickler and json all raise their own
        first = (str(err).splitlines() or [""])[0][:120]
        raise Damaged(f"{path} is damaged ({type(err).__name__}: {first})") from err
    return state


def load_latest(out_dir: Path, say=print) -> tuple[Path, dict] | None:
    """The newest readable checkpoint of a run folder and its state, each damaged one said in
    one line; None when there is none; Damaged when there are some and none can be read."""
    paths = [p for p in (out_dir / CHECKPOINT, out_dir / PREVIOUS) if p.is_file()]
    for path in paths:
        try:
            return path, load(path)
        except Damaged as err:
            say(f"{err}: skipped")
    if paths:
        raise Damaged(f"no readable checkpoint in {out_dir} ({', '.join(p.name for p in paths)} "
                      f"damaged): remove them to train from the start, or train without "
                      f"--resume into another --out")
    return None


def set_aside(out_dir: Path) -> Path:
    """Move a damaged newest checkpoint out of the rotation (the next save would keep it as
    PREVIOUS); kept for inspection."""
    target = out_dir / DAMAGED
    os.replace(out_dir / CHECKPOINT, target)
    return target


def restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    version, internal, gauss = json.loads(rng["python"])
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", np.array(json.loads(rng["numpy"]), dtype=np.uint32), 624,
                         0, 0.0))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
