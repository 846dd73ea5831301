"""The codec: CompressAI's bmshj2018-hyperprior (MS-SSIM), from pretrained files or a state dict.

Weights travel as bytes (a state dict saved by torch.save), so the driver resolves them once and
every Ray actor, on any node, loads the same bytes with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from compressai.models import ScaleHyperprior
from compressai.zoo.image import cfgs, model_urls
from compressai.zoo.pretrained import load_pretrained

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


def check_quality(quality: int) -> None:
    if quality not in QUALITIES:
        raise ValueError(f"quality {quality} is not one of {list(QUALITIES)}")


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_pretrained(quality: int) -> CodecWeights:
    """CompressAI's pretrained file from the torch.hub cache, downloading it if it is missing.

    The 8 hex digits in the file name are the sha256 prefix; CompressAI does not check them,
    this does (both for a download and for a file someone placed in the cache).
    """
    url = pretrained_url(quality)
    path = hub_checkpoint_dir() / url.rsplit("/", 1)[-1]
    expected = path.name.split("-")[-1].split(".")[0]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=expected, progress=True)
        except Exception as err:
            raise FileNotFoundError(
                f"pretrained codec weights {path.name} are not in {path.parent} and could not be "
                f"downloaded from {url} ({type(err).__name__}: {err}). Put that file in "
                f"{path.parent} (set TORCH_HOME to use another cache), or pass a state dict "
                f"with --codec-weights FILE."
            ) from None
    data = path.read_bytes()
    digest = sha256_of(data)
    if not digest.startswith(expected):
        raise ValueError(
            f"{path} has sha256 {digest[:8]}..., but its name says {expected}: the file is "
            f"corrupt or not the published one. Delete it and run again."
        )
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
