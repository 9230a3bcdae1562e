"""Loss, accuracy and predictions over a whole set; the confusion matrix and per-class
accuracy.

Sums are accumulated per example and divided once at the end, so a short last batch is
weighted exactly and the result does not depend on the batch size.
"""

from __future__ import annotations

import numpy as np

from rawtf._tf import import_tensorflow
from rawtf.data import check_images, check_labels
from rawtf.errors import DataError
from rawtf.models import compute_dtype
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


def evaluate(model, data, batch_size: int = 1000, precision: str | None = None) -> dict[str, float]:
    """``{"loss", "accuracy", "count"}`` of ``model`` on ``data = (x, y)``, in inference
    mode. ``x`` is uint8 pixels or floats in [0, 1]; ``y`` integer or one-hot labels.
    ``precision="bf16"`` computes in bfloat16 (sums are float32)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DataError("data: expected a pair (images, labels)")
    x = check_images(data[0], "x", model.input_shape)
    y = check_labels(data[1], len(x), model.num_classes, "y")
    sums = _batch_sums(model, precision)
    total_loss, total_hits = 0.0, 0
    for images, labels in eval_dataset(x, y, batch_size):
        loss, hits = sums(images, labels)
        total_loss += float(loss)
        total_hits += int(hits)
    return {"loss": total_loss / len(x), "accuracy": total_hits / len(x), "count": len(x)}


def predict(
    model, x, batch_size: int = 1000, precision: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, classes) float32, labels (N,) int64)`` for images ``x``;
    ``precision="bf16"`` computes in bfloat16."""
    x = check_images(x, "x", model.input_shape)
    probabilities = _batch_probabilities(model, precision)
    probs = np.concatenate([probabilities(b).numpy() for b in eval_dataset(x, None, batch_size)])
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
