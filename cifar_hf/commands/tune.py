"""`cifar-hf tune -m MODEL --trials N [--space FILE.yaml] [--storage URL] [--study-name NAME] [training flags]`.

An Optuna study (TPE sampler seeded by --seed, median pruner on each epoch's validation accuracy) whose trials are
ordinary training runs in `<save-folder>/<study name>/trial-<n>/` (default name `cifar-<model>-tune`). The same
command continues a stopped study; several workers given one `--storage` share one study. A study records the flags
its trials train with, so a later worker or command with other flags is refused instead of joining it.
"""

import logging
import signal
import sys
from pathlib import Path

from ..errors import CifarError, CommandParser, UsageError, print_error
from ..files import is_plain_name
from ..offline import hub_out_of_reach
from ..training.arguments import HUB_FLAGS, parse_arguments
from ..training.recipes import FLAG_SETTINGS
from .common import raise_on_stop_signal, setup_logging

logger = logging.getLogger(__name__)

# Command-line flags that fix a searched field: the study then leaves it out of the space.
FIXED_BY_FLAG = {"epochs": "epoch", "batch_size": "batch_size", "learning_rate": "learning_rate"}


def tune_parser() -> CommandParser:
    parser = CommandParser(prog="cifar-hf tune", description=__doc__.splitlines()[0], add_help=False,
                           epilog="Every flag of `cifar-hf train` is accepted too (-m, -e, --dataset, ...).")
    parser.add_argument("--trials", type=int, required=True, help="Trials the study holds in total when done.")
    parser.add_argument("--space", help="YAML search space replacing the model's built-in one.")
    parser.add_argument("--storage", help="Optuna RDB URL (postgresql://..., sqlite:///...) or journal file path "
                                          "(default: study.journal in the study folder).")
    parser.add_argument("--study-name", help="Study name inside the storage, and the name of its folder in -s "
                                             "(default: cifar-<model>-tune).")
    parser.add_argument("--prune-after", type=int, default=5,
                        help="Complete trials before the median pruner may stop a trial (-1: never prune).")
    parser.add_argument("--stale-after", type=float, default=1800,
                        help="Seconds without a heartbeat after which another worker runs a RUNNING trial again "
                             "(its worker died with its machine); 0: only for workers on this machine.")
    return parser


def study_folder(save_folder: str, study_name: str | None, model: str, storage: str | None) -> Path:
    """The study's folder in -s, named after the study so that two studies never share trial folders. A study
    started with --study-name before that (in the default journal of `cifar-<model>-tune`) continues there."""
    default = Path(save_folder) / f"cifar-{model}-tune"
    if study_name is None:
        return default
    if not is_plain_name(study_name):
        raise UsageError(f"--study-name {study_name!r}: it names the study's folder in -s, so it must be a plain "
                         "folder name (letters, digits, '.', '-', '_')")
    folder = Path(save_folder) / study_name
    from ..tuning.study import JOURNAL, import_optuna, open_storage

    if storage is None and not (folder / JOURNAL).exists() and (default / JOURNAL).exists():
        if study_name in import_optuna().get_all_study_names(open_storage(None, default)[0]):
            logger.info("study %s was started in %s: it continues there", study_name, default)
            return default
    return folder


def searched_space(space: dict, args, training_flags: dict) -> dict:
    fixed = {name for name, flag in FIXED_BY_FLAG.items() if getattr(args, flag) is not None}
    fixed |= {setting for flag, setting in FLAG_SETTINGS.items() if flag in training_flags}  # the flag applies
    remaining = {name: spec for name, spec in space.items() if name not in fixed}
    if not remaining:
        raise UsageError(f"nothing to search: the flags fix every field of the space ({', '.join(space)})")
    return remaining


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        tune_parser().print_help()
        return 0
    setup_logging()
    # A stop signal outside a trial's training loop (loading, a trial's setup) is one line and the signal's status.
    previous_handlers = {number: signal.signal(number, raise_on_stop_signal) for number in (signal.SIGTERM,
                                                                                           signal.SIGINT)}
    try:
        try:
            tune, rest = tune_parser().parse_known_args(argv)
        except SystemExit as exit:  # argparse already printed its one-line error
            return exit.code or 2
        args, training_flags = parse_arguments(rest)
        if tune.trials < 1:
            raise UsageError(f"--trials must be at least 1 (got {tune.trials})")
        args.validate_seed(tune.trials, f"--trials {tune.trials}")  # trial n samples with seed + n
        for flag, given in (("-c/--cross-validate", args.cross_validate), ("--repeat", args.repeat > 1),
                            ("--overwrite", args.overwrite), ("--resume", args.resume)):
            if given:
                raise UsageError(f"{flag} does not apply to tune: a study always continues where it stopped")
        from ..tuning.space import load_space
        from ..tuning.study import Study, import_optuna

        import_optuna()  # before loading any data: a missing extra is one line at once
        space = searched_space(load_space(tune.space, args.model), args, training_flags)
        folder = study_folder(args.save_folder, tune.study_name, args.model, tune.storage)
        # Trials are not pushed one by one: the best trial's folder is, once this worker is done.
        hub_flags = {k: training_flags.pop(k) for k in HUB_FLAGS if k in training_flags}
        from ..hub import portable_flags
        from ..training import run_record
        from .common import check_training_arguments, hide_progress_bars

        # What would stop every trial is one line now (check_run_settings), and the flags the trials train with.
        training_args = check_training_arguments(args, training_flags)
        # Workers on other machines see local folders elsewhere: the study compares them by name.
        trial_flags = portable_flags(run_record.defining_flags(args, training_args, training_flags))
        if training_args.disable_tqdm:
            hide_progress_bars()
        if hub_flags.get("push_to_hub"):
            if hub_out_of_reach():
                raise UsageError("--push_to_hub: the Hugging Face Hub is out of reach (offline, or HF_HUB_OFFLINE is "
                                 "set); tune without it and push the best trial's folder later")
        # The storage opens first: a bad --storage is reported before minutes of loading images.
        study = Study(args, training_flags, folder, space, tune.trials, tune.storage, folder.name,
                      tune.prune_after, tune.stale_after)
        study.check_trial_flags(trial_flags)
        from ..data import load_cifar

        study.data = load_cifar(args.dataset, val_size=args.val_size, seed=args.seed,
                                max_train_samples=args.max_train_samples, max_eval_samples=args.max_eval_samples,
                                skip_bad_images=args.skip_bad_images, image_size=args.image_size,
                                image_column=args.image_column, label_column=args.label_column)
        args.check_subset_sizes(len(study.data.class_names))
        summary = study.run()
        if hub_flags.get("push_to_hub") and summary["best_folder"]:
            from ..hub import push_run

            best = folder / summary["best_folder"]
            url = push_run(best, hub_flags, f"the study is complete, but pushing its best trial {best}",
                           repo=folder.name)
            print(f"pushed the best trial {best} to the Hub: {url}")
    except CifarError as error:
        return print_error(error)
    finally:
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
    print(format_summary(summary, folder))
    return 0


def format_summary(summary: dict, folder: Path) -> str:
    states = {}
    for trial in summary["trials"]:
        states[trial["state"].lower()] = states.get(trial["state"].lower(), 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    if summary["best_trial"] is None:
        return f"{summary['study_name']}: {counts}; no complete trial yet ({folder})"
    return (f"{summary['study_name']}: {counts}; best trial {summary['best_trial']} "
            f"validation accuracy {summary['best_value']:.4f} with {summary['best_params']}; "
            f"its run folder: {folder / summary['best_folder']}")
