"""Trainer callbacks and reporting hooks: checkpoints every N epochs, the wandb run."""

import os

from transformers import TrainerCallback


class SaveEveryNEpochs(TrainerCallback):
    """`-f N`: a resumable Trainer checkpoint at the end of every N-th epoch."""

    def __init__(self, every: int):
        self.every = every

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.every and round(state.epoch) % self.every == 0:
            control.should_save = True


def start_wandb_run(output_dir, run_name: str, hyperparameters: dict) -> None:
    """Open this run's wandb run before the Trainer's WandbCallback does, which then reuses it.

    Opening it here puts its files in the run folder (wandb caches its settings per process, so WANDB_DIR alone
    would send every fold of a cross-validation to the first fold's folder), puts the project's hyperparameters in
    its config, and joins the group named by WANDB_RUN_GROUP (cross-validation). Project: WANDB_PROJECT, else 'cifar'.
    """
    import wandb

    wandb.init(
        project=os.environ.get("WANDB_PROJECT", "cifar"),
        name=run_name,
        group=os.environ.get("WANDB_RUN_GROUP"),
        dir=os.environ.get("WANDB_DIR") or str(output_dir),
        config={"cifar_hf": hyperparameters},
        reinit="finish_previous",
    )
