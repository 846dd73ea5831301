"""Classical sets (Pillow's JPEG and WebP) through the prep job: bpp from the file's bytes, the
decoded image and its metrics, no latents; the trainer's and the evaluation's view of them."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.config import parse
from classifier.data import open_shard_set
from foundation import schema
from foundation.coding import image_metrics, to_tensor
from foundation.sets import SetId
from prep.cli import main
from prep.codec.classical import decode

ARGS = ("--jpeg", "10", "60", "--webp", "30", "--workers", "2", "--shard-size", "8")


@pytest.fixture(scope="module")
def classical(tmp_path_factory, synthetic_small, ray_local):
    out = tmp_path_factory.mktemp("classical")
    assert main(["--data", str(synthetic_small), "--out", str(out), *ARGS]) == 0
    return out / synthetic_small.name


def samples(set_dir):
    return [s for path in schema.shard_paths(set_dir) for s in schema.iter_shard(path)]


def test_only_the_asked_sets_are_written(classical):
    # no --quality: no learned set (and no codec weights needed)
    assert sorted(p.name for p in classical.iterdir()) == ["jpeg10", "jpeg60", "original",
                                                            "webp30"]


@pytest.mark.parametrize(("name", "member"), [("jpeg10", "jpeg.bin"), ("webp30", "webp.bin")])
def test_bpp_is_the_files_bytes_over_the_original_pixels(classical, name, member):
    manifest = {r["key"]: r for r in schema.read_manifest(classical / name).to_pylist()}
    originals = {s["__key__"]: s for s in samples(classical / "original")}
    read = samples(classical / name)
    assert len(read) == len(manifest) == 40
    for sample in read:
        row = manifest[sample["__key__"]]
        assert set(sample) == {"__key__", "__url__", "cls", "json", member, schema.DECODED}
        data = sample[member]
        assert row["bpp"] == 8 * len(data) / (row["width"] * row["height"]) == sample["json"]["bpp"]
        assert row["file_bytes"] == len(data)
        # the stored decoded image is the file decoded; its PSNR is measured against the original
        assert np.array_equal(np.asarray(decode(data)), np.asarray(sample[schema.DECODED]))
        original = next(originals[sample["__key__"]][m] for m in schema.ORIGINAL_FORMATS
                        if m in originals[sample["__key__"]])
        metrics = image_metrics(to_tensor([original], "cpu"),
                                to_tensor([sample[schema.DECODED]], "cpu"))
        assert row["psnr"] == pytest.approx(metrics["psnr"][0])
        assert row["ssim"] == pytest.approx(metrics["ssim"][0])
    info = schema.read_dataset_json(classical / name)
    assert info["set"] == name and info["codec"]["name"] == name[:4]
    assert info["counts"]["test"]["samples"] == 4


def test_a_higher_quality_costs_more_bits_and_looks_better(classical):
    low, high = (schema.read_manifest(classical / n).to_pandas() for n in ("jpeg10", "jpeg60"))
    assert high["bpp"].mean() > low["bpp"].mean() and high["psnr"].mean() > low["psnr"].mean()


def test_a_rerun_resumes(classical, capsys):
    data = schema.read_dataset_json(classical / "original")["dataset"]["root"]
    assert main(["--data", data, "--out", str(classical.parent), *ARGS]) == 0
    out = capsys.readouterr().out
    assert out.count("6 of 6 shards already done") == 4


def test_a_quality_outside_pillows_range_is_refused(classical, capsys):
    data = schema.read_dataset_json(classical / "original")["dataset"]["root"]
    assert main(["--data", data, "--out", str(classical.parent), "--jpeg", "0"]) == 2
    assert "jpeg quality 0 is outside Pillow's 1..100" in capsys.readouterr().err


def test_the_trainer_reads_a_classical_set_as_decoded_images(classical):
    config = parse(["--domain", "decoded", "--set", "jpeg10", "--shards", str(classical)])
    assert (config.codec, config.quality, config.set_id.name) == ("jpeg", 10, "jpeg10")
    assert config.run_name == f"{classical.name}/decoded/jpeg10"
    shard_set = open_shard_set(classical, "decoded", SetId("jpeg", 10))
    assert shard_set.counts == {"train": 32, "validate": 4, "test": 4}
    assert shard_set.latent_channels is None
    with pytest.raises(ValueError, match="holds no latents"):
        open_shard_set(classical, "latent", SetId("jpeg", 10))
    with pytest.raises(FileNotFoundError, match=r"python -m prep --jpeg"):
        open_shard_set(classical, "decoded", SetId("jpeg", 20))


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "jpeg10", "--quality", "4"], "disagree"),
    (["--set", "png10"], "not a set name"),
    (["--set", "original"], "--domain original"),
])
def test_a_bad_set_is_explained(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse(["--domain", "decoded", "--shards", "x", *argv])
    assert message in capsys.readouterr().err


def test_quality_still_names_the_learned_set():
    config = parse(["--domain", "latent", "--quality", "4", "--shards", "data/shards/minc"])
    assert (config.codec, config.set_id.name, config.run_name) == ("learned", "q4",
                                                                   "minc/latent/q4")
    assert parse(["--domain", "decoded", "--set", "q4", "--quality", "4", "--shards", "m"]
                 ).run_name == "m/decoded/q4"
