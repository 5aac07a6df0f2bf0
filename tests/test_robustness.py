"""Corruptions, calibration, and `cifar-hf evaluate --corruptions --temperature-scale` writing onto the model card."""

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from synthetic import TIMM_VIT_TINY, pretend_online
from transformers import AutoModelForImageClassification, pipeline

import cifar_hf.hub as hub
from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train
from cifar_hf.robustness import (
    CORRUPTIONS,
    brier_score,
    corrupt,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from cifar_hf.robustness.calibration import calibration_report, with_temperature


@pytest.fixture(scope="module")
def smooth_images():
    """Natural-looking images: random 4x4 colour fields enlarged smoothly to 32x32 (noise would hide blur)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((32, 32), Image.BICUBIC)) for s in small])


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_seeded_keeps_shape_and_grows_with_severity(name, smooth_images):
    first, again = corrupt(smooth_images, name, 3, seed=1), corrupt(smooth_images, name, 3, seed=1)
    assert first.shape == smooth_images.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    change = {s: np.abs(corrupt(smooth_images, name, s, seed=1).astype(int) - smooth_images).mean() for s in (1, 5)}
    if name == "elastic_transform":  # the reference trades a large affine at 1 for elastic displacement at 5
        assert change[1] > 0 and change[5] > 0
    else:
        assert change[5] > change[1] > 0


def test_noise_follows_the_reference_definition():
    grey = np.full((8, 32, 32, 3), 128, dtype=np.uint8)
    # gaussian_noise at severity 5: x + N(0, 0.10), so the added noise has a standard deviation of 25.5 grey levels
    assert (corrupt(grey, "gaussian_noise", 5).astype(float) - 128).std() == pytest.approx(25.5, rel=0.05)
    assert not np.array_equal(corrupt(grey, "gaussian_noise", 5, seed=0), corrupt(grey, "gaussian_noise", 5, seed=1))
    # impulse_noise at severity 5: 7% of the values become 0 or 255
    hit = np.isin(corrupt(grey, "impulse_noise", 5), (0, 255)).mean()
    assert hit == pytest.approx(0.07, abs=0.01)


def test_deterministic_corruptions_match_the_reference_definitions(smooth_images):
    """defocus (disk, cv2.filter2D), zoom (scipy clipped zoom), brightness (HSV), contrast: make_cifar_c.py's."""
    cv2 = pytest.importorskip("cv2")  # reference libraries, not dependencies of cifar-hf
    skimage_color = pytest.importorskip("skimage.color")
    scipy_zoom = pytest.importorskip("scipy.ndimage").zoom

    def defocus(image, radius, alias_blur):
        axis = np.arange(-8, 9)
        xx, yy = np.meshgrid(axis, axis)
        disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
        kernel = cv2.GaussianBlur(disk / disk.sum(), ksize=(3, 3), sigmaX=alias_blur)
        return np.stack([cv2.filter2D(image[..., c] / 255.0, -1, kernel) for c in range(3)], -1)

    def zoom(image, last):
        x, factors = (image / 255.0).astype(np.float32), np.arange(1, last, 0.01)
        total = x.copy()
        for z in factors:
            crop, top = int(np.ceil(32 / z)), (32 - int(np.ceil(32 / z))) // 2
            zoomed = scipy_zoom(x[top: top + crop, top: top + crop], (z, z, 1), order=1)
            trim = (zoomed.shape[0] - 32) // 2
            total += zoomed[trim: trim + 32, trim: trim + 32]
        return total / (len(factors) + 1)

    def brightness(image, c):
        hsv = skimage_color.rgb2hsv(image / 255.0)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        return skimage_color.hsv2rgb(hsv)

    def contrast(image, c):
        x = image / 255.0
        return (x - x.mean((0, 1), keepdims=True)) * c + x.mean((0, 1), keepdims=True)

    references = {"defocus_blur": lambda im, c: defocus(im, *c), "zoom_blur": zoom, "brightness": brightness,
                  "contrast": contrast}
    for name, reference in references.items():
        for severity in (1, 5):
            c = CORRUPTIONS[name][2][severity - 1]
            expected = np.stack([np.uint8(np.clip(reference(im, c), 0, 1) * 255) for im in smooth_images])
            difference = np.abs(corrupt(smooth_images, name, severity).astype(int) - expected)
            assert difference.max() <= 1 and difference.mean() < 0.05, (name, severity)


def calibrated_predictor(n: int, overconfidence: float = 1.0, seed: int = 0):
    """Two-class logits whose confidence is exactly the probability of being right, optionally sharpened."""
    gen = torch.Generator().manual_seed(seed)
    confidence = 0.5 + 0.5 * torch.rand(n, generator=gen)
    predicted = torch.randint(0, 2, (n,), generator=gen)
    correct = torch.rand(n, generator=gen) < confidence
    labels = torch.where(correct, predicted, 1 - predicted)
    margin = torch.log(confidence / (1 - confidence)) * overconfidence
    logits = torch.zeros(n, 2)
    logits[torch.arange(n), predicted] = margin
    return logits, labels


def test_ece_separates_calibrated_from_overconfident_and_temperature_fixes_it():
    logits, labels = calibrated_predictor(20000)
    assert expected_calibration_error(logits.softmax(-1), labels) < 0.015
    sharp = logits * 4
    assert expected_calibration_error(sharp.softmax(-1), labels) > 0.1
    temperature = fit_temperature(sharp, labels)
    assert temperature == pytest.approx(4, rel=0.1)
    before, after = calibration_report(sharp, labels), calibration_report(sharp, labels, temperature)
    assert after["nll"] < before["nll"] and after["ece"] < 0.02 and after["brier"] < before["brier"]


def test_nll_and_brier_on_a_worked_example():
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.4, 0.6]]))
    labels = torch.tensor([0, 0])
    assert negative_log_likelihood(logits, labels) == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2, rel=1e-5)
    assert brier_score(logits.softmax(-1), labels) == pytest.approx(((0.2**2 * 2) + (0.6**2 * 2)) / 2, rel=1e-5)


def test_bad_corruption_flags_are_one_line_errors(tmp_path, capsys):
    assert cli(["evaluate", "--model", str(tmp_path), "--corruptions", "rain"]) == 2
    assert cli(["evaluate", "--model", str(tmp_path), "--corruptions", "fog", "--severities", "0,6"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "rain" in errors[0] and "--severities" in errors[1]
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def trained_cnn(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("robust")
    assert train(["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-e", "3", "-b", "16",
                  "-l", "3e-3", "-s", str(save), "--disable_tqdm", "true", "-w"]) == 0
    return save / "cifar-cnn"


CHOSEN = "gaussian_noise,impulse_noise,fog,brightness"


def test_evaluate_reports_corruptions_and_calibration_and_writes_them_onto_the_card(trained_cnn, capsys):
    argv = ["evaluate", "--model", str(trained_cnn), "--corruptions", CHOSEN, "--severities", "1,5",
            "--temperature-scale"]
    assert cli(argv) == 0
    report = json.loads((trained_cnn / "evaluation-test.json").read_text())
    assert set(report["corruptions"]) == set(CHOSEN.split(","))
    assert all(set(by_severity) == {"1", "5"} for by_severity in report["corruptions"].values())
    severity = {s: np.mean([a[s] for a in report["corruptions"].values()]) for s in ("1", "5")}
    assert severity["5"] < severity["1"] <= 1  # a trained model loses accuracy as corruption grows
    assert report["mean_corruption_accuracy"] == pytest.approx((severity["1"] + severity["5"]) / 2)
    drop = 1 - report["mean_corruption_accuracy"] / report["accuracy"]
    assert report["relative_corruption_drop"] == pytest.approx(drop)
    assert report["corrupted_splits_from_cache"] == 0
    assert set(report["calibration"]) == {"ece", "nll", "brier"} and report["corruption_eval_seconds"] > 0
    assert report["calibration"]["nll"] == pytest.approx(report["loss"], rel=1e-5)
    scaled = report["temperature_scaling"]
    assert scaled["temperature"] > 0 and scaled["fitted_on"] == "validation"
    for figure in ("robustness-test.png", "reliability_diagram-test.png"):
        with Image.open(trained_cnn / figure) as png:
            assert png.size[0] >= 300

    card = ModelCard.load(trained_cnn / "README.md")  # parses with huggingface_hub
    entries = {(r.dataset_config, r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert sum(metric_name in ("validation accuracy", "test accuracy") for _, _, metric_name in entries) == 2
    assert any(metric == "ece" and value == round(report["calibration"]["ece"], 4)
               for (_, metric, _), value in entries.items())
    assert any(config == hub.CORRUPTED_CONFIG and value == round(report["mean_corruption_accuracy"], 4)
               for (config, _, _), value in entries.items())
    assert "## Evaluations" in card.text

    # a second model would reuse the corrupted splits: the same run now reads every one from the cache
    assert cli(argv) == 0
    again = json.loads((trained_cnn / "evaluation-test.json").read_text())
    assert again["corrupted_splits_from_cache"] == 8 and again["corruptions"] == report["corruptions"]
    assert "corruptions: mean accuracy" in capsys.readouterr().out


def test_temperature_on_the_validation_split_is_cross_fitted(trained_cnn, tmp_path):
    assert cli(["evaluate", "--model", str(trained_cnn), "--split", "validation", "--temperature-scale",
                "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation-validation.json").read_text())
    assert "cross-fitted" in report["temperature_scaling"]["fitted_on"] and "corruptions" not in report
    assert (tmp_path / "reliability_diagram-validation.png").exists()
    assert not (tmp_path / "robustness-validation.png").exists()


def test_push_sends_exactly_the_evaluation_results_without_a_token(trained_cnn, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(hub, "metadata_update", lambda *args, **kwargs: calls.append((args, kwargs)) or "https://x/c")
    pretend_online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_CANARY_do_not_pass")
    assert cli(["evaluate", "--model", str(trained_cnn), "--corruptions", "fog", "--severities", "2",
                "--output", str(tmp_path), "--push", "me/tiny-cnn"]) == 0
    (args, kwargs), = calls
    report = json.loads((tmp_path / "evaluation-test.json").read_text())
    assert args[0] == "me/tiny-cnn" and "token" not in kwargs and "CANARY" not in repr(calls)
    results = args[1]["model-index"][0]["results"]
    metrics = {m["name"]: m["value"] for r in results for m in r["metrics"]}
    assert metrics == {"test ece": round(report["calibration"]["ece"], 4),
                       "test nll": round(report["calibration"]["nll"], 4),
                       "test brier": round(report["calibration"]["brier"], 4),
                       "mean corruption accuracy (1 corruptions, severities 2)":
                           round(report["mean_corruption_accuracy"], 4)}


def test_a_refused_push_is_one_line_and_keeps_the_evaluation(trained_cnn, tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise PermissionError("403 Forbidden: you cannot write to me/tiny-cnn\n\nRequest ID: abc")

    monkeypatch.setattr(hub, "metadata_update", refuse)
    pretend_online(monkeypatch)
    assert cli(["evaluate", "--model", str(trained_cnn), "--output", str(tmp_path), "--push", "me/tiny-cnn"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: --push me/tiny-cnn failed: 403 Forbidden: you cannot write to me/tiny-cnn "
                       f"(the evaluation is saved in {tmp_path})")
    assert "Traceback" not in "\n".join(err) and (tmp_path / "evaluation-test.json").is_file()


def test_another_test_set_reports_the_gap_to_the_runs_own_accuracy(trained_cnn, tiny_dataset_no_test, tmp_path):
    assert cli(["evaluate", "--model", str(trained_cnn), "--dataset", str(tiny_dataset_no_test), "--split",
                "validation", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation-validation.json").read_text())
    trained = json.loads((trained_cnn / "results.json").read_text())
    assert report["shift"]["run_split"] == "test" and report["shift"]["run_accuracy"] == trained["test_accuracy"]
    assert report["shift"]["accuracy_gap"] == pytest.approx(trained["test_accuracy"] - report["accuracy"])
    assert len(hub.evaluation_results(report, trained["dataset"])) == 4  # its accuracy is new information


def test_save_calibrated_writes_a_copy_whose_pipeline_gives_the_calibrated_probabilities(trained_cnn, tmp_path,
                                                                                         capsys):
    before = {p.name: p.read_bytes() for p in trained_cnn.iterdir() if p.suffix in (".safetensors", ".json")}
    calibrated = tmp_path / "calibrated"
    assert cli(["evaluate", "--model", str(trained_cnn), "--temperature-scale", "--save-calibrated", str(calibrated),
                "--output", str(tmp_path / "evaluation")]) == 0
    temperature = json.loads((tmp_path / "evaluation" / "evaluation-test.json").read_text())[
        "temperature_scaling"]["temperature"]
    assert json.loads((calibrated / "config.json").read_text())["calibration_temperature"] == temperature != 1
    assert {p.name: p.read_bytes() for p in trained_cnn.iterdir() if p.name in before} == before  # run untouched

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    original = pipeline("image-classification", model=str(trained_cnn), top_k=None)
    logits = original.model(**original.image_processor(image, return_tensors="pt")).logits[0].detach()
    expected = torch.softmax(logits / temperature, -1)
    names = original.model.config.id2label
    classify = pipeline("image-classification", model=str(calibrated), top_k=None)
    scores = {p["label"]: p["score"] for p in classify(image)}
    assert all(scores[names[i]] == pytest.approx(float(expected[i]), abs=1e-5) for i in range(len(names)))

    with pytest.raises(SystemExit) as refused:  # never over an existing folder
        cli(["evaluate", "--model", str(trained_cnn), "--temperature-scale", "--save-calibrated", str(calibrated)])
    assert refused.value.code == 2
    assert "already exists: give a new folder" in capsys.readouterr().err


@pytest.mark.parametrize("checkpoint", ["timm", "transformers"])
def test_the_temperature_folds_into_timm_and_transformers_vits(checkpoint, tiny_imagenet_vit, tmp_path):
    folder = TIMM_VIT_TINY if checkpoint == "timm" else tiny_imagenet_vit
    model = AutoModelForImageClassification.from_pretrained(folder, dtype=torch.float32).eval()
    size = model.config.pretrained_cfg["input_size"][-1] if checkpoint == "timm" else model.config.image_size
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    calibrated = with_temperature(model, 2.5, pixels)
    calibrated.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(pixel_values=pixels).logits, model(pixel_values=pixels).logits / 2.5, atol=1e-5)
    assert reloaded.config.calibration_temperature == 2.5
