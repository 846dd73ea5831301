"""`make bench-gpu`'s code paths on the CPU, on a few images (no GPU is lent to CI)."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_gpu

pytestmark = pytest.mark.slow


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(bench_gpu.torch.cuda, "is_available", lambda: False)
    assert bench_gpu.main([]) == 0
    assert "needs a CUDA GPU" in capsys.readouterr().out


def test_every_row_is_measured_on_the_cpu(minc_sample, ray_local, capsys):
    assert bench_gpu.main(["--device", "cpu", "--data", str(minc_sample), "--images", "24",
                           "--quality", "1", "--batches", "2", "--eval-batches", "2",
                           "--seconds", "0.05", "--train-batch", "2", "--train-steps", "1",
                           "--loader-workers", "1"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    stages = [line.split(" | ")[0][2:] for line in table[1:]]
    assert stages[:3] == ["prep transforms alone, batch 2", "prep CPU stages, 1 core",
                          stages[2]] and stages[2].startswith("prep job [1 cpu transform actor")
    assert sum("from the bitstream" in s for s in stages) == 4  # 2 paths, decoding, the ratio
    assert [s.split(" (")[0] for s in stages if s.startswith("train ")] == [
        "train latent", "train decoded", "train original"]
    rates = [float(x) for line in table[1:] for x in re.findall(r"([\d.]+) img/s", line)]
    assert rates and all(r > 0 for r in rates)
