"""`cifar-hf report FOLDER [...] [--output FILE]`: one Markdown table comparing every run folder found.

Rows are sorted by test accuracy (validation accuracy where there is no test split), best first;
cross-validation folders are shown as mean +- standard deviation over their folds.
"""

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("run", "model", "recipe", "epochs", "val acc", "test acc", "val/test images", "train time", "images/s",
           "hardware")


def find_runs(folders: list[Path]) -> dict[Path, str]:
    """Every folder holding a results.json (except the folds of a cross-validation) -> its name in the table.

    The name is the path below the folder searched, so that two runs of one model (both `cifar-cnn`) differ.
    """
    found = {}
    for folder in folders:
        for results in [folder / "results.json", *folder.rglob("results.json")]:
            run = results.parent
            if results.is_file() and not (run.name.startswith("fold-") and (run.parent / "results.json").is_file()):
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


def row(folder: Path, name: str) -> tuple[float, list[str]]:
    results = json.loads((folder / "results.json").read_text())
    hp = results.get("hyperparameters", {})
    if results.get("cross_validation"):
        folds = [json.loads((folder / f"fold-{f['fold']}" / "results.json").read_text()) for f in results["per_fold"]]
        val, test = results["val_accuracy_mean"], results["test_accuracy_mean"]
        cells = [percent(val, results["val_accuracy_std"]), percent(test, results["test_accuracy_std"])]
        runtime = sum(f["train_runtime_s"] for f in folds)
        speed = sum(f["train_samples_per_second"] for f in folds) / len(folds)
        epochs, hardware = folds[0]["epochs"], folds[0].get("hardware", "-")
        name = f"{name} ({results['folds']}-fold CV)"
        sizes = evaluation_sizes(folds[0])
    else:
        val, test = results["val_accuracy"], results.get("test_accuracy")
        cells = [percent(val), percent(test)]
        runtime, speed = results["train_runtime_s"], results["train_samples_per_second"]
        epochs, hardware, sizes = results["epochs"], results.get("hardware", "-"), evaluation_sizes(results)
    key = test if test is not None else val
    return key, [name, results["model"], str(hp.get("recipe", results.get("recipe", "default"))), str(epochs),
                 *cells, sizes, f"{runtime:.1f} s", f"{speed:,.0f}", hardware]


def report(folders: list[Path]) -> str:
    rows = sorted((row(f, name) for f, name in find_runs(folders).items()), key=lambda r: -(r[0] or 0))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cifar-hf report", description=__doc__.splitlines()[0])
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
    table = report(args.folders)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")
    return 0
