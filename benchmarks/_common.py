"""Helpers shared by the benchmarks: quiet TensorFlow, the Keras twins (Keras is used only
in tests and benchmarks, as a reference), and robust summary statistics."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rawtf._tf import import_tensorflow  # noqa: E402
from tests.keras_twins import copy_weights, keras_twin  # noqa: E402

tf = import_tensorflow()

__all__ = [
    "ROOT",
    "compiled_keras_twin",
    "copy_weights",
    "keras_twin",
    "matmul_run",
    "pair_rounds",
    "spread",
    "tf",
    "timed",
    "with_setting",
]


def spread(values: list[float]) -> str:
    """``median (min-max)`` of ``values``."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def timed(n: int, fn):
    """A function running ``fn`` once and returning ``n`` items / seconds taken."""

    def run():
        start = time.perf_counter()
        fn()
        return n / (time.perf_counter() - start)

    return run


def with_setting(module, name: str, value, run):
    """A function calling ``run`` with ``module.name`` set to ``value`` (restored after) and
    returning its result; a setting read when a step is traced takes effect in the first
    (warm-up) call."""

    def wrapped():
        saved = getattr(module, name)
        setattr(module, name, value)
        try:
            return run()
        finally:
            setattr(module, name, saved)

    return wrapped


def pair_rounds(ours, theirs, count: int) -> tuple[list[float], list[float]]:
    """Warm both up, then ``count`` rounds of back-to-back runs (ours first in even
    rounds, theirs first in odd ones); returns each one's rates."""
    ours(), theirs()
    a, b = [], []
    for r in range(count):
        if r % 2 == 0:
            a.append(ours())
            b.append(theirs())
        else:
            b.append(theirs())
            a.append(ours())
    return a, b


def compiled_keras_twin(name: str, policy: str = "float32"):
    """The Keras twin of model ``name`` under dtype ``policy``, compiled as a Keras user
    would: Adam 1e-3, sparse cross-entropy on logits, accuracy."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        twin = keras_twin(name)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return twin


def matmul_run(dtype=None, size: int = 4096):
    """A function timing one large matmul (fp32 unless ``dtype``) and returning its FLOP/s:
    the machine's practical peak at that moment."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    if dtype is not None:
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32)))
    matmul().numpy()
    return timed(2 * size**3, lambda: matmul().numpy())
