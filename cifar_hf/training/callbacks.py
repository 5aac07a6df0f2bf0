"""Trainer callbacks: a checkpoint every N epochs (`-f`), a clean stop on SIGTERM / SIGINT, early stopping that
resumes."""

import signal

from transformers import EarlyStoppingCallback, TrainerCallback


class SaveEveryNEpochs(TrainerCallback):
    """`-f N`: a resumable Trainer checkpoint at the end of every N-th epoch."""

    def __init__(self, every: int):
        self.every = every

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = round(state.epoch)
        # An epoch cut short (a stop signal) ends with a fractional epoch: no checkpoint for it here.
        if self.every and abs(state.epoch - epoch) < 1e-6 and epoch % self.every == 0:
            control.should_save = True


class StopOnSignal(TrainerCallback):
    """SIGTERM / SIGINT: finish the current step, write a complete checkpoint, stop; `stopped_by` says which.

    Under a multi-process launch every process stops at the same step, whichever of them got the signal (a cluster
    signals its tasks one by one, or only some): the processes agree every `check_every` steps and at each epoch's
    end, through one all-reduce of the signal number, so the agreement costs no host sync on the other steps.
    The handlers stay until `restore()`: a signal during the final evaluation or while the run folder is written
    lets the run finish that folder first.
    A second signal of the same kind is not caught again, so a second Ctrl-C still stops at once.
    """

    def __init__(self, check_every: int = 10):
        self.check_every = check_every
        self.signal_number = None  # the signal this process received
        self.stopped_by = None  # the signal every process stopped for
        self._previous = {}

    def _handle(self, number, frame):
        self.signal_number = number
        signal.signal(number, self._previous.get(number, signal.SIG_DFL))

    def on_train_begin(self, args, state, control, **kwargs):
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)

    def _agreed_signal(self, args, state) -> int | None:
        if args.world_size == 1:
            return self.signal_number
        epoch_end = abs(state.epoch - round(state.epoch)) < 1e-6
        if state.global_step % self.check_every and not epoch_end and state.global_step < state.max_steps:
            return None  # every process skips the same steps: global_step is the same everywhere
        import torch
        import torch.distributed as dist

        number = torch.tensor([self.signal_number or 0], device=args.device)
        dist.all_reduce(number, op=dist.ReduceOp.MAX)  # SIGTERM (15) wins over SIGINT (2)
        return int(number.item()) or None

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_by is None:
            self.stopped_by = self._agreed_signal(args, state)
        if self.stopped_by is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        cut_short = abs(state.epoch - round(state.epoch)) > 1e-6
        if self.stopped_by is not None and cut_short:  # no evaluation, log or second checkpoint mid-epoch
            control.should_evaluate = control.should_log = control.should_save = False
        elif self.stopped_by is not None:  # a finished epoch is evaluated as usual, then checkpointed again
            control.should_save = True

    def restore(self) -> None:
        """Called by the run once its folder is written: signals after training still wait for that."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class EarlyStopping(EarlyStoppingCallback):
    """`--early-stopping-patience N`: the Trainer's early stopping, whose count of evaluations without improvement
    survives `--resume` (the Trainer restores it only under restore_callback_states_from_checkpoint, which would
    also replace its TrainerControl), so a resumed run stops where the uninterrupted one does."""

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        saved = state.stateful_callbacks.get(type(self).__name__) or state.stateful_callbacks.get(
            "EarlyStoppingCallback")  # the checkpoint's count (0 on a fresh run); the second name: older checkpoints
        if isinstance(saved, dict):
            self.early_stopping_patience_counter = saved.get("attributes", {}).get(
                "early_stopping_patience_counter", 0)
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())  # the Trainer's save updates it
