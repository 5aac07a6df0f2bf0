"""The launch files in the repository: accelerate configs that accelerate itself accepts, FSDP wrapping classes that
exist, and Slurm scripts that parse. (Their CPU forms run in test_distributed.py, test_deepspeed.py and
test_cross_validation.py.)"""

import subprocess
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "accelerate_configs").glob("*.yaml"))


def test_every_kind_of_launch_has_a_config_file():
    assert {c.name for c in CONFIGS} == {"multi_gpu.yaml", "multi_node.yaml", "fsdp.yaml", "deepspeed_zero2.yaml",
                                        "deepspeed_zero3.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_reads_the_config_file(path):
    config = load_config_from_file(str(path))  # raises on a key accelerate does not know
    assert config.distributed_type in (DistributedType.MULTI_GPU, DistributedType.FSDP, DistributedType.DEEPSPEED)
    assert config.mixed_precision == "no"  # the project sets bf16 itself (recipes), -d cpu stays fp32


def test_fsdp_wraps_each_encoder_block_of_transformers_vit():
    from transformers.models.vit.modeling_vit import ViTLayer

    fsdp = yaml.safe_load((ROOT / "accelerate_configs" / "fsdp.yaml").read_text())["fsdp_config"]
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == ViTLayer.__name__
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # the run folder gets one ordinary safetensors model


def test_deepspeed_stages():
    stages = {p.name: yaml.safe_load(p.read_text())["deepspeed_config"]["zero_stage"] for p in CONFIGS
              if p.name.startswith("deepspeed")}
    assert stages == {"deepspeed_zero2.yaml": 2, "deepspeed_zero3.yaml": 3}


@pytest.mark.parametrize("script", sorted((ROOT / "examples" / "slurm").glob("*.sbatch")), ids=lambda p: p.name)
def test_slurm_script_parses_and_resumes(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "#SBATCH --requeue" in text and "#SBATCH --signal=TERM@" in text
