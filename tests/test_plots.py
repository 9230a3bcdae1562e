"""Figures: each function returns a matplotlib Figure without touching pyplot or the
backend, saves a real PNG when given a path, and is laid out to be read."""

from __future__ import annotations

import subprocess
import textwrap

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import rawtf
from rawtf import plots
from tests.conftest import PYTHON, ROOT, python_env

HISTORY = {
    "epoch": [1, 2],
    "loss": [0.5, 0.3],
    "accuracy": [0.8, 0.9],
    "val_loss": [0.4, 0.35],
    "val_accuracy": [0.85, 0.88],
}


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def every_figure(x, y, tmp_path=None):
    """(name, call) for every plot function, saving under ``tmp_path`` when given."""
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=40)
    wrong = np.zeros((3, 40), dtype=bool)
    wrong[:, [3, 17]] = True

    def at(name):
        return None if tmp_path is None else tmp_path / name

    return [
        ("h.png", lambda: plots.plot_history(HISTORY, at("h.png"), title="a run")),
        (
            "g.png",
            lambda: plots.plot_images(x[:30], at("g.png"), y[:30], (y[:30] + 1) % 10, title="t"),
        ),
        ("d.png", lambda: plots.plot_label_distribution(y, at("d.png"))),
        ("c.png", lambda: plots.plot_confusion_matrix(np.eye(10, dtype=int) * 5 + 1, at("c.png"))),
        ("e.png", lambda: plots.plot_misclassified(x[:40], y[:40], probabilities, at("e.png"))),
        ("s.png", lambda: plots.plot_shared_mistakes(x[:40], y[:40], wrong, y[:40], at("s.png"))),
        (
            "p.png",
            lambda: plots.plot_predictions(
                x[:3] / 255, probabilities[:3], ["a.png"] * 3, at("p.png")
            ),
        ),
    ]


def test_every_function_returns_a_figure_and_saves_when_asked(tmp_path, small_mnist):
    (x, y), _ = small_mnist
    for name, draw in every_figure(x, y):
        assert isinstance(draw(), Figure), name
    assert list(tmp_path.iterdir()) == []  # no path, no file
    for name, draw in every_figure(x, y, tmp_path):
        assert isinstance(draw(), Figure)
        width, height = png_size(tmp_path / name)
        assert width >= 300 and height >= 100, (name, width, height)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.png",
        "d.png",
        "e.png",
        "g.png",
        "h.png",
        "p.png",
        "s.png",
    ]


def test_plotting_never_touches_pyplot_or_the_backend(tmp_path):
    """In a fresh interpreter with a backend chosen (as a notebook's inline one is), every
    plot function leaves the backend as it was and registers no figure with pyplot (which
    TensorFlow's own import loads)."""
    script = textwrap.dedent(
        f"""
        import matplotlib
        matplotlib.use("svg")
        from matplotlib import pyplot
        import numpy as np
        from tests.test_plots import every_figure
        from pathlib import Path
        x = np.random.default_rng(0).integers(0, 256, (60, 28, 28)).astype(np.uint8)
        y = np.arange(60) % 10
        for name, draw in every_figure(x, y) + every_figure(x, y, Path({str(tmp_path)!r})):
            draw()
            assert matplotlib.get_backend() == "svg", (name, matplotlib.get_backend())
            assert pyplot.get_fignums() == [], name
        print("ok")
        """
    )
    proc = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, env=python_env(), cwd=ROOT
    )
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr[-2000:]


def test_figures_show_themselves_in_notebooks(small_mnist):
    (x, y), _ = small_mnist
    png = plots.plot_images(x[:4], labels=y[:4])._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_history_of_one_epoch_has_a_readable_scale():
    history = rawtf.History()
    history.append({"epoch": 1, "loss": 0.65, "accuracy": 0.65, "seconds": 1.0})
    figure = plots.plot_history(history)
    loss, accuracy = figure.axes
    low, high = accuracy.get_ylim()
    assert high - low >= 0.1 and low <= 0.65 <= high <= 1.0  # not 0.646-0.654
    assert list(accuracy.get_xticks()) == [1]  # epochs as integers
    assert loss.get_ylim()[1] - loss.get_ylim()[0] >= 0.3


def test_history_with_steps_draws_the_curve_and_the_schedule():
    history = rawtf.History()
    for step in range(1, 61):
        history.steps.append(
            {
                "step": step,
                "epoch": step / 30,
                "loss": 1 / step,
                "accuracy": 1 - 1 / step,
                "learning_rate": 0.01 * step / 60,
            }  # fmt: skip
        )
    for epoch in (1, 2):
        history.append({"epoch": epoch, "loss": 0.1 / epoch, "accuracy": 0.9, "seconds": 1.0})
    figure = plots.plot_history(history, title="two epochs")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["loss", "accuracy", "learning rate"]
    assert figure.get_suptitle() == "two epochs"
    curve = figure.axes[2].lines[0]
    np.testing.assert_allclose(curve.get_ydata(), [0.01 * s / 60 for s in range(1, 61)])
    assert [line.get_label() for line in figure.axes[0].lines] == ["train (steps)", "train (epoch)"]
    assert list(figure.axes[0].get_xticks()) == [0, 1, 2]


def test_predictions_are_large_and_captioned(tmp_path, small_mnist):
    (x, _), _ = small_mnist
    probabilities = np.full((2, 10), 0.01)
    probabilities[0, 7], probabilities[1, 2] = 0.91, 0.91
    figure = plots.plot_predictions(
        x[:2] / 255, probabilities, ["photos/my_seven.png", "two.jpg"], tmp_path / "p.png"
    )
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["my_seven.png\n7  (91%)", "two.jpg\n2  (91%)"]
    width, height = png_size(tmp_path / "p.png")
    assert width >= 2 * 200 and height >= 300  # each picture about 240 pixels wide


def test_most_confident_errors_order():
    labels = np.array([0, 1, 2, 3])
    probabilities = np.array(
        [[0.9, 0.1, 0, 0], [0.7, 0.3, 0, 0], [0, 0.95, 0.05, 0], [0, 0, 0, 1.0]]
    )
    np.testing.assert_array_equal(plots.most_confident_errors(labels, probabilities), [2, 1])


def test_shared_mistakes_show_only_the_images_every_member_gets_wrong(small_mnist):
    (x, y), _ = small_mnist
    wrong = np.zeros((2, 12), dtype=bool)
    wrong[0, [1, 4, 7]] = True
    wrong[1, [4, 7, 9]] = True  # shared: 4 and 7
    answers = (y[:12] + 1) % 10
    figure = plots.plot_shared_mistakes(x[:12], y[:12], wrong, answers)
    captions = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert captions == [f"{y[i]}→{answers[i]}" for i in (4, 7)]
    assert figure.get_suptitle() == "wrong in all 2 members: 2 images (true→ensemble)"
    wrong[1, 4] = wrong[1, 7] = False
    figure = plots.plot_shared_mistakes(x[:12], y[:12], wrong, answers)
    assert [t.get_text() for t in figure.axes[0].texts] == ["no image is wrong in all 2 members"]


def test_reprs_for_people():
    model = rawtf.get_model("three_conv")
    assert repr(model) == (
        "<rawtf model 'three_conv': 81,066 parameters (81,066 trainable), input 28x28x1, "
        "10 classes>"
    )
    table = model._repr_html_()
    assert table.count("<tr>") == 1 + 10 and "conv1 (Conv2D)" in table
    history = rawtf.History()
    assert repr(history) == "History(no epochs)"
    history.append({"epoch": 1, "loss": 0.25, "accuracy": 0.9, "seconds": 2.5})
    assert repr(history) == "History(1 epoch(s); last: loss=0.2500  accuracy=0.9000)"
    html = history._repr_html_()
    assert "<th>loss</th>" in html and "<td>0.2500</td>" in html and "<td>1</td>" in html


@pytest.mark.parametrize("notebook", [True, False])
def test_progress_bar_class(monkeypatch, notebook):
    """tqdm's widget where Jupyter has ipywidgets, its text bar elsewhere."""
    import sys
    import types

    from tqdm import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    from rawtf import callbacks

    monkeypatch.setattr(callbacks, "in_notebook", lambda: notebook)
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    assert callbacks._bar_class() is (notebook_tqdm if notebook else tqdm)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed: the text fallback
    assert callbacks._bar_class() is tqdm
