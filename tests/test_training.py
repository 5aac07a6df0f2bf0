"""End-to-end runs of run_classification.py on tiny synthetic data (CPU, a few seconds each)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import tiny_run_args
from transformers import AutoModelForImageClassification, TrainerCallback, pipeline
from wandb_records import logged

from cifar_hf.commands.train import main
from cifar_hf.data import BatchTransform, load_cifar

ROOT = Path(__file__).resolve().parents[1]
RESULT_KEYS = {"model", "epochs", "seed", "val_accuracy", "val_loss", "test_accuracy", "test_loss", "train_runtime_s",
               "train_samples_per_second", "hyperparameters", "world_size", "distributed_type", "global_batch_size",
               "global_step"}


@pytest.fixture(scope="module")
def cnn_run(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("runs")
    code = main(tiny_run_args(tiny_dataset, save, "-e", "4", "-b", "16", "-l", "3e-3", "-f", "2"))
    assert code == 0
    return save / "cifar-cnn"


def test_run_folder_meets_the_output_contract(cnn_run):
    names = {p.name for p in cnn_run.iterdir()}
    assert {"model.safetensors", "config.json", "modeling_cnn.py", "configuration_cnn.py",
            "preprocessor_config.json", "results.json", "trainer_state.json"} <= names
    results = json.loads((cnn_run / "results.json").read_text())
    assert RESULT_KEYS <= results.keys()
    assert results["model"] == "cnn" and results["epochs"] == 4 and results["seed"] == 2023
    assert results["world_size"] == 1 and results["distributed_type"] == "NO"
    assert results["test_accuracy"] is not None and 0 <= results["test_accuracy"] <= 1
    assert results["hyperparameters"]["learning_rate"] == 3e-3
    assert results["val_accuracy"] > 0.5  # 4 colour classes are easy to learn


def test_checkpoints_at_the_asked_frequency(cnn_run):
    steps_per_epoch = -(-200 // 16)
    checkpoints = sorted(p.name for p in cnn_run.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{2 * steps_per_epoch}", f"checkpoint-{4 * steps_per_epoch}"]
    assert (cnn_run / checkpoints[0] / "optimizer.pt").exists()  # resumable, not just weights


def test_training_loss_goes_down(cnn_run):
    history = json.loads((cnn_run / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    accuracies = [entry["eval_accuracy"] for entry in history if "eval_accuracy" in entry]
    assert len(losses) == 4 and len(accuracies) == 4  # one of each per epoch
    assert losses[-1] < losses[0]


def test_pipeline_classifies_pil_images_of_any_size_like_training(cnn_run, tiny_dataset):
    classifier = pipeline("image-classification", model=str(cnn_run), trust_remote_code=True, device="cpu")
    data = load_cifar(str(tiny_dataset), val_size=40)
    images = [Image.fromarray(p) for p in data.test.pixels[:16]]
    predicted = [result[0]["label"] for result in classifier(images)]
    # The pipeline's preprocessing equals the training transform: same predictions as the model on our tensors.
    model = AutoModelForImageClassification.from_pretrained(cnn_run, trust_remote_code=True).eval()
    pixels = torch.from_numpy(data.test.pixels[:16]).permute(0, 3, 1, 2)
    with torch.no_grad():
        stats = json.loads((cnn_run / "results.json").read_text())["hyperparameters"]["data"]["normalisation"]
        transform = BatchTransform(mean=tuple(stats["mean"]), std=tuple(stats["std"]))  # the dataset's own
        direct = model(pixel_values=transform(pixels, train=False)).logits.argmax(-1)
    assert predicted == [model.config.id2label[int(i)] for i in direct]
    # Other sizes and modes are resized and converted.
    big_red = Image.new("RGB", (96, 64), (210, 30, 30))
    grey = Image.new("L", (40, 40), 20)
    assert classifier(big_red)[0]["label"] == "red"
    assert classifier(grey)[0]["label"] in model.config.id2label.values()


def test_existing_run_folder_is_not_overwritten_silently(cnn_run, tiny_dataset, capsys):
    before = (cnn_run / "model.safetensors").read_bytes()
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-s", str(cnn_run.parent)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" in err
    assert (cnn_run / "model.safetensors").read_bytes() == before


def test_bad_input_writes_nothing(tiny_dataset, tmp_path, capsys):
    argv = ["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "100000", "-s", str(tmp_path)]
    assert main(argv) == 1
    assert "--val-size" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_folder(tiny_dataset, tmp_path):
    argv = tiny_run_args(tiny_dataset, tmp_path, "-e", "1", "--max-train-samples", "32")
    assert main(argv) == 0
    (tmp_path / "cifar-cnn" / "stale.txt").write_text("old")
    assert main(argv + ["--overwrite"]) == 0
    assert not (tmp_path / "cifar-cnn" / "stale.txt").exists()
    results = json.loads((tmp_path / "cifar-cnn" / "results.json").read_text())
    assert results["hyperparameters"]["max_train_samples"] == 32


def test_wandb_offline_run_records_metrics_and_hyperparameters(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    argv = tiny_run_args(tiny_dataset, tmp_path, "-e", "2", "-w")
    assert main(argv) == 0
    import wandb

    wandb.teardown()  # the wandb service writes the run file asynchronously: stop it so the file is complete
    runs = list((tmp_path / "cifar-cnn" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history, summary, config = logged(next(runs[0].glob("run-*.wandb")))
    assert {"eval/accuracy", "eval/loss", "train/loss", "train/learning_rate"} <= history  # every epoch's metrics
    assert {"val_accuracy", "val_loss", "test_accuracy", "train_runtime_s"} <= summary  # the final results
    logged_media = {key.split("/")[0] for key in history}  # media are logged as nested keys (path, sha256, ...)
    assert {"training_curves", "confusion_matrix_figure", "confusion_matrix_table"} <= logged_media
    assert "cifar_hf=" in config and "recipe_settings" in config and "learning_rate" in config


def test_plain_python_entry_point_runs(tiny_dataset, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_classification.py"), "-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset),
         "--val-size", "40", "-e", "1", "--max-train-samples", "40", "-s", str(tmp_path), "--disable_tqdm", "true"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation accuracy" in result.stdout
    assert np.isfinite(json.loads((tmp_path / "cifar-cnn" / "results.json").read_text())["val_loss"])


def test_flip_tta_scores_the_mean_of_image_and_mirror(cnn_run, tiny_dataset):
    from cifar_hf.data import ImageTensorDataset, collate_batch
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.run import build_trainer

    data = load_cifar(str(tiny_dataset), val_size=40)
    args = RunArguments(model="cnn", device="cpu", tta=True, save_folder=str(cnn_run.parent))
    trainer, transform, _ = build_trainer(args, {"disable_tqdm": True, "report_to": "none"}, data, cnn_run / "tta")
    model = AutoModelForImageClassification.from_pretrained(cnn_run).eval()
    trainer.model.load_state_dict(model.state_dict())
    output = trainer.predict(ImageTensorDataset(data.validation))
    batch = collate_batch(ImageTensorDataset(data.validation).__getitems__(list(range(40))))
    pixels = transform(batch["pixel_values"], train=False)
    with torch.no_grad():
        expected = (model(pixel_values=pixels).logits + model(pixel_values=pixels.flip(-1)).logits) / 2
    assert np.allclose(output.predictions, expected.numpy(), atol=1e-5)
    assert not np.allclose(expected.numpy(), model(pixel_values=pixels).logits.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("model", ["cnn", "vit"])
def test_training_steps_read_nothing_back_from_the_device(model, tiny_dataset, tmp_path, monkeypatch):
    """From a step's start to its end (forward, backward, loss bookkeeping, clipping, scheduler), a training step
    reads no tensor back to the host: on a GPU each read stalls the host until the queue drains, once per step.
    (The optimizer is left out: on the CPU, Adam reads its step count; its fused GPU kernels do not.)"""
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.run import build_trainer

    state = {"in_step": False, "step_reads": [], "other_reads": 0}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        def counting(self, *args, _original=getattr(torch.Tensor, name), _name=name, **kwargs):  # noqa: B008 (binds each patched method, as intended)
            if state["in_step"]:
                state["step_reads"].append(_name)
            else:
                state["other_reads"] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)

    class StepWindow(TrainerCallback):
        def on_step_begin(self, args, trainer_state, control, **kwargs):
            state["in_step"] = True

        def on_pre_optimizer_step(self, args, trainer_state, control, **kwargs):
            state["in_step"] = False

        def on_optimizer_step(self, args, trainer_state, control, **kwargs):
            state["in_step"] = True

        def on_step_end(self, args, trainer_state, control, **kwargs):
            state["in_step"] = False

    data = load_cifar(str(tiny_dataset), val_size=40, max_train_samples=64)
    args = RunArguments(model=model, device="cpu", batch_size=8)
    flags = {"num_train_epochs": 1, "disable_tqdm": True, "report_to": "none"}
    trainer, _, _ = build_trainer(args, flags, data, tmp_path)
    trainer.add_callback(StepWindow())
    trainer.train()
    assert trainer.state.global_step == 8
    assert state["step_reads"] == []
    assert state["other_reads"] > 0  # the epoch-end log and evaluation do read (the counter works)


def test_training_steps_ask_importlib_nothing(tiny_dataset, tmp_path, monkeypatch):
    """accelerate's optimizer step asks importlib whether lomo_optim is installed, twice per step unless asked once
    (CifarTrainer): 60 us of host time per step on the 2-core CPU."""
    import importlib.util

    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.run import build_trainer

    state = {"counting": False, "calls": 0}

    def find_spec(*args, _original=importlib.util.find_spec, **kwargs):
        state["calls"] += state["counting"]
        return _original(*args, **kwargs)

    class FromTheSecondStep(TrainerCallback):  # the first step may set things up
        def on_step_end(self, args, trainer_state, control, **kwargs):
            state["counting"] = trainer_state.global_step < trainer_state.max_steps

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    data = load_cifar(str(tiny_dataset), val_size=40, max_train_samples=64)
    args = RunArguments(model="cnn", device="cpu", batch_size=8)
    trainer, _, _ = build_trainer(args, {"max_steps": 6, "eval_strategy": "no", "disable_tqdm": True,
                                         "report_to": "none"}, data, tmp_path)
    trainer.add_callback(FromTheSecondStep())
    trainer.train()
    assert trainer.state.global_step == 6 and state["calls"] == 0


class StopAtEvaluation(TrainerCallback):
    """Stops the run at its first evaluation, as early stopping or a pruned tuning trial does."""

    def on_evaluate(self, args, state, control, **kwargs):
        control.should_training_stop = True


def logged_norms(trainer) -> list[tuple]:
    return [(entry["step"], entry.get("grad_norm")) for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.parametrize("logging, logged_steps", [
    ({"logging_strategy": "epoch", "num_train_epochs": 2}, [8, 16]),
    ({"logging_strategy": "epoch", "num_train_epochs": 2, "gradient_accumulation_steps": 3}, [3, 6]),  # 3 + 3 + 2
    ({"logging_strategy": "steps", "logging_steps": 3, "max_steps": 8, "logging_first_step": True}, [1, 3, 6]),
    ({"logging_strategy": "epoch", "num_train_epochs": 2, "eval_strategy": "steps", "eval_steps": 5}, [5]),  # stopped
])
def test_gradient_norm_is_computed_only_for_the_logs(logging, logged_steps, tiny_dataset, tmp_path, monkeypatch):
    """Without clipping the Trainer would compute the gradient norm every step only to log it: CifarTrainer computes
    it for the logged steps, and logs the same norms as a run whose clipping never bites (computed every step)."""
    import accelerate

    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.run import build_trainer

    calls = []

    def counted(self, *args, _original=accelerate.Accelerator.clip_grad_norm_, **kwargs):
        calls.append(args[1])
        return _original(self, *args, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "clip_grad_norm_", counted)
    data = load_cifar(str(tiny_dataset), val_size=40, max_train_samples=64)
    stop = (StopAtEvaluation(),) if "eval_steps" in logging else ()
    norms = {}
    for max_grad_norm in (0.0, 1e9):
        calls.clear()
        flags = {"eval_strategy": "no", **logging, "max_grad_norm": max_grad_norm, "disable_tqdm": True,
                 "report_to": "none"}
        trainer, _, _ = build_trainer(RunArguments(model="cnn", device="cpu", batch_size=8), flags, data,
                                      tmp_path / str(max_grad_norm), callbacks=stop)
        trainer.train()
        norms[max_grad_norm] = logged_norms(trainer)
        if max_grad_norm == 0.0:
            assert len(calls) < trainer.state.global_step  # not every step
        else:
            assert len(calls) == trainer.state.global_step
    assert [step for step, _ in norms[0.0]] == logged_steps
    assert all(norm is not None and norm > 0 for _, norm in norms[0.0])
    assert norms[0.0] == norms[1e9]


def test_gradient_norm_is_logged_after_a_resume_that_ignores_the_data_skip(tiny_dataset, tmp_path):
    """--ignore_data_skip runs the resumed epoch whole from the resumed step: the epochs end at other steps."""
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.run import build_trainer

    data = load_cifar(str(tiny_dataset), val_size=40, max_train_samples=64)
    flags = {"logging_strategy": "epoch", "num_train_epochs": 3, "eval_strategy": "no", "save_strategy": "steps",
             "save_steps": 4, "disable_tqdm": True, "report_to": "none"}
    norms = {}
    for max_grad_norm in (0.0, 1e9):
        out = tmp_path / str(max_grad_norm)
        run_flags = {**flags, "max_grad_norm": max_grad_norm}
        build_trainer(RunArguments(model="cnn", device="cpu", batch_size=8), run_flags, data, out)[0].train()
        resumed, _, _ = build_trainer(RunArguments(model="cnn", device="cpu", batch_size=8),
                                      {**run_flags, "ignore_data_skip": True}, data, out)
        resumed.train(resume_from_checkpoint=str(out / "checkpoint-12"))
        norms[max_grad_norm] = logged_norms(resumed)
    assert [step for step, _ in norms[0.0]][1:] == [20, 24]  # 12 + 8, then the run's end
    assert all(norm is not None for _, norm in norms[0.0]) and norms[0.0] == norms[1e9]


@pytest.mark.parametrize("model, decays_biases", [("resnet", True), ("vit", False)])
def test_seed_recipes_decay_every_parameter(model, decays_biases, tiny_dataset, tmp_path):
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.recipes import get_recipe
    from cifar_hf.training.run import build_trainer

    data = load_cifar(str(tiny_dataset), val_size=40, max_train_samples=64)
    trainer, _, _ = build_trainer(RunArguments(model=model, device="cpu"), {"report_to": "none"}, data, tmp_path)
    groups = trainer.create_optimizer().param_groups
    decay = {id(p): group["weight_decay"] for group in groups for p in group["params"]}
    biases = [p for name, p in trainer.model.named_parameters() if name.endswith("bias")]
    assert len(decay) == len(list(trainer.model.parameters()))
    assert {decay[id(p)] for p in biases} == {get_recipe(model).weight_decay if decays_biases else 0.0}


@pytest.mark.parametrize("model, recipe, expected", [("resnet", "default", False), ("resnet", "fast", True),
                                                     ("vit", "default", True), ("cnn", "default", True)])
def test_bf16_autocast_follows_the_recipe_on_a_bf16_gpu(model, recipe, expected, monkeypatch):
    from cifar_hf.training import devices
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.training.recipes import get_recipe

    monkeypatch.setattr(devices, "on_gpu", lambda args: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    args = RunArguments(model=model, recipe=recipe)
    assert devices.uses_bf16(args, get_recipe(model, recipe)) is expected
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert devices.uses_bf16(args, get_recipe(model, recipe)) is False
