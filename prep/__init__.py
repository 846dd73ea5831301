"""Data preparation: learned-codec encoding of texture datasets into WebDataset shards.

    datasets/  the images: listings (MINC-2500, class folders), the synthetic and procedural
               sets, MINC-2500's download
    codec/     training the learned codec, its rate-distortion comparison, and the classical
               anchors (JPEG, WebP); the codec itself is foundation.hyperprior and .coding
    job/       `python -m prep` (cli.py): the shard plan, the Ray actors that write the shards,
               the driver that merges them

The shard contract it writes (docs/shards.md) is foundation.schema.
"""

import foundation  # noqa: F401  (silences CompressAI's import-time warning)
