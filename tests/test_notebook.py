"""The walkthrough notebook: it runs end to end on tiny synthetic data (no network), writes only into its working
folder, and ships with the outputs of a real run."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "cifar_hf.ipynb"


def outputs(notebook) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def stream_text(notebook) -> str:
    return "".join(o.get("text", "") for o in outputs(notebook) if o.output_type == "stream")


def test_notebook_executes_without_errors_inside_its_working_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_HF_NOTEBOOK_TINY", "1")
    for name in ("CIFAR_HF_DATASET", "CIFAR_HF_MODEL", "CIFAR_HF_EPOCHS", "CIFAR_HF_WORK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources).execute()
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    text = stream_text(notebook)
    assert "validation accuracy" in text and "predicted" in text
    assert "training cnn for 3 of the recipe's 20 epochs" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs(notebook)) == 2  # curves and confusion matrix shown
    # everything it wrote is in the documented folder beside the notebook: nothing left in /tmp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebook-runs"]
    assert (tmp_path / "notebook-runs" / "cifar-cnn" / "results.json").is_file()


def test_the_committed_notebook_shows_a_real_runs_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))  # every cell, once, in order
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    text = stream_text(notebook)
    assert "training cnn for 2 of the recipe's 20 epochs" in text  # the short run the first cell states
    assert "45000 5000 None" in text  # the full local CIFAR-10 copy, not the tiny synthetic set
    assert "validation accuracy" in text and "predicted" in text
