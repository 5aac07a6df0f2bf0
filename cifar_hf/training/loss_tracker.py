"""The training loss, summed on the device: epoch and run losses that survive a resume, and the first non-finite one.

Reading a loss every step would stall the GPU's queue once per step, so the sums stay on the device and are read
only where the Trainer logs, evaluates or saves. They live here (and in every checkpoint) rather than in the
Trainer's loop variables, so that a resumed run logs the same epoch loss as an uninterrupted one.
"""

import torch


class LossTracker:
    def __init__(self):
        self.micro_steps = 0  # since the last log
        self.steps = 0  # optimizer steps since the last log (fewer micro-steps in an epoch's last one); None: unknown
        self._last_step = None
        self._since_log = self._run = None  # float64 device tensors, made at first use
        self._restored = (0.0, 0.0)  # (since the last log, whole run) from a resumed checkpoint
        self._first_bad = None  # (global step, loss) of the first non-finite loss, as device tensors

    def _ready(self, device) -> None:
        if self._since_log is None:
            since_log, run = self._restored
            self._since_log = torch.tensor(since_log, dtype=torch.float64, device=device)
            self._run = torch.tensor(run, dtype=torch.float64, device=device)
            self._first_bad = (torch.tensor(-1, device=device), torch.tensor(0.0, device=device))

    def add(self, loss: torch.Tensor, global_step: int) -> None:
        """A micro-step's loss; the first non-finite one is noted with its (1-based) step, without a host sync."""
        self._ready(loss.device)
        self._since_log += loss
        self._run += loss
        self.micro_steps += 1
        if global_step != self._last_step:  # the micro-steps of one optimizer step share its global_step
            self._last_step = global_step
            if self.steps is not None:
                self.steps += 1
        step, value = self._first_bad
        newly_bad = ~torch.isfinite(loss) & (step < 0)
        self._first_bad = (torch.where(newly_bad, global_step + 1, step), torch.where(newly_bad, loss.float(), value))

    def first_non_finite(self, accelerator) -> tuple[int, float] | None:
        """(step, loss) of the earliest non-finite loss on any process, or None (a collective: every process calls)."""
        self._ready(accelerator.device)
        found = accelerator.gather(torch.stack([t.double() for t in self._first_bad]).view(1, 2))
        bad = [(int(step), value) for step, value in found.tolist() if step >= 0]
        return min(bad) if bad else None

    def epoch_loss(self, accelerator, gradient_accumulation_steps: int) -> float:
        """Mean loss per optimizer step since the last log, over every process; restarts the sum."""
        self._ready(accelerator.device)
        total = accelerator.reduce(self._since_log.clone(), reduction="mean")
        steps = self.steps if self.steps is not None else self.micro_steps / gradient_accumulation_steps
        self._since_log.zero_()
        self.micro_steps = self.steps = 0
        return total.item() / steps

    def run_loss(self, accelerator, global_step: int) -> float:
        """Mean loss per optimizer step over the whole run, resumed parts included."""
        self._ready(accelerator.device)
        return accelerator.reduce(self._run.clone(), reduction="mean").item() / global_step

    def state_dict(self) -> dict:
        if self._since_log is None:  # no step in this session yet
            since_log, run = self._restored
        else:
            since_log, run = float(self._since_log), float(self._run)
        return {"sum": since_log, "micro_steps": self.micro_steps, "steps": self.steps, "run_sum": run}

    def load_state_dict(self, state: dict) -> None:
        self._restored = (state["sum"], state["run_sum"])
        self.micro_steps = state["micro_steps"]
        self.steps = state.get("steps")  # None in a checkpoint written before it was counted
