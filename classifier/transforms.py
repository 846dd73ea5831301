"""What a classifier sees of a sample: the pixel and latent transforms and their input sizes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import transforms as T

from foundation import schema

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# AlexNet-style PCA lighting noise (fb.resnet.torch's ImageNet eigen decomposition)
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])


HINT_STRIDE = 4  # ResNet-50's conv_2x (the teacher's hint) is 1/4 of its input's side


class InputSizes(NamedTuple):
    """Pixel domains: resize, then crop; latent domain: resize y_hat and sigma_hat, then crop."""

    resize: int
    crop: int
    latent_resize: int
    latent_crop: int
    # the decoded image's pixels a latent cell where a teacher sees it: HINT_STRIDE times
    # the cells a side that the classifier makes of one (classifier.models.upsampling)
    hint_stride: int = HINT_STRIDE


PAPER_SIZES = InputSizes(256, 224, 32, 28)  # the paper's; every default reads them from here


class Lighting:
    """PCA lighting noise on a [0, 1] tensor image (Krizhevsky et al.)."""

    def __init__(self, std: float = 0.1):
        self.std = std

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.std
        return image + (PCA_EIGVEC @ (alpha * PCA_EIGVAL)).view(3, 1, 1)


def pixel_transform(train: bool, resize: int, crop: int):
    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize(resize), T.CenterCrop(crop), *normalize])
    return T.Compose([
        T.Resize(resize), T.RandomCrop(crop), T.RandomHorizontalFlip(),
        T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor(), Lighting(0.1),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class LatentTransform:
    """y_hat and sigma_hat stacked (2M channels), resized to `resize`, then cropped and flipped.

    `flip`: the random horizontal flip in training. A flipped latent is not the latent of the
    flipped image (the analysis transform's filters are not mirror-symmetric), so the flip
    shows the classifier inputs the codec never makes; the study's latent-no-flip row.

    Given the decoded image too (`image_side`: feature distillation), the same crop and flip is
    cut from it at `hint_stride` pixels a latent cell (HINT_STRIDE, times the classifier's own
    upsampling), so that a pixel classifier's conv_2x on the image lies cell for cell on the
    classifier's map of the latent (trainer.distill)."""

    def __init__(self, scale_table: list[float], train: bool,
                 resize: int = PAPER_SIZES.latent_resize, crop: int = PAPER_SIZES.latent_crop,
                 flip: bool = True, hint_stride: int = HINT_STRIDE):
        self.table = torch.tensor(scale_table, dtype=torch.float32)
        self.train, self.resize, self.crop, self.flip = train, resize, crop, flip
        self.hint_stride = hint_stride
        self.image = T.Compose([T.Resize((hint_stride * resize,) * 2), T.ToTensor(),
                                T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def view(self) -> tuple[int, int, bool]:
        """(top, left, flip) of this sample's crop, in latent cells."""
        if not self.train:
            start = (self.resize - self.crop) // 2
            return start, start, False
        top, left = torch.randint(0, self.resize - self.crop + 1, (2,)).tolist()
        return top, left, bool(torch.rand(()) < 0.5) and self.flip

    @staticmethod
    def cut(x: torch.Tensor, view: tuple[int, int, bool], side: int, scale: int = 1):
        top, left, flip = view
        x = x[:, scale * top:scale * (top + side), scale * left:scale * (left + side)]
        return torch.flip(x, dims=[2]) if flip else x

    def __call__(self, latent: np.ndarray, scale_index: np.ndarray, image=None):
        y_hat = torch.from_numpy(latent.astype(np.float32))
        sigma = self.table[torch.from_numpy(scale_index.astype(np.int64))]
        x = torch.cat([y_hat, sigma])
        if x.shape[-2:] != (self.resize, self.resize):  # at the same size bilinear is identity
            x = F.interpolate(x[None], size=(self.resize, self.resize), mode="bilinear",
                              align_corners=False)[0]
        view = self.view()
        x = self.cut(x, view, self.crop)
        if image is None:
            return x
        return x, self.cut(self.image(image), view, self.crop, self.hint_stride)


class LatentInput:
    """A decoded sample's y_hat and scale index through a LatentTransform; with `hint`, also
    its decoded image, cut as the latent is: (latent, image)."""

    def __init__(self, transform: LatentTransform, hint: bool = False):
        self.transform, self.hint = transform, hint

    def __call__(self, sample: dict):
        image = sample[schema.DECODED] if self.hint else None
        return self.transform(sample[schema.LATENT], sample[schema.SCALES], image)


class PixelInput:
    """The first of `members` a decoded sample holds (the original's jpg or png, or the decoded
    image) through the pixel transform."""

    def __init__(self, members: tuple[str, ...], transform):
        self.members, self.transform = members, transform

    def __call__(self, sample: dict) -> torch.Tensor:
        return self.transform(next(sample[m] for m in self.members if m in sample))
