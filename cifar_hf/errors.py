"""The one exception type for bad user input: reported as a single line, never as a traceback."""


class InputError(Exception):
    """Something the user gave (a flag, a dataset, an image, a file) is wrong; the message says what and where."""

    exit_code = 1


class UsageError(InputError):
    """A bad command-line value; exits with status 2 like argparse."""

    exit_code = 2
