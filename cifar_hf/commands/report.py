"""`cifar-hf report FOLDER [...] [--output FILE]`: one Markdown table comparing every run folder found.

Rows are sorted by test accuracy (validation accuracy where there is no test split), best first;
cross-validation folders are shown as mean +- standard deviation over their folds.
"""

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("run", "model", "data", "recipe", "epochs", "val acc", "test acc", "train time", "images/s", "hardware")


def find_runs(folders: list[Path]) -> list[Path]:
    """Every folder holding a results.json, except the folds inside a cross-validation folder."""
    found = set()
    for folder in folders:
        for results in [folder / "results.json", *folder.rglob("results.json")]:
            if results.is_file() and not (results.parent.name.startswith("fold-")
                                          and (results.parent.parent / "results.json").is_file()):
                found.add(results.parent)
    return sorted(found)


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


def row(folder: Path) -> tuple[float, list[str]]:
    results = json.loads((folder / "results.json").read_text())
    hp = results.get("hyperparameters", {})
    if results.get("cross_validation"):
        folds = [json.loads((folder / f"fold-{f['fold']}" / "results.json").read_text()) for f in results["per_fold"]]
        val, test = results["val_accuracy_mean"], results["test_accuracy_mean"]
        cells = [percent(val, results["val_accuracy_std"]), percent(test, results["test_accuracy_std"])]
        runtime = sum(f["train_runtime_s"] for f in folds)
        speed = sum(f["train_samples_per_second"] for f in folds) / len(folds)
        epochs, hardware = folds[0]["epochs"], folds[0].get("hardware", "-")
        name = f"{folder.name} ({results['folds']}-fold CV)"
    else:
        val, test = results["val_accuracy"], results.get("test_accuracy")
        cells = [percent(val), percent(test)]
        runtime, speed = results["train_runtime_s"], results["train_samples_per_second"]
        epochs, hardware, name = results["epochs"], results.get("hardware", "-"), folder.name
    key = test if test is not None else val
    recipe = str(hp.get("recipe", results.get("recipe", "default")))
    return key, [name, results["model"], data_description(results), recipe, str(epochs), *cells,
                 f"{runtime:.1f} s", f"{speed:,.0f}", hardware]


def report(folders: list[Path]) -> str:
    rows = sorted((row(f) for f in find_runs(folders)), key=lambda r: -(r[0] or 0))
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
