"""The from-scratch models (`cnn`, `resnet`, `vit`) by name, and how to build one; `previt` is `pretrained.py`.

Importing this package registers the three from-scratch models with the Auto classes, in this process
(`AutoConfig.register`) and in every folder they are saved to (`register_for_auto_class`, which copies their code).
"""

from transformers import AutoConfig, AutoModelForImageClassification

from .configuration_cnn import CifarCNNConfig
from .configuration_resnet import CifarResNetConfig
from .configuration_vit import CifarViTConfig
from .modeling_cnn import CifarCNNForImageClassification
from .modeling_resnet import CifarResNetForImageClassification
from .modeling_vit import CifarViTForImageClassification

SCRATCH_MODELS = {
    "cnn": (CifarCNNConfig, CifarCNNForImageClassification),
    "resnet": (CifarResNetConfig, CifarResNetForImageClassification),
    "vit": (CifarViTConfig, CifarViTForImageClassification),
}

for _config_class, _model_class in SCRATCH_MODELS.values():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModelForImageClassification.register(_config_class, _model_class, exist_ok=True)
    _config_class.register_for_auto_class()
    _model_class.register_for_auto_class("AutoModelForImageClassification")


def build_scratch_model(name: str, class_names: list[str], **config_overrides):
    """A randomly initialised `cnn`, `resnet` or `vit` for the given classes."""
    config_class, model_class = SCRATCH_MODELS[name]
    config = config_class(
        id2label=dict(enumerate(class_names)),
        label2id={label: index for index, label in enumerate(class_names)},
        **config_overrides,
    )
    return model_class(config)


__all__ = [
    "SCRATCH_MODELS",
    "CifarCNNConfig",
    "CifarCNNForImageClassification",
    "CifarResNetConfig",
    "CifarResNetForImageClassification",
    "CifarViTConfig",
    "CifarViTForImageClassification",
    "build_scratch_model",
]
