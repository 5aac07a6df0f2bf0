"""Figures in every run folder, per-class accuracy, and the `report` table comparing runs."""

import json

import numpy as np
import pytest
from PIL import Image
from synthetic import tiny_run_args

from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train
from cifar_hf.data import load_cifar
from cifar_hf.plots import epoch_curves


def run(dataset, save, *extra):
    argv = tiny_run_args(dataset, save, "-b", "16", *extra)
    assert train(argv) == 0


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    run(tiny_dataset, root / "good", "-e", "3", "-l", "3e-3")
    run(tiny_dataset, root / "weak", "-e", "1", "-l", "1e-5")
    run(tiny_dataset, root / "cv", "-e", "1", "-l", "3e-3", "-c", "--folds", "2")
    return root


def test_run_folder_figures_are_real_images(runs):
    folder = runs / "good" / "cifar-cnn"
    for name, minimum_width in (("training_curves.png", 800), ("confusion_matrix.png", 400)):
        with Image.open(folder / name) as image:
            image.verify()
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.size[0] >= minimum_width and image.size[1] >= 300


def test_curves_are_the_trainer_state_per_epoch(runs):
    folder = runs / "good" / "cifar-cnn"
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    curves = epoch_curves(history)
    assert curves["train_epoch"] == curves["eval_epoch"] == [1.0, 2.0, 3.0]
    assert curves["train_loss"] == [e["loss"] for e in history if "loss" in e]
    results = json.loads((folder / "results.json").read_text())
    assert curves["eval_accuracy"][-1] == pytest.approx(results["val_accuracy"])


def test_per_class_accuracy_adds_back_up_to_the_overall_accuracy(runs, tiny_dataset):
    results = json.loads((runs / "good" / "cifar-cnn" / "results.json").read_text())
    data = load_cifar(str(tiny_dataset), val_size=40)
    for split, labels in (("val", data.validation.labels), ("test", data.test.labels)):
        counts = np.bincount(labels, minlength=len(data.class_names))
        per_class = results[f"{split}_per_class_accuracy"]
        total = sum(per_class[name] * count for name, count in zip(data.class_names, counts, strict=True))
        assert total / counts.sum() == pytest.approx(results[f"{split}_accuracy"])


def test_report_compares_runs_sorted_by_test_accuracy(runs, tmp_path, capsys):
    out = tmp_path / "table.md"
    assert cli(["report", str(runs), "--output", str(out)]) == 0
    table = out.read_text().strip().splitlines()
    card = runs / "good" / "cifar-cnn" / "README.md"
    record = card.with_name("results.json")
    for existing, line, flags in ((out, "exists: pass --overwrite to replace it", []),
                                  (card, f"is a file of the run folder {card.parent}: give another file", []),
                                  (record, f"is a file of the run folder {card.parent}: give another file",
                                   ["--overwrite"]),  # a run's record is never replaced, even when asked
                                  (runs, "is a folder: give a file", [])):
        before = existing.read_text() if existing.is_file() else None
        capsys.readouterr()
        assert cli(["report", str(runs), "--output", str(existing), *flags]) == 2
        assert capsys.readouterr().err.strip() == f"error: --output {existing} {line}"
        assert (existing.read_text() if existing.is_file() else None) == before  # a run's card is not replaced
    assert cli(["report", str(record)]) == 1
    assert capsys.readouterr().err.strip() == (f"error: {record}: a file, not a folder: pass the folder that holds "
                                               "the runs")
    assert cli(["report", str(runs), "--output", str(out), "--overwrite"]) == 0
    assert table[0].startswith("| run | model |") and len(table) == 2 + 3  # header, rule, three runs
    names = [line.split("|")[1].strip() for line in table[2:]]
    # Named by their path below the folder given, so that the two cifar-cnn runs can be told apart (issue 14).
    assert sorted(names) == ["cv/cifar-cnn-cv (2-fold CV)", "good/cifar-cnn", "weak/cifar-cnn"]
    sizes = {line.split("|")[1].strip(): line.split("|")[8].strip() for line in table[2:]}  # images behind each score
    assert sizes == {"good/cifar-cnn": "40 / 80", "weak/cifar-cnn": "40 / 80",
                     "cv/cifar-cnn-cv (2-fold CV)": "120 / 80"}  # a fold validates on its held-out fold
    accuracies = []
    for line in table[2:]:
        cell = line.split("|")[7].strip()  # after run, model, data, recipe, epochs, val acc: test acc
        accuracies.append(float(cell.split("%")[0]))
    assert accuracies == sorted(accuracies, reverse=True)
    cv_line = next(line for line in table if "CV" in line)
    assert "±" in cv_line
    good = json.loads((runs / "good" / "cifar-cnn" / "results.json").read_text())
    assert f"{100 * good['test_accuracy']:.2f}%" in out.read_text()
    assert capsys.readouterr().out.strip() == out.read_text().strip()


def test_a_cv_rows_speed_is_its_images_over_its_time(runs, tmp_path, capsys):
    """Not the mean of the folds' speeds: a slow long fold and a fast short one average to a speed nothing ran at."""
    import shutil

    job = shutil.copytree(runs / "cv" / "cifar-cnn-cv", tmp_path / "cifar-cnn-cv")
    for fold, (runtime, speed) in zip(("fold-1", "fold-2"), ((100.0, 10.0), (1.0, 1000.0)), strict=True):
        results = json.loads((job / fold / "results.json").read_text())
        results.update(train_runtime_s=runtime, train_samples_per_second=speed)
        (job / fold / "results.json").write_text(json.dumps(results))
    assert cli(["report", str(tmp_path)]) == 0
    row = capsys.readouterr().out.strip().splitlines()[2].split("|")
    assert (row[9].strip(), row[10].strip()) == ("101.0 s", "20")  # 2,000 images in 101 s


def test_report_on_a_folder_without_runs(tmp_path, capsys):
    assert cli(["report", str(tmp_path)]) == 1
    assert "no run folder" in capsys.readouterr().err


def copy_results(source, folder, **changes):
    """A run folder holding only `source`'s results.json (all the report reads), with `changes` applied."""
    folder.mkdir(parents=True)
    results = {**json.loads((source / "results.json").read_text()), **changes}
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_report_names_colliding_runs_by_their_shortest_distinct_path_and_shows_lora(runs, tmp_path, capsys):
    good = runs / "good" / "cifar-cnn"
    copy_results(good, tmp_path / "ckruns" / "cifar-cnn")
    copy_results(good, tmp_path / "previt" / "cifar-previt", model="previt")
    copy_results(good, tmp_path / "lora" / "cifar-previt", model="previt",
                 lora={"r": 4, "adapter": "adapter", "base": "some/vit"})
    folders = [runs / "good", tmp_path / "ckruns", tmp_path / "previt", tmp_path / "lora"]
    assert cli(["report", *map(str, folders)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[2:]
    cells = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in lines}
    assert cells == {"good/cifar-cnn": "cnn", "ckruns/cifar-cnn": "cnn", "previt/cifar-previt": "previt",
                     "lora/cifar-previt": "previt (LoRA r=4)"}


def test_report_skips_a_results_json_that_is_no_runs_with_one_warning_each(runs, tmp_path, capsys):
    foreign = {"dict": '{"accuracy": 0.9}', "list": "[]", "null": "null", "damaged": '{"val_accuracy": 0.',
               "partial": '{"model": "cnn", "val_accuracy": 0.5}'}
    for name, text in foreign.items():
        (tmp_path / "other" / name).mkdir(parents=True)
        (tmp_path / "other" / name / "results.json").write_text(text)
    assert cli(["report", str(runs / "good"), str(tmp_path / "other")]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == len(foreign) and all(line.startswith("warning: ") for line in warnings)
    for name in foreign:
        assert sum(str(tmp_path / "other" / name / "results.json") in line for line in warnings) == 1
    assert [line.split("|")[1].strip() for line in captured.out.strip().splitlines()[2:]] == ["cifar-cnn"]

    assert cli(["report", str(tmp_path / "other")]) == 1  # nothing left to show
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(foreign) + 1 and err[-1].startswith("error: no cifar-hf run under")


def test_report_leaves_out_the_run_an_unfinished_overwrite_keeps_aside(runs, tmp_path, capsys):
    good = runs / "good" / "cifar-cnn"
    copy_results(good, tmp_path / "runs" / "cifar-cnn")
    copy_results(good, tmp_path / "runs" / "cifar-cnn" / ".replaced")  # the old run, until the new one finishes
    assert cli(["report", str(tmp_path / "runs")]) == 0
    assert [line.split("|")[1].strip() for line in capsys.readouterr().out.strip().splitlines()[2:]] == ["cifar-cnn"]


def test_report_names_a_run_that_has_only_checkpoints_so_far(runs, tmp_path, capsys):
    good = runs / "good" / "cifar-cnn"
    copy_results(good, tmp_path / "runs" / "cifar-cnn")
    stopped = tmp_path / "runs" / "cifar-resnet"
    (stopped / "checkpoint-8").mkdir(parents=True)
    assert cli(["report", str(tmp_path / "runs")]) == 0
    captured = capsys.readouterr()
    assert [line.split("|")[1].strip() for line in captured.out.strip().splitlines()[2:]] == ["cifar-cnn"]
    assert captured.err.strip() == (f"note: {stopped} has checkpoints but no results.json yet (still training, or "
                                    "stopped: --resume auto finishes it); not in the table")
    assert cli(["report", str(stopped)]) == 1  # alone: the note, then the usual error
    assert captured.err.strip() in capsys.readouterr().err


def test_evaluate_with_another_hold_out_says_so_and_keeps_the_runs_own(runs, tmp_path, capsys):
    """--seed / --val-size draw another hold-out of the training split: said, and written beside the run's own
    evaluation rather than over it (its file once replaced that, under the same name)."""
    import shutil

    run = shutil.copytree(runs / "good" / "cifar-cnn", tmp_path / "cifar-cnn")
    assert cli(["evaluate", "--model", str(run), "--split", "validation"]) == 0
    own = json.loads((run / "evaluation-validation.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert own["accuracy"] == pytest.approx(results["val_accuracy"])
    capsys.readouterr()
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--seed", "5", "--val-size", "30"]) == 0
    assert ("note: seed5, val30: another hold-out of the training split than the one this run validated on (leave "
            "the flag out to score that; the files get the suffix -seed5-val30)") in capsys.readouterr().err
    assert json.loads((run / "evaluation-validation.json").read_text()) == own
    assert json.loads((run / "evaluation-validation-seed5-val30.json").read_text())["num_images"] == 30
    seed = results["seed"]  # the run's own seed, given again, draws the run's own hold-out: no suffix, no such note
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--seed", str(seed)]) == 0
    assert "another hold-out" not in capsys.readouterr().err
    assert json.loads((run / "evaluation-validation.json").read_text())["accuracy"] == own["accuracy"]
    # Scoring test with a temperature fitted on another hold-out: the test files keep their name, said so
    capsys.readouterr()
    assert cli(["evaluate", "--model", str(run), "--split", "test", "--temperature-scale", "--seed", "5"]) == 0
    err = capsys.readouterr().err
    assert "note: seed5: another hold-out" in err and "suffix" not in err
    fitted = json.loads((run / "evaluation-test.json").read_text())["temperature_scaling"]["fitted_on"]
    assert not list(run.glob("evaluation-test-*.json")) and "validation" in fitted
    assert cli(["evaluate", "--model", str(run), "--val-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --val-size must be at least 1 (got 0)"
