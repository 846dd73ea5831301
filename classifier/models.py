"""The paper's classifiers (Table 1): ResNet-50 with a deep stem, and cResNet-39 on latents.

`--init` names where a classifier starts: `imagenet` (torchvision's ImageNet ResNet-50, as the
paper; the deep stem, both latent branches and the fc start fresh), `procedural` (the
project's offline stand-in, a deep-stem ResNet-50 pretrained on procedural images:
backbones/procedural/README.md), `none`, or a state dict file. Every tensor whose name and
shape agree is loaded; cResNet-39 takes conv_3x..conv_5x.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50
from torchvision.models.resnet import Bottleneck, conv1x1
from torchvision.ops import SqueezeExcitation

from foundation import hub

log = logging.getLogger(__name__)

BACKBONES = Path(__file__).resolve().parent.parent / "backbones"
NAMED_FILES = {"procedural": BACKBONES / "procedural" / "resnet50.pth",
               # cResNet-39's latent branches for the demo codecs' latents, on procedural's trunk
               "latent-hint-demo": BACKBONES / "latent-hint-demo" / "branches.pth"}
INITS = ("none", "imagenet", *NAMED_FILES)  # or a path to a state dict
IMAGENET_URL = ResNet50_Weights.IMAGENET1K_V1.url  # resnet50-0676ba61.pth
SIGMA_INPUTS = ("linear", "log")  # how cResNet-39 reads sigma_hat
ADAPTERS = ("none", "se", "res", "up-res")  # between cResNet-39's latent branches and its trunk
UPSAMPLING = {"up-res": 2}  # an adapter's output cells per latent cell, a side (1 where absent)
ADAPTATION_PARTS = ("branches", "adapter")  # cResNet-39's modules between latent and trunk


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet-50: the hub cache, else a download, sha256 prefix checked,
    read without unpickling (weights_only)."""
    data, _ = hub.fetch(IMAGENET_URL, "ImageNet weights",
                        "use --init procedural (offline), none or FILE")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy the tensors whose name and shape match; returns the names that start fresh."""
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    fresh = sorted(k for k in own if k not in matched and not k.endswith("num_batches_tracked"))
    log.info("%s: %d tensors loaded, %d start fresh", source, len(matched), len(fresh))
    return fresh


def initial_state(init: str, codecs: list[str] = ()) -> dict[str, torch.Tensor] | None:
    """The tensors `--init` names (None for none), in float32; a missing file is one error
    that says what to do. A file that names a trunk (classifier.backbone.write_start) holds only
    its own tensors: they go over the trunk's. `codecs`: the sha256 of the codec weights whose
    latents the start will read; a warning where its latent branches were fitted to others'.
    The trainer calls this before any process group exists."""
    if init == "none":
        return None
    if init == "imagenet":
        return imagenet_state_dict()
    path = NAMED_FILES.get(init, Path(init))
    if not path.is_file():
        raise FileNotFoundError(f"--init {init}: no such file {path} (choices: "
                                f"{', '.join(INITS)}, or a state dict file)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's zip reader and unpickler raise their own
        raise ValueError(f"--init {init}: {path} is not a state dict torch reads without "
                         f"unpickling ({type(err).__name__}): write it again, or name another"
                         ) from err
    state = content.get("model", content) if isinstance(content, dict) else content
    own = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    trunk = content.get("trunk") if isinstance(content, dict) else None
    fitted = content.get("codecs") if isinstance(content, dict) else None
    if fitted and not set(codecs) <= set(fitted):
        log.warning("--init %s: its latent branches were fitted to the latents of other codec "
                    "weights (sha256 %s), not of these (%s): they start from a fit to another "
                    "latent space; `make latent-hint CODECS=DIR LATENT_HINT=FILE` fits them to "
                    "yours", init, ", ".join(f[:12] for f in fitted),
                    ", ".join(c[:12] for c in codecs))
    trunk = trunk_of(path, trunk)
    return own if trunk is None else {**(initial_state(trunk) or {}), **own}


def trunk_of(start: Path, trunk: str | None) -> str | None:
    """The trunk a start file names, as a path from here: named from the start's folder
    (write_start), or, in files written before that, from the working directory."""
    if trunk is not None and trunk not in INITS and (start.parent / trunk).is_file():
        return str(start.parent / trunk)
    return trunk


def initialise(model: nn.Module, init: str) -> nn.Module:
    state = initial_state(init)
    if state is not None:
        load_matching(model, state, f"--init {init}")
    return model


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def resnet50_deep_stem(num_classes: int, init: str = "none") -> nn.Module:
    """ResNet-50 with conv1 = 3x3,64 (stride 2); 3x3,64; 3x3,128, torchvision's otherwise."""
    model = resnet50(num_classes=num_classes, zero_init_residual=True)
    model.conv1 = nn.Sequential(*_conv_bn_relu(3, 64, 2), *_conv_bn_relu(64, 64),
                                nn.Conv2d(64, 128, 3, 1, 1, bias=False))
    model.bn1 = nn.BatchNorm2d(128)
    first = model.layer1[0]  # reads the 128-channel stem instead of 64 channels
    first.conv1 = conv1x1(128, 64)
    first.downsample[0] = conv1x1(128, 256)
    return initialise(model, init)


class CResNet39(nn.Module):
    """cResNet-39: a bottleneck block per input (y_hat, sigma_hat), concatenated to 256
    channels, then ResNet-50's conv_3x, conv_4x, conv_5x, average pool and fc.

    The input holds y_hat's M channels then sigma_hat's M channels; `inputs` picks the
    branches (the ablation): with one input its block widens to 256 channels itself. `sigma`:
    the sigma branch reads sigma_hat as it is (`linear`, the paper) or its logarithm (`log`):
    the scales span 0.11..256 on a geometric table, so a few large ones dominate the linear
    input's BatchNorm statistics. `adapter`: `se` puts a channel attention (squeeze and
    excitation, 256 -> 16 -> 256) between the concatenated branches and conv_3x, after the
    feature adaptation of Deng and Karam's follow-up (arXiv 2305.08000), which reweights the
    latent features channel by channel before the pixel-pretrained trunk; `res` puts two
    residual bottleneck blocks there (residual_adapter): depth for the branches to emulate a
    pixel classifier's conv_2x with (trainer.latent_start), where one block each falls short;
    `up-res` puts a learned 2x upsampling before those blocks (learned_upsampling): the trunk
    reads 2x the cells of the latent as it is given.
    """

    def __init__(self, channels: int, num_classes: int, inputs: str = "both",
                 sigma: str = "linear", adapter: str = "none"):
        super().__init__()
        if inputs not in ("y", "sigma", "both"):
            raise ValueError(f"inputs must be y, sigma or both, got {inputs!r}")
        if sigma not in SIGMA_INPUTS:
            raise ValueError(f"sigma must be one of {', '.join(SIGMA_INPUTS)}, got {sigma!r}")
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, got {adapter!r}")
        self.channels, self.inputs, self.log_sigma = channels, inputs, sigma == "log"
        names = ("y", "sigma") if inputs == "both" else (inputs,)
        planes = 64 // len(names)  # 1x1,32; 3x3,32; 1x1,128 each (64, 64, 256 alone)
        # y_hat spans tens of integer levels and sigma_hat 0.11..256: a BatchNorm on each input
        # puts both on the scale the ImageNet-initialised trunk expects (not in the paper)
        self.branches = nn.ModuleDict({
            name: nn.Sequential(nn.BatchNorm2d(channels), Bottleneck(
                channels, planes, downsample=nn.Sequential(conv1x1(channels, planes * 4),
                                                           nn.BatchNorm2d(planes * 4))))
            for name in names
        })
        self.adapter = (SqueezeExcitation(256, 16) if adapter == "se" else
                        residual_adapter() if adapter == "res" else
                        nn.Sequential(learned_upsampling(256), *residual_adapter())
                        if adapter == "up-res" else nn.Identity())
        trunk = resnet50(num_classes=num_classes, zero_init_residual=True)
        self.layer2, self.layer3, self.layer4 = trunk.layer2, trunk.layer3, trunk.layer4
        self.avgpool, self.fc = trunk.avgpool, trunk.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's 256-channel input: it stands where a ResNet-50's conv_2x output stands
        (trainer.distill matches the two)."""
        sigma = x[:, self.channels:]
        parts = {"y": x[:, : self.channels], "sigma": sigma.log() if self.log_sigma else sigma}
        return self.adapter(torch.cat([branch(parts[name])
                                       for name, branch in self.branches.items()], dim=1))

    def adaptation(self) -> list[nn.Parameter]:
        """The parameters between the latent and the trunk: the branches and the adapter."""
        return [*self.branches.parameters(), *self.adapter.parameters()]

    def adaptation_state(self) -> dict[str, torch.Tensor]:
        """adaptation()'s tensors, buffers included, named as in state_dict()."""
        return {f"{part}.{k}": v for part in ADAPTATION_PARTS
                for k, v in getattr(self, part).state_dict().items()}

    def forward(self, x: torch.Tensor, hint: bool = False):
        """Logits; with `hint`, (logits, self.features(x))."""
        features = self.features(x)
        x = self.layer4(self.layer3(self.layer2(features)))
        logits = self.fc(torch.flatten(self.avgpool(x), 1))
        return (logits, features) if hint else logits


def residual_adapter() -> nn.Sequential:
    """Two of ResNet-50's conv_2x bottleneck blocks (256 -> 64 -> 64 -> 256 channels), each
    starting as the identity (its last BatchNorm's scale zero): a fresh adapter leaves the
    branches' map as it is until it learns."""
    blocks = nn.Sequential(Bottleneck(256, 64), Bottleneck(256, 64))
    for block in blocks:
        nn.init.zeros_(block.bn3.weight)
    return blocks


def learned_upsampling(channels: int) -> nn.ConvTranspose2d:
    """2x the cells, each of a cell's four sub-cells by its own 1x1 weights (a stride-2, 2x2
    transposed convolution, starting as nearest-neighbour upsampling). A convolution after a
    fixed (bilinear) upsampling applies one filter at every sub-cell, so it can tell them
    apart only by the interpolation's slopes. The codec's synthesis transform upsamples with
    transposed convolutions too (5x5)."""
    up = nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)
    with torch.no_grad():
        up.weight.zero_()
        up.weight[range(channels), range(channels)] = 1.0
    return up


def upsampling(adapter: str) -> int:
    """How many cells a side cResNet-39's trunk reads per latent cell it is given."""
    return UPSAMPLING.get(adapter, 1)


def cresnet39(channels: int, num_classes: int, inputs: str = "both", init: str = "none",
              sigma: str = "linear", adapter: str = "none") -> nn.Module:
    return initialise(CResNet39(channels, num_classes, inputs, sigma, adapter), init)
