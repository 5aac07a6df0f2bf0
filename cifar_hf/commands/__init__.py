"""Command-line entry points: `train` (run_classification.py), `evaluate`, `predict`."""
