"""`cifar-hf evaluate --model RUN_FOLDER_OR_HUB_ID [--split test|validation|train]`.

Accuracy, loss, per-class accuracy and the confusion matrix of a trained classifier, printed and written as JSON
and PNG. For a local run folder the dataset, seed and validation size default to the training run's own, so
`--split validation` evaluates exactly the images the run validated on.
"""

import argparse
import json
import sys
from pathlib import Path

from ..data.defaults import DEFAULT_DATASET, DEFAULT_SEED, DEFAULT_VAL_SIZE
from ..errors import InputError


def parse(argv):
    parser = argparse.ArgumentParser(prog="cifar-hf evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or Hub id")
    parser.add_argument("--dataset", help="Hub id or local folder (default: the run's dataset, else uoft-cs/cifar10)")
    parser.add_argument("--split", choices=("test", "validation", "train"), default="test")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, help=f"validation split seed (default: the run's, else {DEFAULT_SEED})")
    parser.add_argument("--val-size", type=int, help=f"validation size (default: the run's, else {DEFAULT_VAL_SIZE})")
    parser.add_argument("--max-eval-samples", type=int, help="evaluate a seeded, stratified subset")
    parser.add_argument("--output", type=Path, help="folder for the JSON and PNG (default: the run folder, else .)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom code from a Hub repository")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation: mean logits of image and mirror")
    return parser.parse_args(argv)


def predict_logits(model, transform, pixels, batch_size: int, tta: bool = False):
    """Logits of each image (N, H, W, C uint8); with `tta`, the mean of the logits of the image and of its mirror."""
    import numpy as np
    import torch

    from ..inference import flip_tta_logits

    device = next(model.parameters()).device
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    batches = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            inputs = transform(images[i: i + batch_size].to(device), train=False)
            logits = flip_tta_logits(model, inputs) if tta else model(pixel_values=inputs).logits.float()
            batches.append(logits.cpu())
    return torch.cat(batches)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Only now: --help and flag errors answer without loading torch and transformers.
    import torch

    from ..data import load_cifar
    from ..inference import load_classifier, run_results
    from ..metrics import confusion_matrix, load_accuracy, per_class_accuracy
    from ..plots import plot_confusion_matrix

    try:
        trained = run_results(args.model)
        hp = trained.get("hyperparameters", {})
        dataset = args.dataset or trained.get("dataset") or DEFAULT_DATASET
        model, transform, _ = load_classifier(args.model, args.trust_remote_code)
        data = load_cifar(
            dataset,
            val_size=args.val_size or hp.get("val_size", DEFAULT_VAL_SIZE),
            seed=args.seed if args.seed is not None else hp.get("seed", DEFAULT_SEED),
            max_eval_samples=args.max_eval_samples if args.max_eval_samples else hp.get("max_eval_samples"),
            warn_no_test=args.split == "test",  # evaluate's own error says it when the test split is asked for
        )
        arrays = {"test": data.test, "validation": data.validation, "train": data.train}[args.split]
        if arrays is None:
            raise InputError(f"--split test: '{dataset}' has no test split; use --split validation")
        model_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if model_names != data.class_names:
            raise InputError(f"the model's classes {model_names} differ from the dataset's {data.class_names}")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code

    logits = predict_logits(model, transform, arrays.pixels, args.batch_size, args.tta)
    labels = torch.from_numpy(arrays.labels)
    predictions = logits.argmax(-1).numpy()
    confusion = confusion_matrix(predictions, arrays.labels, len(data.class_names))
    report = {
        "model": args.model,
        "dataset": dataset,
        "split": args.split,
        "tta": args.tta,
        "num_images": len(labels),
        "accuracy": load_accuracy().compute(predictions=predictions, references=arrays.labels)["accuracy"],
        "loss": float(torch.nn.functional.cross_entropy(logits, labels)),
        "per_class_accuracy": per_class_accuracy(confusion, data.class_names),
        "confusion_matrix": confusion.tolist(),
        "class_names": data.class_names,
    }
    output = args.output or (Path(args.model) if Path(args.model).is_dir() else Path("."))
    output.mkdir(parents=True, exist_ok=True)
    (output / f"evaluation-{args.split}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion_matrix(confusion, data.class_names, output / f"confusion_matrix-{args.split}.png",
                          f"{Path(args.model).name or args.model}, {args.split}: accuracy {report['accuracy']:.4f}")

    print(f"{args.split}: {len(labels)} images, accuracy {report['accuracy']:.4f}, loss {report['loss']:.4f}")
    width = max(len(n) for n in data.class_names)
    for name, value in report["per_class_accuracy"].items():
        print(f"  {name:<{width}}  {'n/a' if value is None else f'{value:.4f}'}")
    print("confusion matrix (rows: true, columns: predicted):")
    cell = max(5, len(str(int(confusion.max()))))  # names cut to the cell width label the columns
    print(f"  {'':<{width}}  " + " ".join(f"{name[:cell]:>{cell}}" for name in data.class_names))
    for name, row in zip(data.class_names, confusion):
        print(f"  {name:<{width}}  " + " ".join(f"{count:{cell}d}" for count in row))
    print(f"written: {output / f'evaluation-{args.split}.json'}, {output / f'confusion_matrix-{args.split}.png'}")
    return 0
