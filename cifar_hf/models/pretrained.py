"""`previt`: an ImageNet classification checkpoint (ViT, DeiT, timm through Transformers' wrapper) with a new head."""

import logging
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from ..data.preprocessing import processor_preprocessing
from ..errors import InputError, first_line
from ..offline import go_offline_if_unreachable, looks_like_path

logger = logging.getLogger(__name__)

TIMM_WRAPPER = "timm_wrapper"  # model_type of Transformers' wrapper around timm checkpoints


def _unreachable(name_or_path: str, error: Exception) -> InputError:
    detail = first_line(error)
    return InputError(
        f"--model-name-or-path: cannot load '{name_or_path}' ({detail}). Offline or a wrong id? Pass a local folder "
        "holding the checkpoint's config.json and weights, e.g. --model-name-or-path ./vit-base-patch16-224"
    )


def check_checkpoint(name_or_path: str) -> None:
    """Fail fast, before any data is decoded, when the checkpoint's config cannot be reached.

    A Hub id with the Hub out of reach is looked up in the local cache alone: found, the run goes on offline (as with
    HF_HUB_OFFLINE=1); not found, it stops at once rather than after the Hub client's retries.
    """
    local = Path(name_or_path).expanduser()
    if not local.is_dir() and (looks_like_path(name_or_path) or name_or_path.count("/") > 1):
        what = "a file, not a folder" if local.exists() else "no such folder"
        raise InputError(f"--model-name-or-path: cannot load '{name_or_path}': {what} (nor a Hub id OWNER/NAME); "
                         "pass a folder holding the checkpoint's config.json and weights")
    if not local.is_dir() and go_offline_if_unreachable():
        try:
            AutoConfig.from_pretrained(name_or_path, trust_remote_code=False, local_files_only=True)
        except (OSError, ValueError):
            host = urlparse(huggingface_hub.constants.ENDPOINT).hostname
            raise _unreachable(name_or_path, OSError(f"{host} is unreachable and it is not cached")) from None
        logger.warning("the Hub is unreachable: using the cached copy of %s (offline)", name_or_path)
        return
    try:
        AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise _unreachable(name_or_path, error) from None


def load_pretrained_classifier(name_or_path: str, class_names: list[str]):
    """The checkpoint in float32 with a freshly initialised head for `class_names`."""
    logger.info("previt: a new %d-class head replaces the checkpoint's own (the load report lists it as MISMATCH, "
                "which is expected)", len(class_names))
    try:
        model = AutoModelForImageClassification.from_pretrained(
            name_or_path,
            num_labels=len(class_names),
            id2label=dict(enumerate(class_names)),
            label2id={name: index for index, name in enumerate(class_names)},
            ignore_mismatched_sizes=True,
            dtype=torch.float32,  # checkpoints may be stored in half precision; the Trainer handles autocast
            trust_remote_code=False,
        )
    except (OSError, ValueError) as error:
        raise _unreachable(name_or_path, error) from None
    if model.config.model_type == TIMM_WRAPPER:
        name_timm_classes(model.config, class_names)
    return model


def name_timm_classes(config, class_names: list[str]) -> None:
    """A timm config saves its classes as `label_names`, which loading a checkpoint keeps at the 1,000 ImageNet ones.

    Saved that way, the folder reloads with LABEL_0... names; the ImageNet descriptions no longer apply either.
    """
    config.label_names = list(class_names)
    if hasattr(config, "label_descriptions"):
        del config.label_descriptions


def pretrained_preprocessing(name_or_path: str, config) -> tuple[int, tuple, tuple]:
    """(input side, mean, std) the checkpoint was trained with, read from its image processor."""
    # timm's processor has only a PIL backend: asking for it spares a "torchvision backend not available" warning.
    backend = {"backend": "pil"} if config.model_type == TIMM_WRAPPER else {}
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path, **backend)
    except (OSError, ValueError):
        processor = None
    return processor_preprocessing(processor, config)
