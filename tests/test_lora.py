"""`--lora-r`: LoRA fine-tuning of previt (peft), on a tiny Transformers ViT and the local timm ViT-Tiny."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file
from synthetic import TIMM_VIT_TINY, needs_timm_vit_tiny, pretend_online
from transformers import AutoModelForImageClassification

from cifar_hf import hub
from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main
from cifar_hf.models.pretrained import load_pretrained_classifier

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["red", "green", "blue", "dark"]

# A fresh interpreter in which `import peft` fails, as on a machine without the extra: the merged run folder must load.
WITHOUT_PEFT = """
import sys, json, torch
sys.modules["peft"] = None
from transformers import AutoModelForImageClassification, pipeline
model = AutoModelForImageClassification.from_pretrained(sys.argv[1]).eval()
torch.manual_seed(0)
pixels = torch.randn(3, 3, model.config.image_size, model.config.image_size) if hasattr(model.config, "image_size") \
    else torch.randn(3, 3, 224, 224)
with torch.no_grad():
    logits = model(pixel_values=pixels).logits
from PIL import Image
top = pipeline("image-classification", model=sys.argv[1], device="cpu")(Image.new("RGB", (32, 32), (200, 30, 30)))[0]
print(json.dumps({"logits": logits.tolist(), "label": top["label"], "peft_loaded": "peft" in sys.modules
                  and sys.modules["peft"] is not None}))
"""


def lora_run(dataset, checkpoint, save, *extra, train=32, batch=16, eval_size=40):
    argv = ["-m", "previt", "--model-name-or-path", str(checkpoint), "-d", "cpu", "--dataset", str(dataset),
            "--val-size", "40", "--max-train-samples", str(train), "--max-eval-samples", str(eval_size), "-e", "1",
            "-b", str(batch), "-l", "1e-2", "-s", str(save), "--disable_tqdm", "true", *extra]
    assert main(argv) == 0
    return Path(save) / "cifar-previt"


def assert_only_adapted_layers_and_head_changed(run: Path, checkpoint: Path, adapted: tuple, head: str) -> None:
    """Merged vs base checkpoint: the LoRA targets and the head changed, every other tensor is bitwise equal."""
    base = AutoModelForImageClassification.from_pretrained(checkpoint).state_dict()
    merged = AutoModelForImageClassification.from_pretrained(run).state_dict()
    assert merged.keys() == base.keys()
    changed = {k for k in merged if k.startswith(head) or not torch.equal(merged[k], base[k])}
    assert changed, "nothing trained"
    merged_in = {k for k in changed if any(k.endswith(f".{name}.weight") for name in adapted)}
    assert all(k.startswith(head) for k in changed - merged_in), sorted(changed - merged_in)[:5]
    assert {k.rsplit(".", 2)[-2] for k in merged_in} == set(adapted)  # every adapted layer kind was merged in


def assert_merged_equals_adapter_on_base(run: Path, checkpoint: Path) -> torch.Tensor:
    from peft import PeftModel

    adapter = run / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(checkpoint)
    on_base = PeftModel.from_pretrained(load_pretrained_classifier(str(checkpoint), CLASSES), adapter).eval()
    merged = AutoModelForImageClassification.from_pretrained(run).eval()
    side = merged.config.image_size if hasattr(merged.config, "image_size") else 224
    torch.manual_seed(0)
    pixels = torch.randn(3, 3, side, side)
    with torch.no_grad():
        expected = on_base(pixel_values=pixels).logits
        assert torch.allclose(merged(pixel_values=pixels).logits, expected, atol=1e-5)
    return expected


def assert_total_is_the_model_as_trained(run: Path) -> None:
    """total_parameters = the merged model (base with the new head) plus the LoRA matrices, the head counted once."""
    results = json.loads((run / "results.json").read_text())
    merged = sum(p.numel() for p in AutoModelForImageClassification.from_pretrained(run).parameters())
    lora = sum(t.numel() for k, t in load_file(run / "adapter" / "adapter_model.safetensors").items() if "lora_" in k)
    assert results["total_parameters"] == merged + lora
    assert f"of {merged + lora:,}" in (run / "README.md").read_text()


def card_code(card: str) -> str:
    return card.split("```python\n", 1)[1].split("```", 1)[0]


def assert_card_recipe_gives_the_run_folders_logits(run: Path) -> None:
    """The code in adapter/README.md (our card, not peft's template), run as written, is the run folder's model."""
    card = (run / "adapter" / "README.md").read_text()
    assert "More Information Needed" not in card and "- cifar-hf" in card
    namespace = {}
    exec(card_code(card).replace(hub.LOCAL_ADAPTER, str(run / "adapter")), namespace)
    merged = AutoModelForImageClassification.from_pretrained(run, dtype=torch.float32).eval()
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = merged(pixel_values=pixels).logits
        assert torch.allclose(namespace["model"].eval()(pixel_values=pixels).logits, expected, atol=1e-5)


class FakeHfApi:
    """Stands in for the network: keeps a copy of what would be uploaded."""

    uploaded: dict = {}

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        FakeHfApi.uploaded = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        return SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/abc")


def test_lora_on_a_transformers_vit_trains_adapters_and_head_and_saves_merged(tiny_dataset, tiny_imagenet_vit,
                                                                              tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hub, "HfApi", FakeHfApi)
    pretend_online(monkeypatch)
    run = lora_run(tiny_dataset, tiny_imagenet_vit, tmp_path, "--lora-r", "4", "--push-adapter", "me/cifar-lora")
    assert FakeHfApi.uploaded.keys() == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    card = FakeHfApi.uploaded["README.md"].decode()
    assert 'PeftModel.from_pretrained(base, "me/cifar-lora")' in card
    # A local base is named by its folder on the Hub, where its path means nothing, and is not Hub metadata.
    assert "base_model:" not in card and str(tiny_imagenet_vit) not in card
    assert f'from_pretrained("{Path(tiny_imagenet_vit).name}"' in card and "was a local checkpoint" in card
    assert_only_adapted_layers_and_head_changed(run, tiny_imagenet_vit, ("q_proj", "v_proj"), "classifier")
    assert not any("k_proj.weight" in k for k in load_file(run / "adapter" / "adapter_model.safetensors"))
    expected = assert_merged_equals_adapter_on_base(run, tiny_imagenet_vit)

    results = json.loads((run / "results.json").read_text())
    adapter_size = sum(t.numel() for t in load_file(run / "adapter" / "adapter_model.safetensors").values())
    assert results["trainable_parameters"] == adapter_size < results["total_parameters"] / 5
    assert results["lora"]["r"] == 4 and "LoRA rank 4" in (run / "README.md").read_text()
    assert_total_is_the_model_as_trained(run)

    script = tmp_path / "without_peft.py"
    script.write_text(WITHOUT_PEFT)
    loaded = subprocess.run([sys.executable, str(script), str(run)], capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    fresh = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert not fresh["peft_loaded"] and fresh["label"] in CLASSES
    assert torch.allclose(torch.tensor(fresh["logits"]), expected, atol=1e-5)

    from PIL import Image

    from cifar_hf.commands.predict import main as predict
    Image.new("RGB", (32, 32), (10, 200, 10)).save(tmp_path / "green.png")
    capsys.readouterr()
    assert predict([str(tmp_path / "green.png"), "--model", str(run)]) == 0
    assert "green.png:" in capsys.readouterr().out

    for command in (["predict", str(tmp_path / "green.png")], ["evaluate"], ["export"], ["demo"]):
        assert cli([*command, "--model", str(run / "adapter")]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"error: --model {run / 'adapter'}: a LoRA adapter folder, not a model: pass its run folder "
                       f"{run.resolve()} (it holds the merged model)"), command
    alone = tmp_path / "shared-adapter"  # copied out of its run folder: the base it adapts is what loads it
    shutil.copytree(run / "adapter", alone)
    assert cli(["predict", str(tmp_path / "green.png"), "--model", str(alone)]) == 1
    base = json.loads((alone / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert capsys.readouterr().err.strip() == (
        f"error: --model {alone}: a LoRA adapter folder, not a model: pass the run folder it came from (it holds "
        f"the merged model), or load it on its base {base} with peft")


@needs_timm_vit_tiny
def test_lora_on_timm_vit_tiny_with_gradient_checkpointing(tiny_dataset, tmp_path):
    run = lora_run(tiny_dataset, TIMM_VIT_TINY, tmp_path, "--lora-r", "2", "--gradient_checkpointing", "true",
                   train=8, batch=8, eval_size=8)
    assert_only_adapted_layers_and_head_changed(run, TIMM_VIT_TINY, ("qkv",), "timm_model.head")
    assert_merged_equals_adapter_on_base(run, TIMM_VIT_TINY)
    assert_total_is_the_model_as_trained(run)
    assert_card_recipe_gives_the_run_folders_logits(run)  # timm stores this base in float16
    hyperparameters = json.loads((run / "results.json").read_text())["hyperparameters"]
    assert hyperparameters["training_arguments"]["gradient_checkpointing"] is True


def test_missing_peft_is_one_line_with_the_pip_command(tiny_dataset, tiny_imagenet_vit, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    argv = ["-m", "previt", "--model-name-or-path", str(tiny_imagenet_vit), "-d", "cpu", "--dataset",
            str(tiny_dataset), "--lora-r", "8", "-s", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[lora]"' in err
    assert list(tmp_path.iterdir()) == []


def test_lora_flags_are_checked(tiny_dataset, tiny_imagenet_vit, tmp_path, capsys):
    assert main(["-m", "cnn", "--lora-r", "8", "--dataset", str(tiny_dataset), "-s", str(tmp_path)]) == 2
    assert "-m previt" in capsys.readouterr().err
    argv = ["-m", "previt", "--model-name-or-path", str(tiny_imagenet_vit), "-d", "cpu", "--dataset",
            str(tiny_dataset), "--val-size", "40", "--lora-r", "4", "--lora-target-modules", "nonexistent",
            "-s", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "nonexistent" in err and "q_proj" in err and len(err.splitlines()) == 1
