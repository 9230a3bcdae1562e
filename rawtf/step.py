"""The compiled pieces of training and evaluation: the loss and hit count of a batch, one
training step (``tf.GradientTape`` + a rawtf optimiser), a loop of steps inside one
``tf.function`` call, and the one cache that makes each compiled function once per model.

Dropout masks of global step ``s`` in a run seeded ``seed`` come from the stateless seed
``(seed, s)`` (:func:`step_seed`), so a resumed run draws exactly the masks it would have.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Hashable

from rawtf._tf import import_tensorflow
from rawtf.models import compute_dtype
from rawtf.optim import Optimizer

tf = import_tensorflow()

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model, key: Hashable, make: Callable[[], Callable]) -> Callable:
    """``make()``'s result, made once per ``model`` and ``key`` (which names everything
    else the function depends on: optimiser, strategy, precision) and kept while the model
    lives, so repeated calls reuse the traced graph."""
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = make()
    return per_model[key]


def loss_and_hits(logits, labels, label_smoothing: float = 0.0):
    """``(per-example softmax cross-entropy, count of argmax hits as int64)`` for integer
    ``labels``: the one definition that training and evaluation share. With
    ``label_smoothing`` ``e`` the target puts ``1 - e`` on the label and spreads ``e``
    evenly over all classes (as Keras's ``label_smoothing``)::

        loss = (1 - e) * cross_entropy + e * mean over classes of -log softmax(logits)
    """
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if label_smoothing:
        uniform = -tf.reduce_mean(tf.nn.log_softmax(logits), axis=1)
        losses = (1.0 - label_smoothing) * losses + label_smoothing * uniform
    predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
    hits = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
    return losses, hits


def step_seed(seed: int, step: int) -> tf.Tensor:
    """The stateless seed of global step ``step`` in a run seeded ``seed``."""
    return tf.constant([int(seed), int(step)], tf.int64)


def _replica_gradients(model, variables, precision, label_smoothing):
    """``(images, labels, seed) -> (loss, hits, gradients, count)`` of one replica's share
    of a batch; under a strategy the sums and gradients are all-reduced over replicas and
    the loss is ``sum(per-example losses) / global batch``."""

    def gradients(images, labels, seed):
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        if replicas > 1:  # each replica draws its own dropout masks
            seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        with tf.GradientTape() as tape:
            logits = model(images, training=True, seed=seed, precision=precision)
            losses, hits = loss_and_hits(logits, labels, label_smoothing)
            loss = tf.reduce_sum(losses) / count
        grads = tape.gradient(loss, variables)
        if replicas > 1:
            loss, grads = context.all_reduce(tf.distribute.ReduceOp.SUM, (loss, grads))
            hits = context.all_reduce(tf.distribute.ReduceOp.SUM, hits)
        return loss, hits, grads, count

    return gradients


def step_body(
    model,
    optimizer: Optimizer,
    strategy=None,
    precision: str | None = None,
    label_smoothing: float = 0.0,
):
    """The uncompiled step ``(images, labels, seed) -> (mean loss, hits, loss is finite,
    count)``, which applies one update unless the loss is not finite (then the weights stay
    as they were). Builds the optimiser's slots (under the strategy's scope) first."""
    variables = model.trainable_variables
    compute_dtype(precision)  # an unknown precision fails here, before any tracing
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        optimizer.build(variables)
    gradients = _replica_gradients(model, variables, precision, float(label_smoothing))

    def update(loss, hits, grads, count):
        finite = tf.math.is_finite(loss)
        tf.cond(
            finite,
            lambda: optimizer.apply(grads, variables) or tf.constant(True),
            lambda: tf.constant(False),
        )
        return loss, hits, finite, count

    if strategy is None:
        return lambda images, labels, seed: update(*gradients(images, labels, seed))

    def distributed(images, labels, seed):
        results = strategy.run(gradients, args=(images, labels, seed))
        # Every replica holds the same all-reduced values: the first one's are applied, in
        # cross-replica context, to every copy of the variables.
        first = tf.nest.map_structure(lambda r: strategy.experimental_local_results(r)[0], results)
        return update(*first)

    return distributed


def make_train_step(
    model,
    optimizer: Optimizer,
    strategy=None,
    precision: str | None = None,
    label_smoothing: float = 0.0,
):
    """A compiled step ``(images, labels, seed) -> (mean loss, hits, loss is finite)``;
    ``seed`` is the step's stateless ``[2]`` dropout seed (:func:`step_seed`).

    With a ``tf.distribute`` ``strategy`` the step takes distributed batches: each replica
    computes its share of the loss, the gradients are summed across replicas, and every
    replica applies the same update. ``precision="bf16"`` computes the forward and backward
    passes in bfloat16 (float32 variables and loss). ``label_smoothing`` smooths the
    training targets (:func:`loss_and_hits`)."""

    def make():
        body = step_body(model, optimizer, strategy, precision, label_smoothing)

        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def train_step(images, labels, seed):
            return body(images, labels, seed)[:3]

        return train_step

    return compiled(model, ("step", optimizer, strategy, precision, label_smoothing), make)


def make_train_loop(
    model,
    optimizer: Optimizer,
    strategy=None,
    precision: str | None = None,
    label_smoothing: float = 0.0,
):
    """A compiled loop ``(iterator, seed, first_step, count) -> (loss sum, hits, steps
    done, all finite, last loss)`` that runs up to ``count`` training steps inside one
    ``tf.function`` call, drawing each batch from ``iterator`` (global step ``first_step + i``
    uses dropout seed ``(seed, first_step + i)``). It stops early, without updating, at the
    first non-finite loss. The loss sum is over examples, so sum / examples is the mean.
    Like Keras's ``steps_per_execution``, this leaves Python once per ``count`` steps."""

    def make():
        body = step_body(model, optimizer, strategy, precision, label_smoothing)

        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def train_loop(iterator, seed, first_step, count):
            def keep_going(i, loss_sum, hits, finite, last):
                return tf.logical_and(i < count, finite)

            def one_step(i, loss_sum, hits, finite, last):
                images, labels = next(iterator)
                seed_i = tf.stack([seed, first_step + tf.cast(i, tf.int64)])
                loss, step_hits, ok, n = body(images, labels, seed_i)
                done = tf.cast(ok, tf.float64)
                return (
                    i + tf.cast(ok, tf.int32),
                    loss_sum + done * tf.cast(loss, tf.float64) * tf.cast(n, tf.float64),
                    hits + tf.cast(ok, tf.int64) * step_hits,
                    ok,
                    loss,
                )

            start = (
                tf.constant(0),
                tf.constant(0.0, tf.float64),
                tf.constant(0, tf.int64),
                tf.constant(True),
                tf.constant(0.0),
            )
            i, loss_sum, hits, finite, last = tf.while_loop(
                keep_going, one_step, start, parallel_iterations=1
            )
            return loss_sum, hits, i, finite, last

        return train_loop

    return compiled(model, ("loop", optimizer, strategy, precision, label_smoothing), make)
