"""Saving and loading models: the variables through ``tf.train.Checkpoint`` and a
``config.json`` naming the architecture and its settings. No pickle.

A saved model folder::

    DIR/config.json          {"format": "rawtf-model", "model": "tutorial", "config": {...}}
    DIR/variables/ckpt.*     the tf.train.Checkpoint of the model's variables

Folders are written atomically: everything goes to a temporary folder beside ``DIR``, which
is then renamed into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rawtf import __version__
from rawtf import models as M
from rawtf._tf import import_tensorflow
from rawtf.errors import CheckpointError, RawtfError

tf = import_tensorflow()

FORMAT = "rawtf-model"
CONFIG_FILE = "config.json"
VARIABLES_PREFIX = "variables/ckpt"


def _replace_dir(tmp: Path, directory: Path) -> None:
    """Move the finished folder ``tmp`` to ``directory``, replacing an old one there."""
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
        os.replace(directory, old / directory.name)
    os.replace(tmp, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _atomic_folder(directory: Path, marker: str, kind: str):
    """Yield a temporary folder beside ``directory``; when the block succeeds it replaces
    ``directory``. An existing ``directory`` without ``marker`` (not a rawtf ``kind``
    folder) is never replaced, unless it is an empty folder."""
    if directory.exists() and not (directory / marker).is_file():
        if not directory.is_dir() or any(directory.iterdir()):
            raise CheckpointError(
                f"{directory}: exists and is not a {kind} folder; refusing to replace it"
            )
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    except OSError as e:
        raise CheckpointError(f"{directory}: cannot write ({e.strerror or e})") from None
    try:
        yield tmp
        _replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomically(payload: Any, path: Path) -> None:
    """Write ``payload`` as JSON through a temporary file renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save(model: M.Model, directory: str | os.PathLike) -> Path:
    """Save ``model`` to ``directory``. An existing rawtf model folder there is replaced;
    any other existing path is left alone and is an error."""
    directory = Path(directory)
    with _atomic_folder(directory, CONFIG_FILE, "rawtf model") as tmp:
        tf.train.Checkpoint(model=model).write(str(tmp / VARIABLES_PREFIX))
        config = {
            "format": FORMAT,
            "rawtf_version": __version__,
            "model": model.model_name,
            "config": model.config,
        }
        write_json_atomically(config, tmp / CONFIG_FILE)
    return directory


def read_json_config(path: Path, fmt: str, folder_kind: str) -> dict[str, Any]:
    """Read the JSON object at ``path``, whose ``format`` field must be ``fmt``."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file (not a rawtf {folder_kind} folder)") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    if not isinstance(config, dict) or config.get("format") != fmt:
        raise CheckpointError(f"{path}: not a rawtf {folder_kind} config (format {fmt!r} expected)")
    return config


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a saved model folder, checked."""
    path = Path(directory) / CONFIG_FILE
    config = read_json_config(path, FORMAT, "model")
    if not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{path}: has no 'config' object naming the architecture")
    return config


def checkpoint_key(path: str) -> str:
    """The key ``tf.train.Checkpoint(model=...)`` stores variable ``path`` under."""
    return f"model/{path}/.ATTRIBUTES/VARIABLE_VALUE"


def check_compatible(model: M.Model, prefix: str) -> None:
    """Raise :class:`CheckpointError` listing every variable that is missing from, extra
    in, or shaped differently in the checkpoint at ``prefix``. ``Checkpoint.restore`` is
    deferred and silent about such mismatches, so they are compared here first."""
    try:
        stored = {
            name: tuple(shape)
            for name, shape in tf.train.list_variables(prefix)
            if name.startswith("model/")
        }
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(
            f"{prefix}: unreadable checkpoint ({str(e).splitlines()[0]})"
        ) from None
    expected = {checkpoint_key(p): tuple(v.shape) for p, v in model.variable_map().items()}
    problems = [f"missing {k.split('/.')[0][6:]}" for k in expected if k not in stored]
    problems += [f"unexpected {k.split('/.')[0][6:]}" for k in stored if k not in expected]
    problems += [
        f"{k.split('/.')[0][6:]} has shape {list(stored[k])}, model expects {list(expected[k])}"
        for k in expected
        if k in stored and stored[k] != expected[k]
    ]
    if problems:
        shown = "; ".join(problems[:6]) + (
            f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        )
        raise CheckpointError(f"{prefix}: does not match model {model.model_name!r}: {shown}")


def restore_variables(model: M.Model, prefix: str) -> None:
    """Load the checkpoint at ``prefix`` into ``model`` after checking that it matches."""
    check_compatible(model, prefix)
    try:
        tf.train.Checkpoint(model=model).read(prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{prefix}: cannot restore ({first})") from None


def load(directory: str | os.PathLike) -> M.Model:
    """Rebuild the model saved in ``directory`` and restore its variables."""
    directory = Path(directory)
    config = read_config(directory)
    settings = dict(config["config"])
    name = settings.pop("model", config.get("model"))
    try:
        model = M.get_model(name, **settings)
    except RawtfError as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
    prefix = directory / VARIABLES_PREFIX
    if not Path(str(prefix) + ".index").is_file():
        raise CheckpointError(f"{prefix}.index: no such file (incomplete model folder)")
    restore_variables(model, str(prefix))
    return model


class _Serving(tf.Module):
    """The exported object: the model and its two serving functions."""

    def __init__(self, model: M.Model, precision: str | None = None):
        super().__init__(name="rawtf_serving")
        M.compute_dtype(precision)  # an unknown precision fails here, before any tracing
        self.model = model
        self.precision = precision
        h, w, c = model.input_shape

        @tf.function(
            input_signature=[tf.TensorSpec([None, h, w, c], tf.float32, name="images")],
            autograph=False,
        )
        def serve_float(images):
            return self._outputs(images)

        @tf.function(
            input_signature=[tf.TensorSpec([None, h, w], tf.uint8, name="images")], autograph=False
        )
        def serve_uint8(images):
            return self._outputs(tf.cast(images, tf.float32)[..., tf.newaxis] * (1.0 / 255.0))

        self.serve_float, self.serve_uint8 = serve_float, serve_uint8

    def _outputs(self, images):
        logits = self.model(images, training=False, dropout=False, precision=self.precision)
        probabilities = tf.nn.softmax(logits)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=1)}


def export_saved_model(
    model: M.Model, directory: str | os.PathLike, precision: str | None = None
) -> Path:
    """Export ``model`` as a SavedModel for serving without rawtf: signature
    ``serving_default`` takes float32 images ``[None, 28, 28, 1]`` in [0, 1], and
    ``serving_uint8`` takes uint8 pixels ``[None, 28, 28]``; both return ``probabilities``
    ``[None, 10]`` (float32) and ``classes`` (int64). ``precision="bf16"`` computes the
    forward pass in bfloat16 (inputs and outputs keep their types). Written to a temporary
    folder, then renamed."""
    directory = Path(directory)
    serving = _Serving(model, precision)
    with _atomic_folder(directory, "saved_model.pb", "SavedModel") as tmp:
        tf.saved_model.save(
            serving,
            str(tmp),
            signatures={
                "serving_default": serving.serve_float,
                "serving_uint8": serving.serve_uint8,
            },
        )
    return directory


# ------------------------------------------------------------- training checkpoints


class _Progress(tf.Module):
    """Where training stands, saved inside every training checkpoint: the run's seed, the
    epoch and the next step in it, the epoch's running sums, and the history so far."""

    def __init__(self):
        super().__init__(name="progress")
        self.seed = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.correct = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.history = tf.Variable("[]", dtype=tf.string, trainable=False)
        self.best = tf.Variable(-1.0, dtype=tf.float64, trainable=False)


class TrainingCheckpoint:
    """Checkpoints of a training run in ``directory``: model (with batch-norm state),
    optimiser slots and step, and progress, through ``tf.train.CheckpointManager`` (the last
    ``keep``), plus the best by validation accuracy in ``directory/best``. Each checkpoint is
    written under a temporary name and only then recorded as the latest, so an interrupted
    save leaves the previous one in force."""

    def __init__(self, directory: str | os.PathLike, model: M.Model, optimizer, keep: int = 3):
        self.directory = Path(directory)
        self.model = model
        self.progress = _Progress()
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, progress=self.progress
        )
        try:
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, str(self.directory), max_to_keep=keep, checkpoint_name="ckpt"
            )
            self.best_manager = tf.train.CheckpointManager(
                self.checkpoint, str(self.directory / "best"), max_to_keep=1, checkpoint_name="ckpt"
            )
        except (OSError, tf.errors.OpError) as e:
            raise CheckpointError(
                f"{self.directory}: cannot use as checkpoint folder ({e})"
            ) from None

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self, seed: int) -> dict[str, Any]:
        """Load the latest checkpoint; returns ``epoch``, ``step_in_epoch``, ``loss_sum``,
        ``correct`` and ``history``. Any mismatch is a :class:`CheckpointError`."""
        prefix = self.latest
        if prefix is None:
            raise CheckpointError(f"{self.directory}: no checkpoint to resume from")
        check_compatible(self.model, prefix)
        try:
            self.checkpoint.read(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{prefix}: does not match this training run ({first})") from None
        if int(self.progress.seed) != int(seed):
            raise CheckpointError(
                f"{prefix}: was written by a run with seed {int(self.progress.seed)}, not {seed}"
            )
        return {
            "epoch": int(self.progress.epoch),
            "step_in_epoch": int(self.progress.step_in_epoch),
            "loss_sum": float(self.progress.loss_sum),
            "correct": int(self.progress.correct),
            "history": json.loads(self.progress.history.numpy().decode()),
        }

    def save(self, seed, epoch, step_in_epoch, loss_sum, correct, history, global_step) -> str:
        p = self.progress
        p.seed.assign(int(seed))
        p.epoch.assign(int(epoch))
        p.step_in_epoch.assign(int(step_in_epoch))
        p.loss_sum.assign(float(loss_sum))
        p.correct.assign(int(correct))
        p.history.assign(json.dumps(list(history)))
        try:
            return self.manager.save(checkpoint_number=int(global_step))
        except (OSError, tf.errors.OpError) as e:
            raise CheckpointError(f"{self.directory}: cannot write checkpoint ({e})") from None

    def save_if_best(self, accuracy: float, global_step: int) -> bool:
        """Keep this state as ``best/`` when ``accuracy`` beats every earlier one."""
        if accuracy <= float(self.progress.best):
            return False
        self.progress.best.assign(float(accuracy))
        self.best_manager.save(checkpoint_number=int(global_step))
        return True
