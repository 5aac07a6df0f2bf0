"""Errors reported as a single line with a non-zero exit status, never as a traceback."""

import argparse
import re
import sys

INTERRUPTED = 130  # 128 + SIGINT: the exit status a shell reports for a Ctrl-C


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): what a one-line error quotes."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def print_error(error: "CifarError") -> int:
    """Print a command's one-line error and return its exit status."""
    print(f"error: {error}", file=sys.stderr)
    return error.exit_code


class CifarError(Exception):
    exit_code = 1


class InputError(CifarError):
    """Something the user gave (a flag, a dataset, an image, a file) is wrong; the message says what and where."""

    def __init__(self, message: str, flag: str | None = None):
        super().__init__(message)
        self.flag = flag  # the flag whose value is wrong, where a caller may have chosen that value for the user


class UsageError(InputError):
    """A bad command-line value; exits with status 2 like argparse."""

    exit_code = 2


class TrainingError(CifarError):
    """Training cannot go on (a non-finite loss); the message names the step and the last good checkpoint."""


class Preempted(CifarError):
    """SIGTERM or SIGINT: the run stopped; `kept` says what it left (a checkpoint to resume, a complete run folder)."""

    def __init__(self, message: str, signal_number: int, kept: str | None = None):
        super().__init__(message)
        self.exit_code = 128 + signal_number  # 143 for SIGTERM, 130 for SIGINT, as a shell reports them
        self.kept = kept  # "checkpoint": resumable; "run": the run folder is complete; None: nothing new was kept


class StorageError(CifarError):
    """A file could not be written (a full disk, no permission): the message names it; nothing half-written stays."""


class PushError(CifarError):
    """The run finished and its folder is complete and kept; only the Hub upload failed."""

    kept = "run"


class OneLineErrors:
    """Mixin for argparse parsers: a bad flag is one line and exit status 2, not the whole usage first."""

    def error(self, message: str):
        count = re.search(r"argument [-\w/]*--cross_validate[-\w/]*: Truthy value expected: got (\d+)", message)
        if count:  # `-c 5`, as `-c N` folds would read
            message = f"-c takes no number: give the folds with --folds {count.group(1)} (-c --folds {count.group(1)})"
        self.exit(2, f"{self.prog}: error: {message} (--help lists the flags)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends a flag's default only where its help does not state one and there is one worth showing."""

    def _get_help_string(self, action):
        if any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)) or (
                "default" in (action.help or "")):  # `is`: a default of 0 is worth showing, unlike False
            return action.help
        return super()._get_help_string(action)


class CommandParser(OneLineErrors, argparse.ArgumentParser):
    """The parser of every cifar-hf command: one-line errors, --help states each default once."""

    def __init__(self, *args, formatter_class=DefaultsHelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
