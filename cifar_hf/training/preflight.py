"""Checks of a run's settings against this machine, its packages and the model, before any data is decoded.

Each turns what would stop the run later (a traceback from the Trainer, wandb or the model, or a whole epoch in)
into one line naming the flag.
"""

import os
from pathlib import Path

from ..errors import UsageError, first_line
from ..metrics import TOP5_ABOVE_CLASSES
from .arguments import RunArguments

LOCAL_WANDB_MODES = ("offline", "disabled", "dryrun")
# --report_to names whose pip package is not the name itself.
PIP_PACKAGES = {"azure_ml": "azureml-core", "comet_ml": "comet-ml", "dagshub": "dagshub mlflow",
                "flyte": "flytekit flytekitplugins-deck-standard"}


# --metric_for_best_model: what each evaluation reports (top-5 only beyond TOP5_ABOVE_CLASSES classes).
METRICS = ("accuracy", "loss", "top5_accuracy")


def check_run_settings(args: RunArguments, training_flags: dict) -> None:
    check_bf16(args, training_flags)
    check_trainer_flags(args, training_flags)
    report_to = training_flags.get("report_to", ["wandb"] if args.wandb else "none")
    check_report_to(report_to if isinstance(report_to, list) else [report_to])
    if args.wandb:
        check_wandb_login()
    if args.early_stopping_patience is not None and training_flags.get("eval_strategy") == "no":
        raise UsageError(f"--early-stopping-patience {args.early_stopping_patience} stops on the validation accuracy "
                         "of each evaluation: leave out --eval_strategy no")
    check_image_size(args)


def check_bf16(args: RunArguments, training_flags: dict) -> None:
    """bf16 without a bf16 GPU only when asked for by -d cpu: with -d auto it would be bf16 autocast on the CPU."""
    from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

    for flag in ("bf16", "bf16_full_eval"):
        if training_flags.get(flag) and args.device != "cpu" and not (
            is_torch_bf16_gpu_available() or is_torch_xla_available()
        ):
            raise UsageError(f"--{flag}: this machine has no GPU with bf16: add -d cpu to run bf16 autocast on the "
                             f"CPU, or leave out --{flag}")


def check_trainer_flags(args: RunArguments, flags: dict) -> None:
    """Passed-through Trainer flags that this project's run would ignore, misapply or fail on an epoch in."""
    import torch

    for flag in ("fp16", "fp16_full_eval"):
        if flags.get(flag) and (args.device == "cpu" or not torch.cuda.is_available()):
            raise UsageError(f"--{flag}: fp16 mixed precision needs a CUDA GPU, and the Trainer would train in fp32 "
                             "without a word (bf16 autocast runs on the CPU: -d cpu --bf16 true)")
    if flags.get("dataloader_drop_last"):
        raise UsageError("--dataloader_drop_last: the Trainer drops the last batch of the validation and test splits "
                         "too, so some of their images would go unscored; leave it out")
    smoothing = flags.get("label_smoothing_factor")
    if smoothing is not None and not 0 <= smoothing < 1:
        raise UsageError(f"--label_smoothing_factor {smoothing} must be at least 0 and below 1")
    for steps, strategy in (("logging_steps", "logging_strategy"), ("eval_steps", "eval_strategy")):
        if steps in flags and flags.get(strategy) != "steps":
            raise UsageError(f"--{steps} {flags[steps]:g} applies to --{strategy} steps only (a run's default is once "
                             f"per epoch): add --{strategy} steps, or leave out --{steps}")
        if steps in flags and not flags[steps] > 0:
            raise UsageError(f"--{steps} must be above 0 (got {flags[steps]:g})")
    metric = flags.get("metric_for_best_model")
    if metric is not None and metric.removeprefix("eval_") not in METRICS:
        raise UsageError(f"--metric_for_best_model {metric}: each evaluation reports {', '.join(METRICS)} "
                         f"(top5_accuracy beyond {TOP5_ABOVE_CLASSES} classes)")
    if flags.get("load_best_model_at_end") and flags.get("eval_strategy") == "steps":
        raise UsageError("--load_best_model_at_end keeps the best of the checkpoints saved after each epoch's "
                         "evaluation: leave out --eval_strategy steps")


def check_scheduler(training_args) -> None:
    """The schedule the Trainer will build, built now on one parameter: a missing or foreign keyword is one line."""
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=training_args.learning_rate)
    try:
        get_scheduler(training_args.lr_scheduler_type, optimizer, num_warmup_steps=0, num_training_steps=10,
                      scheduler_specific_kwargs=training_args.lr_scheduler_kwargs)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--lr_scheduler_type {training_args.lr_scheduler_type.value}: {first_line(error)} (give its "
                         "settings with --lr_scheduler_kwargs)") from None


def check_report_to(targets: list[str]) -> None:
    """Every tracker is one that transformers knows and that is installed (the Trainer raises at its start)."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
        is_azureml_available,
        is_flyte_deck_standard_available,
    )

    known = ("none", "all", *INTEGRATION_TO_CALLBACK)
    usable = {"none", "all", *get_available_reporting_integrations()}
    usable |= {name for name, found in (("azure_ml", is_azureml_available()),  # left out there beside mlflow
                                        ("flyte", is_flyte_deck_standard_available())) if found}
    for name in targets:
        flag = "-w/--wandb" if name == "wandb" else f"--report_to {name}"
        if name not in known:
            raise UsageError(f"{flag}: unknown tracker (choose from {', '.join(known)})")
        if name == "kubeflow" and name not in usable:
            raise UsageError(f"{flag}: set KUBEFLOW_TRAINER_SERVER_URL, or leave it out")
        if name not in usable:
            setup = " and set COMET_API_KEY" if name == "comet_ml" else ""
            raise UsageError(f"{flag}: not installed here (pip install {PIP_PACKAGES.get(name, name)}{setup}), "
                             "or leave it out")


def check_wandb_login() -> None:
    """An online wandb run needs credentials; without them wandb.init stops the run with a traceback."""
    try:
        settings = wandb_settings()
        from wandb.sdk.lib.wbauth import wbnetrc
    except (ImportError, AttributeError):  # another wandb version: wandb.init checks for itself
        return
    if settings.mode in LOCAL_WANDB_MODES or settings.api_key or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return
    try:
        if wbnetrc.read_netrc_auth(host=settings.base_url):
            return
    except Exception as error:  # a malformed key in the netrc file
        raise UsageError(f"-w/--wandb: {first_line(error)}") from None
    raise UsageError("-w/--wandb: not logged in to Weights & Biases: run `wandb login` (or set WANDB_API_KEY), "
                     "or set WANDB_MODE=offline to keep the run local")


def wandb_settings():
    """wandb's settings from its settings file and the environment, as wandb.init reads them.

    Built apart from wandb's process-wide settings: those, once loaded, would ignore the environment that a repeat
    or a cross-validation sets later (WANDB_RUN_GROUP).
    """
    import wandb

    settings = wandb.Settings()
    config_dir = os.environ.get("WANDB_CONFIG_DIR")
    settings.settings_system = str(Path(config_dir or "~/.config/wandb").expanduser() / "settings")
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(os.environ))
    return settings


def check_image_size(args: RunArguments) -> None:
    """--image-size must be one the scratch model can be built for (a fraction of a second, before the decoding)."""
    from ..models import SCRATCH_MODELS, build_scratch_model

    if args.image_size is None or args.model not in SCRATCH_MODELS:
        return
    overrides = {"stem": args.vit_stem} if args.model == "vit" else {}
    try:
        build_scratch_model(args.model, [str(n) for n in range(10)], image_size=args.image_size, **overrides)
    except ValueError as error:
        sizes = "; pass --image-size 32 or 64" if args.model == "vit" else ""  # the stem halves down to the grid
        raise UsageError(f"--image-size {args.image_size}: {args.model} cannot take {args.image_size}x"
                         f"{args.image_size} images ({error}){sizes}") from None
