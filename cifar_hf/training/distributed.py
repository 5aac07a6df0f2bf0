"""Process roles under `torchrun` / `accelerate launch`, readable before the Trainer sets up the process group."""

import os


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (or a plain run): the one process that deletes and writes shared files."""
    return int(os.environ.get("RANK", "0")) == 0
