from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foundation import hyperprior
from foundation.coding import code_images, entropy_decode

DEMO_CODECS = Path(__file__).resolve().parents[1] / "codecs" / "demo"


@pytest.fixture(scope="module")
def models(codec_q1, codec_q8):
    return {q: hyperprior.load_codec(hyperprior.read_weights_file(p)) for q, p in
            ((1, codec_q1), (8, codec_q8))}


@pytest.mark.parametrize(("quality", "channels"), [(1, 192), (8, 320)])
def test_real_minc_image_codes_losslessly_from_the_bitstream(models, minc_sample, quality,
                                                             channels):
    model = models[quality]
    image = Image.open(minc_sample / "images/brick/brick_000000.jpg").convert("RGB")
    [coded] = code_images(model, [image])
    assert coded.y_hat.shape == (channels, 24, 24) == coded.scale_index.shape
    assert coded.mismatch is None and np.abs(coded.y_hat).max() > 1  # a non-trivial latent
    assert coded.bpp == 8 * (len(coded.y_string) + len(coded.z_string)) / (362 * 362)
    y_hat, indexes = entropy_decode(model, [coded.y_string], [coded.z_string], coded.z_shape)
    assert np.array_equal(y_hat[0].numpy(), coded.y_hat)
    assert np.array_equal(indexes[0].numpy(), coded.scale_index)
    assert coded.decoded.size == image.size and coded.pad == (11, 11, 11, 11)
    assert 0 < coded.ms_ssim <= 1 and 0 < coded.psnr < 100


def test_odd_sizes_pad_and_crop_back(models):
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (130, 200, 3), dtype=np.uint8))
              for _ in range(2)]
    coded = code_images(models[1], images)
    assert [c.decoded.size for c in coded] == [(200, 130)] * 2
    assert coded[0].y_hat.shape == (192, 192 // 16, 256 // 16)
    assert np.isnan(coded[0].ms_ssim)  # too small for MS-SSIM's five scales; SSIM still given
    assert 0 < coded[0].ssim < 1


def test_batch_equals_single_images(models, minc_sample):
    paths = sorted((minc_sample / "images/fabric").glob("*.jpg"))[:2]
    images = [Image.open(p).convert("RGB") for p in paths]
    batch = code_images(models[1], images)
    singles = [code_images(models[1], [image])[0] for image in images]
    for b, s in zip(batch, singles, strict=True):
        assert b.y_string == s.y_string and b.z_string == s.z_string


def test_mixed_sizes_in_one_batch_are_refused(models):
    with pytest.raises(ValueError, match="one size"):
        code_images(models[1], [Image.new("RGB", (64, 64)), Image.new("RGB", (128, 64))])


def test_the_transforms_indexes_are_a_readers_on_the_cpu(synthetic_small):
    """The transforms' scale indexes equal those a reader entropy-decodes from the strings
    (h_s on a contiguous z_hat): with h_a's channels-last z_hat, h_s picked another index for
    2 of these 40 images with the demo's q8 codec."""
    model = hyperprior.load_codec(hyperprior.read_weights_file(DEMO_CODECS / "codec-q8.pth"))
    paths = sorted((synthetic_small / "images").rglob("*.jpg"))
    assert len(paths) == 40
    coded = [code_images(model, [Image.open(p).convert("RGB")])[0] for p in paths]
    assert [c.mismatch for c in coded] == [None] * len(paths)
