"""`cifar-hf evaluate --model RUN_FOLDER_OR_HUB_ID [--dataset D] [--split NAME]`.

Accuracy (top-5 too beyond 10 classes), loss, per-class accuracy and the confusion matrix of a trained classifier,
printed and written as JSON and PNG. Any labelled split of any dataset can be scored, also one without a train
split (CIFAR-10.1, your own photos); its classes are matched to the model's by name. For a local run folder the
dataset, columns, image size, seed and validation size default to the training run's own, so `--split validation`
evaluates exactly the images the run validated on (the seeded hold-out of the train split).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..data import DEFAULT_DATASET, DEFAULT_SEED, DEFAULT_VAL_SIZE, ImageArrays, load_cifar, load_labelled_split
from ..data.loading import load_raw_dataset
from ..errors import InputError
from ..inference import flip_tta_logits, load_classifier, run_results
from ..metrics import TOP5_ABOVE_CLASSES, confusion_matrix, load_accuracy, per_class_accuracy, top5_accuracy
from ..plots import plot_confusion_matrix


def parse(argv):
    parser = argparse.ArgumentParser(prog="cifar-hf evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or Hub id")
    parser.add_argument("--dataset", help="Hub id or local folder (default: the run's dataset, else uoft-cs/cifar10)")
    parser.add_argument("--split", default="test", help="any labelled split of the dataset; 'validation' and 'train' "
                        "mean the run's seeded hold-out and the rest when the dataset has no split of that name")
    parser.add_argument("--image-column", "--image_column_name", help="default: the run's, else chosen as in training")
    parser.add_argument("--label-column", "--label_column_name", help="default: the run's, else chosen as in training")
    parser.add_argument("--image-size", type=int, help="store images at NxN (default: the run's stored size)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, help=f"validation split seed (default: the run's, else {DEFAULT_SEED})")
    parser.add_argument("--val-size", type=int, help=f"validation size (default: the run's, else {DEFAULT_VAL_SIZE})")
    parser.add_argument("--max-eval-samples", type=int, help="evaluate a seeded, stratified subset")
    parser.add_argument("--output", type=Path, help="folder for the JSON and PNG (default: the run folder, else .)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom code from a Hub repository")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation: mean logits of image and mirror")
    return parser.parse_args(argv)


@torch.no_grad()
def predict_logits(model, transform, pixels: np.ndarray, batch_size: int, tta: bool = False) -> torch.Tensor:
    """Logits of each image; with `tta`, the mean of the logits of the image and of its mirror image."""
    device = next(model.parameters()).device
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    batches = []
    for i in range(0, len(images), batch_size):
        inputs = transform(images[i: i + batch_size].to(device), train=False)
        logits = flip_tta_logits(model, inputs) if tta else model(pixel_values=inputs).logits.float()
        batches.append(logits.cpu())
    return torch.cat(batches)


def load_scored_split(args, trained: dict, dataset: str) -> tuple[ImageArrays, list[str]]:
    """The images and class names of the split to score, decoded as the training run decoded its own."""
    hp = trained.get("hyperparameters", {})
    columns = {
        "image_column": args.image_column or hp.get("data", {}).get("image_column") or hp.get("image_column"),
        "label_column": args.label_column or trained.get("label_column") or hp.get("label_column"),
        "image_size": args.image_size or trained.get("image_size"),
    }
    seed = args.seed if args.seed is not None else hp.get("seed", DEFAULT_SEED)
    max_eval_samples = args.max_eval_samples if args.max_eval_samples else hp.get("max_eval_samples")
    splits = load_raw_dataset(dataset)  # cheap: datasets caches it, and the split names decide the route
    if args.split in splits or args.split not in ("validation", "train") or "train" not in splits:
        arrays, class_names, _ = load_labelled_split(dataset, args.split, max_samples=max_eval_samples, seed=seed,
                                                     **columns)
        return arrays, class_names
    data = load_cifar(dataset, val_size=args.val_size or hp.get("val_size", DEFAULT_VAL_SIZE), seed=seed,
                      max_eval_samples=max_eval_samples, **columns)
    return {"validation": data.validation, "train": data.train}[args.split], data.class_names


def to_model_labels(arrays: ImageArrays, class_names: list[str], model_names: list[str]) -> ImageArrays:
    """The split's labels as the model's class indices, matched by name (the split may order them differently)."""
    unknown = [name for name in class_names if name not in model_names]
    if unknown:
        raise InputError(f"the dataset's class(es) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} "
                         f"are not among the model's {len(model_names)} classes ({', '.join(model_names[:10])}"
                         f"{' ...' if len(model_names) > 10 else ''}); check --dataset and --label-column")
    mapping = np.array([model_names.index(name) for name in class_names], dtype=np.int64)
    return ImageArrays(arrays.pixels, mapping[arrays.labels])


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        trained = run_results(args.model)
        dataset = args.dataset or trained.get("dataset") or DEFAULT_DATASET
        model, transform, _ = load_classifier(args.model, args.trust_remote_code)
        arrays, dataset_names = load_scored_split(args, trained, dataset)
        class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        arrays = to_model_labels(arrays, dataset_names, class_names)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code

    logits = predict_logits(model, transform, arrays.pixels, args.batch_size, args.tta)
    labels = torch.from_numpy(arrays.labels)
    predictions = logits.argmax(-1).numpy()
    confusion = confusion_matrix(predictions, arrays.labels, len(class_names))
    many_classes = len(class_names) > TOP5_ABOVE_CLASSES
    report = {
        "model": args.model,
        "dataset": dataset,
        "split": args.split,
        "tta": args.tta,
        "num_images": len(labels),
        "num_classes": len(class_names),
        "image_size": int(arrays.pixels.shape[1]),
        "accuracy": load_accuracy().compute(predictions=predictions, references=arrays.labels)["accuracy"],
        "top5_accuracy": top5_accuracy(logits.numpy(), arrays.labels) if many_classes else None,
        "loss": float(torch.nn.functional.cross_entropy(logits, labels)),
        "per_class_accuracy": per_class_accuracy(confusion, class_names),
        "confusion_matrix": confusion.tolist(),
        "class_names": class_names,
    }
    output = args.output or (Path(args.model) if Path(args.model).is_dir() else Path("."))
    output.mkdir(parents=True, exist_ok=True)
    (output / f"evaluation-{args.split}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion_matrix(confusion, class_names, output / f"confusion_matrix-{args.split}.png",
                          f"{Path(args.model).name or args.model}, {args.split}: accuracy {report['accuracy']:.4f}")

    top5 = f", top-5 {report['top5_accuracy']:.4f}" if report["top5_accuracy"] is not None else ""
    print(f"{dataset} {args.split}: {len(labels)} images, accuracy {report['accuracy']:.4f}{top5}, "
          f"loss {report['loss']:.4f}")
    width = max(len(n) for n in class_names)
    for name, value in report["per_class_accuracy"].items():
        print(f"  {name:<{width}}  {'n/a' if value is None else f'{value:.4f}'}")
    print("confusion matrix (rows: true, columns: predicted):")
    for name, row in zip(class_names, confusion, strict=True):
        print(f"  {name:<{width}}  " + " ".join(f"{count:5d}" for count in row))
    print(f"written: {output / f'evaluation-{args.split}.json'}, {output / f'confusion_matrix-{args.split}.png'}")
    return 0
