"""Published weight files through the torch.hub cache, their sha256 prefix checked.

Both CompressAI's and torchvision's file names end in the first hex digits of the file's
sha256 (`...-cc15b5f3.pth.tar`); neither library checks a file that someone placed in the
cache. This does, for a download and for a placed file alike.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str, what: str, otherwise: str) -> tuple[bytes, str]:
    """The file's bytes and sha256, from the cache or downloaded; offline, one clear error
    naming the file, the folder to put it in and `otherwise` (what the user can do instead)."""
    path = checkpoint_dir() / url.rsplit("/", 1)[-1]
    expected = path.name.split("-")[-1].split(".")[0]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=expected, progress=True)
        except Exception as err:
            raise FileNotFoundError(
                f"{what} {path.name} is not in {path.parent} and could not be downloaded from "
                f"{url} ({type(err).__name__}: {err}). Put that file in {path.parent} (set "
                f"TORCH_HOME to use another cache), or {otherwise}."
            ) from None
    data = path.read_bytes()
    digest = sha256_of(data)
    if not digest.startswith(expected):
        raise ValueError(
            f"{path} has sha256 {digest[:8]}..., but its name says {expected}: the file is "
            f"corrupt or not the published one. Delete it and run again."
        )
    return data, digest
