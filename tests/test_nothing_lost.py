"""Nothing lost (issue 15): --overwrite checks first and keeps the old run until the new one finished, one live run
per folder, stop signals after training, atomic result files, verified checkpoints, damaged files as one line."""

import errno
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from synthetic import pretend_online, synthetic_images, write_hub_dataset

import cifar_hf.data
import cifar_hf.hub as hub
import cifar_hf.training.trainer as trainer_module
from cifar_hf import files
from cifar_hf.commands import evaluate, predict, report
from cifar_hf.commands.train import main
from cifar_hf.data import load_cifar
from cifar_hf.errors import StorageError
from cifar_hf.training import checkpoints, run_record
from cifar_hf.training.folder_lock import LOCK_NAME
from cifar_hf.training.recipes import get_recipe
from cifar_hf.training.replaced_run import ASIDE

ROOT = Path(__file__).resolve().parents[1]

# The run pauses (HOLD) or signals itself (SIGTERM / SIGINT) as its final evaluation starts, i.e. after training.
LAUNCHER = """
import os, signal, sys, time
from pathlib import Path
from cifar_hf.training import run
from cifar_hf.commands.train import main
from cifar_hf.data import load_cifar

mode, original = os.environ["LAUNCH_MODE"], run.final_validation

def final_validation(trainer, arrays, class_names):  # the run's final evaluation, after training
    if mode == "HOLD":
        Path(os.environ["READY"]).touch()
        while not Path(os.environ["GO"]).exists():
            time.sleep(0.05)
    else:
        os.kill(os.getpid(), getattr(signal, mode))
    return original(trainer, arrays, class_names)

run.final_validation = final_validation
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """48 training images (16 held out for validation: 2 steps of 16 per epoch) and 16 test images."""
    folder = tmp_path_factory.mktemp("small-cifar")
    return write_hub_dataset(folder, {"train": synthetic_images(48, seed=1), "test": synthetic_images(16, seed=2)})


def argv(dataset, save, *extra):
    return ["-m", "cnn", "-d", "cpu", "--dataset", str(dataset), "--val-size", "16", "-e", "2", "-b", "16",
            "-f", "1", "-s", str(save), "--disable_tqdm", "true", *extra]


def snapshot(folder: Path) -> dict:
    """Every file of a run (the lock aside) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


@pytest.fixture(scope="module")
def finished(dataset, tmp_path_factory):
    """A finished 2-epoch run with checkpoint-2 and checkpoint-4."""
    save = tmp_path_factory.mktemp("finished")
    assert main(argv(dataset, save)) == 0
    return save / "cifar-cnn"


@pytest.fixture
def old_run(finished, tmp_path):
    """A private copy of the finished run, as `-s tmp_path` sees it."""
    shutil.copytree(finished, tmp_path / "cifar-cnn")
    return tmp_path / "cifar-cnn"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_overwrite_with_a_bad_flag_leaves_the_old_run_intact(old_run, dataset, tmp_path, capsys):
    before = snapshot(old_run)
    bad_flags = [["--load_best_model_at_end", "true", "--eval_strategy", "no"], ["--gradient_accumulation_steps", "0"],
                 ["--dataloader_num_workers", "-1"], ["-l", "inf"], ["-l", "1e-3", "--learning_rate", "0.5"],
                 ["--push_to_hub", "--hub_model_id", "bad id!"]]
    for flags in bad_flags:
        assert main(argv(dataset, tmp_path, "--overwrite", *flags)) == 2, flags
        err = capsys.readouterr().err
        assert len(error_lines(err)) == 1 and "Traceback" not in err, err
        assert snapshot(old_run) == before, flags
    assert main(argv(dataset, tmp_path, "--overwrite", "--val-size", "48")) == 1  # checked before decoding
    assert "--val-size 48 must be" in error_lines(capsys.readouterr().err)[0] and snapshot(old_run) == before
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    assert main(argv(dataset, a_file / "runs")) == 2
    assert "is not a folder" in capsys.readouterr().err and a_file.read_text() == "x"


def test_overwrite_failing_in_training_puts_the_old_run_back_and_a_finished_one_replaces_it(
    old_run, dataset, tmp_path, monkeypatch, capsys
):
    before = snapshot(old_run)
    original = trainer_module.CifarTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):  # a NaN loss at the first step: TrainingError
        return original(self, model, inputs, *args, **kwargs) * float("nan")

    monkeypatch.setattr(trainer_module.CifarTrainer, "compute_loss", poisoned)
    assert main(argv(dataset, tmp_path, "--overwrite", "--seed", "7")) == 1
    assert "back in place" in error_lines(capsys.readouterr().err)[-1]
    assert snapshot(old_run) == before and not (old_run / ASIDE).exists()

    monkeypatch.undo()
    assert main(argv(dataset, tmp_path, "--overwrite", "--seed", "7", "-e", "1")) == 0
    assert json.loads((old_run / "results.json").read_text())["seed"] == 7
    assert not (old_run / ASIDE).exists() and not (old_run / "checkpoint-4").exists()  # the old run is gone now


class RefusingHfApi:
    """The Hub answers, and refuses the upload (no permission on the repo)."""

    pushed = []

    def create_repo(self, repo_id, **kwargs):
        raise PermissionError(f"403 Forbidden: you cannot create {repo_id}")


class AcceptingHfApi:
    pushed = []

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        AcceptingHfApi.pushed.append((repo_id, folder_path))
        return SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/abc")


def test_a_failed_push_keeps_the_finished_run(old_run, dataset, tmp_path, capsys, monkeypatch):
    pretend_online(monkeypatch)
    monkeypatch.setattr(hub, "HfApi", RefusingHfApi)
    assert main(argv(dataset, tmp_path, "--overwrite", "-e", "1", "--push_to_hub", "--hub_model_id", "me/x")) == 1
    line = error_lines(capsys.readouterr().err)[-1]
    assert f"the run folder {old_run} is complete, but pushing it to me/x failed: 403 Forbidden" in line
    assert json.loads((old_run / "results.json").read_text())["epochs"] == 1 and not (old_run / ASIDE).exists()


def test_a_push_with_the_hub_out_of_reach_is_refused_before_training_and_done_later(old_run, dataset, tmp_path,
                                                                                     capsys, monkeypatch):
    before = snapshot(old_run)
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # as a user offline
    assert main(argv(dataset, tmp_path, "--overwrite", "--push_to_hub", "--hub_model_id", "me/x")) == 2
    line = error_lines(capsys.readouterr().err)[-1]
    assert line == ("error: --push_to_hub: the Hugging Face Hub is out of reach (offline, or HF_HUB_OFFLINE is set); "
                    "train without it (a finished single run is pushed later by the same command with --resume auto)")
    assert snapshot(old_run) == before  # refused before anything was touched

    pretend_online(monkeypatch)  # back online: the finished run is pushed as it is
    monkeypatch.setattr(hub, "HfApi", AcceptingHfApi)
    assert main(argv(dataset, tmp_path, "--resume", "auto", "--push_to_hub", "--hub_model_id", "me/x")) == 0
    assert AcceptingHfApi.pushed == [("me/x", str(old_run))]
    assert "is a finished run: pushed it to the Hub (https://hub.invalid/me/x/commit/abc)" in capsys.readouterr().out
    after = snapshot(old_run)
    assert after.keys() == before.keys()
    assert {k for k in before if before[k] != after[k]} <= {"README.md"}  # the card now names the Hub repo


def launch(dataset, save, mode: str, tmp_path: Path) -> subprocess.Popen:
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAUNCH_MODE": mode,
           "READY": str(tmp_path / "ready"), "GO": str(tmp_path / "go")}
    return subprocess.Popen([sys.executable, str(launcher), *argv(dataset, save, "-e", "1")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_second_run_cannot_take_over_a_live_run_folder(dataset, tmp_path, capsys):
    save = tmp_path / "runs"
    live = launch(dataset, save, "HOLD", tmp_path)
    while not (tmp_path / "ready").exists():  # the live run has trained and is about to evaluate
        assert live.poll() is None, live.communicate()[1][-3000:]
        time.sleep(0.1)
    for extra in (["--overwrite"], ["--resume", "auto"], []):
        assert main(argv(dataset, save, *extra)) == 2, extra
        line = error_lines(capsys.readouterr().err)[-1]
        assert f"in use by a live run (pid {live.pid} on" in line, line
    (tmp_path / "go").touch()
    out, err = live.communicate(timeout=600)
    assert live.returncode == 0, err[-3000:]
    run = save / "cifar-cnn"
    assert json.loads((run / "results.json").read_text())["epochs"] == 1
    assert load_file(run / "model.safetensors")  # the live run's files are whole


def test_resume_auto_on_a_finished_run_changes_nothing_and_a_stale_lock_is_taken_over(old_run, dataset, tmp_path,
                                                                                      caplog, capsys):
    before = snapshot(old_run)
    (old_run / LOCK_NAME).write_text(json.dumps({"pid": 2**22 + 1, "host": "gone", "started": 0}))  # its holder died
    assert main(argv(dataset, tmp_path, "--resume", "auto")) == 0
    assert "finished run (2 epochs): nothing to resume, nothing changed (pass more epochs with -e to continue it)" \
        in capsys.readouterr().out
    assert "taking over the stale lock of pid 4194305 on gone" in caplog.text
    assert snapshot(old_run) == before
    for checkpoint in old_run.glob("checkpoint-*"):  # a run trained without -f keeps none
        shutil.rmtree(checkpoint)
    assert main(argv(dataset, tmp_path, "--resume", "auto")) == 0
    assert "it kept no checkpoint to continue from: train with -f N to keep them" in capsys.readouterr().out


def test_a_resumed_run_reports_the_runtime_and_speed_of_all_its_parts(old_run, dataset, tmp_path):
    # One clock for every part: a checkpoint's runtime is the Trainer's own, up to that save (set-up before the
    # training loop is in neither), so it can never exceed the runtime of the whole uninterrupted run.
    last_save = json.loads((old_run / "checkpoint-4" / "train_progress.json").read_text())["train_runtime_s"]
    assert last_save <= json.loads((old_run / "results.json").read_text())["train_runtime_s"]
    first_part = json.loads((old_run / "checkpoint-2" / "train_progress.json").read_text())
    assert main(argv(dataset, tmp_path, "--resume", str(old_run / "checkpoint-2"))) == 0
    results = json.loads((old_run / "results.json").read_text())
    last_part = json.loads((old_run / "trainer_state.json").read_text())["log_history"][-1]["train_runtime"]
    assert results["train_runtime_s"] == pytest.approx(first_part["train_runtime_s"] + last_part, abs=1e-3)
    images = results["train_samples_per_second"] * results["train_runtime_s"]
    assert images == pytest.approx(2 * 32, rel=1e-2)  # both epochs of 32 images, not only the resumed one


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_stop_signal_during_the_final_evaluation_completes_the_run_folder(dataset, tmp_path, name, status):
    stopped = launch(dataset, tmp_path, name, tmp_path)
    out, err = stopped.communicate(timeout=600)
    assert stopped.returncode == status, err[-3000:]
    assert "Traceback" not in err
    assert error_lines(err) == [f"error: stopped by {name} after training: the run folder {tmp_path / 'cifar-cnn'} "
                                "is complete"]
    run = tmp_path / "cifar-cnn"
    results = json.loads((run / "results.json").read_text())
    assert results["test_accuracy"] is not None
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "trainer_state.json"):
        assert (run / name).is_file(), name
    assert not (run / checkpoints.STAGING).exists()  # a finished run leaves no empty staging folder


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    files.write_json(target, {"accuracy": 0.5})
    real_write_text = Path.write_text

    def disk_full(self, text, *args, **kwargs):  # half the bytes land, then the disk is full
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(StorageError, match=f"cannot write {target}: No space left on device"):
        files.write_json(target, {"accuracy": 0.9})
    with pytest.raises(StorageError):
        files.write_json(tmp_path / "new.json", {"accuracy": 0.9})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_marked_checkpoint_with_a_truncated_file_is_skipped_for_the_previous_one(old_run, caplog):
    weights = old_run / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert checkpoints.is_complete(weights.parent)
    assert checkpoints.resolve_resume(old_run, "auto") == str(old_run / "checkpoint-2")
    assert "skipping damaged checkpoint" in caplog.text and "model.safetensors has 100 bytes" in caplog.text


def test_damaged_files_and_bad_evaluate_flags_are_one_line(old_run, capsys):
    (old_run / "results.json").write_text('{"model": "cnn", "val_acc')  # what a full disk used to leave
    assert report.main([str(old_run.parent)]) == 1
    warning, error = capsys.readouterr().err.strip().splitlines()  # the file named with its remedy, then the verdict
    assert warning.startswith(f"warning: cannot read {old_run / 'results.json'}: ") and "--overwrite" in warning
    assert error == f"error: no cifar-hf run under {old_run.parent} (1 results.json skipped)"
    for flags in (["--batch-size", "0"], ["--max-eval-samples", "-3"]):
        assert evaluate.main(["--model", str(old_run), *flags]) == 2
        assert len(error_lines(capsys.readouterr().err)) == 1
    assert evaluate.main(["--model", str(old_run)]) == 1  # the damaged results.json, named
    assert "cannot read" in error_lines(capsys.readouterr().err)[0]


def test_predict_refuses_a_bomb_and_a_fifo_and_still_classifies_the_good_image(old_run, tmp_path, monkeypatch, capsys):
    good, bomb, fifo = tmp_path / "good.png", tmp_path / "bomb.png", tmp_path / "fifo.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(good)
    Image.new("RGB", (64, 64), (40, 200, 40)).save(bomb)
    os.mkfifo(fifo)  # opening it would block for ever
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is then over twice the limit: a bomb
    assert predict.main(["--model", str(old_run), str(bomb), str(fifo), str(good)]) == 1
    captured = capsys.readouterr()
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [str(good)]
    errors = error_lines(captured.err)
    assert len(errors) == 2 and "bomb.png" in errors[0] and "fifo.png: not a regular file" in errors[1]
    monkeypatch.chdir(tmp_path)  # a URL or "-" that is no file here is named as such, not "No such file"
    assert predict.main(["--model", str(old_run), "https://example.com/cat.png", "-", "good.png"]) == 1
    assert error_lines(capsys.readouterr().err) == [
        "error: cannot read image https://example.com/cat.png: a URL is not read here; save the image and pass its "
        "path", "error: cannot read image -: standard input is not read here; save the image and pass its path"]


def plain_label_dataset(folder: Path, labels: list[int], label_feature) -> Path:
    images, _ = synthetic_images(len(labels), seed=4)
    features = datasets.Features({"img": datasets.Image(), "label": label_feature})
    folder.mkdir()
    datasets.Dataset.from_dict({"img": images, "label": labels}, features=features).to_parquet(
        str(folder / "train-00000-of-00001.parquet"))
    return folder


def test_label_gaps_and_a_single_class_are_one_line_and_write_nothing(tmp_path, capsys):
    stray = plain_label_dataset(tmp_path / "stray", [0, 1, 2, 3] * 8 + [57], datasets.Value("int64"))
    single = plain_label_dataset(tmp_path / "single", [0] * 32, datasets.ClassLabel(names=["cat"]))
    expected = {stray: "integers must be the classes 0-57, but 53 never occur (4, 5, 6,",
                single: "1 class (cat) in column 'label': a classifier needs at least 2 classes"}
    for dataset, message in expected.items():
        assert main(argv(dataset, tmp_path / "runs")) == 1
        assert message in error_lines(capsys.readouterr().err)[-1]
        assert not (tmp_path / "runs").exists()  # nor the -s folder this failed first run created


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_config_that_does_not_fit_the_weights_is_one_line(old_run, tmp_path, capsys, command):
    config = json.loads((old_run / "config.json").read_text())
    (old_run / "config.json").write_text(json.dumps({**config, "conv_channels": [8, 16, 64]}))  # edited by hand
    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 32)).save(image)
    extra = ["--split", "validation", "--output", str(tmp_path)] if command == "evaluate" else [str(image)]
    assert {"evaluate": evaluate, "predict": predict}[command].main(["--model", str(old_run), *extra]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert error_lines(err) == [f"error: --model: {old_run}: its config.json does not fit its weights "
                                "(features.6.bias: saved (32,), the config builds (64,) and 2 more)"]


def test_weights_missing_a_tensor_the_config_builds_are_one_line_not_a_fresh_layer(old_run, tmp_path, capsys):
    from safetensors.torch import save_file

    weights = load_file(old_run / "model.safetensors")
    del weights["mlp.0.bias"]
    save_file(weights, old_run / "model.safetensors", metadata={"format": "pt"})
    assert evaluate.main(["--model", str(old_run), "--split", "validation", "--output", str(tmp_path)]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"error: --model: {old_run}: its weights lack mlp.0.bias, which its config.json builds"]


def test_resume_from_another_models_checkpoint_is_one_line(old_run, dataset, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    checkpoint = other / "cifar-resnet" / "checkpoint-2"
    shutil.copytree(old_run / "checkpoint-2", checkpoint)  # a cnn checkpoint
    assert main(argv(dataset, other, "-m", "resnet", "--resume", "auto")) == 2  # its recorded flags name the model
    assert error_lines(capsys.readouterr().err)[-1].startswith("error: --resume: -m resnet differs from the run being "
                                                               "resumed (cnn)")
    forget_run_flags(checkpoint)  # as a checkpoint written before the record: its weights are checked instead
    assert main(argv(dataset, other, "-m", "resnet", "--resume", "auto")) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "does not fit this model (a cifar_cnn checkpoint" in error_lines(err)[-1]


def test_resuming_an_fp16_checkpoint_without_fp16_is_one_line_and_changes_nothing(old_run, dataset, tmp_path, capsys):
    torch.save({"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                "_growth_tracker": 0}, old_run / "checkpoint-2" / "scaler.pt")  # as a GPU fp16 run saves it
    before = snapshot(old_run)
    assert main(argv(dataset, tmp_path, "-e", "3", "--resume", str(old_run / "checkpoint-2"))) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert error_lines(err)[-1].endswith("holds scaler.pt) and this run does not train in fp16: resume it where "
                                         "--fp16 applies (a CUDA GPU)")
    assert snapshot(old_run) == before


def test_string_labels_without_a_class_label_become_sorted_classes(tmp_path, caplog):
    labels = ["zebra", "ant", "moth", "ant"] * 8
    folder = plain_label_dataset(tmp_path / "strings", labels, datasets.Value("string"))
    data = load_cifar(str(folder), val_size=8, seed=0)
    assert data.class_names == ["ant", "moth", "zebra"]
    assert "holds strings without a ClassLabel" in caplog.text
    decoded = [data.class_names[i] for i in data.full_train.labels]
    assert decoded == labels  # every row keeps its own label


def forget_run_flags(checkpoint: Path) -> None:
    """Make `checkpoint` one written before run_flags.json existed (its marker no longer lists the file)."""
    (checkpoint / run_record.RECORD).unlink()
    marker = json.loads((checkpoint / checkpoints.MARKER).read_text())
    del marker["file_sizes"][run_record.RECORD]
    (checkpoint / checkpoints.MARKER).write_text(json.dumps(marker))


@pytest.fixture
def no_data(monkeypatch):
    """Decoding any data fails the test: what these runs check must come before it."""
    def load_cifar(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(cifar_hf.data, "load_cifar", load_cifar)


def test_resume_with_other_defining_flags_is_one_line_before_the_data_and_changes_nothing(old_run, dataset, tmp_path,
                                                                                          no_data, capsys):
    (old_run / ASIDE).mkdir()  # the run an interrupted --overwrite moved aside: it must survive a refused resume
    (old_run / ASIDE / "results.json").write_text("{}")
    before = snapshot(old_run)
    recipe_rate = get_recipe("cnn").learning_rate
    cases = {("-l", "0.05"): f"-l 0.05 differs from the run being resumed ({recipe_rate})",
             ("-b", "8"): "-b 8 differs from the run being resumed (16)",
             ("--seed", "7", "--max-train-samples", "24"): "--seed 7 differs from the run being resumed (2023), "
             "--max-train-samples 24 differs from the run being resumed (unset)",
             ("--weight_decay", "0.1"): "--weight_decay 0.1 differs from the run being resumed (unset)"}
    resumes = (["--resume", "auto"], ["--resume", str(old_run / "checkpoint-2")])  # the finished run, a checkpoint
    for (flags, expected), resume in itertools.product(cases.items(), resumes):
        assert main(argv(dataset, tmp_path, "-e", "3", *resume, *flags)) == 2, flags
        assert error_lines(capsys.readouterr().err) == [
            f"error: --resume: {expected}; resume with the run's own flags, or start a new run with --overwrite"]
        assert snapshot(old_run) == before, flags


def test_resume_to_fewer_epochs_than_trained_is_refused_and_keeps_the_replaced_run(old_run, dataset, tmp_path,
                                                                                   no_data, capsys):
    suffix = "; resume with the run's own flags, or start a new run with --overwrite"
    before = snapshot(old_run)
    assert main(argv(dataset, tmp_path, "-e", "1", "--resume", "auto")) == 2  # a finished 2-epoch run
    assert error_lines(capsys.readouterr().err) == [
        f"error: --resume: -e 1 is below the run's own -e 2 (a resume may only add epochs){suffix}"]
    assert snapshot(old_run) == before
    # An --overwrite stopped after its checkpoints (written before the record): the old run waits in .replaced/.
    (old_run / ASIDE).mkdir()
    (old_run / "results.json").rename(old_run / ASIDE / "results.json")
    forget_run_flags(old_run / "checkpoint-4")
    before = snapshot(old_run)
    assert main(argv(dataset, tmp_path, "-e", "1", "--resume", "auto")) == 2
    assert error_lines(capsys.readouterr().err) == [
        f"error: --resume: -e 1 is below the 2 epochs the run being resumed has trained{suffix}"]
    assert snapshot(old_run) == before


def test_a_resume_that_adds_epochs_says_the_schedule_does_not_continue_smoothly(old_run, dataset, tmp_path, capsys):
    assert main(argv(dataset, tmp_path, "-e", "3", "--resume", "auto")) == 0  # the finished 2-epoch run, extended
    assert ("note: -e 3 extends a run planned for 2 epochs; a learning-rate schedule that decays over the planned "
            "steps (linear, cosine) jumps back up where it resumes (start a new run for one schedule over 3)"
            ) in capsys.readouterr().err
    assert json.loads((old_run / "results.json").read_text())["epochs"] == 3
    assert main(argv(dataset, tmp_path, "-e", "3", "--resume", "auto")) == 0  # its own -e: no note
    assert "note: -e" not in capsys.readouterr().err


def test_overwrite_with_resume_is_refused_at_once(old_run, dataset, tmp_path, no_data, capsys):
    before = snapshot(old_run)
    assert main(argv(dataset, tmp_path, "-e", "5", "--overwrite", "--resume", "auto")) == 2
    assert error_lines(capsys.readouterr().err) == [
        "error: --overwrite and --resume do not combine: --overwrite starts a new run in the folder, --resume "
        "continues the one there; give one"]
    assert snapshot(old_run) == before


def test_a_resume_path_that_is_no_checkpoint_is_one_line_before_the_data(old_run, dataset, tmp_path, no_data, capsys):
    before = snapshot(old_run)
    kept = ", ".join(sorted((p.name for p in old_run.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1])))
    cases = {old_run / "checkpoint-99": f"no such checkpoint folder ({old_run} holds {kept}; or give --resume auto)",
             old_run / "results.json": f"a file, not a checkpoint folder ({old_run} holds {kept}; or give --resume "
             "auto)",
             tmp_path / "elsewhere" / "checkpoint-2": "no such checkpoint folder",
             old_run: "not a complete checkpoint folder (no checkpoint_complete.json)"}
    for path, expected in cases.items():
        assert main(argv(dataset, tmp_path, "--resume", str(path))) == 2
        assert error_lines(capsys.readouterr().err) == [f"error: --resume {path}: {expected}"]
    assert snapshot(old_run) == before


def test_a_run_cut_short_by_max_steps_records_what_ran_and_is_not_finished_at_its_epochs(dataset, tmp_path, capsys):
    assert main(argv(dataset, tmp_path, "--max_steps", "1")) == 0  # -e 2 of 2 steps each: a quarter of the run
    run = tmp_path / "cifar-cnn"
    results = json.loads((run / "results.json").read_text())
    assert (results["epochs"], results["global_step"], results["hyperparameters"]["epochs"]) == (0.5, 1, 2)
    assert "- epochs: 0.5 (1 step: --max_steps ended it, not -e 2), batch size" in (run / "README.md").read_text()
    before = snapshot(run)
    capsys.readouterr()
    assert main(argv(dataset, tmp_path, "--resume", "auto")) == 2  # not a finished 2-epoch run, nor resumable as one
    assert error_lines(capsys.readouterr().err) == [
        "error: --resume: --max_steps unset differs from the run being resumed (1); resume with the run's own flags, "
        "or start a new run with --overwrite"]
    assert main(argv(dataset, tmp_path, "--max_steps", "1", "--resume", "auto")) == 0
    assert f"{run} is a finished run (--max_steps 1): nothing to resume" in capsys.readouterr().out
    assert snapshot(run) == before


def test_resume_with_the_runs_own_flags_may_change_where_and_how_it_is_written(old_run, dataset, tmp_path):
    assert main(argv(dataset, tmp_path, "-e", "3", "-f", "3", "--logging_strategy", "steps", "--logging_steps", "7",
                     "--dataloader_num_workers", "0", "--tta", "--ddp_timeout", "7200", "--resume", "auto")) == 0
    results = json.loads((old_run / "results.json").read_text())
    assert (results["epochs"], results["global_step"]) == (3, 6)


def test_a_resume_on_another_number_of_gpus_in_one_process_is_refused(tmp_path):
    """On a machine with several GPUs one process spreads each batch over all it sees (DataParallel): -b is per GPU,
    so resumed on another count the run would train another global batch, as with another process count."""
    from cifar_hf.errors import UsageError
    from cifar_hf.training.arguments import parse_arguments

    args, training_flags = parse_arguments(["-m", "cnn"])

    def flags(gpus):
        return run_record.defining_flags(args, SimpleNamespace(num_train_epochs=1, learning_rate=0.1, world_size=1,
                                                               per_device_train_batch_size=8, n_gpu=gpus),
                                         training_flags)

    assert flags(0) == flags(1)  # the CPU and one GPU: nothing recorded, so records of either resume on the other
    (tmp_path / run_record.RECORD).write_text(json.dumps(flags(2)))
    run_record.check_resume(tmp_path, flags(2), max_steps=-1)
    for gpus, shown in ((1, "unset"), (4, "4")):
        with pytest.raises(UsageError) as refused:
            run_record.check_resume(tmp_path, flags(gpus), max_steps=-1)
        assert str(refused.value) == (
            f"--resume: GPUs per process {shown} differs from the run being resumed (2): give each process 2 GPUs "
            "(CUDA_VISIBLE_DEVICES; -b is per GPU); resume with the run's own flags, or start a new run with "
            "--overwrite")
    run_record.check_resume(tmp_path, flags(1), max_steps=-1, trains=False)  # only pushed: any count may push
    (tmp_path / run_record.RECORD).write_text(json.dumps(flags(1)))
    with pytest.raises(UsageError, match="GPUs per process 2 differs from the run being resumed \\(unset\\): give "
                                         "each process 1 GPU "):
        run_record.check_resume(tmp_path, flags(2), max_steps=-1)


def test_a_local_dataset_and_base_checkpoint_are_compared_as_folders_not_as_typed(tmp_path, monkeypatch):
    from cifar_hf.training.arguments import parse_arguments

    for name in ("data", "base"):
        (tmp_path / name).mkdir()
    (tmp_path / "linked-base").symlink_to(tmp_path / "base")

    def flags(cwd, dataset, base):
        monkeypatch.chdir(cwd)
        args, training_flags = parse_arguments(["-m", "previt", "--dataset", dataset, "--model-name-or-path", base])
        return run_record.defining_flags(args, SimpleNamespace(num_train_epochs=1, learning_rate=0.1,
                                                               per_device_train_batch_size=8, world_size=1),
                                         training_flags)

    started = flags(tmp_path, "data", "base")
    assert flags(tmp_path.parent, str(tmp_path / "data"), str(tmp_path / "linked-base")) == started
    (tmp_path / "elsewhere" / "base").mkdir(parents=True)  # the same words from another folder name another checkpoint
    assert flags(tmp_path / "elsewhere", str(tmp_path / "data"), "base")["--model-name-or-path"] != (
        started["--model-name-or-path"])
