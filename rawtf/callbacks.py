"""What runs beside the training loop: the history of per-epoch metrics, the
:class:`Callback` hooks :func:`rawtf.fit` calls, and the collaborators built on them —
progress and epoch lines, TensorBoard summaries, checkpoint saving (with Ctrl-C handling),
and :class:`EarlyStopping`.

The loop itself only counts steps; everything else is a callback, called in this order:
``on_train_begin``, then per epoch ``on_epoch_begin``, ``on_steps_end`` after every
compiled call (whose length ``steps_until_due`` may shorten), ``on_epoch_end`` (returning
True stops training), and ``on_train_end``; ``close`` runs however training ends.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rawtf import plots
from rawtf._io import write_failure_reason
from rawtf._tf import import_tensorflow
from rawtf.checkpoint import TrainingCheckpoint
from rawtf.data import to_float
from rawtf.errors import CheckpointError, ConfigError, TrainingInterrupted, check_int
from rawtf.metrics import predict

tf = import_tensorflow()


class History:
    """What training recorded: ``epochs``, one row of metrics per epoch (also as columns,
    ``history["loss"][e]``), and ``steps``, the running values at the end of each compiled
    call (``step``, fractional ``epoch``, ``loss`` and ``accuracy`` since the previous
    row, ``learning_rate``) for plotting within epochs."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.steps: list[dict[str, float]] = []

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
        if not self.epochs:
            return "History(no epochs)"
        last = self.epochs[-1]
        shown = "  ".join(
            f"{k}={last[k]:.4f}"
            for k in ("loss", "accuracy", "val_loss", "val_accuracy")
            if k in last
        )
        return f"History({len(self.epochs)} epoch(s); last: {shown})"

    def _repr_html_(self) -> str:
        keys = list(dict.fromkeys(k for row in self.epochs for k in row))
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(row.get(k))}</td>" for k in keys) + "</tr>"
            for row in self.epochs
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not float(value).is_integer():
        return f"{value:.4f}"
    return html.escape(str(value))


@dataclasses.dataclass
class Progress:
    """Where a training run stands: in epoch ``epoch`` (0-based), ``step`` steps done of
    ``steps_per_epoch`` (``seen`` examples), with the epoch's running sums, until epoch
    ``end_epoch``."""

    epoch: int
    steps_per_epoch: int
    end_epoch: int
    seed: int
    step: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    hits: int = 0
    last_loss: float = math.nan
    history: History = dataclasses.field(default_factory=History)

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step

    def next_epoch(self, row: dict[str, float]) -> None:
        """Record the finished epoch's ``row`` and stand at the start of the next one."""
        self.history.append(row)
        self.epoch, self.step, self.seen, self.loss_sum, self.hits = self.epoch + 1, 0, 0, 0.0, 0

    @property
    def running(self) -> dict[str, float]:
        """The epoch's mean loss and accuracy so far (empty before its first step)."""
        if not self.seen:
            return {}
        return {"loss": self.loss_sum / self.seen, "accuracy": self.hits / self.seen}


class Callback:
    """Hooks :func:`rawtf.fit` calls; each does nothing unless overridden."""

    def on_train_begin(self, progress: Progress) -> None:
        pass

    def on_epoch_begin(self, progress: Progress) -> None:
        pass

    def steps_until_due(self, progress: Progress) -> int | None:
        """Steps that may run before this callback needs to act (None: any number)."""
        return None

    def on_steps_end(self, progress: Progress) -> None:
        pass

    def on_epoch_end(self, progress: Progress, row: dict[str, float]) -> bool | None:
        """Called with the finished epoch's metrics (``progress`` already stands at the
        next epoch); return True to stop training."""
        return None

    def on_train_end(self, progress: Progress) -> None:
        pass

    def failure_note(self) -> str:
        """Words appended to an error that stops training (what is still intact)."""
        return ""

    def close(self) -> None:
        """Release what the callback holds, however training ended."""


class FunctionCallback(Callback):
    """A plain ``function(epoch, history)`` as a callback (``epoch`` 0-based; a True result
    stops training); its ``on_train_end()`` method, if any, is called at the end."""

    def __init__(self, function: Callable[[int, History], Any]):
        self.function = function

    def on_epoch_end(self, progress, row):
        return bool(self.function(row["epoch"] - 1, progress.history))

    def on_train_end(self, progress):
        if hasattr(self.function, "on_train_end"):
            self.function.on_train_end()


def as_callback(candidate) -> Callback:
    """``candidate`` if it is a :class:`Callback`, else a plain function wrapped."""
    if isinstance(candidate, Callback):
        return candidate
    if callable(candidate):
        return FunctionCallback(candidate)
    raise ConfigError(f"callbacks must be Callback objects or functions, got {candidate!r}")


class EarlyStopping(Callback):
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
        """Look at the newest row of ``history``; True when training should stop."""
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

    def on_epoch_end(self, progress, row):
        return self(row["epoch"] - 1, progress.history)

    def on_train_end(self, progress=None) -> None:
        if self.restore_best_weights and self._best_values is not None:
            for variable, value in zip(self.model.variables, self._best_values, strict=True):
                variable.assign(value)


def format_epoch(row: dict[str, float], total_epochs: int) -> str:
    """One line for an epoch: ``epoch 2/3  loss=0.0421  accuracy=0.9871 ... 31.2s``."""
    parts = [f"epoch {row['epoch']}/{total_epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in row:
            parts.append(f"{key}={row[key]:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a terminal, yet shows a bar)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and get() is not None and "IPKernelApp" in get().config


def _bar_class():
    """tqdm's notebook widget when Jupyter has ipywidgets, its text bar otherwise."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
        except ImportError:
            pass
    return tqdm


class ProgressLog(Callback):
    """A progress bar per epoch on a terminal or in a notebook (tqdm), advancing about four
    times a second with the running mean loss and accuracy, and one line per finished
    epoch, which is all that is written when output goes to a file."""

    #: Seconds between bar updates: compiled calls are shortened to about this long (at a
    #: tenth of a second the extra calls cost a few percent of the epoch; at this, nothing).
    UPDATE_SECONDS = 0.25

    def __init__(self, print_fn: Callable[[str], Any] = print, enabled: bool | None = None):
        self.print_fn = print_fn
        self.enabled = (sys.stderr.isatty() or in_notebook()) if enabled is None else enabled
        self.bar = None
        self.seconds_per_step: float | None = None
        self._mark: tuple[float, int] | None = None
        self._calls = 0

    def on_epoch_begin(self, progress):
        if self.enabled:
            self.bar = _bar_class()(
                total=progress.steps_per_epoch,
                initial=progress.step,
                desc=f"epoch {progress.epoch + 1}/{progress.end_epoch}",
                unit="step",
                leave=False,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        self._mark = (time.perf_counter(), progress.global_step)

    def steps_until_due(self, progress):
        if self.bar is None or not self.seconds_per_step:
            return None
        return max(1, int(self.UPDATE_SECONDS / self.seconds_per_step))

    def on_steps_end(self, progress):
        now = time.perf_counter()
        start, step = self._mark or (now, progress.global_step)
        if progress.global_step > step:
            per_step = (now - start) / (progress.global_step - step)
            if self._calls > 0:  # the first call of a run includes tracing
                known = self.seconds_per_step
                self.seconds_per_step = per_step if known is None else 0.7 * known + 0.3 * per_step
            self._calls += 1
        self._mark = (now, progress.global_step)
        if self.bar is not None:
            running = progress.running
            if running:
                self.bar.set_postfix(
                    loss=f"{running['loss']:.4f}",
                    accuracy=f"{running['accuracy']:.4f}",
                    refresh=False,
                )
            self.bar.update(progress.step - self.bar.n)

    def on_epoch_end(self, progress, row):
        self.close()
        self.print_fn(format_epoch(row, progress.end_epoch))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TensorBoard(Callback):
    """TensorBoard logs laid out as Keras writes them: runs ``LOGDIR/train`` and
    ``LOGDIR/validation`` sharing the tags ``epoch_loss`` and ``epoch_accuracy`` (so their
    curves overlay), ``epoch_learning_rate`` and the weight histograms in ``train``,
    ``batch_loss`` and ``batch_accuracy`` (the epoch's running means) every ``update_freq``
    steps in ``train``, the graph
    of the training step, and the misclassified validation digits, captioned true →
    predicted, in ``validation``. Epoch values are logged at the 0-based epoch, batch
    values at the global step."""

    def __init__(
        self, logdir, model, optimizer, validation_data=None, update_freq: int = 32, images=16
    ):
        try:
            import tensorboard  # noqa: F401  (tf.summary's implementation lives there)
        except ImportError:
            raise ConfigError(
                "logdir needs the tensorboard package: pip install 'rawtf[tensorboard]'"
            ) from None
        check_int("update_freq", update_freq)
        self.writers = {}
        for run in ("train", "validation") if validation_data is not None else ("train",):
            folder = Path(logdir) / run
            try:
                folder.mkdir(parents=True, exist_ok=True)  # by the umask, not TF's 0755
                self.writers[run] = tf.summary.create_file_writer(str(folder))
            except (OSError, tf.errors.OpError) as e:
                raise ConfigError(
                    f"{folder}: cannot write TensorBoard logs ({write_failure_reason(e)})"
                ) from None
        self.model, self.optimizer, self.validation = model, optimizer, validation_data
        self.update_freq, self.images = update_freq, images
        self.tracing = False

    def on_train_begin(self, progress):
        tf.summary.trace_on(graph=True)  # the training step is traced on its first call
        self.tracing = True

    def steps_until_due(self, progress):
        return self.update_freq - progress.global_step % self.update_freq

    def on_steps_end(self, progress):
        with self.writers["train"].as_default(step=progress.global_step):
            if self.tracing:
                tf.summary.trace_export("train_step", step=progress.global_step)
                self.tracing = False
            running = progress.running  # the epoch's mean so far, as Keras logs it
            if progress.global_step % self.update_freq == 0 and running:
                tf.summary.scalar("batch_loss", running["loss"])
                tf.summary.scalar("batch_accuracy", running["accuracy"])

    def on_epoch_end(self, progress, row):
        epoch = row["epoch"] - 1
        with self.writers["train"].as_default(step=epoch):
            tf.summary.scalar("epoch_loss", row["loss"])
            tf.summary.scalar("epoch_accuracy", row["accuracy"])
            tf.summary.scalar("epoch_learning_rate", self.optimizer.current_learning_rate())
            for path, variable in self.model.variable_map().items():
                tf.summary.histogram(path, variable)
        if "validation" in self.writers:
            with self.writers["validation"].as_default(step=epoch):
                tf.summary.scalar("epoch_loss", row["val_loss"])
                tf.summary.scalar("epoch_accuracy", row["val_accuracy"])
                self._misclassified()
        for writer in self.writers.values():
            writer.flush()

    def _misclassified(self) -> None:
        """The first misclassified validation digits, each captioned true → predicted."""
        x, y = self.validation
        probabilities, predicted = predict(self.model, x[:2000])
        wrong = (predicted != y[: len(predicted)]).nonzero()[0][: self.images]
        if not len(wrong):
            return
        captions = "; ".join(
            f"{n + 1}: {int(y[i])} → {int(predicted[i])} ({probabilities[i].max():.2f})"
            for n, i in enumerate(wrong)
        )
        tf.summary.image(
            "misclassified",
            to_float(x[wrong]),  # NHWC: fit checked the validation images
            max_outputs=self.images,
            description=f"true → predicted (confidence), in order: {captions}",
        )
        grid = _captioned_grid(x[wrong], y[wrong], probabilities[wrong])
        if grid is not None:
            tf.summary.image("misclassified_captioned", grid[None], max_outputs=1)

    def close(self):
        if self.tracing:
            tf.summary.trace_off()
            self.tracing = False
        for writer in self.writers.values():
            writer.close()


def _captioned_grid(images, labels, probabilities):
    """The digits drawn with their captions (uint8 RGBA pixels), or None without matplotlib."""
    try:
        figure = plots.plot_misclassified(images, labels, probabilities, count=len(images))
    except ConfigError:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=plots.DPI)
    return tf.io.decode_png(buffer.getvalue(), channels=4)


class InterruptFlag:
    """While installed, Ctrl-C (SIGINT) only raises a flag that the loop checks after each
    compiled call; a second Ctrl-C interrupts at once. rawtf installs its own handler even
    where a parent left SIGINT ignored."""

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
            self._previous = None
        return False


def check_resume(resume) -> None:
    """A :class:`ConfigError` unless ``resume`` is ``"auto"``, True or False."""
    if resume not in ("auto", True, False):
        raise ConfigError(f"resume must be 'auto', True or False, got {resume!r}")


class CheckpointSaver(Callback):
    """Training checkpoints in ``directory``: after every epoch, every ``every_steps``
    steps and on Ctrl-C (then :class:`rawtf.errors.TrainingInterrupted` is raised), plus
    the best by validation accuracy. On ``on_train_begin`` it resumes from the latest
    checkpoint: ``resume="auto"`` if there is one, ``True`` requires one, ``False`` requires
    that there be none."""

    def __init__(
        self,
        directory,
        model,
        optimizer,
        keep: int = 3,
        every_steps: int | None = None,
        resume: bool | str = "auto",
        log: Callable[[str], Any] = lambda line: None,
    ):
        check_resume(resume)
        if every_steps is not None:
            check_int("save_every_steps", every_steps)
        self.checkpoint = TrainingCheckpoint(directory, model, optimizer, keep=keep)
        self.directory, self.every, self.resume, self.log = directory, every_steps, resume, log
        self.interrupt = InterruptFlag()

    def on_train_begin(self, progress):
        latest = self.checkpoint.latest
        if latest and self.resume is False:
            raise CheckpointError(
                f"{self.directory}: holds checkpoints of an earlier run; resume it or use "
                "another folder"
            )
        if self.resume is True or (self.resume == "auto" and latest):
            state = self.checkpoint.restore(progress.seed)
            progress.epoch, progress.step = state["epoch"], state["step_in_epoch"]
            progress.loss_sum, progress.hits = state["loss_sum"], state["correct"]
            for row in state["history"]:
                progress.history.append(row)
            self.log(f"resuming from epoch {progress.epoch + 1}, step {progress.step} ({latest})")
        self.interrupt.__enter__()

    def save(self, progress: Progress) -> str:
        path = self.checkpoint.save(
            progress.seed,
            progress.epoch,
            progress.step,
            progress.loss_sum,
            progress.hits,
            progress.history.epochs,
            progress.global_step,
        )
        self.log(f"saved checkpoint at step {progress.global_step}: {path}")
        return path

    def steps_until_due(self, progress):
        return self.every - progress.global_step % self.every if self.every else None

    def on_steps_end(self, progress):
        due = self.every and progress.global_step % self.every == 0
        if due and progress.step < progress.steps_per_epoch:
            self.save(progress)
        if self.interrupt.raised:
            path = self.save(progress)
            raise TrainingInterrupted(
                f"interrupted at epoch {progress.epoch + 1}, step {progress.step}; "
                f"checkpoint saved to {path}"
            )

    def on_epoch_end(self, progress, row):
        if "val_accuracy" in row:
            self.checkpoint.save_if_best(row["val_accuracy"], progress.global_step)
        self.save(progress)

    def failure_note(self):
        latest = self.checkpoint.latest
        return f"; the last checkpoint ({latest}) is intact" if latest else ""

    def close(self):
        self.interrupt.__exit__(None, None, None)
