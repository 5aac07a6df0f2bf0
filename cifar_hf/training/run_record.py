"""The flags that define a run, recorded in each of its checkpoints and beside its results.json (`run_flags.json`).

`--resume` continues a run as it was started, so a resume whose defining flags differ from the record is refused
with one line before any data is decoded: it would otherwise train a mix of two runs and record only the new flags.
Checkpoints and runs written before this record existed are resumed unchecked.
"""

import dataclasses
import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..files import read_json
from . import checkpoints
from .arguments import MODEL_SPECIFIC_ARGUMENTS, PATH_ARGUMENTS, RunArguments
from .distributed import is_main_process

RECORD = "run_flags.json"
SPLIT_RECORD = "split.json"  # in a --repeat folder: the --seed that drew the one split every seed folder trained on

# Where and how a run is written, reported or organised, none of which changes its trained weights. -d/--device too:
# a run preempted on one machine may continue on another, only floating-point rounding differs there.
# --tta and the speed and process-group settings (compilation, activation checkpointing, TF32, DDP) change how a
# run computes or reports, not what it trains toward.
NOT_DEFINING_ARGUMENTS = {"save_folder", "overwrite", "resume", "ckpt_frequency", "wandb", "device",
                          "stop_check_steps", "push_adapter", "cross_validate", "fold", "repeat", "tta"}
NOT_DEFINING_TRAINING_FLAGS = {"report_to", "run_name", "push_to_hub", "disable_tqdm", "save_total_limit",
                               "per_device_eval_batch_size", "eval_accumulation_steps", "tf32", "skip_memory_metrics"}
NOT_DEFINING_PREFIXES = ("hub_", "logging_", "log_", "dataloader_", "ddp_", "torch_compile", "gradient_checkpointing")
SHORT_FLAGS = {"model": "-m", "learning_rate": "-l", "batch_size": "-b", "epoch": "-e"}
# The number of processes: -b is per process, so another count trains another global batch and epoch length.
PROCESSES = "--num_processes"
RECORDED_SINCE = {PROCESSES}  # compared only with a record that holds them: older records resume as before
# One process over several GPUs (the Trainer's DataParallel, what `python run_classification.py` does on a machine
# with several GPUs): -b is per GPU too. Recorded only then, so a one-GPU record lacks it and still compares equal.
DATA_PARALLEL_GPUS = "GPUs per process"


def flag_name(field: str) -> str:
    return SHORT_FLAGS.get(field) or "--" + field.replace("_", "-")


def _plain(value):
    """The value as it reads back from JSON (tuples become lists), so a record compares equal to its own run."""
    return json.loads(json.dumps(value, default=str))


def defining_flags(args: RunArguments, training_args, training_flags: dict) -> dict:
    """flag -> value for every flag that changes what the run trains; -l and -b as they resolved (recipe or given)."""
    flags = {flag_name(spec.name): getattr(args, spec.name) for spec in dataclasses.fields(RunArguments)
             if spec.name not in NOT_DEFINING_ARGUMENTS}
    flags.update({"-e": training_args.num_train_epochs, "-l": training_args.learning_rate,
                  "-b": training_args.per_device_train_batch_size, PROCESSES: training_args.world_size})
    if getattr(training_args, "n_gpu", 0) > 1:
        flags[DATA_PARALLEL_GPUS] = training_args.n_gpu
    for field in PATH_ARGUMENTS:  # a local folder, however it is spelled (relative, a link)
        if getattr(args, field) and Path(getattr(args, field)).exists():
            flags[flag_name(field)] = str(Path(getattr(args, field)).resolve())
    for field, model in MODEL_SPECIFIC_ARGUMENTS.items():  # a cnn run has no base checkpoint, ViT stem or LoRA
        if args.model != model:
            flags.pop(flag_name(field), None)
    for name, value in training_flags.items():
        if name not in NOT_DEFINING_TRAINING_FLAGS and not name.startswith(NOT_DEFINING_PREFIXES):
            flags[f"--{name}"] = value
    return _plain(flags)


# TrainingArguments flags that name a file or folder; --local_rank differs on every process by design.
PATH_TRAINING_FLAGS = ("deepspeed", "fsdp_config", "accelerator_config")
PER_PROCESS_FLAGS = ("local_rank",)


def launch_flags(args: RunArguments, training_flags: dict) -> dict:
    """Every flag of the command, which every process of one launch must share: local folders and files by their
    name (another machine may mount them elsewhere), without -s (whether every machine sees it is checked on its own)
    and what differs per process."""
    from ..hub import portable_flags, portable_name

    flags = portable_flags({flag_name(k): v for k, v in dataclasses.asdict(args).items() if k != "save_folder"})
    if args.resume not in (None, "auto"):  # a checkpoint, by its name: rank 0's copy is the one every process loads
        flags[flag_name("resume")] = Path(args.resume).name
    for name, value in training_flags.items():
        if name not in PER_PROCESS_FLAGS:
            portable = name in PATH_TRAINING_FLAGS and isinstance(value, str) and not value.lstrip().startswith("{")
            flags[f"--{name}"] = portable_name(value) if portable else value
    return _plain(flags)


def resumed_from(run_folder: Path, resume: str) -> Path | None:
    """What `--resume` continues, found without changing anything: the finished run itself (its results.json), else
    the checkpoint that resolve_resume will pick; None when there is none (resolve_resume then says why)."""
    if resume != "auto":
        return Path(resume) if checkpoints.is_complete(Path(resume)) else None
    if (Path(run_folder) / "results.json").is_file():
        return Path(run_folder)
    return next((c for c in reversed(checkpoints.complete_checkpoints(run_folder)) if checkpoints.damage(c) is None),
                None)


def trained_epochs(source: Path) -> float | None:
    """Epochs the run had trained when `source` (a finished run folder or a checkpoint) was written."""
    recovery = "move it away, or start a new run with --overwrite"
    if (source / "results.json").is_file():
        return read_json(source / "results.json", recovery).get("epochs")
    if (source / "trainer_state.json").is_file():
        return read_json(source / "trainer_state.json", recovery).get("epoch")
    return None


def shown(value) -> str:
    """A flag's value as a command line spells it."""
    if value is None:
        return "unset"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _fewer_epochs(epochs: float, planned: float | None, source: Path) -> str | None:
    """Why -e is too few for `source`, else None."""
    if planned is not None and epochs < planned:
        return f"-e {epochs:g} is below the run's own -e {planned:g} (a resume may only add epochs)"
    done = trained_epochs(source) if planned is None else None  # a checkpoint or run written before the record
    if done is not None and epochs < done - 1e-6:
        return f"-e {epochs:g} is below the {done:g} epochs the run being resumed has trained"
    return None


def differences(recorded: dict, flags: dict, what: str, ignore: tuple = ()) -> list[str]:
    """'<flag> <value> differs from <what> (<recorded value>)' for each flag given or recorded, but not both alike;
    nothing without a record."""
    if not recorded:
        return []
    names = [*flags, *(flag for flag in recorded if flag not in flags)]
    ignore = (*ignore, *(flag for flag in RECORDED_SINCE if flag not in recorded))
    return [f"{flag} {shown(flags.get(flag))} differs from {what} ({shown(recorded.get(flag))})"
            for flag in names if flag not in ignore and recorded.get(flag) != flags.get(flag)]


def _with_launch_hint(problem: str, recorded: dict) -> str:
    """A device-count difference says how to launch the resume on the run's own count."""
    if problem.startswith(PROCESSES):
        return f"{problem}: launch it on {recorded[PROCESSES]} (-b is per process)"
    if problem.startswith(DATA_PARALLEL_GPUS):
        gpus = recorded.get(DATA_PARALLEL_GPUS, 1)
        return f"{problem}: give each process {gpus} GPU{'s' * (gpus != 1)} (CUDA_VISIBLE_DEVICES; -b is per GPU)"
    return problem


def check_resume(source: Path, flags: dict, max_steps: int, trains: bool = True) -> None:
    """Refuse, in one line, a resume of `source` whose defining flags differ from its record. -e may grow (a finished
    run continues to more epochs) but never shrink: the Trainer would stop at once, or cut the planned schedule short,
    and record the fewer epochs. Without a record, -e is still checked against the epochs already trained.
    `trains` False: a finished run that is only pushed, which any number of processes may do."""
    record = source / RECORD
    recorded = read_json(record, "move it away to resume unchecked") if record.is_file() else {}
    devices = (PROCESSES, DATA_PARALLEL_GPUS)
    problems = differences(recorded, flags, "the run being resumed", ignore=("-e",) if trains else ("-e", *devices))
    problems = [_with_launch_hint(problem, recorded) for problem in problems]
    shrunk = _fewer_epochs(flags["-e"], recorded.get("-e"), source)
    if shrunk and max_steps <= 0:  # with --max_steps (compared above), -e does not set the run's length
        problems.insert(0, shrunk)
    if problems:
        raise UsageError(f"--resume: {', '.join(problems)}; resume with the run's own flags, or start a new run "
                         "with --overwrite")
    planned = recorded.get("-e")
    if trains and planned is not None and flags["-e"] > planned and max_steps <= 0 and is_main_process():
        print(f"note: -e {flags['-e']:g} extends a run planned for {planned:g} epochs; a learning-rate schedule that "
              f"decays over the planned steps (linear, cosine) jumps back up where it resumes (start a new run for "
              f"one schedule over {flags['-e']:g})", file=sys.stderr)
