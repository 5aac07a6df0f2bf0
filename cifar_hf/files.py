"""Atomic file writes: a reader sees the previous file or the complete new one, never a truncated one. Also the
one rule for names that become files or folders (`file_name_part`, `is_plain_name`).

Each write goes to a temporary file in the same folder, is flushed to disk, then renamed over the target (one
atomic step on one file system). An OS error (ENOSPC, EACCES, ...) removes the temporary file and becomes a
`StorageError` naming the path.
"""

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError, StorageError

NOT_IN_FILE_NAMES = re.compile(r"[^\w.-]+")  # separators, spaces, :*?"<>| ...: not portable inside a name
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}


def file_name_part(text: str, replacement: str = "_") -> str:
    """`text` usable inside a file name on every system: each run of other characters becomes `replacement`."""
    return NOT_IN_FILE_NAMES.sub(replacement, text)


def is_plain_name(name: str) -> bool:
    """Whether `name` can be a file or folder name as it is, on every system."""
    return (bool(name) and file_name_part(name) == name and not name.endswith(".") and name != "."
            and name.split(".")[0].upper() not in WINDOWS_DEVICES)


def fsync_directory(folder: Path) -> None:
    """Make the folder's entries (new files, a rename into it) durable."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path to write `path` through (for writers that take a path: savefig, np.save, ...)."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
        os.close(handle)
    except OSError as error:
        raise StorageError(f"cannot write {path}: {error.strerror or error}") from None
    temporary = Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results are ordinary files
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as error:
        raise StorageError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_json(path: Path | str, value, **kwargs) -> Path:
    return write_text(path, json.dumps(value, indent=2, **kwargs) + "\n")


def read_json(path: Path | str, recovery: str = "") -> dict:
    """A JSON object another run wrote; a damaged one (or one that is no object: `[]`, `null`) is one line naming it
    (and how to recover, when given)."""
    try:
        value = json.loads(Path(path).read_text())
        if not isinstance(value, dict):
            raise ValueError(f"not a JSON object but {type(value).__name__}")
        return value
    except (OSError, UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise InputError(f"cannot read {path}: {reason}" + (f"; {recovery}" if recovery else "")) from None
