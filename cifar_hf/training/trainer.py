"""`CifarTrainer`: the Transformers Trainer, fed uint8 batches that it augments and normalises on the device."""

import functools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback

from ..data.augment import BatchTransform, flip_tta_logits
from ..errors import TrainingError
from ..files import write_json
from ..metrics import mean_cross_entropy
from . import checkpoints, run_record
from .distributed import main_process_result
from .ema import UpdateEMA, WeightEMA
from .lora import is_peft_model
from .loss_tracker import LossTracker

PROGRESS = "train_progress.json"  # in every checkpoint: runtime and images of the run so far


def ask_for_lomo_once() -> None:
    """accelerate's AcceleratedOptimizer.step asks importlib twice per step whether lomo_optim is installed (an
    uncached find_spec and metadata read: 30 us per call, 60 us of host time per step on the 2-core CPU, 2% of a
    batch-2 cnn step); the answer cannot change during a run, so it is asked once."""
    import accelerate.optimizer

    asked = getattr(accelerate.optimizer, "is_lomo_available", None)
    if asked is not None and not hasattr(asked, "cache_info"):
        accelerate.optimizer.is_lomo_available = functools.cache(asked)


class StartPartClock(TrainerCallback):
    """This part of the run is timed from where the Trainer's own train_runtime starts (set-up before the training
    loop is in neither), so the parts of a resumed run add up on one clock."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._part_started = time.time()


class CifarTrainer(checkpoints.StagedCheckpoints, Trainer):
    """A `Trainer` whose batches hold uint8 `pixel_values`.

    Each batch is turned into model input on the training device (crop/flip/normalise/resize, see
    `BatchTransform`) and, while training, its labels into soft targets when the recipe uses label smoothing or
    mixup/cutmix. Checkpoints are crash-safe (`cifar_hf.training.checkpoints`) and a non-finite loss stops the run
    before anything after it is saved. Everything else (sampling, sharding, mixed precision, logging) is the
    Trainer's own.
    """

    def __init__(self, *args, batch_transform: BatchTransform, label_smoothing: float = 0.0, mixup=None,
                 tta: bool = False, decay_all_parameters: bool = False, ema: WeightEMA | None = None,
                 run_flags: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        ask_for_lomo_once()
        self.run_flags = run_flags  # the run's defining flags, recorded in each checkpoint (run_record)
        self.ema = ema  # evaluation and checkpoints use (and hold) the averaged weights too
        if ema is not None:
            self.add_callback(UpdateEMA(ema))
        self.add_callback(StartPartClock(self))
        self.decay_all_parameters = decay_all_parameters
        self.tta = tta  # evaluate on the mean logits of each image and its mirror image
        self.batch_transform = batch_transform
        self.label_smoothing = label_smoothing
        self.mixup = mixup  # a timm.data.Mixup, which also applies the label smoothing
        self._micro_step = None  # training_step calls so far; set from global_step at the first call (resume)
        self._part_start_step = None  # global_step when this process's part of the run took its first step
        self.losses = LossTracker()
        self._parameter_count = None  # for floating_point_ops
        # (global step, EvalLoopOutput) of the latest evaluation of the validation split: the run's final validation
        # metrics reuse it when the weights have not changed since, rather than scoring the same weights again.
        self.last_evaluation = None

    def get_decay_parameter_names(self, model) -> list[str]:
        if self.decay_all_parameters:  # plain L2 on every parameter, as the seed's optimizers did
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    def _model_inputs(self, inputs: dict, train: bool) -> dict:
        inputs = dict(inputs)
        pixels = inputs["pixel_values"].to(self.args.device, non_blocking=True)
        inputs["pixel_values"] = self.batch_transform(pixels, train=train)
        labels = inputs.get("labels")
        if train and labels is not None:
            num_classes = self.model.config.num_labels
            if self.mixup is not None and len(labels) % 2 == 0:  # timm's batch mixing pairs images up
                inputs["pixel_values"], inputs["labels"] = self.mixup(inputs["pixel_values"], labels)
            elif self.label_smoothing or self.mixup is not None:
                smoothing = self.mixup.label_smoothing if self.mixup is not None else self.label_smoothing
                off = smoothing / num_classes  # scatter, not one_hot: one_hot may read the labels back to check them
                inputs["labels"] = torch.full((len(labels), num_classes), off, device=labels.device).scatter_(
                    1, labels[:, None], 1 - smoothing + off)
        return inputs

    def _seed_step(self) -> None:
        """Key every random draw of this step (augmentation, mixup, dropout, drop path) to (seed, rank, step).

        A resumed run then draws exactly what the uninterrupted run drew at the same step, wherever it stopped:
        no random stream has to be replayed.
        """
        if self._micro_step is None:
            self._micro_step = self._micro_steps_done()
            self._part_start_step = self.state.global_step
        key = (self.args.seed * 1_000_003 + self.args.process_index) * 10_000_019 + self._micro_step
        # Only the generators a step draws from. torch.manual_seed would also queue a seed, with a formatted stack
        # trace, for every backend not yet started (XPU, MTIA, ...): about 0.5 ms of host time per step.
        torch.default_generator.manual_seed(key % 2**63)
        if self.args.device.type == "cuda":
            torch.cuda.manual_seed(key % 2**63)  # the current device's, which accelerate set to this process's GPU
        elif self.args.device.type != "cpu":
            torch.manual_seed(key % 2**63)
        np.random.seed(key % 2**32)
        self._micro_step += 1

    def _epoch_length(self) -> tuple[int, int] | None:
        """(batches, optimizer steps) of one epoch, as the Trainer counts them; None for an iterable dataset."""
        try:
            batches = len(self.callback_handler.train_dataloader)
        except TypeError:
            return None
        return batches, max(-(-batches // self.args.gradient_accumulation_steps), 1)

    def _micro_steps_done(self) -> int:
        """training_step calls before global_step: an epoch's last optimizer step may take fewer micro-batches."""
        accumulation, length = self.args.gradient_accumulation_steps, self._epoch_length()
        if length is None:  # no epoch length to go by
            return self.state.global_step * accumulation
        epochs, steps = divmod(self.state.global_step, length[1])
        return epochs * length[0] + steps * accumulation

    def floating_point_ops(self, inputs: dict) -> int:
        """The Trainer's estimate (6 x inputs x parameters), with the parameter count taken once, not every step."""
        if self._parameter_count is None:
            self._parameter_count = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs["pixel_values"].numel() * self._parameter_count

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Cross-entropy against soft targets (label smoothing, mixup) for every model.

        Transformers' classification heads read float labels as multi-label targets: they would train with
        binary cross-entropy and keep `problem_type = "multi_label_classification"` in the saved config.
        """
        labels = inputs.get("labels")
        if labels is None or not labels.is_floating_point():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        loss = F.cross_entropy(outputs.logits.float(), labels)
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = loss / self.current_gradient_accumulation_steps  # the Trainer then leaves this division to the loss
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        self._seed_step()
        loss = super().training_step(model, self._model_inputs(inputs, train=True), num_items_in_batch)
        self.losses.add(loss.detach(), self.state.global_step)
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        """Without clipping, the gradient norm is only logged: compute it for the steps that log, not every step.

        The Trainer computes it every step through clip_grad_norm_(inf), which also multiplies every gradient by 1
        (`benchmarks/host_overhead.py`: 5.6 ms per resnet step, 0.12 ms per cnn step on the 2-core CPU; see
        docs/performance.md). A log that another callback asks for has no grad_norm.
        """
        if grad_norm is None and not self._logs_after_this_step():
            return None
        return super()._get_grad_norm(model, grad_norm)

    def _logs_after_this_step(self) -> bool:
        """DefaultFlowCallback's logging rules, applied to the optimizer step now ending."""
        args, step = self.args, self.state.global_step + 1  # the Trainer counts the step after the optimizer's
        if step == 1 and args.logging_first_step:
            return True
        if args.logging_strategy == "steps":
            return step % self.state.logging_steps == 0
        if args.logging_strategy != "epoch":
            return False
        if args.ignore_data_skip:  # a resumed epoch then runs whole from the resumed step: epochs end elsewhere
            return True
        if args.eval_strategy == "steps" and step % self.state.eval_steps == 0 and step >= args.eval_delay:
            return True  # an evaluation may stop the run mid-epoch (early stopping, a pruned trial), then it logs
        length = self._epoch_length()
        if length is None:  # an iterable dataset: epochs end where the data does
            return True
        return step % length[1] == 0 or step >= self.state.max_steps

    def _stop_if_loss_was_not_finite(self) -> None:
        """Raise, on every process, before anything is logged, evaluated or saved after a non-finite loss."""
        bad = self.losses.first_non_finite(self.accelerator)
        if bad is None:
            return
        step, value = bad
        epoch = step / self.state.max_steps * self.args.num_train_epochs if self.state.max_steps else 0.0
        last = checkpoints.complete_checkpoints(Path(self.args.output_dir))
        raise TrainingError(
            f"training loss is {value} at step {step} (epoch {epoch:.2f}); "
            f"stopped before saving anything after it. Last complete checkpoint: {last[-1] if last else 'none'}"
        )

    def _maybe_log_save_evaluate(self, *args, **kwargs) -> None:
        # The one place that runs before a step's log, evaluation and save (callbacks run after them): a non-finite
        # loss must stop the run before anything after it is written.
        if self.control.should_log or self.control.should_evaluate or self.control.should_save:
            self._stop_if_loss_was_not_finite()
        super()._maybe_log_save_evaluate(*args, **kwargs)

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and self.losses.micro_steps:
            logs["loss"] = self.losses.epoch_loss(self.accelerator, self.args.gradient_accumulation_steps)
        if "train_loss" in logs and self.state.global_step:  # the Trainer's own counts only this session's steps
            logs["train_loss"] = self.losses.run_loss(self.accelerator, self.state.global_step)
        super().log(logs, start_time)

    def train(self, resume_from_checkpoint=None, **kwargs):
        self._earlier_parts = {"train_runtime_s": 0.0, "train_samples": 0}  # of a run resumed after a stop
        if isinstance(resume_from_checkpoint, str) and self.ema is not None:
            self.ema.load(Path(resume_from_checkpoint), self.model)
        if isinstance(resume_from_checkpoint, str):
            saved = Path(resume_from_checkpoint) / f"running_loss_{self.args.process_index}.json"
            if saved.is_file():
                self.losses.load_state_dict(json.loads(saved.read_text()))
            progress = Path(resume_from_checkpoint) / PROGRESS
            if progress.is_file():
                self._earlier_parts = json.loads(progress.read_text())
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        self._stop_if_loss_was_not_finite()  # a last step that no log, evaluation or save looked at
        return self._whole_run_speed(output)

    @property
    def global_batch_size(self) -> int:
        """Images per optimizer step over all processes (train_batch_size counts a DataParallel process's GPUs)."""
        return self.args.train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps

    def _progress(self) -> dict:
        """Runtime and images of the whole run up to now: the earlier parts plus this one."""
        start = self.state.global_step if self._part_start_step is None else self._part_start_step
        images = (self.state.global_step - start) * self.global_batch_size
        return {"train_runtime_s": self._earlier_parts["train_runtime_s"] + time.time() - self._part_started,
                "train_samples": self._earlier_parts["train_samples"] + images}

    def _whole_run_speed(self, output):
        """A resumed run reports the runtime and images/s of all its parts, not of its last part alone."""
        earlier = self._earlier_parts
        if not earlier["train_runtime_s"]:
            return output
        metrics = output.metrics
        runtime = earlier["train_runtime_s"] + metrics["train_runtime"]
        # Images counted here, not from the Trainer's speed: releases differ on whether it counts resumed steps.
        images = self._progress()["train_samples"]
        metrics["train_runtime"], metrics["train_samples_per_second"] = round(runtime, 4), round(images / runtime, 3)
        return output

    def write_checkpoint_extras(self, staged: Path) -> None:
        """What a resume needs beyond the Trainer's files: progress, loss sums, the run's defining flags, the EMA, the
        best-model pointer."""
        (staged / PROGRESS).write_text(json.dumps(self._progress()))
        (staged / f"running_loss_{self.args.process_index}.json").write_text(json.dumps(self.losses.state_dict()))
        # Every process loads the best model at the end; rank 0 decides where it is (another machine's view of
        # shared storage may lag, and processes that disagreed would part ways in DeepSpeed's loader).
        best = main_process_result(self.accelerator, self._published_best_checkpoint)
        if best is not None:  # the Trainer recorded the staging path, or none
            self.state.best_model_checkpoint = best
        if self.is_world_process_zero():
            if self.run_flags is not None:
                write_json(staged / run_record.RECORD, self.run_flags)
            if self.ema is not None:
                self.ema.save(staged)
            if best is not None:
                self.state.save_to_json(str(staged / "trainer_state.json"))

    def _published_best_checkpoint(self) -> str | None:
        """The best checkpoint by its published path (the Trainer looks for it beside the staged one), once whole."""
        best_step = self.state.best_global_step
        if not best_step or best_step > self.state.global_step:
            return None
        best = Path(self.args.output_dir) / f"checkpoint-{best_step}"
        if best_step != self.state.global_step and not checkpoints.is_complete(best):
            return None
        return str(best)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        """Load a checkpoint's weights through from_pretrained, which maps the saved names onto the model's own.

        Transformers v5 saves some architectures under their legacy names (ViT: `...attention.attention.query`,
        while the module is `...attention.q_proj`) and the Trainer's own loader reads the file with a non-strict
        `load_state_dict`: it would silently resume such a model from its initial weights.
        """
        model = self.model if model is None else model
        folder = Path(resume_from_checkpoint)
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        if is_peft_model(model):
            checkpoints.load_adapter_weights(model, folder)
        elif (folder / "model.safetensors").is_file():
            checkpoints.load_model_weights(model, folder)
        else:
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        # The Trainer's own reads model.safetensors non-strictly (see _load_from_checkpoint) and knows no EMA file.
        best = self.state.best_model_checkpoint
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:  # sharded: only the Trainer's own loads those
            super()._load_best_model()
        else:
            self._load_from_checkpoint(best)
        if self.ema is not None:
            self.ema.load(Path(best), self.model)

    def evaluate(self, *args, **kwargs):
        if self.ema is None:
            return super().evaluate(*args, **kwargs)
        with self.ema.swapped_in(self.model):
            return super().evaluate(*args, **kwargs)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if output.predictions is not None and output.label_ids is not None:
            # The Trainer's loss averages each batch's mean, repeated batch-size times: a short last batch weighs as a
            # full one, and under several processes accelerate pads batches with repeated images. The gathered
            # logits hold each image once.
            output.metrics[f"{metric_key_prefix}_loss"] = mean_cross_entropy(output.predictions, output.label_ids)
        if metric_key_prefix == "eval" and output.predictions is not None:  # evaluate() on the validation split
            self.last_evaluation = (self.state.global_step, output)
        return output

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._model_inputs(inputs, train=False)
        if not self.tta:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        pixels, labels = inputs["pixel_values"], inputs.get("labels")
        with torch.no_grad(), self.compute_loss_context_manager():
            logits = flip_tta_logits(model, pixels)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return loss, None if prediction_loss_only else logits, labels
