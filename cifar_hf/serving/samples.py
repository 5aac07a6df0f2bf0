"""A few real images per class from the dataset a run was trained on, for demo examples and export checks."""

from PIL import Image

from ..data.loading import find_columns, load_raw_dataset
from ..data.rgb import to_rgb
from ..errors import InputError
from ..inference import run_columns


def dataset_samples(dataset: str, per_class: int = 1, limit: int = 10, image_column: str | None = None,
                    label_column: str | None = None) -> list[tuple[Image.Image, str]]:
    """(RGB image, class name) pairs: the first `per_class` images of each class of the test split (else train),
    the classes of `label_column` (default: the column training would choose).

    Only the chosen rows are decoded, so this stays quick on the full 50k-image CIFAR-10.
    """
    splits = load_raw_dataset(dataset)
    split = splits["test"] if "test" in splits else splits[next(iter(splits))]
    image_column, label_column = find_columns(split, image_column, label_column)
    labels = split[label_column]
    feature = split.features[label_column]
    chosen, counts = [], {}
    for index, label in enumerate(labels):
        if counts.get(label, 0) < per_class:
            counts[label] = counts.get(label, 0) + 1
            chosen.append(index)
            if len(chosen) >= limit:
                break
    rows = split.select(chosen)
    names = getattr(feature, "names", None)
    return [(to_rgb(row[image_column]), names[row[label_column]] if names else str(row[label_column]))
            for row in rows]


def run_samples(results: dict, per_class: int = 1, limit: int = 10) -> list[tuple[Image.Image, str]]:
    """Samples from the run's dataset and of its classes (the columns its results.json records: a run trained on
    CIFAR-100's `coarse_label` gets one image per coarse class); [] when that dataset cannot be reached."""
    hyperparameters = results.get("hyperparameters", {})
    dataset = results.get("dataset") or hyperparameters.get("dataset")
    if not dataset:
        return []
    image_column, label_column = run_columns(results)
    try:
        return dataset_samples(str(dataset), per_class, limit, image_column, label_column)
    except (InputError, OSError, ValueError, KeyError):  # offline or moved: the caller goes on without examples
        return []
