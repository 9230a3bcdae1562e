"""Initialisers, and declaring a model's weight and bias dictionaries.

Every initialiser is stateless: ``initializer(shape, seed)`` with ``seed`` a pair of ints
returns the same values for the same seed, so a model built twice with one seed is equal.

- ``he``: truncated normal, stddev ``sqrt(2 / fan_in) / 0.8796`` (He et al. 2015; the
  divisor undoes the truncation at two standard deviations, as Keras's ``HeNormal``).
- ``glorot``: uniform on ``±sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010).
- ``normal``: standard normal (stddev 1.0) for weights *and* biases, as the original
  low-level tutorial does with ``random_normal``; trains poorly, kept for reproduction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError

tf = import_tensorflow()

_TRUNCATED_NORMAL_STDDEV = 0.87962566103423978  # stddev of N(0, 1) truncated to [-2, 2]


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a dense ``[in, out]`` or conv ``[kh, kw, in, out]`` kernel."""
    if len(shape) < 2:
        return (shape[0] if shape else 1,) * 2
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def he_normal(shape, seed):
    fan_in, _ = fans(shape)
    stddev = math.sqrt(2.0 / fan_in) / _TRUNCATED_NORMAL_STDDEV
    return tf.random.stateless_truncated_normal(shape, seed=seed, stddev=stddev)


def glorot_uniform(shape, seed):
    fan_in, fan_out = fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.stateless_uniform(shape, seed=seed, minval=-limit, maxval=limit)


def normal(shape, seed):
    return tf.random.stateless_normal(shape, seed=seed, stddev=1.0)


def zeros(shape, seed=None):
    return tf.zeros(shape)


def ones(shape, seed=None):
    return tf.ones(shape)


INITIALIZERS: dict[str, Callable] = {"he": he_normal, "glorot": glorot_uniform, "normal": normal}
#: Fixed starting values, for variables that do not follow the model's scheme (batch norm).
CONSTANTS: dict[str, Callable] = {"zeros": zeros, "ones": ones}


def get_initializer(name: str) -> Callable:
    try:
        return INITIALIZERS[name]
    except KeyError:
        choices = ", ".join(INITIALIZERS)
        raise ConfigError(f"unknown initialiser {name!r}; choose from {choices}") from None


def declare(
    shapes: Mapping[str, Sequence[int]],
    initializer: str | Callable,
    seed: int,
    stream: int,
    trainable: bool = True,
    overrides: Mapping[str, str | Callable] | None = None,
    aggregation=None,
) -> dict[str, tf.Variable]:
    """One ``tf.Variable`` per ``name: shape``, named ``name``, filled by ``initializer``
    (or by ``overrides[name]`` where given, a function or a :data:`CONSTANTS` name: batch
    norm's gamma starts at ``"ones"``, say).
    ``aggregation`` tells a ``tf.distribute`` strategy how replicas' updates combine
    (default: every replica applies the same all-reduced update, so the first one's is kept).

    The k-th variable of ``stream`` draws from the stateless seed ``(seed, stream * 1000 + k)``,
    so weights and biases (different streams) never share random numbers."""
    init = get_initializer(initializer) if isinstance(initializer, str) else initializer
    fill = {
        name: CONSTANTS[how] if isinstance(how, str) else how
        for name, how in (overrides or {}).items()
    }
    return {
        name: tf.Variable(
            fill.get(name, init)(list(shape), seed=[int(seed), stream * 1000 + k]),
            name=name,
            trainable=trainable,
            dtype=tf.float32,
            aggregation=aggregation or tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        for k, (name, shape) in enumerate(shapes.items())
    }
