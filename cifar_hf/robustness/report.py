"""The robustness and calibration parts of `cifar-hf evaluate`'s report: numbers for the JSON, figures beside it."""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .cache import cached_corruption
from .calibration import calibration_report, fit_temperature, reliability_bins
from .corruptions import FAMILIES
from .plots import plot_reliability_diagram, plot_robustness


def corruption_report(score: Callable[[np.ndarray], torch.Tensor], pixels: np.ndarray, labels: np.ndarray,
                      clean_accuracy: float, names: list[str], severities: list[int], seed: int) -> dict:
    """Accuracy per corruption and severity, their mean, and the relative drop from clean accuracy."""
    start, cached = time.perf_counter(), 0
    accuracies = {}
    for name in names:
        accuracies[name] = {}
        for severity in severities:
            corrupted, hit = cached_corruption(pixels, name, severity, seed)
            cached += hit
            predictions = score(corrupted).argmax(-1).numpy()
            accuracies[name][str(severity)] = float((predictions == labels).mean())
    mean = float(np.mean([a for by_severity in accuracies.values() for a in by_severity.values()]))
    return {
        "corruptions": accuracies,
        "corruption_families": {name: FAMILIES[name] for name in names},
        "severities": severities,
        "corruption_seed": seed,
        "mean_corruption_accuracy": mean,
        "relative_corruption_drop": (clean_accuracy - mean) / clean_accuracy if clean_accuracy else None,
        "corruption_eval_seconds": time.perf_counter() - start,
        "corrupted_splits_from_cache": cached,
    }


def cross_fitted_logits(logits: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Logits scaled by temperatures fitted on the other half of the same images, so no image scores its own fit."""
    halves = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).chunk(2)
    scaled = logits.float().clone()
    for scored, fitted in ((halves[0], halves[1]), (halves[1], halves[0])):
        scaled[scored] = logits[scored].float() / fit_temperature(logits[fitted], labels[fitted])
    return scaled


def calibration_section(logits: torch.Tensor, labels: torch.Tensor, temperature_scale: bool,
                        validation: tuple | None = None) -> tuple[dict, dict]:
    """(JSON entries, reliability bins for the figure).

    With `temperature_scale`, one temperature is fitted on `validation` (logits, labels); when that is None the
    evaluated images are the validation images, and the calibrated scores are cross-fitted on their two halves.
    """
    section = {"calibration": calibration_report(logits, labels)}
    bins = {"model": reliability_bins(logits.float().softmax(-1), labels)}
    if temperature_scale:
        if validation is None:
            temperature, scaled = fit_temperature(logits, labels), cross_fitted_logits(logits, labels)
            how = "validation (scores cross-fitted on its two halves)"
        else:
            temperature = fit_temperature(*validation)
            scaled, how = logits.float() / temperature, "validation"
        section["temperature_scaling"] = {"temperature": temperature, "fitted_on": how,
                                          **calibration_report(scaled, labels)}
        bins["temperature-scaled"] = reliability_bins(scaled.softmax(-1), labels)
    return section, bins


def write_figures(report: dict, bins: dict, output: Path, title: str, name: str | None = None) -> list[Path]:
    """The reliability diagram and, with corruptions, the robustness plot, named after `name` (default: the split)."""
    split = name or report["split"]
    written = [output / f"reliability_diagram-{split}.png"]
    plot_reliability_diagram(bins["model"], written[0], f"{title}: ECE {report['calibration']['ece']:.3f}",
                             bins.get("temperature-scaled"))
    if "corruptions" in report:
        written.append(output / f"robustness-{split}.png")
        plot_robustness(report["accuracy"], report["corruptions"], report["corruption_families"], written[-1],
                        f"{title}: clean {report['accuracy']:.3f}, corrupted {report['mean_corruption_accuracy']:.3f}")
    return written
