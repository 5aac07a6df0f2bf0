"""`python -m cifar_hf COMMAND ...` (also installed as `cifar-hf`)."""

import os
import sys

from .errors import INTERRUPTED

COMMANDS = {
    "train": ("cifar_hf.commands.train", "train a model (the same flags as run_classification.py)"),
    "evaluate": ("cifar_hf.commands.evaluate", "accuracy, per-class accuracy and confusion matrix of a trained model"),
    "predict": ("cifar_hf.commands.predict", "classify image files with a trained model"),
    "report": ("cifar_hf.commands.report", "one Markdown table comparing run folders"),
    "tune": ("cifar_hf.commands.tune", "a hyperparameter study (Optuna) whose trials are run folders"),
    "demo": ("cifar_hf.commands.demo", "a local demo page (Gradio) for a trained model, or a Hugging Face Space"),
    "export": ("cifar_hf.commands.export", "export a trained model to ONNX, checked against PyTorch"),
}
BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output closed early (`cifar-hf --help | head`)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(["usage: cifar-hf COMMAND [--help] ...", "", "commands:", *lines, "",
                      "`cifar-hf COMMAND --help` lists the command's flags."])


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return run(sys.argv[1:] if argv is None else argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback in the interpreter's exit
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's own flush must not fail again
        return BROKEN_PIPE


def run(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        if argv:
            print(f"cifar-hf: unknown command {argv[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    import importlib

    try:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    except KeyboardInterrupt:  # Ctrl-C while a command loads or runs: one line, the shell's status
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
