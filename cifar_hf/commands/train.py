"""`run_classification.py` / `cifar-hf train`: parse flags, load and check the data, train, report."""

import logging
import shutil
import sys

from ..data import load_cifar
from ..errors import CifarError, InputError, UsageError
from ..models.pretrained import check_checkpoint
from ..training.arguments import RunArguments, parse_arguments
from ..training.distributed import is_main_process
from ..training.run import run_folder, train_once

logger = logging.getLogger("cifar_hf")


def check_run_folder(args: RunArguments) -> None:
    """Refuse to reuse a run folder unless asked to; nothing is deleted here."""
    folder = run_folder(args)
    if folder.exists() and any(folder.iterdir()) and not (args.overwrite or args.resume):
        raise UsageError(
            f"run folder {folder} already exists: pass --overwrite to replace it, --resume auto to continue it, "
            "or -s/--save-folder to write elsewhere"
        )
    if args.resume and not folder.exists():
        raise UsageError(f"--resume: there is no run folder {folder} to resume")


def setup_logging() -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stderr)
    import datasets
    import transformers

    transformers.logging.set_verbosity_warning()
    datasets.logging.set_verbosity_warning()


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        args, training_flags = parse_arguments(argv)
        check_run_folder(args)
        if training_flags.get("disable_tqdm"):  # quiet means quiet: the decoding bars too
            import datasets

            datasets.disable_progress_bars()
        if args.model == "previt":
            check_checkpoint(args.model_name_or_path)
        data = load_cifar(
            args.dataset,
            val_size=args.val_size,
            seed=args.seed,
            max_train_samples=args.max_train_samples,
            max_eval_samples=args.max_eval_samples,
            skip_bad_images=args.skip_bad_images,
            image_column=args.image_column,
            label_column=args.label_column,
            image_size=args.image_size,
        )
        folder = run_folder(args)
        # Only now, and only once (rank 0 of a distributed launch): a run that failed on its input keeps the old folder.
        if args.overwrite and folder.exists() and is_main_process():
            shutil.rmtree(folder)
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return train_and_report(args, training_flags, data, folder)
        except InputError:
            if created and not any(folder.iterdir()):  # e.g. an unreachable checkpoint: leave no empty folder
                folder.rmdir()
            raise
    except CifarError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def train_and_report(args: RunArguments, training_flags: dict, data, folder) -> int:
    if args.cross_validate:
        from ..training.cross_validation import cross_validate

        print(cross_validate(args, training_flags, data, folder)["table"])
        return 0
    results = train_once(args, training_flags, data, folder)
    test = "n/a (no test split)" if results["test_accuracy"] is None else f"{results['test_accuracy']:.4f}"
    if results.get("test_top5_accuracy") is not None:
        test += f" (top-5 {results['test_top5_accuracy']:.4f})"
    print(
        f"{args.model} on {results['num_classes']} classes ({results['label_column']}), {results['image_size']}px: "
        f"validation accuracy {results['val_accuracy']:.4f}, test accuracy {test}, "
        f"{results['train_runtime_s']:.1f} s training; saved to {folder}"
    )
    return 0
