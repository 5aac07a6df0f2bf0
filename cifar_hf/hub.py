"""Sharing a run: the model card written into every run folder, and the Hub upload of the final model.

The token is never handled here: `HfApi` reads it from HF_TOKEN or the stored login (`hf auth login`), so it
cannot leak into output, files, results or the wandb config.
"""

import logging
import shlex
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, metadata_update

from .errors import InputError, PushError, first_line
from .files import read_json, write_text
from .offline import is_hub_id
from .training.arguments import PATH_ARGUMENTS

logger = logging.getLogger(__name__)

# What a pushed repo holds: the final model, its code, its preprocessing, the measurements and the card.
HUB_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "results.json", "README.md")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
HUB_GLOBS = ("configuration_*.py", "modeling_*.py")
HUB_PATTERNS = [*HUB_FILES, *HUB_GLOBS, "evaluation-*.json"]
DATASET_NAMES = {"uoft-cs/cifar10": "CIFAR-10", "uoft-cs/cifar100": "CIFAR-100"}
DATASET_TAGS = {"uoft-cs/cifar10": "cifar10", "uoft-cs/cifar100": "cifar100"}  # only datasets known to be those
REMOTE_CODE_NOTE = ": trust_remote_code runs this repo's modeling code"
CORRUPTED_CONFIG = "cifar-hf-corruptions"  # CIFAR-10-C style corruptions made by cifar_hf.robustness
TASK = {"task_type": "image-classification", "task_name": "Image Classification"}


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _stats(hp: dict, key: str) -> str:
    values = hp.get("data", {}).get("normalisation", {}).get(key)
    return "n/a" if values is None else "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def portable_name(name_or_path) -> str:
    """A Hub id as it is; a local folder by its own name (its path means nothing on the Hub or another machine)."""
    return str(name_or_path) if is_hub_id(name_or_path) else Path(str(name_or_path)).expanduser().resolve().name


PATH_FLAGS = tuple("--" + name.replace("_", "-") for name in PATH_ARGUMENTS)  # as written on a command line


def portable_command(command: str) -> str:
    """The run's command with local paths (dataset, base checkpoint) named by their folder, as on the card."""
    parts = shlex.split(command)
    for index, part in enumerate(parts[1:], 1):
        if parts[index - 1] in PATH_FLAGS:
            parts[index] = portable_name(part)
    return shlex.join(parts)


def _launched(results: dict) -> str:
    """How a multi-process run was launched: its command alone would train on one process."""
    processes = results.get("world_size", 1)
    if processes == 1:
        return ""
    return (f", run by each of {processes} processes ({results.get('distributed_type')}; the launchers are in "
            "cifar-hf's docs/distributed.md)")


def portable_flags(flags: dict) -> dict:
    """Defining flags (run_record) with local folders named by their folder, as another machine can compare them."""
    return {flag: portable_name(value) if flag in PATH_FLAGS and value is not None else value
            for flag, value in flags.items()}


def _result(dataset, split: str, metric_type: str, value: float, metric_name: str, config: str | None = None):
    name = DATASET_NAMES.get(dataset, portable_name(dataset))
    # model-index groups results by dataset type, config and split: the corrupted images get a config of their own
    return EvalResult(**TASK, dataset_type=portable_name(dataset),
                      dataset_name=f"{name} ({config})" if config else name,
                      dataset_config=config, dataset_split=split, metric_type=metric_type,
                      metric_value=round(float(value), 4), metric_name=metric_name)


def run_image_size(results: dict) -> int | None:
    return results.get("image_size") or results.get("hyperparameters", {}).get("data", {}).get("image_size")


def scored_differently(evaluation: dict, results: dict) -> dict:
    """Where `evaluation` scored otherwise than the training run (`results`, {} when unknown): {"tta": True/False}
    when flip TTA differs from the run's own (the best recipes score with it), {"image_size": N} when its
    images were stored at another size."""
    hp = results.get("hyperparameters", {})
    run_tta = bool(hp.get("recipe_settings", {}).get("tta", hp.get("tta")))  # as it applied: flag or recipe
    differs = {"tta": bool(evaluation.get("tta"))} if bool(evaluation.get("tta")) != run_tta else {}
    size, run_size = evaluation.get("image_size"), run_image_size(results)
    if size and run_size and size != run_size:
        differs["image_size"] = size
    return differs


def scoring(evaluation: dict, results: dict) -> str:
    """` (flip TTA, 48 px)`: the way an evaluation differs from the run's own, for card rows and metric names."""
    differs = scored_differently(evaluation, results)
    notes = [("flip TTA" if differs["tta"] else "without TTA")] if "tta" in differs else []
    notes += [f"{differs['image_size']} px"] if "image_size" in differs else []
    return f" ({', '.join(notes)})" if notes else ""


def evaluation_results(evaluation: dict, results: dict) -> list[EvalResult]:
    """Model-index entries for one `cifar-hf evaluate` report: what it measured beyond the training run's own
    (`results`: the run's results.json, {} when unknown)."""
    dataset, split = evaluation["dataset"], evaluation["split"]
    trained_dataset = results.get("dataset") or results.get("hyperparameters", {}).get("dataset")
    way = scoring(evaluation, results)
    entries = []
    if dataset != trained_dataset or way:  # another test set, or another way of scoring: new information
        entries.append(_result(dataset, split, "accuracy", evaluation["accuracy"], f"{split} accuracy{way}"))
    for metric, value in (evaluation.get("calibration") or {}).items():
        entries.append(_result(dataset, split, metric, value, f"{split} {metric}{way}"))
    if "mean_corruption_accuracy" in evaluation:
        severities = ",".join(str(s) for s in evaluation["severities"])
        entries.append(_result(dataset, split, "accuracy", evaluation["mean_corruption_accuracy"],
                               f"mean corruption accuracy{way} ({len(evaluation['corruptions'])} corruptions, "
                               f"severities {severities})", config=CORRUPTED_CONFIG))
    return entries


def run_evaluations(run_folder: Path) -> list[dict]:
    """The reports `cifar-hf evaluate` wrote into a run folder, in a stable order; a damaged one is left out of the
    card with a warning (it stays on disk), so that it never stops a later evaluation or push."""
    reports = []
    for path in sorted(Path(run_folder).glob("evaluation-*.json")):
        try:
            reports.append(read_json(path))
        except InputError as error:
            logger.warning("%s; left out of the model card", error)
    return reports


def card_data(results: dict, repo_id: str | None = None, evaluations: list[dict] = ()) -> ModelCardData:
    """Hub metadata: the training run's validation and test accuracy plus every later evaluation, as model-index."""
    hp = results["hyperparameters"]
    dataset = results.get("dataset", hp.get("dataset"))
    metrics = [("validation", results["val_accuracy"])]
    if results.get("test_accuracy") is not None:
        metrics.append(("test", results["test_accuracy"]))
    eval_results = [_result(dataset, split, "accuracy", value, f"{split} accuracy") for split, value in metrics]
    for evaluation in evaluations:
        eval_results += evaluation_results(evaluation, results)
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        license="apache-2.0",
        tags=["image-classification", *([DATASET_TAGS[dataset]] if dataset in DATASET_TAGS else []), "cifar-hf",
              results["model"]],
        datasets=[dataset] if is_hub_id(dataset) else [],
        metrics=["accuracy"],
        model_name=repo_id or f"cifar-{results['model']}",
        eval_results=eval_results,
    )


def _evaluation_lines(evaluations: list[dict], results: dict) -> list[str]:
    if not evaluations:
        return []
    lines = ["", "## Evaluations", "", "`cifar-hf evaluate` reports in this repository (`evaluation-*.json`):", "",
             "| dataset | split | images | accuracy | ECE | NLL | mean corruption accuracy |",
             "|---|---|---|---|---|---|---|"]
    for e in evaluations:
        calibration = e.get("calibration") or {}
        ece, nll = calibration.get("ece"), calibration.get("nll")
        name = DATASET_NAMES.get(e["dataset"], portable_name(e["dataset"]))  # no local path on the Hub
        lines.append(f"| {name} | {e['split']}{scoring(e, results)} "
                     f"| {e['num_images']} | {_percent(e['accuracy'])} | {'n/a' if ece is None else f'{ece:.4f}'} "
                     f"| {'n/a' if nll is None else f'{nll:.4f}'} | {_percent(e.get('mean_corruption_accuracy'))} |")
    return lines


def _recipe_changes(hp: dict) -> str:
    """The recipe settings that flags or a tuning trial changed, which its description does not know of."""
    changes = hp.get("recipe_changes") or {}
    return f" Changed from the recipe: {', '.join(f'{k} {v}' for k, v in changes.items())}." if changes else ""


def model_card(results: dict, repo_id: str | None = None, evaluations: list[dict] = ()) -> str:
    """README.md with Hub metadata (model-index) and what a user needs to trust and load the model."""
    hp = results["hyperparameters"]
    dataset = results.get("dataset", hp.get("dataset"))
    on_hub, dataset_id = is_hub_id(dataset), portable_name(dataset)
    dataset_name = DATASET_NAMES.get(dataset, dataset_id)
    custom_code = results["model"] != "previt"
    per_class = results.get("test_per_class_accuracy") or results.get("val_per_class_accuracy") or {}
    per_class_split = "test" if results.get("test_per_class_accuracy") else "validation"
    recipe = hp.get("recipe_settings", {})
    load_id = repo_id or "<run folder or repo id>"
    trust = ", trust_remote_code=True" if custom_code else ""
    lines = [
        f"# cifar-hf `{results['model']}` on {dataset_name}", "",
        f"Trained with cifar-hf (`run_classification.py -m {results['model']}`), "
        f"recipe `{results.get('recipe', 'default')}`: {recipe.get('description', '')}{_recipe_changes(hp)}", "",
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
    size = run_image_size(results)
    lines += _evaluation_lines(evaluations, results)
    lines += [
        "", "## Training", "",
        f"- classes: {results.get('num_classes', len(per_class))} "
        f"(label column `{results.get('label_column', 'label')}`), images stored at {size}x{size}, "
        f"normalised with mean {_stats(hp, 'mean')} / std {_stats(hp, 'std')} "
        f"({hp.get('data', {}).get('normalisation', {}).get('source', 'n/a')})",
        f"- data: `{dataset_id}`{'' if on_hub else ' (a local folder)'}, {hp.get('train_size')} training / "
        f"{hp.get('validation_size')} validation images "
        f"({_validation_split(hp, results)}); "
        f"{hp.get('test_size') or 'no'} test images",
        *([f"- base checkpoint: `{portable_name(hp['model_name_or_path'])}`"] if hp.get("model_name_or_path") else []),
        f"- epochs: {results['epochs']:g}{_stop_and_kept(results, hp)}, "
        f"batch size {results.get('per_device_batch_size')} per device "
        f"x {results.get('world_size', 1)} device(s){_accumulated(hp)} = {results.get('global_batch_size')}",
        f"- optimizer: {recipe.get('optimizer')}, learning rate {hp.get('learning_rate')}, weight decay "
        f"{recipe.get('weight_decay')}, scheduler {recipe.get('scheduler')}",
        f"- augmentation: crop padding {recipe.get('crop_padding')}, horizontal flip {recipe.get('horizontal_flip')}, "
        f"label smoothing {recipe.get('label_smoothing')}, mixup {recipe.get('mixup_alpha')} / "
        f"cutmix {recipe.get('cutmix_alpha')}",
        *parameter_lines(results),
        f"- hardware: {results.get('hardware')}; training time {results['train_runtime_s']:.1f} s, "
        f"{results['train_samples_per_second']:.0f} images/s (the Trainer's time, per-epoch evaluations included)",
        f"- software: {', '.join(f'{k} {v}' for k, v in results.get('versions', {}).items())}",
        *([f"- command{_launched(results)}: `{portable_command(results['command'])}`"] if results.get("command")
          else []),
        "", "## Use", "",
        "```python",
        "from transformers import AutoModelForImageClassification, pipeline",
        "",
            f'REVISION = "main"  # pin the commit you reviewed{REMOTE_CODE_NOTE if custom_code else ""}',
        f'model = AutoModelForImageClassification.from_pretrained("{load_id}", revision=REVISION{trust})',
        f'classifier = pipeline("image-classification", model="{load_id}", revision=REVISION{trust})',
        'classifier("my_image.png")  # any size or mode: resized and normalised as in training',
        "```", "",
        "`results.json` in this repository holds every hyperparameter and measurement of the run.", "",
    ]
    return str(ModelCard(
        f"---\n{card_data(results, repo_id, evaluations).to_yaml()}\n---\n\n" + "\n".join(lines)))


def _validation_split(hp: dict, results: dict) -> str:
    drawn = hp.get("data", {}).get("validation_split", {})
    seed = drawn.get("seed", results["seed"])
    if "fold" in drawn:
        return f"fold {drawn['fold']} of a seeded, stratified {drawn['folds']}-fold split of the training split, " \
               f"seed {seed}"
    return f"seeded, stratified hold-out of the training split, seed {seed}"


def _accumulated(hp: dict) -> str:
    steps = hp.get("training_arguments", {}).get("gradient_accumulation_steps", 1)
    return f" x {steps} accumulated micro-batches" if steps > 1 else ""


def _stop_and_kept(results: dict, hp: dict) -> str:
    """What ended the run when not its epochs (--max_steps, early stopping) and which epoch's weights were kept, when
    not the last."""
    text = ""
    flags = hp.get("training_arguments", {})
    if (steps := flags.get("max_steps", -1)) > 0:  # then the steps, not -e, set the length
        text += f" ({steps} step{'s' * (steps != 1)}: --max_steps ended it, not -e {hp.get('epochs', 'n/a')})"
    metric = f"validation {flags.get('metric_for_best_model', 'accuracy').removeprefix('eval_').replace('_', ' ')}"
    every = "evaluations" if flags.get("eval_strategy") == "steps" else "epochs"
    if results.get("stopped_early"):
        planned = f" of {hp['epochs']:g}" if hp.get("epochs") else ""
        text += (f"{planned} (early stopping ended it: no better {metric} for {hp.get('early_stopping_patience')} "
                 f"{every})")
    if flags.get("load_best_model_at_end") and results.get("kept_epoch") is not None:
        text += f", weights of epoch {results['kept_epoch']:g} kept (the best {metric})"
    return text


def parameter_lines(results: dict) -> list[str]:
    """Trainable vs total parameters, and how a LoRA run and its adapter relate to the base checkpoint."""
    lines = []
    if results.get("total_parameters"):
        lines.append(f"- parameters: {results['trainable_parameters']:,} trained of {results['total_parameters']:,}")
    lora = results.get("lora")
    if lora:
        lines.append(f"- LoRA rank {lora['r']} on `{lora['base']}` (the new head trained in full); these weights are "
                     f"the adapter merged into the base, the adapter alone is in `{lora['adapter']}/`")
    if results.get("ema_decay"):
        lines.append(f"- weights: exponential moving average, decay {results['ema_decay']}")
    return lines


LOCAL_ADAPTER = "<this adapter folder or its Hub id>"  # what the card loads before the adapter has a repo


def adapter_card(results: dict, repo_id: str | None = None) -> str:
    """README.md of an adapter folder or adapter-only repo: which base it adapts and how to load it.

    The recipe loads the base in float32, as training did: a checkpoint stored in float16 (timm's) otherwise loads
    as float16 and the merged model no longer gives the run folder's logits.
    """
    trained_on = results["lora"]["base"]
    base = trained_on if repo_id is None else portable_name(trained_on)  # a local path means nothing on the Hub
    data = ModelCardData(library_name="peft", base_model=base if is_hub_id(base) else None,  # Hub ids only
                         pipeline_tag="image-classification", tags=["lora", "image-classification", "cifar-hf"])
    labels = list((results.get("val_per_class_accuracy") or {}).keys())
    body = "\n".join([
        f"# LoRA adapter (rank {results['lora']['r']}) of `{base}` for {len(labels)} classes", "",
        f"Validation accuracy {_percent(results['val_accuracy'])}; {results['trainable_parameters']:,} trained "
        f"parameters (the adapter and the new head) of {results['total_parameters']:,} (the base with the new head, "
        "plus the adapter).", "",
        "```python",
        "import torch",
        "from peft import PeftModel",
        "from transformers import AutoModelForImageClassification",
        "",
        f"labels = {labels!r}",
        f'base = AutoModelForImageClassification.from_pretrained("{base}", num_labels=len(labels), '
        "id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}, "
        "ignore_mismatched_sizes=True, dtype=torch.float32)",
        f'model = PeftModel.from_pretrained(base, "{repo_id or LOCAL_ADAPTER}").merge_and_unload()  '
        "# the head comes with the adapter",
        "```", "",
        *([f"`{base}` was a local checkpoint when the adapter was trained: give its path."]
          if not is_hub_id(base) else []),
        "The merged model, ready to use without peft, is the run folder that holds this adapter.", "",
    ])
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def has_adapter_card(adapter: Path) -> bool:
    """Whether `adapter/README.md` is ours (peft writes an empty template there; a push writes its repo id in)."""
    card = adapter / "README.md"
    return card.is_file() and "- cifar-hf" in card.read_text(errors="replace")


def write_adapter_card(run_folder: Path, results: dict, repo_id: str | None = None) -> None:
    """Our card in a LoRA run's `adapter/README.md`, in place of peft's empty template."""
    adapter = Path(run_folder) / results["lora"]["adapter"]
    if adapter.is_dir():
        write_text(adapter / "README.md", adapter_card(results, repo_id))


def push_or_raise(push: Callable[[], str], failure: str, hint: str = "") -> str:
    """Run a Hub upload and return its URL; any error becomes one PushError line: `<failure>: <why><hint>`.

    Every push is the last step of its command, so what it would have uploaded stays as it is.
    """
    try:
        return push()
    except Exception as error:  # huggingface_hub raises many types: offline, no token, no permission, no such repo
        raise PushError(f"{failure}: {first_line(error)}{hint}") from None


def push_run(folder: Path, hub_flags: dict, pushing: str, hint: str = "", repo: str | None = None) -> str:
    """Push a run folder to --hub_model_id (else `repo`, else the folder's name); returns the commit URL. A failure is
    one line: `<pushing> to <repo> failed: <why><hint>`."""
    repo = hub_flags.get("hub_model_id") or repo or Path(folder).name
    return push_or_raise(lambda: push_run_folder(folder, repo, private=hub_flags.get("hub_private_repo")),
                         f"{pushing} to {repo} failed", hint)


def push_adapter_folder(run_folder: Path, repo_id: str, private: bool | None = None) -> str:
    """Upload only a LoRA run's `adapter/` with a card naming its base checkpoint; returns the commit URL."""
    api = HfApi()
    results = read_json(Path(run_folder) / "results.json")
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    adapter = Path(run_folder) / results["lora"]["adapter"]
    write_adapter_card(run_folder, results, repo_id)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(adapter), repo_type="model",
                               allow_patterns=[*ADAPTER_FILES, "README.md"],
                               commit_message=f"cifar-hf: LoRA adapter of {results['lora']['base']}")
    return str(getattr(commit, "commit_url", commit))


def write_model_card(run_folder: Path, results: dict | None = None, repo_id: str | None = None) -> Path:
    """Write the run folder's README.md (with every evaluation in it) atomically: a reader never sees half a card."""
    run_folder = Path(run_folder)
    results = results or read_json(run_folder / "results.json")
    path = run_folder / "README.md"
    if repo_id is None and path.exists():  # keep the Hub name a push gave the card
        try:
            repo_id = ModelCard.load(path).data.model_name
        except (ValueError, OSError):  # a hand-edited card without metadata: the default name, the card is rebuilt
            repo_id = None
    write_text(path, model_card(results, repo_id, run_evaluations(run_folder)))
    if results.get("lora") and not has_adapter_card(run_folder / results["lora"]["adapter"]):
        write_adapter_card(run_folder, results)
    return path


def push_run_folder(run_folder: Path, repo_id: str, private: bool | None = None) -> str:
    """Upload the final model with its card; returns the commit URL. Credentials come from the environment."""
    api = HfApi()
    results = read_json(Path(run_folder) / "results.json")
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id  # adds the user
    write_model_card(run_folder, results, repo_id)
    # allow_patterns: exactly the final model, never checkpoints, logs or wandb files of the run folder
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=str(run_folder), repo_type="model", allow_patterns=HUB_PATTERNS,
        commit_message=f"cifar-hf: {results['model']} ({_percent(results['val_accuracy'])} validation accuracy)",
    )
    return str(getattr(commit, "commit_url", commit))


def push_evaluation(repo_id: str, results: dict, evaluation: dict) -> str:
    """Add one evaluation's results to the model-index of a model already on the Hub; returns the commit URL."""
    data = ModelCardData(model_name=repo_id, eval_results=evaluation_results(evaluation, results))
    return metadata_update(repo_id, {"model-index": data.to_dict()["model-index"]}, overwrite=True,
                           commit_message=f"cifar-hf evaluate: {evaluation['dataset']} {evaluation['split']}")
