"""The measured cost of a prediction from the bitstream: compressed domain against pixels.

Both paths start from the same real y and z strings and entropy-decode them (z_hat, h_s, the
scale indexes, y_hat); then
- compressed domain: sigma_hat = scale_table[index], resize to 32, centre crop 28, cResNet-39;
- pixel domain: g_s, crop the padding, resize, centre crop, normalise, ResNet-50.
Latency and images/s are wall time on the machine at hand (on a GPU: between CUDA events,
synchronised); FLOPs are torch's flop counter over
the tensor work (the range coder itself is integer work it does not count).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms.v2 import functional as TF

from classifier.domains import DECODED, LATENT
from classifier.methods import ANCHOR2, ANCHOR3, COMP
from classifier.transforms import IMAGENET_MEAN, IMAGENET_STD, PAPER_SIZES
from evaluation.catalogue import Catalogue
from evaluation.classifiers import Classifier, load_model
from foundation import schema
from foundation.coding import entropy_decode
from foundation.hyperprior import fetch_pretrained, load_codec, read_weights_file
from foundation.sets import LEARNED, SetId

COMPRESSED, PIXEL = "compressed domain", "pixel domain"
DECODE = "of which entropy decoding"  # the shared first stage (z_hat, h_s, indexes, y_hat)


@dataclass(frozen=True)
class Bitstream:
    """One coded image as stored in a shard: strings, z's shape, the padding to crop."""

    y_string: bytes
    z_string: bytes
    z_shape: tuple[int, int]
    pad: tuple[int, int, int, int]  # left, right, top, bottom


@dataclass(frozen=True)
class Paths:
    codec: ScaleHyperprior
    latent_model: torch.nn.Module
    pixel_model: torch.nn.Module
    resize: int = PAPER_SIZES.resize  # the pixel classifier's eval transform
    crop: int = PAPER_SIZES.crop
    latent_resize: int = PAPER_SIZES.latent_resize
    latent_crop: int = PAPER_SIZES.latent_crop

    def decode(self, batch: list[Bitstream]):
        return entropy_decode(self.codec, [b.y_string for b in batch],
                              [b.z_string for b in batch], batch[0].z_shape)

    def compressed(self, batch: list[Bitstream]) -> torch.Tensor:
        y_hat, indexes = self.decode(batch)
        sigma = self.codec.gaussian_conditional.scale_table[indexes.long()]
        x = F.interpolate(torch.cat([y_hat, sigma], dim=1), size=self.latent_resize,
                          mode="bilinear", align_corners=False)
        return self.latent_model(TF.center_crop(x, [self.latent_crop]))

    def pixel(self, batch: list[Bitstream]) -> torch.Tensor:
        y_hat, _ = self.decode(batch)
        left, right, top, bottom = batch[0].pad
        x_hat = self.codec.g_s(y_hat).clamp_(0, 1)
        x_hat = x_hat[..., top:x_hat.shape[-2] - bottom, left:x_hat.shape[-1] - right]
        x = TF.center_crop(TF.resize(x_hat, [self.resize], antialias=True), [self.crop])
        return self.pixel_model(TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD))


def flops(fn: Callable, batch: list[Bitstream]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(batch)
    return counter.get_total_flops()


def timed(fn: Callable, batch: list[Bitstream], min_seconds: float, min_runs: int,
          device: torch.device) -> float:
    """Median seconds per call after one warm-up call; on CUDA between CUDA events recorded
    after a synchronisation, so that the GPU's queued work is inside the interval."""
    def call() -> float:
        if device.type != "cuda":
            t0 = time.perf_counter()
            fn(batch)
            return time.perf_counter() - t0
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn(batch)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0  # ms

    call()
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - begin < min_seconds:
        times.append(call())
    return statistics.median(times)


@torch.no_grad()  # not inference_mode: the flop counter's module hooks need autograd's views
def measure(paths: Paths, bitstreams: list[Bitstream], batch_sizes=(1, 32),
            min_seconds: float = 2.0, min_runs: int = 3) -> list[dict]:
    """One row per (batch size, path): ms per image, images/s, GFLOPs per image; the shared
    entropy-decoding stage alone; and the ratio pixel / compressed of each (the compressed
    domain's speed-up)."""
    rows = []
    device = next(paths.codec.parameters()).device
    for batch_size in batch_sizes:
        batch = [bitstreams[i % len(bitstreams)] for i in range(batch_size)]
        by_path = {}
        for name, fn in ((COMPRESSED, paths.compressed), (PIXEL, paths.pixel),
                         (DECODE, paths.decode)):
            seconds = timed(fn, batch, min_seconds, min_runs, device)
            by_path[name] = {"batch": batch_size, "path": name,
                             "ms_per_image": 1000 * seconds / batch_size,
                             "images_per_s": batch_size / seconds,
                             "gflops_per_image": flops(fn, batch[:1]) / 1e9}
        rows += by_path.values()
        c, p = by_path[COMPRESSED], by_path[PIXEL]
        rows.append({"batch": batch_size, "path": "speed-up (pixel / compressed)",
                     "ms_per_image": p["ms_per_image"] / c["ms_per_image"],
                     "images_per_s": c["images_per_s"] / p["images_per_s"],
                     "gflops_per_image": p["gflops_per_image"] / c["gflops_per_image"]})
    return rows


def read_bitstreams(shard_set, split: str = "test", count: int = 32) -> list[Bitstream]:
    """Up to `count` stored bitstreams of the split, all of the first sample's size (a batch)."""
    found: list[Bitstream] = []
    for path in shard_set.shards(split):
        for sample in schema.iter_shard(path, only=(schema.Y_STRING, schema.Z_STRING,
                                                    schema.META)):
            meta = sample[schema.META]
            stream = Bitstream(sample[schema.Y_STRING], sample[schema.Z_STRING],
                               tuple(meta["z_shape"]), tuple(meta["pad"]))
            if not found or stream.z_shape == found[0].z_shape and stream.pad == found[0].pad:
                found.append(stream)
            if len(found) == count:
                return found
    if not found:
        raise ValueError(f"{shard_set.directory} holds no {split} bitstreams")
    return found


def set_codec(shard_set, device: torch.device) -> ScaleHyperprior:
    """The codec that coded a set (dataset.json: weights source and sha256), checked."""
    info = shard_set.info["codec"]
    source = info["weights_source"]
    weights = (fetch_pretrained(info["quality"]) if source.startswith(("http:", "https:"))
               else read_weights_file(source))
    if weights.sha256 != info["weights_sha256"]:
        raise ValueError(f"{source} (sha256 {weights.sha256[:12]}) is not the codec that coded "
                         f"{shard_set.directory} (sha256 {info['weights_sha256'][:12]})")
    return load_codec(weights, device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# --- the report's cost table: its own classifiers on its own sets ------------------------------


def _pixel_classifier(classifiers: list[Classifier], quality: int) -> Classifier | None:
    for method, q in ((ANCHOR2, quality), (ANCHOR3, None)):
        for c in classifiers:
            if (c.trained_method == method and c.config.quality == q
                    and c.config.codec == LEARNED):
                return c
    return None


def report_paths(shard_set, classifiers: list[Classifier], quality: int,
                 device: torch.device) -> Paths:
    """The report's own Comp. and pixel classifiers of a quality, each with its eval input
    sizes (fresh ones of the same architecture where one was not trained: the cost does not
    depend on the weights)."""
    classes, channels = shard_set.num_classes, shard_set.latent_channels
    comp = next((c for c in classifiers
                 if c.trained_method == COMP and c.config.quality == quality), None)
    pixel = _pixel_classifier(classifiers, quality)
    latent_model = (load_model(comp, classes, channels) if comp
                    else LATENT.model(classes, channels).eval())
    pixel_model = load_model(pixel, classes, None) if pixel else DECODED.model(classes).eval()
    pixel_sizes = pixel.config.input_sizes if pixel else PAPER_SIZES
    latent_sizes = comp.config.input_sizes if comp else PAPER_SIZES
    return Paths(set_codec(shard_set, device), latent_model.to(device), pixel_model.to(device),
                 pixel_sizes.resize, pixel_sizes.crop, latent_sizes.latent_resize,
                 latent_sizes.latent_crop)


def measure_efficiency(catalogue: Catalogue, classifiers: list[Classifier], qualities: list[int],
                       device: torch.device, min_seconds: float) -> pd.DataFrame:
    """Per quality, both paths from the bitstream with the report's own classifiers."""
    rows = []
    for q in qualities:
        shard_set = catalogue.shard_set(LATENT.name, SetId.of(q))
        paths = report_paths(shard_set, classifiers, q, device)
        manifest = catalogue.manifest(shard_set)
        width, height = int(manifest["width"].median()), int(manifest["height"].median())
        inputs = (f"latent {paths.latent_crop}x{paths.latent_crop}, "
                  f"pixels {paths.crop}x{paths.crop}")
        for row in measure(paths, read_bitstreams(shard_set), min_seconds=min_seconds):
            rows.append({"quality": q, "image": f"{width}x{height}", "classifier_input": inputs,
                         **row})
    return pd.DataFrame(rows)
