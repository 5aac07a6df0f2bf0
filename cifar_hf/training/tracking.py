"""Weights & Biases: a run opened in the run folder with the hyperparameters, closed with the results."""

import os


def start_wandb_run(output_dir, run_name: str, hyperparameters: dict) -> None:
    """Open this run's wandb run before the Trainer's WandbCallback does, which then reuses it.

    Opening it here puts its files in the run folder (wandb caches its settings per process, so WANDB_DIR alone
    would send every fold of a cross-validation to the first fold's folder), puts the project's hyperparameters in
    its config, and joins the group named by WANDB_RUN_GROUP (cross-validation). Project: WANDB_PROJECT, else 'cifar'.
    """
    import wandb

    wandb.init(
        project=os.environ.get("WANDB_PROJECT", "cifar"),
        name=run_name,
        group=os.environ.get("WANDB_RUN_GROUP"),
        dir=os.environ.get("WANDB_DIR") or str(output_dir),
        config={"cifar_hf": hyperparameters},
        reinit="finish_previous",
    )


def finish_wandb_run(results: dict, run_folder, shown_output, class_names: list[str]) -> None:
    """Final numbers into the run summary, the run folder's figures and a wandb confusion matrix, then close it."""
    import numpy as np
    import wandb

    if wandb.run is None:
        return
    wandb.run.summary.update({k: v for k, v in results.items() if isinstance(v, (int, float)) and v is not None})
    wandb.log({
        "training_curves": wandb.Image(str(run_folder / "training_curves.png")),
        "confusion_matrix_figure": wandb.Image(str(run_folder / "confusion_matrix.png")),
        "confusion_matrix": wandb.plot.confusion_matrix(
            y_true=np.asarray(shown_output.label_ids).tolist(),
            preds=np.asarray(shown_output.predictions).argmax(-1).tolist(),
            class_names=class_names,
        ),
    })
    wandb.finish()
