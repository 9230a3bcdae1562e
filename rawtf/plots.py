"""Figures written to PNG files with matplotlib's Agg backend (no screen needed): training
history, image grids with labels and predictions, label distribution, confusion matrix, and
the most confidently misclassified images. Needs matplotlib (the ``plots`` extra).
Files are written atomically (:mod:`rawtf._io`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rawtf._io import atomic_path
from rawtf.errors import ConfigError, DataError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'rawtf[plots]'") from None
    return plt


def _save(figure, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def _images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or len(images) == 0:
        raise DataError(f"expected a non-empty batch of 2-D images, got shape {images.shape}")
    return images


def plot_history(history: Mapping[str, Sequence[float]] | object, path) -> Path:
    """Loss and accuracy per epoch, training and (when present) validation."""
    plt = _pyplot()
    h = getattr(history, "history", history)
    if not h or "loss" not in h:
        raise DataError("history has no 'loss' to plot")
    epochs = list(h.get("epoch") or range(1, len(h["loss"]) + 1))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in h:
                ax.plot(epochs, h[key], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(figure, path)


def plot_image_grid(
    images, path, labels=None, predictions=None, columns: int = 10, title: str | None = None
) -> Path:
    """A grid of images captioned with their labels; with ``predictions`` each caption
    shows ``label→prediction`` and wrong predictions are marked in red."""
    plt = _pyplot()
    images = _images(images)
    n = len(images)
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray")
        caption, color = "", "black"
        if labels is not None:
            caption = str(int(labels[i]))
        if predictions is not None:
            wrong = labels is not None and int(predictions[i]) != int(labels[i])
            caption = (
                f"{caption}→{int(predictions[i])}"
                if labels is not None
                else str(int(predictions[i]))
            )
            color = "red" if wrong else "green"
        if caption:
            ax.set_title(caption, fontsize=9, color=color)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_label_distribution(labels, path, num_classes: int = 10) -> Path:
    """A bar chart of how many examples each class has."""
    plt = _pyplot()
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    figure, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(counts)), counts, color="steelblue")
    for x, c in enumerate(counts):
        ax.text(x, c, str(c), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(counts)))
    ax.set_xlabel("label")
    ax.set_ylabel("count")
    ax.set_title(f"label distribution ({counts.sum()} examples)")
    return _save(figure, path)


def plot_confusion_matrix(matrix, path) -> Path:
    """The confusion matrix (rows: true label, columns: prediction) with counts."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    figure, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    k = len(matrix)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
            )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.4f})")
    return _save(figure, path)


def most_confident_errors(labels, probabilities, count: int = 20) -> np.ndarray:
    """Indices of the misclassified examples, the most confident first."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def plot_most_confident_errors(images, labels, probabilities, path, count: int = 20) -> Path:
    """The misclassified images the model was surest about, captioned
    ``label→prediction (confidence)``."""
    plt = _pyplot()
    images = _images(images)
    index = most_confident_errors(labels, probabilities, count)
    if len(index) == 0:
        figure, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return _save(figure, path)
    columns = min(10, len(index))
    rows = math.ceil(len(index) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.4), squeeze=False)
    predictions = np.asarray(probabilities).argmax(axis=1)
    for ax, i in zip(axes.flat, list(index) + [None] * (rows * columns - len(index)), strict=True):
        ax.axis("off")
        if i is None:
            continue
        ax.imshow(images[i], cmap="gray")
        confidence = probabilities[i][predictions[i]]
        ax.set_title(
            f"{int(labels[i])}→{predictions[i]} ({confidence:.2f})", fontsize=8, color="red"
        )
    figure.suptitle("most confident mistakes (true→predicted)")
    return _save(figure, path)
