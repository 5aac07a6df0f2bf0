"""`cifar-hf export --format onnx`: round trip for every model kind, the preprocessing contract, failures."""

import json
import sys
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import TIMM_VIT_TINY, needs_timm_vit_tiny
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

from cifar_hf.__main__ import main as cli
from cifar_hf.commands.export import check_images
from cifar_hf.commands.train import main as train
from cifar_hf.errors import InputError
from cifar_hf.serving.onnx_export import contract_pixels, export_onnx, load_contract, onnx_session, written_opset

VIT_TINY = TIMM_VIT_TINY
KINDS = ["cnn", "resnet", "vit", "previt"]


@pytest.fixture(scope="module")
def tiny_runs(tiny_dataset, tiny_imagenet_vit, tmp_path_factory):
    """One briefly trained run folder per model kind (previt: the tiny 64px Transformers ViT checkpoint)."""
    save = tmp_path_factory.mktemp("export-runs")
    for kind in KINDS:
        extra = ["--model-name-or-path", str(tiny_imagenet_vit)] if kind == "previt" else []
        assert train(["-m", kind, *extra, "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-e", "1",
                      "--max-train-samples", "64", "-b", "16", "-s", str(save), "--disable_tqdm", "true"]) == 0
    return {kind: save / f"cifar-{kind}" for kind in KINDS}


def upload_like_images(tiny_dataset, count=7):
    """Real test-split images, some of them resized and in other modes, as a user would upload them."""
    split = datasets.load_dataset(str(tiny_dataset), split="test")
    images = [split[i]["img"] for i in range(count)]
    images[1] = images[1].resize((50, 70))
    images[2] = images[2].convert("L")
    images[3] = images[3].resize((96, 96))
    return images


@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_batch_export_matches_pytorch_and_pipeline(kind, tiny_runs, tiny_dataset, tmp_path, capsys):
    run = tiny_runs[kind]
    assert cli(["export", "--model", str(run), "--dynamic-batch", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "max abs logit difference" in out and "images of the run's dataset" in out
    contract = load_contract(tmp_path / "model.onnx")
    processor = json.loads((run / "preprocessor_config.json").read_text())
    assert contract["image_size"] == processor["size"]["height"]
    assert contract["mean"] == pytest.approx(processor["image_mean"])
    assert contract["std"] == pytest.approx(processor["image_std"])
    assert contract["id2label"] == {"0": "red", "1": "green", "2": "blue", "3": "dark"}

    # A batch of 7 through the dynamic-batch model, preprocessed with nothing but the recorded contract.
    images = upload_like_images(tiny_dataset)
    pixels = contract_pixels(images, contract)
    assert pixels.shape == (7, 3, contract["image_size"], contract["image_size"])
    grey = np.arange(32 * 32).reshape(32, 32) % 256
    wide = Image.fromarray((grey * 257).astype(np.uint16))  # a 16-bit grey PNG: read as training reads it
    assert wide.mode == "I;16" and np.array_equal(contract_pixels([wide], contract),
                                                  contract_pixels([Image.fromarray(grey.astype(np.uint8))], contract))
    logits = onnx_session(tmp_path / "model.onnx").run(["logits"], {"pixel_values": pixels})[0]
    model = AutoModelForImageClassification.from_pretrained(run).eval()
    with torch.no_grad():
        reference = model(pixel_values=torch.from_numpy(pixels)).logits.numpy()
    assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    classifier = pipeline("image-classification", model=str(run), device="cpu")
    expected = [classifier(image.convert("RGB"))[0]["label"] for image in images]
    assert [contract["id2label"][str(i)] for i in logits.argmax(-1)] == expected


def test_fixed_batch_export_is_the_default(tiny_runs, tmp_path, capsys):
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--output", str(tmp_path), "--opset", "17"]) == 0
    session = onnx_session(tmp_path / "model.onnx")
    assert session.get_inputs()[0].shape == [1, 3, 32, 32]
    assert load_contract(tmp_path / "model.onnx")["opset"] == 17
    assert written_opset(tmp_path / "model.onnx") == 17  # the file itself, not only its label
    assert "fixed batch" in capsys.readouterr().out


@needs_timm_vit_tiny
def test_timm_vit_tiny_export_and_its_centre_crop_contract(tmp_path, capsys):
    assert cli(["export", "--model", str(VIT_TINY), "--output", str(tmp_path)]) == 0
    difference = float(capsys.readouterr().out.split("max abs logit difference ")[1].split()[0])
    assert difference <= 1e-4
    contract = load_contract(tmp_path / "model.onnx")
    assert contract["image_size"] == 224 and contract["crop_pct"] < 1 and contract["resample"] == "bicubic"
    # The contract alone reproduces timm's evaluation preprocessing (resize, centre crop) on a non-square image.
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (180, 260, 3), dtype=np.uint8))
    expected = AutoImageProcessor.from_pretrained(VIT_TINY)(image, return_tensors="pt")["pixel_values"].numpy()
    assert np.abs(contract_pixels([image], contract) - expected).max() < 0.05


def test_unsupported_operator_is_one_line_naming_it(tmp_path):
    class Histogram(torch.nn.Module):
        config = SimpleNamespace(id2label={0: "a"}, model_type="histogram")

        def forward(self, pixel_values):
            return SimpleNamespace(logits=torch.histc(pixel_values, 4).sum() + pixel_values.flatten(1))

    transform = SimpleNamespace(image_size=4, resample="bilinear", mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(InputError) as raised:
        export_onnx(Histogram(), transform, None, tmp_path, check=lambda onnx_file: None)
    message = str(raised.value)
    assert "histc" in message and "\n" not in message and "\x1b" not in message
    assert not (tmp_path / "preprocessing.json").exists()


def test_check_images_are_one_per_class_of_the_runs_label_column(tmp_path):
    """A run trained on coarse_label is checked on one image per coarse class, not on the first fine classes."""
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0)]
    split = datasets.Dataset.from_dict(
        {"img": [Image.new("RGB", (8, 8), c) for c in colours], "fine_label": [0, 1, 2, 3],
         "coarse_label": [0, 0, 1, 1]},
        features=datasets.Features({"img": datasets.Image(),
                                    "fine_label": datasets.ClassLabel(names=["apple", "pear", "bee", "ant"]),
                                    "coarse_label": datasets.ClassLabel(names=["fruit", "insect"])}))
    datasets.DatasetDict(test=split).save_to_disk(str(tmp_path / "data"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"dataset": str(tmp_path / "data"), "label_column": "coarse_label"}))
    images, described = check_images(SimpleNamespace(model=str(run), check_images=None), num_classes=2)
    assert [image.getpixel((0, 0)) for image in images] == [colours[0], colours[2]]
    assert described == "2 images of the run's dataset (one per class)"


def test_missing_extra_names_the_pip_command(tiny_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[export]"' in err


def test_bad_model_and_bad_flags(tmp_path, capsys):
    assert cli(["export", "--model", str(tmp_path / "missing"), "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: --model: cannot load")
    with pytest.raises(SystemExit) as exited:
        cli(["export", "--model", str(tmp_path), "--opset", "3"])
    assert exited.value.code == 2


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_an_opset_the_exporter_cannot_write_leaves_no_file_labelled_with_it(tiny_runs, tmp_path, capsys):
    output = tmp_path / "op13"
    # The converter cannot take Relu below opset 14 and would keep opset 18 under the label 13.
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--opset", "13", "--output", str(output)]) == 1
    err = one_error_line(capsys)
    assert "--opset 13" in err and "produced opset 18" in err and "writes opsets 18-" in err
    assert not output.exists()
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--opset", "99", "--output", str(output)]) == 1
    assert "--opset 99" in one_error_line(capsys) and not output.exists()


def test_an_existing_model_onnx_is_replaced_only_with_overwrite(tiny_runs, tmp_path, capsys):
    argv = ["export", "--model", str(tiny_runs["cnn"]), "--output", str(tmp_path)]
    assert cli(argv) == 0
    assert "on 4 images of the run's dataset (one per class)" in capsys.readouterr().out  # the tiny set's 4 classes
    first = (tmp_path / "model.onnx").read_bytes()
    assert cli([*argv, "--opset", "19"]) == 1
    err = one_error_line(capsys)
    assert "already holds model.onnx" in err and "--overwrite" in err
    assert (tmp_path / "model.onnx").read_bytes() == first
    assert cli([*argv, "--opset", "19", "--overwrite"]) == 0
    assert written_opset(tmp_path / "model.onnx") == 19 and load_contract(tmp_path / "model.onnx")["opset"] == 19
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "preprocessing.json"]  # no partial files

    # The export folder given back as a model: one line naming what it is, not the loader's "no model_type"
    for command in (["predict", "--model", str(tmp_path), "x.png"], ["evaluate", "--model", str(tmp_path)]):
        assert cli(command) == 1
        assert one_error_line(capsys) == (f"error: --model: {tmp_path} is an ONNX export (run it with onnxruntime: "
                                          "docs/demo-and-export.md); pass the model folder it was exported from")

    a_file = tmp_path / "model.onnx"
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--output", str(a_file)]) == 1
    assert one_error_line(capsys) == (f"error: --output {a_file} is a file: give a folder (model.onnx and "
                                      "preprocessing.json go into it)")


@pytest.mark.parametrize("tolerance", ["nan", "inf", "0", "-1"])
def test_tolerance_must_be_finite_and_positive(tolerance, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli(["export", "--model", str(tmp_path), "--tolerance", tolerance])
    assert exited.value.code == 2 and "--tolerance must be a finite positive number" in capsys.readouterr().err


def test_an_export_that_fails_its_check_leaves_the_earlier_one(tiny_runs, tmp_path, capsys):
    """--overwrite replaces an export only with one that passed the onnxruntime check; the failed one is kept aside."""
    argv = ["export", "--model", str(tiny_runs["cnn"]), "--output", str(tmp_path)]
    assert cli(argv) == 0
    capsys.readouterr()
    before = {name: (tmp_path / name).read_bytes() for name in ("model.onnx", "preprocessing.json")}
    assert cli([*argv, "--overwrite", "--dynamic-batch", "--tolerance", "1e-30"]) == 1
    err = one_error_line(capsys)
    assert "above the tolerance" in err and "is left as it was" in err and "model.rejected.onnx" in err
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not load_contract(tmp_path / "model.onnx")["dynamic_batch"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.rejected.onnx", "preprocessing.json"]
    assert cli([*argv, "--overwrite", "--dynamic-batch"]) == 0  # a later export that passes: no stale rejection
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "preprocessing.json"]
    assert load_contract(tmp_path / "model.onnx")["dynamic_batch"]


def test_an_export_onnxruntime_cannot_run_is_kept_aside_as_a_failed_check(tiny_runs, tmp_path, monkeypatch, capsys):
    import cifar_hf.serving.onnx_export as onnx_export

    def refuse(path):
        raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : this graph")

    monkeypatch.setattr(onnx_export, "onnx_session", refuse)
    output = tmp_path / "new"
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--output", str(output)]) == 1
    err = one_error_line(capsys)
    assert err.startswith("error: onnxruntime could not run the export ([ONNXRuntimeError] : 10 : INVALID_GRAPH")
    assert "model.onnx was not written" in err
    assert sorted(p.name for p in output.iterdir()) == ["model.rejected.onnx"]


def test_no_export_is_written_that_onnxruntime_could_not_check(tiny_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    output = tmp_path / "unchecked"
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--output", str(output)]) == 1
    assert 'pip install -e ".[export]"' in one_error_line(capsys) and not output.exists()


def test_a_preprocessing_json_of_the_users_is_replaced_only_with_overwrite(tiny_runs, tmp_path, capsys):
    (tmp_path / "preprocessing.json").write_text('{"mine": 1}')
    assert cli(["export", "--model", str(tiny_runs["cnn"]), "--output", str(tmp_path)]) == 1
    assert "already holds preprocessing.json" in one_error_line(capsys)
    assert (tmp_path / "preprocessing.json").read_text() == '{"mine": 1}'
