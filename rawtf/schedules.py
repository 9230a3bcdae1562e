"""Learning-rate schedules: plain callables of the step count (0 for the first update)
returning the learning rate as a float32 tensor. Each is pure, so a run resumed at step
``s`` gets exactly the rate it would have had."""

from __future__ import annotations

import math

from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError, check_int

tf = import_tensorflow()


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return float(value)


class Schedule:
    """Base: subclasses compute ``rate(step)`` from a float32 step tensor."""

    def __call__(self, step) -> tf.Tensor:
        return self.rate(tf.cast(step, tf.float32))

    def rate(self, step: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Constant(Schedule):
    """``lr`` at every step."""

    def __init__(self, lr: float):
        self.lr = _positive("lr", lr)

    def rate(self, step):
        return tf.fill(tf.shape(step), self.lr)


class StepDecay(Schedule):
    """``lr * factor ** floor(step / every)``: multiply by ``factor`` every ``every`` steps."""

    def __init__(self, lr: float, every: int, factor: float = 0.1):
        self.lr = _positive("lr", lr)
        self.every = check_int("every", every)
        if not 0 < factor <= 1:
            raise ConfigError(f"factor must lie in (0, 1], got {factor}")
        self.factor = float(factor)

    def rate(self, step):
        return self.lr * tf.pow(self.factor, tf.floor(step / self.every))


class CosineDecay(Schedule):
    """Linear warm-up from 0 to ``lr`` over ``warmup`` steps, then a half cosine from
    ``lr`` down to ``final_lr`` at ``total`` steps (held there after)::

        t = (step - warmup) / (total - warmup)
        lr(step) = final_lr + (lr - final_lr) * (1 + cos(pi * t)) / 2
    """

    def __init__(self, lr: float, total: int, warmup: int = 0, final_lr: float = 0.0):
        self.lr = _positive("lr", lr)
        self.total = check_int("total", total)
        self.warmup = check_int("warmup", warmup, minimum=0)
        if self.warmup >= self.total:
            raise ConfigError(f"warmup ({warmup}) must be shorter than total ({total})")
        if not 0 <= final_lr <= lr:
            raise ConfigError(f"final_lr must lie in [0, lr], got {final_lr}")
        self.final_lr = float(final_lr)

    def rate(self, step):
        warm = self.lr * (step + 1.0) / max(self.warmup, 1)
        t = tf.clip_by_value((step - self.warmup) / (self.total - self.warmup), 0.0, 1.0)
        cosine = self.final_lr + (self.lr - self.final_lr) * 0.5 * (1.0 + tf.cos(math.pi * t))
        return tf.where(step < self.warmup, warm, cosine)


class OneCycle(Schedule):
    """The one-cycle policy (Smith 2018) in its cosine form: from ``max_lr / div`` up to
    ``max_lr`` over the first ``pct_start`` of ``total`` steps, then down to
    ``max_lr / (div * final_div)``."""

    def __init__(
        self,
        max_lr: float,
        total: int,
        pct_start: float = 0.3,
        div: float = 25.0,
        final_div: float = 1e4,
    ):
        self.max_lr = _positive("max_lr", max_lr)
        self.total = check_int("total", total, minimum=2)
        if not 0 < pct_start < 1:
            raise ConfigError(f"pct_start must lie in (0, 1), got {pct_start}")
        self.pct_start = float(pct_start)
        self.div = _positive("div", div)
        self.final_div = _positive("final_div", final_div)

    def rate(self, step):
        peak = max(1.0, math.floor(self.pct_start * self.total))
        start, end = self.max_lr / self.div, self.max_lr / (self.div * self.final_div)

        def anneal(lo, hi, t):  # cosine from lo (t=0) to hi (t=1)
            return hi + (lo - hi) * 0.5 * (1.0 + tf.cos(math.pi * tf.clip_by_value(t, 0.0, 1.0)))

        up = anneal(start, self.max_lr, step / peak)
        down = anneal(self.max_lr, end, (step - peak) / max(self.total - 1 - peak, 1.0))
        return tf.where(step <= peak, up, down)


SCHEDULES = ("constant", "cosine", "step", "onecycle")


def get_schedule(name: str, lr: float, total_steps: int) -> Schedule:
    """The schedule ``name`` with peak rate ``lr`` for a run of ``total_steps`` updates:
    ``constant``; ``cosine`` (to 0 at the end, no warm-up); ``step`` (x0.1 half-way);
    ``onecycle`` (``lr`` is the peak, reached at 30% of the run)."""
    if name == "constant":
        return Constant(lr)
    if name == "cosine":
        return CosineDecay(lr, total_steps)
    if name == "step":
        return StepDecay(lr, every=max(1, total_steps // 2), factor=0.1)
    if name == "onecycle":
        return OneCycle(lr, max(total_steps, 2))
    raise ConfigError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
