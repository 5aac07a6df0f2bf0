"""Decode every image once into a uint8 array of one square size, cached by `datasets` next to the dataset.

The size is the split's own when all its images share one (64x64 folders stay 64x64); `--image-size N` resizes
on decode (PIL bilinear). The cache fingerprint covers the size, since it is one of the map's arguments.

Training never touches PIL again: later runs reuse the cache, and augmentation happens on whole batches of these
arrays on the training device (`cifar_hf.data.augment`).
"""

import io
import logging
from collections import Counter

import datasets
import numpy as np
import pyarrow as pa
from PIL import Image

from ..errors import CifarError, InputError
from .rgb import to_rgb

logger = logging.getLogger(__name__)

# Part of the decode cache's fingerprint: bump it whenever an image decodes to other pixels than before, so that no
# run reuses the old pixels (2: 16-bit and float grey scaled to 8 bits instead of clipped).
PIXEL_RULES = 2


def _decode_one(image: dict, size: int) -> np.ndarray:
    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with Image.open(source) as opened:
        opened.load()  # decode fully now: a truncated file fails here, not later
        rgb = to_rgb(opened)  # grayscale, RGBA, palette, CMYK, 16-bit ... all become 8-bit RGB
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_batch(
    batch, indices, *, image_column: str, split: str, size: int, skip_bad_images: bool, pixel_rules: int
):
    del pixel_rules  # only keys the cache
    pixels, ok = [], []
    for image, index in zip(batch[image_column], indices, strict=True):
        try:
            pixels.append(_decode_one(image, size))
            ok.append(True)
        except CifarError:  # a stop signal while decoding (Preempted) is no bad image
            raise
        except Exception as error:  # PIL raises many types; every one means "not a usable image"
            if not skip_bad_images:
                where = f" ({image['path']})" if image.get("path") else ""
                raise InputError(
                    f"cannot decode the image in row {index} of split '{split}'{where}: {error}. "
                    "Fix or remove it, or pass --skip-bad-images"
                ) from None
            pixels.append(np.zeros((size, size, 3), dtype=np.uint8))
            ok.append(False)
    return {"pixels": pixels, "ok": ok}


def _size_batch(batch, *, image_column: str):
    widths, heights = [], []
    for image in batch[image_column]:
        try:
            source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
            with Image.open(source) as opened:  # reads the header only
                width, height = opened.size
        except CifarError:
            raise
        except Exception:  # an undecodable image is reported (or skipped) by the decode pass, not here
            width = height = 0
        widths.append(width)
        heights.append(height)
    return {"width": widths, "height": heights}


def image_sizes(split: datasets.Dataset, name: str, image_column: str) -> Counter:
    """How many images of each (width, height) the split holds (headers only; cached like the decoded images)."""
    sizes = split.cast_column(image_column, datasets.Image(decode=False)).map(
        _size_batch,
        batched=True,
        batch_size=1000,
        remove_columns=split.column_names,
        features=datasets.Features({"width": datasets.Value("int32"), "height": datasets.Value("int32")}),
        fn_kwargs={"image_column": image_column},
        desc=f"Reading {name} image sizes",
    )
    pairs = zip(sizes.data.column("width").to_numpy(), sizes.data.column("height").to_numpy(), strict=True)
    return Counter((int(w), int(h)) for w, h in pairs if w and h)


def choose_image_size(sizes: Counter, name: str) -> int:
    """The side every image is stored at: the split's one square size, else the larger side of the most common."""
    if not sizes:
        raise InputError(f"no image of split '{name}' could be read")
    (width, height), count = max(sizes.items(), key=lambda item: (item[1], max(item[0])))
    side = max(width, height)
    if len(sizes) > 1 or width != height:
        listed = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sizes.most_common(4))
        more = f" and {len(sizes) - 4} more" if len(sizes) > 4 else ""
        logger.warning("split '%s' has images of %d size(s) (%s%s): storing all at %dx%d, the larger side of the "
                       "most common size (bilinear); pass --image-size N to choose",
                       name, len(sizes), listed, more, side, side)
    return side


def _fixed_shape_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """The flat values of a fixed-shape array column, without going through Python lists (50k images: 0.2 s)."""
    values = column.combine_chunks()
    values = values.storage if isinstance(values, pa.ExtensionArray) else values
    while any(check(values.type) for check in (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)):
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False)


def decode_split(
    split: datasets.Dataset, name: str, image_column: str, label_column: str, size: int, skip_bad_images: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """(pixels (N, size, size, 3) uint8, labels (N,) int64, number of undecodable rows skipped)."""
    features = datasets.Features(
        {
            "pixels": datasets.Array3D(shape=(size, size, 3), dtype="uint8"),
            "ok": datasets.Value("bool"),
            label_column: datasets.Value("int64"),  # range-checked by the caller, with the row named
        }
    )
    decoded = split.cast_column(image_column, datasets.Image(decode=False)).map(
        _decode_batch,
        batched=True,
        batch_size=1000,
        with_indices=True,
        remove_columns=[c for c in split.column_names if c != label_column],
        features=features,
        fn_kwargs={"image_column": image_column, "split": name, "size": size, "skip_bad_images": skip_bad_images,
                   "pixel_rules": PIXEL_RULES},
        desc=f"Decoding {name} images (once; cached for later runs)",
    )
    table = decoded.data  # map wrote a fresh table: no indices mapping to apply
    pixels = _fixed_shape_numpy(table.column("pixels")).reshape(-1, size, size, 3)
    ok = table.column("ok").to_numpy()
    labels = table.column(label_column).to_numpy().astype(np.int64)
    bad = int((~ok).sum())
    if bad:
        pixels, labels = pixels[ok], labels[ok]
    return np.ascontiguousarray(pixels), labels, bad
