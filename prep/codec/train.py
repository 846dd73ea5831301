"""Train or fine-tune the codec (bmshj2018-hyperprior, MS-SSIM) for one quality.

CompressAI's RateDistortionLoss with the quality's MS-SSIM lambda, its net/aux optimizers, random
crops of the train split; validation on the validate split at full size with the real entropy
coder. Checkpoints are atomic and `--resume` continues exactly. The exported file works with
`make prep CODEC_WEIGHTS=...`.

    python -m prep.codec.train --quality 4 --data data/synthetic-textures --out codecs/q4
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from compressai.losses import RateDistortionLoss
from compressai.models import ScaleHyperprior
from compressai.optimizers import net_aux_optimizer
from compressai.zoo.image import cfgs
from PIL import Image

from foundation import storage
from foundation.cli import stage_main
from foundation.coding import code_images, cpu_decoder
from foundation.hyperprior import (
    ARCHITECTURE,
    QUALITIES,
    CodecWeights,
    load_codec,
    resolve_weights,
    weights_file_name,
)
from foundation.progress import progress
from prep.datasets.listing import Listing, list_dataset

log = logging.getLogger(__name__)

# CompressAI's documented lambdas for MS-SSIM training, qualities 1..8
MS_SSIM_LAMBDAS = {1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50, 7: 115.37, 8: 220.00}
MIN_CROP = 192  # RateDistortionLoss(metric="ms-ssim") refuses crops of 160 px or less
CHECKPOINT = "checkpoint.pth"


@dataclass(frozen=True)
class CodecTrainConfig:
    quality: int
    data: str
    out: str
    init: str = "none"  # none | pretrained | a weights file
    sizes: tuple[int, int] | None = None  # (N, M); default: the quality's published sizes
    steps: int = 20000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    aux_lr: float = 1e-3
    lmbda: float | None = None  # default: MS_SSIM_LAMBDAS[quality]
    val_every: int = 1000
    val_images: int = 32
    checkpoint_every: int = 200
    threads: int | None = None
    seed: int = 0
    split: int = 1

    @property
    def rd_lambda(self) -> float:
        return self.lmbda if self.lmbda is not None else MS_SSIM_LAMBDAS[self.quality]


class Crops:
    """Random crops (with flips) of the train split's images, read from disk as needed."""

    def __init__(self, listing: Listing, crop: int, seed: int):
        self.paths = [listing.path(i) for i in listing.items if i.split == "train"]
        if not self.paths:
            raise ValueError(f"{listing.root} has no train images to train a codec on")
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        crops = []
        for index in self.rng.integers(len(self.paths), size=size):
            image = np.asarray(Image.open(self.paths[index]).convert("RGB"))
            h, w = image.shape[:2]
            if min(h, w) < self.crop:
                image = np.pad(image, ((0, max(0, self.crop - h)), (0, max(0, self.crop - w)),
                                       (0, 0)), mode="reflect")
                h, w = image.shape[:2]
            top, left = self.rng.integers(h - self.crop + 1), self.rng.integers(w - self.crop + 1)
            crop = image[top:top + self.crop, left:left + self.crop]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            crops.append(np.ascontiguousarray(crop))
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def initial_model(config: CodecTrainConfig) -> ScaleHyperprior:
    if config.init == "none":
        return ScaleHyperprior(*(config.sizes or cfgs[ARCHITECTURE][config.quality]))
    weights_file = None if config.init == "pretrained" else config.init
    return load_codec(resolve_weights(config.quality, weights_file)).train()


def validate(model: ScaleHyperprior, listing: Listing, limit: int) -> dict[str, float]:
    """Mean bpp (from the real strings), PSNR and MS-SSIM on full validate images."""
    model = copy.deepcopy(model).eval()
    model.update(force=True)
    items = [i for i in listing.items if i.split == "validate"][:limit]
    decoder = cpu_decoder(model)
    coded = [code_images(model, [Image.open(listing.path(i)).convert("RGB")], decoder)[0]
             for i in items]
    return {name: float(np.nanmean([getattr(c, name) for c in coded]))
            for name in ("bpp", "psnr", "ms_ssim")}


def export(model: ScaleHyperprior, path: Path) -> CodecWeights:
    """Weights for prep: parameters rounded to fp16 first, then CDFs computed from exactly those."""
    model = copy.deepcopy(model).eval()
    parameters = {name for name, _ in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.update(force=True)
    state = {k: v.half() if k in parameters else v for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    storage.write_atomic(path, buffer.getvalue())
    return CodecWeights(buffer.getvalue(), str(path), "")


def save_checkpoint(path: Path, model, optimizers, scheduler, step, rng, history, config: dict):
    state = {
        "model": model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "scheduler": scheduler.state_dict(), "step": step,
        "rng": {"torch": torch.get_rng_state(), "crops": json.dumps(rng.bit_generator.state)},
        "history": json.dumps(history), "config": json.dumps(config),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    storage.write_atomic(path, buffer.getvalue())


def train(config: CodecTrainConfig) -> Path:
    if config.crop < MIN_CROP:
        raise ValueError(f"--crop {config.crop} is too small for MS-SSIM; use {MIN_CROP} or more")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    listing = list_dataset(config.data, config.split)
    crops = Crops(listing, config.crop, config.seed)
    model = initial_model(config).train()
    optimizers = net_aux_optimizer(model, {"net": {"type": "Adam", "lr": config.lr},
                                           "aux": {"type": "Adam", "lr": config.aux_lr}})
    milestones = [int(config.steps * 0.8), int(config.steps * 0.95)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizers["net"], milestones, 0.1)
    criterion = RateDistortionLoss(lmbda=config.rd_lambda, metric="ms-ssim")
    step, history, run_id = 0, [], None
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        for key, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        scheduler.load_state_dict(state["scheduler"])
        step, history = state["step"], json.loads(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        crops.rng.bit_generator.state = json.loads(state["rng"]["crops"])
        run_id = json.loads(state["config"]).get("mlflow_run_id")
        print(f"resuming {checkpoint} at step {step}")

    from foundation.tracking import start_run

    name = f"codec-q{config.quality}-{listing.name}"
    with start_run("codec-training", name, {"quality": str(config.quality)}, run_id) as run:
        import mlflow

        if run_id is None:
            mlflow.log_params({**asdict(config), "lambda": config.rd_lambda,
                               "dataset": listing.name})
        config_with_run = {**asdict(config), "mlflow_run_id": run.info.run_id}
        bar = progress(total=config.steps, initial=step, unit="step")
        start = time.perf_counter()
        while step < config.steps:
            x = crops.batch(config.batch_size)
            for optimizer in optimizers.values():
                optimizer.zero_grad()
            losses = criterion(model(x), x)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizers["net"].step()
            aux_loss = model.aux_loss()
            aux_loss.backward()
            optimizers["aux"].step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss'].item():.3f}",
                            bpp=f"{losses['bpp_loss'].item():.3f}",
                            msssim=f"{losses['ms_ssim_loss'].item():.3f}", refresh=False)
            if step % 50 == 0:
                mlflow.log_metrics({"loss": losses["loss"].item(),
                                    "bpp_loss": losses["bpp_loss"].item(),
                                    "ms_ssim_loss": losses["ms_ssim_loss"].item(),
                                    "aux_loss": aux_loss.item(),
                                    "lr": optimizers["net"].param_groups[0]["lr"]}, step=step)
            if step % config.val_every == 0 or step == config.steps:
                point = {"step": step, **validate(model, listing, config.val_images)}
                history.append(point)
                mlflow.log_metrics({f"val_{k}": v for k, v in point.items() if k != "step"},
                                   step=step)
                bar.write(f"step {step}: validate bpp {point['bpp']:.3f}, PSNR "
                          f"{point['psnr']:.2f} dB, MS-SSIM {point['ms_ssim']:.4f}")
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(checkpoint, model, optimizers, scheduler, step, crops.rng,
                                history, config_with_run)
        bar.close()
        final = out / weights_file_name(config.quality)
        export(model, final)
        storage.write_atomic(out / "history.json", json.dumps(history, indent=1).encode())
        mlflow.log_artifact(str(out / "history.json"))
        print(f"wrote {final} after {step} steps ({time.perf_counter() - start:.0f} s this run)")
    return final


def parser() -> argparse.ArgumentParser:
    d = CodecTrainConfig(quality=1, data="", out="")
    p = argparse.ArgumentParser(prog="python -m prep.codec.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quality", "-q", type=int, required=True, choices=QUALITIES)
    p.add_argument("--data", required=True, help="dataset (MINC-2500 layout or class folders)")
    p.add_argument("--out", required=True, help="folder for checkpoint.pth and codec-q<Q>.pth")
    p.add_argument("--init", default="none",
                   help="none (fresh), pretrained (CompressAI's file), or a weights file")
    p.add_argument("--sizes", default=None, help="N,M for a fresh codec (default: the quality's)")
    for name in ("steps", "batch_size", "crop", "val_every", "val_images", "checkpoint_every",
                 "threads", "seed", "split"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("lr", "aux_lr", "lmbda"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    return p


@stage_main
def main(argv: list[str] | None = None) -> int:
    args = vars(parser().parse_args(argv))
    if args["sizes"]:
        args["sizes"] = tuple(int(v) for v in args["sizes"].split(","))
    train(CodecTrainConfig(**args))  # bad input: one line; the checkpoint stays
    return 0


if __name__ == "__main__":
    sys.exit(main())
