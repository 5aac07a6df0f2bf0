"""Configuration of the seed's basic CNN."""

from transformers import PreTrainedConfig


class CifarCNNConfig(PreTrainedConfig):
    r"""
    The seed repository's CNN: `len(conv_channels)` blocks of Conv2d (`kernel_size`, stride 1, "same" padding)
    + ReLU + MaxPool 2x2, then a ReLU MLP with `hidden_sizes` and a linear classifier.

    The defaults reproduce the seed exactly (51,898 parameters for 10 classes on 32x32 images).
    """

    model_type = "cifar_cnn"

    num_channels: int = 3
    image_size: int = 32
    conv_channels: list[int] | tuple[int, ...] = (8, 16, 32)
    kernel_size: int = 5
    hidden_sizes: list[int] | tuple[int, ...] = (64, 32)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        smallest = 2 ** len(self.conv_channels)  # each block halves the side: below this no pixel is left
        if self.image_size < smallest:
            raise ValueError(f"{len(self.conv_channels)} 2x2 max-pools need images of at least {smallest}x{smallest}")


__all__ = ["CifarCNNConfig"]
