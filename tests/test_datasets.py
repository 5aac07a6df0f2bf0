"""Datasets other than CIFAR-10 (issue 17): column choice, native image size, the data's own statistics, top-5,
and `evaluate` on any labelled split. Every dataset is made here, tiny (CPU, no network)."""

import io
import json

import datasets
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from synthetic import CLASS_NAMES, synthetic_images, write_hub_dataset

from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train
from cifar_hf.data import augment, load_cifar
from cifar_hf.data import decode as decode_module
from cifar_hf.data.augment import CIFAR10_MEAN
from cifar_hf.data.loading import find_columns
from cifar_hf.data.preprocessing import image_processor_kwargs
from cifar_hf.data.statistics import channel_statistics
from cifar_hf.errors import InputError, UsageError
from cifar_hf.metrics import top5_accuracy
from cifar_hf.training.arguments import RunArguments, parse_arguments
from cifar_hf.training.run import build_trainer

QUIET = ["-d", "cpu", "--disable_tqdm", "true"]
NO_REPORTS = {"report_to": "none", "disable_tqdm": True}


def save_to_disk(folder, splits: dict, features: datasets.Features):
    """{split: {column: values}} written with `save_to_disk`, which keeps the column order and every ClassLabel."""
    datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(columns, features=features) for name, columns in splits.items()}
    ).save_to_disk(str(folder))
    return folder


@pytest.fixture(scope="module")
def cifar100_layout(tmp_path_factory):
    """CIFAR-100's Hub columns, `coarse_label` before `fine_label`: 100 fine classes in 20 superclasses, 16x16."""
    features = datasets.Features({
        "img": datasets.Image(),
        "coarse_label": datasets.ClassLabel(names=[f"super{i}" for i in range(20)]),
        "fine_label": datasets.ClassLabel(names=[f"fine{i}" for i in range(100)]),
    })

    def split(num_images, seed):
        images, fine = synthetic_images(num_images, seed=seed, size=16, num_classes=100)
        return {"img": images, "coarse_label": [label // 5 for label in fine], "fine_label": fine}

    return save_to_disk(tmp_path_factory.mktemp("cifar100"), {"train": split(200, 1), "test": split(100, 2)}, features)


@pytest.fixture(scope="module")
def images64(tmp_path_factory):
    """4 colour classes at 64x64: 96 train and 40 test images."""
    folder = tmp_path_factory.mktemp("images64")
    return write_hub_dataset(folder, {"train": synthetic_images(96, seed=11, size=64),
                                      "test": synthetic_images(40, seed=12, size=64)})


@pytest.fixture(scope="module")
def cnn64_run(images64, tmp_path_factory):
    save = tmp_path_factory.mktemp("runs64")
    assert train(["-m", "cnn", *QUIET, "--dataset", str(images64), "--val-size", "16", "-e", "3", "-b", "16",
                  "-l", "3e-3", "-s", str(save)]) == 0
    return save / "cifar-cnn"


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ")
    return error[0]


# --- columns -------------------------------------------------------------------------------------------------------

def test_cifar100_layout_trains_on_the_100_fine_labels_by_default(cifar100_layout):
    data = load_cifar(str(cifar100_layout), val_size=100)
    assert data.label_column == "fine_label" and len(data.class_names) == 100
    assert data.class_names[7] == "fine7" and data.image_size == 16
    assert sorted(np.concatenate([data.train.labels, data.validation.labels])) == sorted(list(range(100)) * 2)


def test_label_column_coarse_trains_on_the_20_superclasses_with_top5(cifar100_layout, tmp_path, capsys):
    assert train(["-m", "cnn", *QUIET, "--dataset", str(cifar100_layout), "--label-column", "coarse_label",
                  "--val-size", "20", "-e", "1", "-b", "32", "-s", str(tmp_path)]) == 0
    run = tmp_path / "cifar-cnn"
    results = json.loads((run / "results.json").read_text())
    assert results["label_column"] == "coarse_label" and results["num_classes"] == 20
    assert json.loads((run / "config.json").read_text())["id2label"]["19"] == "super19"
    assert 0 <= results["val_top5_accuracy"] <= 1 and results["test_top5_accuracy"] >= results["test_accuracy"]
    assert "20 classes (coarse_label)" in capsys.readouterr().out
    card = yaml.safe_load((run / "README.md").read_text().split("---\n")[1])
    assert "cifar10" not in card["tags"]  # no CIFAR-10 tag on other data


def test_several_label_columns_with_other_names_stop_before_any_work(tmp_path, capsys):
    features = datasets.Features({"img": datasets.Image(), "animal": datasets.ClassLabel(names=["cat", "dog"]),
                                  "colour": datasets.ClassLabel(names=["red", "blue"])})
    images, labels = synthetic_images(12, seed=3, num_classes=2)
    folder = save_to_disk(tmp_path / "two", {"train": {"img": images, "animal": labels, "colour": labels[::-1]}},
                          features)
    assert train(["-m", "cnn", *QUIET, "--dataset", str(folder), "--val-size", "2", "-s", str(tmp_path)]) == 1
    line = one_line_error(capsys)
    assert "animal, colour" in line and "--label-column" in line
    assert not (tmp_path / "cifar-cnn").exists()
    assert load_cifar(str(folder), val_size=2, label_column="colour").class_names == ["red", "blue"]
    with pytest.raises(InputError, match="--label-column size: no such column; columns found: img, animal, colour"):
        load_cifar(str(folder), val_size=2, label_column="size")


def test_column_flags_accept_the_hf_example_spellings():
    args, _ = parse_arguments(["-m", "cnn", "--image_column_name", "img", "--label_column_name", "coarse_label",
                               "--image-size", "64"])
    assert (args.image_column, args.label_column, args.image_size) == ("img", "coarse_label", 64)
    with pytest.raises(UsageError, match="--image-mean and --image-std go together"):
        parse_arguments(["-m", "cnn", "--image-mean", "0.5", "0.5", "0.5"])


# --- image size ------------------------------------------------------------------------------------------------------

def test_64px_images_stay_64px_in_training_and_in_the_saved_processor(cnn64_run):
    results = json.loads((cnn64_run / "results.json").read_text())
    processor = json.loads((cnn64_run / "preprocessor_config.json").read_text())
    assert results["image_size"] == 64 and processor["size"] == {"height": 64, "width": 64}
    assert json.loads((cnn64_run / "config.json").read_text())["image_size"] == 64
    assert results["val_accuracy"] > 0.5  # 4 colour classes are learnt at 64x64 too


@pytest.mark.parametrize("model", ["resnet", "vit"])
def test_resnet_and_vit_train_at_64px(model, images64, tmp_path):
    data = load_cifar(str(images64), val_size=8, max_train_samples=16)
    args = RunArguments(model=model, device="cpu", batch_size=8)
    trainer, transform, hyperparameters = build_trainer(args, {**NO_REPORTS, "max_steps": 1},
                                                        data, tmp_path)
    trainer.train()
    assert trainer.model.config.image_size == 64 and hyperparameters["data"]["model_input_size"] == 64
    assert transform.crop_padding == hyperparameters["recipe_settings"]["crop_padding"] == 8  # the recipe's 4 at 32
    assert image_processor_kwargs(transform)["size"] == {"height": 64, "width": 64}
    pixels = torch.from_numpy(data.validation.pixels).permute(0, 3, 1, 2)
    assert transform(pixels, train=False).shape == (8, 3, 64, 64)
    assert trainer.model.eval()(pixel_values=transform(pixels, train=False)).logits.shape == (8, 4)


def test_previt_resizes_64px_straight_to_the_checkpoint_size_once(images64, tmp_path, monkeypatch):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    checkpoint = tmp_path / "vit32"
    config = ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, num_labels=1000)
    ViTForImageClassification(config).save_pretrained(checkpoint)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4] * 3, image_std=[0.3] * 3).save_pretrained(
        checkpoint)
    data = load_cifar(str(images64), val_size=8, max_train_samples=16)
    args = RunArguments(model="previt", device="cpu", model_name_or_path=str(checkpoint))
    _, transform, hyperparameters = build_trainer(args, NO_REPORTS, data, tmp_path / "run")
    resizes = []
    original = augment.F.interpolate
    monkeypatch.setattr(augment.F, "interpolate",
                        lambda x, **kw: resizes.append((x.shape[-1], kw["size"])) or original(x, **kw))
    pixels = torch.from_numpy(data.validation.pixels).permute(0, 3, 1, 2)
    assert data.validation.pixels.shape[1:] == (64, 64, 3)  # stored at 64, not shrunk to 32 first
    assert transform(pixels, train=False).shape == (8, 3, 32, 32)
    assert resizes == [(64, (32, 32))]
    assert hyperparameters["data"]["normalisation"]["mean"] == (0.4, 0.4, 0.4)  # previt keeps the checkpoint's


def test_mixed_sizes_say_which_size_was_chosen_and_the_cache_follows_the_size(tmp_path, caplog, monkeypatch):
    images = [Image.new("RGB", (40, 40), (200, 40, 40))] * 6 + [Image.new("RGB", (24, 24), (40, 40, 200))] * 2
    write_hub_dataset(tmp_path, {"train": (images, [0, 1, 2, 3] * 2)})
    data = load_cifar(str(tmp_path), val_size=4)
    assert data.image_size == 40 and data.train.pixels.shape[1:] == (40, 40, 3)
    warnings = [r.getMessage() for r in caplog.records if "--image-size" in r.getMessage()]
    assert len(warnings) == 1 and "40x40: 6, 24x24: 2" in warnings[0] and "storing all at 40x40" in warnings[0]
    caplog.clear()
    data = load_cifar(str(tmp_path), val_size=4, image_size=24)  # a new size is decoded anew, not read from the cache
    assert data.image_size == 24 and data.train.pixels.shape[1:] == (24, 24, 3)
    assert not [r for r in caplog.records if "--image-size" in r.getMessage()]
    calls = []
    original = decode_module._decode_one
    monkeypatch.setattr(decode_module, "_decode_one", lambda *a: calls.append(1) or original(*a))
    assert load_cifar(str(tmp_path), val_size=4, image_size=24).train.pixels.shape[1] == 24
    assert load_cifar(str(tmp_path), val_size=4).train.pixels.shape[1] == 40
    assert calls == []  # both sizes were cached, each under its own fingerprint


# --- statistics ------------------------------------------------------------------------------------------------------

def test_channel_statistics_match_a_float_computation():
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    pixels[..., 2] = 9  # a constant channel divides by 1, not 0
    mean, std = channel_statistics(pixels)
    scaled = pixels.reshape(-1, 3) / 255
    assert mean == pytest.approx(scaled.mean(0), abs=1e-4)
    assert std[:2] == pytest.approx(scaled.std(0)[:2], abs=1e-4) and std[2] == 1.0


def test_the_training_splits_own_statistics_are_recorded_and_used(cnn64_run, images64):
    results = json.loads((cnn64_run / "results.json").read_text())
    recorded = results["hyperparameters"]["data"]["normalisation"]
    train_pixels = load_cifar(str(images64), val_size=16).train.pixels.reshape(-1, 3) / 255
    assert recorded["mean"] == pytest.approx(train_pixels.mean(0), abs=1e-4)
    assert recorded["std"] == pytest.approx(train_pixels.std(0), abs=1e-4)
    assert recorded["source"] == "training split (80 images)"
    processor = json.loads((cnn64_run / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx(recorded["mean"]) and processor["image_std"] == recorded["std"]
    assert recorded["mean"] != pytest.approx(CIFAR10_MEAN, abs=1e-2)
    assert "training split" in (cnn64_run / "README.md").read_text()


def test_image_mean_and_std_flags_override_the_statistics(images64, tmp_path):
    data = load_cifar(str(images64), val_size=8, max_train_samples=16)
    args = RunArguments(model="cnn", device="cpu", image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    _, transform, hyperparameters = build_trainer(args, NO_REPORTS, data, tmp_path)
    assert transform.mean == (0.5, 0.5, 0.5) and transform.std == (0.25, 0.25, 0.25)
    assert hyperparameters["data"]["normalisation"]["source"] == "--image-mean/--image-std"


def test_top5_accuracy_counts_the_true_class_among_the_five_highest():
    logits = np.tile(np.arange(12.0)[::-1], (3, 1))  # class 0 highest, class 11 lowest
    assert top5_accuracy(logits, np.array([0, 4, 5])) == pytest.approx(2 / 3)


# --- evaluate on any split -------------------------------------------------------------------------------------------

def test_evaluate_on_a_test_only_folder_equals_the_runs_own_test_accuracy(cnn64_run, tmp_path, capsys):
    images, labels = synthetic_images(40, seed=12, size=64)  # the run's test split, in a folder of its own
    reordered = CLASS_NAMES[::-1]  # and with the classes in another order: matched by name
    labels = [reordered.index(CLASS_NAMES[label]) for label in labels]
    folder = write_hub_dataset(tmp_path / "test-only", {"test": (images, labels)}, class_names=reordered)
    assert cli(["evaluate", "--model", str(cnn64_run), "--dataset", str(folder), "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation-test-only-test.json").read_text())  # named by dataset and split
    trained = json.loads((cnn64_run / "results.json").read_text())
    assert report["accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
    assert report["dataset"] == str(folder) and report["split"] == "test" and report["num_images"] == 40
    assert report["image_size"] == 64 and report["top5_accuracy"] is None  # 4 classes: no top-5
    assert "test: 40 images" in capsys.readouterr().out


def test_a_run_trained_on_a_relative_dataset_path_is_evaluated_on_that_dataset_from_anywhere(tiny_dataset, tmp_path,
                                                                                             monkeypatch, capsys):
    """results.json records the folder itself: from another directory, the same relative path names other data."""
    import shutil

    shutil.copytree(tiny_dataset, tmp_path / "here" / "ds")
    write_hub_dataset(tmp_path / "there" / "ds", {"train": synthetic_images(240, seed=9)})  # other images
    monkeypatch.chdir(tmp_path / "here")
    assert train(["-m", "cnn", *QUIET, "--dataset", "ds", "--val-size", "40", "-e", "1", "-s", "runs"]) == 0
    trained = json.loads((tmp_path / "here" / "runs" / "cifar-cnn" / "results.json").read_text())
    assert trained["dataset"] == str(tmp_path / "here" / "ds")
    monkeypatch.chdir(tmp_path / "there")
    assert cli(["evaluate", "--model", "../here/runs/cifar-cnn", "--split", "validation", "--output", "out"]) == 0
    report = json.loads((tmp_path / "there" / "out" / "evaluation-validation.json").read_text())
    assert report["dataset"] == trained["dataset"] and report["accuracy"] == pytest.approx(trained["val_accuracy"])


def test_evaluate_says_when_the_runs_training_split_has_changed_since(tmp_path, capsys):
    """The hold-out is redrawn by position: rows shuffled (or replaced) since the run draw other images, some of them
    trained on. Said in one line; the same data says nothing."""
    images, labels = synthetic_images(120, seed=5)
    dataset = write_hub_dataset(tmp_path / "ds", {"train": (images, labels)})
    assert train(["-m", "cnn", *QUIET, "--dataset", str(dataset), "--val-size", "40", "-e", "1", "-s",
                  str(tmp_path)]) == 0
    run = tmp_path / "cifar-cnn"
    assert cli(["evaluate", "--model", str(run), "--split", "validation"]) == 0
    assert "has changed" not in capsys.readouterr().err
    order = np.random.default_rng(0).permutation(len(labels))
    write_hub_dataset(dataset, {"train": ([images[i] for i in order], [labels[i] for i in order])})
    # rewritten in place: read as it is now, not from datasets' cache of the old files (keyed by its README config)
    assert load_cifar(str(dataset), val_size=40).full_train.labels.tolist() == [labels[i] for i in order]
    assert cli(["evaluate", "--model", str(run), "--split", "validation"]) == 0
    assert (f"warning: {dataset}'s training split has changed since the run (other images, or in another order): the "
            "hold-out drawn from it now may hold images the run trained on") in capsys.readouterr().err


def test_evaluate_names_a_class_the_model_does_not_know_in_one_line(cnn64_run, tmp_path, capsys):
    images, labels = synthetic_images(8, seed=13, size=64)
    folder = write_hub_dataset(tmp_path / "other", {"photos": (images, labels)},
                               class_names=["red", "green", "blue", "purple"])
    assert cli(["evaluate", "--model", str(cnn64_run), "--dataset", str(folder), "--split", "photos",
                "--output", str(tmp_path)]) == 1
    line = one_line_error(capsys)
    assert "purple" in line and "not among the model's 4 classes" in line
    assert cli(["evaluate", "--model", str(cnn64_run), "--dataset", str(folder), "--split", "nope"]) == 1
    assert "splits found: photos" in one_line_error(capsys)


# --- labels of every kind -------------------------------------------------------------------------------------------

STRING_FEATURES = datasets.Features({"img": datasets.Image(), "label": datasets.Value("string")})


@pytest.fixture(scope="module")
def string_label_run(tmp_path_factory):
    """A cnn trained on class names written as strings (no ClassLabel); its test split lacks 'ant' and has a 'yak'
    the training split never shows, so its own sorted classes are not training's."""
    images, labels = synthetic_images(48, seed=21, size=16, num_classes=3)
    test_images, test_labels = synthetic_images(12, seed=22, size=16, num_classes=3)
    folder = save_to_disk(tmp_path_factory.mktemp("strings"), {
        "train": {"img": images, "label": [["ant", "moth", "zebra"][label] for label in labels]},
        "test": {"img": test_images, "label": [["yak", "moth", "zebra"][label] for label in test_labels]},
    }, STRING_FEATURES)
    save = tmp_path_factory.mktemp("string-runs")
    assert train(["-m", "cnn", *QUIET, "--dataset", str(folder), "--val-size", "12", "-e", "1", "-b", "16",
                  "-s", str(save)]) == 0
    return folder, save / "cifar-cnn"


def test_string_labels_are_scored_by_evaluate_as_training_scored_them(string_label_run, tmp_path, caplog):
    folder, run = string_label_run
    trained = json.loads((run / "results.json").read_text())
    model_classes = json.loads((run / "config.json").read_text())["id2label"]
    assert list(model_classes.values()) == ["ant", "moth", "yak", "zebra"]  # train's and test's names, sorted
    assert cli(["evaluate", "--model", str(run), "--output", str(tmp_path)]) == 0  # the run's own test split
    report = json.loads((tmp_path / "evaluation-test.json").read_text())
    assert report["num_images"] == 12 and report["accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
    caplog.clear()
    data = load_cifar(str(folder), val_size=12)
    assert "classes with no training image (the model cannot learn them): yak" in caplog.text
    assert [data.class_names[label] for label in data.test.labels].count("yak") == 4


def test_a_class_folder_only_in_the_test_split_is_named_in_a_warning(tmp_path, caplog):
    images, labels = synthetic_images(16, seed=23, size=8)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        split = "test" if CLASS_NAMES[label] == "dark" or index < 4 else "train"  # no train/dark folder
        (tmp_path / split / CLASS_NAMES[label]).mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / split / CLASS_NAMES[label] / f"{index}.png")
    data = load_cifar(str(tmp_path), val_size=3)
    assert "dark" in data.class_names and len(data.class_names) == 4  # accepted: an output never trained
    warnings = [r.getMessage() for r in caplog.records if "no training image" in r.getMessage()]
    assert warnings == ["classes with no training image (the model cannot learn them): dark"]


def test_a_column_of_the_wrong_kind_is_one_line_before_any_work(cifar100_layout, string_label_run, tmp_path, capsys):
    for flag, column, expected in (
        ("--label-column", "img", "'img' holds images, not class labels; label columns found: coarse_label, "
                                  "fine_label"),
        ("--image-column", "fine_label", "'fine_label' holds class labels, not images; image columns found: img"),
    ):
        assert train(["-m", "cnn", *QUIET, "--dataset", str(cifar100_layout), flag, column, "--val-size", "20",
                      "-s", str(tmp_path)]) == 1
        assert one_line_error(capsys) == f"error: {flag} {column}: {expected}"
    assert list(tmp_path.iterdir()) == []
    _, run = string_label_run
    assert cli(["evaluate", "--model", str(run), "--label-column", "img", "--output", str(tmp_path)]) == 1
    assert one_line_error(capsys).endswith("'img' holds images, not class labels; label columns found: label")
    assert cli(["evaluate", "--model", str(run), "--image-column", "label", "--output", str(tmp_path)]) == 1
    assert "cannot be both the image and the label column" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []
    integers_named_img = datasets.Dataset.from_dict({"img": [1, 2], "label": [0, 1]})
    with pytest.raises(InputError, match=r"no image column \(looked for img or image; 'img' holds integers\)"):
        find_columns(integers_named_img)


def test_float_labels_are_classes_when_whole_and_one_line_when_not(tmp_path, capsys):
    features = datasets.Features({"img": datasets.Image(), "label": datasets.Value("float32")})
    images, labels = synthetic_images(12, seed=24, size=8, num_classes=2)
    whole = save_to_disk(tmp_path / "whole", {"train": {"img": images, "label": [float(x) for x in labels]}},
                         features)
    assert load_cifar(str(whole), val_size=2).class_names == ["0", "1"]
    fractions = save_to_disk(tmp_path / "fractions", {"train": {"img": images, "label": [0.0, 1.0, 0.3, 1.2] * 3}},
                             features)
    assert train(["-m", "cnn", *QUIET, "--dataset", str(fractions), "--val-size", "2", "-s", str(tmp_path / "runs")
                  ]) == 1
    assert one_line_error(capsys) == ("error: --dataset: column 'label' holds 0.3 in row 2 of split 'train' (6 such "
                                      "row(s)): class labels must be whole numbers (0, 1, 2, ...) or class names")
    assert not (tmp_path / "runs").exists()
    unlabelled = save_to_disk(tmp_path / "unlabelled", {"train": {"img": images, "label": [0.0, 1.0, None] * 4}},
                              features)
    with pytest.raises(InputError, match="row 2 of split 'train' has no label in column 'label' \\(4 such row"):
        load_cifar(str(unlabelled), val_size=2)


def with_a_truncated_image(images, labels, row: int):
    """The images as PNG bytes, row `row` cut short (undecodable), for write_hub_dataset."""
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    encoded[row]["bytes"] = encoded[row]["bytes"][:40]
    return encoded, labels


def test_evaluate_skips_undecodable_images_as_the_run_did_or_when_asked(tmp_path, capsys):
    """The decode error's advice, --skip-bad-images, is a flag evaluate takes; a run trained with it redraws its
    hold-out from the same images without being told."""
    bad = tmp_path / "bad"
    (bad / "plain_text").mkdir(parents=True)
    write_hub_dataset(bad, {"train": with_a_truncated_image(*synthetic_images(96, seed=21), row=5),
                            "test": with_a_truncated_image(*synthetic_images(24, seed=22), row=3)})
    assert train(["-m", "cnn", "-d", "cpu", "--dataset", str(bad), "--val-size", "16", "-e", "1", "-b", "16",
                  "-s", str(tmp_path / "runs"), "--skip-bad-images", "--disable_tqdm", "true"]) == 0
    run = tmp_path / "runs" / "cifar-cnn"
    results = json.loads((run / "results.json").read_text())
    assert results["bad_images_skipped"] == {"train": 1, "test": 1}
    capsys.readouterr()
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--output", str(tmp_path / "val")]) == 0
    scored = json.loads((tmp_path / "val" / "evaluation-validation.json").read_text())
    assert scored["num_images"] == 16 and scored["accuracy"] == pytest.approx(results["val_accuracy"])
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--no-skip-bad-images"]) == 1
    assert "or pass --skip-bad-images" in capsys.readouterr().err  # strict decoding, asked for

    clean = tmp_path / "clean"
    (clean / "plain_text").mkdir(parents=True)
    write_hub_dataset(clean, {"train": synthetic_images(64, seed=23)})
    assert train(["-m", "cnn", "-d", "cpu", "--dataset", str(clean), "--val-size", "16", "-e", "1", "-b", "16",
                  "-s", str(tmp_path / "clean-runs"), "--disable_tqdm", "true"]) == 0
    argv = ["evaluate", "--model", str(tmp_path / "clean-runs" / "cifar-cnn"), "--dataset", str(bad), "--split",
            "test", "--output", str(tmp_path / "test")]
    capsys.readouterr()
    assert cli(argv) == 1
    err = capsys.readouterr().err
    assert "row 3" in err and err.rstrip().endswith("or pass --skip-bad-images")
    assert cli([*argv, "--skip-bad-images"]) == 0
    assert json.loads((tmp_path / "test" / "evaluation-bad-test.json").read_text())["num_images"] == 23


def test_evaluate_names_what_the_user_did_not_give(cnn64_run, tmp_path, capsys):
    """A file as --output, and the run's own --val-size too large for another dataset, each one line."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert cli(["evaluate", "--model", str(cnn64_run), "--output", str(a_file)]) != 0
    expected = f"error: --output {a_file} is a file: give a folder (the evaluation's files go into it)"
    assert one_line_error(capsys) == expected
    assert a_file.read_text() == "mine"
    small = tmp_path / "small"
    (small / "plain_text").mkdir(parents=True)
    write_hub_dataset(small, {"train": synthetic_images(12, seed=31, size=64)})
    assert cli(["evaluate", "--model", str(cnn64_run), "--dataset", str(small), "--split", "validation",
                "--output", str(tmp_path / "out")]) == 1
    line = one_line_error(capsys)
    assert line.startswith("error: --val-size 16 must be") and line.endswith(
        f"(the run's --val-size: give --val-size N for {small})")


def test_a_test_split_that_orders_its_classes_differently_is_matched_to_train_by_name(tmp_path, caplog):
    """Read by position, its labels would name other classes: the run's test accuracy would be silently wrong."""
    images, labels = synthetic_images(60, seed=41)
    reversed_names = CLASS_NAMES[::-1]

    def write(folder, test_names, test_labels):
        datasets.DatasetDict({
            "train": datasets.Dataset.from_dict({"img": images, "label": labels}, features=datasets.Features(
                {"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})),
            "test": datasets.Dataset.from_dict({"img": images, "label": test_labels}, features=datasets.Features(
                {"img": datasets.Image(), "label": datasets.ClassLabel(names=test_names)})),
        }).save_to_disk(str(folder))
        return folder

    top = len(CLASS_NAMES) - 1
    data = load_cifar(str(write(tmp_path / "reordered", reversed_names, [top - label for label in labels])),
                      val_size=20)
    assert data.test.labels.tolist() == list(labels)  # each image keeps its class, in train's order
    assert "split 'test' lists its classes in another order than 'train'" in caplog.text
    with pytest.raises(InputError, match=r"^the dataset's class\(es\) zebra are not among the train split's "):
        load_cifar(str(write(tmp_path / "unknown", [*CLASS_NAMES[:-1], "zebra"], labels)), val_size=20)


@pytest.mark.parametrize("skip_bad_images", [False, True])
def test_a_stop_signal_while_decoding_stops_the_load_and_marks_no_image_bad(tmp_path, monkeypatch, skip_bad_images):
    """The handler's Preempted is raised inside the decoding of some image: it was reported as that image being
    undecodable (exit 1, 'fix or remove it'), or with --skip-bad-images skipped a good image."""
    from cifar_hf.errors import Preempted

    write_hub_dataset(tmp_path, {"train": synthetic_images(12, seed=43)})
    original, calls = decode_module._decode_one, []

    def stopped_at_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise Preempted("stopped by SIGINT", 2)
        return original(*args)

    monkeypatch.setattr(decode_module, "_decode_one", stopped_at_the_third)
    with pytest.raises(Preempted, match="^stopped by SIGINT$"):
        load_cifar(str(tmp_path), val_size=4, skip_bad_images=skip_bad_images)
    monkeypatch.setattr(decode_module, "_decode_one", original)
    data = load_cifar(str(tmp_path), val_size=4, skip_bad_images=True)
    assert not any(data.bad_images_skipped.values()) and len(data.full_train) == 12


def test_a_datasets_own_validation_split_is_said_unused_and_evaluate_scores_the_runs_hold_out(tmp_path, capsys,
                                                                                              caplog):
    """The run validates on a hold-out of train; evaluate --split validation scored the dataset's own split instead,
    other images under the same name."""
    folder = write_hub_dataset(tmp_path / "data", {"train": synthetic_images(60, seed=51),
                                                   "validation": synthetic_images(12, seed=52)})
    assert train(["-m", "cnn", "--dataset", str(folder), "--val-size", "20", "-e", "1", "-s", str(tmp_path),
                  *QUIET]) == 0
    assert "has a validation split too: the run validates on a seeded hold-out of its train split" in caplog.text
    run = tmp_path / "cifar-cnn"
    capsys.readouterr()
    assert cli(["evaluate", "--model", str(run), "--split", "validation"]) == 0
    assert "validation split was not the run's: scoring the run's hold-out" in capsys.readouterr().err
    report = json.loads((run / "evaluation-validation.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert report["num_images"] == 20 and report["accuracy"] == pytest.approx(results["val_accuracy"])
