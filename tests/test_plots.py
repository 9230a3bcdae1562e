"""Figures: each function writes a real PNG (checked by its signature and size)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rawtf import plots


def is_png(path, min_size=(100, 50)):
    with Image.open(path) as image:
        return (
            image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        )


def test_every_figure_is_written(tmp_path, small_mnist):
    (x, y), _ = small_mnist
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=40)
    history = {
        "epoch": [1, 2],
        "loss": [0.5, 0.3],
        "accuracy": [0.8, 0.9],
        "val_loss": [0.4, 0.35],
        "val_accuracy": [0.85, 0.88],
    }
    paths = [
        plots.plot_history(history, tmp_path / "h.png"),
        plots.plot_image_grid(
            x[:30], tmp_path / "g.png", labels=y[:30], predictions=(y[:30] + 1) % 10
        ),
        plots.plot_label_distribution(y, tmp_path / "d.png"),
        plots.plot_confusion_matrix(np.eye(10, dtype=int) * 5 + 1, tmp_path / "c.png"),
        plots.plot_most_confident_errors(x[:40], y[:40], probabilities, tmp_path / "e.png"),
    ]
    for path in paths:
        assert is_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.png",
        "d.png",
        "e.png",
        "g.png",
        "h.png",
    ]


def test_most_confident_errors_order():
    labels = np.array([0, 1, 2, 3])
    probabilities = np.array(
        [[0.9, 0.1, 0, 0], [0.7, 0.3, 0, 0], [0, 0.95, 0.05, 0], [0, 0, 0, 1.0]]
    )
    np.testing.assert_array_equal(plots.most_confident_errors(labels, probabilities), [2, 1])
