"""`--ema-decay`, `--load_best_model_at_end true`, `--early-stopping-patience`; exact resume (CPU, tiny runs)."""

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from cifar_hf.commands.train import main
from cifar_hf.training import callbacks, checkpoints, run, trainer
from cifar_hf.training.ema import EMA_FILE

TRAIN, BATCH = 64, 16  # 4 steps per epoch


def vit_argv(dataset, checkpoint, save, *extra):
    return ["-m", "previt", "--model-name-or-path", str(checkpoint), "-d", "cpu", "--dataset", str(dataset),
            "--val-size", "40", "--max-train-samples", str(TRAIN), "-e", "2", "-b", str(BATCH), "-l", "1e-2",
            "-f", "1", "-s", str(save), "--disable_tqdm", "true", *extra]


def history(run_folder: Path) -> list:
    volatile = ("runtime", "per_second", "total_flos")
    log = json.loads((run_folder / "trainer_state.json").read_text())["log_history"]
    return [{k: v for k, v in entry.items() if not any(word in k for word in volatile)} for entry in log]


def stop_with_sigterm_at(monkeypatch, step: int) -> None:
    """SIGTERM to this process at the end of `step`, as a scheduler would send it."""
    original = callbacks.StopOnSignal.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(callbacks.StopOnSignal, "on_step_end", on_step_end)


@pytest.mark.parametrize("extra", [["--ema-decay", "0.9"], ["--ema-decay", "0.9", "--lora-r", "4"]],
                         ids=["full-ema", "lora-ema"])
def test_ema_run_stopped_mid_epoch_resumes_bitwise(extra, tiny_dataset, tiny_imagenet_vit, tmp_path, monkeypatch):
    assert main(vit_argv(tiny_dataset, tiny_imagenet_vit, tmp_path / "whole", *extra)) == 0
    whole = tmp_path / "whole" / "cifar-previt"

    with monkeypatch.context() as patch:
        stop_with_sigterm_at(patch, 6)  # mid-epoch 2
        assert main(vit_argv(tiny_dataset, tiny_imagenet_vit, tmp_path / "cut", *extra)) == 143
    cut = tmp_path / "cut" / "cifar-previt"
    assert (cut / "checkpoint-6" / EMA_FILE).is_file() and not (cut / "results.json").exists()
    assert main(vit_argv(tiny_dataset, tiny_imagenet_vit, tmp_path / "cut", *extra, "--resume", "auto")) == 0

    expected, actual = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert history(cut) == history(whole)


def test_saved_model_holds_the_ema_weights_not_the_raw_ones(tiny_dataset, tiny_imagenet_vit, tmp_path):
    assert main(vit_argv(tiny_dataset, tiny_imagenet_vit, tmp_path, "--ema-decay", "0.9")) == 0
    folder = tmp_path / "cifar-previt"
    ema = load_file(folder / "checkpoint-8" / EMA_FILE)  # the average after the last step
    raw = AutoModelForImageClassification.from_pretrained(folder / "checkpoint-8").state_dict()
    saved = AutoModelForImageClassification.from_pretrained(folder).state_dict()
    assert ema.keys() == raw.keys() == saved.keys()  # every parameter is averaged (this ViT has no buffers)
    assert all(torch.equal(saved[k], ema[k]) for k in ema)
    assert not all(torch.equal(raw[k], ema[k]) for k in ema)
    results = json.loads((folder / "results.json").read_text())
    assert results["ema_decay"] == 0.9 and "exponential moving average" in (folder / "README.md").read_text()


def test_best_epoch_is_kept_and_early_stopping_ends_the_run(tiny_dataset, tmp_path, monkeypatch):
    scripted = iter([0.5, 0.9, 0.7, 0.6, 0.95, 0.97])  # validation accuracy of epochs 1, 2, 3, ...
    monkeypatch.setattr(run, "compute_metrics", lambda prediction: {"accuracy": next(scripted, 0.0)})
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "--max-train-samples",
            str(TRAIN), "-e", "6", "-b", str(BATCH), "-s", str(tmp_path), "--disable_tqdm", "true",
            "--ema-decay", "0.5", "--load_best_model_at_end", "true", "--save_total_limit", "1",
            "--early-stopping-patience", "2"]
    assert main(argv) == 0
    folder = tmp_path / "cifar-cnn"
    results = json.loads((folder / "results.json").read_text())
    assert results["kept_epoch"] == 2 and results["best_val_accuracy_during_training"] == 0.9
    assert results["stopped_early"] is True and results["stopped_at_epoch"] == 4
    assert [e["epoch"] for e in history(folder) if "eval_accuracy" in e] == [1, 2, 3, 4]
    card = (folder / "README.md").read_text()
    assert results["epochs"] == 4  # what ran; hyperparameters keep -e
    assert ("- epochs: 4 of 6 (early stopping ended it: no better validation accuracy for 2 epochs), "
            "weights of epoch 2 kept (the best validation accuracy),") in card

    best = folder / "checkpoint-8"
    assert [p.name for p in checkpoints.complete_checkpoints(folder)] == [best.name]  # survived rotation (limit 1)
    saved, best_ema = load_file(folder / "model.safetensors"), load_file(best / EMA_FILE)
    assert all(torch.equal(saved[k], best_ema[k]) for k in best_ema)  # epoch 2's averaged weights
    assert not all(torch.equal(saved[k], v) for k, v in load_file(best / "model.safetensors").items() if k in best_ema)


def test_a_loss_as_the_best_model_metric_keeps_the_lowest(tiny_dataset, tmp_path, monkeypatch):
    scripted = iter([0.9, 0.5, 0.7, 0.8])  # validation loss of epochs 1, 2, 3, ...: the best is epoch 2's
    monkeypatch.setattr(run, "compute_metrics", lambda prediction: {"accuracy": 0.5})
    monkeypatch.setattr(trainer, "mean_cross_entropy", lambda logits, labels: next(scripted, 1.0))
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "--max-train-samples",
            str(TRAIN), "-e", "6", "-b", str(BATCH), "-s", str(tmp_path), "--disable_tqdm", "true",
            "--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss",
            "--early-stopping-patience", "2"]
    assert main(argv) == 0
    folder = tmp_path / "cifar-cnn"
    results = json.loads((folder / "results.json").read_text())
    assert results["kept_epoch"] == 2 and results["best_val_loss_during_training"] == 0.5
    assert results["stopped_at_epoch"] == 4
    assert ("4 of 6 (early stopping ended it: no better validation loss for 2 epochs), weights of epoch 2 "
            "kept (the best validation loss)") in (folder / "README.md").read_text()


def test_ema_and_early_stopping_flags_are_checked(tiny_dataset, tmp_path, capsys):
    base = ["-m", "cnn", "--dataset", str(tiny_dataset), "-s", str(tmp_path)]
    assert main([*base, "--ema-decay", "1.5"]) == 2
    assert main([*base, "--early-stopping-patience", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--ema-decay" in err[0] and "--early-stopping-patience" in err[1]


@pytest.mark.parametrize("written_by", ["this version", "an older version"])
def test_a_run_resumed_before_early_stopping_ends_it_stops_where_the_whole_run_does(written_by, tiny_dataset, tmp_path,
                                                                                     monkeypatch):
    """The count of epochs without improvement is in every checkpoint and continues after --resume auto (also from
    a checkpoint that stored it under the Trainer's own callback name)."""
    accuracies = [0.5, 0.9, 0.7, 0.6, 0.95, 0.97]  # patience 2: the run ends after epoch 4, keeping epoch 2

    def argv(save, *extra):
        return ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "--max-train-samples",
                str(TRAIN), "-e", "6", "-b", str(BATCH), "-f", "1", "-s", str(save), "--disable_tqdm", "true",
                "--load_best_model_at_end", "true", "--early-stopping-patience", "2", *extra]

    scripted = iter(accuracies)
    monkeypatch.setattr(run, "compute_metrics", lambda prediction: {"accuracy": next(scripted)})
    assert main(argv(tmp_path / "whole")) == 0
    with monkeypatch.context() as patch:
        scripted = iter(accuracies)
        patch.setattr(run, "compute_metrics", lambda prediction: {"accuracy": next(scripted)})
        stop_with_sigterm_at(patch, 3 * TRAIN // BATCH)  # after epoch 3: one epoch without improvement so far
        assert main(argv(tmp_path / "cut")) == 143
    if written_by == "an older version":  # the newest checkpoint as it was written before EarlyStopping
        latest = checkpoints.complete_checkpoints(tmp_path / "cut" / "cifar-cnn")[-1]
        state_file, marker = latest / "trainer_state.json", latest / checkpoints.MARKER
        state_file.write_text(state_file.read_text().replace('"EarlyStopping":', '"EarlyStoppingCallback":'))
        record = json.loads(marker.read_text())
        record["file_sizes"]["trainer_state.json"] = state_file.stat().st_size  # still a complete checkpoint
        marker.write_text(json.dumps(record))
    scripted = iter(accuracies[3:])  # the resumed run evaluates epochs 4, 5, ...
    assert main(argv(tmp_path / "cut", "--resume", "auto")) == 0
    whole = json.loads((tmp_path / "whole" / "cifar-cnn" / "results.json").read_text())
    cut = json.loads((tmp_path / "cut" / "cifar-cnn" / "results.json").read_text())
    assert (cut["stopped_at_epoch"], cut["kept_epoch"], cut["epochs"]) == (4, 2, 4)
    assert {k: cut[k] for k in ("stopped_early", "stopped_at_epoch", "kept_epoch", "epochs", "val_accuracy")} == {
        k: whole[k] for k in ("stopped_early", "stopped_at_epoch", "kept_epoch", "epochs", "val_accuracy")}
    saved = [load_file(tmp_path / name / "cifar-cnn" / "model.safetensors") for name in ("whole", "cut")]
    assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])


def test_patience_running_out_at_the_last_epoch_is_no_early_stop(tiny_dataset, tmp_path, monkeypatch):
    scripted = iter([0.9, 0.5, 0.4])  # the patience of 2 runs out after epoch 3 of 3: nothing was cut short
    monkeypatch.setattr(run, "compute_metrics", lambda prediction: {"accuracy": next(scripted, 0.9)})
    assert main(["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "--max-train-samples",
                 str(TRAIN), "-e", "3", "-b", str(BATCH), "-s", str(tmp_path), "--disable_tqdm", "true",
                 "--load_best_model_at_end", "true", "--early-stopping-patience", "2"]) == 0
    results = json.loads((tmp_path / "cifar-cnn" / "results.json").read_text())
    assert (results["stopped_early"], results["stopped_at_epoch"], results["epochs"]) == (False, None, 3)
    assert results["kept_epoch"] == 1
