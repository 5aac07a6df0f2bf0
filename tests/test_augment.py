import numpy as np
import torch
from PIL import Image

from cifar_hf.data.augment import BatchTransform, random_crop, random_horizontal_flip
from cifar_hf.data.preprocessing import to_image_processor


def coordinate_images(batch: int, size: int = 32) -> torch.Tensor:
    """Images whose pixels encode their own position (row in channel 0, column in channel 1), offset by 1."""
    rows = torch.arange(size).view(size, 1).expand(size, size) + 1
    cols = torch.arange(size).view(1, size).expand(size, size) + 1
    image = torch.stack([rows, cols, torch.zeros_like(rows)]).to(torch.uint8)
    return image.expand(batch, -1, -1, -1).clone()


def test_random_crop_uses_every_window_evenly():
    torch.manual_seed(0)
    images = coordinate_images(8100)
    crops = random_crop(images, padding=4)
    assert crops.shape == images.shape and crops.dtype == torch.uint8
    # The window's offset is recoverable from the centre pixel, which is never padding.
    top = crops[:, 0, 16, 16].long() - 17 + 4
    left = crops[:, 1, 16, 16].long() - 17 + 4
    counts = np.bincount((top * 9 + left).numpy(), minlength=81)
    assert (counts > 0).all(), "every one of the 9x9 windows must occur"
    assert counts.min() > 100 * 0.6 and counts.max() < 100 * 1.4  # about 100 each
    # Pixels outside the image are zero padding, inside they are the shifted original.
    shift = top[0].item() - 4, left[0].item() - 4
    padded = torch.nn.functional.pad(images[0], (4, 4, 4, 4))
    expected = padded[:, 4 + shift[0]: 36 + shift[0], 4 + shift[1]: 36 + shift[1]]
    assert torch.equal(crops[0], expected)


def test_random_flip_rate_is_one_half():
    torch.manual_seed(1)
    images = coordinate_images(10_000)
    flipped = random_horizontal_flip(images)
    is_flipped = flipped[:, 1, 0, 0] == 32  # column 31 (+1) moved to the left edge
    assert torch.equal(flipped[is_flipped], images[is_flipped].flip(-1))
    assert torch.equal(flipped[~is_flipped], images[~is_flipped])
    assert abs(is_flipped.float().mean().item() - 0.5) < 0.02


def test_evaluation_transform_is_deterministic_normalisation():
    transform = BatchTransform(crop_padding=4, horizontal_flip=True)
    images = coordinate_images(4)
    out = transform(images, train=False)
    mean = torch.tensor(transform.mean).view(1, 3, 1, 1)
    std = torch.tensor(transform.std).view(1, 3, 1, 1)
    assert torch.allclose(out, (images.float() / 255 - mean) / std)


def test_resize_matches_the_saved_image_processor():
    """previt: the on-device 32->224 resize equals what the saved image processor does to a PIL image."""
    transform = BatchTransform(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), image_size=224)
    processor = to_image_processor(transform)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    ours = transform(torch.from_numpy(pixels).permute(0, 3, 1, 2), train=False)
    theirs = processor([Image.fromarray(p) for p in pixels], return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape == (2, 3, 224, 224)
    # Both are bilinear; PIL rounds to uint8 after resizing, hence a tolerance of about one grey level (2/255 * 2).
    assert (ours - theirs).abs().mean() < 0.01
    assert (ours - theirs).abs().max() < 0.05
