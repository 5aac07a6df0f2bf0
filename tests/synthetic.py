"""Tiny synthetic datasets in the Hub layout, made by the tests themselves (no network); imported by the tests and
by conftest's fixtures (tests import helpers from here, never from conftest)."""

import os
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

CLASS_NAMES = ["red", "green", "blue", "dark"]
COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [30, 30, 30]], dtype=np.int16)


def synthetic_images(num_images: int, seed: int, size: int = 32, num_classes: int = len(CLASS_NAMES)):
    """Learnable images: each class has its own colour, plus noise; labels are balanced."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num_images) % num_classes
    rng.shuffle(labels)
    noise = rng.integers(-40, 41, (num_images, size, size, 3))
    pixels = np.clip(COLOURS[labels % len(COLOURS)][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return [Image.fromarray(p) for p in pixels], labels.tolist()


def write_hub_dataset(folder: Path, splits: dict, class_names=CLASS_NAMES, image_column="img", label_column="label"):
    """Write `splits` ({name: (images, labels)}) as parquet files plus a dataset card, like a Hub dataset repo."""
    labels = datasets.ClassLabel(names=class_names)
    features = datasets.Features({image_column: datasets.Image(), label_column: labels})
    configs = []
    for split, (images, labels) in splits.items():
        data = datasets.Dataset.from_dict({image_column: images, label_column: labels}, features=features)
        data.to_parquet(str(folder / "plain_text" / f"{split}-00000-of-00001.parquet"))
        configs.append(f"  - split: {split}\n    path: plain_text/{split}-*")
    names = "\n".join(f"          '{i}': {name}" for i, name in enumerate(class_names))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: plain_text\n  data_files:\n" + "\n".join(configs) + "\n  default: true\n"
        f"dataset_info:\n  config_name: plain_text\n  features:\n  - name: {image_column}\n    dtype: image\n"
        f"  - name: {label_column}\n    dtype:\n      class_label:\n        names:\n{names}\n---\n# synthetic\n"
    )
    return folder


def tiny_run_args(dataset, save, *extra, model: str = "cnn") -> list[str]:
    """The command line of a tiny CPU run on a synthetic dataset (40 validation images), quiet; `extra` flags last."""
    return ["-m", model, "-d", "cpu", "--dataset", str(dataset), "--val-size", "40", "-s", str(save),
            "--disable_tqdm", "true", *extra]


def pretend_online(patch) -> None:
    """The Hub counts as reachable: its one probe is replaced (the tests set HF_HUB_OFFLINE=1, and this machine has
    no network); the upload itself is replaced by each test."""
    import huggingface_hub

    import cifar_hf.offline

    patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    patch.setattr(cifar_hf.offline, "hub_reachable", lambda timeout_s=5.0: True)


# The real ImageNet ViT-Tiny in the timm layout: in the shared folder beside the repository (as .ci/run's ../shared),
# or wherever CIFAR_HF_TIMM_VIT_TINY says; a clone without it skips the tests that need it.
TIMM_VIT_TINY = Path(os.environ.get("CIFAR_HF_TIMM_VIT_TINY") or Path(__file__).resolve().parents[2] / "shared" /
                     "models" / "vit_tiny_patch16_224.augreg_in21k_ft_in1k")
needs_timm_vit_tiny = pytest.mark.skipif(
    not TIMM_VIT_TINY.is_dir(),
    reason=f"the local timm ViT-Tiny {TIMM_VIT_TINY} is not on this machine (CIFAR_HF_TIMM_VIT_TINY=FOLDER names it)")
