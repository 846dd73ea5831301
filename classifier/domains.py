"""The three domains a classifier reads, in one registry (in the spirit of CompressAI's zoo
dicts). Each knows its shard set, the members it decodes, its model, its input transform and the
paper's name for a classifier trained on it; the trainer, evaluation and the benchmarks ask it
rather than compare domain names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from classifier.methods import ANCHOR2, ANCHOR2_EQUAL, ANCHOR3, COMP, COMP_INPUTS, COMP_RATES
from classifier.models import cresnet39, resnet50_deep_stem
from classifier.transforms import (
    InputSizes,
    LatentInput,
    LatentTransform,
    PixelInput,
    pixel_transform,
)
from foundation import schema
from foundation.sets import LEARNED, SetId

INPUTS = ("y", "sigma", "both")  # what a cResNet-39 reads of the latent (the ablation)


@dataclass(frozen=True)
class Domain:
    name: str
    method: str  # a classifier trained on it, in the paper's words
    members: tuple[str, ...]  # what it decodes of a sample besides the label (first one present)
    coded: bool  # reads a coded set (q<Q>, jpeg<P>, webp<P>), not the original images
    latent: bool  # reads y_hat and sigma_hat: the learned codec's sets only, cResNet-39

    @property
    def model_name(self) -> str:
        return "cresnet39" if self.latent else "resnet50"

    def method_name(self, inputs: str = "both", every_rate: bool = False,
                    equal_budget: bool = False) -> str:
        """`Comp. (y)` for the latent ablations, `Comp. (every rate)` for one classifier of
        every quality, `Anchor 2 (equal budget)`, else the domain's method."""
        if self.latent and every_rate:
            return COMP_RATES
        if equal_budget and self.method == ANCHOR2:
            return ANCHOR2_EQUAL
        return COMP_INPUTS[inputs] if self.latent else self.method

    def run_label(self, inputs: str = "both", every_rate: bool = False,
                  equal_budget: bool = False) -> str:
        """The run folder's domain part: `latent-y` for the ablations, `latent-rates` for one
        classifier of every quality, `decoded-equal-budget`, else the name."""
        if self.latent and every_rate:
            return f"{self.name}-rates"
        if equal_budget and self.method == ANCHOR2:
            return f"{self.name}-equal-budget"
        return f"{self.name}-{inputs}" if self.latent and inputs != "both" else self.name

    def set_for(self, quality: int | None, codec: str = LEARNED) -> SetId:
        """The set it reads: the original, or the coded set of (codec, quality)."""
        return SetId.of(quality, codec) if self.coded else SetId()

    def reads(self, set_id: SetId | None) -> SetId:
        """The set it reads when given `set_id` (the original domain: the original set),
        checked (`check`)."""
        set_id = set_id if self.coded and set_id is not None else SetId()
        self.check(set_id)
        return set_id

    def check(self, set_id: SetId) -> None:
        """A ValueError that says what to give when the set cannot be this domain's."""
        if self.coded and not set_id.coded:
            raise ValueError(f"--domain {self.name} needs --quality (the codec quality of the "
                             f"shards) or --set (e.g. q4, jpeg30)")
        if self.latent and not set_id.learned:
            raise ValueError(f"the {set_id} set holds no latents ({set_id.codec} is a classical "
                             f"codec): use --domain decoded, or a learned set q<Q>")

    def model(self, num_classes: int, latent_channels: int | None = None, inputs: str = "both",
              init: str = "none", sigma: str = "linear", adapter: str = "none") -> nn.Module:
        if self.latent:
            return cresnet39(latent_channels, num_classes, inputs, init, sigma, adapter)
        return resnet50_deep_stem(num_classes, init)

    def decodes(self, hint: bool = False) -> tuple[str, ...]:
        """The members a sample is decoded for; `hint`: the decoded image beside the latent."""
        return (*self.members, schema.DECODED) if hint and self.latent else self.members

    def transform(self, info: dict, train: bool, sizes: InputSizes, hint: bool = False,
                  latent_flip: bool = True):
        """A decoded sample -> the model's input tensor; `info` is the set's dataset.json.
        `hint` (latent domain): (latent, decoded image cut alike), for trainer.distill;
        `latent_flip`: the latent's random flip in training (LatentTransform)."""
        if self.latent:
            return LatentInput(LatentTransform(info["codec"]["scale_table"], train,
                                               sizes.latent_resize, sizes.latent_crop,
                                               latent_flip, sizes.hint_stride), hint)
        return PixelInput(self.members, pixel_transform(train, sizes.resize, sizes.crop))


ORIGINAL = Domain("original", ANCHOR3, schema.ORIGINAL_FORMATS, coded=False, latent=False)
DECODED = Domain("decoded", ANCHOR2, (schema.DECODED,), coded=True, latent=False)
LATENT = Domain("latent", COMP, (schema.LATENT, schema.SCALES), coded=True, latent=True)
DOMAINS = {d.name: d for d in (ORIGINAL, DECODED, LATENT)}


def get(name: str) -> Domain:
    if name not in DOMAINS:
        raise ValueError(f"domain {name!r} is not one of {', '.join(DOMAINS)}")
    return DOMAINS[name]
