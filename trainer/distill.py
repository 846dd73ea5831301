"""Feature distillation from a pixel classifier into the compressed-domain one (`--distill`).

cResNet-39's latent branches stand where ResNet-50's stem and conv_2x stand: both hand
conv_3x a 256-channel map. With `--distill CHECKPOINT` (a trained Anchor 2: ResNet-50 on the
decoded images of the same set), the teacher's conv_2x output on the decoded image is a hint
(FitNets, Romero et al. 2015) for the branches' output on the latent, cut cell for cell alike
(classifier.transforms.LatentTransform: 4 pixels a latent cell, conv_2x's stride). The loss is the
cross-entropy plus `weight` times the hint's squared error relative to the teacher map's
energy (scale-free, so one weight fits every layer and quality). Starting the trunk from the
same checkpoint (`--init CHECKPOINT`) then hands conv_3x..fc the features they were trained on:
Deng and Karam's follow-up (arXiv 2305.08000) trains the compressed-domain model from the
pixel model's weights; the published text does not say how, this is our choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from classifier import checkpoint
from classifier.models import resnet50_deep_stem
from foundation import runtime


def teacher_network(path: str) -> nn.Module:
    """A decoded-domain classifier from its checkpoint, frozen, in eval mode. Errors name the
    file and say what it must be."""
    state = checkpoint.load(Path(path))
    if state["config"].get("domain") != "decoded":
        raise ValueError(f"--distill {path}: a teacher must be a decoded-domain classifier "
                         f"(Anchor 2), this one is {state['config'].get('domain')!r}")
    weights = state["model"]
    model = resnet50_deep_stem(weights["fc.weight"].shape[0])
    model.load_state_dict(weights)
    return model.eval().requires_grad_(False)


def teacher_stem(path: str) -> nn.Module:
    """A decoded-domain classifier's stem and conv_2x (teacher_network's), frozen."""
    return frozen_stem(teacher_network(path))


def frozen_stem(model: nn.Module) -> nn.Module:
    """A deep-stem ResNet-50's stem and conv_2x (the hint's layers), frozen, in eval mode."""
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1)
    return stem.eval().requires_grad_(False)


class Supervised:
    """The cross-entropy of the classifier's logits: every run without a teacher."""

    def __init__(self):
        self.criterion = nn.CrossEntropyLoss()

    def __call__(self, model: nn.Module, x, y: torch.Tensor):
        logits = model(x)
        return logits, self.criterion(logits, y)


class FeatureHint(Supervised):
    """Cross-entropy plus the teacher's conv_2x hint on the latent branches (see above)."""

    def __init__(self, teacher: nn.Module, weight: float):
        super().__init__()
        self.stem, self.weight = teacher, weight  # teacher: a frozen_stem

    def __call__(self, model: nn.Module, x, y: torch.Tensor):
        latent, image = x
        logits, features = model(latent, hint=True)
        with torch.no_grad():
            target = self.stem(image)
        return logits, self.criterion(logits, y) + self.weight * hint_error(features, target)


class Taught(Supervised):
    """Cross-entropy, plus `hint_weight` times the teacher's conv_2x hint (as FeatureHint),
    plus `kd_weight` times Hinton et al.'s distillation: the KL divergence from the teacher's
    class probabilities to the student's, both at `temperature`, times its square (the
    gradient's scale stays that of the cross-entropy). The teacher (the whole Anchor 2) sees
    the view of the decoded image that the latent is cut to, so both classify one view."""

    def __init__(self, teacher: nn.Module, hint_weight: float, kd_weight: float,
                 temperature: float):
        super().__init__()
        self.teacher, self.stem = teacher, frozen_stem(teacher)
        self.hint_weight, self.kd_weight, self.temperature = hint_weight, kd_weight, temperature

    def __call__(self, model: nn.Module, x, y: torch.Tensor):
        latent, image = x
        logits, features = model(latent, hint=True)
        with torch.no_grad():
            target = self.stem(image)
            t = self.teacher
            taught = t.fc(torch.flatten(t.avgpool(t.layer4(t.layer3(t.layer2(target)))), 1))
        loss = self.criterion(logits, y) + self.hint_weight * hint_error(features, target)
        return logits, loss + self.kd_weight * soft_target_loss(logits, taught, self.temperature)


def soft_target_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float
                     ) -> torch.Tensor:
    """T^2 KL(softmax(teacher / T) || softmax(logits / T)), the batch's mean."""
    student = torch.log_softmax(logits.float() / temperature, dim=1)
    target = torch.softmax(teacher.float() / temperature, dim=1)
    return temperature ** 2 * nn.functional.kl_div(student, target, reduction="batchmean")


def hint_error(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The squared error relative to the teacher map's energy (1: as far as predicting 0)."""
    features, target = features.float(), target.float()
    return (features - target).pow(2).mean() / target.pow(2).mean()


def fit_adaptation(model: nn.Module, teacher: nn.Module, batches, steps: int, device, amp,
                   lr: float = 1e-3) -> float:
    """FitNets' first stage (adaptation_steps) before a run's first epoch; returns the last
    batch's hint error."""
    errors = list(adaptation_steps(model, teacher, batches, steps, device, amp, lr))
    return errors[-1] if errors else 0.0


def adaptation_steps(model: nn.Module, teacher: nn.Module, batches, steps: int, device, amp,
                     lr: float = 1e-3, cosine: bool = False) -> Iterator[float]:
    """FitNets' first stage: the latent branches (and adapter) alone learn the teacher's conv_2x
    map for `steps` batches of (latent, image), Adam at `lr` (`cosine`: decayed to 0 over the
    steps), the trunk not run; gradients are averaged over the ranks. Yields each batch's
    hint error. `model`: the bare CResNet39 (not its DDP wrapper, whose reducer expects every
    parameter's gradient)."""
    parameters = model.adaptation()
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine else None
    model.train()
    world = dist.get_world_size() if dist.is_initialized() else 1
    for x, _ in islice(batches, steps):
        latent, image = (part.to(device, non_blocking=True,
                                 memory_format=runtime.memory_format(device)) for part in x)
        with amp:
            features = model.features(latent)
            with torch.no_grad():
                target = teacher(image)
        error = hint_error(features, target)
        optimizer.zero_grad(set_to_none=True)
        error.backward()
        if world > 1:
            for p in parameters:
                dist.all_reduce(p.grad)
                p.grad /= world
        optimizer.step()
        if schedule is not None:
            schedule.step()
        yield error.item()
