"""`-c`: k-fold cross-validation with an aggregated, resumable report."""

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from synthetic import tiny_run_args
from wandb_records import read_records

import cifar_hf.training.cross_validation as cross_validation
import cifar_hf.training.members as members
from cifar_hf.commands.train import main
from cifar_hf.data import load_cifar
from cifar_hf.training import folder_lock

ROOT = Path(__file__).resolve().parents[1]


def cv_argv(dataset, save, *extra):
    return tiny_run_args(dataset, save, "-c", "--folds", "3", "-e", "1", "-b", "32", "-l", "3e-3", *extra)


@pytest.fixture(scope="module")
def cv_run(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("cv")
    assert main(cv_argv(tiny_dataset, save)) == 0
    return save / "cifar-cnn-cv"


def test_cross_validation_needs_no_val_size_it_does_not_use(tiny_dataset, tmp_path, capsys):
    """The folds validate on themselves: the default --val-size (5,000, above these 240 images) stops nothing, in
    training or in evaluating a fold."""
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "-s", str(tmp_path), "--disable_tqdm", "true",
            "-c", "--folds", "2", "-e", "1", "-b", "32"]
    assert main(argv) == 0
    fold = tmp_path / "cifar-cnn-cv" / "fold-2"
    results = json.loads((fold / "results.json").read_text())
    assert results["hyperparameters"]["validation_size"] == 120  # half of the 240 training images
    from cifar_hf.__main__ import main as cli

    capsys.readouterr()
    assert cli(["evaluate", "--model", str(fold), "--split", "validation", "--output", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "evaluation-validation.json").read_text())
    assert report["num_images"] == 120 and report["accuracy"] == pytest.approx(results["val_accuracy"])


def test_every_fold_is_a_complete_run_folder(cv_run):
    for k in (1, 2, 3):
        fold = cv_run / f"fold-{k}"
        assert {"model.safetensors", "config.json", "results.json", "preprocessor_config.json"} <= {
            p.name for p in fold.iterdir()
        }
        results = json.loads((fold / "results.json").read_text())
        assert results["hyperparameters"]["train_size"] == 160 and results["hyperparameters"]["validation_size"] == 80
        assert results["command"] is None  # a fold is trained by the -c command, not by a command of its own


def test_aggregated_report_is_computed_from_the_folds(cv_run, tiny_dataset):
    report = json.loads((cv_run / "results.json").read_text())
    assert report["folds"] == 3 and report["fold_sizes"] == [80, 80, 80]
    assert "model_name_or_path" not in report["hyperparameters"]  # previt's setting: not a cnn job's
    accuracies = [f["val_accuracy"] for f in report["per_fold"]]
    assert report["val_accuracy_mean"] == pytest.approx(statistics.mean(accuracies))
    assert report["val_accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
    tests = [f["test_accuracy"] for f in report["per_fold"]]
    assert report["test_accuracy_mean"] == pytest.approx(statistics.mean(tests))
    # The soft vote, recomputed from the probabilities each fold saved over the test split.
    labels = load_cifar(str(tiny_dataset), val_size=40).test.labels
    votes = sum(np.load(cv_run / f"fold-{k}" / "test_probabilities.npy") for k in (1, 2, 3))
    assert votes.shape == (len(labels), 4)
    assert report["ensemble_test_accuracy"] == pytest.approx(float((votes.argmax(1) == labels).mean()))


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


def test_resuming_a_finished_job_trains_and_changes_nothing(cv_run, tiny_dataset, monkeypatch):
    def files():
        return {p: p.read_bytes() for p in cv_run.rglob("*") if p.is_file() and not p.name.startswith(".")}

    before = files()
    monkeypatch.setattr(cross_validation, "train_once", lambda *args, **kwargs: pytest.fail("a fold was trained"))
    assert main(cv_argv(tiny_dataset, cv_run.parent, "--resume", "auto")) == 0
    assert files() == before  # the report too: it records the job's settings, not how this invocation went on


def test_wandb_gets_one_run_per_fold_in_one_group(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    assert main(cv_argv(tiny_dataset, tmp_path, "--folds", "2", "-w")) == 0
    import wandb

    wandb.teardown()  # the wandb service writes the run files asynchronously: stop it so that they are complete
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


def comparable(report: dict) -> dict:
    """A CV report without what differs between two equal runs: wall times, the save folder and -f (checkpoints)."""
    per_fold = [{k: v for k, v in fold.items() if k != "train_runtime_s"} for fold in report["per_fold"]]
    report = {**report, "per_fold": per_fold}
    report["hyperparameters"] = {k: v for k, v in report["hyperparameters"].items()
                                 if k not in ("save_folder", "ckpt_frequency")}
    return report


def test_fold_jobs_running_at_once_build_the_sequential_report(cv_run, tiny_dataset, tmp_path):
    cv_folder = tmp_path / "cifar-cnn-cv"
    assert main(cv_argv(tiny_dataset, tmp_path, "--fold", "2")) == 0
    partial = json.loads((cv_folder / "results.json").read_text())
    assert partial["folds_complete"] == [2] and [f["fold"] for f in partial["per_fold"]] == [2]
    assert partial["ensemble_test_accuracy"] is None  # needs every fold

    # Folds 1 and 3 at once, as two tasks of the Slurm job array script (its CPU form)
    extra = f"-d cpu --dataset {tiny_dataset} --val-size 40 -e 1 -b 32 -l 3e-3 --disable_tqdm true"  # as cv_argv
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MODEL": "cnn", "FOLDS": "3",
           "SAVE": str(tmp_path), "EXTRA": extra}
    jobs = [subprocess.Popen(["bash", str(ROOT / "examples" / "slurm" / "cv_folds_array.sbatch")], cwd=ROOT,
                             env={**env, "SLURM_ARRAY_TASK_ID": str(k)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (1, 3)]
    for job in jobs:
        output = job.communicate(timeout=600)[0]
        assert job.returncode == 0, output[-3000:]
    report = json.loads((cv_folder / "results.json").read_text())
    sequential = json.loads((cv_run / "results.json").read_text())
    assert report["folds_complete"] == [1, 2, 3] and report["ensemble_test_accuracy"] is not None
    assert comparable(report) == comparable(sequential)
    assert sorted(p.name for p in cv_folder.iterdir() if not p.name.startswith(".")) == [
        "fold-1", "fold-2", "fold-3", "results.json"]


def test_a_fold_another_job_is_training_is_refused(tiny_dataset, tmp_path, capsys):
    cv_folder = tmp_path / "cifar-cnn-cv"
    cv_folder.mkdir()
    with folder_lock.exclusive(cv_folder / ".fold-1.lock"):  # held as a running job holds it
        assert main(cv_argv(tiny_dataset, tmp_path, "--fold", "1")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: fold 1 of {cv_folder} is being trained by another job (it holds {cv_folder / '.fold-1.lock'})")
    assert not (cv_folder / "fold-1").exists()


@pytest.mark.parametrize("flags", [["--fold", "4"], ["--fold", "0"]])
def test_fold_out_of_range_is_one_line(tiny_dataset, tmp_path, capsys, flags):
    assert main(cv_argv(tiny_dataset, tmp_path, *flags)) == 2
    message = f"error: --fold {flags[1]}: give it with -c/--cross-validate, from 1 to --folds (3)"
    assert capsys.readouterr().err.strip() == message


def test_more_folds_than_images_is_one_line(tiny_dataset, tmp_path, capsys):
    argv = tiny_run_args(tiny_dataset, tmp_path, "-c", "--folds", "241", "-e", "1")
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --folds 241: the training split has only 240 images, fewer than the folds")


@pytest.mark.parametrize("flags, difference", [
    (["--folds", "4"], "--folds 4 differs from the flags fold 1 was trained with (3)"),
    (["-e", "2"], "-e 2 differs from the flags fold 1 was trained with (1)"),
])
def test_complete_folds_trained_with_other_flags_are_not_mixed_into_the_report(cv_run, tiny_dataset, tmp_path,
                                                                               capsys, flags, difference):
    import shutil

    shutil.copytree(cv_run, tmp_path / "cifar-cnn-cv")
    before = {p: p.read_bytes() for p in (tmp_path / "cifar-cnn-cv").rglob("*") if p.is_file()}
    assert main(cv_argv(tiny_dataset, tmp_path, "--resume", "auto", *flags)) == 2  # the last of a flag wins
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: {difference}") and "give that run's flags" in line
    assert {p: p.read_bytes() for p in (tmp_path / "cifar-cnn-cv").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("member", ["fold", "seed"])
def test_evaluate_redraws_the_validation_split_a_member_run_validated_on(member, cv_run, tiny_dataset, tmp_path,
                                                                         capsys):
    """A fold and a --repeat seed record their own seed, but validated on the job's split: evaluate must score those
    images, not a hold-out redrawn with the member's seed (which overlaps the images it trained on)."""
    from cifar_hf.commands.evaluate import load_scored_split, parse

    job = load_cifar(str(tiny_dataset), val_size=40)  # the job's split: --seed 2023
    if member == "fold":
        folder, validated_on = cv_run / "fold-2", job.fold(2, 3).validation
    else:
        assert main(tiny_run_args(tiny_dataset, tmp_path, "--repeat", "2", "-e", "1", "-b", "32")) == 0
        folder, validated_on = tmp_path / "cifar-cnn-repeat" / "seed-2024", job.validation
        from cifar_hf.__main__ import main as cli

        capsys.readouterr()  # the job folder itself: one line naming its members, no warning about its results.json
        assert cli(["evaluate", "--model", str(folder.parent)]) == 1
        assert capsys.readouterr().err.strip() == (f"error: --model: {folder.parent} holds run folders (seed-2023, "
                                                   "seed-2024): pass one of them")
    results = json.loads((folder / "results.json").read_text())
    assert results["seed"] == 2024
    redrawn = load_cifar(str(tiny_dataset), val_size=40, seed=2024).validation
    assert not np.array_equal(redrawn.pixels, validated_on.pixels)  # the wrong split would be told apart
    arrays, _ = load_scored_split(parse(["--model", str(folder)]), results, str(tiny_dataset), own=True,
                                  split="validation")
    assert np.array_equal(arrays.pixels, validated_on.pixels) and np.array_equal(arrays.labels, validated_on.labels)
    assert len(validated_on) == results["hyperparameters"]["validation_size"]
    # A member folder written before runs recorded their split: its job's records say how it was drawn.
    old = json.loads(json.dumps(results))
    del old["hyperparameters"]["data"]["validation_split"]
    arrays, _ = load_scored_split(parse(["--model", str(folder)]), old, str(tiny_dataset), own=True,
                                  split="validation")
    assert np.array_equal(arrays.pixels, validated_on.pixels)
    # --max-eval-samples subsets the run's own split, whichever it is
    arrays, _ = load_scored_split(parse(["--model", str(folder), "--max-eval-samples", "8"]), results,
                                  str(tiny_dataset), own=True, split="validation")
    assert len(arrays) == 8 and set(map(bytes, arrays.pixels)) <= set(map(bytes, validated_on.pixels))
    card = (folder / "README.md").read_text()  # the card names the split, with the seed that drew it
    assert ("fold 2 of a seeded, stratified 3-fold split" if member == "fold" else "hold-out") in card
    assert "seed 2023)" in card and "seed 2024)" not in card


def test_a_fold_with_only_torn_checkpoints_starts_again(tmp_path):
    fold = tmp_path / "fold-1"
    (fold / "checkpoint-4").mkdir(parents=True)  # no completion marker: torn by a crash mid-write
    (fold / "checkpoint-4" / "model.safetensors").write_bytes(b"partial")
    assert members.prepare_member_folder(fold) is None
    assert fold.is_dir() and not any(fold.iterdir())
    (fold / "checkpoint-8").mkdir()
    (fold / "checkpoint-8" / members.checkpoints.MARKER).write_text("{}")
    assert members.prepare_member_folder(fold) == "auto"


def test_report_marks_a_partial_cv_and_survives_a_missing_fold_folder(cv_run, tmp_path, capsys):
    from cifar_hf.commands.report import main as report

    copy = tmp_path / "runs" / cv_run.name
    shutil.copytree(cv_run, copy)
    results = json.loads((copy / "results.json").read_text())
    (copy / "results.json").write_text(json.dumps({**results, "folds_complete": [1, 2]}))  # fold 3 still training
    shutil.rmtree(copy / "fold-2")
    assert report([str(tmp_path / "runs")]) == 0
    captured = capsys.readouterr()
    (line,) = captured.out.strip().splitlines()[2:]
    assert line.split("|")[1].strip() == "cifar-cnn-cv (3-fold CV, 2 complete)"
    (warning,) = captured.err.strip().splitlines()
    assert warning.startswith(f"warning: {copy / 'fold-2'} has no results.json") and "--resume auto" in warning
    for fold in ("fold-1", "fold-3"):
        shutil.rmtree(copy / fold)
    assert report([str(tmp_path / "runs")]) == 0
    cells = [cell.strip() for cell in capsys.readouterr().out.strip().splitlines()[2].split("|")]
    assert cells[4:6] == ["default", "1"] and cells[9:11] == ["-", "-"]  # no train time or speed left to show


def test_a_seed_given_to_evaluate_a_fold_draws_a_hold_out_and_says_so(cv_run, tiny_dataset, capsys):
    from cifar_hf.commands.evaluate import load_scored_split, parse

    results = json.loads((cv_run / "fold-2" / "results.json").read_text())
    args = parse(["--model", str(cv_run / "fold-2"), "--seed", "5", "--split", "validation"])
    arrays, _ = load_scored_split(args, results, str(tiny_dataset), own=True)
    assert np.array_equal(arrays.pixels, load_cifar(str(tiny_dataset), val_size=40, seed=5).validation.pixels)
    assert capsys.readouterr().err.strip() == (
        "note: --seed draws a seeded hold-out of the training split; this run validated on fold 2 of 3 (leave the "
        "flag out to score that; the files get the suffix -seed5)")

