import pickle

import pytest
import torch

from foundation import hub, hyperprior
from tests.conftest import codec_file


def test_sizes_are_inferred_from_the_state_dict(tmp_path):
    weights = hyperprior.read_weights_file(codec_file(tmp_path / "s.pth", 4, (32, 48)))
    small = hyperprior.load_codec(weights)
    assert hyperprior.codec_sizes(small) == {"N": 32, "M": 48}


@pytest.mark.parametrize(("quality", "sizes"), [(1, (128, 192)), (5, (128, 192)), (6, (192, 320))])
def test_paper_sizes_per_quality(quality, sizes):
    data = hyperprior.init_weights(quality)
    model = hyperprior.load_codec(hyperprior.CodecWeights(data, "init", hyperprior.sha256_of(data)))
    assert tuple(hyperprior.codec_sizes(model).values()) == sizes


def test_wrapped_checkpoint_and_sha256_are_recorded(tmp_path, codec_q1):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": torch.load(codec_q1, weights_only=True), "epoch": 3}, path)
    weights = hyperprior.read_weights_file(path)
    assert len(weights.sha256) == 64 and weights.source == str(path)
    assert hyperprior.codec_sizes(hyperprior.load_codec(weights))["M"] == 192


def test_pickled_objects_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"g_a.0.weight": Payload()}))
    with pytest.raises(ValueError, match="not a torch state dict"):
        hyperprior.load_codec(hyperprior.read_weights_file(path))


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        hyperprior.resolve_weights(8, tmp_path / "nope.pth")


def test_offline_pretrained_error_names_file_folder_and_option(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(hyperprior.torch.hub, "download_url_to_file", _offline)
    with pytest.raises(FileNotFoundError) as err:
        hyperprior.fetch_pretrained(8)
    message = str(err.value)
    assert "bmshj2018-hyperprior-ms-ssim-8-cc15b5f3.pth.tar" in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "--codec-weights" in message


def _offline(url, dst, hash_prefix=None, progress=True):
    raise OSError("[Errno -3] Temporary failure in name resolution")


def test_cached_file_with_wrong_sha256_prefix_is_refused(tmp_path, monkeypatch, codec_q8):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = hub.checkpoint_dir() / "bmshj2018-hyperprior-ms-ssim-8-cc15b5f3.pth.tar"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(codec_q8.read_bytes())
    with pytest.raises(ValueError, match="its name says cc15b5f3"):
        hyperprior.fetch_pretrained(8)


def test_cached_pretrained_file_loads(tmp_path, monkeypatch, codec_q8):
    """A file placed in the hub cache is used offline when its sha256 prefix matches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    data = codec_q8.read_bytes()
    name = f"bmshj2018-hyperprior-ms-ssim-8-{hyperprior.sha256_of(data)[:8]}.pth.tar"
    monkeypatch.setitem(hyperprior.model_urls[hyperprior.ARCHITECTURE][hyperprior.METRIC], 8,
                        f"https://example.invalid/{name}")
    (hub.checkpoint_dir()).mkdir(parents=True)
    (hub.checkpoint_dir() / name).write_bytes(data)
    weights = hyperprior.fetch_pretrained(8)
    assert weights.sha256 == hyperprior.sha256_of(data)
    assert hyperprior.codec_sizes(hyperprior.load_codec(weights)) == {"N": 192, "M": 320}
