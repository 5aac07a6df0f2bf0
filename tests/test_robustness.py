"""Corruptions, calibration, and `cifar-hf evaluate --corruptions --temperature-scale` writing onto the model card."""

import json
import shutil

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from synthetic import (
    CLASS_NAMES,
    TIMM_VIT_TINY,
    needs_timm_vit_tiny,
    pretend_online,
    synthetic_images,
    write_hub_dataset,
)
from transformers import AutoModelForImageClassification, pipeline

import cifar_hf.hub as hub
from cifar_hf.__main__ import main as cli
from cifar_hf.commands.evaluate import shift_line
from cifar_hf.commands.train import main as train
from cifar_hf.metrics import mean_cross_entropy
from cifar_hf.robustness import (
    CORRUPTIONS,
    brier_score,
    corrupt,
    expected_calibration_error,
    fit_temperature,
)
from cifar_hf.robustness.calibration import calibration_report, with_temperature
from cifar_hf.robustness.corruptions import parse_corruptions


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
    expected = -(np.log(0.8) + np.log(0.4)) / 2
    assert mean_cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-5)
    assert mean_cross_entropy(logits.numpy(), labels.numpy()) == pytest.approx(expected, rel=1e-5)  # Trainer's
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

    pretend_online(monkeypatch)
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
    report = json.loads((tmp_path / f"evaluation-{tiny_dataset_no_test.name}-validation.json").read_text())
    trained = json.loads((trained_cnn / "results.json").read_text())
    assert report["shift"]["run_split"] == "test" and report["shift"]["run_accuracy"] == trained["test_accuracy"]
    assert report["shift"]["accuracy_gap"] == pytest.approx(trained["test_accuracy"] - report["accuracy"])
    assert len(hub.evaluation_results(report, trained)) == 4  # its accuracy is new information


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


@pytest.mark.parametrize("checkpoint", [pytest.param("timm", marks=needs_timm_vit_tiny), "transformers"])
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


# --- evaluate on another dataset, and on a run folder whose results.json is not a run's ---------------------------

def image_folder(root, count: int, seed: int, split: str = "test"):
    """PNGs in root/<split>/<class>/: columns `image` and `label`, not the runs' `img`."""
    images, labels = synthetic_images(count, seed=seed)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / split / CLASS_NAMES[label]).mkdir(parents=True, exist_ok=True)
        image.save(root / split / CLASS_NAMES[label] / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def subset_run(tiny_dataset, tmp_path_factory):
    """A run evaluated on 20-image subsets (--max-eval-samples 20)."""
    save = tmp_path_factory.mktemp("subset")
    assert train(["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-e", "1", "-b", "16",
                  "--max-eval-samples", "20", "-s", str(save), "--disable_tqdm", "true"]) == 0
    return save / "cifar-cnn"


def test_the_runs_subset_applies_to_its_own_dataset_and_another_is_scored_whole(subset_run, tmp_path, capsys):
    assert cli(["evaluate", "--model", str(subset_run), "--output", str(tmp_path)]) == 0
    own = json.loads((tmp_path / "evaluation-test.json").read_text())
    trained = json.loads((subset_run / "results.json").read_text())
    assert own["num_images"] == 20 and own["accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
    assert "shift" not in own and "shift:" not in capsys.readouterr().out

    photos = image_folder(tmp_path / "photos", 48, seed=21)  # columns image/label: found as training finds them
    assert cli(["evaluate", "--model", str(subset_run), "--dataset", str(photos), "--output", str(tmp_path)]) == 0
    other = json.loads((tmp_path / "evaluation-photos-test.json").read_text())
    assert other["num_images"] == 48 and other["dataset"] == str(photos)
    gap = other["shift"]["accuracy_gap"]
    assert gap == pytest.approx(trained["test_accuracy"] - other["accuracy"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("shift:"))
    assert line == shift_line(other["shift"]) and ("below" if gap > 0 else "above" if gap < 0 else "equal") in line
    assert json.loads((tmp_path / "evaluation-test.json").read_text()) == own  # the run's own evaluation stays


def test_columns_the_other_dataset_lacks_are_found_as_training_finds_them(trained_cnn, tmp_path):
    renamed = tmp_path / "renamed"  # neither the run's `img` nor its `label`: the only image and class-label columns
    write_hub_dataset(renamed, {"test": synthetic_images(12, seed=25)}, image_column="picture", label_column="kind")
    assert cli(["evaluate", "--model", str(trained_cnn), "--dataset", str(renamed), "--output", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "evaluation-renamed-test.json").read_text())["num_images"] == 12


def test_the_shift_line_says_above_or_below_by_the_sign():
    shift = {"run_split": "validation", "run_accuracy": 0.165, "run_dataset": "cifar10"}
    assert shift_line({**shift, "accuracy_gap": -0.02}) == (
        "shift: 0.0200 above the run's own validation accuracy 0.1650 on cifar10")
    assert shift_line({**shift, "accuracy_gap": 0.02}).startswith("shift: 0.0200 below the run's own")
    assert shift_line({**shift, "accuracy_gap": 0.0}).startswith("shift: equal to the run's own")


def test_one_split_of_two_datasets_both_stay_and_both_rows_reach_the_card(subset_run, tmp_path):
    first = image_folder(tmp_path / "a" / "photos", 12, seed=22)
    second = image_folder(tmp_path / "b" / "photos", 16, seed=23)  # another folder of the same name
    for dataset in (first, second, first):  # evaluating the first again replaces only its own evaluation
        assert cli(["evaluate", "--model", str(subset_run), "--dataset", str(dataset)]) == 0
    written = sorted(p.name for p in subset_run.glob("evaluation-photos*-test.json"))
    assert len(written) == 2 and "evaluation-photos-test.json" in written
    reports = {name: json.loads((subset_run / name).read_text()) for name in written}
    assert (reports["evaluation-photos-test.json"]["dataset"], reports["evaluation-photos-test.json"]["num_images"]) \
        == (str(first), 12)
    assert sorted((r["dataset"], r["num_images"]) for r in reports.values()) == [(str(first), 12), (str(second), 16)]
    for name in written:
        stem = name.removeprefix("evaluation-").removesuffix(".json")
        assert (subset_run / f"confusion_matrix-{stem}.png").is_file()
        assert (subset_run / f"reliability_diagram-{stem}.png").is_file()
    card = (subset_run / "README.md").read_text()
    assert "| photos | test | 12 |" in card and "| photos | test | 16 |" in card  # by folder name: no local path
    assert str(tmp_path) not in card


def test_the_runs_own_dataset_written_otherwise_is_still_its_own(trained_cnn, tiny_dataset, tmp_path, capsys):
    (tmp_path / "link").symlink_to(tiny_dataset)
    trained = json.loads((trained_cnn / "results.json").read_text())
    for written in (f"{tiny_dataset}/", str(tmp_path / "link")):
        out = tmp_path / f"out-{len(written)}"
        assert cli(["evaluate", "--model", str(trained_cnn), "--dataset", written, "--output", str(out)]) == 0
        report = json.loads((out / "evaluation-test.json").read_text())
        assert "shift" not in report and report["dataset"] == trained["dataset"]
        assert report["accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
        assert "shift:" not in capsys.readouterr().out
        assert [p.name for p in out.glob("evaluation-*.json")] == ["evaluation-test.json"]


@pytest.mark.parametrize("foreign", ['{"accuracy": 0.9}', "{}"])
def test_a_results_json_that_is_no_runs_is_one_warning_and_no_shift(foreign, trained_cnn, tiny_dataset, tmp_path,
                                                                    capsys):
    model = tmp_path / "foreign"
    shutil.copytree(trained_cnn, model, ignore=shutil.ignore_patterns("checkpoint-*", "evaluation-*", "*.png"))
    (model / "results.json").write_text(foreign)
    assert cli(["evaluate", "--model", str(model), "--dataset", str(tiny_dataset), "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"warning: {model / 'results.json'} is not a training run's results: evaluating without the run's dataset, "
        "settings and accuracy"]
    report = json.loads((tmp_path / f"evaluation-{tiny_dataset.name}-test.json").read_text())
    assert report["num_images"] == 80 and "shift" not in report and "shift:" not in captured.out
    assert (model / "results.json").read_text() == foreign  # and its card is left alone: no run to describe


@pytest.mark.parametrize("text, kind", [("[]", "list"), ("null", "NoneType")])
def test_a_results_json_that_is_no_json_object_is_one_line(text, kind, trained_cnn, tmp_path, capsys):
    model = tmp_path / "damaged"
    shutil.copytree(trained_cnn, model, ignore=shutil.ignore_patterns("checkpoint-*", "evaluation-*", "*.png"))
    (model / "results.json").write_text(text)
    assert cli(["evaluate", "--model", str(model), "--output", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot read {model / 'results.json'}: not a JSON object but {kind}; restore it, or give --dataset "
        "explicitly after moving it away"]


def test_a_damaged_earlier_evaluation_is_left_out_of_the_card_not_an_error(trained_cnn, tmp_path, caplog):
    model = tmp_path / "run"
    shutil.copytree(trained_cnn, model, ignore=shutil.ignore_patterns("checkpoint-*", "evaluation-*"))
    (model / "evaluation-other-test.json").write_text('{"accuracy": 0.')  # a write cut short long ago
    assert cli(["evaluate", "--model", str(model), "--split", "validation"]) == 0
    assert "evaluation-other-test.json" in caplog.text and "left out of the model card" in caplog.text
    assert "| validation |" in (model / "README.md").read_text()


def test_temperature_scaling_without_a_validation_split_names_the_flag(trained_cnn, tmp_path, capsys):
    test_only = image_folder(tmp_path / "test-only", 8, seed=24)
    out = tmp_path / "out"
    assert cli(["evaluate", "--model", str(trained_cnn), "--dataset", str(test_only), "--temperature-scale",
                "--output", str(out)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --temperature-scale needs a validation split to fit the temperature; {test_only} has none "
        "(splits: test)"]
    assert not out.exists()


def test_severities_without_corruptions_and_an_empty_list_are_one_line(tmp_path, capsys):
    assert cli(["evaluate", "--model", str(tmp_path), "--severities", "3"]) == 2
    assert cli(["evaluate", "--model", str(tmp_path), "--corruptions", ""]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["error: --severities needs --corruptions (the corruptions to score at those severities)",
                      "error: --corruptions: no corruption named; use 'all' or some of " + ", ".join(CORRUPTIONS)]
    assert parse_corruptions("fog,fog, contrast,fog") == ["fog", "contrast"]  # each scored once
    assert not list(tmp_path.iterdir())
