"""Where a stage runs: the one reading of `--device auto|cpu|cuda` for prep, training,
evaluation and the benchmarks."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str, has_cuda: bool | None = None, where: str = "this machine") -> str:
    """`cuda` or `cpu`: auto is CUDA where there is a GPU; cuda without one is an error that
    says so. has_cuda: whether `where` has a GPU (default: torch's view of this machine; prep
    asks its Ray cluster)."""
    if device not in DEVICES:
        raise ValueError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available() if has_cuda is None else has_cuda
    if device == "cuda" and not has_cuda:
        raise RuntimeError(f"--device cuda was asked for, but {where} has no CUDA GPU")
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"
