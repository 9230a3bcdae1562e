"""Training checkpoints: the model (with batch-norm state), the optimiser's slots and step,
and where training stands, through ``tf.train.CheckpointManager``; the best by validation
accuracy kept apart in ``best/``. :class:`rawtf.callbacks.CheckpointSaver` decides when to
save and resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from rawtf._io import current_umask, write_errors, write_failure_reason
from rawtf._tf import import_tensorflow
from rawtf.errors import CheckpointError
from rawtf.models import Model
from rawtf.saving import restore_checkpoint

tf = import_tensorflow()


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

    def __init__(self, directory: str | os.PathLike, model: Model, optimizer, keep: int = 3):
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
        restore_checkpoint(self.checkpoint, prefix, self.model, "does not match this training run")
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
        return _save(self.manager, int(global_step))

    def save_if_best(self, accuracy: float, global_step: int) -> bool:
        """Keep this state as ``best/`` when ``accuracy`` beats every earlier one."""
        if accuracy <= float(self.progress.best):
            return False
        previous = float(self.progress.best)
        self.progress.best.assign(float(accuracy))
        try:
            _save(self.best_manager, int(global_step))
        except CheckpointError:
            self.progress.best.assign(previous)
            raise
        return True


def _save(manager, number: int) -> str:
    """``manager.save``; a failed write (a full disk, say) is a :class:`CheckpointError`
    and leaves no temporary files, the latest checkpoint still in force."""
    directory = Path(manager.directory)
    try:
        path = manager.save(checkpoint_number=number)
        os.chmod(directory, 0o777 & ~current_umask())  # TensorFlow makes it 0755
        return path
    except write_errors() as e:
        # TensorFlow writes into "<prefix>_temp/" (and "<file>.tempstate*") and renames after.
        for leftover in [*directory.glob(f"ckpt-{number}*_temp*"), *directory.glob("*.tempstate*")]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        raise CheckpointError(
            f"{directory}: cannot write checkpoint {number} ({write_failure_reason(e)})"
        ) from None
