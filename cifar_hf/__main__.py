"""`python -m cifar_hf COMMAND ...` (also installed as `cifar-hf`)."""

import sys

COMMANDS = {
    "train": "cifar_hf.commands.train",
    "evaluate": "cifar_hf.commands.evaluate",
    "predict": "cifar_hf.commands.predict",
    "report": "cifar_hf.commands.report",
    "tune": "cifar_hf.commands.tune",
    "demo": "cifar_hf.commands.demo",
    "export": "cifar_hf.commands.export",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: cifar-hf {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
