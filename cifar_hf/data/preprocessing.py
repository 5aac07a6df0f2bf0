"""Preprocessing in both directions: the training `BatchTransform` <-> the image processor saved with a model.

Training normalises and resizes uint8 batches on the device; inference (`pipeline()`, `evaluate`, `predict`, export)
reads the processor saved beside the weights. Both are written from, and read into, one BatchTransform here.
"""

from .augment import BatchTransform

PIL_RESAMPLE = {"bilinear": 2, "bicubic": 3}  # BatchTransform.resample -> PIL.Image.Resampling value
FALLBACK_MEAN, FALLBACK_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def image_processor_kwargs(transform: BatchTransform) -> dict:
    """`ViTImageProcessor` arguments for the same preprocessing, so that inference on PIL images matches training."""
    return {
        "do_resize": True,
        "size": {"height": transform.image_size, "width": transform.image_size},
        "resample": PIL_RESAMPLE[transform.resample],
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(transform.mean),
        "image_std": list(transform.std),
    }


def to_image_processor(transform: BatchTransform, grayscale: bool = False):
    """The image processor saved with a run: training's evaluation-time preprocessing, for PIL images; a grey run's
    also says `grayscale` (inference reads every image as grey first, see `rgb.to_rgb`)."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(**image_processor_kwargs(transform), **({"grayscale": True} if grayscale else {}))


def processor_grayscale(processor, config) -> bool:
    """Whether a saved model was trained on grey images: its processor says so (a timm folder's processor is built
    from `pretrained_cfg`, which says it instead); old run folders say nothing and are colour."""
    pretrained_cfg = getattr(config, "pretrained_cfg", None) or {}
    return bool(getattr(processor, "grayscale", False) or pretrained_cfg.get("grayscale", False))


def from_image_processor(processor, config) -> BatchTransform:
    """The evaluation-time BatchTransform of a saved model, read from its image processor (timm's or Transformers')."""
    side, mean, std = processor_preprocessing(processor, config)
    return BatchTransform(mean=mean, std=std, image_size=side, resample=processor_resample(processor))


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


def describe_training_preprocessing(
    config, side: int, resample: str, mean: tuple, std: tuple, grayscale: bool = False
) -> None:
    """Rewrite a timm config's `pretrained_cfg` to training's preprocessing.

    `AutoImageProcessor` and `pipeline()` build a timm folder's processor from this dict, not from
    preprocessor_config.json: left as the checkpoint's, they would resize to 248 bicubic and crop 224 while training
    resized the whole image to 224 bilinear. `squash` with crop_pct 1 resizes the whole image to side x side.
    """
    if config.model_type != "timm_wrapper":  # Transformers' wrapper around timm checkpoints
        return
    config.pretrained_cfg = {
        **(config.pretrained_cfg or {}),
        "input_size": [3, side, side],
        "interpolation": resample,
        "crop_pct": 1.0,
        "crop_mode": "squash",
        "mean": list(mean),
        "std": list(std),
        **({"grayscale": True} if grayscale else {}),
    }
