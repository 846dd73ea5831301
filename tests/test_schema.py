import errno
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from foundation import schema


def test_latent_uses_smallest_integer_dtype_losslessly():
    for values, dtype in [([-128, 127], np.int8), ([-129, 3], np.int16), ([40000], np.int32)]:
        y_hat = np.array(values, dtype=np.float32).reshape(1, 1, -1)
        decoded = schema.decode_member(schema.LATENT, schema.encode_latent(y_hat))
        assert decoded.dtype == dtype and np.array_equal(decoded, y_hat)


def test_latent_refuses_non_integers():
    with pytest.raises(ValueError, match="integers"):
        schema.encode_latent(np.array([0.5], dtype=np.float32))


def test_scale_index_roundtrip_and_sigma_lookup():
    index = np.array([[0, 5], [63, 2]], dtype=np.int32)
    decoded = schema.decode_member(schema.SCALES, schema.encode_scale_index(index))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, index)
    table = [0.11 * 1.1**i for i in range(64)]
    assert schema.sigma_from_index(decoded, table)[1, 0] == pytest.approx(table[63])


def test_gzip_suffix_is_read_too():
    import gzip

    buffer = io.BytesIO()
    np.save(buffer, np.arange(4, dtype=np.int8))
    assert schema.decode_member("latent.npy.gz", gzip.compress(buffer.getvalue())).tolist() == [
        0, 1, 2, 3]


def test_writer_is_atomic_and_reader_never_unpickles(tmp_path):
    path = tmp_path / "train-000000.tar"
    with pytest.raises(RuntimeError), schema.ShardWriter(path) as writer:
        writer.write("a", {schema.LABEL: b"1"})
        raise RuntimeError("interrupted")
    assert not path.exists() and not list(tmp_path.iterdir())

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    with schema.ShardWriter(path) as writer:
        writer.write("a", {schema.LABEL: b"3", schema.META: b'{"x": 1}',
                           "pyd": pickle.dumps(Boom()), "pth": pickle.dumps(Boom()),
                           schema.DECODED: schema.encode_png(Image.new("L", (8, 8)))})
    [sample] = list(schema.iter_shard(path))
    assert sample[schema.LABEL] == 3 and sample[schema.META] == {"x": 1}
    assert sample[schema.DECODED].mode == "RGB"
    assert "pyd" not in sample and "pth" not in sample


def test_writer_rejects_keys_with_dots(tmp_path):
    with pytest.raises(ValueError, match="must not contain"), \
            schema.ShardWriter(tmp_path / "x.tar") as writer:
        writer.write("a.b", {schema.LABEL: b"1"})


def test_tars_are_reproducible(tmp_path):
    for name in ("a.tar", "b.tar"):
        with schema.ShardWriter(tmp_path / name) as writer:
            writer.write("k", {schema.LABEL: b"1", schema.Y_STRING: b"\x00\x01"})
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_corrupt_shard_error_names_it(tmp_path):
    path = tmp_path / "test-000000.tar"
    with schema.ShardWriter(path) as writer:
        for i in range(3):
            writer.write(f"k{i}", {schema.Y_STRING: bytes(5000)})
    path.write_bytes(path.read_bytes()[:6000])
    with pytest.raises(ValueError, match="test-000000.tar"):
        list(schema.iter_shard(path))


def test_schema_version_mismatch_is_explained(tmp_path):
    (tmp_path / schema.DATASET_JSON).write_text('{"schema_version": 0}')
    with pytest.raises(ValueError, match="schema version 0"):
        schema.read_dataset_json(tmp_path)


def test_tar_members_are_named_per_contract(tmp_path):
    path = tmp_path / "s.tar"
    with schema.ShardWriter(path) as writer:
        writer.write("brick_000001", {schema.LATENT: b"x", schema.SCALES: b"y"})
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["brick_000001.latent.npy.zst", "brick_000001.scales.npy.zst"]


def test_writer_fingerprints_the_tar_before_it_is_committed(tmp_path):
    path = tmp_path / "train-000000.tar"
    seen = []
    with schema.ShardWriter(path, lambda fp: seen.append((fp, path.exists()))) as writer:
        writer.write("k", {schema.LABEL: b"1", schema.Y_STRING: bytes(20000)})
    [(fingerprint, committed)] = seen
    assert not committed  # its records are written while the tar is still temporary
    assert fingerprint == schema.Fingerprint(path.stat().st_size,
                                             hashlib.sha256(path.read_bytes()).hexdigest())

    def records_fail(fingerprint):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="cannot write .*train-000001.tar: Input/output error"), \
            schema.ShardWriter(tmp_path / "train-000001.tar", records_fail) as writer:
        writer.write("k", {schema.LABEL: b"1"})
    assert [p.name for p in tmp_path.iterdir()] == ["train-000000.tar"]  # nothing else left


def test_a_classical_codec_s_bytes_have_their_member():
    assert schema.bitstream_member("jpeg") == "jpeg.bin"
    with pytest.raises(ValueError, match="not one of jpeg, webp"):
        schema.bitstream_member("learned")
