"""``fit``: epochs of compiled training steps over a deterministic order.

Randomness is a pure function of ``(seed, epoch, step)``: epoch ``e`` visits the examples in
:func:`rawtf.data.epoch_order` ``(n, seed, e)``, and the dropout masks of global step ``s``
come from the stateless seed ``(seed, s)``. The loop only runs steps and counts them;
progress lines, TensorBoard, checkpoints and early stopping are callbacks
(:mod:`rawtf.callbacks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rawtf import step
from rawtf._tf import import_tensorflow
from rawtf.augment import AugmentConfig
from rawtf.callbacks import (
    Callback,
    CheckpointSaver,
    EarlyStopping,  # noqa: F401  (part of the training API: rawtf.train.EarlyStopping)
    History,
    Progress,
    ProgressLog,
    TensorBoard,
    as_callback,
    check_resume,
)
from rawtf.data import check_images, check_labels, steps_per_epoch
from rawtf.errors import ConfigError, DataError, TrainingError, check_fraction, check_int
from rawtf.metrics import evaluate
from rawtf.optim import Optimizer
from rawtf.pipeline import train_dataset

tf = import_tensorflow()


def _pair(data, name: str, short: str, model) -> tuple:
    """``(images, labels)`` checked against ``model``'s input shape and classes; errors
    name ``name`` or ``x_<short>``/``y_<short>``."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DataError(f"{name}: expected a pair (images, labels)")
    x = check_images(data[0], f"x_{short}", model.input_shape)
    return x, check_labels(data[1], len(x), model.num_classes, f"y_{short}")


def _check_arguments(epochs, batch_size, initial_epoch, steps_per_execution, optimizer, resume):
    for name, value, minimum in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("initial_epoch", initial_epoch, 0),
        ("steps_per_execution", steps_per_execution, 1),
    ):
        check_int(name, value, minimum)
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"optimizer must be a rawtf.optim optimiser, got {type(optimizer).__name__}"
        )
    check_resume(resume)


def _check_strategy(model, strategy) -> None:
    if strategy is None:
        return
    outside = [
        v.name for v in model.variables if not strategy.extended.variable_created_in_scope(v)
    ]
    if outside:
        raise ConfigError(
            f"model variables ({outside[0]}, ...) were not created under strategy.scope(); "
            "build the model inside it"
        )


class _Loop:
    """The compiled multi-step loop bound to one run's data and settings."""

    def __init__(
        self, model, optimizer, x, y, batch_size, seed, augment, strategy, precision, smoothing
    ):
        self.run = step.make_train_loop(model, optimizer, strategy, precision, smoothing)
        # Distributed runs drop a short last batch, so that no replica is ever handed nothing.
        self.drop = strategy is not None and strategy.num_replicas_in_sync > 1
        self.steps = steps_per_epoch(len(x), batch_size, drop_remainder=self.drop)
        self.examples = self.steps * batch_size if self.drop else len(x)
        self.x, self.y = tf.constant(x), tf.constant(y)  # once, not once per epoch
        self.batch_size, self.seed, self.strategy = batch_size, seed, strategy
        self.optimizer = optimizer
        self.augment = AugmentConfig() if augment is True else (augment or None)
        self.seed_tensor = tf.constant(seed, tf.int64)
        self.iterator = None

    def batches(self, progress: Progress):
        """An iterator over the batches from ``progress``'s place to the end of the run,
        made on the first call and kept (its epochs follow one another without a pause)."""
        if self.iterator is None:
            batches = train_dataset(
                self.x,
                self.y,
                self.batch_size,
                self.seed,
                progress.epoch,
                start_step=progress.step,
                augment=self.augment,
                drop_remainder=self.drop,
                end_epoch=progress.end_epoch,
            )
            if self.strategy is not None:
                batches = self.strategy.experimental_distribute_dataset(batches)
            self.iterator = iter(batches)
        return self.iterator

    def run_steps(self, iterator, progress: Progress, count: int) -> bool:
        """Run up to ``count`` steps, adding them to ``progress`` and a row to its history's
        ``steps``; False if a loss was not finite (the steps before it still count)."""
        seen = min(progress.step * self.batch_size, self.examples)
        loss_sum, hits, done, finite, last = self.run(
            iterator,
            self.seed_tensor,
            tf.constant(progress.global_step, tf.int64),
            tf.constant(count, tf.int32),
        )
        progress.step += int(done)
        progress.seen = min(progress.step * self.batch_size, self.examples)
        progress.loss_sum += float(loss_sum)
        progress.hits += int(hits)
        progress.last_loss = float(last)
        if progress.seen > seen:
            progress.history.steps.append(
                {
                    "step": progress.global_step,
                    "epoch": progress.global_step / progress.steps_per_epoch,
                    "loss": float(loss_sum) / (progress.seen - seen),
                    "accuracy": int(hits) / (progress.seen - seen),
                    "learning_rate": float(self.optimizer.current_learning_rate()),
                }
            )
        return bool(finite)


def _run_epoch(loop: _Loop, progress: Progress, callbacks: list[Callback], per_call: int):
    """Train through the rest of the current epoch, a compiled call at a time."""
    iterator = loop.batches(progress)
    while progress.step < progress.steps_per_epoch:
        limits = [c.steps_until_due(progress) for c in callbacks]
        count = min([per_call, progress.steps_per_epoch - progress.step, *filter(None, limits)])
        if not loop.run_steps(iterator, progress, count):
            notes = "".join(c.failure_note() for c in callbacks)
            raise TrainingError(
                f"non-finite loss ({progress.last_loss}) at epoch {progress.epoch + 1}, step "
                f"{progress.step + 1} (step {progress.global_step + 1} of the run); weights "
                f"were not updated{notes}"
            )
        for callback in callbacks:
            callback.on_steps_end(progress)


def _epoch_row(loop: _Loop, progress: Progress, model, validation_data, started: float) -> dict:
    """The finished epoch's metrics: train loss and accuracy, validation's, seconds."""
    row = {
        "epoch": progress.epoch + 1,
        "loss": progress.loss_sum / loop.examples,
        "accuracy": progress.hits / loop.examples,
    }
    if validation_data is not None:
        val = evaluate(model, validation_data)
        row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
    row["seconds"] = time.perf_counter() - started
    return row


def fit(
    model,
    optimizer: Optimizer,
    train_data: Sequence,
    epochs: int = 1,
    batch_size: int = 128,
    validation_data: Sequence | None = None,
    seed: int = 0,
    verbose: int = 1,
    callbacks: Sequence[Callback | Callable] = (),
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
    label_smoothing: float = 0.0,
) -> History:
    """Train ``model`` on ``train_data = (x, y)`` until epoch ``initial_epoch + epochs`` and
    return the :class:`~rawtf.callbacks.History` (train loss/accuracy, validation
    loss/accuracy, seconds).

    ``x`` is uint8 pixels or floats in [0, 1]; ``y`` integer or one-hot labels. Each epoch is
    one pass in the order :func:`rawtf.data.epoch_order` gives; the last batch may be short.
    With ``verbose >= 1`` a progress bar runs on a terminal and one line per epoch is printed.
    ``augment`` (an :class:`rawtf.augment.AugmentConfig`, or ``True`` for the default
    ±10° rotation, ±10% zoom and ±10% shift) warps each training batch. ``callbacks`` are
    :class:`~rawtf.callbacks.Callback` objects or functions ``f(epoch, history)``; one that
    returns True after an epoch stops training (see :class:`EarlyStopping`).

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
    and loss; bfloat16 activations and gradients inside the network). ``strategy`` (a
    ``tf.distribute`` strategy, model and optimiser built under its scope) trains data
    parallel, ``batch_size`` being the global batch. ``steps_per_execution`` steps run per
    compiled call; checkpoints and Ctrl-C still land on exact steps, and the result does not
    depend on it. An optimiser with ``ema_momentum`` leaves the model with the moving
    average of its weights when training ends (validation during training sees the raw
    weights). ``label_smoothing`` (in [0, 1)) trains against targets that put that
    much weight evenly on every class (:func:`rawtf.step.loss_and_hits`); the training loss
    reported is the smoothed one, validation losses are plain cross-entropy.
    """
    _check_arguments(epochs, batch_size, initial_epoch, steps_per_execution, optimizer, resume)
    label_smoothing = check_fraction("label_smoothing", label_smoothing)
    if save_every_steps is not None:
        check_int("save_every_steps", save_every_steps)
    x, y = _pair(train_data, "train_data", "train", model)
    if validation_data is not None:
        validation_data = _pair(validation_data, "validation_data", "val", model)
    _check_strategy(model, strategy)
    hooks: list[Callback] = []
    if logdir:
        hooks.append(TensorBoard(logdir, model, optimizer, validation_data))
    if verbose >= 1:
        hooks.append(ProgressLog(print_fn))
    if checkpoint_dir is not None:
        log = print_fn if verbose >= 1 else (lambda line: None)
        hooks.append(
            CheckpointSaver(
                checkpoint_dir, model, optimizer, keep_checkpoints, save_every_steps, resume, log
            )
        )
    hooks += [as_callback(c) for c in callbacks]
    loop = _Loop(
        model, optimizer, x, y, batch_size, seed, augment, strategy, precision, label_smoothing
    )
    progress = Progress(initial_epoch, loop.steps, initial_epoch + epochs, seed)
    try:
        for hook in hooks:
            hook.on_train_begin(progress)
        while progress.epoch < progress.end_epoch:
            started = time.perf_counter()
            for hook in hooks:
                hook.on_epoch_begin(progress)
            _run_epoch(loop, progress, hooks, steps_per_execution)
            row = _epoch_row(loop, progress, model, validation_data, started)
            progress.next_epoch(row)
            if any([bool(hook.on_epoch_end(progress, row)) for hook in hooks]):
                break
        # After the last checkpoint (which keeps the raw weights, to resume from).
        optimizer.finalize_variable_values(model.trainable_variables)
        for hook in hooks:
            hook.on_train_end(progress)
    finally:
        for hook in hooks:
            hook.close()
    return progress.history
