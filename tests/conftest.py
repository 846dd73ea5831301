"""Shared fixtures: the real MINC-2500 sample, small synthetic sets, real codecs, one Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from foundation.hyperprior import init_weights

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "minc-2500-sample" / "minc-2500"


@pytest.fixture(scope="session")
def minc_sample() -> Path:
    """120 real MINC-2500 patches of 4 classes in the official layout (split 1: 80/16/24)."""
    if not (SAMPLE / "categories.txt").is_file():
        missing = f"the real MINC-2500 sample is not at {SAMPLE}"
        if os.environ.get("CI") == "true":  # CI must run these tests, not pass without them
            pytest.fail(f"{missing} (CI=true: ../shared must be there)")
        pytest.skip(missing)
    return SAMPLE


def codec_file(path: Path, quality: int, sizes: tuple[int, int] | None = None,
               seed: int = 0) -> Path:
    """A real codec of the paper's architecture with seeded untrained weights whose latents
    span tens of integer levels (see init_weights' latent_gain)."""
    path.write_bytes(init_weights(quality, seed, sizes, latent_gain=40.0))
    return path


@pytest.fixture(scope="session")
def codec_q1(tmp_path_factory) -> Path:
    return codec_file(tmp_path_factory.mktemp("codec") / "q1.pth", 1)


@pytest.fixture(scope="session")
def codec_q8(tmp_path_factory) -> Path:
    return codec_file(tmp_path_factory.mktemp("codec") / "q8.pth", 8)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (ray.init costs seconds); 2 CPUs like this machine."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory) -> Path:
    """4 classes x 10 synthetic textures of 128 px, MINC-2500 layout (8/1/1 per class)."""
    from prep.datasets.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("data") / "synthetic-small",
                         classes=4, per_class=10, size=128)


DEMO_CODEC_Q4 = Path(__file__).resolve().parents[1] / "codecs" / "demo" / "codec-q4.pth"


@pytest.fixture(scope="session")
def trainer_shards(tmp_path_factory, ray_local) -> Path:
    """4 classes x 60 synthetic textures (256 px, distractors <= 20%) at q4, demo codec.

    42/6/12 per class; 11 samples a shard: 16 train, 3 validate and 5 test shards (odd
    counts, short last ones).
    """
    from prep.datasets.synthetic import write_dataset
    from prep.job.config import PrepConfig
    from prep.job.driver import run

    root = tmp_path_factory.mktemp("trainer")
    data = write_dataset(root / "textures", classes=4, per_class=60, size=256, seed=1,
                         fractions=(0.7, 0.1, 0.2), max_mix=0.2)
    run(PrepConfig(data=data, out=root / "shards", quality=4, codec_weights=DEMO_CODEC_Q4,
                   workers=2, shard_size=11))
    return root / "shards" / "textures"


SMALL_PREP_ARGS = ("-q", "1", "--workers", "2", "--shard-size", "8")  # 6 shards a set


@pytest.fixture(scope="session")
def small_shards(tmp_path_factory, synthetic_small, codec_q1, ray_local) -> Path:
    """synthetic_small prepared at q1 on the session's single-node Ray (SMALL_PREP_ARGS): the
    reference that runs elsewhere (other nodes, other storage) must reproduce byte for byte."""
    from prep.cli import main

    out = tmp_path_factory.mktemp("small-shards")
    assert main(["--data", str(synthetic_small), "--out", str(out), "--codec-weights",
                 str(codec_q1), *SMALL_PREP_ARGS]) == 0
    return out / "synthetic-small"
