"""Exclusive `fcntl.flock` locks: one live run per run folder (`<run>/.run.lock`, held until the run ends), and
`exclusive` for shorter sections (one job per cross-validation fold, one writer of the folds' report).

The kernel drops a flock when its holder dies (even by kill -9), so a lock left by a dead process never blocks; the
run lock's contents (pid, host, start time) only name the holder in messages.
"""

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from ..errors import UsageError

logger = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"


@contextlib.contextmanager
def exclusive(lock_file: Path, busy_message: str | None = None):
    """Hold an exclusive lock on `lock_file` for the block: with `busy_message`, a held lock is that one-line
    UsageError at once; without, the block waits its turn."""
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy_message else 0))
        except BlockingIOError:
            raise UsageError(busy_message) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {started}"


class FolderLock:
    """Held by the one process that writes a run folder (rank 0 of a distributed launch)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._handle = None

    def acquire(self) -> "FolderLock":
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise UsageError(f"run folder {self.path.parent} is in use by a live run ({_describe(holder)}); "
                             "wait for it to finish or use -s/--save-folder to write elsewhere") from None
        previous = _holder(handle)
        if previous:  # its holder died without cleaning up: the kernel released the flock
            logger.warning("taking over the stale lock of %s in %s", _describe(previous), self.path.parent)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        """Empty the file (the run ended cleanly: no stale-lock warning next time), then unlock."""
        if self._handle is None:
            return
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.flush()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
