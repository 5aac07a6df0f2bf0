"""Configuration of the ViT trained from scratch on 32x32 images."""

from transformers import PreTrainedConfig


class CifarViTConfig(PreTrainedConfig):
    r"""
    A Vision Transformer for native 32x32 images with a convolutional stem ("Early Convolutions Help Transformers
    See Better", Xiao et al., 2021).

    stem (`str`): `"conv"`: 3x3 conv-BN-ReLU layers with `stem_channels`, stride 2 while the feature map is larger
        than `token_grid`, then a 1x1 projection to `hidden_size`; `"patchify"`: one non-overlapping
        `image_size // token_grid` patch convolution, the original ViT stem, for comparison.
    token_grid (`int`): side of the token grid (8 gives 64 tokens for 32x32 images).
    pooling (`str`): `"mean"` averages the tokens, `"cls"` prepends a class token.

    The defaults (about 3.9M parameters) are a ViT-Lite-7-sized encoder: 7 blocks, width 256, 4 heads, MLP ratio 2.
    """

    model_type = "cifar_vit"

    num_channels: int = 3
    image_size: int = 32
    stem: str = "conv"
    stem_channels: list[int] | tuple[int, ...] = (64, 128, 128)
    token_grid: int = 8
    hidden_size: int = 256
    num_hidden_layers: int = 7
    num_attention_heads: int = 4
    mlp_ratio: float = 2.0
    drop_path_rate: float = 0.1
    layer_norm_eps: float = 1e-6
    pooling: str = "mean"
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.stem not in ("conv", "patchify"):
            raise ValueError(f"stem must be 'conv' or 'patchify', got {self.stem!r}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.image_size % self.token_grid:
            raise ValueError(f"token_grid {self.token_grid} must divide image_size {self.image_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} must divide hidden_size {self.hidden_size}"
            )


__all__ = ["CifarViTConfig"]
