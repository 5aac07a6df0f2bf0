"""Command-line arguments of `run_classification.py`: the seed's flags plus every `TrainingArguments` flag.

`RunArguments` is parsed first by `HfArgumentParser` (it owns `-l/--learning-rate` and `--seed`); whatever is left
must be `TrainingArguments` flags. Where the seed's flag and a TrainingArguments flag say the same thing
(`-e` and `--num_train_epochs`, ...), giving both with different values is an error.
"""

import argparse
import dataclasses
import importlib.util
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser  # the transformers package is lazy: this loads no torch, so --help is fast

from ..data import DEFAULT_DATASET, DEFAULT_SEED, DEFAULT_VAL_SIZE
from ..errors import INTERRUPTED, CifarError, DefaultsHelpFormatter, OneLineErrors, Preempted, UsageError
from .recipes import RECIPES

DEVICES = ("auto", "cpu", "cuda", "mps")
MODEL_NAMES = tuple(dict.fromkeys(model for model, _ in RECIPES))  # every model has a recipe; read without torch
# Run arguments that only one model uses: recorded (and compared on resume) only for that model's runs.
MODEL_SPECIFIC_ARGUMENTS = {"vit_stem": "vit", **dict.fromkeys(
    ("model_name_or_path", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "push_adapter"), "previt")}
# Hub flags are handled after training by cifar_hf.hub (exactly the final model, with our card), not by the Trainer.
HUB_FLAGS = ("push_to_hub", "hub_model_id", "hub_private_repo", "hub_strategy", "hub_always_push", "hub_revision")
PATH_ARGUMENTS = ("dataset", "model_name_or_path")  # the run arguments that may name a local folder
SEED_LIMIT = 2**32  # numpy's and torch's seeds are below it


class RunArgumentParser(OneLineErrors, HfArgumentParser):
    """HfArgumentParser whose bad values are one line (not the usage of a hundred flags first)."""


def _arg(default, help: str, aliases: list[str] | None = None, **kwargs):
    metadata = {"help": help, **kwargs}
    if aliases:
        metadata["aliases"] = aliases
    return field(default=default, metadata=metadata)


@dataclass
class RunArguments:
    model: str | None = _arg(None, "Model to train.", ["-m"], choices=MODEL_NAMES)
    epoch: int | None = _arg(None, "Epochs (default: the model's recipe).", ["-e"])
    batch_size: int | None = _arg(None, "Batch size per device (default: the model's recipe).", ["-b"])
    learning_rate: float | None = _arg(None, "Peak learning rate (default: the model's recipe).", ["-l"])
    device: str = _arg("auto", "auto: cuda, then mps, then cpu.", ["-d"], choices=DEVICES)
    cross_validate: bool = _arg(False, "Run k-fold cross-validation over the training split.", ["-c"])
    folds: int = _arg(5, "Number of cross-validation folds.")
    fold: int | None = _arg(None, "With -c: train fold K (1 to --folds) alone, as one job of several; "
                                  "the report is rebuilt from the folds complete so far.")
    repeat: int = _arg(1, "Train N times (seeds seed..seed+N-1, one split): mean and std in cifar-<model>-repeat/.")
    wandb: bool = _arg(False, "Report to Weights & Biases (project 'cifar' unless WANDB_PROJECT is set).", ["-w"])
    save_folder: str = _arg(".", "Parent folder of the run folder cifar-<model>/.", ["-s"])
    ckpt_frequency: int = _arg(0, "Save a resumable checkpoint every N epochs (0: final model only).", ["-f"])
    dataset: str = _arg(DEFAULT_DATASET, "Hub dataset id or local folder (Hub layout or one sub-folder per class).")
    seed: int = _arg(DEFAULT_SEED, "Seed of the validation split, the initialisation and the data order.")
    val_size: int = _arg(DEFAULT_VAL_SIZE, "Images held out of the training split for validation (stratified).")
    max_train_samples: int | None = _arg(None, "Train on a seeded, stratified subset of this size.")
    max_eval_samples: int | None = _arg(None, "Evaluate on seeded, stratified subsets of this size.")
    recipe: str = _arg("default", "Named recipe: 'default' for every model; resnet also 'fast' and 'best', vit "
                       "'best', previt 'fast'.")
    model_name_or_path: str = _arg(
        "google/vit-base-patch16-224", "previt: Hub id or local folder of an image-classification checkpoint."
    )
    vit_stem: str = _arg("conv", "vit: convolutional stem, or the plain 'patchify' stem.",
                         choices=("conv", "patchify"))
    overwrite: bool = _arg(False, "Replace an existing run folder.")
    resume: str | None = _arg(None, "Continue the run in its folder: 'auto' (last complete checkpoint) or a path.")
    skip_bad_images: bool = _arg(False, "Skip (and count) undecodable images instead of stopping.")
    tta: bool | None = _arg(None, "Flip test-time augmentation in the run's evaluations (image and mirror image "
                            "averaged); default: the recipe's (on in `best`), `--tta false` turns it off.",
                            nargs="?", const=True)
    stop_check_steps: int = _arg(
        10, "Several processes: agree on a stop signal (SIGTERM/SIGINT) every N steps and at each epoch's end."
    )
    lora_r: int | None = _arg(None, "previt: fine-tune LoRA adapters of this rank (and the new head) instead of every "
                              "weight; needs peft (pip install -e \".[lora]\").")
    lora_alpha: float | None = _arg(None, "LoRA scaling alpha (default: the rank, i.e. scale 1).")
    lora_dropout: float = _arg(0.0, "Dropout on the LoRA branch.")
    lora_target_modules: list[str] | None = _arg(
        None, "Layers (by last name) that get LoRA adapters (default: the attention's query and value projections: "
        "query/value or q_proj/v_proj in Transformers' ViT/DeiT, the fused qkv in timm's ViTs).", nargs="+")
    push_adapter: str | None = _arg(None, "LoRA runs: push only the adapter (a few MB, with a card naming the base "
                                    "checkpoint) to this Hub repo id.")
    ema_decay: float | None = _arg(None, "Keep an exponential moving average of the weights with this decay (e.g. "
                                   "0.999); evaluation and the saved model use it.")
    early_stopping_patience: int | None = _arg(None, "Stop after N epochs without a better validation accuracy.")
    image_column: str | None = _arg(None, "Image column (default: img, image, or the only Image column).",
                                    ["--image_column_name"])
    label_column: str | None = _arg(
        None, "Label column (default: label, labels, fine_label, or the only ClassLabel column); "
        "CIFAR-100: fine_label (100 classes) or coarse_label (20).", ["--label_column_name"])
    image_size: int | None = _arg(None, "Store (and train on) NxN images, resized bilinearly on decode "
                                  "(default: the dataset's own size).")
    image_mean: list[float] | None = _arg(None, "Per-channel mean to normalise with (default: the training split's; "
                                          "previt: the checkpoint's).")
    image_std: list[float] | None = _arg(None, "Per-channel std to normalise with (give with --image-mean).")

    def validate(self) -> None:
        positive_int = {"-e/--epoch": self.epoch, "-b/--batch-size": self.batch_size, "--folds": self.folds,
                        "--val-size": self.val_size, "--max-train-samples": self.max_train_samples,
                        "--max-eval-samples": self.max_eval_samples, "--repeat": self.repeat,
                        "--stop-check-steps": self.stop_check_steps,
                        "--image-size": self.image_size}
        for flag, value in positive_int.items():
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1 (got {value})")
        if self.folds < 2:
            raise UsageError(f"--folds must be at least 2 (got {self.folds})")
        if self.fold is not None and not (self.cross_validate and 1 <= self.fold <= self.folds):
            raise UsageError(f"--fold {self.fold}: give it with -c/--cross-validate, from 1 to --folds ({self.folds})")
        if self.overwrite and self.resume:
            raise UsageError("--overwrite and --resume do not combine: --overwrite starts a new run in the folder, "
                             "--resume continues the one there; give one")
        if self.repeat > 1 and self.cross_validate:
            raise UsageError("--repeat and -c/--cross-validate do not combine: each already trains several seeds")
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UsageError(f"-l/--learning-rate must be a finite number above 0 (got {self.learning_rate})")
        if (self.image_mean is None) != (self.image_std is None):
            raise UsageError("--image-mean and --image-std go together: give both or neither")
        if self.image_mean is not None:
            if len(self.image_mean) != 3 or len(self.image_std) != 3:
                raise UsageError("--image-mean and --image-std take 3 values each (R G B)")
            scale = "pixels on the [0, 1] scale: from 0-255 statistics, divide by 255"
            if not all(0 <= value <= 1 for value in self.image_mean):  # also refuses nan and inf
                raise UsageError(f"--image-mean {' '.join(map(str, self.image_mean))}: give means in [0, 1] ({scale})")
            if not all(0 < value <= 1 for value in self.image_std):
                raise UsageError(f"--image-std {' '.join(map(str, self.image_std))}: give stds in (0, 1] ({scale})")
        self.validate_seed()
        if self.ckpt_frequency < 0:
            raise UsageError(f"-f/--ckpt-frequency must be 0 or more (got {self.ckpt_frequency})")
        if self.lora_r is not None and self.model != "previt":
            raise UsageError("--lora-r adapts a pretrained checkpoint: use it with -m previt (scratch models train "
                             "every weight from random initialisation, where low-rank updates do not make sense)")
        if self.lora_r is not None and self.lora_r < 1:
            raise UsageError(f"--lora-r must be at least 1 (got {self.lora_r})")
        if self.lora_r is None and (self.push_adapter or self.lora_target_modules):
            raise UsageError("--push-adapter and --lora-target-modules need --lora-r")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UsageError(f"--lora-dropout must be in [0, 1) (got {self.lora_dropout})")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise UsageError(f"--ema-decay must be between 0 and 1, e.g. 0.999 (got {self.ema_decay})")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise UsageError(f"--early-stopping-patience must be at least 1 (got {self.early_stopping_patience})")
        self.check_model_flags()
        if (self.model, self.recipe) not in RECIPES:
            names = sorted(r for m, r in RECIPES if m == self.model)
            raise UsageError(
                f"--recipe {self.recipe!r} does not exist for {self.model} (choose from {', '.join(names)})"
            )
        if self.device in ("cuda", "mps"):
            import torch

            available = torch.cuda.is_available() if self.device == "cuda" else torch.backends.mps.is_available()
            if not available:
                raise UsageError(f"-d/--device {self.device}: no such device on this machine (try -d auto or -d cpu)")

    def check_model_flags(self) -> None:
        """A flag of another model (a forgotten `-m previt`) would train a model other than the one meant: one line."""
        if self.model is None:  # asked for later; ask_interactively checks again
            return
        defaults = {spec.name: spec.default for spec in dataclasses.fields(self)}
        for name, model in MODEL_SPECIFIC_ARGUMENTS.items():
            if model != self.model and getattr(self, name) != defaults[name]:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} is a -m {model} flag, but this run is -m {self.model}: add -m {model}, or "
                                 f"leave {flag} out")

    def validate_seed(self, runs: int | None = None, runs_flag: str = "") -> None:
        """--seed and the seeds derived from it (seed..seed+runs-1) must be seeds numpy and torch accept."""
        if runs is None:
            runs, runs_flag = (self.folds, f"--folds {self.folds}") if self.cross_validate else (
                self.repeat, f"--repeat {self.repeat}")
        if not 0 <= self.seed < SEED_LIMIT:
            raise UsageError(f"--seed must be from 0 to {SEED_LIMIT - 1} (got {self.seed})")
        if self.seed + runs - 1 >= SEED_LIMIT:
            raise UsageError(f"--seed {self.seed} with {runs_flag} reaches seed {self.seed + runs - 1}, past "
                             f"{SEED_LIMIT - 1}: give a --seed of at most {SEED_LIMIT - runs}")

    def check_subset_sizes(self, num_classes: int) -> None:
        """A stratified subset needs an image of every class; known once the dataset is loaded."""
        held_out = None if self.cross_validate else self.val_size  # -c validates on its folds instead
        for flag, size in (("--max-train-samples", self.max_train_samples),
                           ("--max-eval-samples", self.max_eval_samples), ("--val-size", held_out)):
            if size is not None and size < num_classes:
                raise UsageError(f"{flag} {size} is fewer than the dataset's {num_classes} classes: give at least "
                                 f"{num_classes} (one image per class)")


# Where a run is written and how its folder is treated: not part of what the run is.
RUN_FOLDER_FIELDS = ("save_folder", "overwrite", "resume")


def command_line(args: RunArguments, training_flags: dict) -> str:
    """The `run_classification.py` command that trains this run again: every flag that differs from its default
    (the answers of the interactive questions included), without the run-folder handling."""
    parts = ["run_classification.py"]
    for spec in dataclasses.fields(RunArguments):
        value = getattr(args, spec.name)
        if spec.name in RUN_FOLDER_FIELDS or value == spec.default:
            continue
        flag = "--" + spec.name.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else [flag, "false"]
        else:
            parts += [flag, *map(str, value if isinstance(value, list) else [value])]
    for name, value in training_flags.items():
        parts += [f"--{name}", *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(parts)


def run_folder(args: RunArguments) -> Path:
    suffix = "-cv" if args.cross_validate else "-repeat" if args.repeat > 1 else ""
    return Path(args.save_folder) / f"cifar-{args.model}{suffix}"


# Seed flag -> the TrainingArguments field that says the same thing.
EQUIVALENT_FLAGS = {
    "epoch": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
}
# TrainingArguments fields that the run sets from the seed's flags; give those instead.
RESERVED_FIELDS = {
    "output_dir": "-s/--save-folder",
    "use_cpu": "-d/--device",
    "save_strategy": "-f/--ckpt-frequency",
    "save_steps": "-f/--ckpt-frequency",
    "optim": "--recipe (each recipe names its optimizer, see docs/recipes.md)",
    "optim_args": "--recipe (each recipe names its optimizer, see docs/recipes.md)",
    "adam_beta1": "--recipe (each recipe sets its optimizer's settings, see docs/recipes.md)",
    "adam_beta2": "--recipe (each recipe sets its optimizer's settings, see docs/recipes.md)",
    "adam_epsilon": "--recipe (each recipe sets its optimizer's settings, see docs/recipes.md)",
    "resume_from_checkpoint": "--resume",
    "hub_token": "the HF_TOKEN environment variable or `hf auth login` (a token on the command line leaks)",
}


def program_name() -> str:
    """How training was called, for its usage line: `run_classification.py` or `cifar-hf train`."""
    script = Path(sys.argv[0]).name
    return script if script == "run_classification.py" else "cifar-hf train"


def _explicit_training_flags(argv: list[str]) -> dict:
    """Only the TrainingArguments fields that `argv` sets, parsed with their proper types."""
    from transformers import TrainingArguments

    parser = RunArgumentParser(TrainingArguments, prog=program_name())
    namespace, unknown = _given_only(parser).parse_known_args(argv)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
    return vars(namespace)


def _given_only(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser with no defaults: its namespace holds only the flags that the command line gives."""
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    return parser


def _check_training_values(training: dict) -> None:
    """Values that TrainingArguments accepts but a run cannot use; checked before any data is decoded."""
    for name, value in training.items():
        if name.endswith("batch_size") and not isinstance(value, bool) and value < 1:
            raise UsageError(f"--{name} must be at least 1 (got {value})")
    epochs = training.get("num_train_epochs")
    if epochs is not None and not (math.isfinite(epochs) and epochs >= 1 and float(epochs).is_integer()):
        raise UsageError(f"--num_train_epochs {epochs:g}: give a whole number of epochs, at least 1")
    data_seed = training.get("data_seed")
    if data_seed is not None and not 0 <= data_seed < SEED_LIMIT:
        raise UsageError(f"--data_seed must be from 0 to {SEED_LIMIT - 1} (got {data_seed})")


def _reports_to_wandb(report_to: str | list[str]) -> bool:
    targets = report_to if isinstance(report_to, list) else [report_to]
    return "wandb" in targets or ("all" in targets and importlib.util.find_spec("wandb") is not None)


def _merge_wandb_flags(args: RunArguments, training: dict, wandb_given: bool) -> None:
    """-w/--wandb and --report_to (one tracker on the command line) name one setting: they may not disagree."""
    if "report_to" not in training:
        return
    wanted = _reports_to_wandb(training["report_to"])
    if wandb_given and args.wandb != wanted:
        wandb = "-w/--wandb" if args.wandb else "-w/--wandb false"
        raise UsageError(f"{wandb} conflicts with --report_to {training['report_to']}: give one")
    args.wandb = wanted


NUMBER_KINDS = {int: "a whole number", float: "a number"}


def _prompt(question: str, default, cast, flag: str):
    """One answer, checked like its flag: a value that is not a number is a one-line UsageError naming the flag."""
    answer = input(f"{question} [{default}]: ").strip()
    if not answer:
        return default
    try:
        return cast(answer)
    except ValueError:
        raise UsageError(f"{flag}: {answer!r} is not {NUMBER_KINDS[cast]}") from None


class QuestionInterrupted(CifarError):
    """Ctrl-D, Ctrl-C or a stop signal while a question waits for its answer; `exit_code` as the shell reports it."""

    def __init__(self, exit_code: int):
        super().__init__("interrupted: give -m/--model (and -e, -b, -l) on the command line to skip the questions")
        self.exit_code = exit_code


def ask_interactively(args: RunArguments, check_model: Callable[[RunArguments], None] | None = None) -> None:
    """The seed's interactive start: ask for the model and the main options.

    `check_model` runs once the model is known (the run-folder check), so that a run that cannot start says so before
    the other questions. Each answer is validated as its flag would be, at once.
    """
    args.model = input(f"Model ({', '.join(MODEL_NAMES)}) [cnn]: ").strip() or "cnn"
    if args.model not in MODEL_NAMES:
        raise UsageError(f"-m/--model: unknown model {args.model!r} (choose from {', '.join(MODEL_NAMES)})")
    args.check_model_flags()
    if check_model is not None:
        check_model(args)
    recipe = RECIPES[args.model, args.recipe]
    # Only what the command line left open: a value given as a flag is the user's answer already.
    if args.epoch is None:
        args.epoch = _prompt("Epochs", recipe.epochs, int, "-e/--epoch")
        args.validate()
    if args.batch_size is None:
        args.batch_size = _prompt("Batch size", recipe.batch_size, int, "-b/--batch-size")
        args.validate()
    if args.learning_rate is None:
        args.learning_rate = _prompt("Learning rate", recipe.learning_rate, float, "-l/--learning-rate")


def _refuse_conflicting_spellings(argv: list[str], spellings: tuple[str, ...]) -> None:
    """`-l 1e-3 --learning_rate 0.5` names one setting twice; argparse would silently keep the last value."""
    values = {}
    for index, token in enumerate(argv):
        name, _, inline = token.partition("=")
        if name in spellings:
            value = inline or (argv[index + 1] if index + 1 < len(argv) else "")
            values.setdefault(value, name)
    if len(values) > 1:
        raise UsageError(" conflicts with ".join(f"{name} {value}" for value, name in values.items()) + ": give one")


def parse_arguments(
    argv: list[str] | None = None, check_model: Callable[[RunArguments], None] | None = None
) -> tuple[RunArguments, dict]:
    """(RunArguments, the TrainingArguments fields given on the command line); `check_model`: see ask_interactively."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _refuse_conflicting_spellings(argv, ("-l", "--learning_rate", "--learning-rate"))
    parser = RunArgumentParser(
        RunArguments,
        prog=program_name(),
        formatter_class=DefaultsHelpFormatter,
        description="Train an image classifier (CIFAR-10 by default) with the Hugging Face Trainer.",
        epilog="Any TrainingArguments flag is passed through too, e.g. --bf16, --dataloader_num_workers 2, "
        "--push_to_hub, --torch_compile.",
    )
    args, rest = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    given = vars(_given_only(parser).parse_known_args(argv)[0])
    training = _explicit_training_flags(rest)
    _check_training_values(training)

    for ours, theirs in EQUIVALENT_FLAGS.items():
        if theirs in training:
            value = training.pop(theirs)
            if getattr(args, ours) is not None and getattr(args, ours) != value:
                raise UsageError(
                    f"--{ours.replace('_', '-')} {getattr(args, ours)} conflicts with --{theirs} {value}: give one"
                )
            setattr(args, ours, int(value))
    _merge_wandb_flags(args, training, wandb_given="wandb" in given)
    for name, instead in RESERVED_FIELDS.items():
        if name in training:
            raise UsageError(f"--{name} is set by this script; use {instead}")

    if args.model is None:
        if not sys.stdin.isatty():
            raise UsageError(f"-m/--model is required (choose from {', '.join(MODEL_NAMES)})")
        try:
            ask_interactively(args, check_model)
        except (EOFError, KeyboardInterrupt, Preempted) as error:
            raise QuestionInterrupted(getattr(error, "exit_code", INTERRUPTED)) from None
    args.validate()
    return args, training
