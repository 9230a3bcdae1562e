"""The training loop: a compiled ``tf.GradientTape`` step, epochs over a deterministic
order, and a history of per-epoch metrics.

Randomness is a pure function of ``(seed, epoch, step)``: epoch ``e`` visits the examples in
:func:`rawtf.data.epoch_order` ``(n, seed, e)``, and the dropout masks of global step ``s``
come from the stateless seed ``(seed, s)``.
"""

from __future__ import annotations

import json
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from rawtf import data as D
from rawtf import metrics
from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError
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
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"patience must be an integer >= 0, got {patience!r}")
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


def make_train_step(model, optimizer: Optimizer):
    """A compiled step ``(images, labels, seed) -> (loss, correct count)`` that applies one
    update; ``seed`` is the stateless ``[2]`` seed of the step's dropout masks,
    ``(run seed, global step)`` in :func:`fit`. Made once per model and optimiser, so
    repeated :func:`fit` calls reuse the traced graph."""
    per_model = _STEPS.setdefault(model, weakref.WeakKeyDictionary())
    if optimizer in per_model:
        return per_model[optimizer]
    variables = model.trainable_variables
    optimizer.build(variables)

    @tf.function
    def train_step(images, labels, seed):
        with tf.GradientTape() as tape:
            logits = model(images, training=True, seed=seed)
            loss = cross_entropy(logits, labels)
        gradients = tape.gradient(loss, variables)
        optimizer.apply(gradients, variables)
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        return loss, tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))

    per_model[optimizer] = train_step
    return train_step


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
) -> History:
    """Train ``model`` on ``train_data = (x, y)`` for ``epochs`` epochs and return the
    :class:`History` (train loss/accuracy, validation loss/accuracy, seconds per epoch).

    ``x`` is uint8 pixels or floats in [0, 1]; ``y`` integer or one-hot labels. Each epoch is
    one pass in the order :func:`rawtf.data.epoch_order` gives; the last batch may be short.
    With ``verbose >= 1`` a progress bar runs on a terminal and one line per epoch is printed.
    ``augment`` (an :class:`rawtf.augment.AugmentConfig`, or ``True`` for the default
    ±10° rotation, ±10% zoom and ±10% shift) warps each training batch.
    Each callback is called as ``callback(epoch, history)`` after every epoch; one that
    returns ``True`` stops training (see :class:`EarlyStopping`). Callbacks with an
    ``on_train_end()`` method have it called when training ends.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = D.check_images(train_data[0], "x_train")
    y = D.check_labels(train_data[1], len(x), model.num_classes, "y_train")
    if validation_data is not None:
        validation_data = (
            D.check_images(validation_data[0], "x_val"),
            D.check_labels(validation_data[1], len(validation_data[0]), model.num_classes, "y_val"),
        )
    if augment is True:
        from rawtf.augment import AugmentConfig

        augment = AugmentConfig()
    train_step = make_train_step(model, optimizer)
    steps = D.steps_per_epoch(len(x), batch_size)
    history = History()
    for epoch in range(initial_epoch, initial_epoch + epochs):
        start = time.perf_counter()
        loss_sum, correct = tf.constant(0.0), tf.constant(0, tf.int64)
        step = epoch * steps
        with _progress(steps, f"epoch {epoch + 1}", verbose) as bar:
            batches = D.train_dataset(x, y, batch_size, seed, epoch, augment=augment or None)
            for images, labels in batches:
                loss, hits = train_step(images, labels, step_seed(seed, step))
                loss_sum += loss * tf.cast(tf.shape(labels)[0], tf.float32)
                correct += hits
                step += 1
                bar.update(1)
                if bar.n % 50 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{float(loss):.4f}")
        row = {
            "epoch": epoch + 1,
            "loss": float(loss_sum) / len(x),
            "accuracy": int(correct) / len(x),
        }
        if validation_data is not None:
            val = metrics.evaluate(model, validation_data)
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if verbose >= 1:
            print_fn(format_epoch(row, initial_epoch + epochs))
        stop = [bool(callback(epoch, history)) for callback in callbacks]
        if any(stop):
            break
    for callback in callbacks:
        if hasattr(callback, "on_train_end"):
            callback.on_train_end()
    return history


def format_epoch(row: dict[str, float], total_epochs: int) -> str:
    """One line for an epoch: ``epoch 2/3  loss=0.0421  accuracy=0.9871 ... 31.2s``."""
    parts = [f"epoch {row['epoch']}/{total_epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in row:
            parts.append(f"{key}={row[key]:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)
