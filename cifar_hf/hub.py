"""Sharing a run: the model card written into every run folder, and the Hub upload of the final model.

The token is never handled here: `HfApi` reads it from HF_TOKEN or the stored login (`hf auth login`), so it
cannot leak into output, files, results or the wandb config.
"""

import json
import shutil
import tempfile
from pathlib import Path

import yaml
from huggingface_hub import HfApi

# What a pushed repo holds: the final model, its code, its preprocessing, the measurements and the card.
HUB_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "results.json", "README.md")
HUB_GLOBS = ("configuration_*.py", "modeling_*.py")
DATASET_NAMES = {"uoft-cs/cifar10": "CIFAR-10", "uoft-cs/cifar100": "CIFAR-100"}
DATASET_TAGS = {"uoft-cs/cifar10": "cifar10", "uoft-cs/cifar100": "cifar100"}  # only datasets known to be those


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _stats(hp: dict, key: str) -> str:
    values = hp.get("data", {}).get("normalisation", {}).get(key)
    return "n/a" if values is None else "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def model_card(results: dict, repo_id: str | None = None) -> str:
    """README.md with Hub metadata (model-index) and what a user needs to trust and load the model."""
    hp = results["hyperparameters"]
    dataset = results.get("dataset", hp.get("dataset"))
    dataset_name = DATASET_NAMES.get(dataset, dataset)
    custom_code = results["model"] != "previt"
    metrics = [("validation", results["val_accuracy"])]
    if results.get("test_accuracy") is not None:
        metrics.append(("test", results["test_accuracy"]))
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "image-classification",
        "license": "apache-2.0",
        "tags": ["image-classification", *([DATASET_TAGS[dataset]] if dataset in DATASET_TAGS else []), "cifar-hf",
                 results["model"]],
        "datasets": [dataset] if "/" in str(dataset) and not str(dataset).startswith((".", "/")) else [],
        "metrics": ["accuracy"],
        "model-index": [{
            "name": repo_id or f"cifar-{results['model']}",
            "results": [{
                "task": {"type": "image-classification", "name": "Image Classification"},
                "dataset": {"name": dataset_name, "type": str(dataset), "split": split},
                "metrics": [{"type": "accuracy", "value": round(float(value), 4), "name": f"{split} accuracy"}],
            } for split, value in metrics],
        }],
    }
    per_class = results.get("test_per_class_accuracy") or results.get("val_per_class_accuracy") or {}
    per_class_split = "test" if results.get("test_per_class_accuracy") else "validation"
    recipe = hp.get("recipe_settings", {})
    load_id = repo_id or "<run folder or repo id>"
    trust = ", trust_remote_code=True" if custom_code else ""
    lines = [
        "---", yaml.safe_dump(metadata, sort_keys=False).strip(), "---", "",
        f"# cifar-hf `{results['model']}` on {dataset_name}", "",
        f"Trained with cifar-hf (`run_classification.py -m {results['model']}`), "
        f"recipe `{results.get('recipe', 'default')}`: {recipe.get('description', '')}", "",
        "## Results", "",
        "| split | accuracy | loss |", "|---|---|---|",
        f"| validation | {_percent(results['val_accuracy'])} | {results['val_loss']:.4f} |",
    ]
    if results.get("val_top5_accuracy") is not None:
        lines.append(f"| validation top-5 | {_percent(results['val_top5_accuracy'])} | |")
    if results.get("test_accuracy") is not None:
        lines.append(f"| test | {_percent(results['test_accuracy'])} | {results['test_loss']:.4f} |")
        if results.get("test_top5_accuracy") is not None:
            lines.append(f"| test top-5 | {_percent(results['test_top5_accuracy'])} | |")
    else:
        lines.append("| test | n/a (the dataset has no test split) | |")
    lines += ["", f"Per-class accuracy ({per_class_split}):", "", "| class | accuracy |", "|---|---|"]
    lines += [f"| {name} | {_percent(value)} |" for name, value in per_class.items()]
    size = results.get("image_size") or hp.get("data", {}).get("image_size")
    lines += [
        "", "## Training", "",
        f"- classes: {results.get('num_classes', len(per_class))} "
        f"(label column `{results.get('label_column', 'label')}`), images stored at {size}x{size}, "
        f"normalised with mean {_stats(hp, 'mean')} / std {_stats(hp, 'std')} "
        f"({hp.get('data', {}).get('normalisation', {}).get('source', 'n/a')})",
        f"- data: `{dataset}`, {hp.get('train_size')} training / {hp.get('validation_size')} validation images "
        f"(seeded, stratified hold-out of the training split, seed {results['seed']}); "
        f"{hp.get('test_size') or 'no'} test images",
        f"- epochs: {results['epochs']}, batch size {results.get('per_device_batch_size')} per device "
        f"x {results.get('world_size', 1)} device(s) = {results.get('global_batch_size')}",
        f"- optimizer: {recipe.get('optimizer')}, learning rate {hp.get('learning_rate')}, weight decay "
        f"{recipe.get('weight_decay')}, scheduler {recipe.get('scheduler')}",
        f"- augmentation: crop padding {recipe.get('crop_padding')}, horizontal flip {recipe.get('horizontal_flip')}, "
        f"label smoothing {recipe.get('label_smoothing')}, mixup {recipe.get('mixup_alpha')} / cutmix {recipe.get('cutmix_alpha')}",
        f"- hardware: {results.get('hardware')}; training wall time {results['train_runtime_s']:.1f} s "
        f"({results['train_samples_per_second']:.0f} images/s)",
        f"- software: {', '.join(f'{k} {v}' for k, v in results.get('versions', {}).items())}",
        "", "## Use", "",
        "```python",
        "from transformers import AutoModelForImageClassification, pipeline",
        "",
        f'REVISION = "main"  # pin the commit you reviewed{": trust_remote_code runs this repo" + chr(39) + "s modeling code" if custom_code else ""}',
        f'model = AutoModelForImageClassification.from_pretrained("{load_id}", revision=REVISION{trust})',
        f'classifier = pipeline("image-classification", model="{load_id}", revision=REVISION{trust})',
        'classifier("my_image.png")  # any size or mode: resized and normalised as in training',
        "```", "",
        "`results.json` in this repository holds every hyperparameter and measurement of the run.", "",
    ]
    return "\n".join(lines)


def write_model_card(run_folder: Path, results: dict, repo_id: str | None = None) -> Path:
    path = Path(run_folder) / "README.md"
    path.write_text(model_card(results, repo_id))
    return path


def stage_for_hub(run_folder: Path, staging: Path) -> list[str]:
    """Copy exactly the files a pushed repo holds into `staging`; returns their names."""
    run_folder = Path(run_folder)
    names = [n for n in HUB_FILES if (run_folder / n).exists()]
    names += sorted(p.name for pattern in HUB_GLOBS for p in run_folder.glob(pattern))
    for name in names:
        shutil.copy2(run_folder / name, staging / name)
    return names


def push_run_folder(run_folder: Path, repo_id: str, private: bool | None = None) -> str:
    """Upload the final model with its card; returns the commit URL. Credentials come from the environment."""
    api = HfApi()
    results = json.loads((Path(run_folder) / "results.json").read_text())
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id  # adds the user
    write_model_card(run_folder, results, repo_id)
    with tempfile.TemporaryDirectory() as staging:
        stage_for_hub(run_folder, Path(staging))
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=staging, repo_type="model",
            commit_message=f"cifar-hf: {results['model']} ({_percent(results['val_accuracy'])} validation accuracy)",
        )
    return str(getattr(commit, "commit_url", commit))
