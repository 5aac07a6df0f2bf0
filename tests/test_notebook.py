"""The walkthrough notebook runs end to end on tiny synthetic data (no network)."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "cifar_hf.ipynb"


def test_notebook_executes_without_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_HF_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "validation accuracy" in text and "predicted" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # curves and confusion matrix shown
