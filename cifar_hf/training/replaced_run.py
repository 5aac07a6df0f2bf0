"""`--overwrite` without losing the old run: its files move into `<run>/.replaced/` (renames, nothing copied) and
are deleted only once the new run has finished; a failed new run is removed and the old files move back.

A `.replaced/` left by an overwrite that never finished (the process was killed) still holds the old run: the next
`--overwrite` keeps it as the run to restore and discards the unfinished replacement beside it.
"""

import logging
import os
import shutil
from pathlib import Path

from ..files import fsync_directory
from .folder_lock import LOCK_NAME

logger = logging.getLogger(__name__)

ASIDE = ".replaced"


def run_entries(folder: Path) -> list[Path]:
    """What belongs to the run in `folder`: everything but the lock and the replaced run."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name not in (LOCK_NAME, ASIDE)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def move_aside(folder: Path) -> Path | None:
    """Move the old run out of the way; returns where it went (None: there was nothing to replace)."""
    aside = folder / ASIDE
    if aside.is_dir():
        for entry in run_entries(folder):  # the unfinished replacement of an earlier --overwrite
            _remove(entry)
        return aside
    entries = run_entries(folder)
    if not entries:
        return None
    aside.mkdir()
    for entry in entries:
        os.replace(entry, aside / entry.name)
    fsync_directory(folder)
    return aside


def put_back(folder: Path) -> None:
    """The new run failed: remove what it wrote and restore the old run."""
    aside = folder / ASIDE
    for entry in run_entries(folder):
        _remove(entry)
    for entry in aside.iterdir():
        os.replace(entry, folder / entry.name)
    aside.rmdir()
    fsync_directory(folder)
    logger.warning("the new run failed: the previous run in %s is back in place", folder)


def discard(folder: Path) -> None:
    """The new run finished: now the old one can go."""
    aside = folder / ASIDE
    if aside.is_dir():
        shutil.rmtree(aside)
