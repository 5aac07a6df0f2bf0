"""Decode every image once into a fixed-size uint8 array, cached by `datasets` next to the dataset.

Training never touches PIL again: later runs reuse the cache, and augmentation happens on whole batches of these
arrays on the training device (`cifar_hf.data.augment`).
"""

import io

import datasets
import numpy as np
import pyarrow as pa
from PIL import Image

from ..errors import InputError

IMAGE_SIZE = 32


def _decode_one(image: dict, size: int) -> np.ndarray:
    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with Image.open(source) as opened:
        opened.load()  # decode fully now: a truncated file fails here, not later
        rgb = opened.convert("RGB")  # grayscale, RGBA, palette, CMYK ... all become 3 channels
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_batch(batch, indices, *, image_column: str, split: str, size: int, skip_bad_images: bool):
    pixels, ok = [], []
    for image, index in zip(batch[image_column], indices):
        try:
            pixels.append(_decode_one(image, size))
            ok.append(True)
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


def _fixed_shape_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """The flat values of a fixed-shape array column, without going through Python lists (50k images: 0.2 s)."""
    values = column.combine_chunks()
    values = values.storage if isinstance(values, pa.ExtensionArray) else values
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False)


def decode_split(
    split: datasets.Dataset, name: str, image_column: str, label_column: str, skip_bad_images: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """(pixels (N, 32, 32, 3) uint8, labels (N,) int64, number of undecodable rows skipped)."""
    features = datasets.Features(
        {
            "pixels": datasets.Array3D(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype="uint8"),
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
        fn_kwargs={"image_column": image_column, "split": name, "size": IMAGE_SIZE, "skip_bad_images": skip_bad_images},
        desc=f"Decoding {name} images (once; cached for later runs)",
    )
    table = decoded.data  # map wrote a fresh table: no indices mapping to apply
    pixels = _fixed_shape_numpy(table.column("pixels")).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3)
    ok = table.column("ok").to_numpy()
    labels = table.column(label_column).to_numpy().astype(np.int64)
    bad = int((~ok).sum())
    if bad:
        pixels, labels = pixels[ok], labels[ok]
    return np.ascontiguousarray(pixels), labels, bad
