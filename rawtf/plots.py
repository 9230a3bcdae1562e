"""Figures for people to read: training history, digits with their labels and the model's
answers, label counts, the confusion matrix and the most confident mistakes.

Every function returns a :class:`matplotlib.figure.Figure`, built directly (never through
``pyplot``), so a notebook shows it inline and nothing in the user's matplotlib state or
backend changes; given a ``path`` it is also saved there as a PNG, atomically
(:mod:`rawtf._io`). Needs matplotlib (the ``plots`` extra).
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rawtf._io import atomic_path
from rawtf.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PathLike = str | os.PathLike | None
#: Resolution of saved figures: sizes below are in inches, so 1 inch is 100 pixels.
DPI = 100


@functools.cache
def _figure_class() -> type:
    """A matplotlib ``Figure`` that also renders itself as a PNG for notebooks, so that it
    shows inline even where no ``%matplotlib`` backend was chosen."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'rawtf[plots]'") from None

    class RawtfFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=DPI)
            return buffer.getvalue()

    return RawtfFigure


def _figure(width: float, height: float) -> Figure:
    return _figure_class()(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` to ``path`` as a PNG (folders made, written atomically)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{path.parent}: cannot create folder ({e.strerror or e})") from None
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


def _finish(figure: Figure, path: PathLike) -> Figure:
    if path is not None:
        save_figure(figure, path)
    return figure


def _images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or len(images) == 0:
        raise DataError(f"expected a non-empty batch of 2-D images, got shape {images.shape}")
    return images


def _note(text: str) -> Figure:
    """A small figure holding only ``text`` (for a plot with nothing to show)."""
    figure = _figure(4, 1)
    ax = figure.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return figure


def _grid(figure: Figure, count: int, columns: int):
    """``count`` image axes in rows of ``columns``, ticks and frames off."""
    rows = math.ceil(count / columns)
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for ax in axes:
        ax.axis("off")
    return axes[:count]


# ------------------------------------------------------------------------------ history


def _limits(values: Sequence[float], floor: float | None, ceiling: float | None, span: float):
    """y-limits around ``values`` with a margin, at least ``span`` wide, kept within
    ``floor`` and ``ceiling``: a single point is not stretched over a thousandth."""
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    margin = max((high - low) * 0.08, (span - (high - low)) / 2, 0.0)
    low, high = low - margin, high + margin
    if floor is not None and low < floor:
        low, high = floor, max(high, floor + span)
    if ceiling is not None and high > ceiling:
        low, high = min(low, ceiling - span), ceiling
    return low, high


def plot_history(
    history: Mapping[str, Sequence[float]] | Any, path: PathLike = None, title: str | None = None
) -> Figure:
    """Loss and accuracy of each epoch, training and (when present) validation. A
    :class:`rawtf.History` from :func:`rawtf.fit` also has each compiled call's running
    values: with few epochs they are drawn as a per-step curve, and a third panel shows
    the learning-rate schedule."""
    from matplotlib.ticker import MaxNLocator

    table = getattr(history, "history", history)
    steps = list(getattr(history, "steps", []) or [])
    if not table or "loss" not in table:
        raise DataError("history has no 'loss' to plot")
    epochs = list(table.get("epoch") or range(1, len(table["loss"]) + 1))
    panels = ("loss", "accuracy") + (("learning_rate",) if steps else ())
    figure = _figure(4.6 * len(panels), 3.8)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    curve = len(steps) >= 3 * len(epochs) and len(epochs) <= 10  # a few epochs, many calls
    for ax, metric in zip(axes, panels, strict=True):
        shown: list[float] = []
        if metric == "learning_rate" or curve:
            values = [row[metric] for row in steps]
            ax.plot([row["epoch"] for row in steps], values, lw=1, alpha=0.6, label="train (steps)")
            shown += values
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if metric != "learning_rate" and key in table:
                ax.plot(epochs, table[key], marker="o", label=f"{label} (epoch)")
                shown += list(table[key])
        if metric == "learning_rate":
            ax.set_ylim(0, max(shown) * 1.15 or 1.0)
        elif metric == "accuracy":
            ax.set_ylim(*_limits(shown, 0.0, 1.0, 0.1))
        else:
            ax.set_ylim(*_limits(shown, 0.0, None, max(0.05, 0.5 * float(np.nanmax(shown)))))
        ax.set_xlim(0 if curve else min(epochs) - 0.5, max(epochs) + (0.1 if curve else 0.5))
        if len(epochs) <= 12:
            ax.set_xticks(range(0 if curve else min(epochs), max(epochs) + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        if metric != "learning_rate":
            ax.legend()
    if title:
        figure.suptitle(title)
    return _finish(figure, path)


# ------------------------------------------------------------------------------- images


def plot_images(
    images,
    path: PathLike = None,
    labels=None,
    predictions=None,
    columns: int = 10,
    title: str | None = None,
) -> Figure:
    """A grid of images captioned with their labels; with ``predictions`` each caption
    shows ``label→prediction`` and wrong predictions are marked in red."""
    images = _images(images)
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    width = max(columns * 1.1, 0.1 * len(title or ""))  # room for the title over few images
    figure = _figure(width, rows * 1.25 + (0.4 if title else 0))
    for i, ax in enumerate(_grid(figure, len(images), columns)):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=float(max(images.max(), 1)))
        caption, color = "", "black"
        if labels is not None:
            caption = str(int(labels[i]))
        if predictions is not None:
            wrong = labels is not None and int(predictions[i]) != int(labels[i])
            caption = f"{caption}→{int(predictions[i])}" if caption else str(int(predictions[i]))
            color = "red" if wrong else "green"
        if caption:
            ax.set_title(caption, fontsize=9, color=color)
    if title:
        figure.suptitle(title)
    return _finish(figure, path)


def plot_predictions(
    images, probabilities, names: Sequence[str], path: PathLike = None, columns: int = 5
) -> Figure:
    """Pictures as the model sees them (28x28, large), each captioned with its file name,
    the digit read and the model's confidence, with the ten probabilities beneath."""
    images, probabilities = _images(images), np.asarray(probabilities)
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    figure = _figure(columns * 2.4, rows * 3.4)
    grid = figure.add_gridspec(rows * 2, columns, height_ratios=[4, 1] * rows)
    for i in range(len(images)):
        row, column = divmod(i, columns)
        digit = int(probabilities[i].argmax())
        picture = figure.add_subplot(grid[2 * row, column])
        picture.imshow(images[i], cmap="gray", vmin=0, vmax=1)
        picture.axis("off")
        name = Path(str(names[i])).name
        name = name if len(name) <= 22 else name[:19] + "..."
        picture.set_title(f"{name}\n{digit}  ({probabilities[i][digit]:.0%})", fontsize=10)
        bars = figure.add_subplot(grid[2 * row + 1, column])
        colors = ["tab:blue" if k == digit else "lightgray" for k in range(len(probabilities[i]))]
        bars.bar(range(len(probabilities[i])), probabilities[i], color=colors)
        bars.set_ylim(0, 1)
        bars.set_xticks(range(len(probabilities[i])))
        bars.tick_params(labelsize=7, left=False, labelleft=False)
    return _finish(figure, path)


def plot_label_distribution(labels, path: PathLike = None, num_classes: int = 10) -> Figure:
    """A bar chart of how many examples each class has."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    figure = _figure(7, 4)
    ax = figure.subplots()
    ax.bar(range(len(counts)), counts, color="steelblue")
    for x, c in enumerate(counts):
        ax.text(x, c, str(c), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(counts)))
    ax.set_xlabel("label")
    ax.set_ylabel("count")
    ax.set_title(f"label distribution ({counts.sum()} examples)")
    return _finish(figure, path)


def plot_confusion_matrix(matrix, path: PathLike = None, title: str | None = None) -> Figure:
    """The confusion matrix (rows: true label, columns: prediction) with counts, coloured
    on a log scale so that a handful of mistakes stands out beside a thousand hits."""
    from matplotlib.colors import LogNorm

    matrix = np.asarray(matrix)
    figure = _figure(7, 6)
    ax = figure.subplots()
    shown = np.ma.masked_less_equal(matrix, 0)
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(int(matrix.max()), 2)))
    figure.colorbar(image, ax=ax, label="count (log scale)")
    k = len(matrix)
    dark = np.sqrt(max(matrix.max(), 1)) * 4  # counts drawn dark enough for white text
    for i in range(k):
        for j in range(k):
            count = int(matrix[i, j])
            color = "lightgray" if count == 0 else "white" if count > dark else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    errors = int(matrix.sum() - np.trace(matrix))
    ax.set_title(title or f"confusion matrix: accuracy {accuracy:.4f}, {errors} mistakes")
    return _finish(figure, path)


def most_confident_errors(labels, probabilities, count: int = 20) -> np.ndarray:
    """Indices of the misclassified examples, the most confident first."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def plot_misclassified(
    images, labels, probabilities, path: PathLike = None, count: int = 20
) -> Figure:
    """The misclassified images the model was surest about, captioned
    ``true→predicted (confidence)``."""
    images = _images(images)
    index = most_confident_errors(labels, probabilities, count)
    if len(index) == 0:
        return _finish(_note("no misclassified images"), path)
    columns = min(10, len(index))
    rows = math.ceil(len(index) / columns)
    figure = _figure(columns * 1.25, rows * 1.45 + 0.4)
    predictions = np.asarray(probabilities).argmax(axis=1)
    for ax, i in zip(_grid(figure, len(index), columns), index, strict=True):
        ax.imshow(images[i], cmap="gray")
        confidence = probabilities[i][predictions[i]]
        ax.set_title(
            f"{int(labels[i])}→{predictions[i]} ({confidence:.2f})", fontsize=8, color="red"
        )
    figure.suptitle(f"the {len(index)} most confident mistakes (true→predicted, confidence)")
    return _finish(figure, path)


def plot_shared_mistakes(
    images, labels, wrong, ensemble_predictions, path: PathLike = None
) -> Figure:
    """The images every member of an ensemble misclassifies (``wrong``: members x images,
    true where a member is wrong), captioned ``true→the ensemble's answer``: errors that
    averaging such members repairs only when they disagree on the wrong answer."""
    images, wrong = _images(images), np.asarray(wrong, dtype=bool)
    index = np.flatnonzero(wrong.all(axis=0))
    members = len(wrong)
    if len(index) == 0:
        return _finish(_note(f"no image is wrong in all {members} members"), path)
    title = f"wrong in all {members} members: {len(index)} images (true→ensemble)"
    labels, predictions = np.asarray(labels)[index], np.asarray(ensemble_predictions)[index]
    return plot_images(images[index], path, labels=labels, predictions=predictions, title=title)
