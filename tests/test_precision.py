"""`--precision auto`: bf16 only where the CPU multiplies it faster than fp32."""

import pytest
import torch

from trainer import precision


@pytest.mark.parametrize(("vendor", "flags", "fast"), [
    ("GenuineIntel", {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, True),  # Xeon, AMX
    ("GenuineIntel", {"avx512f", "avx512_bf16"}, False),  # Cooper Lake: bf16 at half fp32
    ("AuthenticAMD", {"avx512f", "avx512_bf16"}, True),  # Zen 4, Zen 5
    ("AuthenticAMD", {"avx2"}, False),  # no native bf16
    ("", frozenset(), False),  # /proc/cpuinfo unreadable
])
def test_auto_takes_bf16_where_the_cpu_multiplies_it_faster(vendor, flags, fast):
    assert precision.fast_cpu_bf16(vendor, frozenset(flags)) is fast


def test_auto_resolves_by_this_cpu_and_a_wrong_value_is_one_line(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_info", lambda: ("AuthenticAMD",
                                                        frozenset({"avx512_bf16"})))
    assert precision.resolve("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_info", lambda: ("GenuineIntel",
                                                        frozenset({"avx512_bf16"})))
    assert precision.resolve("auto", cpu) == "fp32"
    assert precision.resolve("bf16", cpu) == "bf16"  # native: a choice all the same
    monkeypatch.setattr(precision, "cpu_info", lambda: ("AuthenticAMD", frozenset({"avx2"})))
    with pytest.raises(ValueError, match="no native bf16"):
        precision.resolve("bf16", cpu)
    with pytest.raises(ValueError, match="not one of"):
        precision.resolve("fp16", cpu)
