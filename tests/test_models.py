import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50

from classifier import models

count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731

# The deep stem (3x3,64 s2; 3x3,64; 3x3,128 with BNs) replaces the 7x7 conv and its BN, and the
# first bottleneck reads 128 channels instead of 64 (its 1x1 conv and its projection).
STEM = (3 * 9 * 64 + 128) + (64 * 9 * 64 + 128) + (64 * 9 * 128 + 256) - (3 * 49 * 64 + 128)
WIDER_FIRST_BLOCK = 64 * 64 + 64 * 256
FC = 2048 * 23 + 23 - (2048 * 1000 + 1000)


def test_resnet50_deep_stem_shapes_and_parameters():
    model = models.resnet50_deep_stem(23)
    assert count(model) == count(resnet50()) + STEM + WIDER_FIRST_BLOCK + FC == 23_678_935
    assert model(torch.randn(2, 3, 224, 224)).shape == (2, 23)
    assert [m.kernel_size for m in model.conv1 if isinstance(m, torch.nn.Conv2d)] == [(3, 3)] * 3


@pytest.mark.parametrize("channels", [192, 320])
def test_cresnet39_shapes_and_parameters(channels):
    model = models.cresnet39(channels, 23)
    trunk = resnet50()
    layers = sum(count(getattr(trunk, f"layer{i}")) for i in (2, 3, 4)) + 2048 * 23 + 23
    branch = (2 * channels  # input BatchNorm
              + channels * 32 + 64 + 32 * 9 * 32 + 64 + 32 * 128 + 256  # 1x1,32; 3x3,32; 1x1,128
              + channels * 128 + 256)  # projection shortcut
    assert count(model) == layers + 2 * branch
    x = torch.randn(2, 2 * channels, 28, 28)
    assert model(x).shape == (2, 23)
    assert model.branches["y"][1](x[:, :channels]).shape == (2, 128, 28, 28)


@pytest.mark.parametrize("inputs", ["y", "sigma"])
def test_single_input_ablation_ignores_the_other_half(inputs):
    model = models.cresnet39(192, 23, inputs=inputs).eval()
    x = torch.randn(1, 384, 28, 28)
    other = x.clone()
    half = slice(192, None) if inputs == "y" else slice(0, 192)
    other[:, half] = 0
    assert list(model.branches) == [inputs]
    assert torch.allclose(model(x), model(other))


def test_imagenet_offline_error_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as err:
        models.resnet50_deep_stem(23, init="imagenet")
    assert "resnet50-0676ba61.pth" in str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value)


class Payload:
    def __reduce__(self):
        return (print, ("unpickled: code ran",))


def test_imagenet_file_in_the_cache_is_checked_and_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "resnet50-0676ba61.pth").write_bytes(b"not the published file")
    with pytest.raises(ValueError, match="corrupt or not the published one"):
        models.resnet50_deep_stem(23, init="imagenet")
    # a hostile pickle whose sha256 prefix matches its name still is not unpickled
    data = pickle.dumps({"fc.weight": Payload()})
    name = f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setattr(models, "IMAGENET_URL", f"https://example.invalid/{name}")
    (folder / name).write_bytes(data)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        models.resnet50_deep_stem(23, init="imagenet")


def test_imagenet_init_loads_every_matching_tensor(monkeypatch):
    reference = resnet50()
    monkeypatch.setattr(models, "imagenet_state_dict", reference.state_dict)
    model = models.cresnet39(192, 23, init="imagenet")
    assert torch.equal(model.layer3[2].conv2.weight, reference.layer3[2].conv2.weight)
    fresh = models.load_matching(models.resnet50_deep_stem(23), reference.state_dict(), "test")
    assert "conv1.0.weight" in fresh and "fc.weight" in fresh
    assert "layer2.0.conv1.weight" not in fresh


def test_init_from_missing_file_is_explained():
    with pytest.raises(FileNotFoundError, match="choices: none, imagenet"):
        models.resnet50_deep_stem(23, init="nope.pth")


def test_init_from_a_damaged_file_is_one_error_naming_it(tmp_path):
    damaged = tmp_path / "start.pth"
    damaged.write_bytes(b"not a start")
    with pytest.raises(ValueError, match=f"--init {damaged}: {damaged} is not a state dict torch "
                       r"reads without unpickling \(UnpicklingError\)"):
        models.initial_state(str(damaged))


# the residual adapter's parameters: two bottlenecks, 1x1 256->64, 3x3 64->64, 1x1 64->256
RESIDUAL_BLOCKS = 2 * (256 * 64 + 64 * 9 * 64 + 64 * 256 + 2 * (64 + 64 + 256))


def beside_plain(adapter: str) -> tuple:
    """(a cResNet-39 without adapter, one with `adapter` holding its tensors, an input of 14
    cells), both in eval mode."""
    torch.manual_seed(0)
    plain = models.cresnet39(96, 6)
    adapted = models.cresnet39(96, 6, adapter=adapter)
    adapted.load_state_dict(plain.state_dict(), strict=False)
    return plain.eval(), adapted.eval(), torch.rand(2, 192, 14, 14) + 0.1


def test_the_residual_adapter_starts_as_the_identity_and_is_fitted_with_the_branches():
    plain, adapted, x = beside_plain("res")
    assert torch.allclose(plain.features(x), adapted.features(x), atol=1e-6)
    assert count(adapted) - count(plain) == RESIDUAL_BLOCKS
    fitted = {id(p) for p in adapted.adaptation()}
    assert all(id(p) in fitted for p in adapted.adapter.parameters())
    assert any(k.startswith("adapter.") for k in adapted.adaptation_state())


def test_the_learned_upsampling_doubles_the_cells_and_starts_as_nearest_neighbour():
    plain, upsampled, x = beside_plain("up-res")
    nearest = torch.nn.functional.interpolate(plain.features(x), scale_factor=2, mode="nearest")
    assert upsampled.features(x).shape == (2, 256, 28, 28)
    assert torch.allclose(upsampled.features(x), nearest, atol=1e-6)
    assert count(upsampled) - count(plain) == RESIDUAL_BLOCKS + 256 * 256 * 4
    assert upsampled(x).shape == (2, 6)
    assert models.upsampling("up-res") == 2 and models.upsampling("res") == 1


def trunk_in_runs(tmp_path, monkeypatch) -> Path:
    """A trunk checkpoint at runs/decoded/ from the working directory tmp_path; returns where a
    start on it goes (runs/transplant/q1.pth, not written)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "decoded").mkdir(parents=True)
    torch.save({"model": {"layer2.weight": torch.ones(3)}}, "runs/decoded/checkpoint.pth")
    return tmp_path / "runs" / "transplant" / "q1.pth"


def test_a_start_names_its_trunk_file_from_its_own_folder_so_a_runs_folder_can_move(
        tmp_path, monkeypatch):
    from classifier.backbone import write_start

    start = trunk_in_runs(tmp_path, monkeypatch)
    write_start({"branches.weight": torch.zeros(2)}, start, trunk="runs/decoded/checkpoint.pth")
    assert torch.load(start, weights_only=True)["trunk"] == "../decoded/checkpoint.pth"
    (tmp_path / "runs").rename(tmp_path / "moved")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    state = models.initial_state(str(tmp_path / "moved" / "transplant" / "q1.pth"))
    assert torch.equal(state["layer2.weight"], torch.ones(3))
    assert torch.equal(state["branches.weight"], torch.zeros(2))


def test_a_start_written_before_that_names_its_trunk_from_the_working_directory(
        tmp_path, monkeypatch):
    start = trunk_in_runs(tmp_path, monkeypatch)
    start.parent.mkdir()
    torch.save({"trunk": "runs/decoded/checkpoint.pth",
                "model": {"branches.weight": torch.zeros(2)}}, start)
    assert models.trunk_of(start, "runs/decoded/checkpoint.pth") == "runs/decoded/checkpoint.pth"
    assert models.trunk_of(start, "procedural") == "procedural"
    assert torch.equal(models.initial_state(str(start))["layer2.weight"], torch.ones(3))
