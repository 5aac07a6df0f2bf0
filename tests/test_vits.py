"""`vit` (from scratch) and `previt` (fine-tune a checkpoint) through run_classification.py."""

import json

from PIL import Image
from synthetic import tiny_run_args
from transformers import pipeline

from cifar_hf.commands.train import main


def test_vit_trains_from_scratch_and_the_loss_goes_down(tiny_dataset, tmp_path):
    argv = tiny_run_args(tiny_dataset, tmp_path, "-e", "3", "-b", "32", "-l", "2e-3", model="vit")
    assert main(argv) == 0
    run = tmp_path / "cifar-vit"
    losses = [e["loss"] for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert losses[-1] < losses[0]
    assert json.loads((run / "config.json").read_text())["stem"] == "conv"
    # Four colour classes: far above the 25% of chance once the model learns anything about the images.
    assert json.loads((run / "results.json").read_text())["val_accuracy"] >= 0.6


def test_vit_patchify_stem_switch(tiny_dataset, tmp_path):
    argv = tiny_run_args(tiny_dataset, tmp_path, "--vit-stem", "patchify", "-e", "1", "--max-train-samples", "64",
                         model="vit")
    assert main(argv) == 0
    assert json.loads((tmp_path / "cifar-vit" / "config.json").read_text())["stem"] == "patchify"


def test_previt_fine_tunes_a_local_checkpoint(tiny_dataset, tiny_imagenet_vit, tmp_path):
    argv = tiny_run_args(tiny_dataset, tmp_path, "--model-name-or-path", str(tiny_imagenet_vit), "-e", "1", "-b", "16",
                         "-l", "1e-3", model="previt")
    assert main(argv) == 0
    run = tmp_path / "cifar-previt"
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "previt" and results["val_accuracy"] is not None
    config = json.loads((run / "config.json").read_text())
    assert len(config["id2label"]) == 4
    assert config["id2label"]["0"] == "red"
    processor = json.loads((run / "preprocessor_config.json").read_text())
    # The checkpoint's own input size and normalisation, used for training and saved for inference.
    assert processor["size"] == {"height": 64, "width": 64} and processor["image_mean"] == [0.4, 0.4, 0.4]
    classifier = pipeline("image-classification", model=str(run), device="cpu")
    for image in (Image.new("RGB", (32, 32), (200, 40, 40)), Image.new("L", (50, 70), 90)):
        top = classifier(image)[0]
        assert top["label"] in {"red", "green", "blue", "dark"} and 0 <= top["score"] <= 1


def test_unreachable_checkpoint_says_how_to_pass_a_local_folder(tiny_dataset, tmp_path, capsys):
    argv = ["-m", "previt", "--model-name-or-path", "no-such-org/no-such-vit", "-d", "cpu", "--dataset",
            str(tiny_dataset), "--val-size", "40", "-s", str(tmp_path)]
    assert main(argv) == 1
    assert list(tmp_path.iterdir()) == []  # no empty run folder left behind
    err = capsys.readouterr().err.strip()
    assert "Decoding" not in err  # it fails before any data work
    assert "no-such-org/no-such-vit" in err and "local folder" in err and len(err.splitlines()) == 1
