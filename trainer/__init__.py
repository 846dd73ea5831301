"""The training loop: DDP classifiers on prepared shards (ResNet-50 anchors and the
compressed-domain cResNet-39, as the classifier toolkit, classifier/, defines them)."""

import foundation  # noqa: F401  (silences CompressAI's import-time warning in every rank)
