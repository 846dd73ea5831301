"""The arithmetic a classifier runs in, decided in one place for training, evaluation and the
benchmarks: the autocast precision and the memory format.

bf16 autocast pays where the hardware multiplies bf16 faster than fp32: CUDA GPUs with bf16,
CPUs with AMX tiles, and AMD CPUs with AVX-512 BF16 (Zen 4 and Zen 5). An Intel CPU with
AVX-512 BF16 and no AMX multiplies bf16 slower than fp32: `auto` keeps fp32 there, and
`--precision bf16` remains a choice on any CPU with native bf16. `make bench-train` measures
both on the machine at hand.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: native bf16 arithmetic
CPU_FAST_BF16_FLAG = "amx_bf16"  # bf16 matrix tiles: faster than fp32
AMD = "AuthenticAMD"  # /proc/cpuinfo's vendor_id: its AVX-512 BF16 is faster than fp32 too


@cache
def cpuinfo_field(name: str) -> str:
    """A field of /proc/cpuinfo's first CPU (Linux); empty where it is not readable."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((ln for ln in lines if ln.startswith(name)), "").partition(":")[2].strip()


def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's vendor and feature flags (Linux); empty where /proc/cpuinfo is not readable."""
    return cpuinfo_field("vendor_id"), frozenset(cpuinfo_field("flags").split())


def machine(device: torch.device) -> str:
    """The machine a timing or a result came from, in words: the GPU's name, or the CPU's
    model, cores and the vector units that decide its arithmetic."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    flags = cpu_flags()
    units = [name for flag, name in (("amx_tile", "AMX"), ("avx512_bf16", "AVX-512 BF16"),
                                     ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags]
    return (f"{cpuinfo_field('model name') or 'CPU'}, {os.cpu_count()} cores"
            + (f" ({', '.join(units[:2])})" if units else ""))


def cpu_flags() -> frozenset[str]:
    return cpu_info()[1]


def fast_cpu_bf16(vendor: str, flags: frozenset[str]) -> bool:
    """Whether a CPU multiplies bf16 faster than fp32 (see above)."""
    return CPU_FAST_BF16_FLAG in flags or (vendor == AMD and "avx512_bf16" in flags)


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
                else fast_cpu_bf16(*cpu_info()))
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
