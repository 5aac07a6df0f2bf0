"""The split defaults, in a module with no imports, so that command-line help can show them at once."""

DEFAULT_DATASET = "uoft-cs/cifar10"
DEFAULT_SEED = 2023  # of the validation split (and, in training, of everything else)
DEFAULT_VAL_SIZE = 5000
