import io
import sys
from pathlib import Path

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
MISSING_DATASET = "/no/such/dataset"  # a flag refused before any data loads never gets to it
SCALE_0_255 = ["--image-mean", "125.3", "123", "113.9", "--image-std", "63", "62.1", "66.7"]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--seed", "-1"], "--seed must be from 0 to 4294967295 (got -1)"),
        (["--seed", "99999999999"], "--seed must be from 0 to 4294967295 (got 99999999999)"),
        (["--seed", "4294967295", "--repeat", "2"], "--seed 4294967295 with --repeat 2 reaches seed 4294967296"),
        (["--seed", "4294967292", "-c"], "with --folds 5 reaches seed 4294967296"),
        (["--data_seed", "-3"], "--data_seed must be from 0"),
        (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size must be at least 1 (got 0)"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1 (got 0)"),
        (["--num_train_epochs", "2.5"], "--num_train_epochs 2.5: give a whole number of epochs"),
        (["--num_train_epochs", "0.5"], "--num_train_epochs 0.5: give a whole number of epochs"),
        (["--image-mean", "nan", "0.5", "0.5", "--image-std", "0.2", "0.2", "0.2"], "--image-mean nan 0.5 0.5"),
        (["--image-mean", "0.5", "0.5", "0.5", "--image-std", "inf", "0.2", "0.2"], "--image-std inf 0.2 0.2"),
        (SCALE_0_255, "--image-mean 125.3 123.0 113.9: give means in [0, 1] (pixels on the [0, 1] scale: from "
                      "0-255 statistics, divide by 255)"),
        (["--report_to", "wandb", "--wandb", "false"], "-w/--wandb false conflicts with --report_to wandb: give one"),
        (["-w", "--report_to", "none"], "-w/--wandb conflicts with --report_to none: give one"),
        (["--report_to", "bogus"], "--report_to bogus: unknown tracker (choose from none, all, "),
        (["--eval_strategy", "no", "--early_stopping_patience", "2"], "leave out --eval_strategy no"),
        (["--image_size", "7"], "--image-size 7: cnn cannot take 7x7 images (3 2x2 max-pools need images of at "
                                "least 8x8)"),
        # Trainer flags this project's run would ignore, misapply, or fail on an epoch in
        (["-d", "cpu", "--fp16", "true"], "--fp16: fp16 mixed precision needs a CUDA GPU"),
        (["--dataloader_drop_last", "true"], "some of their images would go unscored"),
        (["--adam_beta1", "0.5"], "--adam_beta1 is set by this script; use --recipe"),
        (["--label_smoothing_factor", "1.5"], "--label_smoothing_factor 1.5 must be at least 0 and below 1"),
        (["--logging_steps", "5"], "--logging_steps 5 applies to --logging_strategy steps only"),
        (["--eval_strategy", "steps", "--eval_steps", "0"], "--eval_steps must be above 0 (got 0)"),
        (["--metric_for_best_model", "bogus"], "--metric_for_best_model bogus: each evaluation reports accuracy, "),
        (["--load_best_model_at_end", "true", "--eval_strategy", "steps", "--eval_steps", "5"],
         "leave out --eval_strategy steps"),
        (["--lr_scheduler_type", "cosine_with_min_lr"], "--lr_scheduler_type cosine_with_min_lr: One of min_lr"),
        # another model's flag: a forgotten -m previt would train a cnn
        (["--model-name-or-path", "google/vit-base-patch16-384"], "--model-name-or-path is a -m previt flag, but "
                                                                  "this run is -m cnn: add -m previt, or leave"),
        (["--vit-stem", "patchify"], "--vit-stem is a -m vit flag, but this run is -m cnn: add -m vit, or leave"),
        (["--lora-alpha", "8"], "--lora-alpha is a -m previt flag"),
    ],
)
def test_bad_values_are_one_line_before_the_data_loads(extra, expected, tmp_path, capsys):
    assert main(["-m", "cnn", "-e", "1", "--dataset", MISSING_DATASET, "-s", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size, error", [(48, "halve 48px to 6px, not to the 8x8 token grid"), (7, "must divide")])
def test_a_vit_size_off_its_token_grid_is_refused_before_the_data_loads(size, error, tmp_path, capsys):
    assert main(["-m", "vit", "--image-size", str(size), "--dataset", MISSING_DATASET, "-s", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--image-size {size}: vit cannot take" in err and error in err and err.endswith("32 or 64")


def test_sizes_the_models_take_pass_on_to_the_data(tmp_path, capsys):
    for model, size in (("vit", "64"), ("resnet", "2"), ("cnn", "8")):
        assert main(["-m", model, "--image-size", size, "--dataset", MISSING_DATASET, "-s", str(tmp_path)]) == 1
        assert f"--dataset: no such folder: {MISSING_DATASET}" in capsys.readouterr().err


def test_the_smallest_cnn_size_trains_a_step():
    import torch

    from cifar_hf.models import build_scratch_model

    model = build_scratch_model("cnn", ["a", "b"], image_size=8)
    output = model(torch.zeros(2, 3, 8, 8), labels=torch.tensor([0, 1]))
    assert output.logits.shape == (2, 2) and torch.isfinite(output.loss)


def test_a_tracker_that_is_not_installed_names_its_package(tmp_path, monkeypatch, capsys):
    from transformers.integrations import integration_utils

    monkeypatch.setattr(integration_utils, "get_available_reporting_integrations", lambda: [])
    assert main(["-m", "cnn", "--dataset", MISSING_DATASET, "-s", str(tmp_path), "--report_to", "tensorboard"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --report_to tensorboard: not installed here (pip install tensorboard), or leave it out"
    )


def test_bf16_without_a_bf16_gpu_points_to_the_cpu_device(tmp_path, monkeypatch, capsys):
    import transformers.utils

    from cifar_hf.commands.common import check_training_arguments

    monkeypatch.setattr(transformers.utils, "is_torch_bf16_gpu_available", lambda: False)
    assert main(["-m", "cnn", "--dataset", MISSING_DATASET, "-s", str(tmp_path), "--bf16", "true"]) == 2
    assert "add -d cpu to run bf16 autocast on the CPU" in capsys.readouterr().err
    args, flags = parse_arguments(["-m", "cnn", "-d", "cpu", "-s", str(tmp_path), "--bf16", "true"])
    training_args = check_training_arguments(args, flags)
    assert training_args.bf16 and training_args.use_cpu


def test_wandb_flag_and_report_to_agree_or_conflict():
    assert parse_arguments(["-m", "cnn", "--report_to", "wandb"])[0].wandb
    assert parse_arguments(["-m", "cnn", "-w", "--report_to", "wandb"])[0].wandb
    args, training = parse_arguments(["-m", "cnn", "--wandb", "false", "--report_to", "tensorboard"])
    assert not args.wandb and training["report_to"] == "tensorboard"
    with pytest.raises(UsageError, match="-w/--wandb conflicts with --report_to tensorboard: give one"):
        parse_arguments(["-m", "cnn", "-w", "--report_to", "tensorboard"])


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """A machine where nobody ran `wandb login`: no key, no netrc, no settings file, WANDB_MODE unset."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / "wandb-config"))


def test_wandb_without_a_login_is_one_line_before_the_data_loads(no_wandb_login, tmp_path, monkeypatch, capsys):
    from cifar_hf.training.preflight import check_wandb_login

    save = tmp_path / "runs"
    assert main(["-m", "cnn", "-w", "--dataset", MISSING_DATASET, "-s", str(save)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: -w/--wandb: not logged in to Weights & Biases: run `wandb login` (or set WANDB_API_KEY), "
        "or set WANDB_MODE=offline to keep the run local"
    )
    assert not save.exists()
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_wandb_login()  # a local run needs no login
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    check_wandb_login()


@pytest.mark.parametrize(
    "argv, prog",
    [
        (["train", "-m", "cnn", "-e", "1.5"], "cifar-hf train"),
        (["train", "-m", "bogus"], "cifar-hf train"),
        (["train", "-m", "cnn", "--seed", "abc"], "cifar-hf train"),
        (["train", "-m", "cnn", "--eval_strategy", "bogus"], "cifar-hf train"),
        (["tune", "-m", "cnn", "--trials", "x"], "cifar-hf tune"),
        (["evaluate", "--model", "x", "--batch-size", "x"], "cifar-hf evaluate"),
        (["predict"], "cifar-hf predict"),
        (["report"], "cifar-hf report"),
        (["export"], "cifar-hf export"),
        (["demo", "--model", "x", "--port", "abc"], "cifar-hf demo"),
    ],
)
def test_every_command_s_argparse_error_is_one_line(argv, prog, capsys):
    from cifar_hf.__main__ import main as cli

    try:
        status = cli(argv)
    except SystemExit as exit:
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error: ") and err[0].endswith("(--help lists the flags)")


def test_a_fold_count_after_c_points_at_folds(capsys):
    from cifar_hf.__main__ import main as cli

    with pytest.raises(SystemExit) as exit:
        cli(["train", "-m", "cnn", "-c", "5"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip() == ("cifar-hf train: error: -c takes no number: give the folds with "
                                               "--folds 5 (-c --folds 5) (--help lists the flags)")


def test_training_s_usage_names_the_command_the_user_typed(monkeypatch, capsys):
    from cifar_hf.__main__ import main as cli

    for script, usage in (("/home/me/cifar-hf/run_classification.py", "usage: run_classification.py "),
                          ("/home/me/venv/bin/cifar-hf", "usage: cifar-hf train ")):
        monkeypatch.setattr(sys, "argv", [script])
        with pytest.raises(SystemExit) as exit:
            cli(["train", "--help"])
        assert exit.value.code == 0 and capsys.readouterr().out.startswith(usage)


@pytest.mark.parametrize("extra, expected", [
    (["--seed", "4294967295"], "--seed 4294967295 with --trials 2 reaches seed 4294967296"),
    (["--report_to", "bogus"], "--report_to bogus: unknown tracker"),
])
def test_tune_refuses_what_would_stop_every_trial_at_once(extra, expected, tmp_path, capsys):
    from cifar_hf.__main__ import main as cli

    argv = ["tune", "-m", "cnn", "--trials", "2", "--dataset", MISSING_DATASET, "-s", str(tmp_path), *extra]
    assert cli(argv) == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("base", ["./no-such-checkpoint", "runs/a/b", "README.md"])
def test_a_base_checkpoint_path_that_is_no_folder_is_said_so_not_blamed_on_the_hub(base, tmp_path, capsys,
                                                                                   monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])  # the repository, which holds README.md
    assert main(["-m", "previt", "--model-name-or-path", base, "-e", "1", "-s", str(tmp_path)]) == 1
    what = "a file, not a folder" if base == "README.md" else "no such folder"
    assert capsys.readouterr().err.strip() == (
        f"error: --model-name-or-path: cannot load '{base}': {what} (nor a Hub id OWNER/NAME); pass a folder holding "
        "the checkpoint's config.json and weights")
    assert list(tmp_path.iterdir()) == []
