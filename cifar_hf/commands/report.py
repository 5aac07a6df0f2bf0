"""`cifar-hf report FOLDER [...] [--output FILE [--overwrite]]`: one Markdown table comparing every run folder found.

Rows are sorted by test accuracy (validation accuracy where there is no test split), best first;
cross-validation and repeat folders are shown as mean +- standard deviation over their folds or seeds, a tuning
study as its best trial with the number of trials. A results.json that no cifar-hf run wrote (or that cannot be
read) is skipped with one warning line naming it.
"""

import sys
from collections import defaultdict
from pathlib import Path

from ..errors import CifarError, CommandParser, InputError, first_line, print_error
from ..files import read_json, write_text
from ..training.replaced_run import ASIDE

RECOVERY = "re-run the training with --overwrite, or move that run folder away"
COLUMNS = ("run", "model", "data", "recipe", "epochs", "val acc", "test acc", "val/test images", "train time",
           "images/s", "hardware")
# Run folders inside a cross-validation, repeat or tuning folder are shown through that folder's row.
MEMBER_PREFIXES = ("fold-", "seed-", "trial-")
RUN_KEYS = ("val_accuracy", "val_accuracy_mean", "tune")  # a run, a cross-validation or repeat folder, a study


def find_runs(folders: list[Path]) -> dict[Path, str]:
    """Every folder holding a results.json (except the folds, seeds and trials of an aggregated folder) -> its name.

    The name is the path below the folder searched, so that two runs of one model (both `cifar-cnn`) differ.
    """
    found, seen = {}, set()
    for folder in folders:
        for results in [folder / "results.json", *folder.rglob("results.json")]:
            run = results.parent
            if ASIDE in run.relative_to(folder).parts:
                continue  # the run an unfinished --overwrite keeps aside until the new one finishes
            member = run.name.startswith(MEMBER_PREFIXES) and (run.parent / "results.json").is_file()
            if results.is_file() and not member and run.resolve() not in seen:  # a run given twice is one row
                seen.add(run.resolve())
                found[run] = (run.name if run == folder else str(run.relative_to(folder))) or run.absolute().name
    return dict(sorted(distinct_names(found).items()))


def distinct_names(names: dict[Path, str]) -> dict[Path, str]:
    """Names that collide (`report runs ckruns` finds a `cifar-cnn` in each) grow by their parent folders, one at a
    time, until they differ: the shortest path that tells the runs apart."""
    names = dict(names)
    while True:
        runs_by_name = defaultdict(list)
        for run, name in names.items():
            runs_by_name[name].append(run)
        grown = False
        for runs in (runs for runs in runs_by_name.values() if len(runs) > 1):
            for run in runs:
                parts = run.absolute().parts[1:]  # without the root, which tells nothing apart
                depth = len(Path(names[run]).parts) + 1
                if depth <= len(parts):
                    names[run], grown = str(Path(*parts[-depth:])), True
        if not grown:
            return names


def evaluation_sizes(results: dict) -> str:
    """Images behind the validation and test accuracies: scores on 200 and on 5,000 images are not alike."""
    hp = results.get("hyperparameters", {})
    sizes = [hp.get("validation_size"), hp.get("test_size")]
    return " / ".join("-" if not size else f"{size:,}" for size in sizes)


def percent(value, spread=None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" + (f" ± {100 * spread:.2f}" if spread is not None else "")


def model_description(results: dict) -> str:
    """The model, with the LoRA rank when only an adapter was trained: a LoRA run is not a full fine-tune."""
    lora = results.get("lora") or {}
    rank = lora.get("r") if isinstance(lora, dict) else None
    if rank is None:
        rank = results.get("hyperparameters", {}).get("lora_r")  # cross-validation and repeat folders record the flag
    return str(results.get("model") or "-") + (f" (LoRA r={rank})" if rank is not None else "")


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
        name, model_description(best), data_description(best), "tuned", str(best["epochs"]),
        percent(best["val_accuracy"]), percent(test), evaluation_sizes(best), f"{runtime:.1f} s",
        f"{best['train_samples_per_second']:,.0f}", best.get("hardware", "-")]


def row(folder: Path, name: str, results: dict, notes: list[str]) -> tuple[float, list[str]]:
    hp = results.get("hyperparameters", {})
    if results.get("tune"):
        return study_row(folder, name, results)
    if results.get("cross_validation") or "per_seed" in results:
        members = [f"fold-{f['fold']}" for f in results["per_fold"]] if "per_fold" in results else [
            s["folder"] for s in results["per_seed"]]
        missing = [member for member in members if not (folder / member / "results.json").is_file()]
        if missing:  # the aggregate still stands; only the members' own runtimes are gone
            notes.append(f"{folder / missing[0]}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} "
                            f"has no results.json: its train time is left out of {name}'s row (train it again "
                            "with the job's command and --resume auto)")
        folds = [read_json(folder / m / "results.json", RECOVERY) for m in members if m not in missing]
        val, test = results["val_accuracy_mean"], results["test_accuracy_mean"]
        cells = [percent(val, results["val_accuracy_std"]), percent(test, results["test_accuracy_std"])]
        runtime = sum(f["train_runtime_s"] for f in folds) if folds else None
        images = sum(f["train_samples_per_second"] * f["train_runtime_s"] for f in folds)
        speed = images / runtime if runtime else None  # the whole job's: its images over its time
        described = folds[0] if folds else results
        epochs, hardware = described.get("epochs", hp.get("epoch") or "-"), described.get("hardware", "-")
        if "folds" in results:
            complete = len(results.get("folds_complete", members))
            partial = f", {complete} complete" if complete < results["folds"] else ""
            name = f"{name} ({results['folds']}-fold CV{partial})"
        else:
            name = f"{name} ({results['repeat']} seeds)"
        sizes = evaluation_sizes(described)
    else:
        val, test = results["val_accuracy"], results.get("test_accuracy")
        cells = [percent(val), percent(test)]
        runtime, speed = results["train_runtime_s"], results["train_samples_per_second"]
        epochs, hardware, sizes = results["epochs"], results.get("hardware", "-"), evaluation_sizes(results)
        described = results
    key = test if test is not None else val
    recipe = str(hp.get("recipe", results.get("recipe", "default")))
    return key, [name, model_description(results), data_description(described), recipe,
                 str(epochs), *cells, sizes, "-" if runtime is None else f"{runtime:.1f} s",
                 "-" if speed is None else f"{speed:,.0f}", hardware]


def readable_rows(runs: dict[Path, str]) -> tuple[list, list[str], list[str]]:
    """(rows, one warning per results.json skipped, notes on rows shown incomplete): one unreadable or foreign file
    does not hide the other runs."""
    rows, skipped, notes = [], [], []
    for folder, name in runs.items():
        path = folder / "results.json"
        try:
            results = read_json(path, RECOVERY)
            if not any(key in results for key in RUN_KEYS):
                raise InputError(f"{path} is not a cifar-hf run's results (no {' or '.join(RUN_KEYS)})")
            rows.append(row(folder, name, results, notes))
        except InputError as error:
            skipped.append(str(error))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as error:
            # a results.json of another shape (written by hand or another tool): what is missing, in one line
            skipped.append(f"{path} is not a cifar-hf run's results ({type(error).__name__}: {first_line(error)})")
    return sorted(rows, key=lambda r: -(r[0] or 0)), skipped, notes


def table(rows: list) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    return "\n".join(lines)


def unfinished_runs(folders: list[Path]) -> list[Path]:
    """Run folders with checkpoints but no results.json yet (training, or stopped), other than an aggregated
    folder's members (its row says how many are complete)."""
    unfinished = set()
    for folder in folders:
        for checkpoint in folder.rglob("checkpoint-*"):
            run = checkpoint.parent
            if (checkpoint.is_dir() and not (run / "results.json").is_file() and ASIDE not in run.parts
                    and not run.name.startswith(MEMBER_PREFIXES)):
                unfinished.add(run)
    return sorted(unfinished)


def report(folders: list[Path]) -> str:
    return table(readable_rows(find_runs(folders))[0])


def main(argv=None) -> int:
    parser = CommandParser(prog="cifar-hf report", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.output and args.output.is_file() and (args.output.parent / "results.json").is_file():
        print(f"error: --output {args.output} is a file of the run folder {args.output.parent}: give another file",
              file=sys.stderr)  # its results.json or card: --overwrite does not reach them
        return 2
    if args.output and args.output.exists() and not (args.output.is_file() and args.overwrite):
        what = "is a folder: give a file" if args.output.is_dir() else "exists: pass --overwrite to replace it"
        print(f"error: --output {args.output} {what}", file=sys.stderr)
        return 2
    files = [str(f) for f in args.folders if f.is_file()]
    if files:
        print(f"error: {', '.join(files)}: a file, not a folder: pass the folder that holds the runs",
              file=sys.stderr)
        return 1
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    runs = find_runs(args.folders)
    for run in unfinished_runs(args.folders):
        print(f"note: {run} has checkpoints but no results.json yet (still training, or stopped: --resume auto "
              "finishes it); not in the table", file=sys.stderr)
    if not runs:
        print(f"error: no run folder (with results.json) under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 1
    rows, skipped, notes = readable_rows(runs)
    for warning in skipped:
        print(f"warning: {warning}; skipped", file=sys.stderr)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if not rows:
        print(f"error: no cifar-hf run under {', '.join(map(str, args.folders))} ({len(skipped)} results.json "
              "skipped)", file=sys.stderr)
        return 1
    try:
        text = table(rows)
        print(text)
        if args.output:
            write_text(args.output, text + "\n")
    except CifarError as error:
        return print_error(error)
    return 0
