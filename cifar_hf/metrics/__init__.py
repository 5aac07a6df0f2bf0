"""Classification metrics: accuracy through `evaluate` (with the module shipped here), per-class accuracy."""

from functools import cache
from pathlib import Path

import numpy as np

ACCURACY_MODULE = Path(__file__).parent / "accuracy"


@cache
def load_accuracy():
    import evaluate

    return evaluate.load(str(ACCURACY_MODULE))


TOP5_ABOVE_CLASSES = 10  # top-5 accuracy is reported for datasets with more classes than CIFAR-10


def top5_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose true class is among the 5 highest logits."""
    top5 = np.argpartition(-np.asarray(logits), 5, axis=-1)[:, :5]
    return float((top5 == np.asarray(labels)[:, None]).any(axis=-1).mean())


def compute_metrics(eval_prediction) -> dict[str, float]:
    """`Trainer.compute_metrics`: accuracy of the argmax of the logits, and top-5 accuracy beyond 10 classes."""
    logits, labels = np.asarray(eval_prediction.predictions), np.asarray(eval_prediction.label_ids)
    metrics = load_accuracy().compute(predictions=logits.argmax(axis=-1), references=labels)
    if logits.shape[-1] > TOP5_ABOVE_CLASSES:
        metrics["top5_accuracy"] = top5_accuracy(logits, labels)
    return metrics


def mean_cross_entropy(logits, labels) -> float:
    """The split's loss (its negative log-likelihood): mean cross-entropy over its images, each counted once.

    Takes numpy arrays (the Trainer's gathered predictions) or tensors (evaluate, calibration) alike.
    """
    import torch

    logits, labels = torch.as_tensor(logits).float(), torch.as_tensor(labels).long()
    return float(torch.nn.functional.cross_entropy(logits, labels))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray, class_names: list[str]) -> dict[str, float | None]:
    """Recall of every class (None for a class with no examples)."""
    totals = confusion.sum(axis=1)
    return {
        name: (float(confusion[i, i] / totals[i]) if totals[i] else None) for i, name in enumerate(class_names)
    }
