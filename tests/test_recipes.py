"""The named recipes reach the optimizer, the schedule and the augmentation, and a wrong name is one line."""

import itertools
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_hf.data import CifarData, ImageArrays
from cifar_hf.data.augment import cutout
from cifar_hf.errors import UsageError
from cifar_hf.hub import model_card
from cifar_hf.training.arguments import RunArguments
from cifar_hf.training.recipes import RECIPES, get_recipe
from cifar_hf.training.run import build_trainer

ROOT = Path(__file__).resolve().parents[1]


def random_data(num_images: int = 64) -> CifarData:
    rng = np.random.default_rng(0)
    arrays = ImageArrays(rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8), np.arange(num_images) % 4)
    return CifarData("synthetic", ["a", "b", "c", "d"], arrays, arrays.take(np.arange(16)), None)


def test_every_registered_model_has_a_default_recipe_and_no_recipe_names_another():
    from cifar_hf.models import SCRATCH_MODELS
    from cifar_hf.training import arguments

    # -m's choices, read from the recipes without loading torch: the scratch registry and the pretrained `previt`
    assert set(arguments.MODEL_NAMES) == {*SCRATCH_MODELS, "previt"}
    assert all((model, "default") in RECIPES for model in arguments.MODEL_NAMES)


def test_cutout_zeroes_one_clipped_square_per_image():
    torch.manual_seed(0)
    images = torch.ones(2000, 3, 32, 32)
    cut = cutout(images, 16)
    zeroed = (cut == 0).all(1)  # (B, H, W): where every channel was zeroed
    assert torch.equal(cut[:, 0] == 0, zeroed) and (cut[images != cut] == 0).all()
    rows, cols = zeroed.any(2), zeroed.any(1)
    assert (rows.sum(1) <= 16).all() and (cols.sum(1) <= 16).all()
    assert torch.equal(zeroed, rows[:, :, None] & cols[:, None, :])  # one axis-aligned rectangle
    # Centres are uniform over the image, so squares are clipped at the borders: about a quarter are whole.
    whole = (rows.sum(1) == 16) & (cols.sum(1) == 16)
    assert 0.15 < whole.float().mean() < 0.35
    assert zeroed.float().mean(0).max() < 1 and zeroed.float().mean(0).min() > 0  # every pixel can be hit or kept


@pytest.mark.parametrize("model", ["resnet", "vit"])
def test_best_recipe_reaches_optimizer_schedule_and_augmentation(model, tmp_path):
    recipe = get_recipe(model, "best")
    args = RunArguments(model=model, recipe="best", device="cpu", batch_size=8)
    steps = 40
    trainer, transform, hyperparameters = build_trainer(args, {"max_steps": steps, "eval_strategy": "no",
                                                               "report_to": "none"}, random_data(), tmp_path)
    assert hyperparameters["recipe_settings"]["cutout"] == recipe.cutout > 0
    assert trainer.tta, "the best recipes evaluate with flip TTA"
    assert transform.cutout == recipe.cutout and transform.crop_padding == 4 and transform.horizontal_flip

    trainer.create_optimizer_and_scheduler(num_training_steps=steps)
    optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
    assert isinstance(optimizer, {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[recipe.optimizer])
    for group in optimizer.param_groups:
        for key, value in recipe.optimizer_kwargs.items():
            assert group[key] == value
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    biases = [p for n, p in trainer.model.named_parameters() if n.endswith("bias")]
    assert biases and all(id(p) in no_decay for p in biases), "biases and norms are not decayed"
    assert max(g["weight_decay"] for g in optimizer.param_groups) == recipe.weight_decay

    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    warmup = math.ceil(recipe.warmup * steps)
    assert lrs[0] == 0 and lrs[warmup] == pytest.approx(recipe.learning_rate)
    assert all(a < b for a, b in itertools.pairwise(lrs[:warmup + 1])), "linear warm-up"
    middle = warmup + (steps - warmup) // 2
    assert lrs[middle] == pytest.approx(recipe.learning_rate / 2, rel=0.1), "cosine: half the peak midway"
    assert lrs[-1] < 0.01 * recipe.learning_rate

    pixels = torch.from_numpy(random_data().train.pixels[:64]).permute(0, 3, 1, 2).contiguous()
    torch.manual_seed(0)
    trained = transform(pixels, train=True)
    assert ((trained == 0).all(1).flatten(1).sum(1) > 0).float().mean() == 1, "cutout in training"
    plain = (pixels.float() / 255 - torch.tensor(transform.mean).view(1, 3, 1, 1)) / torch.tensor(
        transform.std).view(1, 3, 1, 1)
    assert torch.equal(transform(pixels, train=False), plain), "no augmentation at evaluation"


def test_unknown_recipe_is_one_line_naming_the_known_ones(tmp_path):
    result = subprocess.run([sys.executable, "run_classification.py", "-m", "resnet", "--recipe", "bset",
                             "-s", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    known = sorted(name for model, name in RECIPES if model == "resnet")
    assert "bset" in lines[0] and all(name in lines[0] for name in known)
    assert not any(tmp_path.iterdir())


def test_previt_fast_recipe_trains_transformers_models_with_soft_target_cross_entropy(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    checkpoint = tmp_path / "vit"
    ViTForImageClassification(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64, image_size=32, patch_size=8)).save_pretrained(checkpoint)
    recipe = get_recipe("previt", "fast")
    args = RunArguments(model="previt", recipe="fast", device="cpu", batch_size=8, model_name_or_path=str(checkpoint))
    trainer, transform, _ = build_trainer(args, {"max_steps": 2, "eval_strategy": "no", "report_to": "none"},
                                          random_data(), tmp_path / "run")
    assert trainer.label_smoothing == recipe.label_smoothing > 0 and transform.horizontal_flip
    assert trainer.args.learning_rate == recipe.learning_rate and trainer.args.warmup_steps == recipe.warmup

    batch = {"pixel_values": torch.from_numpy(random_data().train.pixels[:8]).permute(0, 3, 1, 2).contiguous(),
             "labels": torch.arange(8) % 4}
    inputs = trainer._model_inputs(batch, train=True)
    assert inputs["labels"].shape == (8, 4), "label smoothing gives soft targets"
    trainer.model.eval()  # no dropout: the two forward passes below must match
    loss = trainer.compute_loss(trainer.model, inputs)
    logits = trainer.model(pixel_values=inputs["pixel_values"]).logits
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, inputs["labels"]).item(), rel=1e-5)
    assert trainer.model.config.problem_type != "multi_label_classification", "soft targets are not multi-label"


def test_training_arguments_flags_replace_the_recipe_and_the_record_says_so(tmp_path):
    """--weight_decay, --lr_scheduler_type, --label_smoothing_factor apply, and results and card show what applied."""
    args = RunArguments(model="cnn", device="cpu", batch_size=8)
    flags = {"max_steps": 4, "eval_strategy": "no", "report_to": "none", "weight_decay": 0.5,
             "lr_scheduler_type": "linear", "label_smoothing_factor": 0.3, "warmup_steps": 0.25}
    trainer, _, hyperparameters = build_trainer(args, flags, random_data(), tmp_path)
    applied = hyperparameters["recipe_settings"]
    assert (applied["weight_decay"], applied["scheduler"], applied["label_smoothing"]) == (0.5, "linear", 0.3)
    assert applied["warmup"] == 0.25
    assert (applied["batch_size"], applied["tta"]) == (8, False)  # -b as given, not the recipe's 128
    results = {"model": "cnn", "val_accuracy": 0.5, "val_loss": 1.0, "seed": 1, "epochs": 1,
               "train_runtime_s": 1.0, "train_samples_per_second": 8.0, "total_parameters": 10,
               "trainable_parameters": 10, "command": "run_classification.py", "hyperparameters": hyperparameters}
    card = model_card(results)
    assert ("Changed from the recipe: batch_size 8, weight_decay 0.5, scheduler linear, warmup 0.25, "
            "label_smoothing 0.3." in card)
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    assert max(group["weight_decay"] for group in trainer.optimizer.param_groups) == 0.5
    lrs = []
    for _ in range(4):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs[0] == 0 and lrs[1] > lrs[2] > lrs[3] > 0, "one warm-up step, then linear decay"
    # Smoothing is applied once, as soft targets: the Trainer's own smoother stays off (it would smooth eval losses).
    assert trainer.label_smoothing == 0.3 and trainer.args.label_smoothing_factor == 0
    inputs = trainer._model_inputs({"pixel_values": torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
                                    "labels": torch.tensor([0, 1])}, train=True)
    assert torch.allclose(inputs["labels"][0], torch.tensor([0.775, 0.075, 0.075, 0.075]))


def test_a_schedule_that_replaces_the_recipes_drops_the_recipes_own_settings(tmp_path, capsys):
    """resnet's recipe schedule is reduce-on-plateau, whose patience and factor another schedule would refuse: the
    run trains with the new schedule's own settings, the record says {} (and parses typed settings as JSON)."""
    args = RunArguments(model="resnet", device="cpu", batch_size=8)
    flags = {"max_steps": 2, "eval_strategy": "no", "report_to": "none", "lr_scheduler_type": "cosine"}
    trainer, _, hyperparameters = build_trainer(args, flags, random_data(), tmp_path / "cosine")
    assert trainer.args.lr_scheduler_kwargs == {} and hyperparameters["recipe_settings"]["scheduler_kwargs"] == {}
    trainer.create_optimizer_and_scheduler(num_training_steps=2)  # the Trainer's own build of the schedule
    plateau = {"max_steps": 2, "report_to": "none"}
    plateau_trainer, _, _ = build_trainer(args, plateau, random_data(), tmp_path / "plateau")
    assert plateau_trainer.args.lr_scheduler_kwargs["patience"] == 3

    flags = {**flags, "lr_scheduler_type": "cosine_with_restarts", "lr_scheduler_kwargs": '{"num_cycles": 2}'}
    _, _, hyperparameters = build_trainer(args, flags, random_data(), tmp_path / "restarts")
    assert hyperparameters["recipe_settings"]["scheduler_kwargs"] == {"num_cycles": 2}
    for typed in ("{bad", "[2]"):
        with pytest.raises(UsageError, match=f"--lr_scheduler_kwargs {re.escape(typed)}: not a JSON object"):
            build_trainer(args, {**flags, "lr_scheduler_kwargs": typed}, random_data(), tmp_path / "bad")


def test_tta_false_turns_off_the_recipes_flip_tta_and_the_record_says_so(tmp_path):
    flags = {"max_steps": 1, "eval_strategy": "no", "report_to": "none"}
    for tta, expected in ((None, True), (False, False)):
        args = RunArguments(model="resnet", recipe="best", device="cpu", batch_size=8, tta=tta)
        trainer, _, hyperparameters = build_trainer(args, flags, random_data(), tmp_path / str(tta))
        assert trainer.tta is expected and hyperparameters["recipe_settings"]["tta"] is expected
    assert hyperparameters["recipe_changes"]["tta"] is False
    args = RunArguments(model="cnn", device="cpu", batch_size=8, tta=True)  # on for a recipe without it
    assert build_trainer(args, flags, random_data(), tmp_path / "cnn")[0].tta


def test_a_warmup_step_count_is_recorded_as_a_count():
    from cifar_hf.training.recipes import with_training_flags

    assert repr(with_training_flags(get_recipe("cnn"), {"warmup_steps": 3.0}).warmup) == "3"  # not 3.0 (300%?)
    assert with_training_flags(get_recipe("cnn"), {"warmup_steps": 0.25}).warmup == 0.25
