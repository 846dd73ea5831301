"""The report opens every shard set once: one dataset.json and one manifest read per set, however
many cells, examples and cost rows ask for it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from classifier import checkpoint
from classifier.config import TrainConfig
from evaluation.report import write_report
from foundation import schema

pytestmark = pytest.mark.slow


def fake_classifier(runs: Path, shards: Path, domain: str, quality: int | None) -> None:
    """An untrained checkpoint of one epoch, small inputs: what the report reads of a run."""
    config = TrainConfig(domain=domain, shards=str(shards), quality=quality, init="none",
                         epochs=1, resize=40, crop=32, latent_resize=8, latent_crop=6)
    torch.manual_seed(0)
    model = config.reader.model(4, 96 if config.reader.latent else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1])
    out = runs / config.run_name
    out.mkdir(parents=True)
    checkpoint.save(out, model, optimizer, scheduler, 0, config, [], None, precision="fp32")


def counting(monkeypatch, name: str) -> Counter:
    """Count the calls of schema.<name> by the folder they read."""
    calls, original = Counter(), getattr(schema, name)

    def spy(directory, *args, **kwargs):
        calls[Path(directory).name] += 1
        return original(directory, *args, **kwargs)

    monkeypatch.setattr(schema, name, spy)
    return calls


def test_the_report_reads_each_dataset_json_and_manifest_once(trainer_shards, tmp_path,
                                                                monkeypatch):
    runs = tmp_path / "runs"
    for domain, quality in (("original", None), ("decoded", 4), ("latent", 4)):
        fake_classifier(runs, trainer_shards, domain, quality)
    opened = counting(monkeypatch, "read_dataset_json")
    manifests = counting(monkeypatch, "read_manifest")
    report = write_report(trainer_shards, runs, tmp_path / "report", min_seconds=0.01,
                          log_mlflow=False)
    assert "Table 2" in report.read_text()
    # 4 cells (Anchor 3, Anchor 1, Anchor 2, Comp.), Figure 2, the class names, the cost: 2 sets
    assert opened == {"original": 1, "q4": 1}
    assert manifests == {"original": 1, "q4": 1}
