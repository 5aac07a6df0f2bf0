"""`-c/--cross-validate`: stratified k-fold training with one aggregated, resumable report.

Layout: `<save-folder>/cifar-<model>-cv/fold-<k>/` (each a complete single-run folder) and the aggregated
`results.json` beside them. A fold whose `results.json` exists is complete and is read back, not retrained; a fold
with checkpoints resumes from the last one; any other partial fold starts again.

`-c --fold K` trains fold K alone, so that the folds can run as separate jobs (a cluster's job array) into one
CV folder: each job holds a lock on its own fold, and whichever job finishes rebuilds the report from the folds
complete so far (atomically, one job at a time); once every fold is complete it equals the sequential run's.
"""

import contextlib
import dataclasses
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..data import CifarData, stratified_folds
from ..errors import InputError
from ..files import read_json, write_json
from .arguments import RunArguments
from .distributed import is_main_process
from .folder_lock import exclusive
from .members import (
    METRICS,
    cell,
    check_member,
    job_settings,
    mean_and_std,
    prepare_member_folder,
    read_member_results,
)
from .run import train_once
from .secrets import scrub_secrets

logger = logging.getLogger(__name__)


def fold_member(args: RunArguments, number: int) -> RunArguments:
    """Fold `number`'s own run: its seed is the job's plus the fold's index."""
    return dataclasses.replace(args, cross_validate=False, fold=None, resume=None, seed=args.seed + number - 1)


def format_table(folds: list[dict], summary: dict) -> str:
    lines = ["fold  val_acc  val_loss  test_acc  test_loss"]
    lines += [f"{f['fold']:<5} " + "  ".join(f"{cell(f[m]):>8}" for m in METRICS) for f in folds]
    lines.append("mean  " + "  ".join(f"{cell(summary[m]['mean']):>8}" for m in METRICS))
    lines.append("std   " + "  ".join(f"{cell(summary[m]['std']):>8}" for m in METRICS))
    if summary["ensemble_test_accuracy"] is not None:
        ensemble = summary["ensemble_test_accuracy"]
        lines.append(f"soft-voting ensemble of {len(folds)} folds, test accuracy: {ensemble:.4f}")
    return "\n".join(lines)


def train_fold(args: RunArguments, training_flags: dict, data: CifarData, cv_folder: Path, number: int):
    folder = cv_folder / f"fold-{number}"
    lock = cv_folder / f".fold-{number}.lock"
    busy = f"fold {number} of {cv_folder} is being trained by another job (it holds {lock})"
    with exclusive(lock, busy) if is_main_process() else contextlib.nullcontext():
        if args.overwrite and args.fold and folder.exists() and is_main_process():
            shutil.rmtree(folder)  # this job's own fold, under its lock: the other folds belong to other jobs
        if read_member_results(folder, f"fold {number}/{args.folds}", logger) is not None:
            return
        fold_args = dataclasses.replace(fold_member(args, number), resume=prepare_member_folder(folder))
        flags = {"run_name": f"{cv_folder.name}-fold-{number}", **training_flags}
        if args.wandb:
            os.environ["WANDB_RUN_GROUP"] = cv_folder.name  # one group, one run per fold
        fold = data.fold(number, args.folds)
        logger.info("fold %d/%d: training on %d images, validating on %d%s", number, args.folds, len(fold.train),
                    len(fold.validation), " (its whole fold: --max-eval-samples subsets the test split only)"
                    if args.max_eval_samples else "")
        train_once(fold_args, flags, fold, folder, save_test_probabilities=True)


def build_report(args: RunArguments, training_flags: dict, data: CifarData, fold_sizes: list, cv_folder: Path) -> dict:
    """The aggregated report over the folds complete now (all of them after a sequential run)."""
    fold_results = []
    for number in range(1, args.folds + 1):
        results_file = cv_folder / f"fold-{number}" / "results.json"
        check_member(results_file.parent, f"fold {number}", fold_member(args, number), training_flags)  # other jobs'
        if results_file.exists():
            results = read_json(results_file)
            fold_results.append({"fold": number, **{m: results[m] for m in METRICS},
                                 "train_runtime_s": results["train_runtime_s"]})
    complete = [f["fold"] for f in fold_results]

    ensemble = None
    if data.test is not None and len(complete) == args.folds:
        probabilities = [np.load(cv_folder / f"fold-{k}" / "test_probabilities.npy", allow_pickle=False)
                         for k in complete]
        ensemble = float((np.mean(probabilities, axis=0).argmax(-1) == data.test.labels).mean())

    summary = {m: dict(zip(("mean", "std"), mean_and_std([f[m] for f in fold_results]), strict=True)) for m in METRICS}
    summary["ensemble_test_accuracy"] = ensemble
    report = {
        "model": args.model,
        "cross_validation": True,
        "dataset": data.dataset,
        "label_column": data.label_column,
        "num_classes": len(data.class_names),
        "image_size": data.image_size,
        "folds": args.folds,
        "folds_complete": complete,
        "seed": args.seed,
        "fold_sizes": fold_sizes,
        "per_fold": fold_results,
        **{f"{m}_mean": summary[m]["mean"] for m in METRICS},
        **{f"{m}_std": summary[m]["std"] for m in METRICS},
        "ensemble_test_accuracy": ensemble,
        "hyperparameters": scrub_secrets({**job_settings(args), "training_arguments": scrub_secrets(training_flags)}),
    }
    return {**report, "table": format_table(fold_results, summary)}


def cross_validate(args: RunArguments, training_flags: dict, data: CifarData, cv_folder: Path) -> dict:
    if args.folds > len(data.full_train):
        raise InputError(f"--folds {args.folds}: the training split has only {len(data.full_train)} images, "
                         "fewer than the folds")
    fold_sizes = [len(part) for part in stratified_folds(data.full_train.labels, args.folds, data.holdout["seed"])]
    for number in range(1, args.folds + 1):  # before training any fold: a report never mixes two settings
        check_member(cv_folder / f"fold-{number}", f"fold {number}", fold_member(args, number), training_flags)
    for number in [args.fold] if args.fold else range(1, args.folds + 1):
        train_fold(args, training_flags, data, cv_folder, number)
    if not is_main_process():  # one writer under a distributed launch
        return build_report(args, training_flags, data, fold_sizes, cv_folder)
    with exclusive(cv_folder / ".report.lock"):  # fold jobs finishing together: the last writer reads every fold
        report = build_report(args, training_flags, data, fold_sizes, cv_folder)
        write_json(cv_folder / "results.json", {k: v for k, v in report.items() if k != "table"})
    return report
