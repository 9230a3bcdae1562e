"""The training loop: a compiled ``tf.GradientTape`` step, epochs over a deterministic
order, and a history of per-epoch metrics.

Randomness is a pure function of ``(seed, epoch, step)``: epoch ``e`` visits the examples in
:func:`rawtf.data.epoch_order` ``(n, seed, e)``, and the dropout masks of global step ``s``
come from the stateless seed ``(seed, s)``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from rawtf import data as D
from rawtf import metrics
from rawtf._tf import import_tensorflow
from rawtf.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    TrainingError,
    TrainingInterrupted,
    check_int,
)
from rawtf.models import compute_dtype
from rawtf.optim import Optimizer

tf = import_tensorflow()

Callback = Callable[[int, "History"], Any]


class History:
    """Per-epoch metrics: ``history["loss"][e]`` and so on, plus ``epochs`` as rows."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def append(self, row: dict[str, float]) -> None:
        self.epochs.append(dict(row))

    @property
    def history(self) -> dict[str, list[float]]:
        keys = dict.fromkeys(k for row in self.epochs for k in row)
        return {k: [row.get(k) for row in self.epochs] for k in keys}

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epochs)

    def to_json(self) -> str:
        return json.dumps(self.epochs, indent=2)

    def __repr__(self) -> str:
        return f"History({self.epochs!r})"


class EarlyStopping:
    """Stop training when ``monitor`` (a history key such as ``val_accuracy`` or
    ``val_loss``) has not improved by more than ``min_delta`` for ``patience`` epochs.
    With ``restore_best_weights`` the model's variables (batch-norm state included) are
    set back to those of the best epoch when training ends.

    Pass it in ``fit(..., callbacks=[EarlyStopping(model)])``; ``stopped_epoch`` and
    ``best_epoch`` (1-based) tell what happened."""

    def __init__(
        self,
        model,
        monitor: str = "val_accuracy",
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
    ):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        check_int("patience", patience, 0)
        self.model, self.monitor, self.patience = model, monitor, patience
        self.min_delta, self.mode = abs(float(min_delta)), mode
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._best_values: list | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def __call__(self, epoch: int, history: History) -> bool:
        row = history.epochs[-1]
        if self.monitor not in row:
            raise ConfigError(
                f"EarlyStopping: history has no {self.monitor!r} "
                f"(has {', '.join(row)}; val_* needs validation_data)"
            )
        value = row[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch = value, row["epoch"]
            if self.restore_best_weights:
                self._best_values = [v.numpy() for v in self.model.variables]
            return False
        if row["epoch"] - self.best_epoch >= self.patience:
            self.stopped_epoch = row["epoch"]
            return True
        return False

    def on_train_end(self) -> None:
        if self.restore_best_weights and self._best_values is not None:
            for variable, value in zip(self.model.variables, self._best_values, strict=True):
                variable.assign(value)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer ``labels`` against ``logits``."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _step_body(model, optimizer: Optimizer, strategy, precision):
    """The uncompiled step ``(images, labels, seed) -> (mean loss, correct, finite, count)``
    shared by :func:`make_train_step` and :func:`make_train_loop`."""
    variables = model.trainable_variables
    compute_dtype(precision)  # an unknown precision fails here, before any tracing
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        optimizer.build(variables)

    def replica_gradients(images, labels, seed):
        """Loss, gradients and hits of one replica's share, summed over replicas."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        if replicas > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        if replicas > 1:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        with tf.GradientTape() as tape:
            logits = model(images, training=True, seed=seed, precision=precision)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            loss = tf.reduce_sum(losses) / count
        gradients = tape.gradient(loss, variables)
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
        if replicas > 1:
            loss, gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, (loss, gradients))
            correct = context.all_reduce(tf.distribute.ReduceOp.SUM, correct)
        return loss, correct, gradients, count

    def update(loss, correct, gradients, count):
        finite = tf.math.is_finite(loss)
        # A non-finite loss leaves the weights as they were; fit() then stops with an error.
        tf.cond(
            finite,
            lambda: optimizer.apply(gradients, variables) or tf.constant(True),
            lambda: tf.constant(False),
        )
        return loss, correct, finite, count

    if strategy is None:

        def step(images, labels, seed):
            return update(*replica_gradients(images, labels, seed))

    else:

        def step(images, labels, seed):
            results = strategy.run(replica_gradients, args=(images, labels, seed))
            # Every replica holds the same all-reduced values: the first one's are applied,
            # in cross-replica context, to every copy of the variables.
            first = tf.nest.map_structure(
                lambda r: strategy.experimental_local_results(r)[0], results
            )
            return update(*first)

    return step


def _cached(model, optimizer, key, make):
    per_model = _STEPS.setdefault(model, weakref.WeakKeyDictionary())
    per_optimizer = per_model.setdefault(optimizer, {})
    if key not in per_optimizer:
        per_optimizer[key] = make()
    return per_optimizer[key]


def make_train_step(model, optimizer: Optimizer, strategy=None, precision: str | None = None):
    """A compiled step ``(images, labels, seed) -> (mean loss, correct count, loss is
    finite)`` that applies one update (none when the loss is not finite); ``seed`` is the
    stateless ``[2]`` seed of the step's dropout masks, ``(run seed, global step)`` in
    :func:`fit`. Made once per model, optimiser, strategy and precision, so repeated calls
    reuse the traced graph.

    With a ``tf.distribute`` ``strategy`` the step takes distributed batches: each replica
    computes its share of the loss, ``sum(per-example losses) / global batch``, the gradients
    are summed across replicas, and every replica applies the same update. Dropout masks
    differ per replica (the replica id is folded into the seed). ``precision="bf16"``
    computes the forward and backward passes in bfloat16 (float32 variables and loss)."""

    def make():
        body = _step_body(model, optimizer, strategy, precision)

        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def train_step(images, labels, seed):
            return body(images, labels, seed)[:3]

        return train_step

    return _cached(model, optimizer, ("step", strategy, precision), make)


def make_train_loop(model, optimizer: Optimizer, strategy=None, precision: str | None = None):
    """A compiled loop ``(iterator, seed, first_step, count) -> (loss sum, correct, steps
    done, all finite, last loss)`` that runs up to ``count`` training steps inside one
    ``tf.function`` call, drawing each batch from ``iterator`` (global step ``first_step + i``
    uses dropout seed ``(seed, first_step + i)``). It stops early, without updating, at the
    first non-finite loss. The loss sum is over examples, so sum / examples is the mean.
    Like Keras's ``steps_per_execution``, this leaves Python once per ``count`` steps."""

    def make():
        body = _step_body(model, optimizer, strategy, precision)

        @tf.function(autograph=False)  # plain TF control flow: no AutoGraph transpiling
        def train_loop(iterator, seed, first_step, count):
            def keep_going(i, loss_sum, correct, finite, last):
                return tf.logical_and(i < count, finite)

            def one_step(i, loss_sum, correct, finite, last):
                images, labels = next(iterator)
                step_seed = tf.stack([seed, first_step + tf.cast(i, tf.int64)])
                loss, hits, ok, n = body(images, labels, step_seed)
                done = tf.cast(ok, tf.float64)
                return (
                    i + tf.cast(ok, tf.int32),
                    loss_sum + done * tf.cast(loss, tf.float64) * tf.cast(n, tf.float64),
                    correct + tf.cast(ok, tf.int64) * hits,
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
            i, loss_sum, correct, finite, last = tf.while_loop(
                keep_going, one_step, start, parallel_iterations=1
            )
            return loss_sum, correct, i, finite, last

        return train_loop

    return _cached(model, optimizer, ("loop", strategy, precision), make)


def step_seed(seed: int, step: int) -> tf.Tensor:
    """The stateless seed of global step ``step`` in a run seeded ``seed``."""
    return tf.constant([int(seed), int(step)], tf.int64)


def _progress(total: int, desc: str, verbose: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="step",
        leave=False,
        disable=verbose < 1 or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )


class _InterruptFlag:
    """While installed, Ctrl-C (SIGINT) only raises a flag that the loop checks after each
    step; a second Ctrl-C interrupts at once. rawtf installs its own handler even where a
    parent left SIGINT ignored."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def fit(
    model,
    optimizer: Optimizer,
    train_data: Sequence,
    epochs: int = 1,
    batch_size: int = 128,
    validation_data: Sequence | None = None,
    seed: int = 0,
    verbose: int = 1,
    callbacks: Sequence[Callback] = (),
    initial_epoch: int = 0,
    print_fn: Callable[[str], Any] = print,
    augment=None,
    checkpoint_dir: str | None = None,
    save_every_steps: int | None = None,
    resume: bool | str = "auto",
    keep_checkpoints: int = 3,
    logdir: str | None = None,
    strategy=None,
    precision: str | None = None,
    steps_per_execution: int = 32,
) -> History:
    """Train ``model`` on ``train_data = (x, y)`` until epoch ``initial_epoch + epochs`` and
    return the :class:`History` (train loss/accuracy, validation loss/accuracy, seconds).

    ``x`` is uint8 pixels or floats in [0, 1]; ``y`` integer or one-hot labels. Each epoch is
    one pass in the order :func:`rawtf.data.epoch_order` gives; the last batch may be short.
    With ``verbose >= 1`` a progress bar runs on a terminal and one line per epoch is printed.
    ``augment`` (an :class:`rawtf.augment.AugmentConfig`, or ``True`` for the default
    ±10° rotation, ±10% zoom and ±10% shift) warps each training batch.
    Each callback is called as ``callback(epoch, history)`` after every epoch; one that
    returns ``True`` stops training (see :class:`EarlyStopping`). Callbacks with an
    ``on_train_end()`` method have it called when training ends.

    With ``checkpoint_dir``, the model, optimiser and progress are saved after every epoch
    and every ``save_every_steps`` steps (the last ``keep_checkpoints``, and the best by
    validation accuracy in ``best/``); Ctrl-C saves at the last finished step and raises
    :class:`rawtf.errors.TrainingInterrupted`. ``resume="auto"`` continues from the latest
    checkpoint there if any, ``True`` requires one, ``False`` requires there be none. Since
    data order, augmentation and dropout are functions of ``(seed, epoch, step)``, a resumed
    run sees exactly the batches and masks it would have seen. A non-finite loss stops
    training with :class:`rawtf.errors.TrainingError`, leaving the weights and the last
    checkpoint as they were. ``logdir`` writes TensorBoard summaries (needs tensorboard).

    ``precision="bf16"`` trains in bfloat16 mixed precision (float32 variables, optimiser
    and loss; bfloat16 activations and gradients inside the network), about 1.7-2x faster on
    CPUs with AVX-512 BF16. ``steps_per_execution`` steps run per compiled call (fewer
    returns to Python); checkpoints every ``save_every_steps`` and Ctrl-C still land on
    exact steps, and the result does not depend on it.
    """
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    check_int("initial_epoch", initial_epoch, 0)
    check_int("steps_per_execution", steps_per_execution)
    if save_every_steps is not None:
        check_int("save_every_steps", save_every_steps)
    if resume not in ("auto", True, False):
        raise ConfigError(f"resume must be 'auto', True or False, got {resume!r}")
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"optimizer must be a rawtf.optim optimiser, got {type(optimizer).__name__}"
        )
    if not isinstance(train_data, (tuple, list)) or len(train_data) != 2:
        raise DataError("train_data: expected a pair (images, labels)")
    if validation_data is not None and (
        not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2
    ):
        raise DataError("validation_data: expected a pair (images, labels)")
    x = D.check_images(train_data[0], "x_train", model.input_shape)
    y = D.check_labels(train_data[1], len(x), model.num_classes, "y_train")
    if validation_data is not None:
        validation_data = (
            D.check_images(validation_data[0], "x_val", model.input_shape),
            D.check_labels(validation_data[1], len(validation_data[0]), model.num_classes, "y_val"),
        )
    if augment is True:
        from rawtf.augment import AugmentConfig

        augment = AugmentConfig()
    if strategy is not None:
        outside = [
            v.name for v in model.variables if not strategy.extended.variable_created_in_scope(v)
        ]
        if outside:
            raise ConfigError(
                f"model variables ({outside[0]}, ...) were not created under strategy.scope(); "
                "build the model inside it"
            )
    summaries = _Summaries(logdir, model, optimizer, validation_data) if logdir else None
    train_loop = make_train_loop(model, optimizer, strategy, precision)
    seed_tensor = tf.constant(seed, tf.int64)
    # Distributed runs drop a short last batch, so that no replica is ever handed nothing.
    drop = strategy is not None and strategy.num_replicas_in_sync > 1
    steps = D.steps_per_epoch(len(x), batch_size, drop_remainder=drop)
    seen = steps * batch_size if drop else len(x)
    end_epoch = initial_epoch + epochs
    history = History()
    start_epoch, start_step, sums = initial_epoch, 0, (0.0, 0)
    saver = None
    if checkpoint_dir is not None:
        from rawtf.checkpoint import TrainingCheckpoint

        saver = TrainingCheckpoint(checkpoint_dir, model, optimizer, keep=keep_checkpoints)
        if saver.latest and resume is False:
            raise CheckpointError(
                f"{checkpoint_dir}: holds checkpoints of an earlier run; resume it or use "
                "another folder"
            )
        if resume is True or (resume == "auto" and saver.latest):
            state = saver.restore(seed)
            start_epoch, start_step = state["epoch"], state["step_in_epoch"]
            sums = (state["loss_sum"], state["correct"])
            for row in state["history"]:
                history.append(row)
            if verbose >= 1:
                print_fn(
                    f"resuming from epoch {start_epoch + 1}, step {start_step} ({saver.latest})"
                )

    def save(epoch, step_in_epoch, loss_sum, correct, global_step):
        if saver is None:
            return None
        path = saver.save(
            seed, epoch, step_in_epoch, loss_sum, correct, history.epochs, global_step
        )
        if verbose >= 1:
            print_fn(f"saved checkpoint at step {global_step}: {path}")
        return path

    x_tensor, y_tensor = tf.constant(x), tf.constant(y)  # once, not once per epoch
    with _InterruptFlag() if saver is not None else contextlib.nullcontext() as interrupt:
        for epoch in range(start_epoch, end_epoch):
            start = time.perf_counter()
            first = start_step if epoch == start_epoch else 0
            loss_sum, correct = sums if epoch == start_epoch else (0.0, 0)
            step = epoch * steps + first
            with _progress(steps, f"epoch {epoch + 1}", verbose) as bar:
                bar.update(first)
                batches = D.train_dataset(
                    x_tensor,
                    y_tensor,
                    batch_size,
                    seed,
                    epoch,
                    start_step=first,
                    augment=augment or None,
                    drop_remainder=drop,
                )
                if strategy is not None:
                    batches = strategy.experimental_distribute_dataset(batches)
                iterator = iter(batches)
                position = first
                while position < steps:
                    count = min(steps_per_execution, steps - position)
                    if save_every_steps:
                        count = min(count, save_every_steps - step % save_every_steps)
                    part_loss, hits, done, finite, last = train_loop(
                        iterator,
                        seed_tensor,
                        tf.constant(step, tf.int64),
                        tf.constant(count, tf.int32),
                    )
                    done = int(done)
                    loss_sum += float(part_loss)
                    correct += int(hits)
                    position += done
                    step += done
                    if not bool(finite):
                        intact = (
                            f"; the last checkpoint ({saver.latest}) is intact"
                            if saver and saver.latest
                            else ""
                        )
                        raise TrainingError(
                            f"non-finite loss ({float(last)}) at epoch {epoch + 1}, step "
                            f"{position + 1} (step {step + 1} of the run); weights were not "
                            f"updated{intact}"
                        )
                    bar.update(done)
                    if not bar.disable:
                        bar.set_postfix(loss=f"{float(last):.4f}")
                    if save_every_steps and step % save_every_steps == 0 and position < steps:
                        save(epoch, position, loss_sum, correct, step)
                    if interrupt is not None and interrupt.raised:
                        path = save(epoch, position, loss_sum, correct, step)
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1}, step {position}; checkpoint "
                            f"saved to {path}"
                        )
            row = {"epoch": epoch + 1, "loss": loss_sum / seen, "accuracy": correct / seen}
            if validation_data is not None:
                val = metrics.evaluate(model, validation_data)
                row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            if summaries is not None:
                summaries.write(row, step)
            if verbose >= 1:
                print_fn(format_epoch(row, end_epoch))
            if saver is not None and "val_accuracy" in row:
                saver.save_if_best(row["val_accuracy"], step)
            save(epoch + 1, 0, 0.0, 0, step)
            stop = [bool(callback(epoch, history)) for callback in callbacks]
            if any(stop):
                break
    for callback in callbacks:
        if hasattr(callback, "on_train_end"):
            callback.on_train_end()
    return history


class _Summaries:
    """TensorBoard summaries per epoch: scalars (loss, accuracy, learning rate, validation
    metrics), a histogram of every variable, and the misclassified validation digits."""

    def __init__(self, logdir, model, optimizer, validation_data):
        try:
            import tensorboard  # noqa: F401  (tf.summary's implementation lives there)
        except ImportError:
            raise ConfigError(
                "logdir needs the tensorboard package: pip install 'rawtf[tensorboard]'"
            ) from None
        try:
            self.writer = tf.summary.create_file_writer(str(logdir))
        except (OSError, tf.errors.OpError) as e:
            raise ConfigError(f"{logdir}: cannot write TensorBoard logs ({e})") from None
        self.model, self.optimizer, self.validation = model, optimizer, validation_data

    def write(self, row, step):
        with self.writer.as_default(step=step):
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
                if key in row:
                    tf.summary.scalar(key, row[key])
            tf.summary.scalar("learning_rate", self.optimizer.current_learning_rate())
            for path, variable in self.model.variable_map().items():
                tf.summary.histogram(path, variable)
            if self.validation is not None:
                x, y = self.validation
                _, predicted = metrics.predict(self.model, x[:2000])
                wrong = (predicted != y[: len(predicted)]).nonzero()[0][:16]
                if len(wrong):
                    images = D.to_float(x[wrong])
                    tf.summary.image("misclassified", images, max_outputs=16)
        self.writer.flush()


def format_epoch(row: dict[str, float], total_epochs: int) -> str:
    """One line for an epoch: ``epoch 2/3  loss=0.0421  accuracy=0.9871 ... 31.2s``."""
    parts = [f"epoch {row['epoch']}/{total_epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in row:
            parts.append(f"{key}={row[key]:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)
