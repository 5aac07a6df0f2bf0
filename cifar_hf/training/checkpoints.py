"""Crash-safe checkpoints.

The Trainer writes a checkpoint into `<run>/.staging/checkpoint-N`; then every file is flushed to disk, a
completion marker (which records every file's size) is written last, and the folder is renamed into the run folder
(an atomic step on one file system). A `checkpoint-*` folder without the marker is torn (a crash of some other
writer, a copy cut short): it is never resumed from, never counted for rotation, and is removed (and reported) when
a run resumes. A marked checkpoint whose files no longer match the recorded sizes (a file truncated later) is
skipped by `--resume auto` for the previous one.
"""

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from ..errors import InputError, UsageError
from ..files import fsync_directory, read_json

logger = logging.getLogger(__name__)

STAGING = ".staging"
MARKER = "checkpoint_complete.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_directory(folder)


def publish(staged: Path, final: Path, step: int) -> None:
    """Flush `staged`, mark it complete, and move it to `final` in one rename."""
    _fsync_tree(staged)
    sizes = {str(p.relative_to(staged)): p.stat().st_size for p in sorted(staged.rglob("*")) if p.is_file()}
    marker = staged / MARKER
    marker.write_text(json.dumps({"global_step": step, "written_at": time.time(), "file_sizes": sizes}) + "\n")
    with open(marker, "rb") as handle:
        os.fsync(handle.fileno())
    if final.exists():  # a torn leftover with the same step
        shutil.rmtree(final)
    os.replace(staged, final)
    fsync_directory(final.parent)  # the rename itself


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def damage(folder: Path) -> str | None:
    """Why a marked checkpoint cannot be trusted (a file missing or of another size than recorded), else None."""
    try:
        recorded = json.loads((Path(folder) / MARKER).read_text()).get("file_sizes", {})
    except (OSError, ValueError) as error:
        return f"unreadable {MARKER} ({error})"
    for name, size in recorded.items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    return None


def checkpoints(run_folder: Path) -> list[Path]:
    """All `checkpoint-N` folders, oldest step first."""
    found = [p for p in Path(run_folder).glob("checkpoint-*") if p.is_dir() and CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT.match(p.name).group(1)))


def complete_checkpoints(run_folder: Path) -> list[Path]:
    return [p for p in checkpoints(run_folder) if is_complete(p)]


def remove_incomplete(run_folder: Path) -> list[Path]:
    """Delete torn checkpoints and leftover staging folders; returns what was removed."""
    removed = [p for p in checkpoints(run_folder) if not is_complete(p)]
    staging = Path(run_folder) / STAGING
    if staging.exists() and any(staging.iterdir()):
        removed.append(staging)
    elif staging.exists():  # the empty folder a stop leaves between two checkpoints: nothing to report
        staging.rmdir()
    for path in removed:
        shutil.rmtree(path)
        logger.warning("removed incomplete checkpoint %s", path)
    return removed


def rotate(run_folder: Path, keep: int | None, protect: str | None = None) -> None:
    """Keep the newest `keep` complete checkpoints (`save_total_limit`); the newest complete one always stays, and
    so does `protect` (the best checkpoint of `--load_best_model_at_end`)."""
    if not keep:
        return
    for old in complete_checkpoints(run_folder)[: -max(keep, 1)]:
        if protect is None or old.resolve() != Path(protect).resolve():
            shutil.rmtree(old)


def load_model_weights(model, folder: Path) -> None:
    """A checkpoint's weights into `model`, through from_pretrained (the saved names may be the legacy ones)."""
    saved_type = read_json(Path(folder) / "config.json").get("model_type")
    if saved_type != model.config.model_type:  # another model's checkpoint: its config would not even build
        raise InputError(f"--resume: {folder} does not fit this model (a {saved_type} checkpoint, the model is "
                         f"{model.config.model_type})")
    saved = type(model).from_pretrained(str(folder), dtype=next(model.parameters()).dtype)
    model.load_state_dict(saved.state_dict(), strict=True)


def load_adapter_weights(model, folder: Path) -> None:
    """A checkpoint's LoRA weights (and trained head) into a peft model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(str(Path(folder) / "adapter_model.safetensors")))
    if result.unexpected_keys:
        raise UsageError(f"--resume {folder}: its adapter does not fit this model ({result.unexpected_keys[0]}, ...)")


def resolve_resume(run_folder: Path, resume: str) -> str:
    """The checkpoint that `--resume auto|PATH` continues from."""
    if resume == "auto":
        remove_incomplete(run_folder)
        complete = complete_checkpoints(run_folder)
        if not complete:
            raise UsageError(f"--resume auto: no complete checkpoint in {run_folder} (save them with -f N)")
        for candidate in reversed(complete):
            problem = damage(candidate)
            if problem is None:
                return str(candidate)
            logger.warning("skipping damaged checkpoint %s: %s", candidate, problem)
        raise UsageError(f"--resume auto: every checkpoint in {run_folder} is damaged; start again with --overwrite")
    path = check_resume_path(resume)
    problem = damage(path)
    if problem is not None:
        raise UsageError(f"--resume {resume}: damaged checkpoint: {problem}")
    return str(path)


def check_resume_path(resume: str) -> Path:
    """`--resume PATH` names a complete checkpoint folder, or one line says what it names instead."""
    path = Path(resume)
    if path.is_dir() and is_complete(path):
        return path
    if path.is_dir():
        raise UsageError(f"--resume {resume}: not a complete checkpoint folder (no {MARKER})")
    present = [p.name for p in complete_checkpoints(path.parent)] if path.parent.is_dir() else []
    where = f" ({path.parent} holds {', '.join(present)}; or give --resume auto)" if present else ""
    raise UsageError(f"--resume {resume}: {'a file, not a' if path.exists() else 'no such'} checkpoint folder{where}")


def check_loss_scaler(checkpoint: str, scaler) -> None:
    """An fp16 run's checkpoint holds its loss scaler (scaler.pt); a run without fp16 has no scaler to restore it
    into (the Trainer would fail deep inside its resume)."""
    if scaler is None and (Path(checkpoint) / "scaler.pt").is_file():
        raise UsageError(f"--resume: {checkpoint} was saved by an fp16 run (it holds scaler.pt) and this run does not "
                         "train in fp16: resume it where --fp16 applies (a CUDA GPU)")


class StagedCheckpoints:
    """Trainer mixin: each checkpoint is written into `<run>/.staging/`, then published whole (`publish`) and the
    old ones rotated (`rotate`), so a run killed mid-save always resumes from a complete checkpoint.

    Private overrides (transformers may change them without notice): the Trainer writes checkpoints in place and
    has no public hook around the write; tests/test_reliability.py kills runs mid-save to hold this to account.
    """

    _staging = False

    def write_checkpoint_extras(self, staged: Path) -> None:
        """Files of the subclass's own, written into the staged checkpoint before it is published."""

    def _get_output_dir(self, trial) -> str:
        if self._staging:
            return str(Path(self.args.output_dir) / STAGING)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
            self.write_checkpoint_extras(Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}")
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.is_world_process_zero():
            run = Path(self.args.output_dir)
            name = f"checkpoint-{self.state.global_step}"
            publish(run / STAGING / name, run / name, self.state.global_step)
            rotate(run, self.args.save_total_limit, protect=self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()
