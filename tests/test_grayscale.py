"""A run trained on grey images reads every input as grey (predict, demo, ONNX contract, evaluate); a colour run as
before."""

import json

import numpy as np
import pytest
from PIL import Image
from synthetic import TIMM_VIT_TINY, needs_timm_vit_tiny, synthetic_images, tiny_run_args, write_hub_dataset

from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train
from cifar_hf.data.rgb import grey_pixels, is_grayscale, to_rgb
from cifar_hf.serving.demo_app import Classifier
from cifar_hf.serving.onnx_export import contract_pixels, load_contract


def grey(images):
    return [image.convert("L") for image in images]


@pytest.fixture(scope="module")
def grey_dataset(tmp_path_factory):
    """The grey (mode L) twin of tiny_dataset's images: its test split is tiny_dataset's test split in grey."""
    folder = tmp_path_factory.mktemp("tiny-grey")
    (train_images, train_labels), (test_images, test_labels) = synthetic_images(120, seed=1), synthetic_images(80, 2)
    return write_hub_dataset(folder, {"train": (grey(train_images), train_labels),
                                      "test": (grey(test_images), test_labels)})


@pytest.fixture(scope="module")
def runs(grey_dataset, tiny_dataset, tmp_path_factory):
    """{"grey": a run trained on grey_dataset, "colour": one on tiny_dataset}, one brief epoch each."""
    folders = {}
    for name, dataset in (("grey", grey_dataset), ("colour", tiny_dataset)):
        save = tmp_path_factory.mktemp(f"{name}-run")
        assert train(tiny_run_args(dataset, save, "-e", "1", "--max-train-samples", "64", "-b", "16")) == 0
        folders[name] = save / "cifar-cnn"
    return folders


@pytest.fixture
def colour_and_grey(tmp_path):
    """A saturated colour image (clearly not grey) and the same image as training's grey decode sees it."""
    rng = np.random.default_rng(0)
    pixels = np.clip(np.array([220, 30, 60]) + rng.integers(-30, 31, (40, 48, 3)), 0, 255).astype(np.uint8)
    colour = Image.fromarray(pixels)
    return colour, to_rgb(colour.convert("L"))


def test_the_run_records_whether_its_training_images_were_grey(runs):
    for name, expected in (("grey", True), ("colour", False)):
        results = json.loads((runs[name] / "results.json").read_text())
        assert results["hyperparameters"]["data"]["grayscale"] is expected
        processor = json.loads((runs[name] / "preprocessor_config.json").read_text())
        assert processor.get("grayscale", False) is expected


def test_grey_pixels_are_pils_luma_and_leave_grey_images_unchanged():
    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    pils = np.stack([np.asarray(Image.fromarray(p).convert("L").convert("RGB")) for p in pixels])
    assert np.array_equal(grey_pixels(pixels), pils) and is_grayscale(pils) and not is_grayscale(pixels)
    assert np.array_equal(grey_pixels(pils), pils)


def predicted(output: str) -> list[str]:
    """The classes and probabilities of each `path: class p, ...` line, without the path."""
    return [line.split(": ", 1)[1] for line in output.strip().splitlines()]


def test_predict_reads_a_colour_image_as_grey_for_a_grey_run_only(runs, colour_and_grey, tmp_path, capsys):
    colour, grey_version = colour_and_grey
    colour.save(tmp_path / "colour.png")
    grey_version.save(tmp_path / "grey.png")
    shown = {}
    for name, run in runs.items():
        assert cli(["predict", "--model", str(run), "--top-k", "4",
                    str(tmp_path / "colour.png"), str(tmp_path / "grey.png")]) == 0
        shown[name] = predicted(capsys.readouterr().out)
    assert shown["grey"][0] == shown["grey"][1]
    assert shown["colour"][0] != shown["colour"][1]  # a colour run sees colour, as before


def test_demo_reads_a_colour_image_as_grey_for_a_grey_run_only(runs, colour_and_grey):
    colour, grey_version = colour_and_grey
    grey_run = Classifier(str(runs["grey"]))
    assert grey_run.probabilities(colour) == pytest.approx(grey_run.probabilities(grey_version), abs=1e-6)
    colour_run = Classifier(str(runs["colour"]))
    assert colour_run.probabilities(colour) != pytest.approx(colour_run.probabilities(grey_version), abs=1e-6)


def test_the_onnx_contract_says_grayscale_and_its_preprocessing_converts(runs, colour_and_grey, tmp_path):
    colour, grey_version = colour_and_grey
    assert cli(["export", "--model", str(runs["grey"]), "--output", str(tmp_path / "grey")]) == 0
    contract = load_contract(tmp_path / "grey" / "model.onnx")
    assert contract["grayscale"] is True
    assert np.array_equal(contract_pixels([colour], contract), contract_pixels([grey_version], contract))
    colour_contract = {**contract, "grayscale": False}  # what a colour run's contract says
    assert not np.array_equal(contract_pixels([colour], colour_contract),
                              contract_pixels([grey_version], colour_contract))


def test_evaluate_scores_a_colour_dataset_as_its_grey_twin(runs, grey_dataset, tiny_dataset, tmp_path):
    reports = {}
    for name, dataset in (("own", grey_dataset), ("colour", tiny_dataset)):
        output = tmp_path / name
        assert cli(["evaluate", "--model", str(runs["grey"]), "--dataset", str(dataset), "--split", "test",
                    "--output", str(output)]) == 0
        [report] = output.glob("evaluation-*.json")
        reports[name] = json.loads(report.read_text())
    assert reports["colour"]["loss"] == pytest.approx(reports["own"]["loss"], rel=1e-5)
    assert reports["colour"]["confusion_matrix"] == reports["own"]["confusion_matrix"]


def test_the_space_app_reads_a_colour_upload_as_grey_for_a_grey_run(runs, colour_and_grey, tmp_path, monkeypatch):
    import importlib.util

    colour, grey_version = colour_and_grey
    folder = tmp_path / "space"
    assert cli(["demo", "--model", "me/tiny-grey", "--write-space", str(folder)]) == 0
    monkeypatch.setenv("CIFAR_HF_MODEL", str(runs["grey"]))  # the app serves the local run in place of the Hub id
    monkeypatch.syspath_prepend(str(folder))  # as `python app.py` in the Space: rgb.py beside it
    spec = importlib.util.spec_from_file_location("grey_space_app", folder / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert app.GRAYSCALE is True
    assert app.predict(colour) == pytest.approx(app.predict(grey_version), abs=1e-6)


@needs_timm_vit_tiny
def test_a_grey_timm_run_reads_colour_as_grey_too(grey_dataset, colour_and_grey, tmp_path):
    # A timm folder's processor is built from config.pretrained_cfg, not preprocessor_config.json: it says so there.
    colour, grey_version = colour_and_grey
    assert train(tiny_run_args(grey_dataset, tmp_path, "-e", "1", "--max-train-samples", "8", "--max-eval-samples",
                               "8", "-b", "8", "--model-name-or-path", str(TIMM_VIT_TINY), model="previt")) == 0
    config = json.loads((tmp_path / "cifar-previt" / "config.json").read_text())
    assert config["pretrained_cfg"]["grayscale"] is True
    classifier = Classifier(str(tmp_path / "cifar-previt"))
    assert classifier.probabilities(colour) == pytest.approx(classifier.probabilities(grey_version), abs=1e-6)


def test_a_grey_run_scores_a_colour_test_split_as_grey_as_evaluate_does(tmp_path):
    """Training's own test accuracy is measured on the inputs the model reads afterwards: grey, here too."""
    (train_images, train_labels), test = synthetic_images(120, seed=1), synthetic_images(80, 2)
    dataset = write_hub_dataset(tmp_path / "grey-train-colour-test", {"train": (grey(train_images), train_labels),
                                                                      "test": test})
    assert train(tiny_run_args(dataset, tmp_path, "-e", "1", "--max-train-samples", "64", "-b", "16")) == 0
    results = json.loads((tmp_path / "cifar-cnn" / "results.json").read_text())
    assert results["hyperparameters"]["data"]["grayscale"] is True
    assert cli(["evaluate", "--model", str(tmp_path / "cifar-cnn"), "--split", "test", "--output",
                str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "evaluation-test.json").read_text())
    assert report["loss"] == pytest.approx(results["test_loss"], rel=1e-5)
    assert report["accuracy"] == pytest.approx(results["test_accuracy"])
