"""A `previt` run folder, from a Transformers or a timm checkpoint, classifies as training did and names its classes.

Issues 14 and 25: a timm checkpoint's folder kept the 1,000 ImageNet `label_names` (so it reloaded as LABEL_0...) and
its `pretrained_cfg`, from which `pipeline()` builds timm's evaluation transform (bicubic 1/0.9 resize, centre crop)
instead of training's whole-image bilinear resize.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import CLASS_NAMES
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    pipeline,
)

from cifar_hf.__main__ import main as cli
from cifar_hf.training import run


@pytest.fixture(scope="module")
def tiny_timm_vit(tmp_path_factory):
    """A random timm ViT (64x64 input, 1,000 classes) saved in the timm layout: config.json with a pretrained_cfg."""
    folder = tmp_path_factory.mktemp("tiny-timm-checkpoint")
    config = TimmWrapperConfig(
        architecture="vit_tiny_patch16_224",
        model_args={"img_size": 64, "depth": 2, "embed_dim": 32, "num_heads": 2},
        num_labels=1000,
        pretrained_cfg={"input_size": [3, 64, 64], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
                        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "fixed_input_size": True},
    )
    torch.manual_seed(0)
    TimmWrapperForImageClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["transformers", "timm"])
def previt_run(request, tiny_dataset, tmp_path_factory):
    """(run folder, the BatchTransform training used) of one short previt run on each kind of checkpoint."""
    checkpoint = request.getfixturevalue("tiny_imagenet_vit" if request.param == "transformers" else "tiny_timm_vit")
    save_folder = tmp_path_factory.mktemp(f"previt-{request.param}")
    used = {}
    build = run.build_model_and_transform

    def recording_build(*args, **kwargs):
        model, transform, stats = build(*args, **kwargs)
        used["transform"] = transform
        return model, transform, stats

    patch = pytest.MonkeyPatch()
    patch.setattr(run, "build_model_and_transform", recording_build)
    try:
        code = cli(["train", "-m", "previt", "--model-name-or-path", str(checkpoint), "-d", "cpu",
                    "--dataset", str(tiny_dataset), "--val-size", "40", "--max-train-samples", "32", "-e", "1",
                    "-b", "16", "-l", "1e-3", "-s", str(save_folder), "--disable_tqdm", "true"])
    finally:
        patch.undo()
    assert code == 0
    return save_folder / "cifar-previt", used["transform"]


def test_the_run_folder_names_its_classes(previt_run):
    folder, _ = previt_run
    config = AutoConfig.from_pretrained(folder)
    assert [config.id2label[i] for i in range(config.num_labels)] == CLASS_NAMES
    assert config.label2id == {name: i for i, name in enumerate(CLASS_NAMES)}
    saved = json.loads((folder / "config.json").read_text())
    assert "label_descriptions" not in saved  # ImageNet's descriptions do not describe these classes


def test_pipeline_predicts_as_the_training_transform(previt_run):
    folder, transform = previt_run
    # Sharp random pixels, so that a different resize or a crop changes what the model sees.
    images = [Image.fromarray(p) for p in np.random.default_rng(7).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)]
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images]).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        expected = model(pixel_values=transform(pixels, train=False)).logits.softmax(-1)

    classifier = pipeline("image-classification", model=str(folder), device="cpu")
    for image, probabilities in zip(images, expected, strict=True):
        answer = {entry["label"]: entry["score"] for entry in classifier(image, top_k=len(CLASS_NAMES))}
        scores = torch.tensor([answer[name] for name in CLASS_NAMES])
        # PIL resizes 8-bit images (rounded to whole levels), training resizes floats: equal within that rounding.
        torch.testing.assert_close(scores, probabilities, atol=2e-3, rtol=0)


def test_evaluate_and_predict_use_the_class_names(previt_run, tmp_path, capsys):
    folder, _ = previt_run
    assert cli(["evaluate", "--model", str(folder), "--split", "validation", "--output", str(tmp_path)]) == 0
    results = json.loads((folder / "results.json").read_text())
    evaluation = json.loads((tmp_path / "evaluation-validation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(results["val_accuracy"])
    image = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(image)
    capsys.readouterr()
    assert cli(["predict", "--model", str(folder), str(image), "--top-k", "4"]) == 0
    named = [part.rsplit(" ", 1)[0] for part in capsys.readouterr().out.split(": ", 1)[1].strip().split(", ")]
    assert sorted(named) == sorted(CLASS_NAMES)
