"""Data preparation: learned-codec encoding of texture datasets into WebDataset shards.

    datasets/  the images: listings (MINC-2500, class folders), reading as RGB, synthetic and
               procedural sets, MINC-2500's download
    codec/     the learned codec (model, per-image coding, training, RD comparison) and the
               classical anchors (JPEG, WebP)
    job/       `python -m prep` (cli.py): the shard plan, the Ray actors that write the shards,
               the driver that merges them
    store/     the shard contract (docs/shards.md) and storage (local paths, object stores),
               which the trainer and evaluation read through too
    common/    what every stage uses: published weights (torch.hub), MLflow, progress bars
"""

import warnings

# CompressAI 1.2.8 calls torch.jit.script at import time; torch 2.14 warns about it on every import.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                        category=FutureWarning)
