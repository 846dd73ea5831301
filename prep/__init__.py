"""Data preparation: learned-codec encoding of texture datasets into WebDataset shards."""

import warnings

# CompressAI 1.2.8 calls torch.jit.script at import time; torch 2.14 warns about it on every import.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                        category=FutureWarning)
