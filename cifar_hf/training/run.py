"""One training run: recipe + flags -> model, TrainingArguments, CifarTrainer -> run folder with results.json.

The run folder (`<save-folder>/cifar-<model>/`) holds the final model (safetensors, config, its code), an image
processor that preprocesses PIL images exactly as training did, `results.json`, and `checkpoint-*` folders.
"""

import contextlib
import dataclasses
import logging
import pickle
import signal
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import transformers
from transformers import EarlyStoppingCallback, TrainingArguments
from transformers.trainer_utils import PredictionOutput

from ..data import BatchTransform, CifarData, ImageArrays, ImageTensorDataset, collate_batch
from ..data.preprocessing import describe_training_preprocessing, to_image_processor
from ..data.rgb import grey_pixels, is_grayscale
from ..data.statistics import channel_statistics
from ..errors import InputError, Preempted, StorageError, UsageError, first_line
from ..files import atomic_path, write_json, write_text
from ..hub import push_adapter_folder, push_or_raise, push_run, write_model_card
from ..metrics import TOP5_ABOVE_CLASSES, compute_metrics, confusion_matrix, per_class_accuracy
from ..models import build_scratch_model
from ..models.pretrained import load_pretrained_classifier, pretrained_preprocessing
from ..plots import plot_confusion_matrix, plot_training_curves
from . import checkpoints, run_record
from .arguments import HUB_FLAGS, MODEL_SPECIFIC_ARGUMENTS, RunArguments
from .callbacks import EarlyStopping, SaveEveryNEpochs, StopOnSignal
from .devices import hardware_description, on_cpu, on_gpu, uses_bf16
from .distributed import check_deepspeed_support, check_shared_run_folder, main_process_result, whole_model_loading
from .ema import WeightEMA
from .lora import ADAPTER_FOLDER, apply_lora, is_peft_model, parameter_counts, save_adapter_and_merge
from .recipes import Recipe, at_image_size, get_recipe, with_training_flags
from .secrets import scrub_secrets
from .tracking import finish_wandb_run, start_wandb_run
from .trainer import CifarTrainer

logger = logging.getLogger(__name__)

CONVNETS = ("cnn", "resnet")
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def normalisation(args: RunArguments, data: CifarData, checkpoint: tuple | None = None) -> dict:
    """Mean and std to normalise with, and where they come from (recorded in results.json)."""
    if args.image_mean is not None:
        return {"mean": tuple(args.image_mean), "std": tuple(args.image_std), "source": "--image-mean/--image-std"}
    if checkpoint is not None:
        return {"mean": checkpoint[0], "std": checkpoint[1], "source": f"checkpoint {args.model_name_or_path}"}
    mean, std = channel_statistics(data.train.pixels)
    return {"mean": mean, "std": std, "source": f"training split ({len(data.train)} images)"}


def training_is_grayscale(data: CifarData) -> bool:
    """Every training image grey (R == G == B once decoded): inference must then read its inputs as grey too."""
    return is_grayscale(data.full_train.pixels if data.full_train is not None else data.train.pixels)


def build_model_and_transform(args: RunArguments, recipe: Recipe, data: CifarData, grayscale: bool = False):
    """(model, its BatchTransform, the normalisation record); scratch models are built for the stored image size;
    `grayscale`: the training images are grey (a timm config records it for inference)."""
    if args.model == "previt":
        model = load_pretrained_classifier(args.model_name_or_path, data.class_names)
        if args.lora_r is not None:
            model = apply_lora(model, args.lora_r, args.lora_alpha, args.lora_dropout, args.lora_target_modules)
        side, mean, std = pretrained_preprocessing(args.model_name_or_path, model.config)
        stats = normalisation(args, data, checkpoint=(mean, std))
        # One resize, from the stored size straight to the checkpoint's.
        transform = BatchTransform(mean=stats["mean"], std=stats["std"], image_size=side,
                                   horizontal_flip=recipe.horizontal_flip, crop_padding=recipe.crop_padding,
                                   cutout=recipe.cutout)
        describe_training_preprocessing(model.config, side, transform.resample, stats["mean"], stats["std"],
                                        grayscale)
        return model, transform, stats
    overrides = {"stem": args.vit_stem} if args.model == "vit" else {}
    try:
        model = build_scratch_model(args.model, data.class_names, image_size=data.image_size, **overrides)
    except ValueError as error:  # e.g. a vit stem that cannot reach its token grid from this size
        raise InputError(f"{args.model} cannot take {data.image_size}x{data.image_size} images ({error}); "
                         "pass --image-size 32 or 64") from None
    channels_last = args.model in CONVNETS and on_gpu(args)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    stats = normalisation(args, data)
    transform = BatchTransform(mean=stats["mean"], std=stats["std"], image_size=data.image_size,
                               crop_padding=recipe.crop_padding, horizontal_flip=recipe.horizontal_flip,
                               cutout=recipe.cutout, channels_last=channels_last)
    return model, transform, stats


def build_training_arguments(
    args: RunArguments, recipe: Recipe, training_flags: dict, output_dir: Path
) -> TrainingArguments:
    batch_size = args.batch_size or recipe.batch_size
    gpu = on_gpu(args)
    values = dict(
        output_dir=str(output_dir),
        num_train_epochs=args.epoch or recipe.epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 512 if gpu else 256),
        learning_rate=args.learning_rate or recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        lr_scheduler_type=recipe.scheduler,
        lr_scheduler_kwargs=recipe.scheduler_kwargs,
        warmup_steps=recipe.warmup,
        max_grad_norm=recipe.max_grad_norm,
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",  # checkpoints come from SaveEveryNEpochs (-f), the final model from save_model
        metric_for_best_model="accuracy",
        seed=args.seed,
        use_cpu=on_cpu(args),
        bf16=uses_bf16(args, recipe),
        dataloader_pin_memory=gpu,  # pinned memory only helps copies to a GPU (and warns without one)
        # Progress bars only on a terminal: in a log file the nested evaluation bar leaves cursor-up escape codes.
        disable_tqdm=not sys.stderr.isatty(),
        # No host sync per step: batches are copied from pinned memory asynchronously, and CifarTrainer checks
        # the loss for NaN/inf on the device (the Trainer's own filter reads every loss back).
        accelerator_config={"non_blocking": gpu},
        logging_nan_inf_filter=False,
        report_to=["wandb"] if args.wandb else "none",
        run_name=output_dir.name,
        label_names=["labels"],
        remove_unused_columns=False,  # batches come whole from ImageTensorDataset.__getitems__
        # The scratch models use every trained parameter in every step: DDP need not search the graph for unused
        # ones (a traversal per step, and a warning). previt keeps the Trainer's rule: any checkpoint may hold one
        # (DINOv2's mask token).
        ddp_find_unused_parameters=None if args.model == "previt" else False,
    )
    # A loss is best when lowest (the Trainer would keep the highest unless told).
    values["greater_is_better"] = "loss" not in training_flags.get("metric_for_best_model", "accuracy")
    # Explicit flags win; label smoothing is CifarTrainer's (soft targets, also under mixup), not the Trainer's too.
    values.update({k: v for k, v in training_flags.items() if k not in (*HUB_FLAGS, "label_smoothing_factor")})
    if values.get("load_best_model_at_end"):  # the Trainer keeps the best of the per-epoch checkpoints
        values["save_strategy"] = "epoch"
    return TrainingArguments(**values)


def build_mixup(recipe: Recipe, num_classes: int):
    if not (recipe.mixup_alpha or recipe.cutmix_alpha):
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha, prob=recipe.mix_prob,
                 label_smoothing=recipe.label_smoothing, num_classes=num_classes)


class SplitEvaluation(NamedTuple):
    accuracy: float | None = None
    top5_accuracy: float | None = None  # only beyond 10 classes
    loss: float | None = None
    per_class_accuracy: dict | None = None
    output: PredictionOutput | None = None  # logits and labels
    confusion: np.ndarray | None = None


def evaluate_split(trainer: CifarTrainer, arrays: ImageArrays | None, class_names: list[str], name: str):
    """The trained model on one split (all fields None without that split)."""
    if arrays is None:
        return SplitEvaluation()
    return summarise(trainer.predict(ImageTensorDataset(arrays), metric_key_prefix=name), class_names, name)


def final_validation(trainer: CifarTrainer, arrays: ImageArrays, class_names: list[str]) -> SplitEvaluation:
    """The last epoch's evaluation when it scored the final weights (no best-model reload since), else a new pass."""
    if trainer.last_evaluation is not None and not trainer.args.load_best_model_at_end:
        step, output = trainer.last_evaluation
        if step == trainer.state.global_step:
            metrics = {f"val_{key.removeprefix('eval_')}": value for key, value in output.metrics.items()}
            return summarise(PredictionOutput(output.predictions, output.label_ids, metrics), class_names, "val")
    return evaluate_split(trainer, arrays, class_names, "val")


def summarise(output: PredictionOutput, class_names: list[str], name: str) -> SplitEvaluation:
    predictions = np.asarray(output.predictions).argmax(-1)
    confusion = confusion_matrix(predictions, np.asarray(output.label_ids), len(class_names))
    metrics = output.metrics
    return SplitEvaluation(metrics[f"{name}_accuracy"], metrics.get(f"{name}_top5_accuracy"), metrics[f"{name}_loss"],
                           per_class_accuracy(confusion, class_names), output, confusion)


def applied_run_arguments(args: RunArguments) -> dict:
    """The run's arguments without those of other models (a cnn run has no base checkpoint)."""
    values = dataclasses.asdict(args)
    return {k: v for k, v in values.items() if MODEL_SPECIFIC_ARGUMENTS.get(k, args.model) == args.model}


def build_trainer(
    args: RunArguments, training_flags: dict, data: CifarData, output_dir: Path, recipe: Recipe | None = None,
    callbacks: tuple = (),
) -> tuple[CifarTrainer, BatchTransform, dict]:
    """The configured CifarTrainer for this run, its batch transform, and the run's hyperparameters.

    `recipe` replaces the named recipe (a tuning trial's sampled values); `callbacks` are added to the Trainer's.
    """
    recipe = with_training_flags(at_image_size(recipe or get_recipe(args.model, args.recipe), data.image_size),
                                 training_flags)
    if on_gpu(args):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    training_args = build_training_arguments(args, recipe, training_flags, output_dir)
    check_deepspeed_support(args, training_args)
    if "top5" in training_args.metric_for_best_model and len(data.class_names) <= TOP5_ABOVE_CLASSES:
        raise UsageError(f"--metric_for_best_model {training_args.metric_for_best_model}: top-5 accuracy is reported "
                         f"beyond {TOP5_ABOVE_CLASSES} classes, and this dataset has {len(data.class_names)}")
    transformers.set_seed(training_args.seed)  # the model's initialisation is part of the seeded run
    grayscale = training_is_grayscale(data)  # one pass over the training pixels
    with whole_model_loading(training_args):
        model, transform, stats = build_model_and_transform(args, recipe, data, grayscale)

    optimizer_kwargs = {"lr": training_args.learning_rate, **recipe.optimizer_kwargs}
    if training_args.device.type == "cuda":
        optimizer_kwargs["fused"] = True
    applied = {**recipe.to_dict(), "epochs": int(training_args.num_train_epochs),
               "batch_size": training_args.per_device_train_batch_size, "learning_rate": training_args.learning_rate,
               "tta": recipe.tta if args.tta is None else args.tta, "bf16": training_args.bf16}
    named = at_image_size(get_recipe(args.model, args.recipe), data.image_size).to_dict()
    hyperparameters = scrub_secrets({
        **applied_run_arguments(args),
        # The recipe as it applied: -e/-b/-l/--tta as given or its own, bf16 only on a GPU that supports it.
        "recipe_settings": applied,
        # What flags or a tuning trial changed, which the recipe's description does not say (bf16 follows the GPU).
        "recipe_changes": {k: v for k, v in applied.items() if k != "bf16" and named.get(k) != v},
        "epochs": training_args.num_train_epochs,
        "per_device_batch_size": training_args.per_device_train_batch_size,
        "learning_rate": training_args.learning_rate,
        "training_arguments": scrub_secrets(training_flags),
        "train_size": len(data.train),
        "validation_size": len(data.validation),
        "test_size": len(data.test) if data.test is not None else 0,
    })
    hyperparameters["data"] = {  # what was actually used, whether given or chosen
        "image_column": data.image_column, "label_column": data.label_column, "num_classes": len(data.class_names),
        "image_size": data.image_size, "model_input_size": transform.image_size, "normalisation": stats,
        "grayscale": grayscale,  # predict, demo, export and evaluate read inputs as grey when true
        "validation_split": data.holdout,  # evaluate redraws it from this, not from the run's own --seed
    }

    trainer = CifarTrainer(
        model=model,
        args=training_args,
        train_dataset=ImageTensorDataset(data.train),
        eval_dataset=ImageTensorDataset(data.validation),
        data_collator=collate_batch,
        compute_metrics=compute_metrics,
        optimizer_cls_and_kwargs=(OPTIMIZERS[recipe.optimizer], optimizer_kwargs),
        callbacks=[SaveEveryNEpochs(args.ckpt_frequency), *callbacks]
        + ([EarlyStopping(args.early_stopping_patience)] if args.early_stopping_patience else []),
        batch_transform=transform,
        label_smoothing=recipe.label_smoothing,
        mixup=build_mixup(recipe, len(data.class_names)),
        tta=applied["tta"],
        decay_all_parameters=recipe.decay_all_parameters,
        ema=WeightEMA(args.ema_decay) if args.ema_decay else None,
        run_flags=run_record.defining_flags(args, training_args, training_flags),
    )
    if args.wandb and trainer.is_world_process_zero():
        start_wandb_run(output_dir, training_args.run_name, hyperparameters)
    return trainer, transform, hyperparameters


def write_run_folder(
    output_dir: Path, trainer, transform, results: dict, class_names: list[str], split: str, shown: SplitEvaluation
) -> None:
    """Everything beside the model: logs, figures, image processor, results.json and the model card."""
    with atomic_path(output_dir / "trainer_state.json") as path:  # the per-epoch curves
        trainer.state.save_to_json(str(path))
    plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png",
                         f"{results['model']}: validation accuracy {results['val_accuracy']:.4f}")
    plot_confusion_matrix(shown.confusion, class_names, output_dir / "confusion_matrix.png",
                          f"{results['model']}, {split} split: accuracy {shown.accuracy:.4f}")
    processor = to_image_processor(transform, results["hyperparameters"]["data"].get("grayscale", False))
    write_text(output_dir / "preprocessor_config.json", processor.to_json_string())
    if trainer.run_flags is not None:  # before results.json: a finished run has both
        write_json(output_dir / run_record.RECORD, trainer.run_flags)
    write_json(output_dir / "results.json", results, default=str)
    write_model_card(output_dir, results)


def finish_model(args: RunArguments, trainer: CifarTrainer, output_dir: Path) -> None:
    """The model that is saved, evaluated and pushed: the EMA weights when averaged, LoRA merged into the base."""
    if trainer.ema is not None:
        trainer.ema.copy_to(trainer.model)
    if is_peft_model(trainer.model):
        merged = None
        if trainer.is_world_process_zero():
            merged = save_adapter_and_merge(trainer.model, output_dir, args.model_name_or_path)
        else:
            merged = trainer.model.merge_and_unload()
        trainer.model = trainer.model_wrapped = merged


def training_outcome(trainer: CifarTrainer) -> dict:
    """Which epoch's model was kept (`--load_best_model_at_end`) and whether early stopping ended the run."""
    state, args = trainer.state, trainer.args
    epochs = {entry["step"]: entry["epoch"] for entry in state.log_history if "eval_accuracy" in entry}
    best_step = state.best_global_step if args.load_best_model_at_end else None
    metric = args.metric_for_best_model.removeprefix("eval_")
    stopped = stopped_early(trainer)
    return {
        "kept_epoch": epochs.get(best_step) if best_step else state.epoch,
        f"best_val_{metric}_during_training": state.best_metric,
        "stopped_early": stopped,
        "stopped_at_epoch": state.epoch if stopped else None,
    }


def stopped_early(trainer: CifarTrainer) -> bool:
    """Early stopping cut the run short: its patience ran out before the last planned step."""
    stoppers = [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]
    out_of_patience = any(c.early_stopping_patience_counter >= c.early_stopping_patience for c in stoppers)
    return out_of_patience and trainer.state.global_step < trainer.state.max_steps


def train_once(
    args: RunArguments, training_flags: dict, data: CifarData, output_dir: Path, save_test_probabilities: bool = False,
    recipe: Recipe | None = None, callbacks: tuple = (), command: str | None = None,
) -> dict:
    """Train one model on `data`, save it into `output_dir`, and return (and write) its results.

    `save_test_probabilities` also writes the softmax over the test split as `test_probabilities.npy` (ensembles);
    `recipe` and `callbacks` as in `build_trainer`; `command`, the command line that trains this run again (a fold,
    seed or trial of a larger job has none of its own), goes into results.json and the card.
    """
    trainer, transform, hyperparameters = build_trainer(args, training_flags, data, output_dir, recipe, callbacks)
    training_args = trainer.args
    if training_args.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(training_args.device)
    check_shared_run_folder(output_dir, trainer.accelerator)
    resume = None
    if args.resume:  # decided once (it removes torn checkpoints), for every process
        resume = main_process_result(trainer.accelerator, lambda: checkpoints.resolve_resume(output_dir, args.resume))
        checkpoints.check_loss_scaler(resume, trainer.accelerator.scaler)
        run_record.check_resume(Path(resume), trainer.run_flags, training_args.max_steps)
    stop_on_signal = StopOnSignal(args.stop_check_steps)
    trainer.add_callback(stop_on_signal)
    try:
        results = train_and_write(trainer, transform, hyperparameters, stop_on_signal, resume, args, training_flags,
                                  data, output_dir, save_test_probabilities, command)
    finally:
        stop_on_signal.restore()
    if stop_on_signal.signal_number is not None:  # it came during the final evaluation or the writing: both finished
        name = signal.Signals(stop_on_signal.signal_number).name
        raise Preempted(f"stopped by {name} after training: the run folder {output_dir} is complete",
                        stop_on_signal.signal_number, kept="run")
    return results


def train_checkpointed(trainer: CifarTrainer, resume: str | None, output_dir: Path):
    """trainer.train with its failures as one line: an unsafe checkpoint file, a disk that fills up."""
    try:
        return trainer.train(resume_from_checkpoint=resume)
    except pickle.UnpicklingError as error:  # torch.load(weights_only=True) refused a pickled object
        raise InputError(f"--resume: {resume} holds a file that is not plain tensors, refusing to load it "
                         f"({first_line(error)})") from None
    except OSError as error:
        raise StorageError(f"cannot write a checkpoint in {output_dir}: {error.strerror or error}") from None
    except RuntimeError as error:  # torch.save reports a failed write (a full disk) as a RuntimeError
        message = str(error)
        if resume and ("size mismatch" in message or "loading state_dict" in message):  # another model's checkpoint
            lines = message.splitlines()
            detail = next((line.strip() for line in lines if "size mismatch" in line), lines[0])
            raise InputError(f"--resume: {resume} does not fit this model ({detail})") from None
        if "unexpected pos" not in message and "write failed" not in message:
            raise
        raise StorageError(f"cannot write a checkpoint in {output_dir} (is the disk full?): "
                           f"{first_line(error)}") from None


def train_and_write(trainer: CifarTrainer, transform: BatchTransform, hyperparameters: dict,
                    stop_on_signal: StopOnSignal, resume: str | None, args: RunArguments, training_flags: dict,
                    data: CifarData, output_dir: Path, save_test_probabilities: bool, command: str | None) -> dict:
    """Train, then save, score and write the finished run (pushing it when asked); returns its results."""
    training_args = trainer.args
    train_output = train_checkpointed(trainer, resume, output_dir)
    if stop_on_signal.stopped_by is not None:  # the same on every process, whichever got the signal
        name = signal.Signals(stop_on_signal.stopped_by).name
        raise Preempted(f"stopped by {name} at step {trainer.state.global_step}: checkpoint saved in {output_dir}; "
                        "continue with --resume auto", stop_on_signal.stopped_by, kept="checkpoint")
    staging = output_dir / checkpoints.STAGING
    if training_args.should_save:  # the last publish left it empty; on shared storage another machine may be first
        with contextlib.suppress(FileNotFoundError):
            if not any(staging.iterdir()):
                staging.rmdir()
    cuda = training_args.device.type == "cuda"
    peak_memory = torch.cuda.max_memory_allocated(training_args.device) if cuda else None

    parameters = parameter_counts(trainer.model)
    finish_model(args, trainer, output_dir)
    trainer.save_model(str(output_dir))
    val = final_validation(trainer, data.validation, data.class_names)
    test_images = data.test
    if test_images is not None and hyperparameters["data"].get("grayscale"):  # read as grey, as predict reads it
        test_images = ImageArrays(grey_pixels(test_images.pixels), test_images.labels)
    test = evaluate_split(trainer, test_images, data.class_names, "test")
    if save_test_probabilities and test.output is not None and trainer.is_world_process_zero():
        probabilities = torch.softmax(torch.from_numpy(np.asarray(test.output.predictions, dtype=np.float32)), -1)
        with atomic_path(output_dir / "test_probabilities.npy") as path:
            np.save(path, probabilities.numpy(), allow_pickle=False)

    results = {
        **run_results(args, trainer, data, val, test, train_output.metrics, peak_memory, parameters),
        "command": command,
        "hyperparameters": hyperparameters,
    }
    if trainer.is_world_process_zero():
        split, shown = ("test", test) if test.output is not None else ("validation", val)
        write_run_folder(output_dir, trainer, transform, results, data.class_names, split, shown)
        if args.wandb:
            finish_wandb_run(results, output_dir, shown.output, data.class_names)
        push_finished(args, training_flags, output_dir)
    return results


def run_results(args: RunArguments, trainer: CifarTrainer, data: CifarData, val, test, train_metrics: dict,
                peak_memory: int | None, parameters: dict) -> dict:
    """What results.json says of the run itself: what ran, on what, how it scored, and what it cost."""
    training_args, outcome = trainer.args, training_outcome(trainer)
    return {
        "model": args.model,
        "recipe": args.recipe,
        "dataset": data.dataset,
        # What ran: a run that --max_steps or early stopping ends trains its steps, whatever -e says (hyperparameters
        # keep -e).
        "epochs": trainer.state.epoch if training_args.max_steps > 0 or outcome["stopped_early"]
        else training_args.num_train_epochs,
        "seed": training_args.seed,
        "label_column": data.label_column,
        "num_classes": len(data.class_names),
        "image_size": data.image_size,
        "val_accuracy": val.accuracy,
        "val_loss": val.loss,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "val_top5_accuracy": val.top5_accuracy,
        "test_top5_accuracy": test.top5_accuracy,
        "val_per_class_accuracy": val.per_class_accuracy,
        "test_per_class_accuracy": test.per_class_accuracy,
        "train_runtime_s": train_metrics["train_runtime"],
        "train_samples_per_second": train_metrics["train_samples_per_second"],
        "global_step": trainer.state.global_step,
        "world_size": training_args.world_size,
        # accelerate's name for how the processes share the work: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED, ...
        "distributed_type": trainer.accelerator.distributed_type.value,
        "per_device_batch_size": training_args.per_device_train_batch_size,
        "global_batch_size": trainer.global_batch_size,
        "peak_device_memory_bytes": peak_memory,
        "bad_images_skipped": data.bad_images_skipped,
        "hardware": hardware_description(training_args),
        **parameters,
        "lora": {"r": args.lora_r, "adapter": ADAPTER_FOLDER, "base": args.model_name_or_path} if args.lora_r
        else None,
        "ema_decay": args.ema_decay,
        **outcome,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def push_finished(args: RunArguments, training_flags: dict, output_dir: Path) -> None:
    """--push_to_hub and --push-adapter, once the run folder is complete."""
    if training_flags.get("push_to_hub"):
        url = push_run(output_dir, training_flags, f"the run folder {output_dir} is complete, but pushing it",
                       " (a single run: push it again with the same command and --resume auto)")
        logger.info("pushed %s to the Hub: %s", output_dir, url)
    if args.push_adapter:
        private = training_flags.get("hub_private_repo")
        url = push_or_raise(
            lambda: push_adapter_folder(output_dir, args.push_adapter, private=private),
            f"the run folder {output_dir} is complete, but pushing its adapter to {args.push_adapter} failed")
        logger.info("pushed the adapter %s to the Hub: %s", output_dir / ADAPTER_FOLDER, url)
