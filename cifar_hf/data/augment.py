"""Augmentation and normalisation as a few tensor ops on whole uint8 batches, on the training device.

The reference definitions are torchvision's `RandomCrop(32, padding=4)` (zero padding) and
`RandomHorizontalFlip()`: every one of the (2p+1)^2 crop windows and both flips are equally likely.
"""

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def random_crop(pixels: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by `padding` and cut a random window of the original size out of each image."""
    batch, channels, height, width = pixels.shape
    padded = F.pad(pixels, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (batch, 1), device=pixels.device)
    left = torch.randint(0, 2 * padding + 1, (batch, 1), device=pixels.device)
    rows = (top + torch.arange(height, device=pixels.device))[:, None, :, None]
    cols = (left + torch.arange(width, device=pixels.device))[:, None, None, :]
    images = torch.arange(batch, device=pixels.device)[:, None, None, None]
    chans = torch.arange(channels, device=pixels.device)[None, :, None, None]
    return padded[images, chans, rows, cols]


def random_horizontal_flip(pixels: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(pixels.shape[0], device=pixels.device) < 0.5
    return torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)


def cutout(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square at a uniformly random centre of each image, clipped at the borders.

    DeVries & Taylor (2017): applied after normalisation, so the square takes the dataset's mean colour.
    """
    batch, _, height, width = images.shape
    top = torch.randint(0, height, (batch, 1, 1), device=images.device) - size // 2
    left = torch.randint(0, width, (batch, 1, 1), device=images.device) - size // 2
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images.masked_fill(inside[:, None], 0.0)


@functools.lru_cache(maxsize=32)
def channel_constants(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """Per-channel constants as a (1, C, 1, 1) tensor, copied to the device once (each copy waits for the GPU)."""
    return torch.tensor(values, device=device).view(1, -1, 1, 1)


@dataclass(frozen=True)
class BatchTransform:
    """uint8 (B, C, H, W) batch -> model input: [crop, flip] -> [0, 1] -> normalise -> [cutout] -> [resize]."""

    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    image_size: int = 32
    resample: str = "bilinear"
    crop_padding: int = 0
    horizontal_flip: bool = False
    cutout: int = 0  # side of the square cut out of each training image, in stored pixels (0: off)
    channels_last: bool = False

    def __call__(self, pixels: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.crop_padding:
            pixels = random_crop(pixels, self.crop_padding)
        if train and self.horizontal_flip:
            pixels = random_horizontal_flip(pixels)
        mean = channel_constants(tuple(self.mean), pixels.device)
        std = channel_constants(tuple(self.std), pixels.device)
        images = (pixels.float() / 255 - mean) / std
        if train and self.cutout:
            images = cutout(images, self.cutout)
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            # Interpolation weights sum to one, so normalising before resizing equals resizing first.
            side = (self.image_size, self.image_size)
            images = F.interpolate(images, size=side, mode=self.resample, align_corners=False)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def flip_tta_logits(model, pixels: torch.Tensor) -> torch.Tensor:
    """Flip test-time augmentation: the float32 mean of the logits of each image and of its mirror image."""
    return (model(pixel_values=pixels).logits.float() + model(pixel_values=pixels.flip(-1)).logits.float()) / 2
