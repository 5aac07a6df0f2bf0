"""`run_classification.py` / `cifar-hf train`: parse flags, load and check the data, train, report.

Order matters for "nothing lost": every check that can fail (flags, TrainingArguments, the save folder, the lock)
runs before the old run is touched; `--overwrite` only moves the old run aside, and removes it once the new run has
finished (a failed new run puts it back).
"""

import logging
import os
import signal
import sys
from pathlib import Path

from ..errors import INTERRUPTED, CifarError, Preempted, UsageError
from ..files import read_json
from ..offline import hub_out_of_reach
from ..training import replaced_run
from ..training.arguments import RunArguments, command_line, parse_arguments, run_folder
from ..training.distributed import is_main_process
from ..training.folder_lock import LOCK_NAME, FolderLock
from ..training.recipes import get_recipe

# torch, transformers' models and datasets are imported where a run needs them: `--help` answers without them.

logger = logging.getLogger("cifar_hf")


def check_run_folder(args: RunArguments) -> None:
    """Refuse to reuse a run folder unless asked to; nothing is deleted here.

    Rank 0 alone decides (a process stopping here alone would leave the others waiting for it); the other processes'
    view of the folder is checked once training starts (`check_shared_run_folder`).
    """
    folder = run_folder(args)
    if not is_main_process():
        return
    if args.fold:  # fold jobs share the CV folder by design; each finds its own fold complete, resumable or new
        return
    in_use = folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir())
    if in_use and not (args.overwrite or args.resume):
        raise UsageError(
            f"run folder {folder} already exists: pass --overwrite to replace it, --resume auto to continue it, "
            "or -s/--save-folder to write elsewhere"
        )
    if args.resume and not in_use:
        raise UsageError(f"--resume: there is no run folder {folder} to resume")


def check_save_folder(save_folder: str) -> None:
    """-s must be a writable folder (or creatable); checked before any data is decoded."""
    path = Path(save_folder)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(f"-s/--save-folder {save_folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"-s/--save-folder {save_folder}: {existing} is not writable")


def check_training_arguments(args: RunArguments, training_flags: dict):
    """Build the run's TrainingArguments now, so that a flag they refuse stops the run before anything is written."""
    minimums = {"gradient_accumulation_steps": 1, "dataloader_num_workers": 0, "eval_accumulation_steps": 1}
    for flag, minimum in minimums.items():
        value = training_flags.get(flag)
        if value is not None and value < minimum:
            raise UsageError(f"--{flag} must be at least {minimum} (got {value})")
    if training_flags.get("push_to_hub"):
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        repo = training_flags.get("hub_model_id") or run_folder(args).name
        try:
            validate_repo_id(repo)
        except HFValidationError as error:
            raise UsageError(f"--hub_model_id: {error}") from None
    later = {"--push_to_hub": "a finished single run is pushed later by the same command with --resume auto",
             "--push-adapter": "the adapter stays in the run folder's adapter/"}
    pushes = [flag for flag, given in (("--push_to_hub", training_flags.get("push_to_hub")),
                                       ("--push-adapter", args.push_adapter)) if given]
    # Every process decides (one probe each): a refusal on rank 0 alone would leave the others in a collective.
    if pushes and hub_out_of_reach():
        raise UsageError(f"{pushes[0]}: the Hugging Face Hub is out of reach (offline, or HF_HUB_OFFLINE is set); "
                         f"train without it ({later[pushes[0]]})")
    from ..training.preflight import check_run_settings
    from ..training.run import build_training_arguments

    check_run_settings(args, training_flags)
    try:
        return build_training_arguments(args, get_recipe(args.model, args.recipe), training_flags, run_folder(args))
    except (ValueError, TypeError, ImportError) as error:
        raise UsageError(f"invalid training arguments: {' '.join(str(error).split())}") from None


def push_finished_run(folder: Path, training_flags: dict) -> None:
    from ..hub import push_or_raise, push_run_folder

    repo = training_flags.get("hub_model_id") or folder.name
    url = push_or_raise(lambda: push_run_folder(folder, repo, private=training_flags.get("hub_private_repo")),
                        f"pushing the finished run {folder} to {repo} failed")
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


def check_resume_flags(folder: Path, args: RunArguments, training_args, training_flags: dict) -> None:
    """Before any data is decoded: the resume continues the run as it was started, or is refused in one line."""
    from ..training import run_record

    source = run_record.resumed_from(folder, args.resume)
    if source is not None:
        flags = run_record.defining_flags(args, training_args, training_flags)
        run_record.check_resume(source, flags, training_args.max_steps)


def setup_logging() -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stderr)
    import datasets
    import transformers

    transformers.logging.set_verbosity_warning()
    datasets.logging.set_verbosity_warning()


def hide_progress_bars() -> None:
    """The progress bars of datasets (decoding), transformers (saving, loading weights) and the Hub client: hidden
    with the Trainer's (--disable_tqdm, by default when stderr is not a terminal: a log file gets lines, not bars
    redrawn with carriage returns)."""
    import datasets
    import huggingface_hub
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def raise_on_stop_signal(number, frame):
    """Outside the training loop a stop signal unwinds like an error: the old run is restored, one line is printed."""
    raise Preempted(f"stopped by {signal.Signals(number).name}", number)


class RunFolder:
    """The run folder's life in one command: locked, the old run moved aside, then kept or restored."""

    def __init__(self, folder: Path, overwrite: bool, shared: bool = False):
        self.folder, self.overwrite = folder, overwrite
        self.shared = shared  # a CV folder that fold jobs (-c --fold K) share: each locks and replaces its own fold
        self.lock = None
        self.created: list[Path] = []  # folders this command made, innermost first: a failed first run removes them
        self.replaced = False

    def lock_it(self) -> None:
        if not is_main_process():  # rank 0 owns the folder; other ranks only write what the Trainer asks
            return
        if self.folder.exists() and not self.folder.is_dir():  # never replaced, not even with --overwrite
            raise UsageError(f"-s/--save-folder: {self.folder} is a file, not a run folder: move it away or give "
                             "another -s")
        self.created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        try:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except FileNotFoundError:  # a failed run beside this one removed the -s folder it had made, just now
                self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"-s/--save-folder: cannot create {self.folder}: {error.strerror}") from None
        if not self.shared:
            self.lock = FolderLock(self.folder).acquire()

    def clear_for_new_run(self) -> None:
        if self.overwrite and self.lock is not None:
            self.replaced = replaced_run.move_aside(self.folder) is not None

    def finished(self) -> None:
        if self.lock is not None:
            replaced_run.discard(self.folder)  # also the one an interrupted --overwrite left, once resumed to the end

    def failed(self, error: BaseException) -> str:
        """Undo what this run did to the folder; returns what the user should know."""
        if self.lock is None:
            return ""
        kept = getattr(error, "kept", None)
        if kept:  # a checkpoint or a complete run: the new run is worth keeping, and so is the old one
            if self.replaced:
                return f"; the replaced run stays in {self.folder / replaced_run.ASIDE} until this run finishes"
            return ""
        if self.replaced:
            replaced_run.put_back(self.folder)
            return f"; the previous run in {self.folder} is back in place"
        if self.created and not replaced_run.run_entries(self.folder):
            (self.folder / LOCK_NAME).unlink(missing_ok=True)
            for folder in self.created:
                try:
                    folder.rmdir()
                except OSError:  # another run has written beside it since
                    break
        return ""

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def main(argv: list[str] | None = None) -> int:
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous_handlers = {number: signal.signal(number, raise_on_stop_signal) for number in stop_signals}
    run = None
    try:
        try:
            args, training_flags = parse_arguments(argv, check_model=check_run_folder)
        except (EOFError, KeyboardInterrupt, Preempted) as error:  # Ctrl-D or Ctrl-C at a question
            print("\ninterrupted: give -m/--model (and -e, -b, -l) on the command line to skip the questions",
                  file=sys.stderr)
            return getattr(error, "exit_code", INTERRUPTED)
        setup_logging()  # after parsing: it loads datasets, which `--help` does not need
        training_args = check_training_arguments(args, training_flags)
        check_save_folder(args.save_folder)
        run = RunFolder(run_folder(args), args.overwrite, shared=bool(args.fold))
        run.lock_it()
        check_run_folder(args)
        single_run = not args.cross_validate and args.repeat == 1  # folds and seeds are checked one by one
        if args.resume and single_run:  # on every process: it only reads, and a refusal must stop them all
            check_resume_flags(run.folder, args, training_args, training_flags)
        if args.resume == "auto" and single_run and is_finished(run.folder, training_args):
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
            val_size=args.val_size,
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
