"""The foundation every stage stands on: the shard contract that prep writes and the trainer and
evaluation read, and what each stage needs to do its job.

    schema     the shard contract (docs/shards.md): member names, encodings, the safe reader
    sets       the set identity: original, q4, jpeg30
    storage    where sets live: local paths and object stores
    images     any image file read as RGB
    hyperprior the learned codec: CompressAI's bmshj2018-hyperprior, its weights
    coding     an image to its bitstream, y_hat and sigma_hat, and back
    runtime    the device and the precision, resolved once
    command_line  a config dataclass as a command line, both ways
    tracking   MLflow's store and experiments; journal: records that survive a lost server
    hub        published weights through the torch.hub cache
    progress   progress bars

It imports nothing from prep, classifier, trainer, evaluation or pipeline (tests/test_layers.py).
"""

import warnings

# CompressAI 1.2.8 calls torch.jit.script at import time; torch 2.14 warns about it on every import.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                        category=FutureWarning)
