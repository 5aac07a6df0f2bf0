"""`--repeat N`: the same run with seeds seed..seed+N-1 on one fixed split, and mean +/- std over them.

Layout: `<save-folder>/cifar-<model>-repeat/seed-<s>/` (each a complete single-run folder) and the aggregated
`results.json` beside them. Resumable like cross-validation (`--resume auto`): a seed whose `results.json` exists
is read back, one with checkpoints continues from the last, any other partial one starts again.
"""

import dataclasses
import logging
import os
from pathlib import Path

from ..data import CifarData
from ..errors import UsageError
from ..files import read_json, write_json
from .arguments import RunArguments
from .distributed import is_main_process
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
from .run_record import SPLIT_RECORD
from .secrets import scrub_secrets

logger = logging.getLogger(__name__)


def summarise(per_seed: list[dict]) -> dict:
    """Mean, sample std (ddof=1), min and max of every metric over the seeds (Nones where a metric is missing)."""
    summary = {}
    for metric in METRICS:
        values = [run[metric] for run in per_seed]
        mean, std = mean_and_std(values)
        low, high = (min(values), max(values)) if mean is not None else (None, None)
        summary |= {f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_min": low, f"{metric}_max": high}
    return summary


def format_table(per_seed: list[dict], summary: dict) -> str:
    lines = ["seed    val_acc  test_acc"]
    lines += [f"{run['seed']:<6} {cell(run['val_accuracy']):>8}  {cell(run['test_accuracy']):>8}" for run in per_seed]
    for name in ("mean", "std", "min", "max"):
        val, test = summary[f"val_accuracy_{name}"], summary[f"test_accuracy_{name}"]
        lines.append(f"{name:<6} {cell(val):>8}  {cell(test):>8}")
    return "\n".join(lines)


def seed_member(args: RunArguments, seed: int) -> RunArguments:
    """The repeat's run with `seed` (the split stays the one --seed drew)."""
    return dataclasses.replace(args, repeat=1, resume=None, seed=seed)


def check_split(repeat_folder: Path, split_seed: int) -> None:
    """The seed folders record their own seed, not the split's: a repeat under another --seed whose seeds overlap
    would read folders trained on another split. The folder's split is recorded once and must match."""
    record = repeat_folder / SPLIT_RECORD
    if record.is_file():
        recorded = read_json(record, "move it away, or start a new run with --overwrite").get("split_seed")
        if recorded != split_seed:
            raise UsageError(f"--seed {split_seed} differs from the seed that drew the split of {repeat_folder} "
                             f"({recorded}): give that --seed, or start a new run with --overwrite")
    elif is_main_process():
        write_json(record, {"split_seed": split_seed})


def repeat_runs(args: RunArguments, training_flags: dict, data: CifarData, repeat_folder: Path) -> dict:
    per_seed = []
    seeds = range(args.seed, args.seed + args.repeat)
    check_split(repeat_folder, args.seed)
    for seed in seeds:  # before training any seed: a summary never mixes two settings
        check_member(repeat_folder / f"seed-{seed}", f"seed {seed}", seed_member(args, seed), training_flags)
    for seed in seeds:
        folder = repeat_folder / f"seed-{seed}"
        results = read_member_results(folder, f"seed {seed}", logger)
        if results is None:
            # The split was drawn once with --seed (in `data`); only the initialisation and data order change.
            run_args = dataclasses.replace(seed_member(args, seed), resume=prepare_member_folder(folder))
            flags = {"run_name": f"{repeat_folder.name}-seed-{seed}", **training_flags}
            if args.wandb:
                os.environ["WANDB_RUN_GROUP"] = repeat_folder.name  # one group, one run per seed
            logger.info("repeat %d/%d: seed %d", seed - args.seed + 1, args.repeat, seed)
            results = train_once(run_args, flags, data, folder)
        per_seed.append({"seed": seed, "folder": folder.name, **{m: results[m] for m in METRICS},
                         "train_runtime_s": results["train_runtime_s"]})

    summary = summarise(per_seed)
    report = {
        "model": args.model,
        "repeat": args.repeat,
        "split_seed": args.seed,
        "seeds": [run["seed"] for run in per_seed],
        "per_seed": per_seed,
        **summary,
        "hyperparameters": scrub_secrets({**job_settings(args), "training_arguments": scrub_secrets(training_flags)}),
    }
    if is_main_process():  # one writer under a distributed launch
        write_json(repeat_folder / "results.json", report)  # whole or absent, as every result file
    return {**report, "table": format_table(per_seed, summary)}
