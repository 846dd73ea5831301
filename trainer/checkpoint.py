"""Per-epoch checkpoints: written atomically by rank 0, read with weights_only=True."""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from prep.store.storage import write_atomic

CHECKPOINT = "checkpoint.pth"


def save(out_dir: Path, model, optimizer, scheduler, epoch: int, config, history: list,
         run_id: str | None) -> Path:
    """Everything a resumed run needs to continue exactly."""
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "epoch": epoch,
        "rng": {"torch": torch.get_rng_state(), "python": json.dumps(random.getstate()),
                "numpy": json.dumps(np.random.get_state()[1].tolist())},
        "config": json.dumps(asdict(config)), "history": json.dumps(history),
        "mlflow_run_id": run_id or "",
    }
    if torch.cuda.is_available():
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = out_dir / CHECKPOINT
    write_atomic(path, buffer.getvalue())
    return path


def load(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["config"] = json.loads(state["config"])
    state["history"] = json.loads(state["history"])
    return state


def restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    version, internal, gauss = json.loads(rng["python"])
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", np.array(json.loads(rng["numpy"]), dtype=np.uint32), 624,
                         0, 0.0))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
