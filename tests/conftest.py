"""Shared fixtures: tiny synthetic datasets in the Hub layout, made by the tests themselves (no network)."""

import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

# No test may reach the network; wandb only ever writes offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Each test session decodes into its own datasets cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "hf-datasets-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """240 train images (60 per class, 4 classes) and 80 test images, in the Hub layout."""
    folder = tmp_path_factory.mktemp("tiny-cifar")
    return write_hub_dataset(folder, {"train": synthetic_images(240, seed=1), "test": synthetic_images(80, seed=2)})


@pytest.fixture(scope="session")
def tiny_dataset_no_test(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-cifar-no-test")
    return write_hub_dataset(folder, {"train": synthetic_images(200, seed=3)})


@pytest.fixture(scope="session")
def tiny_imagenet_vit(tmp_path_factory):
    """A randomly initialised ViT with 1000 labels at 64x64 input, saved like a Hub checkpoint."""
    folder = tmp_path_factory.mktemp("tiny-vit-checkpoint")
    config = ViTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=1000)
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(folder)
    processor = ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.4] * 3, image_std=[0.3] * 3)
    processor.save_pretrained(folder)
    return folder
