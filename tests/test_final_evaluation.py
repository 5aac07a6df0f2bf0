"""A run scores its validation split once per epoch; the final validation metrics are the last epoch's (issue 25)."""

import json

import transformers

from cifar_hf.__main__ import main as cli


def test_the_validation_split_is_scored_once_per_epoch(tiny_dataset, tmp_path, monkeypatch):
    passes = []
    evaluation_loop = transformers.Trainer.evaluation_loop

    def counting_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                      metric_key_prefix="eval"):
        passes.append((metric_key_prefix, len(dataloader.dataset)))
        return evaluation_loop(self, dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)

    monkeypatch.setattr(transformers.Trainer, "evaluation_loop", counting_loop)
    argv = ["train", "-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40",
            "--max-train-samples", "64", "-e", "2", "-b", "32", "-s", str(tmp_path), "--disable_tqdm", "true"]
    assert cli(argv) == 0
    assert passes == [("eval", 40), ("eval", 40), ("test", 80)]  # two epochs, then the test split alone

    run = tmp_path / "cifar-cnn"
    results = json.loads((run / "results.json").read_text())
    last_epoch = [entry for entry in json.loads((run / "trainer_state.json").read_text())["log_history"]
                  if "eval_accuracy" in entry][-1]
    assert results["val_accuracy"] == last_epoch["eval_accuracy"]
    assert results["val_loss"] == last_epoch["eval_loss"]
    # The reused numbers are the final weights' own: a fresh evaluation of the saved model gives the same accuracy.
    monkeypatch.undo()
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--output", str(tmp_path)]) == 0
    evaluation = json.loads((tmp_path / "evaluation-validation.json").read_text())
    assert evaluation["accuracy"] == results["val_accuracy"]
    assert evaluation["per_class_accuracy"] == results["val_per_class_accuracy"]
