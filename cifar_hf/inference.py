"""Loading a trained classifier (run folder or Hub id) for evaluation and prediction; flip test-time augmentation."""

from pathlib import Path

import torch
import transformers
from transformers import AutoImageProcessor, AutoModelForImageClassification

from . import models  # noqa: F401  (registers the project's model types with the Auto classes)
from .data.preprocessing import from_image_processor
from .errors import InputError, first_line
from .files import read_json


def best_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def run_results(name_or_path: str) -> dict:
    """The training run's results.json when `name_or_path` is a local run folder, else {}."""
    path = Path(name_or_path) / "results.json"
    recovery = "restore it, or give --dataset explicitly after moving it away"
    return read_json(path, recovery) if path.is_file() else {}


def load_classifier(name_or_path: str, trust_remote_code: bool = False):
    """(model in eval mode on the best device, the BatchTransform matching its saved image processor).

    This package registers its own model types, so its run folders and pushed models load without running remote
    code; `trust_remote_code` is only needed for other custom architectures and stays off unless asked for.
    """
    transformers.logging.disable_progress_bar()  # keep the commands' output to their own lines
    transformers.logging.set_verbosity_error()
    try:
        model = AutoModelForImageClassification.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, dtype=torch.float32
        )
        processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        detail = first_line(error)
        raise InputError(f"--model: cannot load '{name_or_path}' ({detail})") from None
    transform = from_image_processor(processor, model.config)
    return model.to(best_device()).eval(), transform, processor
