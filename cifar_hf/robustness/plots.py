"""Robustness and calibration figures (matplotlib, no display needed)."""

from pathlib import Path

from ..plots import pyplot


def plot_robustness(clean_accuracy: float, corruptions: dict, families: dict, path: Path, title: str) -> None:
    """Accuracy against severity: one panel per corruption family, one line per corruption, clean accuracy dashed."""
    order = list(dict.fromkeys(families[name] for name in corruptions))
    plt = pyplot()
    figure, axes = plt.subplots(1, len(order), figsize=(3.6 * len(order), 3.6), squeeze=False, sharey=True)
    for axis, family in zip(axes[0], order, strict=True):
        for name, by_severity in corruptions.items():
            if families[name] == family:
                severities = sorted(by_severity, key=int)
                axis.plot([int(s) for s in severities], [by_severity[s] for s in severities], "o-", label=name)
        axis.axhline(clean_accuracy, color="black", linestyle="--", linewidth=1, label="clean")
        axis.set(title=family, xlabel="severity", xticks=range(1, 6), ylim=(0, 1))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_reliability_diagram(bins: list[dict], path: Path, title: str, calibrated: list[dict] | None = None) -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration; bar width is the bin."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.8, 4.8))
    series = [("model", bins, "tab:blue")] + ([("temperature-scaled", calibrated, "tab:orange")] if calibrated else [])
    for label, these, colour in series:
        filled = [b for b in these if b["count"]]
        axis.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], width=1 / len(these), align="edge",
                 alpha=0.5, edgecolor=colour, color=colour, label=label)
    axis.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    axis.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
