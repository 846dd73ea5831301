"""One reading of --device for every stage: auto follows the GPU, cuda without one is refused."""

import pytest

from foundation.device import resolve_device


@pytest.mark.parametrize(("asked", "has_cuda", "resolved"), [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", True, "cuda"),
])
def test_auto_follows_the_gpu_and_a_choice_is_kept(asked, has_cuda, resolved):
    assert resolve_device(asked, has_cuda) == resolved


def test_cuda_without_a_gpu_and_an_unknown_device_are_explained():
    with pytest.raises(RuntimeError, match="the Ray cluster has no CUDA GPU"):
        resolve_device("cuda", False, "the Ray cluster")
    with pytest.raises(ValueError, match="choose one of auto, cpu, cuda"):
        resolve_device("gpu", True)
