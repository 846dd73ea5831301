"""The arithmetic a classifier runs in, decided in one place for training, evaluation and the
benchmarks: the autocast precision and the memory format.

bf16 autocast pays where the hardware multiplies bf16 faster than fp32: CUDA GPUs with bf16 and
CPUs with AMX tiles. A CPU with AVX-512 BF16 alone (vdpbf16ps) has native bf16 but, on the Xeon
`make bench-train` was run on, multiplies it at about half the fp32 rate; `auto` keeps fp32
there and `--precision bf16` remains a choice on any CPU with native bf16.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: native bf16 arithmetic
CPU_FAST_BF16_FLAG = "amx_bf16"  # bf16 matrix tiles: faster than fp32


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not readable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def resolve(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 where it is faster than fp32 on `device`, else fp32; `bf16` is checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        fast = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                else CPU_FAST_BF16_FLAG in cpu_flags())
        return "bf16" if fast else "fp32"
    if precision == "bf16" and not native_bf16(device):
        raise ValueError(f"--precision bf16: this {device.type.upper()} has no native bf16 "
                         f"({' or '.join(CPU_BF16_FLAGS)} on a CPU); use --precision fp32 or auto")
    return precision


def for_evaluation(trained: str, device: torch.device) -> str:
    """A classifier's precision when evaluated on `device`: what it was trained with (its
    --precision resolved here), fp32 where this device has no bf16."""
    return resolve(trained if trained != "bf16" or native_bf16(device) else "fp32", device)


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The forward pass's context for a resolved precision."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last: cuDNN's and oneDNN's native convolution layout (no reorder per layer)."""
    del device  # the same on both; measured by make bench-train
    return torch.channels_last
