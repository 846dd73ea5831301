"""A checkpoint keeps the precision its training resolved, and evaluation runs the classifier in
it on any machine; a checkpoint written before it was kept still loads (weights_only) and is
evaluated as before, its --precision resolved where it is evaluated."""

from __future__ import annotations

import torch

from classifier import checkpoint
from classifier.config import TrainConfig
from evaluation.classifiers import read_classifier
from foundation import runtime

CPU = torch.device("cpu")
ZEN4 = ("AuthenticAMD", frozenset({"avx512_bf16"}))  # where --precision auto is bf16


def written(tmp_path, precision: str):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1])
    config = TrainConfig(domain="original", shards="d", precision="auto")
    return checkpoint.save(tmp_path, model, optimizer, scheduler, 0, config, [], None,
                           precision=precision)


def test_a_classifier_trained_in_fp32_is_evaluated_in_fp32_where_auto_is_bf16(tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr(runtime, "cpu_info", lambda: ZEN4)
    classifier = read_classifier(written(tmp_path, "fp32"))
    assert classifier.precision == "fp32" and classifier.config.precision == "auto"
    assert classifier.precision_on(CPU) == "fp32"


def test_a_checkpoint_from_before_is_evaluated_in_its_precision_resolved_here(tmp_path,
                                                                              monkeypatch):
    path = written(tmp_path, "fp32")
    state = torch.load(path, weights_only=True)
    del state["precision"]  # as the trainer wrote it before
    torch.save(state, path)
    monkeypatch.setattr(runtime, "cpu_info", lambda: ZEN4)
    classifier = read_classifier(path)
    assert classifier.precision is None and classifier.precision_on(CPU) == "bf16"
