"""`-c`: k-fold cross-validation with an aggregated, resumable report."""

import json
import statistics

import pytest

import cifar_hf.training.cross_validation as cross_validation
from cifar_hf.commands.train import main
from wandb_records import read_records


def cv_argv(dataset, save, *extra):
    return ["-m", "cnn", "-c", "--folds", "3", "-d", "cpu", "--dataset", str(dataset), "--val-size", "40", "-e", "1",
            "-b", "32", "-l", "3e-3", "-s", str(save), "--disable_tqdm", "true", *extra]


@pytest.fixture(scope="module")
def cv_run(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("cv")
    assert main(cv_argv(tiny_dataset, save)) == 0
    return save / "cifar-cnn-cv"


def test_every_fold_is_a_complete_run_folder(cv_run):
    for k in (1, 2, 3):
        fold = cv_run / f"fold-{k}"
        assert {"model.safetensors", "config.json", "results.json", "preprocessor_config.json"} <= {
            p.name for p in fold.iterdir()
        }
        results = json.loads((fold / "results.json").read_text())
        assert results["hyperparameters"]["train_size"] == 160 and results["hyperparameters"]["validation_size"] == 80


def test_aggregated_report_is_computed_from_the_folds(cv_run):
    report = json.loads((cv_run / "results.json").read_text())
    assert report["folds"] == 3 and report["fold_sizes"] == [80, 80, 80]
    accuracies = [f["val_accuracy"] for f in report["per_fold"]]
    assert report["val_accuracy_mean"] == pytest.approx(statistics.mean(accuracies))
    assert report["val_accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
    tests = [f["test_accuracy"] for f in report["per_fold"]]
    assert report["test_accuracy_mean"] == pytest.approx(statistics.mean(tests))
    assert 0 <= report["ensemble_test_accuracy"] <= 1


def test_no_test_split_means_no_ensemble(tiny_dataset_no_test, tmp_path):
    assert main(cv_argv(tiny_dataset_no_test, tmp_path, "--folds", "2")) == 0
    report = json.loads((tmp_path / "cifar-cnn-cv" / "results.json").read_text())
    assert report["ensemble_test_accuracy"] is None and report["test_accuracy_mean"] is None


def test_interrupted_run_resumes_without_retraining_finished_folds(tiny_dataset, tmp_path, monkeypatch):
    real_train_once = cross_validation.train_once
    trained = []

    def stop_at_fold_2(args, flags, data, folder, **kwargs):
        if folder.name == "fold-2":
            raise KeyboardInterrupt  # the user (or a preemption) stops the run here
        trained.append(folder.name)
        return real_train_once(args, flags, data, folder, **kwargs)

    monkeypatch.setattr(cross_validation, "train_once", stop_at_fold_2)
    assert main(cv_argv(tiny_dataset, tmp_path)) == 130  # one line and a shell's Ctrl-C status (issue 14)
    fold_1 = tmp_path / "cifar-cnn-cv" / "fold-1" / "model.safetensors"
    first_mtime = fold_1.stat().st_mtime_ns

    def counting(args, flags, data, folder, **kwargs):
        trained.append(folder.name)
        return real_train_once(args, flags, data, folder, **kwargs)

    monkeypatch.setattr(cross_validation, "train_once", counting)
    assert main(cv_argv(tiny_dataset, tmp_path, "--resume", "auto")) == 0
    assert trained == ["fold-1", "fold-2", "fold-3"]  # fold 1 once, before the interruption
    assert fold_1.stat().st_mtime_ns == first_mtime
    assert len(json.loads((tmp_path / "cifar-cnn-cv" / "results.json").read_text())["per_fold"]) == 3


def test_wandb_gets_one_run_per_fold_in_one_group(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    assert main(cv_argv(tiny_dataset, tmp_path, "--folds", "2", "-w")) == 0
    run_files = sorted((tmp_path / "cifar-cnn-cv").glob("fold-*/wandb/offline-run-*/run-*.wandb"))
    assert [p.parts[-4] for p in run_files] == ["fold-1", "fold-2"]  # each fold keeps its own wandb files
    groups, names = set(), set()
    for path in run_files:
        for record in read_records(path):
            if record.WhichOneof("record_type") == "run":
                groups.add(record.run.run_group)
                names.add(record.run.display_name)
    assert groups == {"cifar-cnn-cv"}
    assert names == {"cifar-cnn-cv-fold-1", "cifar-cnn-cv-fold-2"}
