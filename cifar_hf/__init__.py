"""cifar-hf: train and fine-tune CIFAR-10 image classifiers on the Hugging Face stack.

Importing the package registers its models (`cifar_cnn`, `cifar_resnet`, `cifar_vit`) with the Auto classes.
"""

from . import models  # noqa: F401  (registers the Auto classes)

__version__ = "0.1.0"
