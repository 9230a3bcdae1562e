"""Loss, accuracy and predictions over a whole set, and the confusion matrix.

Sums are accumulated per example and divided once at the end, so a short last batch is
weighted exactly and the result does not depend on the batch size.
"""

from __future__ import annotations

import weakref

import numpy as np

from rawtf import data as D
from rawtf._tf import import_tensorflow
from rawtf.errors import DataError
from rawtf.models import compute_dtype

tf = import_tensorflow()

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model, precision=None):
    """The model's compiled inference functions, made once per model and precision."""
    compute_dtype(precision)  # an unknown precision fails here
    per_model = _COMPILED.setdefault(model, {})
    fns = per_model.get(precision)
    if fns is None:

        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def sums(images, labels):
            logits = model(images, training=False, dropout=False, precision=precision)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            correct = tf.cast(
                tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels), tf.int64
            )
            return tf.reduce_sum(losses), tf.reduce_sum(correct)

        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def probabilities(images):
            return tf.nn.softmax(model(images, training=False, dropout=False, precision=precision))

        fns = per_model[precision] = (sums, probabilities)
    return fns


def evaluate(model, data, batch_size: int = 1000, precision: str | None = None) -> dict[str, float]:
    """``{"loss", "accuracy", "count"}`` of ``model`` on ``data = (x, y)``, in inference
    mode. ``x`` is uint8 pixels or floats in [0, 1]; ``y`` integer or one-hot labels.
    ``precision="bf16"`` computes in bfloat16 (sums are float32)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DataError("data: expected a pair (images, labels)")
    x, y = data
    x = D.check_images(x, "x", model.input_shape)
    y = D.check_labels(y, len(x), model.num_classes, "y")
    sums, _ = _compiled(model, precision)
    total_loss, total_correct = 0.0, 0
    for images, labels in D.eval_dataset(x, y, batch_size):
        loss, correct = sums(images, labels)
        total_loss += float(loss)
        total_correct += int(correct)
    return {"loss": total_loss / len(x), "accuracy": total_correct / len(x), "count": len(x)}


def predict(
    model, x, batch_size: int = 1000, precision: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, classes) float32, labels (N,) int64)`` for images ``x``;
    ``precision="bf16"`` computes in bfloat16."""
    x = D.check_images(x, "x", model.input_shape)
    _, probabilities = _compiled(model, precision)
    probs = np.concatenate([probabilities(b).numpy() for b in D.eval_dataset(x, None, batch_size)])
    return probs, probs.argmax(axis=1)


def confusion_matrix(labels, predictions, num_classes: int = 10) -> np.ndarray:
    """``counts[true, predicted]`` as an int64 (classes x classes) matrix."""
    labels = D.check_labels(labels, len(np.asarray(labels)), num_classes, "labels")
    predictions = D.check_labels(predictions, len(labels), num_classes, "predictions")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts
