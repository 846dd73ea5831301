"""The runtime, decided in one place for prep, training, the latent fits, evaluation and the
benchmarks: the device a stage runs on and the arithmetic of a classifier (the autocast
precision and the memory format). Every parser takes its --device and --precision from here
(`device_option`, `precision_option`); each stage resolves them once (`Runtime.resolve`), and
the trainer keeps the precision it resolved in its checkpoint, which evaluation runs in.

bf16 autocast pays where the hardware multiplies bf16 faster than fp32: CUDA GPUs with bf16,
CPUs with AMX tiles, and AMD CPUs with AVX-512 BF16 (Zen 4 and Zen 5). An Intel CPU with
AVX-512 BF16 and no AMX multiplies bf16 slower than fp32: `auto` keeps fp32 there, and
`--precision bf16` remains a choice on any CPU with native bf16. `make bench-train` measures
both on the machine at hand.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import Field, dataclass
from functools import cache
from pathlib import Path

import torch

from foundation.command_line import option

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: native bf16 arithmetic
CPU_FAST_BF16_FLAG = "amx_bf16"  # bf16 matrix tiles: faster than fp32
AMD = "AuthenticAMD"  # /proc/cpuinfo's vendor_id: its AVX-512 BF16 is faster than fp32 too


def device_option(default: str = "auto",
                  help: str = "auto: CUDA where there is a GPU, else the CPU") -> Field:
    """A config's --device (foundation.command_line)."""
    return option(default, help, choices=DEVICES)


def precision_option(default: str = "auto",
                     help: str = "autocast precision: auto = bf16 where it is faster than fp32 "
                     "(CUDA with bf16, CPUs with AMX, AMD CPUs with AVX-512 BF16), else fp32; "
                     "bf16 needs native bf16") -> Field:
    """A config's --precision (foundation.command_line)."""
    return option(default, help, choices=PRECISIONS)


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


def torch_device(device: str) -> torch.device:
    """This process's device for --device: the GPU of its local rank (torchrun's
    LOCAL_RANK, 0 without torchrun), made the current one, or the CPU."""
    if resolve_device(device) == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


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


def cpu_flags() -> frozenset[str]:
    return cpu_info()[1]


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


def fast_cpu_bf16(vendor: str, flags: frozenset[str]) -> bool:
    """Whether a CPU multiplies bf16 faster than fp32 (see above)."""
    return CPU_FAST_BF16_FLAG in flags or (vendor == AMD and "avx512_bf16" in flags)


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 where it is faster than fp32 on `device`, else fp32; `bf16` is checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision}: give one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        fast = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                else fast_cpu_bf16(*cpu_info()))
        return "bf16" if fast else "fp32"
    if precision == "bf16" and not native_bf16(device):
        raise ValueError(f"--precision bf16: this {device.type.upper()} has no native bf16 "
                         f"({' or '.join(CPU_BF16_FLAGS)} on a CPU); use --precision fp32 or auto")
    return precision


def evaluation_precision(trained: str | None, asked: str, device: torch.device) -> str:
    """The precision a classifier is evaluated in on `device`: the one its training resolved
    (`trained`, its checkpoint's), or where the checkpoint does not say (written before it
    was kept) its `asked` --precision resolved here; fp32 where this device has no bf16."""
    chosen = trained or asked
    return "fp32" if chosen == "bf16" and not native_bf16(device) else \
        resolve_precision(chosen, device)


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The forward pass's context for a resolved precision."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last: cuDNN's and oneDNN's native convolution layout (no reorder per layer)."""
    del device  # the same on both; measured by make bench-train
    return torch.channels_last


@dataclass(frozen=True)
class Runtime:
    """Where a stage runs and the precision its classifier runs in, both resolved."""

    device: torch.device
    precision: str  # fp32 or bf16

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "auto") -> Runtime:
        """--device and --precision for this process, each checked here once."""
        chosen = torch_device(device)
        return cls(chosen, resolve_precision(precision, chosen))

    def autocast(self) -> AbstractContextManager:
        return autocast(self.device, self.precision)

    @property
    def memory_format(self) -> torch.memory_format:
        return memory_format(self.device)
