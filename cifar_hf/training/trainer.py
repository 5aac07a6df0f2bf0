"""`CifarTrainer`: the Transformers Trainer, fed uint8 batches that it augments and normalises on the device."""

import torch
import torch.nn.functional as F
from transformers import Trainer

from ..data.augment import BatchTransform


class CifarTrainer(Trainer):
    """A `Trainer` whose batches hold uint8 `pixel_values`.

    Each batch is turned into model input on the training device (crop/flip/normalise/resize, see
    `BatchTransform`) and, while training, its labels into soft targets when the recipe uses label smoothing or
    mixup/cutmix. Everything else (sampling, sharding, mixed precision, checkpoints, logging) is the Trainer's own.
    """

    def __init__(self, *args, batch_transform: BatchTransform, label_smoothing: float = 0.0, mixup=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_transform = batch_transform
        self.label_smoothing = label_smoothing
        self.mixup = mixup  # a timm.data.Mixup, which also applies the label smoothing

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
                inputs["labels"] = F.one_hot(labels, num_classes).float() * (1 - smoothing) + smoothing / num_classes
        return inputs

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        return super().training_step(model, self._model_inputs(inputs, train=True), num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        return super().prediction_step(model, self._model_inputs(inputs, train=False), prediction_loss_only, ignore_keys)
