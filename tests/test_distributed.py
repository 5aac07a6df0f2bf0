"""Two real gloo processes on the CPU: sharding, evaluation gathering and single-writer outputs (torchrun, one
machine); a stop signal on one rank of two "machines" (accelerate launch --num_machines 2 on localhost), the exact
resume across both, and a save folder that one machine cannot see."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import pretend_online

from cifar_hf import hub
from cifar_hf.__main__ import main as cli

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SIZE, BATCH, EPOCHS = 160, 16, 2  # 160 = 5 steps x 16 images x 2 processes: no padding at the epoch's end

# Runs in each process: records the indices of every batch the Trainer's DataLoader asks for, sends SIGTERM to
# itself at the end of the step that SIGNAL_AT gives for its rank ("1:2": rank 1 at step 2), trains, and records
# its exit status.
LAUNCHER = """
import json, os, signal, sys
import torch.distributed as dist
from cifar_hf.data.tensors import ImageTensorDataset
from cifar_hf.training import callbacks
from cifar_hf.commands.train import main

plan = dict(map(int, p.split(":")) for p in os.environ.get("SIGNAL_AT", "").split(",") if p)
on_step_end = callbacks.StopOnSignal.on_step_end

def signalling(self, args, state, control, **kwargs):
    if plan.get(args.process_index) == state.global_step:
        os.kill(os.getpid(), signal.SIGTERM)
    return on_step_end(self, args, state, control, **kwargs)

callbacks.StopOnSignal.on_step_end = signalling

record = open(os.path.join(sys.argv[1], f"rank-{os.environ['RANK']}.jsonl"), "a")
original = ImageTensorDataset.__getitems__

def recording(self, indices):
    size = dist.get_world_size() if dist.is_initialized() else 1
    record.write(json.dumps({"n": len(self), "world": size, "indices": list(map(int, indices))}) + "\\n")
    record.flush()
    return original(self, indices)

ImageTensorDataset.__getitems__ = recording
status = main(sys.argv[2:])
open(os.path.join(sys.argv[1], f"exit-{os.environ['RANK']}"), "w").write(str(status))
sys.exit(status)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(dataset, save):
    return ["-m", "cnn", "-d", "cpu", "--dataset", str(dataset), "--val-size", "40", "--max-train-samples",
            str(TRAIN_SIZE), "-e", str(EPOCHS), "-b", str(BATCH), "-l", "3e-3", "-s", str(save),
            "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def two_process_run(tiny_dataset, tmp_path_factory):
    work = tmp_path_factory.mktemp("ddp")
    (work / "launcher.py").write_text(LAUNCHER)
    (work / "records").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(work / "launcher.py"), str(work / "records"),
         *train_args(tiny_dataset, work / "runs")],
        capture_output=True, text=True, timeout=900, env=env, cwd=work,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return work


def batches(work, rank):
    lines = (work / "records" / f"rank-{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_both_processes_see_world_size_two(two_process_run):
    for rank in (0, 1):
        assert {b["world"] for b in batches(two_process_run, rank)} == {2}


def test_each_training_image_is_used_once_per_epoch_across_processes(two_process_run):
    steps = TRAIN_SIZE // (BATCH * 2)
    train = {rank: [b["indices"] for b in batches(two_process_run, rank) if b["n"] == TRAIN_SIZE] for rank in (0, 1)}
    assert len(train[0]) == len(train[1]) == steps * EPOCHS  # half the steps of one process at this batch
    orders = []
    for epoch in range(EPOCHS):
        seen = [i for rank in (0, 1) for batch in train[rank][epoch * steps:(epoch + 1) * steps] for i in batch]
        assert sorted(seen) == list(range(TRAIN_SIZE))  # disjoint shards covering the split
        orders.append(train[0][epoch * steps:(epoch + 1) * steps])
    assert orders[0] != orders[1]  # reshuffled every epoch


def test_one_run_folder_and_one_set_of_results(two_process_run):
    runs = two_process_run / "runs"
    assert [p.name for p in runs.iterdir()] == ["cifar-cnn"]
    results = json.loads((runs / "cifar-cnn" / "results.json").read_text())
    assert results["world_size"] == 2 and results["per_device_batch_size"] == BATCH
    assert results["distributed_type"] == "MULTI_CPU"
    assert results["global_batch_size"] == 2 * BATCH
    assert results["global_step"] == EPOCHS * TRAIN_SIZE // (2 * BATCH)
    assert len(list((runs / "cifar-cnn").glob("results*.json"))) == 1
    card = (runs / "cifar-cnn" / "README.md").read_text()
    assert "- command, run by each of 2 processes (MULTI_CPU; the launchers are in" in card  # not a 1-process one


def test_validation_accuracy_and_loss_equal_a_single_process_evaluation(two_process_run, tmp_path):
    """The loss too: accelerate pads each process's batch with repeated images, which the Trainer's loss counted."""
    run = two_process_run / "runs" / "cifar-cnn"
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--output", str(tmp_path)]) == 0
    single = json.loads((tmp_path / "evaluation-validation.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert single["num_images"] == 40  # every validation image once: no padding duplicates
    assert results["val_accuracy"] == pytest.approx(single["accuracy"], abs=1e-9)
    assert results["val_loss"] == pytest.approx(single["loss"], rel=1e-6)


@pytest.fixture(scope="module")
def auto_device_run(tiny_dataset, tmp_path_factory):
    """Two processes with -d auto (no -d cpu) where torch sees no GPU, keeping the best epoch's model: epoch 1's, the
    one with the higher validation loss (so the kept model is a reloaded one, not the last)."""
    if torch.accelerator.is_available() and torch.accelerator.current_accelerator().type != "cuda":
        pytest.skip("needs a machine whose only accelerator, if any, is a CUDA GPU (hidden here)")
    work = tmp_path_factory.mktemp("ddp-auto")
    (work / "launcher.py").write_text(LAUNCHER)
    (work / "records").mkdir()
    flags = [flag for flag in train_args(tiny_dataset, work / "runs") if flag not in ("-d", "cpu")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(work / "launcher.py"), str(work / "records"), *flags, "-f", "1",
         "--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss", "--greater_is_better", "true"],
        capture_output=True, text=True, timeout=900, env=env, cwd=work,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return work / "runs" / "cifar-cnn"


def test_without_a_gpu_the_processes_train_one_run_without_being_told_d_cpu(auto_device_run):
    """Not told it was a CPU run, accelerate gave each process a world of its own: each trained the whole run alone."""
    results = json.loads((auto_device_run / "results.json").read_text())
    assert results["world_size"] == 2 and results["distributed_type"] == "MULTI_CPU"
    assert results["global_step"] == EPOCHS * TRAIN_SIZE // (2 * BATCH)


def test_every_process_keeps_the_best_epochs_model(auto_device_run):
    """Only rank 0 learnt the best checkpoint's published path: the others looked for it in the staging folder and
    stopped the run at its end (the fixture's exit status)."""
    state = json.loads((auto_device_run / "trainer_state.json").read_text())
    assert state["best_global_step"] < state["global_step"]
    kept, saved = load_file(auto_device_run / "model.safetensors"), load_file(
        auto_device_run / f"checkpoint-{state['best_global_step']}" / "model.safetensors")
    assert all(torch.equal(kept[k], saved[k]) for k in saved)


def test_a_resume_with_another_number_of_processes_is_refused(two_process_run, tiny_dataset, tmp_path, capsys,
                                                               monkeypatch):
    """-b is per process: resumed by one process, a two-process run would train another global batch and epoch length
    (and record only the last part's)."""
    shutil.copytree(two_process_run / "runs", tmp_path / "runs")
    before = {p: p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file()}
    assert cli(["train", *train_args(tiny_dataset, tmp_path / "runs"), "--resume", "auto", "-e", str(EPOCHS + 1)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --resume: --num_processes 1 differs from the run being resumed (2): launch it on 2 (-b is per "
        "process); resume with the run's own flags, or start a new run with --overwrite")
    assert {p: p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file()} == before
    # Finished at this length, the run is only pushed (from a login node, say): any number of processes may do that.
    pretend_online(monkeypatch)
    monkeypatch.setattr(hub, "push_run_folder", lambda folder, repo, private=None: f"https://hub.invalid/{repo}")
    assert cli(["train", *train_args(tiny_dataset, tmp_path / "runs"), "--resume", "auto", "--push_to_hub"]) == 0
    assert "pushed it to the Hub (https://hub.invalid/cifar-cnn)" in capsys.readouterr().out


def test_a_record_written_before_the_process_count_was_recorded_resumes_on_any_count():
    from cifar_hf.training.run_record import differences

    assert differences({"-b": 16}, {"-b": 16, "--num_processes": 2}, "the run being resumed") == []
    assert differences({"-b": 16, "--num_processes": 1}, {"-b": 16, "--num_processes": 2}, "the run") == [
        "--num_processes 2 differs from the run (1)"]


# --- two "machines" on localhost, one process each: preemption, resume, shared storage -------------------------------

MULTI_NODE_CONFIG = ROOT / "accelerate_configs" / "multi_node.yaml"  # num_machines: 2
STOP_CHECK = 4  # the processes agree on stop signals every 4 steps (and at each epoch's end)


def launch_two_machines(work: Path, records: Path, extra: list[str], signal_at: str = "", env_extra=None):
    """The repository's multi-node launch file on two "machines", one gloo process each; returns their output."""
    records.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "1",
           "SIGNAL_AT": signal_at, **(env_extra or {})}
    port = str(free_port())
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_NODE_CONFIG),
             "--machine_rank", str(rank), "--num_processes", "2", "--main_process_ip", "127.0.0.1",
             "--main_process_port", port, str(work / "launcher.py"), str(records), *extra(rank)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=work,
        )
        for rank in (0, 1)
    ]
    return [machine.communicate(timeout=900)[0] for machine in machines]


def exit_status(records: Path, rank: int) -> int:
    return int((records / f"exit-{rank}").read_text())


def checkpoint_args(dataset, save, *extra):
    return [*train_args(dataset, save), "-f", "1", "--stop-check-steps", str(STOP_CHECK), *extra]


@pytest.fixture(scope="module")
def preempted(two_process_run, tiny_dataset):
    """SIGTERM reaches rank 1 alone, at step 2 of 10; then the run resumes with --resume auto on both machines."""
    work = two_process_run
    runs = work / "preempted"
    stopped = launch_two_machines(work, work / "stopped", lambda rank: checkpoint_args(tiny_dataset, runs), "1:2")
    resumed = launch_two_machines(work, work / "resumed",
                                  lambda rank: checkpoint_args(tiny_dataset, runs, "--resume", "auto"))
    return work, stopped, resumed


def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(preempted):
    work, stopped, _ = preempted
    for rank in (0, 1):
        assert exit_status(work / "stopped", rank) == 143, stopped[rank][-3000:]  # 128 + SIGTERM, as a shell reports
        # each process reports its own step: rank 0, which never got the signal, stopped where rank 1 did
        assert f"error: stopped by SIGTERM at step {STOP_CHECK}:" in stopped[rank]


@pytest.mark.parametrize("signal_at", ["0:2", "0:2,1:3"])  # rank 0 alone; both ranks, a step apart
def test_a_signal_on_rank_0_or_on_both_a_step_apart_stops_every_rank_at_the_same_step(two_process_run, tiny_dataset,
                                                                                       signal_at):
    work, tag = two_process_run, signal_at.replace(":", "at").replace(",", "-")
    runs, records = work / f"stopped-{tag}", work / f"records-{tag}"
    outputs = launch_two_machines(work, records, lambda rank: checkpoint_args(tiny_dataset, runs), signal_at)
    for rank in (0, 1):
        assert exit_status(records, rank) == 143, outputs[rank][-3000:]
        assert f"error: stopped by SIGTERM at step {STOP_CHECK}:" in outputs[rank]
    checkpoint = runs / "cifar-cnn" / f"checkpoint-{STOP_CHECK}"
    assert (checkpoint / "checkpoint_complete.json").is_file()
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}


def test_the_stop_leaves_one_complete_checkpoint_with_every_ranks_state(preempted):
    work, _, _ = preempted
    run = work / "preempted" / "cifar-cnn"
    # the stop wrote checkpoint-4 alone (epoch 1 ends at step 5); the resumed run added the epoch checkpoints
    assert sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*")) == [STOP_CHECK, 5, 10]
    checkpoint = run / f"checkpoint-{STOP_CHECK}"
    assert (checkpoint / "checkpoint_complete.json").is_file()
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == STOP_CHECK
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in history if "eval_accuracy" in e] == [5, 10]  # no evaluation at the mid-epoch stop


def test_resume_on_two_machines_ends_bitwise_equal_to_the_uninterrupted_run(preempted):
    work, _, resumed = preempted
    for rank in (0, 1):
        assert exit_status(work / "resumed", rank) == 0, resumed[rank][-3000:]
    run, reference = work / "preempted" / "cifar-cnn", work / "runs" / "cifar-cnn"
    weights, expected = load_file(run / "model.safetensors"), load_file(reference / "model.safetensors")
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in weights)
    results, expected_results = (json.loads((r / "results.json").read_text()) for r in (run, reference))
    assert results["val_accuracy"] == expected_results["val_accuracy"] and results["world_size"] == 2
    assert [p.name for p in (work / "preempted").iterdir()] == ["cifar-cnn"]  # one run folder for both machines


def test_resumed_machines_share_out_every_image_of_an_epoch(preempted):
    work, _, _ = preempted
    steps = TRAIN_SIZE // (BATCH * 2)
    last_epoch = {}
    for rank in (0, 1):
        records = [json.loads(line) for line in (work / "resumed" / f"rank-{rank}.jsonl").read_text().splitlines()]
        train = [r for r in records if r["n"] == TRAIN_SIZE]
        assert {r["world"] for r in records} == {2}
        assert len(train) == EPOCHS * steps - STOP_CHECK  # steps 5 to 10: nothing before the checkpoint again
        last_epoch[rank] = [i for r in train[-steps:] for i in r["indices"]]
    assert sorted(last_epoch[0] + last_epoch[1]) == list(range(TRAIN_SIZE))


def srun_tasks(work: Path, records: Path, commands: list[list[str]], env_extra: dict | None = None):
    """Two processes started as srun starts one task per GPU (RANK, WORLD_SIZE, ... set, no launcher), each with its
    own command line; returns the processes and their output."""
    records.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "1",
           "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), **(env_extra or {})}
    tasks = [subprocess.Popen([sys.executable, str(work / "launcher.py"), str(records), *commands[rank]],
                              env={**env, "RANK": str(rank)}, cwd=work, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in (0, 1)]
    return tasks, [task.communicate(timeout=600)[0] for task in tasks]


def test_a_save_folder_one_machine_cannot_see_stops_both_with_one_line(two_process_run, tiny_dataset):
    """Two processes started as srun starts one task per GPU (RANK, WORLD_SIZE, ... set, no launcher), each "machine"
    with its own -s folder."""
    work = two_process_run
    tasks, outputs = srun_tasks(work, work / "unshared", [train_args(tiny_dataset, work / f"machine-{rank}")
                                                          for rank in (0, 1)], {"CIFAR_HF_SHARED_FOLDER_WAIT_S": "1"})
    host = socket.gethostname()
    for rank, task in enumerate(tasks):
        assert task.returncode == 2, outputs[rank][-3000:]
        assert outputs[rank].splitlines()[-1] == (
            f"error: process 1 on {host} ({work / 'machine-1' / 'cifar-cnn'}) cannot see the run folder "
            f"{work / 'machine-0' / 'cifar-cnn'} that process 0 on {host} writes: "
            "-s/--save-folder must be on storage shared by every machine")
        assert "Traceback" not in outputs[rank]
        save = work / f"machine-{rank}"
        assert not save.exists() or list(save.iterdir()) == []  # no run folder left behind on either machine


def test_machines_started_with_different_flags_stop_with_one_line(two_process_run, tiny_dataset):
    """Each machine is started with its own command line: another -e hung both in a collective, another --seed
    trained each on other data. Local folders compare by name (another machine may mount them elsewhere)."""
    work = two_process_run
    mounted_elsewhere = work / "elsewhere"
    mounted_elsewhere.mkdir()
    (mounted_elsewhere / tiny_dataset.name).symlink_to(tiny_dataset)
    commands = [train_args(tiny_dataset, work / "mixed"),
                [*train_args(mounted_elsewhere / tiny_dataset.name, work / "mixed"), "-e", "3", "--seed", "7"]]
    tasks, outputs = srun_tasks(work, work / "different", commands)
    host = socket.gethostname()
    for rank, task in enumerate(tasks):
        assert task.returncode == 2, outputs[rank][-3000:]
        assert outputs[rank].splitlines()[-1] == (
            f"error: process 1 on {host} was started with other flags than process 0 on {host} (-e 3 there, 2 on "
            "process 0, --seed 7 there, 2023 on process 0): start every machine with the same command")
    assert not (work / "mixed").exists()  # stopped before anything was written


def test_what_may_differ_between_machines_is_not_a_different_command(tmp_path, monkeypatch):
    """A path spelled per machine (another mount, relative or absolute) and the per-process --local_rank."""
    from cifar_hf.training.arguments import parse_arguments
    from cifar_hf.training.run_record import launch_flags

    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "b")

    def flags(*argv):
        return launch_flags(*parse_arguments(["-m", "cnn", "-d", "cpu", *argv]))

    machine_0 = flags("--dataset", str(tmp_path / "a" / "data"), "--resume", str(tmp_path / "a" / "checkpoint-4"),
                      "--fsdp_config", str(tmp_path / "a" / "fsdp.json"), "--local_rank", "0", "-s", "/mnt/runs")
    machine_1 = flags("--dataset", "data", "--resume", "checkpoint-4", "--fsdp_config", "fsdp.json",
                      "--local_rank", "1", "-s", "/shared/runs")
    assert machine_0 == machine_1
    assert flags("--dataset", "data", "-e", "3") != flags("--dataset", "data", "-e", "2")


@pytest.mark.parametrize("model, find_unused", [("cnn", False), ("resnet", False), ("vit", False), ("previt", None)])
def test_ddp_searches_for_unused_parameters_only_where_a_checkpoint_may_hold_one(model, find_unused):
    """The scratch models use every parameter in every step; previt keeps the Trainer's rule (DINOv2's mask token
    is a trainable parameter its forward pass does not use)."""
    from cifar_hf.training.arguments import parse_arguments
    from cifar_hf.training.recipes import get_recipe
    from cifar_hf.training.run import build_training_arguments

    args, flags = parse_arguments(["-m", model, "-d", "cpu"])
    training_args = build_training_arguments(args, get_recipe(model), flags, Path("out"))
    assert training_args.ddp_find_unused_parameters is find_unused
    args, flags = parse_arguments(["-m", model, "-d", "cpu", "--ddp_find_unused_parameters", "true"])
    assert build_training_arguments(args, get_recipe(model), flags, Path("out")).ddp_find_unused_parameters is True
