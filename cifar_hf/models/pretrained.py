"""`previt`: an ImageNet classification checkpoint (ViT, DeiT, timm through Transformers' wrapper) with a new head."""

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from ..data.augment import PIL_RESAMPLE
from ..errors import InputError

logger = logging.getLogger(__name__)

# Used when a checkpoint ships no image processor: the original ViT's preprocessing.
FALLBACK_MEAN, FALLBACK_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
TIMM_WRAPPER = "timm_wrapper"  # model_type of Transformers' wrapper around timm checkpoints


def _unreachable(name_or_path: str, error: Exception) -> InputError:
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return InputError(
        f"--model-name-or-path: cannot load '{name_or_path}' ({detail}). Offline or a wrong id? Pass a local folder "
        "holding the checkpoint's config.json and weights, e.g. --model-name-or-path ./vit-base-patch16-224"
    )


def hub_reachable(timeout_s: float = 5.0) -> bool:
    """One TCP connection to the Hub's endpoint (the Hub client would retry for about a minute before failing).

    Behind a proxy a direct connection says nothing, so the Hub counts as reachable and the client decides.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlparse(huggingface_hub.constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def check_checkpoint(name_or_path: str) -> None:
    """Fail fast, before any data is decoded, when the checkpoint's config cannot be reached.

    A Hub id with the Hub out of reach is looked up in the local cache alone: found, the run goes on offline (as with
    HF_HUB_OFFLINE=1); not found, it stops at once rather than after the Hub client's retries.
    """
    offline = huggingface_hub.constants.HF_HUB_OFFLINE
    if not offline and not Path(name_or_path).expanduser().is_dir() and not hub_reachable():
        try:
            AutoConfig.from_pretrained(name_or_path, trust_remote_code=False, local_files_only=True)
        except (OSError, ValueError):
            host = urlparse(huggingface_hub.constants.ENDPOINT).hostname
            raise _unreachable(name_or_path, OSError(f"{host} is unreachable and it is not cached")) from None
        huggingface_hub.constants.HF_HUB_OFFLINE = True  # every later load reads the cache, without retries
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


def describe_training_preprocessing(config, side: int, resample: str, mean: tuple, std: tuple) -> None:
    """Rewrite a timm config's `pretrained_cfg` to training's preprocessing.

    `AutoImageProcessor` and `pipeline()` build a timm folder's processor from this dict, not from
    preprocessor_config.json: left as the checkpoint's, they would resize to 248 bicubic and crop 224 while training
    resized the whole image to 224 bilinear. `squash` with crop_pct 1 resizes the whole image to side x side.
    """
    if config.model_type != TIMM_WRAPPER:
        return
    config.pretrained_cfg = {
        **(config.pretrained_cfg or {}),
        "input_size": [3, side, side],
        "interpolation": resample,
        "crop_pct": 1.0,
        "crop_mode": "squash",
        "mean": list(mean),
        "std": list(std),
    }


def pretrained_preprocessing(name_or_path: str, config) -> tuple[int, tuple, tuple]:
    """(input side, mean, std) the checkpoint was trained with, read from its image processor."""
    # timm's processor has only a PIL backend: asking for it spares a "torchvision backend not available" warning.
    backend = {"backend": "pil"} if config.model_type == TIMM_WRAPPER else {}
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path, **backend)
    except (OSError, ValueError):
        processor = None
    return processor_preprocessing(processor, config)


def processor_preprocessing(processor, config) -> tuple[int, tuple, tuple]:
    """(input side, mean, std) of an image processor (timm's data_config or a Transformers one), else defaults."""
    data_config = getattr(processor, "data_config", None)  # timm checkpoints
    if data_config:
        return int(data_config["input_size"][-1]), tuple(data_config["mean"]), tuple(data_config["std"])
    if processor is not None and getattr(processor, "image_mean", None) is not None:
        size = processor.size or {}
        side = size.get("height") or size.get("shortest_edge") or getattr(config, "image_size", 224)
        return int(side), tuple(processor.image_mean), tuple(processor.image_std)
    image_size = getattr(config, "image_size", 224)
    return int(image_size[0] if isinstance(image_size, (list, tuple)) else image_size), FALLBACK_MEAN, FALLBACK_STD


def processor_resample(processor) -> str:
    """'bilinear' or 'bicubic': an image processor's interpolation (timm's data_config or a PIL resample value)."""
    data_config = getattr(processor, "data_config", None)
    if data_config and data_config.get("interpolation") in PIL_RESAMPLE:
        return data_config["interpolation"]
    names = {value: name for name, value in PIL_RESAMPLE.items()}
    return names.get(int(getattr(processor, "resample", 2) or 2), "bilinear")
