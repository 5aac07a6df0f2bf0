"""The member runs of a multi-run job (the folds of `-c`, the seeds of `--repeat`): each a complete run folder of its
own, read back when complete, resumed from its last complete checkpoint, or started again."""

import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError, UsageError
from ..files import read_json
from . import checkpoints, run_record
from .arguments import RunArguments
from .distributed import is_main_process
from .recipes import get_recipe
from .run import applied_run_arguments, build_training_arguments

logger = logging.getLogger(__name__)

METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss")


def mean_and_std(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1), or Nones when a metric is missing (no test split); one value has
    no spread to measure, so its std is None, not 0."""
    if not values or any(v is None for v in values):
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def prepare_member_folder(folder: Path) -> str | None:
    """The `--resume` value for a fold or seed folder: continue from a complete checkpoint, or start clean."""
    if checkpoints.complete_checkpoints(folder):
        return "auto"
    if folder.exists() and is_main_process():
        shutil.rmtree(folder)  # partial and without a checkpoint: nothing to continue from
    folder.mkdir(parents=True, exist_ok=True)
    return None


def check_member(folder: Path, name: str, member: RunArguments, training_flags: dict) -> None:
    """A complete fold or seed is read back only if it was trained with this job's defining flags (the same -e too:
    it would not be trained further); otherwise one line, before anything is trained or written."""
    record = folder / run_record.RECORD
    if not (folder / "results.json").is_file() or not record.is_file():
        return
    training_args = build_training_arguments(member, get_recipe(member.model, member.recipe), training_flags, folder)
    flags = run_record.defining_flags(member, training_args, training_flags)
    problems = run_record.differences(read_json(record), flags, f"the flags {name} was trained with")
    if problems:
        raise UsageError(f"{', '.join(problems)}: give that run's flags, or start a new one with --overwrite "
                         f"({folder} is complete)")


def job_settings(args: RunArguments) -> dict:
    """A multi-run job's settings as its report records them: without how this invocation was asked to go on
    (`--resume`, `--overwrite`, `--fold`), so that rerunning a finished job writes the same report."""
    return {k: v for k, v in applied_run_arguments(args).items() if k not in ("fold", "resume", "overwrite")}


def read_member_results(folder: Path, name: str, log: logging.Logger = logger) -> dict | None:
    """A complete member run's results (a fold, a repeat's seed); None when it must be trained (again: an unreadable
    results.json). `log`: the job's own logger, so that a repeat's lines are the repeat's."""
    path = folder / "results.json"
    if not path.exists():
        return None
    try:
        results = read_json(path)
    except InputError as error:
        log.warning("%s: %s; training it again", name, error)
        path.unlink(missing_ok=True)  # then a partial run, resumed or started again (every process unlinks it)
        return None
    log.info("%s is complete: reading its results, not retraining", name)
    return results


def cell(value: float | None) -> str:
    """A metric in a job's table ("-" where there is none, e.g. no test split)."""
    return "-" if value is None else f"{value:.4f}"
