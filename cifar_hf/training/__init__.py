"""Training: recipes, command-line arguments, the Trainer subclass, callbacks and the run itself."""
