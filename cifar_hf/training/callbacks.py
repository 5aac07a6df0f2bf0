"""Trainer callbacks: checkpoints every N epochs, and the full hyperparameters in the wandb run."""

from transformers import TrainerCallback


class SaveEveryNEpochs(TrainerCallback):
    """`-f N`: a resumable Trainer checkpoint at the end of every N-th epoch."""

    def __init__(self, every: int):
        self.every = every

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.every and round(state.epoch) % self.every == 0:
            control.should_save = True


class WandbRunConfig(TrainerCallback):
    """Adds this project's hyperparameters (recipe, flags, data split) to the wandb run the WandbCallback opened."""

    def __init__(self, hyperparameters: dict):
        self.hyperparameters = hyperparameters

    def on_train_begin(self, args, state, control, **kwargs):
        import wandb

        if state.is_world_process_zero and wandb.run is not None:
            wandb.config.update({"cifar_hf": self.hyperparameters}, allow_val_change=True)
