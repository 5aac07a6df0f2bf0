"""Classification metrics: accuracy through `evaluate` (with the module shipped here), per-class accuracy."""

from functools import cache
from pathlib import Path

import numpy as np

ACCURACY_MODULE = Path(__file__).parent / "accuracy"


@cache
def load_accuracy():
    import evaluate

    return evaluate.load(str(ACCURACY_MODULE))


def compute_metrics(eval_prediction) -> dict[str, float]:
    """`Trainer.compute_metrics`: accuracy of the argmax of the logits."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    predictions = np.asarray(logits).argmax(axis=-1)
    return load_accuracy().compute(predictions=predictions, references=np.asarray(labels))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray, class_names: list[str]) -> dict[str, float | None]:
    """Recall of every class (None for a class with no examples)."""
    totals = confusion.sum(axis=1)
    return {
        name: (float(confusion[i, i] / totals[i]) if totals[i] else None) for i, name in enumerate(class_names)
    }
