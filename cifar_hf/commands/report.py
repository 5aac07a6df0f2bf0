"""`cifar-hf report FOLDER [...] [--output FILE]`: one Markdown table comparing every run folder found.

Rows are sorted by test accuracy (validation accuracy where there is no test split), best first;
cross-validation and repeat folders are shown as mean +- standard deviation over their folds or seeds, a tuning
study as its best trial with the number of trials.
"""

import sys
from pathlib import Path

from ..errors import CifarError, CommandParser, print_error
from ..files import read_json, write_text

RECOVERY = "re-run the training with --overwrite, or move that run folder away"
COLUMNS = ("run", "model", "data", "recipe", "epochs", "val acc", "test acc", "val/test images", "train time",
           "images/s", "hardware")
# Run folders inside a cross-validation, repeat or tuning folder are shown through that folder's row.
MEMBER_PREFIXES = ("fold-", "seed-", "trial-")


def find_runs(folders: list[Path]) -> dict[Path, str]:
    """Every folder holding a results.json (except the folds, seeds and trials of an aggregated folder) -> its name.

    The name is the path below the folder searched, so that two runs of one model (both `cifar-cnn`) differ.
    """
    found = {}
    for folder in folders:
        for results in [folder / "results.json", *folder.rglob("results.json")]:
            run = results.parent
            member = run.name.startswith(MEMBER_PREFIXES) and (run.parent / "results.json").is_file()
            if results.is_file() and not member:
                found.setdefault(run, run.name if run == folder else str(run.relative_to(folder)))
    return dict(sorted(found.items()))


def evaluation_sizes(results: dict) -> str:
    """Images behind the validation and test accuracies: scores on 200 and on 5,000 images are not alike."""
    hp = results.get("hyperparameters", {})
    sizes = [hp.get("validation_size"), hp.get("test_size")]
    return " / ".join("-" if not size else f"{size:,}" for size in sizes)


def percent(value, spread=None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" + (f" ± {100 * spread:.2f}" if spread is not None else "")


def data_description(results: dict) -> str:
    """The dataset, its number of classes and image size; older runs recorded only the dataset."""
    dataset = str(results.get("dataset") or results.get("hyperparameters", {}).get("dataset", "-"))
    if results.get("num_classes") is None:
        return dataset
    return f"{dataset} ({results['num_classes']} classes, {results['image_size']}px)"


def study_row(folder: Path, name: str, study: dict) -> tuple[float, list[str]]:
    counted = [t for t in study["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
    name = f"{name} ({len(counted)} trials, best #{study['best_trial']})"
    if study["best_folder"] is None:
        return None, [name, study.get("model") or "-", "-", "tuned", *["-"] * 7]
    best = read_json(folder / study["best_folder"] / "results.json", RECOVERY)
    runtime = sum(t["wall_s"] or 0 for t in study["trials"])  # the study's cost: every trial's wall time
    test = best.get("test_accuracy")
    return (test if test is not None else best["val_accuracy"]), [
        name, best["model"], data_description(best), "tuned", str(best["epochs"]), percent(best["val_accuracy"]),
        percent(test), evaluation_sizes(best), f"{runtime:.1f} s", f"{best['train_samples_per_second']:,.0f}",
        best.get("hardware", "-")]


def row(folder: Path, name: str) -> tuple[float, list[str]]:
    results = read_json(folder / "results.json", RECOVERY)
    hp = results.get("hyperparameters", {})
    if results.get("tune"):
        return study_row(folder, name, results)
    if results.get("cross_validation") or "per_seed" in results:
        members = [f"fold-{f['fold']}" for f in results["per_fold"]] if "per_fold" in results else [
            s["folder"] for s in results["per_seed"]]
        folds = [read_json(folder / member / "results.json", RECOVERY) for member in members]
        val, test = results["val_accuracy_mean"], results["test_accuracy_mean"]
        cells = [percent(val, results["val_accuracy_std"]), percent(test, results["test_accuracy_std"])]
        runtime = sum(f["train_runtime_s"] for f in folds)
        speed = sum(f["train_samples_per_second"] for f in folds) / len(folds)
        epochs, hardware = folds[0]["epochs"], folds[0].get("hardware", "-")
        name = (f"{name} ({results['folds']}-fold CV)" if "folds" in results
                else f"{name} ({results['repeat']} seeds)")
        sizes, described = evaluation_sizes(folds[0]), folds[0]
    else:
        val, test = results["val_accuracy"], results.get("test_accuracy")
        cells = [percent(val), percent(test)]
        runtime, speed = results["train_runtime_s"], results["train_samples_per_second"]
        epochs, hardware, sizes = results["epochs"], results.get("hardware", "-"), evaluation_sizes(results)
        described = results
    key = test if test is not None else val
    recipe = str(hp.get("recipe", results.get("recipe", "default")))
    return key, [name, results["model"], data_description(described), recipe,
                 str(epochs), *cells, sizes, f"{runtime:.1f} s", f"{speed:,.0f}", hardware]


def report(folders: list[Path]) -> str:
    rows = sorted((row(f, name) for f, name in find_runs(folders).items()), key=lambda r: -(r[0] or 0))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = CommandParser(prog="cifar-hf report", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    if not find_runs(args.folders):
        print(f"error: no run folder (with results.json) under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 1
    try:
        table = report(args.folders)
        print(table)
        if args.output:
            write_text(args.output, table + "\n")
    except CifarError as error:
        return print_error(error)
    return 0
