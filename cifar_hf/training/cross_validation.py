"""`-c/--cross-validate`: stratified k-fold training with one aggregated, resumable report.

Layout: `<save-folder>/cifar-<model>-cv/fold-<k>/` (each a complete single-run folder) and the aggregated
`results.json` beside them. A fold whose `results.json` exists is complete and is read back, not retrained; a fold
with checkpoints resumes from the last one; any other partial fold starts again.
"""

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..data import CifarData, stratified_folds
from .arguments import RunArguments
from .distributed import is_main_process
from .run import scrub_secrets, train_once

logger = logging.getLogger(__name__)

METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss")


def mean_and_std(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1), or Nones when a metric is missing (no test split)."""
    if not values or any(v is None for v in values):
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def fold_data(data: CifarData, folds: list[np.ndarray], index: int) -> CifarData:
    full = data.full_train
    train_rows = np.sort(np.concatenate([f for i, f in enumerate(folds) if i != index]))
    return dataclasses.replace(data, train=full.take(train_rows), validation=full.take(folds[index]))


def prepare_fold_folder(folder: Path) -> str | None:
    """The `--resume` value for this fold: continue from a checkpoint, or start clean."""
    if any(folder.glob("checkpoint-*")):
        return "auto"
    if folder.exists() and is_main_process():
        shutil.rmtree(folder)  # partial and without a checkpoint: nothing to continue from
    folder.mkdir(parents=True, exist_ok=True)
    return None


def format_table(folds: list[dict], summary: dict) -> str:
    def cell(value):
        return "-" if value is None else f"{value:.4f}"

    lines = ["fold  val_acc  val_loss  test_acc  test_loss"]
    lines += [f"{f['fold']:<5} " + "  ".join(f"{cell(f[m]):>8}" for m in METRICS) for f in folds]
    lines.append("mean  " + "  ".join(f"{cell(summary[m]['mean']):>8}" for m in METRICS))
    lines.append("std   " + "  ".join(f"{cell(summary[m]['std']):>8}" for m in METRICS))
    if summary["ensemble_test_accuracy"] is not None:
        lines.append(f"soft-voting ensemble of {len(folds)} folds, test accuracy: {summary['ensemble_test_accuracy']:.4f}")
    return "\n".join(lines)


def cross_validate(args: RunArguments, training_flags: dict, data: CifarData, cv_folder: Path) -> dict:
    folds = stratified_folds(data.full_train.labels, args.folds, args.seed)
    fold_results = []
    for index in range(args.folds):
        number = index + 1
        folder = cv_folder / f"fold-{number}"
        if (folder / "results.json").exists():
            logger.info("fold %d/%d is complete: reading its results, not retraining", number, args.folds)
            results = json.loads((folder / "results.json").read_text())
        else:
            fold_args = dataclasses.replace(
                args, cross_validate=False, resume=prepare_fold_folder(folder), seed=args.seed + index
            )
            flags = {"run_name": f"{cv_folder.name}-fold-{number}", **training_flags}
            if args.wandb:
                os.environ["WANDB_RUN_GROUP"] = cv_folder.name  # one group, one run per fold
            logger.info("fold %d/%d: training on %d images, validating on %d", number, args.folds,
                        len(data.full_train) - len(folds[index]), len(folds[index]))
            results = train_once(fold_args, flags, fold_data(data, folds, index), folder, save_test_probabilities=True)
        fold_results.append({"fold": number, **{m: results[m] for m in METRICS},
                             "train_runtime_s": results["train_runtime_s"]})

    ensemble = None
    if data.test is not None:
        probabilities = [np.load(cv_folder / f"fold-{i + 1}" / "test_probabilities.npy", allow_pickle=False)
                         for i in range(args.folds)]
        ensemble = float((np.mean(probabilities, axis=0).argmax(-1) == data.test.labels).mean())

    summary = {m: dict(zip(("mean", "std"), mean_and_std([f[m] for f in fold_results]))) for m in METRICS}
    summary["ensemble_test_accuracy"] = ensemble
    report = {
        "model": args.model,
        "cross_validation": True,
        "dataset": data.dataset,
        "label_column": data.label_column,
        "num_classes": len(data.class_names),
        "image_size": data.image_size,
        "folds": args.folds,
        "seed": args.seed,
        "fold_sizes": [len(f) for f in folds],
        "per_fold": fold_results,
        **{f"{m}_mean": summary[m]["mean"] for m in METRICS},
        **{f"{m}_std": summary[m]["std"] for m in METRICS},
        "ensemble_test_accuracy": ensemble,
        "hyperparameters": scrub_secrets({**dataclasses.asdict(args), "training_arguments": scrub_secrets(training_flags)}),
    }
    if is_main_process():  # one writer under a distributed launch
        (cv_folder / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    return {**report, "table": format_table(fold_results, summary)}
