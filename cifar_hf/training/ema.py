"""`--ema-decay`: an exponential moving average of the trained weights (as timm's `--model-ema`).

Only trainable parameters are averaged (with LoRA: the adapter and the head), kept on the model's device and
updated after every optimizer step. The decay warms up as min(decay, (1 + step) / (10 + step)), so short runs
are not dominated by the initial weights; it depends on the global step alone, so a resumed run averages exactly as
the uninterrupted one did.
"""

import contextlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

EMA_FILE = "ema.safetensors"


class WeightEMA:
    def __init__(self, decay: float):
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _trainable(model) -> dict[str, torch.nn.Parameter]:
        return {name: p for name, p in model.named_parameters() if p.requires_grad}

    def attach(self, model) -> None:
        """Start the average from the model's current weights (once; a resumed run then loads its saved average)."""
        if self.shadow is None:
            self.shadow = {name: p.detach().clone() for name, p in self._trainable(model).items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model, step: int) -> None:
        self.attach(model)
        params = self._trainable(model)
        shadow = list(self.shadow.values())
        torch._foreach_lerp_(shadow, [params[name].detach() for name in self.shadow], 1.0 - self.decay_at(step))

    @torch.no_grad()
    def copy_to(self, model) -> None:
        params = self._trainable(model)
        for name, value in self.shadow.items():
            params[name].copy_(value)

    @contextlib.contextmanager
    def swapped_in(self, model):
        """Evaluate with the averaged weights, then put the raw (still training) weights back."""
        if self.shadow is None:
            yield
            return
        params = self._trainable(model)
        raw = {name: params[name].detach().clone() for name in self.shadow}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in raw.items():
                    params[name].copy_(value)

    def save(self, folder: Path) -> None:
        save_file({name: t.contiguous() for name, t in self.shadow.items()}, str(Path(folder) / EMA_FILE))

    def load(self, folder: Path, model) -> None:
        """Load a checkpoint's average, when it holds one."""
        path = Path(folder) / EMA_FILE
        if path.is_file():
            device = next(model.parameters()).device
            self.shadow = {name: t.to(device) for name, t in load_file(str(path)).items()}


class UpdateEMA(TrainerCallback):
    """After each optimizer step (before any save the step triggers), fold the new weights into the average."""

    def __init__(self, ema: WeightEMA):
        self.ema = ema

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.ema.attach(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, state.global_step)
