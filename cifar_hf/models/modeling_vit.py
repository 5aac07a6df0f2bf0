"""A ViT with a convolutional stem, trained from scratch on 32x32 images, as a Transformers model.

This file and `configuration_vit.py` are copied next to every saved model, so they import nothing from `cifar_hf`.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_vit import CifarViTConfig


class CifarViTConvStem(nn.Module):
    """3x3 conv-BN-ReLU layers (stride 2 until the token grid is reached), then a 1x1 conv to the width."""

    def __init__(self, config: CifarViTConfig):
        super().__init__()
        layers, in_channels, side = [], config.num_channels, config.image_size
        for out_channels in config.stem_channels:
            stride = 2 if side > config.token_grid else 1
            side //= stride
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        if side != config.token_grid:
            raise ValueError(
                f"{len(config.stem_channels)} stem convolutions halve {config.image_size}px to {side}px, not to the "
                f"{config.token_grid}x{config.token_grid} token grid (the config's stem_channels set how many)"
            )
        layers.append(nn.Conv2d(in_channels, config.hidden_size, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.layers(pixel_values)


class CifarViTAttention(nn.Module):
    def __init__(self, config: CifarViTConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, tokens, 3, self.num_heads, width // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        # Both paths scale the logits by 1/sqrt(head_dim) (the seed multiplied by sqrt(d)).
        if self.config._attn_implementation == "eager":  # written out, as `attn_implementation="eager"` asks
            weights = (query @ key.transpose(-2, -1)) * query.shape[-1] ** -0.5
            attended = weights.softmax(-1) @ value
        else:
            attended = nn.functional.scaled_dot_product_attention(query, key, value)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, width))


class CifarViTDropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability `rate` during training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = torch.empty(x.shape[0], *(1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


class CifarViTLayer(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: CifarViTConfig, drop_path_rate: float):
        super().__init__()
        hidden = config.hidden_size
        self.norm1 = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.attention = CifarViTAttention(config)
        self.norm2 = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        mlp_width = int(hidden * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp_width), nn.GELU(), nn.Linear(mlp_width, hidden))
        self.drop_path = CifarViTDropPath(drop_path_rate)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.drop_path(self.attention(self.norm1(hidden_states)))
        return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))


class CifarViTPreTrainedModel(PreTrainedModel):
    config: CifarViTConfig
    config_class = CifarViTConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Conv2d):  # the stem is a convnet: He init
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, CifarViTForImageClassification):
            init.trunc_normal_(module.position_embeddings, std=std)
            if module.cls_token is not None:
                init.trunc_normal_(module.cls_token, std=std)


class CifarViTForImageClassification(CifarViTPreTrainedModel):
    def __init__(self, config: CifarViTConfig):
        super().__init__(config)
        if config.stem == "conv":
            self.stem = CifarViTConvStem(config)
        else:
            patch = config.image_size // config.token_grid
            self.stem = nn.Conv2d(config.num_channels, config.hidden_size, patch, stride=patch)
        num_tokens = config.token_grid**2
        # Mean pooling by default: with 64 tokens and no pre-training it trains as well as a class token
        # (CCT's sequence pooling makes the same point) and keeps the token grid square.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if config.pooling == "cls" else None
        num_tokens += config.pooling == "cls"
        self.position_embeddings = nn.Parameter(torch.zeros(1, num_tokens, config.hidden_size))
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList(CifarViTLayer(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        tokens = self.stem(pixel_values).flatten(2).transpose(1, 2)  # (batch, tokens, width)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        hidden_states = tokens + self.position_embeddings
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        hidden_states = self.norm(hidden_states)
        pooled = hidden_states[:, 0] if self.cls_token is not None else hidden_states.mean(dim=1)
        logits = self.classifier(pooled)
        # Integer labels or (mixup) class probabilities: cross_entropy accepts both.
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


__all__ = ["CifarViTForImageClassification", "CifarViTPreTrainedModel"]
