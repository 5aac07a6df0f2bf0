"""cifar-hf: train and fine-tune CIFAR-10 image classifiers on the Hugging Face stack.

Importing `cifar_hf.models` (every command that builds or loads a model does) registers the package's models
(`cifar_cnn`, `cifar_resnet`, `cifar_vit`) with the Auto classes. `cifar_hf` itself imports nothing heavy, so that
`cifar-hf --help` and `cifar-hf report` answer without loading torch and transformers.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "models":  # `cifar_hf.models` after a plain `import cifar_hf`, loaded (with torch) only when used
        return importlib.import_module(".models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
