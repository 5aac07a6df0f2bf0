"""What the train and tune commands share before training: logging, progress bars, stop signals, flags checked."""

import logging
import signal
import sys

from ..errors import Preempted, UsageError
from ..offline import hub_out_of_reach
from ..training.arguments import RunArguments, run_folder
from ..training.recipes import get_recipe, with_training_flags


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
    from ..training.preflight import check_run_settings, check_scheduler
    from ..training.run import build_training_arguments

    check_run_settings(args, training_flags)
    recipe = with_training_flags(get_recipe(args.model, args.recipe), training_flags)  # as build_trainer applies it
    try:
        training_args = build_training_arguments(args, recipe, training_flags, run_folder(args))
    except (ValueError, TypeError, ImportError) as error:
        raise UsageError(f"invalid training arguments: {' '.join(str(error).split())}") from None
    check_scheduler(training_args)
    return training_args


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
