import io
import sys

import pytest

from cifar_hf.commands.train import main
from cifar_hf.errors import UsageError
from cifar_hf.training.arguments import parse_arguments


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a TTY: no interactive questions


def test_seed_flags_map_onto_the_run():
    args, training = parse_arguments(
        ["-m", "resnet", "-e", "3", "-b", "8", "-l", "0.01", "-d", "cpu", "-c", "-w", "-s", "out", "-f", "2"]
    )
    assert (args.model, args.epoch, args.batch_size, args.learning_rate) == ("resnet", 3, 8, 0.01)
    assert (args.device, args.cross_validate, args.wandb, args.save_folder, args.ckpt_frequency) == (
        "cpu", True, True, "out", 2
    )
    assert training == {}


def test_long_forms_and_training_arguments_pass_through():
    args, training = parse_arguments(
        ["--model", "cnn", "--batch-size", "4", "--learning_rate", "0.5", "--dataloader_num_workers", "2",
         "--bf16", "--num_train_epochs", "7"]
    )
    assert args.batch_size == 4 and args.learning_rate == 0.5 and args.epoch == 7
    assert training == {"dataloader_num_workers": 2, "bf16": True}


def test_same_value_twice_is_fine_conflicting_values_are_not():
    assert parse_arguments(["-m", "cnn", "-e", "3", "--num_train_epochs", "3"])[0].epoch == 3
    with pytest.raises(UsageError, match="--epoch 3 conflicts with --num_train_epochs 5"):
        parse_arguments(["-m", "cnn", "-e", "3", "--num_train_epochs", "5"])
    with pytest.raises(UsageError, match="--batch-size 8 conflicts with --per_device_train_batch_size 16"):
        parse_arguments(["-m", "cnn", "-b", "8", "--per_device_train_batch_size", "16"])


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["-m", "cnn", "-e", "0"], "-e/--epoch"),
        (["-m", "cnn", "-b", "0"], "-b/--batch-size"),
        (["-m", "cnn", "-l", "0"], "-l/--learning-rate"),
        (["-m", "cnn", "-l", "-0.001"], "-l/--learning-rate"),
        (["-m", "cnn", "-f", "-1"], "-f/--ckpt-frequency"),
        (["-m", "cnn", "--val-size", "0"], "--val-size"),
        (["-m", "cnn", "--recipe", "turbo"], "--recipe"),
        (["-m", "cnn", "--output_dir", "x"], "-s/--save-folder"),
        (["-m", "cnn", "--optim", "sgd"], "--optim is set by this script; use --recipe"),
        (["-m", "cnn", "--no-such-flag", "1"], "--no-such-flag"),
        (["-e", "3"], "-m/--model is required"),
    ],
)
def test_invalid_values_exit_2_naming_the_flag(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert flag in err and len(err.splitlines()) == 1


def test_unknown_model_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["-m", "bogus"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--model/-m: invalid choice: 'bogus'" in err


def test_interactive_terminal_asks_for_the_model(monkeypatch):
    answers = io.StringIO("resnet\n4\n\n0.05\n")
    answers.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", answers)
    args, _ = parse_arguments([])
    assert (args.model, args.epoch, args.batch_size, args.learning_rate) == ("resnet", 4, 128, 0.05)


def test_interactive_questions_skip_what_the_flags_gave(monkeypatch):
    answers = io.StringIO("cnn\n\n")  # the model, then Enter at the one question left: the learning rate
    answers.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", answers)
    args, _ = parse_arguments(["--num_train_epochs", "2", "-b", "32"])
    assert (args.model, args.epoch, args.batch_size, args.learning_rate) == ("cnn", 2, 32, 1e-4)
    assert answers.read() == ""  # both answers were read: no question was asked for -e or -b
