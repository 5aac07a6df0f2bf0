"""Loading a trained classifier (run folder or Hub id), and the images it is given, for evaluation and prediction."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors import SafetensorError
from transformers import AutoImageProcessor, AutoModelForImageClassification

from . import models  # noqa: F401  (registers the project's model types with the Auto classes)
from .data.augment import flip_tta_logits
from .data.preprocessing import from_image_processor, processor_grayscale
from .data.rgb import to_rgb
from .errors import InputError, first_line
from .files import read_json
from .offline import go_offline_if_unreachable, is_hub_id
from .training.checkpoints import checkpoints


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


def run_columns(results: dict) -> tuple[str | None, str | None]:
    """(image column, label column) a training run's results.json records (None where it records none)."""
    hyperparameters = results.get("hyperparameters", {})
    data = hyperparameters.get("data", {})
    return (data.get("image_column") or hyperparameters.get("image_column"),
            results.get("label_column") or data.get("label_column") or hyperparameters.get("label_column"))


def check_weights_fit(name_or_path: str, model, loading: dict) -> None:
    mismatched = sorted(loading.get("mismatched_keys") or [], key=lambda entry: entry[0])
    if mismatched:
        key, saved, expected = mismatched[0]
        more = f" and {len(mismatched) - 1} more" if len(mismatched) > 1 else ""
        raise InputError(f"--model: {name_or_path}: its config.json does not fit its weights ({key}: saved "
                         f"{tuple(saved)}, the config builds {tuple(expected)}{more})")
    parameters = {name for name, _ in model.named_parameters()}  # a buffer left out (num_batches_tracked) is harmless
    missing = sorted(key for key in loading.get("missing_keys") or [] if key in parameters)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"--model: {name_or_path}: its weights lack {missing[0]}{more}, which its config.json builds")


def adapter_hint(adapter: Path) -> str:
    """Where the model of a LoRA adapter folder is: its run folder when beside it, else the base it adapts."""
    run_folder = adapter.resolve().parent
    if (run_folder / "config.json").is_file():
        return f"pass its run folder {run_folder} (it holds the merged model)"
    try:
        base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        base = None
    on_base = f", or load it on its base {base} with peft" if base else ""
    return f"pass the run folder it came from (it holds the merged model){on_base}"


def near_folders(path: Path) -> str:
    """` (did you mean good/cifar-cnn?)` when a folder beside the missing `path` is named like it."""
    import difflib

    try:
        names = [p.name for p in path.parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1)
    return f" (did you mean {path.parent / close[0]}?)" if close else ""


def check_model_reference(name_or_path: str) -> None:
    """Refuse at once what cannot load: a missing folder, a training checkpoint; a Hub id costs one reachability
    probe (offline, the Hub client would retry for about a minute before failing)."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        is_checkpoint = local.name.startswith("checkpoint-") and (local / "trainer_state.json").is_file()
        if is_checkpoint and not (local / "preprocessor_config.json").is_file():
            raise InputError(f"--model: {name_or_path} is a training checkpoint; pass the run folder "
                             f"{local.parent} (or --resume it)")
        if (local / "adapter_config.json").is_file() and not (local / "config.json").is_file():
            raise InputError(f"--model {name_or_path}: a LoRA adapter folder, not a model: {adapter_hint(local)}")
        if (local / "model.onnx").is_file() and not (local / "config.json").is_file():
            raise InputError(f"--model: {name_or_path} is an ONNX export (run it with onnxruntime: "
                             f"docs/demo-and-export.md); pass the model folder it was exported from")
        if not (local / "config.json").is_file():
            steps = [p.name for p in checkpoints(local)]
            if steps:
                raise InputError(f"--model: {name_or_path} holds no final model yet, only checkpoints "
                                 f"({', '.join(steps)}): the run is still training, or was stopped (then "
                                 "finish it by running its command again with --resume auto)")
            try:
                runs = sorted(p.name for p in local.iterdir() if (p / "config.json").is_file())
            except OSError:  # a folder that cannot be listed: the loader's own line says why
                runs = []
            if runs:
                raise InputError(f"--model: {name_or_path} holds run folders ({', '.join(runs[:5])}"
                                 f"{', ...' if len(runs) > 5 else ''}): pass one of them")
    elif local.exists():
        raise InputError(f"--model: {name_or_path} is a file: pass the run folder that holds it")
    elif is_hub_id(name_or_path):
        go_offline_if_unreachable()  # offline: the local cache alone answers, in one line
    else:
        raise InputError(f"--model: cannot load '{name_or_path}': no such folder{near_folders(local)} (nor a Hub id "
                         "OWNER/NAME)")


def load_classifier(name_or_path: str, trust_remote_code: bool = False):
    """(model in eval mode on the best device, the BatchTransform matching its saved image processor, that
    processor); `processor.grayscale` says whether every input is to be read as grey first (`rgb.to_rgb`).

    This package registers its own model types, so its run folders and pushed models load without running remote
    code; `trust_remote_code` is only needed for other custom architectures and stays off unless asked for.
    """
    transformers.logging.disable_progress_bar()  # keep the commands' output to their own lines
    transformers.logging.set_verbosity_error()
    check_model_reference(name_or_path)
    try:
        # Loaded leniently, then checked: a config.json that does not fit the weights is one line naming a tensor,
        # not the loader's RuntimeError, and never a model with freshly initialised layers.
        model, loading = AutoModelForImageClassification.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, dtype=torch.float32, ignore_mismatched_sizes=True,
            output_loading_info=True,
        )
        processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except SafetensorError as error:  # a truncated or overwritten download or copy
        raise InputError(f"--model: {name_or_path}: its weights file is damaged ({first_line(error)}); copy or "
                         "download it again") from None
    except (OSError, ValueError) as error:
        local = Path(name_or_path).expanduser()
        if is_hub_id(name_or_path) and local.parent.is_dir():  # runs/cifar-cn: most likely a mistyped folder
            raise InputError(f"--model: cannot load '{name_or_path}': no such folder{near_folders(local)}, nor a "
                             f"Hub model ({first_line(error)})") from None
        raise InputError(f"--model: cannot load '{name_or_path}' ({first_line(error)})") from None
    check_weights_fit(name_or_path, model, loading)
    transform = from_image_processor(processor, model.config)
    processor.grayscale = processor_grayscale(processor, model.config)  # one place to ask, whatever the model kind
    return model.to(best_device()).eval(), transform, processor


def read_image(path: str, grayscale: bool = False) -> Image.Image:
    """The image at `path` in 8-bit RGB (PIL), converted as training decodes images (as grey for a grey run)."""
    if not os.path.exists(path) and (path == "-" or "://" in path):
        what = "standard input" if path == "-" else "a URL"
        raise InputError(f"cannot read image {path}: {what} is not read here; save the image and pass its path")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end: never opened
            raise InputError(f"cannot read image {path}: not a regular file")
        with Image.open(path) as image:
            return to_rgb(image, grayscale)
    except (OSError, ValueError, Image.DecompressionBombError) as error:  # missing, unreadable, not an image, bomb
        raise InputError(f"cannot read image {path}: {error}") from None


def predict_logits(model, transform, pixels, batch_size: int, tta: bool = False):
    """Logits of each image (N, H, W, C uint8); with `tta`, the mean of the logits of the image and of its mirror."""
    device = next(model.parameters()).device
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    batches = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            inputs = transform(images[i: i + batch_size].to(device), train=False)
            logits = flip_tta_logits(model, inputs) if tta else model(pixel_values=inputs).logits.float()
            batches.append(logits.cpu())
    return torch.cat(batches)
