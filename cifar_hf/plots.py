"""Figures written into every run folder: training curves and the confusion matrix (matplotlib, no display needed)."""

import os
from pathlib import Path

import numpy as np

from .files import atomic_path


def pyplot():
    """matplotlib, loaded when the first figure is drawn: a run does not pay for it before its first step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def epoch_curves(log_history: list[dict]) -> dict[str, list]:
    """Per-epoch series from the Trainer's `log_history` (the same entries as trainer_state.json)."""
    train = [e for e in log_history if "loss" in e and "epoch" in e]
    evals = [e for e in log_history if "eval_loss" in e]
    return {
        "train_epoch": [e["epoch"] for e in train],
        "train_loss": [e["loss"] for e in train],
        "learning_rate": [e.get("learning_rate") for e in train],
        "eval_epoch": [e["epoch"] for e in evals],
        "eval_loss": [e["eval_loss"] for e in evals],
        "eval_accuracy": [e.get("eval_accuracy") for e in evals],
    }


def plot_training_curves(log_history: list[dict], path: Path, title: str) -> dict[str, list]:
    curves = epoch_curves(log_history)
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    figure, (loss_axis, accuracy_axis, lr_axis) = plt.subplots(1, 3, figsize=(13, 3.8))
    loss_axis.plot(curves["train_epoch"], curves["train_loss"], "o-", label="train")
    loss_axis.plot(curves["eval_epoch"], curves["eval_loss"], "s-", label="validation")
    loss_axis.set(title="loss", xlabel="epoch")
    loss_axis.legend()
    accuracy_axis.plot(curves["eval_epoch"], curves["eval_accuracy"], "s-", color="tab:green")
    accuracy_axis.set(title="validation accuracy", xlabel="epoch", ylim=(0, 1))
    lr_axis.plot(curves["train_epoch"], curves["learning_rate"], "o-", color="tab:purple")
    lr_axis.set(title="learning rate (end of epoch)", xlabel="epoch")
    rates = [rate for rate in curves["learning_rate"] if rate is not None]
    if rates and max(rates) > 0:  # from zero: a constant rate is a flat line, not noise on a 0.000096-0.000104 axis
        lr_axis.set_ylim(0, max(rates) * 1.1)
        lr_axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3), useOffset=False)
    for axis in (loss_axis, accuracy_axis, lr_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, not 1.2, 1.4 on a 2-epoch run
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return curves


def plot_confusion_matrix(confusion: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    """Rows are true classes, normalised to sum to one; each cell shows its share."""
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=float), where=totals > 0)
    size = max(5.0, 0.6 * len(class_names) + 2)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    if len(class_names) <= 20:
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                value = normalised[i, j]
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                          color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


def plot_trials(trials: list[dict], path: Path, title: str) -> None:
    """A study's value per trial (complete and pruned ones) and the best complete value so far."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for state, marker, colour in (("COMPLETE", "o", "tab:blue"), ("PRUNED", "x", "tab:grey")):
        shown = [t for t in trials if t["state"] == state and t["value"] is not None]
        axis.scatter([t["number"] for t in shown], [t["value"] for t in shown], marker=marker, color=colour,
                     label=state.lower())
    best, steps = None, []
    for trial in sorted(trials, key=lambda t: t["number"]):
        if trial["state"] == "COMPLETE":
            best = trial["value"] if best is None else max(best, trial["value"])
        if best is not None:
            steps.append((trial["number"], best))
    if steps:
        axis.step(*zip(*steps, strict=True), where="post", color="tab:green", label="best so far")
    axis.set(xlabel="trial", ylabel="validation accuracy", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    staged = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")  # several workers may draw it at once
    figure.savefig(staged, dpi=100)
    plt.close(figure)
    staged.replace(path)
