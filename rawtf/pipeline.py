"""tf.data input pipelines: an epoch of training batches in the order
:func:`rawtf.data.epoch_order` gives (gathered, scaled and augmented inside tf.data,
overlapped with training by prefetch), and batches in order for evaluation.

The pipelines run with fixed parallelism (one map call per schedulable core) and a 2-batch
prefetch, with tf.data's autotuner off: on small CPU machines the autotuner was seen to hold
training to a fraction of its speed in some runs (``docs/results.md``). Set
:data:`AUTOTUNE` to True to have tf.data tune, e.g. on a machine with many cores.
"""

from __future__ import annotations

import os

import numpy as np

from rawtf._tf import import_tensorflow
from rawtf.augment import AugmentConfig, random_warp
from rawtf.data import epoch_order

tf = import_tensorflow()

#: Whether the pipelines leave their parallelism and prefetch depth to tf.data's autotuner.
AUTOTUNE = False

#: Batches prefetched by the fixed (not autotuned) pipelines.
PREFETCH = 2


def scale_pixels(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1], in the graph (float images pass unchanged):
    :func:`rawtf.data.to_float`'s conversion for tensors."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) * (1.0 / 255.0)
    return images


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _parallel_calls() -> int:
    return tf.data.AUTOTUNE if AUTOTUNE else _cores()


def pipeline_options() -> tf.data.Options:
    """The tf.data options of rawtf's pipelines: autotuning off unless :data:`AUTOTUNE`."""
    options = tf.data.Options()
    if not AUTOTUNE:
        options.autotune.enabled = False
    return options


def _prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
    if AUTOTUNE:
        return ds.prefetch(tf.data.AUTOTUNE)
    return ds.prefetch(PREFETCH).with_options(pipeline_options())


def train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    drop_remainder: bool = False,
    augment: AugmentConfig | None = None,
    end_epoch: int | None = None,
) -> tf.data.Dataset:
    """The ``(images float32 NHWC, labels int32)`` batches of epochs ``epoch`` to
    ``end_epoch - 1`` (default: ``epoch`` alone), each in the order
    :func:`rawtf.data.epoch_order` gives, starting at batch ``start_step`` of the first.

    ``x`` and ``y`` are checked arrays (:func:`rawtf.data.check_images`,
    :func:`rawtf.data.check_labels`), or those arrays already made tensors, which a caller
    building many datasets does once. ``augment`` warps each batch with random affine
    transforms (and elastic distortions) drawn from ``(seed, epoch, step)``. One dataset
    serves a whole run: its functions are traced once, and batches of the next epoch are
    prefetched while an epoch's end is handled."""
    n = len(x)
    end_epoch = epoch + 1 if end_epoch is None else end_epoch
    count = n // batch_size if drop_remainder else -(-n // batch_size)
    images, labels = tf.convert_to_tensor(x), tf.convert_to_tensor(y)  # no copy if tensors

    def order_of(e):
        order = tf.numpy_function(lambda e: epoch_order(n, seed, int(e)), [e], tf.int64)
        return tf.ensure_shape(order, [n])

    def epoch_batches(e):
        order = order_of(e)

        def load(i):  # batch i of epoch e: one slice of the order, not an element at a time
            idx = order[i * batch_size : (i + 1) * batch_size]
            batch = scale_pixels(tf.gather(images, idx))
            if augment is not None:
                batch = random_warp(batch, seed, e, i, augment)
            return batch, tf.gather(labels, idx)

        first = tf.where(tf.equal(e, epoch), tf.constant(start_step, tf.int64), 0)
        batches = tf.data.Dataset.range(first, count)
        return batches.map(load, num_parallel_calls=_parallel_calls(), deterministic=True)

    ds = tf.data.Dataset.range(epoch, end_epoch).flat_map(epoch_batches)
    return _prefetched(ds)


def eval_dataset(x: np.ndarray, y: np.ndarray | None, batch_size: int) -> tf.data.Dataset:
    """Batches in the arrays' own order, for evaluation and prediction."""
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y)).batch(batch_size)
    if y is None:
        ds = ds.map(scale_pixels, num_parallel_calls=_parallel_calls())
    else:
        ds = ds.map(lambda a, b: (scale_pixels(a), b), num_parallel_calls=_parallel_calls())
    return _prefetched(ds)
