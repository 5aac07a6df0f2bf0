"""`previt`: an ImageNet image-classification checkpoint (ViT, DeiT, timm through Transformers' wrapper) with a new head."""

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from ..errors import InputError

# Used when a checkpoint ships no image processor: the original ViT's preprocessing.
FALLBACK_MEAN, FALLBACK_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _unreachable(name_or_path: str, error: Exception) -> InputError:
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return InputError(
        f"--model-name-or-path: cannot load '{name_or_path}' ({detail}). Offline or a wrong id? Pass a local folder "
        "holding the checkpoint's config.json and weights, e.g. --model-name-or-path ./vit-base-patch16-224"
    )


def check_checkpoint(name_or_path: str) -> None:
    """Fail fast, before any data is decoded, when the checkpoint's config cannot be reached."""
    try:
        AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise _unreachable(name_or_path, error) from None


def load_pretrained_classifier(name_or_path: str, class_names: list[str]):
    """The checkpoint in float32 with a freshly initialised head for `class_names`."""
    try:
        return AutoModelForImageClassification.from_pretrained(
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


def pretrained_preprocessing(name_or_path: str, config) -> tuple[int, tuple, tuple]:
    """(input side, mean, std) the checkpoint was trained with, read from its image processor."""
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path)
    except (OSError, ValueError):
        processor = None
    return processor_preprocessing(processor, config)


def processor_preprocessing(processor, config) -> tuple[int, tuple, tuple]:
    """(input side, mean, std) of an image processor (timm's data_config or a Transformers processor), else defaults."""
    data_config = getattr(processor, "data_config", None)  # timm checkpoints
    if data_config:
        return int(data_config["input_size"][-1]), tuple(data_config["mean"]), tuple(data_config["std"])
    if processor is not None and getattr(processor, "image_mean", None) is not None:
        size = processor.size or {}
        side = size.get("height") or size.get("shortest_edge") or getattr(config, "image_size", 224)
        return int(side), tuple(processor.image_mean), tuple(processor.image_std)
    image_size = getattr(config, "image_size", 224)
    return int(image_size[0] if isinstance(image_size, (list, tuple)) else image_size), FALLBACK_MEAN, FALLBACK_STD
