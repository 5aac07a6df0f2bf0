"""Any PIL image as 8-bit RGB: the one conversion that training (decode) and prediction (predict, demo) share.

`Image.convert("RGB")` clips wider-than-8-bit grey values at 255, so a 16-bit PNG would come out nearly white.
Those modes are first scaled to 8 bits by their value range:

- `I;16` (and `I;16B`, `I;16L`, `I;16N`: 16-bit grey): divided by 257, so 65535 -> 255 and 257 * v -> v exactly.
- `I` (32-bit signed grey): taken as 16-bit (divided by 257) when its values lie in 0-65535, else stretched
  linearly from its minimum (0) to its maximum (255).
- `F` (32-bit float grey): taken as 0-1 (times 255) when its values lie in 0-1, else stretched like `I`;
  NaN and infinities count as 0.

Every other mode (L, RGBA, P, CMYK, ...) goes through `convert("RGB")` unchanged.

A model trained on grey images (every training image R == G == B) reads every input as grey too: `grayscale=True`
takes PIL's luma (`convert("L")`, ITU-R 601-2) first, so a colour photo reaches it as training's images did.
"""

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


def eight_bit_grey(image: Image.Image) -> Image.Image:
    """A wide grey image (I;16*, I, F) as mode L by the rules above; any other image unchanged."""
    if image.mode not in SIXTEEN_BIT_MODES | {"I", "F"}:
        return image
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)  # F may hold NaN
    low, high = float(values.min()), float(values.max())
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:  # minimum -> 0, maximum -> 255; a constant image -> 0
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))  # 2-D uint8: mode L


def to_rgb(image: Image.Image, grayscale: bool = False) -> Image.Image:
    """The image in 8-bit RGB: grayscale, RGBA, palette, CMYK and 16-bit or float grey all become 3 channels;
    `grayscale`: 3 equal channels of its luma, as a grey-trained model saw every image."""
    image = eight_bit_grey(image)
    return (image.convert("L") if grayscale else image).convert("RGB")


def is_grayscale(pixels: np.ndarray) -> bool:
    """Whether every decoded (N, H, W, 3) uint8 image has R == G == B: a grey dataset decoded to RGB."""
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return len(pixels) > 0 and bool((red == green).all() and (green == blue).all())


def grey_pixels(pixels: np.ndarray) -> np.ndarray:
    """Decoded (..., 3) uint8 RGB as 3 equal channels of PIL's `convert("L")` luma (its fixed-point ITU-R 601-2)."""
    rgb = pixels.astype(np.uint32)
    luma = ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)
