"""Shared fixtures: tiny synthetic datasets in the Hub layout, made by the tests themselves (no network)."""

import os
from pathlib import Path

import datasets
import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

# No test may reach the network; wandb only ever writes offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from synthetic import synthetic_images, write_hub_dataset  # noqa: E402


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
