"""The prep job for real: a local Ray with 2 CPU workers, real shards, real bitstreams."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from foundation import schema
from foundation.coding import entropy_decode
from foundation.hyperprior import load_codec, read_weights_file
from prep.cli import main
from prep.job.config import PrepConfig
from prep.job.driver import run

pytestmark = pytest.mark.slow


def config(data, out, weights, **kw) -> PrepConfig:
    return PrepConfig(data=data, out=out, quality=1, codec_weights=weights, workers=2,
                      shard_size=kw.pop("shard_size", 32), **kw)


def all_samples(set_dir):
    return [s for path in sorted(set_dir.glob("*.tar")) for s in schema.iter_shard(path)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, minc_sample, codec_q1, ray_local):
    out = tmp_path_factory.mktemp("shards")
    summary = run(config(minc_sample, out, codec_q1))
    return out / "minc-2500", summary


def test_shards_hold_every_sample_once_with_labels_and_shapes(prepared, minc_sample):
    root, summary = prepared
    q1 = root / "q1"
    assert sorted(p.name for p in q1.glob("*.tar")) == [
        "test-000000.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar",
        "validate-000000.tar"]
    samples = all_samples(q1)
    assert len(samples) == 120 and len({s["__key__"] for s in samples}) == 120
    categories = (minc_sample / "categories.txt").read_text().split()
    for s in samples:
        assert s["cls"] == categories.index(s["__key__"].split("_")[0])
        assert s[schema.LATENT].shape == (192, 24, 24) == s[schema.SCALES].shape
        assert s[schema.LATENT].dtype.kind == "i" and s[schema.SCALES].dtype == np.uint8
        assert s[schema.DECODED].size == (362, 362)
    assert summary.sets[1].counts == {"train": 80, "validate": 16, "test": 24}
    assert not summary.failed_keys


def test_stored_latents_equal_a_fresh_decode_of_the_stored_strings(prepared, codec_q1):
    model = load_codec(read_weights_file(codec_q1))
    for s in all_samples(prepared[0] / "q1")[::20]:
        meta = s["json"]
        y_hat, index = entropy_decode(model, [s[schema.Y_STRING]], [s[schema.Z_STRING]],
                                      tuple(meta["z_shape"]))
        assert np.array_equal(y_hat[0].numpy(), s[schema.LATENT])
        assert np.array_equal(index[0].numpy(), s[schema.SCALES])
        pixels = meta["width"] * meta["height"]
        assert meta["bpp"] == 8 * (len(s[schema.Y_STRING]) + len(s[schema.Z_STRING])) / pixels


def test_manifest_rows_equal_the_samples(prepared):
    q1 = prepared[0] / "q1"
    manifest = schema.read_manifest(q1).to_pylist()
    samples = {s["__key__"]: s for s in all_samples(q1)}
    assert len(manifest) == len(samples) == 120
    for row in manifest:
        sample = samples[row["key"]]
        assert row["label"] == sample["cls"] and row["shard"] == sample["__url__"].split("/")[-1]
        assert row["y_bytes"] == len(sample[schema.Y_STRING])
        assert row["bpp"] == sample["json"]["bpp"]
    info = schema.read_dataset_json(q1)
    assert info["codec"]["M"] == 192 and len(info["codec"]["scale_table"]) == 64
    assert info["counts"]["test"] == {"samples": 24, "failures": 0, "shards": 1}
    assert info["codec"]["weights_sha256"] == read_weights_file(info["codec"][
        "weights_source"]).sha256


def test_original_set_keeps_the_bytes(prepared, minc_sample):
    samples = all_samples(prepared[0] / "original")
    assert len(samples) == 120
    raw = {}
    for path in (prepared[0] / "original").glob("*.tar"):
        import tarfile

        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    raw[member.name[:-4]] = tar.extractfile(member).read()
    for s in samples[::15]:
        source = minc_sample / s["json"]["source"]
        assert raw[s["__key__"]] == source.read_bytes()
        assert s["jpg"].size == Image.open(source).size


def test_rerun_resumes_without_recoding(prepared, minc_sample, codec_q1, capsys):
    root, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.tar")}
    summary = run(config(minc_sample, root.parent, codec_q1))
    assert "5 of 5 shards already done" in capsys.readouterr().out
    assert summary.encoded_images == 0
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.tar")} == before


def test_only_missing_or_partial_shards_are_redone(prepared, minc_sample, codec_q1):
    root, _ = prepared
    q1 = root / "q1"
    kept = q1 / "train-000000.tar"
    mtime = kept.stat().st_mtime_ns
    (q1 / "train-000001.tar").unlink()  # lost
    (q1 / ".train-000002.tar.tmp-dead").write_bytes(b"partial")  # what a crash leaves
    (q1 / "train-000002.tar").unlink()
    summary = run(config(minc_sample, root.parent, codec_q1))
    assert summary.encoded_images == 32 + 16
    assert kept.stat().st_mtime_ns == mtime and not list(q1.glob(".*tmp*"))
    assert len(schema.read_manifest(q1)) == 120


def test_other_weights_in_the_same_folder_are_refused(prepared, minc_sample, tmp_path):
    from tests.conftest import codec_file

    other = codec_file(tmp_path / "other.pth", 1, seed=1)  # same sizes, other weights
    with pytest.raises(ValueError, match="another plan .*weights_sha256.*--force"):
        run(config(minc_sample, prepared[0].parent, other))


def test_a_killed_worker_loses_no_key(tmp_path, minc_sample, codec_q1, ray_local):
    """Kill an actor mid-job: its shards go to a new actor and every key lands exactly once."""
    ray = ray_local
    out = tmp_path / "shards"
    result = {}
    job = threading.Thread(target=lambda: result.update(summary=run(config(
        minc_sample, out, codec_q1, shard_size=8, original=False))))
    job.start()
    q1 = out / "minc-2500" / "q1"
    deadline = time.time() + 120
    while not list(q1.glob("*.tar")) and time.time() < deadline:
        time.sleep(0.1)
    workers = sorted(n for n in ray.util.list_named_actors() if n.startswith("prep-encoder"))
    ray.kill(ray.get_actor(workers[0]))
    job.join(timeout=300)
    summary = result["summary"]
    assert summary.workers_started == 3  # two, and one replacement
    keys = Counter(s["__key__"] for s in all_samples(q1))
    assert len(keys) == 120 and set(keys.values()) == {1}
    assert len(schema.read_manifest(q1)) == 120


def test_the_split_pipeline_writes_the_same_bytes(prepared, minc_sample, codec_q1, tmp_path):
    """The GPU nodes' pipeline (a transform actor feeding CPU workers, here on the CPU, in
    batches of 16) writes the fused pipeline's shards byte for byte, says what it checked, and
    resumes."""
    out = tmp_path / "split"
    summary = run(config(minc_sample, out, codec_q1, pipeline="split", device="cpu"))
    assert summary.resources.transformers == 1 and summary.resources.batch_size == 16
    fused, split = prepared[0] / "q1", out / "minc-2500" / "q1"
    names = sorted(p.name for p in fused.glob("*.tar"))
    assert names == sorted(p.name for p in split.glob("*.tar")) and names
    for name in names:
        assert (split / name).read_bytes() == (fused / name).read_bytes(), name
    verified = json.loads((split / schema.DATASET_JSON).read_text())["verified"]
    assert "on the CPU" in verified and "a transform actor" in verified
    lost = split / names[0]  # resume: only the lost shard is coded again, to the same bytes
    lost.unlink()
    again = run(config(minc_sample, out, codec_q1, pipeline="split", device="cpu"))
    assert again.encoded_images == sum(1 for _ in schema.iter_raw_shard(fused / names[0]))
    assert lost.read_bytes() == (fused / names[0]).read_bytes()


def test_a_killed_transform_actor_is_restarted_and_loses_no_key(tmp_path, minc_sample,
                                                                codec_q1, ray_local):
    """Kill the transform actor mid-job: Ray restarts it, the workers' calls are retried and
    every key lands exactly once, with the fused pipeline's bytes."""
    ray = ray_local
    out = tmp_path / "shards"
    result = {}
    job = threading.Thread(target=lambda: result.update(summary=run(config(
        minc_sample, out, codec_q1, shard_size=8, original=False, pipeline="split",
        device="cpu", batch_size=2))))
    job.start()
    q1 = out / "minc-2500" / "q1"
    deadline = time.time() + 120
    while not list(q1.glob("*.tar")) and time.time() < deadline:
        time.sleep(0.1)
    [name] = [n for n in ray.util.list_named_actors() if "-transform-" in n]
    ray.kill(ray.get_actor(name), no_restart=False)
    job.join(timeout=300)
    assert result["summary"].workers_started == 2  # no worker was lost
    keys = Counter(s["__key__"] for s in all_samples(q1))
    assert len(keys) == 120 and set(keys.values()) == {1}
    assert len(schema.read_manifest(q1)) == 120


def bad_inputs(root):
    """A class-folder dataset holding every kind of bad input next to good ones."""
    rng = np.random.default_rng(0)

    def image(mode="RGB", size=(96, 80)):
        return Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).convert(
            mode)

    def save(path, img, fmt, **kw):
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **kw)
        path.write_bytes(buffer.getvalue())

    for name in ("good", "odd", "stray"):
        (root / name).mkdir(parents=True)
    (root / "categories.txt").write_text("good\nodd\n")  # stray/ is not a category
    for i in range(4):
        save(root / "good" / f"g{i}.jpg", image(), "JPEG")
    save(root / "odd" / "gray.jpg", image("L"), "JPEG")
    save(root / "odd" / "cmyk.jpg", image("CMYK"), "JPEG")
    save(root / "odd" / "rgba.png", image("RGBA"), "PNG")
    save(root / "odd" / "wide.png", Image.fromarray(np.full((70, 90), 50000, np.uint16)), "PNG")
    save(root / "odd" / "bitmap.bmp", image(), "BMP")
    save(root / "odd" / "tiny.png", image(size=(40, 40)), "PNG")
    good = (root / "good" / "g0.jpg").read_bytes()
    (root / "odd" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "odd" / "empty.jpg").write_bytes(b"")
    (root / "odd" / "notes.png").write_text("not an image")
    save(root / "odd" / "gray.png", image(), "PNG")  # key odd_gray again: duplicate
    save(root / "stray" / "s0.jpg", image(), "JPEG")
    return root


EXPECTED_FAILURES = {
    "odd_tiny": "at least 64 px", "odd_truncated": "truncated or corrupt",
    "odd_empty": "empty file", "odd_notes": "not an image", "odd_gray": "duplicate key",
    "stray_s0": "not in categories.txt",
}


def test_bad_inputs_are_converted_or_recorded(tmp_path, codec_q1, ray_local, capsys):
    data = bad_inputs(tmp_path / "bad")
    argv = ["--data", str(data), "--out", str(tmp_path / "out"), "-q", "1", "--workers", "2",
            "--codec-weights", str(codec_q1)]
    assert main(argv) == 1  # 6 failures > --max-failures 0
    err = capsys.readouterr().err
    assert "6 input(s) failed, more than --max-failures 0" in err
    for quality_dir in ("q1", "original"):
        set_dir = tmp_path / "out" / "bad" / quality_dir
        failures = {f["key"]: f["reason"] for f in pq.read_table(
            set_dir / schema.FAILURES).to_pylist()}
        assert failures.keys() == EXPECTED_FAILURES.keys()
        for key, reason in EXPECTED_FAILURES.items():
            assert reason in failures[key]
        conversions = {r["key"]: r["conversion"] for r in schema.read_manifest(set_dir).to_pylist()}
        assert len(conversions) == 9  # 4 good + 5 converted, all kept in shards
        assert "grayscale" in conversions["odd_gray"]
        assert "CMYK" in conversions["odd_cmyk"] and "alpha dropped" in conversions["odd_rgba"]
        assert "16-bit" in conversions["odd_wide"]
    original = {s["__key__"]: s for s in all_samples(tmp_path / "out" / "bad" / "original")}
    assert "png" in original["odd_bitmap"] and "BMP re-encoded as PNG" in original[
        "odd_bitmap"]["json"]["conversion"]
    assert main(argv + ["--max-failures", "6"]) == 0  # resumed: nothing redone, exit 0
