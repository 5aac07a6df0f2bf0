"""`cifar-hf tune`: Optuna studies over the training recipe, one complete run folder per trial."""
