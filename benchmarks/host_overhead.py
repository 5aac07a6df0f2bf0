"""What the Trainer does per step beyond a bare training step, timed call by call (the levers of issue 23).

    python benchmarks/host_overhead.py --device cpu

For each scratch model, with every gradient set, the mean time per call of:
  grad norm (Trainer)   accelerate's clip_grad_norm_(inf): how the Trainer gets the norm it logs when it does not
                        clip; it also multiplies every gradient by 1 (CifarTrainer skips it on steps that do not log)
  grad norm (alone)     torch.nn.utils.get_total_norm: the same number without the multiplication
  model.train()         the Trainer sets training mode on every module at every step
  zero_grad             the Trainer's model.zero_grad() after each optimizer step
On a GPU each figure includes its kernels: the device is synchronised at the end of each timed batch of calls.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_hf.models import build_scratch_model  # noqa: E402


def per_call_us(call, device: torch.device, number: int, repeat: int = 5) -> float:
    """The fastest of `repeat` batches of `number` calls, per call, in microseconds."""
    best = float("inf")
    for _ in range(repeat + 1):  # the first batch warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(number):
            call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def measure(name: str, accelerator: Accelerator, number: int) -> dict:
    model = build_scratch_model(name, [f"class_{i}" for i in range(10)]).to(accelerator.device)

    saved = [torch.ones_like(p) for p in model.parameters()]

    def set_gradients():  # the same tensors each time: nothing is allocated
        for parameter, gradient in zip(model.parameters(), saved, strict=True):
            parameter.grad = gradient

    def gradients():
        return [p.grad for p in model.parameters() if p.grad is not None]

    set_gradients()
    device = accelerator.device
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": len(list(model.parameters())),
        "grad_norm_trainer_us": per_call_us(lambda: accelerator.clip_grad_norm_(model.parameters(), float("inf")),
                                            device, number),
        "grad_norm_alone_us": per_call_us(lambda: torch.nn.utils.get_total_norm(gradients()), device, number),
        "train_mode_us": per_call_us(model.train, device, number),
        "zero_grad_us": per_call_us(lambda: (model.zero_grad(), set_gradients()), device, number)
        - per_call_us(set_gradients, device, number),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["cnn", "resnet", "vit"])
    parser.add_argument("--number", type=int, default=50, help="calls per timed batch")
    parser.add_argument("--json", type=Path, help="write the rows here")
    options = parser.parse_args()
    accelerator = Accelerator(cpu=options.device == "cpu")
    rows = [measure(name, accelerator, options.number) for name in options.models]
    device = torch.cuda.get_device_name() if options.device == "cuda" else "cpu"
    print(f"per call, us, on {device}: model | tensors | grad norm (Trainer) | grad norm (alone) | model.train() | "
          "zero_grad")
    for r in rows:
        print(f"{r['model']} | {r['tensors']} | {r['grad_norm_trainer_us']:,.0f} | {r['grad_norm_alone_us']:,.0f} | "
              f"{r['train_mode_us']:,.0f} | {r['zero_grad_us']:,.0f}")
    if options.json:
        options.json.write_text(json.dumps({"device": device, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
