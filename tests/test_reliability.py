"""Exact resume after preemption, crash-safe checkpoints, non-finite loss, unsafe checkpoint files, secrets."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import tiny_run_args

import cifar_hf.training.trainer as trainer_module
from cifar_hf.commands.train import main
from cifar_hf.errors import UsageError
from cifar_hf.training import checkpoints

ROOT = Path(__file__).resolve().parents[1]
TRAIN, BATCH = 96, 16  # 6 steps per epoch

# Sends SIGTERM to its own process at the end of step STOP_AT (as a scheduler would), then lets the run react.
LAUNCHER = """
import os, signal, sys
from cifar_hf.training import callbacks
from cifar_hf.commands.train import main

stop_at = int(os.environ["STOP_AT"])
original = callbacks.StopOnSignal.on_step_end

def on_step_end(self, args, state, control, **kwargs):
    if state.global_step == stop_at:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self, args, state, control, **kwargs)

callbacks.StopOnSignal.on_step_end = on_step_end
sys.exit(main(sys.argv[1:]))
"""


def argv(dataset, save, *extra):
    return tiny_run_args(dataset, save, "--max-train-samples", str(TRAIN), "-e", "2", "-b", str(BATCH), "-l", "3e-3",
                         "-f", "1", *extra)


def run_process(args, env_extra=None, launcher=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    command = [sys.executable, str(launcher)] if launcher else [sys.executable, str(ROOT / "run_classification.py")]
    return subprocess.run(command + args, capture_output=True, text=True, timeout=600, env=env)


def eval_history(run: Path) -> list:
    """Every per-epoch log entry: training loss, learning rate, gradient norm, validation loss and accuracy."""
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    volatile = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "train_runtime",
                "train_samples_per_second", "train_steps_per_second", "total_flos"}
    return [{k: v for k, v in entry.items() if k not in volatile} for entry in history]


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("uninterrupted")
    assert main(argv(tiny_dataset, save)) == 0
    return save / "cifar-cnn"


@pytest.mark.parametrize("stop_at", [3, 6], ids=["mid-epoch", "epoch-boundary"])
def test_preempted_and_resumed_run_ends_bitwise_identical(uninterrupted, tiny_dataset, tmp_path, stop_at):
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    stopped = run_process(argv(tiny_dataset, tmp_path), {"STOP_AT": str(stop_at)}, launcher)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert f"stopped by SIGTERM at step {stop_at}" in stopped.stderr and "--resume auto" in stopped.stderr
    run = tmp_path / "cifar-cnn"
    assert checkpoints.is_complete(run / f"checkpoint-{stop_at}") and not (run / "results.json").exists()

    resumed = run_process(argv(tiny_dataset, tmp_path, "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, actual = load_file(uninterrupted / "model.safetensors"), load_file(run / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)  # bitwise, with random flips on
    assert eval_history(run) == eval_history(uninterrupted)


def test_accumulated_steps_resume_bitwise_and_log_the_mean_loss_per_step(tiny_dataset, tmp_path):
    """6 batches an epoch in steps of 4 micro-batches: each epoch's last step takes 2. A resume after such an epoch
    draws what the uninterrupted run drew, and the epoch's loss is per optimizer step, as the run's is."""
    accumulate = ("--gradient_accumulation_steps", "4")
    assert main(argv(tiny_dataset, tmp_path / "whole", *accumulate)) == 0
    whole = tmp_path / "whole" / "cifar-cnn"
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    stopped = run_process(argv(tiny_dataset, tmp_path / "parts", *accumulate), {"STOP_AT": "3"}, launcher)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    resumed = run_process(argv(tiny_dataset, tmp_path / "parts", *accumulate, "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    parts = tmp_path / "parts" / "cifar-cnn"
    expected, actual = load_file(whole / "model.safetensors"), load_file(parts / "model.safetensors")
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert eval_history(parts) == eval_history(whole)

    history = json.loads((whole / "trainer_state.json").read_text())["log_history"]
    epoch_losses = [entry["loss"] for entry in history if "loss" in entry]
    (train_loss,) = [entry["train_loss"] for entry in history if "train_loss" in entry]
    assert len(epoch_losses) == 2
    assert train_loss == pytest.approx(sum(epoch_losses) / 2, rel=1e-6)  # two steps in each epoch
    assert f"batch size {BATCH} per device x 1 device(s) x 4 accumulated micro-batches = {4 * BATCH}" in (
        whole / "README.md").read_text()


def make_checkpoint(run: Path, step: int, complete: bool) -> Path:
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    if complete:
        (folder / checkpoints.MARKER).write_text("{}")
    return folder


def test_auto_resume_skips_torn_checkpoints_and_cleans_them_up(tmp_path):
    make_checkpoint(tmp_path, 6, complete=True)
    make_checkpoint(tmp_path, 12, complete=True)
    make_checkpoint(tmp_path, 18, complete=False)  # torn: a crash mid-save
    (tmp_path / checkpoints.STAGING / "checkpoint-24").mkdir(parents=True)
    assert checkpoints.resolve_resume(tmp_path, "auto") == str(tmp_path / "checkpoint-12")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-12", "checkpoint-6"]
    with pytest.raises(UsageError, match="not a complete checkpoint"):
        checkpoints.resolve_resume(tmp_path, str(make_checkpoint(tmp_path, 30, complete=False)))


def test_rotation_counts_only_complete_checkpoints_and_keeps_the_newest(tmp_path):
    for step, complete in ((6, True), (12, True), (18, True), (24, False)):
        make_checkpoint(tmp_path, step, complete)
    checkpoints.rotate(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-18", "checkpoint-24"]


def test_truncated_newest_checkpoint_resumes_from_the_previous_one(uninterrupted, tiny_dataset, tmp_path):
    save = tmp_path / "copy"
    save.mkdir()
    run = save / "cifar-cnn"
    subprocess.run(["cp", "-r", str(uninterrupted), str(run)], check=True)
    (run / "results.json").unlink()  # a run that crashed never wrote it (a finished run is not resumed)
    newest = run / "checkpoint-12"
    (newest / "model.safetensors").write_bytes((newest / "model.safetensors").read_bytes()[:100])
    (newest / checkpoints.MARKER).unlink()
    result = run_process(argv(tiny_dataset, save, "--resume", "auto"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "removed incomplete checkpoint" in result.stderr and "checkpoint-12" in result.stderr
    assert checkpoints.is_complete(newest)  # written again by the resumed epoch
    assert eval_history(run) == eval_history(uninterrupted)


def test_non_finite_loss_stops_at_its_step_and_saves_nothing_after(tiny_dataset, tmp_path, monkeypatch, capsys):
    original, calls = trainer_module.CifarTrainer.compute_loss, []

    def poisoned(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if not model.training:  # evaluation batches are not training steps
            return loss
        calls.append(1)
        return loss * float("nan") if len(calls) == 8 else loss

    monkeypatch.setattr(trainer_module.CifarTrainer, "compute_loss", poisoned)
    assert main(argv(tiny_dataset, tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "at step 8 (epoch 1.33)" in err and "checkpoint-6" in err
    run = tmp_path / "cifar-cnn"
    assert [p.name for p in checkpoints.checkpoints(run)] == ["checkpoint-6"]
    assert not (run / "model.safetensors").exists() and not (run / "results.json").exists()


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {EXPLOIT_FLAG}",))


EXPLOIT_FLAG = Path("/tmp") / f"cifar-hf-exploit-{os.getpid()}"


def test_pickled_object_in_a_checkpoint_is_refused(uninterrupted, tiny_dataset, tmp_path):
    save = tmp_path / "copy"
    save.mkdir()
    run = save / "cifar-cnn"
    subprocess.run(["cp", "-r", str(uninterrupted), str(run)], check=True)
    marker = run / "checkpoint-12" / checkpoints.MARKER
    recorded = json.loads(marker.read_text())
    for name in ("optimizer.pt", "rng_state.pth"):
        (run / "checkpoint-12" / name).write_bytes(pickle.dumps(Exploit()))
        recorded["file_sizes"][name] = len(pickle.dumps(Exploit()))  # a planted file that passes the size check
    marker.write_text(json.dumps(recorded))
    result = run_process(argv(tiny_dataset, save, "--resume", "auto", "-e", "3"))
    assert result.returncode != 0
    assert not EXPLOIT_FLAG.exists()  # the payload never ran
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --resume") and "not plain tensors" in last


def test_tokens_never_reach_output_or_files(tiny_dataset, tmp_path):
    canary = "CANARY_SECRET_0123456789"
    result = run_process(
        argv(tiny_dataset, tmp_path, "-w", "-e", "1"),
        {"HF_TOKEN": f"hf_{canary}", "WANDB_API_KEY": f"wandb_{canary}", "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert canary not in result.stdout and canary not in result.stderr
    files = [p for p in (tmp_path / "cifar-cnn").rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), path
