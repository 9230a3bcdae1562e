"""Loss, accuracy and predictions over a whole set, of a model or of an ensemble (a list
of models whose probabilities are averaged); the confusion matrix and per-class accuracy.

Sums are accumulated per example and divided once at the end, so a short last batch is
weighted exactly and the result does not depend on the batch size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rawtf import augment
from rawtf._tf import import_tensorflow
from rawtf.data import check_images, check_labels
from rawtf.errors import ConfigError, DataError, ShapeError, check_int
from rawtf.models import Model, compute_dtype
from rawtf.pipeline import eval_dataset
from rawtf.step import compiled, loss_and_hits

tf = import_tensorflow()


def _batch_sums(model, precision):
    """The compiled ``(images, labels) -> (loss sum, hits)`` of ``model`` in inference."""

    def make():
        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def sums(images, labels):
            logits = model(images, training=False, dropout=False, precision=precision)
            losses, hits = loss_and_hits(logits, labels)
            return tf.reduce_sum(losses), hits

        return sums

    compute_dtype(precision)  # an unknown precision fails here
    return compiled(model, ("sums", precision), make)


def _batch_probabilities(model, precision):
    """The compiled ``images -> softmax probabilities`` of ``model`` in inference."""

    def make():
        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def probabilities(images):
            return tf.nn.softmax(model(images, training=False, dropout=False, precision=precision))

        return probabilities

    compute_dtype(precision)
    return compiled(model, ("probabilities", precision), make)


def members_of(model) -> list:
    """The models of ``model`` (one model, or a list or tuple of them: an ensemble), checked
    to take the same input and answer the same classes."""
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    if not members:
        raise ConfigError("an ensemble needs at least one model")
    first = members[0]
    for i, member in enumerate(members[1:], start=2):
        if tuple(member.input_shape) != tuple(first.input_shape):
            raise ShapeError(
                f"ensemble member {i} takes inputs of shape {tuple(member.input_shape)}, "
                f"member 1 takes {tuple(first.input_shape)}"
            )
        if member.num_classes != first.num_classes:
            raise ShapeError(
                f"ensemble member {i} answers {member.num_classes} classes, "
                f"member 1 answers {first.num_classes}"
            )
    return members


def evaluate(
    model, data, batch_size: int = 1000, precision: str | None = None, tta: int = 0
) -> dict[str, float]:
    """``{"loss", "accuracy", "count"}`` of ``model`` (or of an ensemble: a list of models,
    their probabilities averaged) on ``data = (x, y)``, in inference mode. ``x`` is uint8
    pixels or floats in [0, 1]; ``y`` integer or one-hot labels. The loss is the mean
    cross-entropy. ``precision="bf16"`` computes in bfloat16 (sums are float32); ``tta``
    averages each model's probabilities over the image and that many warped copies
    (:func:`member_probabilities`)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DataError("data: expected a pair (images, labels)")
    members = members_of(model)
    x = check_images(data[0], "x", members[0].input_shape)
    y = check_labels(data[1], len(x), members[0].num_classes, "y")
    if len(members) > 1 or not isinstance(members[0], Model) or check_int("tta", tta, 0):
        return scores(predict(members, x, batch_size, precision, tta)[0], y)
    sums = _batch_sums(members[0], precision)
    total_loss, total_hits = 0.0, 0
    for images, labels in eval_dataset(x, y, batch_size):
        loss, hits = sums(images, labels)
        total_loss += float(loss)
        total_hits += int(hits)
    return {"loss": total_loss / len(x), "accuracy": total_hits / len(x), "count": len(x)}


def _view_batches(x: np.ndarray, batch_size: int, transforms):
    """``x``'s batches as floats in [0, 1], each image warped by its row of ``transforms``
    (``None``: as they are)."""
    start = 0
    for batch in eval_dataset(x, None, batch_size):
        if transforms is not None:
            batch = augment.transform(batch, transforms[start : start + len(batch)])
        start += len(batch)
        yield batch


def member_probabilities(
    model, x, batch_size: int = 1000, precision: str | None = None, tta: int = 0
) -> list[np.ndarray]:
    """Each member's softmax probabilities (N, classes) of images ``x`` (see :func:`predict`).

    With ``tta`` = k > 0 (test-time augmentation), a member's probabilities are the mean of
    its probabilities of the images and of k warped copies of them, view ``v`` warping each
    image by its own random rotation, zoom and shift within the training augmentation's
    default ranges (:func:`rawtf.augment.tta_transforms`): the same views whatever
    the batch size."""
    members = members_of(model)
    x = check_images(x, "x", members[0].input_shape)
    height, width = x.shape[1:3]
    views = [None] + [
        augment.tta_transforms(len(x), v, height, width)
        for v in range(1, check_int("tta", tta, 0) + 1)
    ]
    parts = []
    for member in members:
        if isinstance(member, Model):
            run = _batch_probabilities(member, precision)
        else:
            run = member.probabilities
        total = 0.0
        for transforms in views:
            batches = _view_batches(x, batch_size, transforms)
            total = total + np.concatenate([np.asarray(run(b)) for b in batches])
        parts.append((total / len(views)).astype(np.float32))
    return parts


def mean_probabilities(parts: list[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities: the members' averaged, as float32."""
    return (sum(parts[1:], parts[0]) / len(parts)).astype(np.float32)


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"loss", "accuracy", "count"}`` of ``probabilities`` against integer ``labels``; the
    loss is the mean cross-entropy."""
    chosen = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    loss = float(-np.log(np.maximum(chosen, np.finfo(np.float32).tiny)).mean())
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    return {"loss": loss, "accuracy": accuracy, "count": len(labels)}


@dataclasses.dataclass(frozen=True)
class ErrorOverlap:
    """Where an ensemble's members go wrong, and whether they go wrong together.

    ``wrong[i, n]`` is true where member ``i`` misclassifies example ``n``; ``ensemble``
    where the mean of the members' probabilities does. Averaging repairs the images enough
    members get right; those every member gets wrong (:attr:`in_all`) stay wrong unless the
    members disagree on the wrong answer, and the rest of the ensemble's errors are mostly
    images a majority gets wrong (:attr:`wrong_in`)."""

    wrong: np.ndarray
    ensemble: np.ndarray

    @property
    def member_errors(self) -> np.ndarray:
        """How many examples each member misclassifies."""
        return self.wrong.sum(axis=1)

    @property
    def shared(self) -> np.ndarray:
        """``shared[i, j]``: examples both member ``i`` and member ``j`` misclassify (the
        diagonal: each member's own errors)."""
        counts = self.wrong.astype(np.int64)
        return counts @ counts.T

    @property
    def wrong_in(self) -> np.ndarray:
        """``wrong_in[k]``: examples exactly ``k`` members misclassify, k = 0..members."""
        return np.bincount(self.wrong.sum(axis=0), minlength=len(self.wrong) + 1)

    @property
    def in_all(self) -> np.ndarray:
        """Indices of the examples every member misclassifies."""
        return np.flatnonzero(self.wrong.all(axis=0))

    def summary(self) -> str:
        """One line: each member's errors, the images wrong in at least one and in all,
        and the ensemble's errors."""
        errors = "/".join(str(int(e)) for e in self.member_errors)
        anywhere = int(self.wrong.any(axis=0).sum())
        in_all = self.in_all
        return (
            f"mistakes: members {errors}; images wrong in at least one member {anywhere}, "
            f"in every member {len(in_all)}; ensemble {int(self.ensemble.sum())} "
            f"({int(self.ensemble[in_all].sum())} of them wrong in every member)"
        )


def error_overlap(parts: list[np.ndarray], labels) -> ErrorOverlap:
    """The :class:`ErrorOverlap` of members whose probabilities on the same examples are
    ``parts`` (as :func:`member_probabilities` returns them), against integer ``labels``."""
    if not parts:
        raise ConfigError("an ensemble needs at least one model")
    parts = [np.asarray(p) for p in parts]
    for i, part in enumerate(parts, start=1):
        if part.ndim != 2 or part.shape != parts[0].shape:
            raise ShapeError(
                f"member {i}'s probabilities have shape {part.shape}, expected "
                f"{parts[0].shape if i > 1 else '(examples, classes)'}"
            )
    labels = check_labels(labels, len(parts[0]), parts[0].shape[1], "labels")
    wrong = np.stack([p.argmax(axis=1) != labels for p in parts])
    ensemble = mean_probabilities(parts).argmax(axis=1) != labels
    return ErrorOverlap(wrong, ensemble)


def predict(
    model, x, batch_size: int = 1000, precision: str | None = None, tta: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, classes) float32, labels (N,) int64)`` for images ``x``, of a
    model or of an ensemble (a list of models: the mean of their probabilities). Members
    may be rawtf models or exported SavedModels (:class:`rawtf.export.ExportedModel`);
    ``precision="bf16"`` computes rawtf models in bfloat16; ``tta`` adds that many warped
    views of each image (:func:`member_probabilities`)."""
    probs = mean_probabilities(member_probabilities(model, x, batch_size, precision, tta))
    return probs, probs.argmax(axis=1)


def confusion_matrix(labels, predictions, num_classes: int = 10) -> np.ndarray:
    """``counts[true, predicted]`` as an int64 (classes x classes) matrix."""
    labels = check_labels(labels, len(np.asarray(labels)), num_classes, "labels")
    predictions = check_labels(predictions, len(labels), num_classes, "predictions")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def per_class_accuracy(matrix) -> np.ndarray:
    """Each class's accuracy (recall) from a confusion matrix: ``diag / row sums``, NaN for
    a class with no examples."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)
