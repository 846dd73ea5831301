"""The runtime resolved once: --device auto follows the GPU, --precision auto takes bf16 only
where the CPU multiplies it faster than fp32, and evaluation runs in the precision the
trainer resolved (kept in its checkpoint)."""

import pytest
import torch

from foundation import runtime
from foundation.runtime import Runtime, evaluation_precision, resolve_device

CPU = torch.device("cpu")
ZEN4 = ("AuthenticAMD", frozenset({"avx512f", "avx512_bf16"}))  # bf16 faster than fp32
COOPER_LAKE = ("GenuineIntel", frozenset({"avx512f", "avx512_bf16"}))  # bf16, slower
AVX2 = ("AuthenticAMD", frozenset({"avx2"}))  # no native bf16


@pytest.mark.parametrize(("asked", "has_cuda", "resolved"), [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", True, "cuda"),
])
def test_auto_follows_the_gpu_and_a_choice_is_kept(asked, has_cuda, resolved):
    assert resolve_device(asked, has_cuda) == resolved


def test_cuda_without_a_gpu_and_an_unknown_device_are_explained():
    with pytest.raises(RuntimeError, match="the Ray cluster has no CUDA GPU"):
        resolve_device("cuda", False, "the Ray cluster")
    with pytest.raises(ValueError, match="choose one of auto, cpu, cuda"):
        resolve_device("gpu", True)


@pytest.mark.parametrize(("vendor", "flags", "fast"), [
    ("GenuineIntel", {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, True),  # Xeon, AMX
    ("GenuineIntel", {"avx512f", "avx512_bf16"}, False),  # Cooper Lake: bf16 at half fp32
    ("AuthenticAMD", {"avx512f", "avx512_bf16"}, True),  # Zen 4, Zen 5
    ("AuthenticAMD", {"avx2"}, False),  # no native bf16
    ("", frozenset(), False),  # /proc/cpuinfo unreadable
])
def test_auto_takes_bf16_where_the_cpu_multiplies_it_faster(vendor, flags, fast):
    assert runtime.fast_cpu_bf16(vendor, frozenset(flags)) is fast


def test_auto_resolves_by_this_cpu_and_a_wrong_value_is_one_line(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_info", lambda: ZEN4)
    assert runtime.resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(runtime, "cpu_info", lambda: COOPER_LAKE)
    assert runtime.resolve_precision("auto", CPU) == "fp32"
    assert runtime.resolve_precision("bf16", CPU) == "bf16"  # native: a choice all the same
    monkeypatch.setattr(runtime, "cpu_info", lambda: AVX2)
    with pytest.raises(ValueError, match="no native bf16"):
        runtime.resolve_precision("bf16", CPU)
    with pytest.raises(ValueError, match=r"^--precision fp16: give one of auto, fp32, bf16$"):
        runtime.resolve_precision("fp16", CPU)


def test_a_runtime_is_resolved_once_for_the_cpu(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_info", lambda: ZEN4)
    assert Runtime.resolve("cpu", "auto") == Runtime(CPU, "bf16")
    monkeypatch.setattr(runtime, "cpu_info", lambda: AVX2)
    assert Runtime.resolve("cpu", "auto") == Runtime(CPU, "fp32")


def test_evaluation_runs_in_the_precision_the_training_resolved(monkeypatch):
    """A classifier trained in fp32 where auto chose it (an AVX2 machine) is evaluated in fp32
    on a Zen 4, where auto would choose bf16; one trained in bf16 on a machine without it
    falls back to fp32; a checkpoint that does not say resolves its --precision here."""
    monkeypatch.setattr(runtime, "cpu_info", lambda: ZEN4)
    assert evaluation_precision("fp32", "auto", CPU) == "fp32"
    assert evaluation_precision("bf16", "auto", CPU) == "bf16"
    assert evaluation_precision(None, "auto", CPU) == "bf16"  # an older checkpoint
    monkeypatch.setattr(runtime, "cpu_info", lambda: AVX2)
    assert evaluation_precision("bf16", "auto", CPU) == "fp32"
    assert evaluation_precision(None, "bf16", CPU) == "fp32"
    assert evaluation_precision(None, "auto", CPU) == "fp32"
