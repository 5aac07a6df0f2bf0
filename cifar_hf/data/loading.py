"""Load an image-classification dataset (Hub id or local folder), check it, and split it for training.

The result is a `CifarData`: decoded uint8 images and labels for train / validation / (test), ready to become
`ImageTensorDataset`s. Every problem with the input raises `InputError` with a one-line message.
"""

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from ..errors import InputError, first_line
from ..offline import go_offline_if_unreachable, looks_like_path, recorded_reference
from .decode import choose_image_size, decode_split, image_sizes
from .defaults import DEFAULT_DATASET, DEFAULT_SEED, DEFAULT_VAL_SIZE
from .image_folder import check_folder_classes, check_image_folder, check_two_classes, survey_image_folder
from .splits import stratified_folds, stratified_split, stratified_subset

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("img", "image")
LABEL_COLUMNS = ("label", "labels", "fine_label")  # in this order; fine_label: CIFAR-100's 100 classes, not its 20


@dataclass
class ImageArrays:
    """Decoded images (N, H, W, 3) uint8 and their labels (N,) int64."""

    pixels: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> "ImageArrays":
        return ImageArrays(self.pixels[indices], self.labels[indices])


@dataclass
class CifarData:
    """What training needs from a dataset: named classes and the train / validation / test images."""

    dataset: str
    class_names: list[str]
    train: ImageArrays
    validation: ImageArrays
    test: ImageArrays | None
    bad_images_skipped: dict[str, int] = field(default_factory=dict)
    full_train: ImageArrays | None = None  # the whole training split (cross-validation folds it itself)
    image_column: str = "img"
    label_column: str = "label"
    image_size: int = 32  # side of the stored (decoded) images
    # How `validation` was drawn from the training split: {"seed": S}, plus "fold"/"folds" for a fold's run. Recorded
    # with the run: evaluate redraws the same images (a --repeat seed or a fold has its own, other seed).
    holdout: dict = field(default_factory=dict)

    def fold(self, number: int, folds: int) -> "CifarData":
        """Fold `number` (1-based) of a stratified `folds`-fold split of the whole training split: validate on it,
        train on the others."""
        parts = stratified_folds(self.full_train.labels, folds, self.holdout["seed"])
        train_rows = np.sort(np.concatenate([part for i, part in enumerate(parts) if i != number - 1]))
        validation = self.full_train.take(parts[number - 1])
        return replace(self, train=self.full_train.take(train_rows), validation=validation,
                       holdout={**self.holdout, "fold": number, "folds": folds})


def content_digest(arrays: ImageArrays) -> str:
    """sha1 of the decoded pixels and labels, in order: the same images in the same rows, wherever they are stored."""
    digest = hashlib.sha1(np.ascontiguousarray(arrays.pixels).data)
    digest.update(np.ascontiguousarray(arrays.labels, dtype=np.int64).data)
    return digest.hexdigest()


def local_cache_dir(folder: Path) -> Path:
    """A datasets cache of the folder's files as they are now (path, size, mtime): datasets keys a folder whose
    README declares its configs by the config alone, so files rewritten in place were read from the old cache."""
    stats = {p.relative_to(folder): p.stat() for p in folder.rglob("*") if p.is_file()}
    files = sorted((str(name), stat.st_size, stat.st_mtime_ns) for name, stat in stats.items()
                   if not any(part.startswith(".") for part in name.parts))  # not .git/, .cache/ ...
    key = hashlib.sha1(repr((str(folder.resolve()), files)).encode()).hexdigest()[:16]
    return Path(datasets.config.HF_DATASETS_CACHE) / "cifar_hf-local" / key


def load_raw_dataset(name_or_path: str) -> datasets.DatasetDict:
    """A Hub dataset id, a Hub-layout folder (parquet + card), a `save_to_disk` folder or an image-folder tree."""
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if path.exists() and not path.is_dir():
            raise InputError(f"--dataset: {name_or_path} is a file, not a folder: pass the dataset's folder (one "
                             "sub-folder of images per class, or a Hub-layout folder of parquet files)")
        if not path.is_dir():
            raise InputError(f"--dataset: no such folder: {name_or_path}")
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            loaded = datasets.load_from_disk(str(path))
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)
        try:
            loaded = datasets.load_dataset(str(path), cache_dir=str(local_cache_dir(path)))
        except Exception as error:
            check_image_folder(survey_image_folder(path))  # a tree of links or empty folders: say which
            raise InputError(f"--dataset: cannot read {name_or_path} as a dataset: {error}") from None
        if next(iter(loaded.values())).info.builder_name != "imagefolder":  # parquet, csv, arrow ...: not a tree
            return loaded
        survey = survey_image_folder(path)
        check_image_folder(survey)
        for folder in survey.imageless_folders:  # notes, scripts, annotations ... beside the classes are common
            logger.warning("%s holds files but no image: it is not a class of %s", folder, name_or_path)
        check_folder_classes(loaded, survey, name_or_path)
        return loaded
    unreachable = go_offline_if_unreachable()
    try:
        return datasets.load_dataset(name_or_path)
    except Exception as error:
        if unreachable:
            raise InputError(f"--dataset: the Hugging Face Hub is unreachable and '{name_or_path}' is not in the "
                             "local cache. Pass a local copy instead: --dataset PATH") from None
        raise InputError(
            f"--dataset: cannot load '{name_or_path}' from the Hugging Face Hub ({type(error).__name__}: "
            f"{first_line(error)}). Offline? Pass a local copy instead: --dataset PATH"
        ) from None


TEXT_DTYPES = ("string", "large_string")
IMAGE_SOURCE_DTYPES = (*TEXT_DTYPES, "binary", "large_binary")  # file paths or encoded bytes: `datasets` casts them
LABEL_DTYPES = ("int", "uint", "float", "bool", *TEXT_DTYPES)  # as prefixes: int8 ... uint64, float16 ... float64


def column_contents(feature) -> str:
    """What a column holds, in words, for the one-line errors."""
    if isinstance(feature, datasets.Image):
        return "images"
    if isinstance(feature, datasets.ClassLabel):
        return "class labels"
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        kinds = {"int": "integers", "uint": "integers", "float": "numbers", "bool": "true/false values",
                 "string": "text", "large_string": "text", "binary": "bytes", "large_binary": "bytes"}
        return next((words for prefix, words in kinds.items() if dtype.startswith(prefix)), f"{dtype} values")
    if isinstance(feature, (datasets.List, datasets.LargeList, list)):
        return "lists"
    return f"{type(feature).__name__} values"


def holds_images(feature) -> bool:
    return isinstance(feature, datasets.Image) or (
        isinstance(feature, datasets.Value) and feature.dtype in IMAGE_SOURCE_DTYPES)


def holds_labels(feature) -> bool:
    """Class labels: a ClassLabel, integers, whole-number floats (checked on decode), true/false or class names."""
    return isinstance(feature, datasets.ClassLabel) or (
        isinstance(feature, datasets.Value) and feature.dtype.startswith(LABEL_DTYPES))


COLUMN_KINDS = {"image": ("images", holds_images), "label": ("class labels", holds_labels)}


def _choose(kind: str, flag: str, requested: str | None, preferred: tuple[str, ...], of_type, features) -> str:
    """`requested` if the split has it; else the first `preferred` name present; else the only column of `of_type`.

    A column that cannot be of this kind (images as labels, integers as images) stops here, before any decoding."""
    found = ", ".join(features) or "none"
    contents, fits = COLUMN_KINDS[kind]
    if requested:
        if requested not in features:
            raise InputError(f"{flag} {requested}: no such column; columns found: {found}")
        if not fits(features[requested]):
            others = ", ".join(name for name, feature in features.items() if fits(feature)) or "none"
            raise InputError(f"{flag} {requested}: '{requested}' holds {column_contents(features[requested])}, not "
                             f"{contents}; {kind} columns found: {others}")
        return requested
    for name in preferred:
        if name in features and fits(features[name]):
            return name
    candidates = [name for name, feature in features.items() if isinstance(feature, of_type)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise InputError(f"--dataset: {len(candidates)} {kind} columns ({', '.join(candidates)}) and none is "
                         f"{' or '.join(preferred)}: choose one with {flag}")
    misfits = "".join(f"; '{name}' holds {column_contents(features[name])}" for name in preferred if name in features)
    raise InputError(f"--dataset: no {kind} column (looked for {' or '.join(preferred)}{misfits}); "
                     f"columns found: {found}")


def find_columns(split: datasets.Dataset, image_column: str | None = None, label_column: str | None = None):
    """(image column, label column): the ones asked for, else an unambiguous choice, else InputError listing them."""
    features = split.features
    image = _choose("image", "--image-column", image_column, IMAGE_COLUMNS, datasets.Image, features)
    label = _choose("label", "--label-column", label_column, LABEL_COLUMNS, datasets.ClassLabel, features)
    if image == label:  # text is both a possible image path and a possible class name
        raise InputError(f"--dataset: column '{image}' cannot be both the image and the label column; choose the "
                         "other with --image-column or --label-column")
    return image, label


def class_names_of(split: datasets.Dataset, label_column: str, labels: np.ndarray) -> list[str]:
    feature = split.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
    else:  # plain integers: classes 0..K-1, each of which must occur (a stray 57 would make a 58-class model)
        count = int(labels.max()) + 1 if len(labels) else 0
        missing = sorted(set(range(count)) - set(np.unique(labels).tolist()))
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            raise InputError(
                f"--dataset: column '{label_column}' has no ClassLabel, so its integers must be the classes "
                f"0-{count - 1}, but {len(missing)} never occur ({shown}); declare the classes with a ClassLabel in "
                "the dataset card or fix the labels"
            )
        names = [str(i) for i in range(count)]
    check_two_classes(names, f" in column '{label_column}'")
    return names


def encode_string_labels(raw: datasets.DatasetDict, label_column: str) -> datasets.DatasetDict:
    """String labels without a ClassLabel: the classes are the sorted values of all of `raw`'s splits, as an
    image-folder tree's classes are its folders in every split (the HF examples take the training split's)."""
    feature = next(iter(raw.values())).features[label_column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in TEXT_DTYPES):
        return raw
    names = sorted({label for data in raw.values() for label in data[label_column] if label is not None})
    logger.warning("column '%s' holds strings without a ClassLabel: classes are their sorted values %s",
                   label_column, names)
    return datasets.DatasetDict(
        {split: data.cast_column(label_column, datasets.ClassLabel(names=names)) for split, data in raw.items()})


def check_label_values(data: datasets.Dataset, split: str, label_column: str) -> None:
    """Rows without a label, and numbers that are no whole class number (1.2): one line, before any decoding."""
    values = data.with_format("arrow")[label_column]
    if values.null_count:
        rows = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))
        raise InputError(f"--dataset: row {rows[0]} of split '{split}' has no label in column '{label_column}' "
                         f"({len(rows)} such row(s)): give every image its class, or remove the row")
    if not pa.types.is_floating(values.type):
        return
    numbers = values.to_numpy()
    rows = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if len(rows):  # whole-number floats (3.0) are classes; 1.2 would be truncated to 1 without a word
        raise InputError(f"--dataset: column '{label_column}' holds {numbers[rows[0]]:g} in row {rows[0]} of split "
                         f"'{split}' ({len(rows)} such row(s)): class labels must be whole numbers (0, 1, 2, ...) "
                         "or class names")


def to_class_order(arrays: ImageArrays, names: list[str], class_names: list[str], whose: str = "the model's"):
    """Labels that index `names` as indices of `class_names`, matched by name (splits may order classes
    differently)."""
    unknown = [name for name in names if name not in class_names]
    if unknown:
        raise InputError(f"the dataset's class(es) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} "
                         f"are not among {whose} {len(class_names)} classes ({', '.join(class_names[:10])}"
                         f"{' ...' if len(class_names) > 10 else ''}); check --dataset and --label-column")
    mapping = np.array([class_names.index(name) for name in names], dtype=np.int64)
    return ImageArrays(arrays.pixels, mapping[arrays.labels])


def warn_untrained_classes(class_names: list[str], train_labels: np.ndarray) -> None:
    """A class with images in the test split only (a test/zebra folder) is an output the model never learns."""
    trained = set(np.unique(train_labels).tolist())
    untrained = [name for index, name in enumerate(class_names) if index not in trained]
    if untrained:
        shown = ", ".join(untrained[:10]) + (f" and {len(untrained) - 10} more" if len(untrained) > 10 else "")
        logger.warning("classes with no training image (the model cannot learn them): %s", shown)


def check_labels(labels: np.ndarray, num_classes: int, split: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        row = int(bad[0])
        raise InputError(
            f"label {int(labels[row])} in row {row} of split '{split}' is outside the {num_classes} classes "
            f"(0-{num_classes - 1}); {len(bad)} such row(s)"
        )


def decode_splits(raw, names, dataset, image_column, label_column, image_size, skip_bad_images):
    """({split: ImageArrays}, {split: rows skipped}, side): all splits at one side, by default the first split's."""
    decoded, bad_images = {}, {}
    for split in names:
        if len(raw[split]) == 0:
            raise InputError(f"--dataset: split '{split}' of '{dataset}' is empty")
        find_columns(raw[split], image_column, label_column)
        check_label_values(raw[split], split, label_column)
        if image_size is None:
            image_size = choose_image_size(image_sizes(raw[split], split, image_column), split)
        pixels, labels, bad = decode_split(raw[split], split, image_column, label_column, image_size, skip_bad_images)
        decoded[split], bad_images[split] = ImageArrays(pixels, labels), bad
        if bad:
            logger.warning("skipped %d undecodable image(s) in split '%s'", bad, split)
    return decoded, bad_images, image_size


def check_val_size(val_size: int, train_images: int) -> None:
    if not 1 <= val_size < train_images:
        raise InputError(f"--val-size {val_size} must be at least 1 and below the {train_images} images of the "
                         "training split", flag="--val-size")


def load_cifar(
    dataset: str = DEFAULT_DATASET,
    *,
    val_size: int | None = DEFAULT_VAL_SIZE,
    seed: int = DEFAULT_SEED,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    skip_bad_images: bool = False,
    warn_no_test: bool = True,
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int | None = None,
) -> CifarData:
    """Load, decode and check `dataset`, then hold out a seeded, stratified validation split of its training split.

    `warn_no_test`: log that a dataset without a test split skips test evaluation (not when no test is wanted).
    `val_size` None: no hold-out (cross-validation validates on folds of the whole training split).
    """
    raw = load_raw_dataset(dataset)
    if "train" not in raw:
        raise InputError(f"--dataset: '{dataset}' has no 'train' split; splits found: {', '.join(raw) or 'none'}")
    image_column, label_column = find_columns(raw["train"], image_column, label_column)
    if "validation" in raw:
        logger.warning("'%s' has a validation split too: the run validates on a seeded hold-out of its train split "
                       "(--val-size) and does not use it", dataset)
    splits = [split for split in ("train", "test") if split in raw]
    raw = encode_string_labels(datasets.DatasetDict({split: raw[split] for split in splits}), label_column)
    if val_size is not None:
        check_val_size(val_size, len(raw["train"]))  # before decoding: a too-large split costs no wait
    decoded, bad_images, image_size = decode_splits(
        raw, splits, dataset, image_column, label_column, image_size, skip_bad_images
    )

    class_names = class_names_of(raw["train"], label_column, decoded["train"].labels)
    test_feature = raw["test"].features[label_column] if "test" in raw else None
    if isinstance(test_feature, datasets.ClassLabel) and list(test_feature.names) != class_names:
        logger.warning("split 'test' lists its classes in another order than 'train': its labels are matched to "
                       "train's by name")
        decoded["test"] = to_class_order(decoded["test"], list(test_feature.names), class_names, "the train split's")
    for split, arrays in decoded.items():
        check_labels(arrays.labels, len(class_names), split)

    full_train, test = decoded["train"], decoded.get("test")
    drawn_from = content_digest(full_train)  # evaluate checks that it redraws the hold-out from these same images
    if val_size is None:
        train, validation = full_train, full_train.take(np.arange(0))
    else:
        check_val_size(val_size, len(full_train))  # again: --skip-bad-images may have left fewer
        train_rows, val_rows = stratified_split(full_train.labels, val_size, seed)
        train, validation = full_train.take(train_rows), full_train.take(val_rows)
    warn_untrained_classes(class_names, full_train.labels)
    if test is None and warn_no_test:
        logger.warning("'%s' has no test split: test evaluation is skipped (validation is the held-out split)",
                       dataset)

    if max_train_samples is not None:
        train = train.take(stratified_subset(train.labels, max_train_samples, seed))
        full_train = full_train.take(stratified_subset(full_train.labels, max_train_samples, seed))
    if max_eval_samples is not None:
        if len(validation):
            validation = validation.take(stratified_subset(validation.labels, max_eval_samples, seed))
        if test is not None:
            test = test.take(stratified_subset(test.labels, max_eval_samples, seed))
    return CifarData(recorded_reference(dataset), class_names, train, validation, test, bad_images, full_train,
                     image_column, label_column, image_size, holdout={"seed": seed, "train_images": drawn_from})


def load_labelled_split(
    dataset: str,
    split: str,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int | None = None,
    max_samples: int | None = None,
    seed: int = DEFAULT_SEED,
    skip_bad_images: bool = False,
) -> tuple[ImageArrays, list[str], int]:
    """One labelled split of any dataset, a train split or not: (images, its class names, stored side)."""
    raw = load_raw_dataset(dataset)
    if split not in raw:
        found = ", ".join(raw) or "none"
        raise InputError(f"--split {split}: '{dataset}' has no {split} split; splits found: {found}")
    image_column, label_column = find_columns(raw[split], image_column, label_column)
    # string labels: this split's own classes, matched to the model's by name as ClassLabel names are
    raw = encode_string_labels(datasets.DatasetDict({split: raw[split]}), label_column)
    decoded, _, image_size = decode_splits(raw, [split], dataset, image_column, label_column, image_size,
                                           skip_bad_images)
    arrays = decoded[split]
    class_names = class_names_of(raw[split], label_column, arrays.labels)
    check_labels(arrays.labels, len(class_names), split)
    if max_samples is not None:
        arrays = arrays.take(stratified_subset(arrays.labels, max_samples, seed))
    return arrays, class_names, image_size
