"""The codec trainer for real: a small codec trained a few steps, validated with the real entropy
coder, exported for prep, and resumed after an interruption to the same weights."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

import prep.codec.train as codec_train
from foundation.coding import code_images
from foundation.hyperprior import load_codec, read_weights_file
from prep.datasets.synthetic import write_dataset

ARGS = ("-q", "4", "--sizes", "8,12", "--batch-size", "2", "--crop", "192", "--val-every", "2",
        "--val-images", "2", "--checkpoint-every", "2", "--threads", "1", "--steps", "6")


@pytest.fixture
def textures(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return write_dataset(tmp_path / "textures", classes=2, per_class=5, size=200,
                         fractions=(0.6, 0.2, 0.2))


def test_a_trained_codec_is_exported_for_prep_and_resumes_to_the_same_weights(
        textures, tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    assert codec_train.main(["--data", str(textures), "--out", str(straight), *ARGS]) == 0
    history = json.loads((straight / "history.json").read_text())
    assert [point["step"] for point in history] == [2, 4, 6]
    # measured on real bitstreams (a 6-step codec is far from good: PSNR ~4 dB)
    assert all(point["bpp"] > 0 and math.isfinite(point["psnr"]) for point in history)

    weights = read_weights_file(straight / "codec-q4.pth")
    [coded] = code_images(load_codec(weights), [Image.open(next(textures.rglob("*.jpg")))])
    assert coded.bpp > 0 and math.isfinite(coded.psnr)  # a real bitstream that prep can use

    # the same run stopped by an error in its last validation, after the step-4 checkpoint
    resumed = tmp_path / "resumed"
    validate, calls = codec_train.validate, []

    def fail_at_step_six(model, listing, limit):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return validate(model, listing, limit)

    monkeypatch.setattr(codec_train, "validate", fail_at_step_six)
    with pytest.raises(KeyboardInterrupt):
        codec_train.main(["--data", str(textures), "--out", str(resumed), *ARGS])
    assert not (resumed / "codec-q4.pth").exists()
    monkeypatch.setattr(codec_train, "validate", validate)
    assert codec_train.main(["--data", str(textures), "--out", str(resumed), *ARGS]) == 0
    assert "resuming" in capsys.readouterr().out
    assert (resumed / "codec-q4.pth").read_bytes() == (straight / "codec-q4.pth").read_bytes()


def test_bad_input_is_one_line_and_keeps_the_checkpoint(textures, tmp_path, capsys):
    out = tmp_path / "run"
    assert codec_train.main(["--data", str(textures), "--out", str(out), *ARGS[:-2],
                             "--steps", "2"]) == 0
    checkpoint = (out / "checkpoint.pth").read_bytes()
    capsys.readouterr()
    assert codec_train.main(["--data", str(textures), "--out", str(out), *ARGS,
                             "--crop", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --crop 64 is too small")
    assert codec_train.main(["--data", str(tmp_path / "nowhere"), "--out", str(out),
                             *ARGS]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    assert (out / "checkpoint.pth").read_bytes() == checkpoint
