"""Two real gloo processes on the CPU (torchrun): sharding, evaluation gathering and single-writer outputs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_hf.__main__ import main as cli

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SIZE, BATCH, EPOCHS = 160, 16, 2  # 160 = 5 steps x 16 images x 2 processes: no padding at the epoch's end

# Runs in each process: records the indices of every batch the Trainer's DataLoader asks for, then trains.
LAUNCHER = """
import json, os, sys
import torch.distributed as dist
from cifar_hf.data.tensors import ImageTensorDataset
from cifar_hf.commands.train import main

record = open(os.path.join(sys.argv[1], f"rank-{os.environ['RANK']}.jsonl"), "a")
original = ImageTensorDataset.__getitems__

def recording(self, indices):
    size = dist.get_world_size() if dist.is_initialized() else 1
    record.write(json.dumps({"n": len(self), "world": size, "indices": list(map(int, indices))}) + "\\n")
    record.flush()
    return original(self, indices)

ImageTensorDataset.__getitems__ = recording
sys.exit(main(sys.argv[2:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(dataset, save):
    return ["-m", "cnn", "-d", "cpu", "--dataset", str(dataset), "--val-size", "40", "--max-train-samples",
            str(TRAIN_SIZE), "-e", str(EPOCHS), "-b", str(BATCH), "-l", "3e-3", "-s", str(save), "--disable_tqdm", "true"]


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
    assert results["global_batch_size"] == 2 * BATCH
    assert results["global_step"] == EPOCHS * TRAIN_SIZE // (2 * BATCH)
    assert len(list((runs / "cifar-cnn").glob("results*.json"))) == 1


def test_validation_accuracy_equals_a_single_process_evaluation(two_process_run, tmp_path):
    run = two_process_run / "runs" / "cifar-cnn"
    assert cli(["evaluate", "--model", str(run), "--split", "validation", "--output", str(tmp_path)]) == 0
    single = json.loads((tmp_path / "evaluation-validation.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert single["num_images"] == 40  # every validation image once: no padding duplicates
    assert results["val_accuracy"] == pytest.approx(single["accuracy"], abs=1e-9)
