"""benchmarks/: the throughput benchmark and the GPU suite, in tiny CPU configurations (no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput import clock_marks, windows_throughput  # noqa: E402

FIELDS = ("model", "device", "batch_size", "dtype", "ceiling_samples_per_second", "project_samples_per_second",
          "ratio", "peak_memory_bytes", "startup_s", "optional_modules_before_first_step")


def run_benchmark(tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cpu", "--steps", "4",
               "--warmup", "2", "--windows", "2", "--json", str(out), *flags]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return json.loads(out.read_text())


@pytest.mark.parametrize("model", ["cnn", "previt"])
def test_throughput_json_has_every_field(model, tiny_imagenet_vit, tmp_path):
    flags = ["--model", model, "--batch-size", "8"]
    if model == "previt":  # the 32 -> 64 resize of the checkpoint's image processor runs in both measurements
        flags += ["--model-name-or-path", str(tiny_imagenet_vit)]
    result = run_benchmark(tmp_path, *flags)
    assert set(FIELDS) <= set(result)
    assert (result["model"], result["device"], result["batch_size"], result["dtype"]) == (model, "cpu", 8, "float32")
    assert result["ceiling_samples_per_second"] > 0 and result["project_samples_per_second"] > 0
    ratio = result["project_samples_per_second"] / result["ceiling_samples_per_second"]
    assert result["ratio"] == pytest.approx(ratio)
    assert result["peak_memory_bytes"] is None  # device memory only: a CPU run has none to report
    assert result["startup_s"] > 0 and isinstance(result["optional_modules_before_first_step"], list)


def test_host_overhead_times_each_per_step_call(tmp_path):
    out = tmp_path / "host.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "host_overhead.py"), "--device", "cpu", "--models", "cnn",
               "--number", "2", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["model"], row["tensors"]) == ("cnn", 12)
    for field in ("grad_norm_trainer_us", "grad_norm_alone_us", "train_mode_us", "zero_grad_us"):
        assert isinstance(row[field], float)


def test_clock_marks_split_the_timed_steps_into_equal_windows_after_warmup():
    assert clock_marks(warmup=10, steps=50, windows=4) == [10, 20, 30, 40, 50]
    assert clock_marks(warmup=2, steps=3, windows=4) == [2, 3, 4, 5, 6]  # at least one step per window


def test_window_throughput_is_the_median_window():
    # Windows of 10 steps at batch 4 taking 1 s, 2 s and 4 s: 40, 20 and 10 images/s; the median is 20.
    times, marks = [0.0, 1.0, 3.0, 7.0], [0, 10, 20, 30]
    assert windows_throughput(times, marks, batch_size=4) == pytest.approx(20.0)


def suite_dry_run(jobs: str, dataset: Path, tmp_path: Path) -> Path:
    """benchmarks/gpu_suite.sh's `jobs` at SUITE_SCALE=tiny on the CPU; returns its output folder."""
    out = tmp_path / "suite"
    env = {**os.environ, "SUITE_SCALE": "tiny", "JOBS": jobs, "DATA": str(dataset), "OUT": str(out), "BUDGET": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh")], check=True, env=env, cwd=ROOT,
                   capture_output=True, text=True)
    return out


def test_gpu_suite_dry_run_writes_the_summary(tiny_dataset, tmp_path):
    """The suite that the GPU sessions run, shrunk to the CPU: every job ends with status 0 and is summarised.

    The dry run has no time limits (issue 14: a fixed 45 s per job failed on a slow 2-core machine).
    """
    out = suite_dry_run("bench", tiny_dataset, tmp_path)
    walls = (out / "walls.txt").read_text().splitlines()
    assert [line.split()[0] for line in walls] == ["setup", "bench-resnet", "bench-vit"]
    assert all(line.endswith("limit none s, exit 0") for line in walls), walls
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["bench"]) == {"resnet", "vit"}
    assert all(set(FIELDS) <= set(bench) for bench in summary["bench"].values())
    files = [path for path in out.rglob("*") if path.is_file()]
    assert len(files) <= 8  # what a device call brings back
    assert not (out / "runs").exists()


def test_gpu_suite_dry_run_of_the_seed_batch_and_lora_rows(tiny_dataset, tmp_path):
    """The jobs that issues 18 and 23 leave for a lent GPU: the seed batches, the per-step calls, LoRA against full."""
    out = suite_dry_run("seedbatch lora", tiny_dataset, tmp_path)
    walls = (out / "walls.txt").read_text().splitlines()
    assert all(line.endswith("limit none s, exit 0") for line in walls), walls
    summary = json.loads((out / "summary.json").read_text())
    lora = {name: bench["lora_r"] for name, bench in summary["bench"].items() if name.startswith("previt-b8")}
    assert lora == {"previt-b8-full": None, "previt-b8-lora": 8}
    assert {"resnet-b128", "cnn-b128", "previt-b32"} <= set(summary["bench"])
    assert "grad norm (Trainer)" in (out / "bench.log").read_text()  # host_overhead.py's table
    assert len([path for path in out.rglob("*") if path.is_file()]) <= 8

