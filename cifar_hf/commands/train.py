"""`run_classification.py` / `cifar-hf train`: parse flags, load and check the data, train, report.

Order matters for "nothing lost": every check that can fail (flags, TrainingArguments, the save folder, the lock)
runs before the old run is touched; `--overwrite` only moves the old run aside, and removes it once the new run has
finished (a failed new run puts it back).
"""

import logging
import signal
import sys
from pathlib import Path

from ..errors import INTERRUPTED, CifarError
from ..files import read_json
from ..training import run_record
from ..training.arguments import QuestionInterrupted, RunArguments, command_line, parse_arguments, run_folder
from ..training.distributed import check_same_command, is_main_process
from ..training.folders import RunFolder, check_run_folder, check_save_folder
from .common import check_training_arguments, hide_progress_bars, raise_on_stop_signal, setup_logging

# torch, transformers' models and datasets are imported where a run needs them: `--help` answers without them.

logger = logging.getLogger("cifar_hf")


def push_finished_run(folder: Path, training_flags: dict) -> None:
    from ..hub import push_run

    url = push_run(folder, training_flags, f"pushing the finished run {folder}")
    print(f"{folder} is a finished run: pushed it to the Hub ({url}); nothing else changed")


def is_finished(folder: Path, training_args) -> bool:
    """Whether `folder` holds a finished run of the requested length: -e epochs, or --max_steps steps when given (a
    run that --max_steps cut short is not finished at -e epochs)."""
    results = folder / "results.json"
    if not results.is_file():
        return False
    recorded = read_json(results, "move it away to resume from the last checkpoint")
    max_steps = recorded.get("hyperparameters", {}).get("training_arguments", {}).get("max_steps", -1)
    if training_args.max_steps > 0:
        return max_steps == training_args.max_steps
    return max_steps <= 0 and recorded.get("epochs") == training_args.num_train_epochs


def check_resume_flags(folder: Path, args: RunArguments, training_args, training_flags: dict, finished: bool) -> None:
    """Before any data is decoded: the resume continues the run as it was started, or is refused in one line.
    `finished`: the run is finished at this length, so nothing is trained (it may be pushed)."""
    if args.resume != "auto":
        from ..training.checkpoints import check_resume_path

        check_resume_path(args.resume)
    source = run_record.resumed_from(folder, args.resume)
    if source is not None:
        flags = run_record.defining_flags(args, training_args, training_flags)
        run_record.check_resume(source, flags, training_args.max_steps, trains=not finished)


def main(argv: list[str] | None = None) -> int:
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous_handlers = {number: signal.signal(number, raise_on_stop_signal) for number in stop_signals}
    run = None
    try:
        try:
            args, training_flags = parse_arguments(argv, check_model=check_run_folder)
        except QuestionInterrupted as error:  # below the prompt's line; a stop signal elsewhere is the usual line
            print(f"\n{error}", file=sys.stderr)
            return error.exit_code
        setup_logging()  # after parsing: it loads datasets, which `--help` does not need
        training_args = check_training_arguments(args, training_flags)
        check_same_command(run_record.launch_flags(args, training_flags), training_args.world_size)
        check_save_folder(args.save_folder)
        run = RunFolder(run_folder(args), args.overwrite, shared=bool(args.fold))
        run.lock_it()
        check_run_folder(args)
        single_run = not args.cross_validate and args.repeat == 1  # folds and seeds are checked one by one
        finished = args.resume == "auto" and single_run and is_finished(run.folder, training_args)
        if args.resume and single_run:  # on every process: it only reads, and a refusal must stop them all
            check_resume_flags(run.folder, args, training_args, training_flags, finished)
        if finished:
            if training_flags.get("push_to_hub"):  # a finished run pushed afterwards, e.g. once back online
                if is_main_process():
                    push_finished_run(run.folder, training_flags)
                return 0
            length = (f"--max_steps {training_args.max_steps}" if training_args.max_steps > 0
                      else f"{training_args.num_train_epochs:g} epochs")
            from ..training.checkpoints import complete_checkpoints

            more = ("pass more epochs with -e to continue it" if complete_checkpoints(run.folder) else
                    "it kept no checkpoint to continue from: train with -f N to keep them")
            print(f"{run.folder} is a finished run ({length}): nothing to resume, nothing changed ({more})")
            return 0
        if training_args.disable_tqdm:  # quiet means quiet: the decoding and saving bars too
            hide_progress_bars()
        if args.model == "previt":
            from ..models.pretrained import check_checkpoint

            check_checkpoint(args.model_name_or_path)
        if args.lora_r is not None:
            from ..training.lora import import_peft

            import_peft()  # before any data work: a missing optional extra is one line, at once
        from ..data import load_cifar

        data = load_cifar(
            args.dataset,
            val_size=None if args.cross_validate else args.val_size,  # the folds hold out their own
            seed=args.seed,
            max_train_samples=args.max_train_samples,
            max_eval_samples=args.max_eval_samples,
            skip_bad_images=args.skip_bad_images,
            image_column=args.image_column,
            label_column=args.label_column,
            image_size=args.image_size,
        )
        args.check_subset_sizes(len(data.class_names))
        run.clear_for_new_run()  # only now: a run that failed on its input keeps the old folder untouched
        code = train_and_report(args, training_flags, data, run.folder)
        run.finished()
        return code
    except CifarError as error:
        if getattr(error, "kept", None) == "run" and not args.cross_validate and args.repeat == 1:
            run.finished()  # the new run folder is complete (not only one fold's or seed's): the replaced run can go
            note = ""
        else:
            note = run.failed(error) if run is not None else ""
        print(f"error: {error}{note}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as error:  # a Ctrl-C that no handler of ours turned into Preempted: the same exit
        note = run.failed(error) if run is not None else ""
        print(f"\ninterrupted{note}", file=sys.stderr)
        return INTERRUPTED
    except BaseException as error:  # a bug: still put the old run back before the traceback
        if run is not None:
            run.failed(error)
        raise
    finally:
        if run is not None:
            run.release()
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)


def train_and_report(args: RunArguments, training_flags: dict, data, folder) -> int:
    if args.cross_validate:
        from ..training.cross_validation import cross_validate

        report = cross_validate(args, training_flags, data, folder)
        if is_main_process():  # one summary for a distributed launch, as one folder
            print(report["table"])
        return 0
    if args.repeat > 1:
        from ..training.repeat import repeat_runs

        report = repeat_runs(args, training_flags, data, folder)
        if is_main_process():
            print(report["table"])
        return 0
    from ..training.run import train_once
    from ..training.secrets import scrub_secrets

    results = train_once(args, training_flags, data, folder, command=command_line(args, scrub_secrets(training_flags)))
    test = "n/a (no test split)" if results["test_accuracy"] is None else f"{results['test_accuracy']:.4f}"
    if results.get("test_top5_accuracy") is not None:
        test += f" (top-5 {results['test_top5_accuracy']:.4f})"
    if is_main_process():
        print(f"{args.model} on {results['num_classes']} classes ({results['label_column']}), "
              f"{results['image_size']}px: validation accuracy {results['val_accuracy']:.4f}, test accuracy {test}, "
              f"{results['train_runtime_s']:.1f} s training; saved to {folder}")
    return 0
