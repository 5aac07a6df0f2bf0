"""The repository's DeepSpeed launch files (ZeRO-2, ZeRO-3) in two real gloo processes on the CPU, DeepSpeed's CPU
accelerator: previt trains to the same weights as DDP, saves one whole model, stops on a signal to one rank with
every rank's shards, resumes exactly, keeps its best epoch; what DeepSpeed cannot hold is one line.

Needs deepspeed, which is not a dependency: `.ci/run` installs it (DS_BUILD_OPS=0) in a venv of its own and runs
this file there; elsewhere the file is skipped."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_distributed import LAUNCHER, exit_status, free_port

from cifar_hf.__main__ import main as cli

if importlib.util.find_spec("deepspeed") is None:
    pytest.skip("needs deepspeed (DS_BUILD_OPS=0 pip install deepspeed); .ci/run installs it for this file",
                allow_module_level=True)
if torch.accelerator.is_available() and torch.accelerator.current_accelerator().type != "cuda":
    pytest.skip("runs on the CPU with CUDA hidden; another accelerator cannot be", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "accelerate_configs"
TRAIN_SIZE, BATCH, STOP_CHECK = 160, 16, 4  # 5 steps an epoch over 2 processes; stop signals agreed every 4 steps


def launch(work: Path, config: str, name: str, checkpoint: Path, extra=(), signal_at: str = "",
           tag: str = "") -> tuple[Path, str]:
    """`accelerate launch --config_file accelerate_configs/<config> --num_processes 2` of a two-epoch previt run into
    <work>/<name>; returns the records folder (exit statuses) and the launcher's output."""
    records = work / f"records-{tag or name}"
    records.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "SIGNAL_AT": signal_at,
           "CUDA_VISIBLE_DEVICES": ""}
    if not config.startswith("deepspeed"):
        env["ACCELERATE_USE_CPU"] = "1"  # multi_gpu.yaml's CPU form
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
         "--num_processes", "2", "--main_process_port", str(free_port()), str(work / "launcher.py"), str(records),
         "-m", "previt", "--model-name-or-path", str(checkpoint), "--dataset", str(work / "data"), "--val-size", "40",
         "--max-train-samples", str(TRAIN_SIZE), "-e", "2", "-b", str(BATCH), "-s", str(work / name), "-f", "1",
         "--stop-check-steps", str(STOP_CHECK), "--disable_tqdm", "true", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=work, timeout=900,
    )
    assert all((records / f"exit-{rank}").is_file() for rank in (0, 1)), result.stdout[-4000:]  # no process died
    return records, result.stdout


@pytest.fixture(scope="module")
def runs(tiny_dataset, tiny_imagenet_vit, tmp_path_factory):
    """The same run under DDP, ZeRO-2 and ZeRO-3 (no -d cpu: a machine without a GPU is found by itself)."""
    work = tmp_path_factory.mktemp("deepspeed")
    (work / "launcher.py").write_text(LAUNCHER)
    (work / "data").symlink_to(tiny_dataset)
    for config, name in (("multi_gpu.yaml", "ddp"), ("deepspeed_zero2.yaml", "zero2"),
                         ("deepspeed_zero3.yaml", "zero3")):
        records, output = launch(work, config, name, tiny_imagenet_vit)
        assert [exit_status(records, rank) for rank in (0, 1)] == [0, 0], output[-4000:]
    return work, tiny_imagenet_vit


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_trains_previt_to_the_weights_ddp_trains_and_saves_one_whole_model(runs, stage):
    work, _ = runs
    run, reference = work / f"zero{stage}" / "cifar-previt", work / "ddp" / "cifar-previt"
    results = json.loads((run / "results.json").read_text())
    assert results["distributed_type"] == "DEEPSPEED" and results["world_size"] == 2
    assert results["global_step"] == 2 * TRAIN_SIZE // (2 * BATCH)
    trained, expected = weights(run), weights(reference)
    assert trained["classifier.weight"].shape == (4, 32)  # ZeRO-3's loader could not replace the head
    assert trained.keys() == expected.keys()
    assert all(torch.allclose(trained[k], expected[k], rtol=0, atol=1e-6) for k in trained)
    loaded = load_file(runs[1] / "model.safetensors")["vit.embeddings.cls_token"]
    assert not torch.equal(trained["vit.embeddings.cls_token"], loaded)  # trained, not the checkpoint as loaded


def test_a_zero3_model_scores_its_validation_accuracy_in_a_single_process_evaluation(runs, tmp_path):
    run = runs[0] / "zero3" / "cifar-previt"
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--output", str(tmp_path)]) == 0
    single = json.loads((tmp_path / "evaluation-validation.json").read_text())["accuracy"]
    assert single == pytest.approx(json.loads((run / "results.json").read_text())["val_accuracy"], abs=1e-9)


@pytest.mark.parametrize("stage", [2, 3])
def test_a_signal_on_one_rank_stops_both_with_every_ranks_shards_and_the_resume_is_exact(runs, stage):
    work, checkpoint = runs
    name = f"preempted{stage}"
    records, output = launch(work, f"deepspeed_zero{stage}.yaml", name, checkpoint, signal_at="1:2")
    assert [exit_status(records, rank) for rank in (0, 1)] == [143, 143], output[-4000:]
    assert output.count(f"error: stopped by SIGTERM at step {STOP_CHECK}:") == 2
    saved = work / name / "cifar-previt" / f"checkpoint-{STOP_CHECK}"
    assert (saved / "checkpoint_complete.json").is_file()
    shards = {p.name for p in (saved / f"global_step{STOP_CHECK}").iterdir()}
    parts = ("optim", "model") if stage == 3 else ("optim",)  # ZeRO-3 shards the weights too, ZeRO-2 keeps them whole
    assert {f"zero_pp_rank_{rank}_mp_rank_00_{part}_states.pt" for rank in (0, 1) for part in parts} <= shards

    records, output = launch(work, f"deepspeed_zero{stage}.yaml", name, checkpoint, ["--resume", "auto"],
                             tag=f"{name}-resumed")
    assert [exit_status(records, rank) for rank in (0, 1)] == [0, 0], output[-4000:]
    resumed, uninterrupted = weights(work / name / "cifar-previt"), weights(work / f"zero{stage}" / "cifar-previt")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_zero3_keeps_the_best_epochs_model(runs):
    """Epoch 1's model, the one with the higher validation loss: the kept model is a reloaded one, not the last."""
    work, checkpoint = runs
    records, output = launch(work, "deepspeed_zero3.yaml", "best", checkpoint,
                             ["--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss",
                              "--greater_is_better", "true"])
    assert [exit_status(records, rank) for rank in (0, 1)] == [0, 0], output[-4000:]
    run = work / "best" / "cifar-previt"
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["best_global_step"] < state["global_step"]
    kept, saved = weights(run), weights(run / f"checkpoint-{state['best_global_step']}")
    assert all(torch.equal(kept[k], saved[k]) for k in saved)


@pytest.mark.parametrize("config, flags, line", [
    ("deepspeed_zero3.yaml", ["--ema-decay", "0.9"],
     "error: --ema-decay averages whole weights, which DeepSpeed ZeRO-3 shards across the processes: use "
     "accelerate_configs/deepspeed_zero2.yaml (ZeRO-2 keeps the weights whole)"),
    ("deepspeed_zero2.yaml", ["--lora-r", "4"],
     "error: --lora-r: DeepSpeed's engine would save the adapted model, not the merged one this run writes; "
     "LoRA needs no sharding (ViT-B/16 fine-tunes in 2.3 GB at batch 32): launch it with "
     "accelerate_configs/multi_gpu.yaml"),
], ids=["ema-zero3", "lora"])
def test_what_deepspeed_cannot_hold_is_one_line_before_training(runs, config, flags, line):
    work, checkpoint = runs
    name = f"refused-{flags[0].strip('-')}"
    records, output = launch(work, config, name, checkpoint, flags)
    assert [exit_status(records, rank) for rank in (0, 1)] == [2, 2], output[-4000:]
    assert output.count(line) == 2  # one from each process; the launcher's own traceback follows (a child failed)
    assert not (work / name).exists()
