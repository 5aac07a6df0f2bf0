"""Training throughput: the project's Trainer path against a bare PyTorch loop of the same work.

    python benchmarks/throughput.py --model resnet --device cuda --batch-size 512 --bf16 --json resnet.json

Both measurements run in this one process on the same synthetic uint8 images (the shape of decoded CIFAR-10):
  ceiling  a bare PyTorch training step: same model, dtype, memory format, optimizer, batch transform
           (crop/flip/normalise/resize on the device), data already on the device;
  project  the real training path: ImageTensorDataset + Trainer DataLoader, CifarTrainer's on-device transform,
           the recipe's optimizer and scheduler; evaluation off.
Warm-up steps are excluded; each figure is the median of several timed windows, and the device is synchronised
only at window ends, so the host runs ahead of the GPU as in a real run. `--count-syncs` lists the host syncs
left in a training step.
"""

import time

STARTED = time.perf_counter()  # before any import: start-up is measured from here to the first training step

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_hf.data import CifarData, ImageArrays  # noqa: E402
from cifar_hf.training.arguments import MODEL_NAMES, RunArguments  # noqa: E402
from cifar_hf.training.recipes import get_recipe  # noqa: E402
from cifar_hf.training.run import build_trainer  # noqa: E402

CLASSES = [f"class_{i}" for i in range(10)]


def synthetic_data(num_images: int, seed: int = 0) -> CifarData:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
    arrays = ImageArrays(pixels, rng.integers(0, 10, num_images))
    small = arrays.take(np.arange(min(num_images, 64)))
    return CifarData("synthetic", CLASSES, arrays, small, None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock_marks(warmup: int, steps: int, windows: int) -> list[int]:
    """The step counts at which the clock is read: the end of warm-up, then the end of each timed window.

    The device is synchronised only there, so that inside a window the host may run ahead of the GPU as it does
    in a real run (a sync every step would charge every step's host overhead to the measurement).
    """
    size = max(1, (steps - warmup) // windows)
    return [warmup + k * size for k in range(windows + 1)]


def windows_throughput(times: list[float], marks: list[int], batch_size: int) -> float:
    """Median images/s over the windows between consecutive clock marks."""
    rates = [(marks[k + 1] - marks[k]) * batch_size / (times[k + 1] - times[k]) for k in range(len(marks) - 1)]
    return statistics.median(rates)


# Imported by some command of the project but not needed to train: a run should not pay for them before step one.
OPTIONAL_MODULES = ("wandb", "matplotlib", "timm", "peft", "optuna", "gradio", "onnx", "onnxruntime", "evaluate")


class StepClock(TrainerCallback):
    """Reads the clock at the marks, and once when the first training step begins (the end of start-up)."""

    def __init__(self, device, marks: list[int]):
        self.device, self.marks, self.times = device, set(marks), []
        self.first_step_at, self.modules_at_first_step = None, []

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
            self.modules_at_first_step = sorted(name for name in OPTIONAL_MODULES if name in sys.modules)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.marks:
            synchronize(self.device)
            self.times.append(time.perf_counter())


class SyncCounter(TrainerCallback):
    """Counts the host<->device syncs of training steps first+1..last by source line (CUDA's sync debug mode).

    A sync stalls the host until the GPU has drained its queue, so the GPU idles while Python prepares the next
    step; a fast path has none per step.
    """

    def __init__(self, first: int, last: int):
        self.first, self.last, self.sites, self._recording = first, last, {}, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.first:
            self._recording = warnings.catch_warnings(record=True)
            self._records = self._recording.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        elif state.global_step == self.last and self._recording is not None:
            torch.cuda.set_sync_debug_mode(0)
            self._recording.__exit__(None, None, None)
            for record in self._records:
                if "synchroniz" in str(record.message):
                    site = f"{record.filename}:{record.lineno}"
                    self.sites[site] = self.sites.get(site, 0) + 1
            self._recording = None

    def per_step(self) -> float:
        return sum(self.sites.values()) / (self.last - self.first)


def project_path(options, data: CifarData, steps: int) -> tuple[float, object, SyncCounter | None, StepClock]:
    args = RunArguments(model=options.model, batch_size=options.batch_size, device=options.device,
                        model_name_or_path=options.model_name_or_path, lora_r=options.lora_r)
    flags = {"max_steps": steps, "eval_strategy": "no", "logging_strategy": "no", "bf16": options.bf16,
             "torch_compile": options.torch_compile, "torch_compile_mode": options.compile_mode,
             "disable_tqdm": True, "report_to": "none"}
    if get_recipe(options.model).scheduler == "reduce_lr_on_plateau":
        flags["lr_scheduler_type"] = "constant"  # it only acts after evaluations, which are off here
    with tempfile.TemporaryDirectory() as folder:
        trainer, _, _ = build_trainer(args, flags, data, Path(folder))
        marks = clock_marks(options.warmup, steps, options.windows)
        clock = StepClock(trainer.args.device, marks)
        trainer.add_callback(clock)
        syncs = SyncCounter(2, options.warmup) if options.count_syncs else None  # after the first steps' setup
        if syncs:
            trainer.add_callback(syncs)
        trainer.train()
    return windows_throughput(clock.times, marks, options.batch_size), trainer, syncs, clock


def ceiling(options, trainer, data: CifarData, steps: int) -> float:
    """The same model/optimizer/transform as the project's trainer, driven by a bare loop over on-device tensors."""
    device = trainer.args.device
    model = trainer.model.to(device).train()
    # the recipe's optimizer, as the Trainer built it
    optimizer_class, optimizer_kwargs = trainer.optimizer_cls_and_kwargs
    optimizer = optimizer_class(model.parameters(), weight_decay=trainer.args.weight_decay, **optimizer_kwargs)
    pixels = torch.from_numpy(data.train.pixels).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(data.train.labels).to(device)
    transform, dtype = trainer.batch_transform, torch.bfloat16 if options.bf16 else torch.float32
    forward = torch.compile(model, mode=options.compile_mode) if options.torch_compile else model
    marks, times = clock_marks(options.warmup, steps, options.windows), []
    for step in range(1, steps + 1):
        rows = torch.randint(0, len(labels), (options.batch_size,), device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=options.bf16):
            loss = forward(pixel_values=transform(pixels[rows], train=True), labels=labels[rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step in marks:
            synchronize(device)
            times.append(time.perf_counter())
    return windows_throughput(times, marks, options.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODEL_NAMES, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--torch-compile", action="store_true")
    parser.add_argument("--compile-mode", help="torch.compile mode for both paths, e.g. reduce-overhead (CUDA graphs)")
    parser.add_argument("--model-name-or-path", default="google/vit-base-patch16-224", help="previt checkpoint")
    parser.add_argument("--lora-r", type=int, help="previt: LoRA adapters of this rank (both paths train them)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement (after warm-up)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--count-syncs", action="store_true",
                        help="also count the host syncs per training step during warm-up, by source line (cuda)")
    parser.add_argument("--json", type=Path, help="write the result here")
    options = parser.parse_args()
    if options.count_syncs and (options.device != "cuda" or options.warmup < 4):
        parser.error("--count-syncs needs --device cuda and --warmup of at least 4")

    steps = options.warmup + options.steps
    data = synthetic_data(max(options.batch_size * 8, 1024))
    if options.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    project, trainer, syncs, clock = project_path(options, data, steps)
    bare = ceiling(options, trainer, data, steps)
    peak = torch.cuda.max_memory_allocated() if options.device == "cuda" else None
    result = {
        "model": options.model,
        "device": torch.cuda.get_device_name() if options.device == "cuda" else "cpu",
        "batch_size": options.batch_size,
        "lora_r": options.lora_r,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "dtype": "bfloat16" if options.bf16 else "float32",
        "torch_compile": options.torch_compile,
        "compile_mode": options.compile_mode,
        "ceiling_samples_per_second": bare,
        "project_samples_per_second": project,
        "ratio": project / bare,
        "peak_memory_bytes": peak,
        "steps": options.steps,
        "warmup_steps": options.warmup,
        # From this script's first line to the first training step: imports, model, Trainer (synthetic data).
        "startup_s": clock.first_step_at - STARTED,
        "optional_modules_before_first_step": clock.modules_at_first_step,
    }
    if syncs:
        result["host_syncs_per_step"] = syncs.per_step()
        result["host_sync_sites"] = syncs.sites
    print(f"{options.model} {result['dtype']} batch {options.batch_size} on {result['device']}: "
          f"ceiling {bare:,.0f} img/s, project {project:,.0f} img/s, ratio {result['ratio']:.3f}, "
          f"start-up {result['startup_s']:.1f} s")
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
