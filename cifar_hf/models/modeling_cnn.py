"""The seed's basic CNN as a Transformers model.

This file and `configuration_cnn.py` are copied next to every saved model, so they import nothing from `cifar_hf`.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_cnn import CifarCNNConfig


class CifarCNNPreTrainedModel(PreTrainedModel):
    config: CifarCNNConfig
    config_class = CifarCNNConfig
    base_model_prefix = "cnn"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # The seed trained with PyTorch's default init (Kaiming-uniform, a=sqrt(5)); keep it, not normal(0, 0.02).
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))


class CifarCNNForImageClassification(CifarCNNPreTrainedModel):
    def __init__(self, config: CifarCNNConfig):
        super().__init__(config)
        layers, in_channels = [], config.num_channels
        for out_channels in config.conv_channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, config.kernel_size, padding=config.kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)

        side = config.image_size // 2 ** len(config.conv_channels)
        mlp, width = [], in_channels * side * side
        for hidden in config.hidden_sizes:
            mlp += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*mlp)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        logits = self.classifier(self.mlp(self.features(pixel_values).flatten(1)))
        # Integer labels or (mixup) class probabilities: cross_entropy accepts both.
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


__all__ = ["CifarCNNForImageClassification", "CifarCNNPreTrainedModel"]
