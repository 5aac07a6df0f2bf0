"""Command-line entry points of `cifar-hf` (see `cifar_hf.__main__.COMMANDS`): `train` (run_classification.py),
`evaluate`, `predict`, `report`, `tune`, `demo` and `export`, each a module with `main(argv) -> exit status`."""
