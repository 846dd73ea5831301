"""The codec: CompressAI's bmshj2018-hyperprior (MS-SSIM), from pretrained files or a state dict.

Weights travel as bytes (a state dict saved by torch.save), so the driver resolves them once and
every Ray actor, on any node, loads the same bytes with `weights_only=True`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from compressai.models import ScaleHyperprior
from compressai.zoo.image import cfgs, model_urls
from compressai.zoo.pretrained import load_pretrained

from foundation import hub
from foundation.hub import sha256_of

ARCHITECTURE = "bmshj2018-hyperprior"
METRIC = "ms-ssim"
QUALITIES = tuple(range(1, 9))


@dataclass(frozen=True)
class CodecWeights:
    """A state dict's bytes and where they came from."""

    data: bytes
    source: str  # a path, or the pretrained file's URL
    sha256: str


def pretrained_url(quality: int) -> str:
    check_quality(quality)
    return model_urls[ARCHITECTURE][METRIC][quality]


def weights_file_name(quality: int) -> str:
    """What `python -m prep.codec.train` writes and a codecs folder holds: codec-q<Q>.pth."""
    return f"codec-q{quality}.pth"


def check_quality(quality: int) -> None:
    if quality not in QUALITIES:
        raise ValueError(f"quality {quality} is not one of {list(QUALITIES)}")


def fetch_pretrained(quality: int) -> CodecWeights:
    """CompressAI's pretrained file from the torch.hub cache (downloaded if missing), its
    sha256 prefix checked."""
    url = pretrained_url(quality)
    data, digest = hub.fetch(url, "pretrained codec weights",
                             "pass a state dict with --codec-weights FILE")
    return CodecWeights(data=data, source=url, sha256=digest)


def read_weights_file(path: str | Path) -> CodecWeights:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codec weights file {path} does not exist (--codec-weights)")
    data = path.read_bytes()
    return CodecWeights(data=data, source=str(path), sha256=sha256_of(data))


def resolve_weights(quality: int, weights_file: str | Path | None) -> CodecWeights:
    return read_weights_file(weights_file) if weights_file else fetch_pretrained(quality)


def _state_dict(data: bytes, source: str) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{source} is not a torch state dict ({err})") from None
    for key in ("state_dict", "model"):  # checkpoints that wrap the model's state dict
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or "g_a.0.weight" not in loaded:
        raise ValueError(f"{source} holds no {ARCHITECTURE} state dict (no g_a.0.weight)")
    return load_pretrained(loaded)


def load_codec(weights: CodecWeights, device: str | torch.device = "cpu") -> ScaleHyperprior:
    """The codec in eval mode, sizes (N, M) inferred from the weights, CDFs ready for coding."""
    model = ScaleHyperprior.from_state_dict(_state_dict(weights.data, weights.source))
    model.update()  # fills the CDF tables only where the file lacks them
    return model.eval().to(device)


def codec_sizes(model: ScaleHyperprior) -> dict[str, int]:
    return {"N": model.g_a[0].out_channels, "M": model.g_a[6].out_channels}


def init_weights(quality: int, seed: int = 0, sizes: tuple[int, int] | None = None,
                 latent_gain: float = 1.0) -> bytes:
    """A freshly initialised codec's state dict (seeded), e.g. to start training from.

    An untrained g_a maps everything to ~0, so y_hat is all zeros; `latent_gain` scales its last
    layer so that the latents span integer levels and the coder has work to do (tests, benches).
    """
    check_quality(quality)
    torch.manual_seed(seed)
    model = ScaleHyperprior(*(sizes or cfgs[ARCHITECTURE][quality]))
    with torch.no_grad():
        model.g_a[6].weight.mul_(latent_gain)
    model.update(force=True)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()
