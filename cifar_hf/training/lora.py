"""LoRA fine-tuning of `previt` through peft: the adapted model, and the merged model plus adapter it saves.

peft is an optional extra (`pip install -e ".[lora]"`); only runs with `--lora-r` import it. The saved run folder
holds the merged model (plain Transformers weights: loads and runs without peft) and `adapter/` (the LoRA weights
and the new head, a few MB) for sharing small.
"""

from pathlib import Path

from torch import nn

from ..errors import InputError

ADAPTER_FOLDER = "adapter"
# Query and value projections (Hu et al. 2021, peft's ViT example); timm's ViTs fuse them into one `qkv` layer.
ATTENTION_PROJECTIONS = ("query", "value", "q_proj", "v_proj", "qkv")


def import_peft():
    try:
        import peft
    except ImportError:
        raise InputError('--lora-r needs peft: pip install -e ".[lora]" (or pip install peft)') from None
    return peft


def head_modules(model: nn.Module) -> list[str]:
    """The classification heads (the Linear layers with one output per class): new, so trained in full."""
    num_labels = model.config.num_labels
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and module.out_features == num_labels]


def default_target_modules(model: nn.Module) -> list[str]:
    """The attention projections this architecture names (Transformers' ViT/DeiT, timm's ViTs), by their last name."""
    present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    return [name for name in ATTENTION_PROJECTIONS if name in present]


def apply_lora(model: nn.Module, rank: int, alpha: float | None, dropout: float, target_modules: list[str] | None):
    """`model` as a peft model: LoRA (rank `rank`) on `target_modules`, the heads trained in full, the rest frozen."""
    peft = import_peft()
    targets = target_modules or default_target_modules(model)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [name for name in targets if name not in present and "." not in name]
    if not targets or missing:
        raise InputError(f"--lora-target-modules: {', '.join(missing) or 'none given'} not among "
                         f"{type(model).__name__}'s layers (its Linear layers: {', '.join(_linear_names(model))})")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=dropout,
                             target_modules=targets, modules_to_save=head_modules(model), bias="none")
    return peft.get_peft_model(model, config)


def _linear_names(model: nn.Module) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)})


def is_peft_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def parameter_counts(model: nn.Module) -> dict:
    """Trainable and total parameters of the model as trained: the base with its new head plus the LoRA matrices.

    peft keeps an untrained copy of each fully trained head (`modules_to_save`'s `original_module`) beside the one
    it trains; that copy is not part of the model that runs, so it is not counted (the merged model saved in the run
    folder holds total minus the LoRA matrices).
    """
    spare_copies = {id(p) for module in model.modules() if hasattr(module, "original_module")
                    and hasattr(module, "modules_to_save") for p in module.original_module.parameters()}
    counted = [p for p in model.parameters() if id(p) not in spare_copies]
    trainable = sum(p.numel() for p in counted if p.requires_grad)
    total = sum(p.numel() for p in counted)
    return {"trainable_parameters": trainable, "total_parameters": total}


def save_adapter_and_merge(model, run_folder: Path, base_checkpoint: str):
    """Write `adapter/` (LoRA weights and the head, naming the base checkpoint), then return the merged plain model."""
    model.peft_config["default"].base_model_name_or_path = base_checkpoint
    model.save_pretrained(str(Path(run_folder) / ADAPTER_FOLDER))
    return model.merge_and_unload()
