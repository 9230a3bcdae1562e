"""examples/quickstart.ipynb, executed in a real Jupyter kernel on a subset of MNIST: it runs
without error, shows a progress bar, tables and inline figures, and prints the accuracy.
The suite has no ipywidgets, so the bar is tqdm's text fallback."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT, python_env


@pytest.fixture(scope="module")
def executed(tmp_path_factory, monkeypatch_module):
    for name, value in python_env().items():
        monkeypatch_module.setenv(name, value)
    monkeypatch_module.setenv("QUICKSTART_TRAIN_IMAGES", "3000")
    monkeypatch_module.setenv("QUICKSTART_EPOCHS", "1")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    folder = tmp_path_factory.mktemp("notebook")
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    client.execute()
    return notebook


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from ((cell.source, out) for out in cell.get("outputs", []))


def test_runs_and_shows_figures_and_tables(executed):
    kinds = [out["output_type"] for _, out in outputs(executed)]
    assert "error" not in kinds
    pictures = [out for _, out in outputs(executed) if "image/png" in out.get("data", {})]
    assert len(pictures) >= 5  # digits, history, confusion matrix, mistakes, own digit
    tables = [out for _, out in outputs(executed) if "text/html" in out.get("data", {})]
    assert any("Layer (type)" in out["data"]["text/html"] for out in tables)  # the model
    assert any("<th>val_accuracy</th>" in out["data"]["text/html"] for out in tables)


def test_prints_accuracy_and_reads_the_drawn_digit(executed):
    text = "".join(out.get("text", "") for _, out in outputs(executed))
    assert "test accuracy: 0." in text
    assert "the model reads " in text
    assert "epoch 1/1  loss=" in text  # the line each epoch leaves


def test_shows_a_progress_bar_with_running_values(executed):
    bars = "".join(
        out["text"] for source, out in outputs(executed)
        if out.get("name") == "stderr" and "rawtf.fit(" in source
    )  # fmt: skip
    assert "epoch 1/1" in bars and "step/s" in bars and "\r" in bars
    assert "accuracy=" in bars and "loss=" in bars
