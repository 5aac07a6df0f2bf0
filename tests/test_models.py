import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from cifar_hf.models import CifarViTConfig, build_scratch_model

NAMES = [str(i) for i in range(10)]


@pytest.mark.parametrize(
    "name, overrides, parameters",
    [
        ("cnn", {}, 51_898),  # exactly the seed's network
        ("resnet", {}, 11_173_962),  # CIFAR ResNet-18
        ("vit", {}, 3_965_770),  # default conv-stem ViT
        ("vit", {"stem": "patchify"}, 3_721_738),
    ],
)
def test_forward_shape_loss_and_parameter_count(name, overrides, parameters):
    model = build_scratch_model(name, NAMES, **overrides)
    assert sum(p.numel() for p in model.parameters()) == parameters
    output = model(pixel_values=torch.randn(3, 3, 32, 32), labels=torch.tensor([0, 4, 9]))
    assert output.logits.shape == (3, 10)
    assert output.loss.ndim == 0 and output.loss.item() > 0
    soft = torch.full((3, 10), 0.1)  # mixup / label-smoothing targets are accepted too
    assert model(pixel_values=torch.randn(3, 3, 32, 32), labels=soft).loss.item() > 0


def test_resnet_pools_globally_so_any_input_size_works():
    model = build_scratch_model("resnet", NAMES).eval()
    assert model(pixel_values=torch.randn(2, 3, 48, 40)).logits.shape == (2, 10)


def test_convnets_use_kaiming_not_the_transformers_default():
    model = build_scratch_model("resnet", NAMES)
    conv = model.stem[0].weight  # 3x3x3 -> 64, fan_out = 64 * 9
    expected_std = (2 / (64 * 9)) ** 0.5
    assert abs(conv.std().item() - expected_std) / expected_std < 0.15
    assert abs(model.blocks[-1].conv2[0].weight.std().item() - (2 / (512 * 9)) ** 0.5) < 0.003
    assert torch.all(model.blocks[0].conv1[1].weight == 1)


def test_vit_config_rejects_a_stem_that_cannot_reach_the_grid():
    with pytest.raises(ValueError, match="token grid"):
        build_scratch_model("vit", NAMES, stem_channels=[32], token_grid=4)
    with pytest.raises(ValueError, match="stem"):
        CifarViTConfig(stem="bogus")


def test_resnet_config_rejects_stages_that_do_not_pair_up():
    from cifar_hf.models import CifarResNetConfig

    with pytest.raises(ValueError, match="same number of stages"):
        CifarResNetConfig(hidden_sizes=[64, 128], depths=[2, 2, 2])


def test_vit_attention_is_scaled_by_inverse_sqrt_head_dim():
    model = build_scratch_model("vit", NAMES, num_hidden_layers=1, drop_path_rate=0.0).eval()
    attention = model.layers[0].attention
    x = torch.randn(2, 64, 256)
    batch, tokens, width = x.shape
    q, k, v = attention.qkv(x).view(batch, tokens, 3, 4, 64).permute(2, 0, 3, 1, 4).unbind(0)
    manual = torch.softmax(q @ k.transpose(-1, -2) / 64**0.5, dim=-1) @ v
    expected = attention.proj(manual.transpose(1, 2).reshape(batch, tokens, width))
    assert torch.allclose(attention(x), expected, atol=1e-5)


def test_vit_attn_implementation_selects_the_attention_path(tmp_path):
    torch.manual_seed(0)
    model = build_scratch_model("vit", NAMES, num_hidden_layers=1, drop_path_rate=0.0).eval()
    assert model.config._attn_implementation == "sdpa"  # the default, as for Transformers' ViT
    model.save_pretrained(tmp_path)
    eager = AutoModelForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager"
    calls = []
    handle = torch.nn.functional.scaled_dot_product_attention
    try:
        torch.nn.functional.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or handle(*a, **k)
        pixels = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(eager(pixel_values=pixels).logits, model(pixel_values=pixels).logits, atol=1e-5)
    finally:
        torch.nn.functional.scaled_dot_product_attention = handle
    assert len(calls) == 1, "only the sdpa model calls scaled_dot_product_attention"


@pytest.mark.parametrize("name", ["cnn", "resnet", "vit"])
def test_save_load_round_trip_gives_identical_logits(name, tmp_path):
    torch.manual_seed(0)
    model = build_scratch_model(name, NAMES).eval()
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", f"modeling_{name}.py", f"configuration_{name}.py"} <= {
        p.name for p in tmp_path.iterdir()
    }
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(pixel_values=x).logits, loaded(pixel_values=x).logits)
    assert AutoConfig.from_pretrained(tmp_path).id2label[3] == "3"


def test_saved_folder_loads_in_a_fresh_process_without_the_package(tmp_path):
    torch.manual_seed(0)
    model = build_scratch_model("resnet", NAMES).eval()
    model.save_pretrained(tmp_path / "model")
    x = torch.randn(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(pixel_values=x).logits, tmp_path / "logits.pt")
    script = f"""
import sys, torch
sys.modules["cifar_hf"] = None  # the saved code must stand alone
from transformers import AutoModelForImageClassification
model = AutoModelForImageClassification.from_pretrained({str(tmp_path / 'model')!r}, trust_remote_code=True).eval()
assert "cifar_hf" not in type(model).__module__, type(model).__module__
x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)
expected = torch.load({str(tmp_path / 'logits.pt')!r}, weights_only=True)
with torch.no_grad():
    assert torch.equal(model(pixel_values=x).logits, expected)
print("ok", type(model).__name__)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok CifarResNetForImageClassification" in result.stdout
