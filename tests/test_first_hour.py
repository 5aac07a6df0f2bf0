"""A newcomer's first hour (issue 14): help, interactive answers, Ctrl-C, no warnings or records that do not apply."""

import builtins
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train

ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "transformers", "datasets")
# train's and tune's flags come from HfArgumentParser: the transformers package loads (lazily, without torch).
PARSES_WITH_TRANSFORMERS = ("train", "tune")


def terminal(monkeypatch, text: str) -> None:
    answers = io.StringIO(text)
    answers.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", answers)


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"], ["report"], ["tune"], ["demo"],
                                     ["export"]])
def test_help_lists_and_loads_no_framework(command):
    """`--help` answers without importing torch or datasets (issue 14: 30 s on a slow machine)."""
    code = (f"import sys; from cifar_hf.__main__ import main\ntry: status = main({[*command, '--help']!r})\n"
            "except SystemExit as exit: status = exit.code\n"
            f"print(status, [m for m in {HEAVY_MODULES!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    *text, last = done.stdout.strip().splitlines()
    expected = ["transformers"] if command and command[0] in PARSES_WITH_TRANSFORMERS else []
    assert last == f"0 {expected}"
    if not command:  # the top level: every command with its line
        listed = [line.split()[0] for line in text if line.startswith("  ")]
        assert listed == ["train", "evaluate", "predict", "report", "tune", "demo", "export"]


@pytest.mark.parametrize("command", [["cifar_hf", "--help"], ["cifar_hf", "report", "--help"]])
def test_help_into_a_closed_pipe_is_no_traceback(command):
    """`cifar-hf --help | head -1`: the reader may close before the help is written."""
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run([sys.executable, "-m", *command], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(write)
    assert done.stderr == "" and done.returncode in (0, 141)  # argparse's own help ignores the closed pipe


def test_train_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        train(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "Epochs (default: the model's recipe). --batch_size" in text  # its own words, not a second default
    assert "Number of cross-validation folds. (default: 5)" in text


@pytest.mark.parametrize("command, stated", [
    ("evaluate", ["images per forward pass (default: 256)", "seed of the corruptions' randomness (default: 0)"]),
    ("predict", ["classes shown per image (default: 3)"]),
    ("demo", ["port of the local page (default: 7860)"]),
    ("tune", ["(-1: never prune). (default: 5)"]),
])
def test_every_command_s_help_states_its_defaults(command, stated, capsys):
    from cifar_hf.__main__ import main as cli

    try:
        cli([command, "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert all(words in text for words in stated) and "(default: None)" not in text


def test_no_command_prints_the_commands_and_exits_2(capsys):
    assert cli([]) == 2
    assert "evaluate  accuracy" in capsys.readouterr().err


def test_a_non_number_answer_is_one_line_naming_the_flag(monkeypatch, tmp_path, capsys):
    terminal(monkeypatch, "cnn\nten\n")
    assert train(["-s", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: -e/--epoch: 'ten' is not a whole number" and "Traceback" not in "\n".join(err)


def test_an_out_of_range_answer_is_refused_at_once(monkeypatch, tmp_path, capsys):
    terminal(monkeypatch, "cnn\n0\n")
    assert train(["-s", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("-e/--epoch must be at least 1 (got 0)")


def test_another_models_flag_is_refused_once_the_answer_names_the_model(monkeypatch, tmp_path, capsys):
    terminal(monkeypatch, "cnn\n")
    assert train(["-s", str(tmp_path), "--vit-stem", "patchify"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --vit-stem is a -m vit flag, but this run is -m cnn: add -m vit, or leave --vit-stem out")
    assert list(tmp_path.iterdir()) == []


def test_the_run_folder_is_checked_before_the_other_questions(monkeypatch, tmp_path, capsys):
    (tmp_path / "cifar-cnn").mkdir()
    (tmp_path / "cifar-cnn" / "results.json").write_text("{}")
    terminal(monkeypatch, "cnn\n")  # no answer for the epochs: a later question would read end-of-input
    assert train(["-s", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "cifar-cnn" / "results.json").read_text() == "{}"


@pytest.mark.parametrize("command, line", [(["train"], "interrupted: give -m/--model"),
                                           (["tune", "--trials", "1"], "error: interrupted: give -m/--model")])
def test_ctrl_c_at_a_question_is_one_line_and_exit_130(command, line, monkeypatch, tmp_path, capsys):
    terminal(monkeypatch, "")

    def interrupted(prompt=""):
        raise KeyboardInterrupt

    monkeypatch.setattr(builtins, "input", interrupted)
    assert cli([*command, "-s", str(tmp_path)]) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(line)
    assert list(tmp_path.iterdir()) == []


def test_a_cpu_run_warns_and_records_only_what_applied(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "--max-train-samples", "32",
            "-e", "1", "-b", "16", "-s", str(tmp_path), "--disable_tqdm", "true"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train(argv) == 0
    assert not [w for w in caught if "pin_memory" in str(w.message)]
    results = json.loads((tmp_path / "cifar-cnn" / "results.json").read_text())
    assert results["command"] == (f"run_classification.py --model cnn --epoch 1 --batch-size 16 --device cpu "
                                  f"--dataset {tiny_dataset} --val-size 40 --max-train-samples 32 --disable_tqdm True")
    hyperparameters = results["hyperparameters"]
    assert hyperparameters["recipe_settings"]["bf16"] is False  # the cnn recipe's bf16 needs a GPU
    assert not {"model_name_or_path", "vit_stem", "lora_r", "lora_alpha", "push_adapter"} & set(hyperparameters)


def test_the_recorded_command_parses_back_to_the_same_run(tmp_path, monkeypatch):
    """results.json's command trains the same run again: interactive answers included, the run folder left out."""
    import shlex

    from cifar_hf.training.arguments import RUN_FOLDER_FIELDS, command_line, parse_arguments

    terminal(monkeypatch, "resnet\n3\n\n0.05\n")  # model, epochs, the batch size's default, learning rate
    argv = ["-s", str(tmp_path), "--dataset", "../my data/cifar", "-c", "--image-mean", "0.5", "0.4", "0.3",
            "--image-std", "0.2", "0.2", "0.2", "--tta", "--weight_decay", "0.1", "--report_to", "none"]
    asked, flags = parse_arguments(argv)
    command = command_line(asked, flags)
    assert command.startswith("run_classification.py --model resnet --epoch 3 --batch-size 128 --learning-rate 0.05")
    assert "'../my data/cifar'" in command and str(tmp_path) not in command  # quoted; no run-folder flags
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no questions this time: the command is complete
    again, again_flags = parse_arguments(shlex.split(command)[1:])
    for name in RUN_FOLDER_FIELDS:
        setattr(again, name, getattr(asked, name))
    assert again == asked and again_flags == flags


def test_evaluate_on_validation_does_not_mention_a_missing_test_split(tiny_dataset_no_test, tmp_path, caplog, capsys):
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset_no_test), "--val-size", "40",
            "--max-train-samples", "32", "-e", "1", "-b", "16", "-s", str(tmp_path), "--disable_tqdm", "true"]
    assert train(argv) == 0
    caplog.clear()
    capsys.readouterr()
    run = tmp_path / "cifar-cnn"
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "no test split" not in caplog.text + captured.err
    lines = captured.out.splitlines()
    header = lines[lines.index("confusion matrix (rows: true, columns: predicted):") + 1]
    assert header.split() == ["red", "green", "blue", "dark"]  # the columns are labelled


def test_an_unreachable_hub_is_found_at_once_without_retries(tiny_dataset, tmp_path, monkeypatch, capsys):
    import socket

    import huggingface_hub
    import transformers

    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    lookups = []
    from_pretrained = transformers.AutoConfig.from_pretrained.__func__

    def recording(cls, name, *args, **kwargs):
        lookups.append(kwargs.get("local_files_only", False))
        return from_pretrained(cls, name, *args, **kwargs)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # as for a user who did not set it
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", classmethod(recording))
    argv = ["train", "-m", "previt", "--model-name-or-path", "no-such-org/no-such-vit", "-d", "cpu",
            "--dataset", str(tiny_dataset), "--val-size", "40", "-s", str(tmp_path)]
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "huggingface.co is unreachable and it is not cached" in err[0]
    assert lookups == [True]  # the cache only: no request for the Hub client to retry


def test_an_unreachable_hub_for_the_dataset_is_one_line_at_once(tmp_path, monkeypatch, capsys):
    import socket

    import datasets
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    requests = []
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # as for a user who did not set it
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "create_connection", no_network)
    load_dataset = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: requests.append(datasets.config.HF_HUB_OFFLINE)
                        or load_dataset(*a, **k))
    assert cli(["train", "-m", "cnn", "-d", "cpu", "--dataset", "no-such-org/no-such-data", "-s", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Hub is unreachable and 'no-such-org/no-such-data' is not in the local cache" in err[0]
    assert requests == [True]  # the cache only: nothing for the Hub client to retry
    assert list(tmp_path.iterdir()) == []


def test_the_card_names_a_local_dataset_and_the_base_checkpoint_by_their_own_names(tmp_path, monkeypatch):
    import yaml

    from cifar_hf.hub import model_card

    (tmp_path / "data" / "cifar10-jpeg").mkdir(parents=True)
    (tmp_path / "models" / "vit_tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "models")
    results = {
        "model": "previt", "recipe": "default", "dataset": "../data/cifar10-jpeg", "epochs": 1, "seed": 2023,
        "val_accuracy": 0.5, "val_loss": 1.0, "test_accuracy": None, "val_per_class_accuracy": {"cat": 0.5},
        "test_per_class_accuracy": None, "train_runtime_s": 1.0, "train_samples_per_second": 1.0,
        "hyperparameters": {"model_name_or_path": "vit_tiny", "recipe_settings": {}},
    }
    card = model_card(results)
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["datasets"] == []  # not a Hub dataset
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "cifar10-jpeg"
    assert "# cifar-hf `previt` on cifar10-jpeg" in card and "../" not in card
    assert "- base checkpoint: `vit_tiny`" in card
    command = "run_classification.py --model previt --dataset ../data/cifar10-jpeg --model-name-or-path vit_tiny"
    card = model_card({**results, "command": command})
    assert "- command: `run_classification.py --model previt --dataset cifar10-jpeg --model-name-or-path vit_tiny`" \
        in card
    hub_run = {**results, "dataset": "uoft-cs/cifar10",
               "hyperparameters": {"model_name_or_path": "google/vit-base-patch16-224", "recipe_settings": {}}}
    hub_card = model_card(hub_run)
    assert yaml.safe_load(hub_card.split("---\n")[1])["datasets"] == ["uoft-cs/cifar10"]
    assert "- base checkpoint: `google/vit-base-patch16-224`" in hub_card


def test_training_curves_use_whole_epochs_and_a_learning_rate_axis_from_zero(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from cifar_hf import plots

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    history = []
    for epoch, loss, accuracy in ((1.0, 1.0, 0.5), (2.0, 0.8, 0.6)):  # two epochs at a constant learning rate
        history += [{"loss": loss, "learning_rate": 1e-4, "epoch": epoch},
                    {"eval_loss": loss - 0.1, "eval_accuracy": accuracy, "epoch": epoch}]
    plots.plot_training_curves(history, tmp_path / "curves.png", "test")
    figure = figures[0]
    figure.canvas.draw()
    for axis in figure.axes[:3]:
        ticks = [tick for tick in axis.get_xticks() if axis.get_xlim()[0] <= tick <= axis.get_xlim()[1]]
        assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert figure.axes[2].get_ylim()[0] == 0


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from cifar_hf.training.arguments import parse_arguments
    from cifar_hf.training.recipes import get_recipe
    from cifar_hf.training.run import build_training_arguments

    args, flags = parse_arguments(["-m", "cnn", "-d", "cpu"])
    recipe = get_recipe("cnn", "default")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no bars, whose escape codes would litter it
    assert build_training_arguments(args, recipe, flags, Path("out")).disable_tqdm is True
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", terminal)
    assert build_training_arguments(args, recipe, flags, Path("out")).disable_tqdm is False
    args, flags = parse_arguments(["-m", "cnn", "-d", "cpu", "--disable_tqdm", "true"])  # the flag still wins
    assert build_training_arguments(args, recipe, flags, Path("out")).disable_tqdm is True


def test_a_log_file_gets_lines_and_no_progress_bars(tiny_dataset, tmp_path):
    """Redirected, the log holds lines: no decoding, saving or training bar redrawn with carriage returns."""
    log = tmp_path / "run.log"
    with log.open("w") as out:
        subprocess.run([sys.executable, "run_classification.py", "-m", "cnn", "-d", "cpu", "--dataset",
                        str(tiny_dataset), "--val-size", "40", "-e", "1", "-s", str(tmp_path)], cwd=ROOT, check=True,
                       stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = log.read_text()
    assert "\r" not in text and "it/s]" not in text and "%|" not in text, text[-2000:]
    assert text.count("saved to") == 1 and "'eval_accuracy'" in text


def test_a_subset_smaller_than_the_class_count_is_refused(tiny_dataset, tmp_path, capsys):
    """A stratified subset of 3 images from 4 classes would silently train on 3 classes."""
    base = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-e", "1",
            "-s", str(tmp_path)]
    assert train([*base, "--max-train-samples", "3"]) == 2
    assert train([*base, "--max-eval-samples", "3"]) == 2
    assert train([*base, "--val-size", "3"]) == 2  # the last --val-size wins
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [f"error: {flag} 3 is fewer than the dataset's 4 classes: give at least 4 (one image per class)"
                   for flag in ("--max-train-samples", "--max-eval-samples", "--val-size")]
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_run_folder_goes_is_one_line_and_kept(tmp_path, capsys):
    (tmp_path / "cifar-cnn").write_text("my notes")
    for extra in ([], ["--overwrite"]):
        assert train(["-m", "cnn", "-s", str(tmp_path), "--dataset", str(tmp_path / "none"), *extra]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"error: -s/--save-folder: {tmp_path / 'cifar-cnn'} is a file, not a run folder: move it away or give "
            "another -s")
    assert (tmp_path / "cifar-cnn").read_text() == "my notes"
