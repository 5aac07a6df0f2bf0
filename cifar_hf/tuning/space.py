"""Search spaces: which recipe fields a study samples, and from what range.

A space maps a `Recipe` field to a distribution; a YAML file (`--space`) replaces the built-in space of the model:

    learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    batch_size: {type: categorical, choices: [64, 128, 256]}
    epochs: {type: int, low: 3, high: 10}
"""

import dataclasses
from pathlib import Path

from ..errors import UsageError, first_line
from ..training.recipes import Recipe

# Numeric recipe fields a trial may set; the rest (optimizer, scheduler, ...) name choices, not values.
TUNABLE = tuple(f.name for f in dataclasses.fields(Recipe) if f.type in ("int", "float", int, float))

BUILT_IN = {
    "cnn": {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "weight_decay": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    },
    "resnet": {
        "learning_rate": {"type": "float", "low": 0.02, "high": 0.4, "log": True},
        "weight_decay": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [128, 256, 512]},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    },
    "vit": {
        "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-3, "log": True},
        "weight_decay": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        "batch_size": {"type": "categorical", "choices": [256, 512]},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    },
    # Fine-tuning converges in a few epochs, so how many is worth searching; the scratch models are given -e.
    "previt": {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        "epochs": {"type": "int", "low": 3, "high": 10},
    },
}

REQUIRED_KEYS = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}
OPTIONAL_KEYS = {"float": ("log", "step"), "int": ("log", "step"), "categorical": ()}


def check_space(space, source: str) -> dict:
    """The space itself, or a UsageError naming the first bad key."""
    if not isinstance(space, dict) or not space:
        raise UsageError(f"{source}: a search space is a non-empty mapping of recipe field -> distribution")
    for name, spec in space.items():
        where = f"{source}: key {name!r}"
        if name not in TUNABLE:
            raise UsageError(f"{where} is not a tunable recipe field (choose from {', '.join(TUNABLE)})")
        if not isinstance(spec, dict) or spec.get("type") not in REQUIRED_KEYS:
            raise UsageError(f"{where} needs a mapping with type: float, int or categorical")
        kind = spec["type"]
        missing = [k for k in REQUIRED_KEYS[kind] if k not in spec]
        unknown = sorted(set(spec) - {"type", *REQUIRED_KEYS[kind], *OPTIONAL_KEYS[kind]})
        if missing or unknown:
            raise UsageError(f"{where}: {kind} needs {', '.join(REQUIRED_KEYS[kind])}"
                             + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        if kind == "categorical":
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise UsageError(f"{where}: choices must be a non-empty list")
        elif not all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool) for k in ("low", "high")):
            raise UsageError(f"{where}: low and high must be numbers")
        elif not spec["low"] < spec["high"] or (spec.get("log") and spec["low"] <= 0):
            raise UsageError(f"{where}: needs low < high (and low > 0 with log: true)")
    return space


def load_space(path: str | None, model: str) -> dict:
    if path is None:
        return BUILT_IN[model]
    import yaml

    try:
        space = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"--space {path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise UsageError(f"--space {path}: not valid YAML ({first_line(error)})") from None
    return check_space(space, f"--space {path}")


def suggest(trial, space: dict) -> dict:
    """Sample every field of `space` for this Optuna trial (an enqueued trial gets its fixed values back)."""
    params = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1),
                                             log=spec.get("log", False))
        else:
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"),
                                               log=spec.get("log", False))
    return params
