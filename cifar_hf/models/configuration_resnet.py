"""Configuration of the CIFAR ResNet-18."""

from transformers import PreTrainedConfig


class CifarResNetConfig(PreTrainedConfig):
    r"""
    ResNet for 32x32 images (He et al., 2016, as adapted for CIFAR): a 3x3 stem convolution with stride 1 and no
    max-pool, then `len(hidden_sizes)` stages of `depths[i]` BasicBlocks; the first block of every stage after the
    first halves the resolution. Global average pooling makes any input size work.

    The defaults are ResNet-18 (about 11.2M parameters for 10 classes).
    """

    model_type = "cifar_resnet"

    num_channels: int = 3
    image_size: int = 32  # what it was trained on; global pooling makes the weights work at any size
    embedding_size: int = 64
    hidden_sizes: list[int] | tuple[int, ...] = (64, 128, 256, 512)
    depths: list[int] | tuple[int, ...] = (2, 2, 2, 2)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if len(self.hidden_sizes) != len(self.depths):
            raise ValueError(f"hidden_sizes {list(self.hidden_sizes)} and depths {list(self.depths)} must name the "
                             "same number of stages")


__all__ = ["CifarResNetConfig"]
