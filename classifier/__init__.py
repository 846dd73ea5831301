"""The classifier toolkit: what a material classifier is and reads, apart from how it is trained.

The three domains, the models (ResNet-50 with the deep stem, cResNet-39) and their starts, the
input transforms, shard sets as PyTorch streams, checkpoints, the recipe (`TrainConfig`), the
paper's method names and the names in a runs folder that other stages read. The training loop
(trainer), evaluation, the pipeline, research and the benchmarks import it; it imports only
foundation.
"""
