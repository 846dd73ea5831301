"""Feature distillation: the image is cut as the latent is, the teacher's conv_2x lies cell for
cell on the latent branches' output, only the student learns, and the pipeline pairs each
compressed-domain run with the Anchor 2 of its set and seed."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classifier import checkpoint
from classifier.config import TrainConfig
from classifier.data import open_shard_set
from classifier.models import cresnet39, resnet50_deep_stem
from classifier.transforms import HINT_STRIDE, IMAGENET_MEAN, IMAGENET_STD, LatentTransform
from foundation import storage
from foundation.sets import SetId
from pipeline.experiment import load
from pipeline.plan import job, train_configs
from tests.conftest import DEMO_CODEC_Q4
from trainer import distill

ROOT = Path(__file__).resolve().parents[1]
DEMO = load("demo")

M, SIDE, CROP = 4, 16, 14


def coordinate_inputs(stride: int = HINT_STRIDE):
    """A latent whose cell (r, c) holds r and c, and an image whose stride x stride block
    (r, c) holds 16 r and 16 c in its red and green channels."""
    rows, cols = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    latent = np.stack([rows, cols, rows, cols]).astype(np.int8)
    pixels = np.zeros((SIDE * stride, SIDE * stride, 3), np.uint8)
    pixels[..., 0] = np.repeat(np.repeat(16 * rows, stride, 0), stride, 1)
    pixels[..., 1] = np.repeat(np.repeat(16 * cols, stride, 0), stride, 1)
    return latent, np.zeros((M, SIDE, SIDE), np.uint8), Image.fromarray(pixels)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("stride", [HINT_STRIDE, 2 * HINT_STRIDE])  # 2x: adapter up-res
def test_the_image_is_cut_as_the_latent_is(train, stride):
    latent, scales, image = coordinate_inputs(stride)
    transform = LatentTransform([0.11, 0.2], train, SIDE, CROP, hint_stride=stride)
    torch.manual_seed(3)
    flips = set()
    for _ in range(12):
        x, picture = transform(latent, scales, image)
        assert x.shape == (2 * M, CROP, CROP)
        assert picture.shape == (3, stride * CROP, stride * CROP)
        red, green = (picture[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c] for c in (0, 1))
        cells = (slice(None, None, stride),) * 2  # one pixel of each block
        assert torch.allclose(red[cells] * 255, 16 * x[0], atol=0.5)
        assert torch.allclose(green[cells] * 255, 16 * x[1], atol=0.5)
        flips.add(bool(x[1, 0, 0] > x[1, 0, -1]))
    assert flips == ({True, False} if train else {False})


def test_without_the_flip_training_crops_only():
    latent, scales, _ = coordinate_inputs()
    transform = LatentTransform([0.11, 0.2], True, SIDE, CROP, flip=False)
    torch.manual_seed(3)
    views = {(int(x[0, 0, 0]), int(x[1, 0, 0]), bool(x[1, 0, 0] > x[1, 0, -1]))
             for x in (transform(latent, scales) for _ in range(40))}
    assert {flip for *_, flip in views} == {False} and len(views) > 3  # still random crops


def test_a_flipped_latent_is_not_the_latent_of_the_flipped_image(minc_sample):
    from foundation.hyperprior import load_codec, read_weights_file
    from research.equivariance import measure

    codec = load_codec(read_weights_file(DEMO_CODEC_Q4)).eval()
    images = sorted(minc_sample.rglob("*.jpg"))[::30]
    m = measure(codec, images)
    assert m["images"] == len(images) >= 3
    assert m["flip"] > 0.1 and m["shift"] < m["flip"] / 3


def teacher_file(tmp_path, domain="decoded"):
    model = resnet50_deep_stem(6)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1])
    checkpoint.save(tmp_path, model, optimizer, scheduler, 0,
                    TrainConfig(domain=domain, shards="x", quality=4), [], None,
                    precision="fp32")
    return str(tmp_path / checkpoint.CHECKPOINT), model


def test_the_hint_trains_the_student_and_leaves_the_teacher(tmp_path):
    path, model = teacher_file(tmp_path)
    teacher = distill.teacher_stem(path)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert torch.equal(teacher[-1][0].conv1.weight, model.layer1[0].conv1.weight)
    student = cresnet39(M, 6)
    latent, image = torch.randn(2, 2 * M, CROP, CROP).abs() + 0.1, torch.randn(2, 3, 56, 56)
    logits, loss = distill.FeatureHint(teacher, 1.0)(student, (latent, image), torch.tensor([0, 1]))
    plain_logits, plain = distill.Supervised()(student, latent, torch.tensor([0, 1]))
    assert logits.shape == plain_logits.shape == (2, 6) and loss > plain  # the hint adds
    loss.backward()
    assert student.branches["y"][1].conv1.weight.grad.abs().sum() > 0


def test_soft_targets_are_the_whole_teachers_on_the_same_view(tmp_path):
    path, model = teacher_file(tmp_path)
    teacher = distill.teacher_network(path)
    taught = distill.Taught(teacher, 0.0, 1.0, 4.0)
    image = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        expected = model.eval()(image)
    recorded = []
    real = distill.soft_target_loss
    distill.soft_target_loss = lambda s, t, temp: recorded.append(t) or real(s, t, temp)
    try:
        student = cresnet39(M, 6)
        latent = torch.randn(2, 2 * M, CROP, CROP).abs() + 0.1
        y = torch.tensor([0, 1])
        logits, loss = taught(student, (latent, image), y)
    finally:
        distill.soft_target_loss = real
    assert torch.allclose(recorded[0], expected, atol=1e-5)  # the teacher's own logits
    plain = distill.Supervised()(student, latent, y)[1]
    assert loss > plain  # the soft targets add
    loss.backward()
    assert student.fc.weight.grad.abs().sum() > 0 and all(p.grad is None
                                                          for p in teacher.parameters())
    # T^2 KL: zero where the student's softened distribution is the teacher's, positive else
    logits = torch.randn(4, 6)
    assert distill.soft_target_loss(logits, logits, 4.0).abs() < 1e-6
    assert distill.soft_target_loss(logits, logits.flip(0), 4.0) > 0


def test_a_teacher_must_be_an_anchor_2(tmp_path):
    path, _ = teacher_file(tmp_path, domain="original")
    with pytest.raises(ValueError, match="decoded-domain classifier"):
        distill.teacher_stem(path)


def test_distill_pairs_each_comp_run_with_the_anchor2_of_its_set_and_seed(tmp_path):
    e = replace(DEMO, qualities=(1, 8), seeds=2, distill=True, jpeg_qualities=(5,),
                transplant_steps=0)  # the demo's own way from Anchor 2 (tests/test_transplant)
    configs = train_configs(e, storage.location(tmp_path / "shards"), tmp_path / "runs", "x")
    latent = [c for c in configs if c.domain == "latent"]
    assert len(latent) == 4
    for c in latent:
        [result] = job(c, "x").waits
        folder = result.parent
        teacher = next(t for t in configs if Path(t.out) == folder)
        assert (teacher.domain, teacher.set_id, teacher.seed) == ("decoded", c.set_id, c.seed)
        assert c.init == c.distill == str(folder / "checkpoint.pth")
    assert not any(job(c, "x").waits for c in configs if c.domain != "latent")


def test_fresh_tensors_learn_at_their_own_rate_and_the_scheduler_divides_both():
    from trainer.train import parameter_groups

    model = cresnet39(M, 6)
    init = {k: v for k, v in model.state_dict().items() if k.startswith("layer")}
    groups = parameter_groups(model, init, 0.01, 10.0)
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.1)]
    trunk = {id(p) for n, p in model.named_parameters() if n.startswith("layer")}
    assert {id(p) for p in groups[0]["params"]} == trunk
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1], 0.1)
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.001), pytest.approx(0.01)]
    assert len(parameter_groups(model, init, 0.01, 1.0)) == 1


def test_the_first_stage_fits_the_branches_and_leaves_the_trunk(tmp_path):
    path, _ = teacher_file(tmp_path)
    teacher = distill.teacher_stem(path)
    student = cresnet39(M, 6)
    trunk = [p.clone() for p in student.layer2.parameters()]
    torch.manual_seed(0)
    batch = ((torch.randn(4, 2 * M, CROP, CROP).abs() + 0.1, torch.randn(4, 3, 56, 56)), None)
    amp = torch.autocast("cpu", enabled=False)
    first = distill.fit_adaptation(student, teacher, [batch], 1, torch.device("cpu"), amp)
    last = distill.fit_adaptation(student, teacher, [batch] * 40, 40, torch.device("cpu"), amp)
    assert last < 0.5 * first
    assert all(torch.equal(a, b) for a, b in zip(trunk, student.layer2.parameters(), strict=True))


@pytest.mark.parametrize("held", [True, False], ids=["held-in-memory", "read-from-shards"])
def test_latent_start_fits_the_branches_and_keeps_the_procedural_trunk(trainer_shards, tmp_path,
                                                                       capsys, monkeypatch, held):
    from classifier.models import initial_state
    from trainer import latent_start

    if not held:  # a training split too large to hold: the trainer's loader reads the shards
        monkeypatch.setattr(latent_start, "MAX_HELD", 0)
    out = tmp_path / "latent-hint.pth"
    assert latent_start.main([str(trainer_shards), "--rates", "4", "--steps", "60",
                              "--log-every", "20", "--lr", "3e-3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    errors = [float(line.split("hint error ")[1].split()[0])
              for line in printed.splitlines() if line.startswith("step ")]
    assert len(errors) == 3 and errors[-1] < errors[0]
    before, after = map(float, re.search(r"on the validation split ([\d.]+) before the fit, "
                                         r"([\d.]+) after", printed).groups())
    assert after < before  # held-out images: the fit learned the map, not its batches
    written = torch.load(out, weights_only=True)
    assert written["trunk"] == "procedural"
    latents = open_shard_set(trainer_shards, "latent", SetId.of(4))
    assert written["codecs"] == latents.codec_weights() and len(written["codecs"][0]) == 64
    assert {k.split(".")[0] for k in written["model"]} == {"branches"}  # no trunk, no fc
    state = initial_state(str(out))
    trunk = initial_state("procedural")
    assert all(torch.equal(state[k], v) for k, v in trunk.items())
    assert {"branches.y.1.conv2.weight", "branches.sigma.1.conv2.weight"} <= set(state)


def test_a_fit_with_a_fresh_adapter_is_the_same_twice_and_holds_the_adapter(trainer_shards,
                                                                            tmp_path):
    """The adapter the start lacks starts from the fit's seed: the same file every time (the
    demo reproduces its report), another with another seed."""
    from trainer import latent_start

    def fit(name: str, seed: int) -> bytes:
        out = tmp_path / name
        assert latent_start.main([str(trainer_shards), "--rates", "4", "--steps", "2",
                                  "--latent-adapter", "res", "--seed", str(seed),
                                  "--out", str(out)]) == 0
        return out.read_bytes()

    first = fit("a.pth", 0)
    assert fit("b.pth", 0) == first and fit("c.pth", 1) != first
    written = torch.load(tmp_path / "a.pth", weights_only=True)
    assert {k.split(".")[0] for k in written["model"]} == {"branches", "adapter"}


def test_a_fit_through_the_learned_upsampling_shows_the_teacher_8_pixels_a_cell(
        trainer_shards, tmp_path, capsys):
    """With adapter up-res the branches' map has 2x the latent's cells: the fit must cut the
    image at 8 pixels a latent cell for the teacher's conv_2x to lie on it (a mismatch fails
    in the hint's subtraction)."""
    from trainer import latent_start

    out = tmp_path / "up.pth"
    assert latent_start.main([str(trainer_shards), "--rates", "4", "--steps", "2",
                              "--latent-adapter", "up-res", "--out", str(out)]) == 0
    assert "after" in capsys.readouterr().out
    written = torch.load(out, weights_only=True)["model"]
    assert written["adapter.0.weight"].shape == (256, 256, 2, 2)
    config = TrainConfig(domain="latent", shards="x", latent_adapter="up-res")
    assert config.input_sizes.hint_stride == 2 * HINT_STRIDE


def test_the_shipped_latent_start_fills_all_of_the_demo_classifier_but_its_fc(caplog):
    from classifier.models import CResNet39, initial_state, load_matching

    demo = [storage.sha256(ROOT / "codecs" / "demo" / f"codec-q{q}.pth") for q in (1, 4, 8)]
    model = CResNet39(96, 6)  # the demo codecs: M = 96; 6 classes
    fresh = load_matching(model, initial_state("latent-hint-demo", demo[1:2]), "latent-hint-demo")
    assert fresh == ["fc.bias", "fc.weight"]
    assert "fitted to the latents of other codec weights" not in caplog.text
    # the real-photograph codecs make other latents: the start says so, and still loads
    other = [storage.sha256(ROOT / "codecs" / "minc-subset" / "codec-q4.pth")]
    assert initial_state("latent-hint-demo", other) is not None
    assert "fitted to the latents of other codec weights" in caplog.text
    assert "make latent-hint CODECS=DIR" in caplog.text
