"""The run folder of one command: refused when in use, locked, the old run moved aside, then kept or put back."""

import os
from pathlib import Path

from ..errors import UsageError
from . import replaced_run
from .arguments import RunArguments, run_folder
from .distributed import is_main_process
from .folder_lock import LOCK_NAME, FolderLock


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
