"""`cifar-hf evaluate --model RUN_FOLDER_OR_HUB_ID [--dataset D] [--split NAME]`.

Accuracy (top-5 too beyond 10 classes), loss, per-class accuracy and the confusion matrix of a trained classifier,
printed and written as JSON and PNG, with the calibration of its confidence (ECE, NLL, Brier, reliability diagram)
and, on request, its accuracy under the CIFAR-10-C corruptions (`--corruptions`) and after temperature scaling
(`--temperature-scale`). Any labelled split of any dataset can be scored, also one without a train split; its classes
are matched to the model's by name. For a local run folder the evaluation also goes into the folder's model card, and
the dataset, columns, image size, seed and validation size default to the training run's own, so `--split validation`
evaluates exactly the images the run validated on (the seeded hold-out of the train split, or a fold's own fold).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from ..data.defaults import DEFAULT_DATASET, DEFAULT_SEED, DEFAULT_VAL_SIZE
from ..errors import CifarError, CommandParser, InputError, PushError, StorageError, UsageError, print_error
from ..files import read_json


def parse(argv):
    parser = CommandParser(prog="cifar-hf evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or Hub id")
    parser.add_argument("--dataset", help="Hub id or local folder (default: the run's dataset, else uoft-cs/cifar10)")
    parser.add_argument("--split", help="any labelled split of the dataset; 'validation' and 'train' mean the run's "
                        "seeded hold-out and the rest when the dataset has no split of that name (default: test, or "
                        "validation when the dataset has no test split)")
    parser.add_argument("--image-column", "--image_column_name", help="default: the run's, else chosen as in training")
    parser.add_argument("--label-column", "--label_column_name", help="default: the run's, else chosen as in training")
    parser.add_argument("--image-size", type=int, help="store images at NxN (default: the run's stored size)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--skip-bad-images", "--skip_bad_images", action=argparse.BooleanOptionalAction,
                        help="skip (and count) undecodable images instead of stopping (default: on the run's own "
                             "dataset as the run did, so its hold-out is drawn from the same images; else stop)")
    parser.add_argument("--seed", type=int,
                        help=f"validation split drawn with this seed (default: the run's split, else {DEFAULT_SEED})")
    parser.add_argument("--val-size", type=int, help=f"validation size (default: the run's, else {DEFAULT_VAL_SIZE})")
    parser.add_argument("--max-eval-samples", type=int, metavar="N",
                        help="evaluate a seeded, stratified subset of N images (default: on the run's own dataset the "
                             "run's --max-eval-samples, so the run's number is reproduced; on another dataset, every "
                             "image)")
    parser.add_argument("--output", type=Path,
                        help="folder for the JSON and PNG (default: the run folder, else .); named by the split on "
                             "the run's own dataset, by dataset and split on another")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom code from a Hub repository")
    parser.add_argument("--tta", action="store_true",
                        help="flip test-time augmentation: mean logits of image and mirror")
    parser.add_argument("--corruptions", help="CIFAR-10-C corruptions to score: 'all' or NAME,NAME,... (see docs)")
    parser.add_argument("--severities", help="with --corruptions: severities, comma-separated 1..5 (default: all)")
    parser.add_argument("--corruption-seed", type=int, default=0, help="seed of the corruptions' randomness")
    parser.add_argument("--temperature-scale", action="store_true",
                        help="fit one softmax temperature on the validation split and report calibration with it")
    parser.add_argument("--save-calibrated", metavar="DIR", type=Path,
                        help="with --temperature-scale: write a copy of the model whose probabilities are calibrated "
                             "(the temperature folded into its classifier; the model itself is not changed)")
    parser.add_argument("--push", metavar="REPO_ID",
                        help="add this evaluation to the model-index of a model on the Hub (token from HF_TOKEN)")
    args = parser.parse_args(argv)
    if args.save_calibrated and not args.temperature_scale:
        parser.error("--save-calibrated needs --temperature-scale")
    if args.save_calibrated and args.tta:  # a temperature fitted on flip-averaged logits fits no single pass
        parser.error("--save-calibrated fits the model as it serves, one pass per image: leave out --tta")
    if args.save_calibrated and args.save_calibrated.exists():
        parser.error(f"--save-calibrated {args.save_calibrated} already exists: give a new folder")
    return args


def is_training_run(results: dict) -> bool:
    """What evaluate reuses of a run's results.json: its model, numeric accuracies and hyperparameters."""
    return (bool(results.get("model"))
            and isinstance(results.get("val_accuracy"), int | float)
            and isinstance(results.get("test_accuracy"), int | float | None)
            and isinstance(results.get("hyperparameters", {}), dict))


def usable_run_results(model: str) -> dict:
    """The run folder's results.json when a training run wrote it, else {}: a foreign one (`{"accuracy": 0.9}`)
    gives no dataset, settings or accuracy to compare with, and one warning line."""
    from ..inference import run_results

    trained = run_results(model)
    if not (Path(model) / "results.json").is_file() or is_training_run(trained):  # no file: a Hub id, bare weights
        return trained
    if not (Path(model) / "config.json").is_file():  # no model either (a --repeat or -c job): the loader says so
        return {}
    print(f"warning: {Path(model) / 'results.json'} is not a training run's results: evaluating without the run's "
          "dataset, settings and accuracy", file=sys.stderr)
    return {}


def same_dataset(a, b) -> bool:
    """Two names of one dataset: local folders by resolved path (a trailing slash, a symlink), Hub ids as written."""
    from ..offline import looks_like_path

    if a is None or b is None:
        return False
    if looks_like_path(a) and looks_like_path(b):
        return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()
    return str(a) == str(b)


def run_column(flag_value: str | None, run_value: str | None, features) -> str | None:
    """The flag's column; else the run's, when this dataset has it; else None: chosen as training chooses."""
    return flag_value or (run_value if run_value in features else None)


def load_scored_split(args, trained: dict, dataset: str, own: bool, split: str | None = None) -> tuple:
    """(ImageArrays, class names) of the split to score (default --split), decoded as the training run decoded it.

    On the run's `own` dataset the run's --max-eval-samples applies too (the run's number is reproduced); another
    dataset is scored whole unless --max-eval-samples is given.
    """
    from ..data import load_cifar, load_labelled_split, stratified_subset
    from ..data.loading import load_raw_dataset
    from ..inference import run_columns

    split = split or args.split
    hp = trained.get("hyperparameters", {})
    run_image_column, run_label_column = run_columns(trained)
    splits = load_raw_dataset(dataset)  # cheap: datasets caches it, and the split names decide the route
    # The run validated on a hold-out of its train split, never on a split named validation: score what it scored.
    run_holdout = own and split == "validation" and "train" in splits
    if run_holdout and "validation" in splits:
        print(f"note: {dataset}'s own validation split was not the run's: scoring the run's hold-out of its train "
              "split, the images it validated on", file=sys.stderr)
    source = split if split in splits and not run_holdout else "train"
    features = splits[source].features if source in splits else {}
    columns = {
        "image_column": run_column(args.image_column, run_image_column, features),
        "label_column": run_column(args.label_column, run_label_column, features),
        "image_size": args.image_size or trained.get("image_size"),
    }
    skip = args.skip_bad_images
    columns["skip_bad_images"] = bool(hp.get("skip_bad_images")) and own if skip is None else skip
    recorded = recorded_split(args.model, hp)
    drawn = {"seed": args.seed} if args.seed is not None else recorded  # --seed: a hold-out drawn with it
    seed = drawn.get("seed", hp.get("seed", DEFAULT_SEED))
    max_eval_samples = args.max_eval_samples or (hp.get("max_eval_samples") if own else None)
    if not run_holdout and (split in splits or split not in ("validation", "train") or "train" not in splits):
        arrays, class_names, _ = load_labelled_split(dataset, split, max_samples=max_eval_samples, seed=seed,
                                                     **columns)
        return arrays, class_names
    fold = drawn.get("fold") if own and args.val_size is None else None  # a fold validated on its fold
    suffix = holdout_suffix(args, hp, recorded) if own else ""
    files = f"; the files get the suffix {suffix}" if split == args.split else ""  # else it fits a temperature
    if own and "fold" in recorded and not fold:
        print(f"note: {'--seed' if args.seed is not None else '--val-size'} draws a seeded hold-out of the training "
              f"split; this run validated on fold {recorded['fold']} of {recorded['folds']} (leave the flag out to "
              f"score that{files})", file=sys.stderr)
    elif suffix:
        print(f"note: {suffix[1:].replace('-', ', ')}: another hold-out of the training split than the one this run "
              f"validated on (leave the flag out to score that{files})", file=sys.stderr)
    try:
        val_size = None if fold else args.val_size or hp.get("val_size", DEFAULT_VAL_SIZE)
        data = load_cifar(dataset, val_size=val_size, seed=seed,
                          max_train_samples=hp.get("max_train_samples") if fold else None,
                          max_eval_samples=max_eval_samples, warn_no_test=False, **columns)
    except InputError as error:
        if args.val_size is None and error.flag == "--val-size":  # a size the user never gave
            whose = "the run's" if "val_size" in hp else "the default"
            raise InputError(f"{error} ({whose} --val-size: give --val-size N for {dataset})") from None
        raise
    if own and recorded.get("train_images") not in (None, data.holdout["train_images"]):
        print(f"warning: {dataset}'s training split has changed since the run (other images, or in another order): "
              "the hold-out drawn from it now may hold images the run trained on", file=sys.stderr)
    if not fold:
        return data.validation, data.class_names
    validation = data.fold(fold, drawn["folds"]).validation  # whole, as the fold's run scored it
    if args.max_eval_samples:
        validation = validation.take(stratified_subset(validation.labels, args.max_eval_samples, seed))
    return validation, data.class_names


def holdout_suffix(args, hp: dict, recorded: dict) -> str:
    """`-seed<S>`, `-val<N>`: a hold-out that --seed or --val-size draws otherwise than the run's never replaces the
    evaluation of the run's own."""
    fold = "fold" in recorded  # a fold validated on its fold: any drawn hold-out is another one
    own_seed, own_size = recorded.get("seed", hp.get("seed", DEFAULT_SEED)), hp.get("val_size", DEFAULT_VAL_SIZE)
    parts = [f"-seed{args.seed}"] if args.seed is not None and (fold or args.seed != own_seed) else []
    parts += [f"-val{args.val_size}"] if args.val_size is not None and (fold or args.val_size != own_size) else []
    return "".join(parts)


def recorded_split(model: str, hp: dict) -> dict:
    """How the run's validation split was drawn ({"seed"}, plus "fold"/"folds"): its own record, else, for a fold or
    --repeat seed folder written before runs recorded it, its job's (the member's own seed did not draw it)."""
    from ..training.run_record import SPLIT_RECORD  # not from repeat.py, which loads the training stack (0.8 s)

    if hp.get("data", {}).get("validation_split"):
        return hp["data"]["validation_split"]
    folder = Path(model)
    if folder.name.startswith("seed-") and (folder.parent / SPLIT_RECORD).is_file():
        return {"seed": read_json(folder.parent / SPLIT_RECORD).get("split_seed")}
    job = folder.parent / "results.json"
    if folder.name.startswith("fold-") and folder.name[5:].isdigit() and job.is_file():
        cv = read_json(job)
        if cv.get("cross_validation"):
            return {"seed": cv["seed"], "fold": int(folder.name[5:]), "folds": cv["folds"]}
    return {}


def default_split(dataset: str) -> str:
    """test; else the validation split (the dataset's own, or the run's hold-out of its train split), said so."""
    from ..data.loading import load_raw_dataset

    splits = load_raw_dataset(dataset)
    if "test" in splits:
        return "test"
    if "validation" not in splits and "train" not in splits:
        raise InputError(f"{dataset} has no test, validation or train split (splits: {', '.join(splits)}): "
                         "pass --split NAME")
    print(f"note: {dataset} has no test split: evaluating the validation split (--split chooses another)",
          file=sys.stderr)
    return "validation"


def check_temperature_split(dataset: str) -> None:
    """--temperature-scale fits on the validation split: the dataset's own, or the hold-out of its train split."""
    from ..data.loading import load_raw_dataset

    splits = load_raw_dataset(dataset)
    if "validation" not in splits and "train" not in splits:
        raise InputError(f"--temperature-scale needs a validation split to fit the temperature; {dataset} has none "
                         f"(splits: {', '.join(splits) or 'none'})")


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Only now: --help and flag errors answer without loading torch and transformers.
    from ..data.loading import to_class_order
    from ..inference import load_classifier
    from ..offline import hub_out_of_reach
    from ..robustness.corruptions import SEVERITIES, parse_corruptions, parse_severities

    try:
        for flag, value in (("--batch-size", args.batch_size), ("--max-eval-samples", args.max_eval_samples),
                            ("--val-size", args.val_size)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1 (got {value})")
        if args.output is not None and args.output.exists() and not args.output.is_dir():
            raise UsageError(f"--output {args.output} is a file: give a folder (the evaluation's files go into it)")
        if args.push and hub_out_of_reach():  # refused before the evaluation, not after a minute of retries
            raise UsageError(f"--push {args.push}: the Hugging Face Hub is out of reach (offline, or HF_HUB_OFFLINE "
                             "is set); evaluate without --push (the evaluation is saved locally)")
        if args.severities is not None and args.corruptions is None:
            raise UsageError("--severities needs --corruptions (the corruptions to score at those severities)")
        corruptions = parse_corruptions(args.corruptions) if args.corruptions is not None else []
        severities = parse_severities(args.severities) if args.severities is not None else list(SEVERITIES)
        trained = usable_run_results(args.model)
        own_dataset = trained.get("dataset") or DEFAULT_DATASET
        # the run's own dataset however it is written: its subset, file names and no shift to report
        own = args.dataset is None or same_dataset(args.dataset, own_dataset)
        dataset = own_dataset if own else args.dataset
        model, transform, processor = load_classifier(args.model, args.trust_remote_code)
        args.split = args.split or default_split(dataset)
        if args.temperature_scale and args.split != "validation":
            check_temperature_split(dataset)
        arrays, dataset_names = load_scored_split(args, trained, dataset, own)
        class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        arrays = to_class_order(arrays, dataset_names, class_names)
        validation = None  # the split a temperature is fitted on, when another split is scored
        if args.temperature_scale and args.split != "validation":
            validation = to_class_order(*load_scored_split(args, trained, dataset, own, "validation"), class_names)
    except CifarError as error:
        return print_error(error)
    try:
        return write_and_print(args, trained, dataset, own, class_names, arrays, validation, model, transform,
                               corruptions, severities, processor)
    except CifarError as error:
        return print_error(error)


def evaluation_name(output: Path, dataset: str, split: str, own: bool) -> str:
    """What the files are named after: the split on the run's own dataset, else `<dataset folder or id>-<split>`, so
    an evaluation of another dataset never replaces one of the same split (a same-named folder elsewhere gets a
    short hash of its path)."""
    from ..files import file_name_part
    from ..hub import portable_name
    from ..offline import looks_like_path

    if own:
        return split
    name = file_name_part(portable_name(dataset), "-").strip("-") or "dataset"
    earlier = output / f"evaluation-{name}-{split}.json"
    if earlier.is_file():
        try:
            recorded = read_json(earlier)
        except InputError:
            recorded = {}  # damaged: kept as it is, this evaluation goes beside it
        if not same_dataset(recorded.get("dataset"), dataset):
            where = str(Path(dataset).expanduser().resolve()) if looks_like_path(dataset) else dataset
            name += "-" + hashlib.sha1(where.encode()).hexdigest()[:8]
    return f"{name}-{split}"


def variant_suffix(report: dict, trained: dict) -> str:
    """`-tta`, `-notta`, `-<N>px`: an evaluation scored otherwise than the run scored (hub.scored_differently) never
    replaces one scored the run's way."""
    from ..hub import scored_differently

    differs = scored_differently(report, trained)
    suffix = ("-tta" if differs["tta"] else "-notta") if "tta" in differs else ""
    return suffix + (f"-{differs['image_size']}px" if "image_size" in differs else "")


def shift_line(shift: dict) -> str:
    """`gap` is the run's accuracy minus this one: positive is below the run's, negative above it."""
    gap = shift["accuracy_gap"]
    where = f"{abs(gap):.4f} {'below' if gap > 0 else 'above'}" if round(gap, 4) else "equal to"
    return (f"shift: {where} the run's own {shift['run_split']} accuracy {shift['run_accuracy']:.4f} on "
            f"{shift['run_dataset']}")


def save_calibrated(model, processor, temperature: float, check_pixels, folder: Path) -> None:
    """The calibrated copy, written whole into `folder` (built beside it, then renamed: never half a model)."""
    import shutil

    from ..robustness.calibration import with_temperature

    try:
        calibrated = with_temperature(model, temperature, check_pixels)
    except ValueError as error:
        raise InputError(f"--save-calibrated: {error}") from None
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        calibrated.save_pretrained(partial)
        processor.save_pretrained(partial)
        partial.rename(folder)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise StorageError(f"--save-calibrated {folder}: {error.strerror or error}") from None


def write_and_print(args, trained: dict, dataset: str, own: bool, class_names: list[str], arrays, validation, model,
                    transform, corruptions, severities, processor) -> int:
    import torch

    from ..hub import push_evaluation, push_or_raise

    report, bins = score_report(args, trained, dataset, own, class_names, arrays, validation, model, transform,
                                corruptions, severities, processor)
    output, written = write_evaluation(args, trained, own, report, bins)
    print_report(report, severities)
    if args.save_calibrated:
        temperature = report["temperature_scaling"]["temperature"]
        sample = torch.from_numpy(arrays.pixels[:8].transpose(0, 3, 1, 2).copy())
        check = transform(sample.to(model.device), train=False)
        save_calibrated(model, processor, temperature, check, args.save_calibrated)
        print(f"calibrated copy (temperature {temperature:.3f} folded into the classifier): {args.save_calibrated}")
    print("written: " + ", ".join(str(p) for p in written))
    if args.push:
        try:
            url = push_or_raise(lambda: push_evaluation(args.push, trained, report), f"--push {args.push} failed",
                                f" (the evaluation is saved in {output})")
        except PushError as error:
            return print_error(error)
        print(f"pushed the evaluation to the model card of {args.push}: {url}")
    return 0


def score_report(args, trained: dict, dataset: str, own: bool, class_names: list[str], arrays, validation, model,
                 transform, corruptions, severities, processor) -> tuple[dict, object]:
    """The evaluation report of `arrays` (accuracy, loss, per class, confusion, calibration, shift, corruptions) and
    the reliability bins of its figure."""
    import numpy as np
    import torch

    from ..data.rgb import grey_pixels
    from ..inference import predict_logits
    from ..metrics import (
        TOP5_ABOVE_CLASSES,
        confusion_matrix,
        load_accuracy,
        mean_cross_entropy,
        per_class_accuracy,
        top5_accuracy,
    )
    from ..robustness.report import calibration_section, corruption_report

    def score(pixels: np.ndarray) -> torch.Tensor:
        # A grey run sees every image (another dataset's, a corrupted one) as grey, as predict reads it; its own grey
        # images are unchanged (the luma of R == G == B is that value).
        return predict_logits(model, transform, grey_pixels(pixels) if processor.grayscale else pixels,
                              args.batch_size, args.tta)

    logits = score(arrays.pixels)
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
        "loss": mean_cross_entropy(logits, labels),
        "per_class_accuracy": per_class_accuracy(confusion, class_names),
        "confusion_matrix": confusion.tolist(),
        "class_names": class_names,
    }
    if trained and not own:  # distribution shift: the gap to the run's own held-out score
        run_split = "test" if trained.get("test_accuracy") is not None else "validation"
        run_accuracy = trained["test_accuracy"] if run_split == "test" else trained["val_accuracy"]
        report["shift"] = {"run_dataset": trained.get("dataset"), "run_split": run_split, "run_accuracy": run_accuracy,
                           "accuracy_gap": run_accuracy - report["accuracy"]}
    if validation is not None:
        validation = (score(validation.pixels), torch.from_numpy(validation.labels))
    calibration, bins = calibration_section(logits, labels, args.temperature_scale, validation)
    report.update(calibration)
    if corruptions:
        report.update(corruption_report(score, arrays.pixels, arrays.labels, report["accuracy"], corruptions,
                                        severities, args.corruption_seed))
    return report, bins


def write_evaluation(args, trained: dict, own: bool, report: dict, bins) -> tuple[Path, list[Path]]:
    """The report's JSON and figures in --output (the run folder's card lists them); returns the folder and files."""
    import numpy as np

    from ..files import write_json
    from ..hub import write_model_card
    from ..plots import plot_confusion_matrix
    from ..robustness.report import write_figures

    output = args.output or (Path(args.model) if Path(args.model).is_dir() else Path("."))
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"--output {output}: {error.strerror}") from None
    stem = evaluation_name(output, report["dataset"], args.split, own)
    if own and args.split == "validation":  # the run's hold-out of its train split (load_scored_split), or another
        hp = trained.get("hyperparameters", {})
        stem += holdout_suffix(args, hp, recorded_split(args.model, hp))
    stem += variant_suffix(report, trained)
    if (output / f"evaluation-{stem}.json").is_file():
        print(f"note: replacing the earlier {output / f'evaluation-{stem}.json'}", file=sys.stderr)
    title = f"{Path(args.model).name or args.model}, {stem}"
    write_json(output / f"evaluation-{stem}.json", report)
    plot_confusion_matrix(np.array(report["confusion_matrix"]), report["class_names"],
                          output / f"confusion_matrix-{stem}.png", f"{title}: accuracy {report['accuracy']:.4f}")
    written = [output / f"evaluation-{stem}.json", output / f"confusion_matrix-{stem}.png",
               *write_figures(report, bins, output, title, stem)]
    if trained and output.resolve() == Path(args.model).resolve():  # the run folder's card lists its evaluations
        written.append(write_model_card(output))
    return output, written


def print_report(report: dict, severities) -> None:
    class_names, confusion = report["class_names"], report["confusion_matrix"]
    top5 = f", top-5 {report['top5_accuracy']:.4f}" if report["top5_accuracy"] is not None else ""
    print(f"{report['dataset']} {report['split']}: {report['num_images']} images, accuracy {report['accuracy']:.4f}"
          f"{top5}, loss {report['loss']:.4f}")
    width = max(len(n) for n in class_names)
    for name, value in report["per_class_accuracy"].items():
        print(f"  {name:<{width}}  {'n/a' if value is None else f'{value:.4f}'}")
    print("confusion matrix (rows: true, columns: predicted):")
    cell = max(5, len(str(max(max(row) for row in confusion))))  # names cut to the cell width label the columns
    print(f"  {'':<{width}}  " + " ".join(f"{name[:cell]:>{cell}}" for name in class_names))
    for name, row in zip(class_names, confusion, strict=True):
        print(f"  {name:<{width}}  " + " ".join(f"{count:{cell}d}" for count in row))
    if "shift" in report:
        print(shift_line(report["shift"]))
    calibration = report["calibration"]
    print(f"calibration: ECE {calibration['ece']:.4f}, NLL {calibration['nll']:.4f}, Brier {calibration['brier']:.4f}")
    if "temperature_scaling" in report:
        scaled = report["temperature_scaling"]
        print(f"temperature {scaled['temperature']:.3f} (fitted on {scaled['fitted_on']}): "
              f"ECE {scaled['ece']:.4f}, NLL {scaled['nll']:.4f}, Brier {scaled['brier']:.4f}")
    if "corruptions" in report:
        for name, by_severity in report["corruptions"].items():
            print(f"  {name:<17}  " + " ".join(f"{by_severity[str(s)]:.4f}" for s in severities))
        print(f"corruptions: mean accuracy {report['mean_corruption_accuracy']:.4f} "
              f"(relative drop {report['relative_corruption_drop'] or 0:.1%}), "
              f"{report['corruption_eval_seconds']:.1f} s, "
              f"{report['corrupted_splits_from_cache']} split(s) from cache")
