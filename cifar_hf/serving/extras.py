"""Optional dependencies: a missing one is reported as one line naming the pip command that installs it."""

import importlib

from ..errors import InputError


def require(module: str, extra: str):
    """Import `module`, or raise an InputError naming the `[extra]` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"{module} is not installed; it comes with the '{extra}' extra: pip install -e \".[{extra}]\""
        ) from None
