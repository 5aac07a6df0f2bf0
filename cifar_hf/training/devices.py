"""Where a run trains and in which precision, and how results.json names the hardware."""

import os
import platform

import torch
from transformers import TrainingArguments

from .arguments import RunArguments
from .recipes import Recipe


def on_gpu(args: RunArguments) -> bool:
    return args.device in ("auto", "cuda") and torch.cuda.is_available()


def on_cpu(args: RunArguments) -> bool:
    """-d cpu, or -d auto where torch sees no accelerator. Said to accelerate either way: not told, it gives each
    process of a CPU launch (torchrun, accelerate launch) a world of its own, and each trains the whole run alone."""
    return args.device == "cpu" or (args.device == "auto" and not torch.accelerator.is_available())


def uses_bf16(args: RunArguments, recipe: Recipe) -> bool:
    """bf16 autocast: the recipe's choice, on a GPU that supports it (`--bf16` on the command line overrides)."""
    return recipe.bf16 and on_gpu(args) and torch.cuda.is_bf16_supported()


def hardware_description(args: TrainingArguments) -> str:
    if args.device.type == "cuda":
        return f"{args.world_size}x {torch.cuda.get_device_name(args.device)}"
    cpu = platform.processor() or platform.machine()
    return f"{args.device.type} ({cpu}, {os.cpu_count()} cores) x{args.world_size}"
