"""Layers as pure functions over ``tf.nn`` ops.

Every function takes its parameters explicitly (no hidden state) and checks the rank and
channels of its input, raising :class:`rawtf.errors.ShapeError` with the expected and the
actual shape. Images are NHWC throughout. Their output shapes in closed form
(``conv2d_output_shape`` and the rest) live in :mod:`rawtf.specs`, which needs no
TensorFlow, and are importable from here too.
"""

from __future__ import annotations

import functools
import math

from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError, ShapeError, check_fraction, check_int
from rawtf.specs import (  # noqa: F401  (the closed-form shapes, beside their layers)
    check_padding,
    conv2d_output_shape,
    conv_output_size,
    dense_output_shape,
    flatten_output_shape,
    max_pool_output_shape,
)

tf = import_tensorflow()


def _static_shape(x) -> tuple:
    return (
        tuple(x.shape.as_list())
        if hasattr(x, "shape") and hasattr(x.shape, "as_list")
        else tuple(x.shape)
    )


def _cast_to(t, x):
    """``t`` in ``x``'s dtype: under mixed precision the float32 variables are used in the
    compute dtype (bfloat16), and their gradients flow back to them in float32."""
    if t is None:
        return None
    t = tf.convert_to_tensor(t)
    return t if t.dtype == x.dtype else tf.cast(t, x.dtype)


def _check_rank(x, rank: int, layer: str, expected: str):
    if x.shape.rank != rank:
        raise ShapeError(
            f"{layer}: expected a rank-{rank} input {expected}, got shape {_static_shape(x)}"
        )


# ----------------------------------------------------------------------------- layers


def conv2d(x, W, b=None, stride: int = 1, padding: str = "SAME"):
    """2-D convolution ``x * W (+ b)``; ``W`` is ``[kh, kw, in_channels, out_channels]``,
    used in ``x``'s dtype (so bfloat16 inputs compute in bfloat16)."""
    x = tf.convert_to_tensor(x)
    _check_rank(x, 4, "conv2d", "(N, H, W, C)")
    W = tf.convert_to_tensor(W)
    if W.shape.rank != 4:
        raise ShapeError(f"conv2d: kernel must be [kh, kw, in, out], got shape {_static_shape(W)}")
    if x.shape[-1] is not None and x.shape[-1] != W.shape[2]:
        raise ShapeError(
            f"conv2d: input has {x.shape[-1]} channels but the kernel {_static_shape(W)} "
            f"expects {W.shape[2]}"
        )
    check_int("stride", stride)
    y = tf.nn.conv2d(x, _cast_to(W, x), strides=stride, padding=check_padding(padding))
    return y if b is None else tf.nn.bias_add(y, _cast_to(b, x))


def max_pool(x, window: int = 2, stride: int = 2, padding: str = "SAME"):
    """Max over ``window x window`` patches every ``stride`` pixels."""
    x = tf.convert_to_tensor(x)
    _check_rank(x, 4, "max_pool", "(N, H, W, C)")
    check_int("window", window)
    check_int("stride", stride)
    return tf.nn.max_pool2d(x, ksize=window, strides=stride, padding=check_padding(padding))


def flatten(x):
    """``(N, ...) -> (N, prod(...))``."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank is None or x.shape.rank < 2:
        raise ShapeError(f"flatten: expected a batch of rank >= 2, got shape {_static_shape(x)}")
    size = math.prod(x.shape[1:]) if x.shape[1:].is_fully_defined() else -1
    return tf.reshape(x, [-1, size])


def dense(x, W, b=None):
    """Affine map ``x @ W (+ b)``; ``W`` is ``[in, out]``, used in ``x``'s dtype. Large
    weights get their input gradient transposed (see :data:`TRANSPOSED_GRADIENT_MIN`)."""
    x = tf.convert_to_tensor(x)
    _check_rank(x, 2, "dense", "(N, D)")
    W = tf.convert_to_tensor(W)
    if W.shape.rank != 2:
        raise ShapeError(f"dense: weights must be [in, out], got shape {_static_shape(W)}")
    if x.shape[-1] is not None and x.shape[-1] != W.shape[0]:
        raise ShapeError(
            f"dense: input has {x.shape[-1]} features but the weights {_static_shape(W)} "
            f"expect {W.shape[0]}"
        )
    W, b = _cast_to(W, x), _cast_to(b, x)
    if _transposed_input_gradient(W):
        return _affine_transposed_input_gradient(x, W, b)
    y = tf.matmul(x, W)
    return y if b is None else tf.nn.bias_add(y, b)


#: A dense layer whose weights have at least this many rows and columns gets its input
#: gradient as ``(W g^T)^T`` instead of ``g W^T`` (the same sums): oneDNN runs the plain form
#: slowly for large matrices on CPUs (``docs/results.md``, "Speed levers").
TRANSPOSED_GRADIENT_MIN = 512


def _transposed_input_gradient(W) -> bool:
    rows, cols = W.shape
    return rows is not None and cols is not None and min(rows, cols) >= TRANSPOSED_GRADIENT_MIN


def _affine_transposed_input_gradient(x, W, b):
    """``x @ W (+ b)`` with the input gradient computed as ``(W g^T)^T``."""

    @tf.custom_gradient
    def affine(x, W, *bias):
        def grad(g):
            dx = tf.transpose(tf.matmul(W, g, transpose_b=True))
            dW = tf.matmul(x, g, transpose_a=True)
            return (dx, dW, *(tf.reduce_sum(g, axis=0) for _ in bias))

        y = tf.matmul(x, W)
        return (tf.nn.bias_add(y, bias[0]) if bias else y), grad

    return affine(x, W) if b is None else affine(x, W, b)


def dropout(x, rate: float, seed=None, training: bool = False):
    """Zero each element with probability ``rate`` and scale the rest by ``1/(1-rate)``,
    in training only. ``seed`` is a stateless ``[2]`` int seed: the same seed gives the
    same mask, which is what makes runs repeatable and resumable."""
    check_fraction("dropout rate", rate)
    if not training or rate == 0.0:
        return x
    if seed is None:
        raise ConfigError("dropout in training needs a stateless seed (a [2] integer tensor)")
    return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)


def relu(x):
    return tf.nn.relu(x)


def batch_norm(
    x,
    gamma,
    beta,
    moving_mean,
    moving_variance,
    training: bool = False,
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    fused: bool = False,
):
    """Batch normalisation over every axis but the last (N, H, W for images; N for features)::

        y = gamma * (x - mean) / sqrt(var + epsilon) + beta

    In training ``mean, var`` are the batch's moments (biased variance) and the moving
    statistics are updated in place, as Keras 3 does::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
        moving_variance = momentum * moving_variance + (1 - momentum) * var

    Outside training the moving statistics are used and nothing changes. With ``fused``,
    TensorFlow's fused kernel is used (in inference too; (N, C) inputs go through it as
    (N, 1, 1, C), a few kernels fewer than the moments); in training its variance
    output carries Bessel's ``n/(n-1)``, which is undone so the moving variance matches the
    biased one. The fused kernel rounds differently (about 1e-6 relative per layer, which a
    deep stack of normalisations amplifies), so the default is the exact two-op form.

    A bfloat16 ``x`` is normalised with float32 statistics and parameters (the fused kernel
    takes it as is; the two-op form computes in float32) and the result is bfloat16."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank not in (2, 4):
        raise ShapeError(
            f"batch_norm: expected an (N, C) or (N, H, W, C) input, got shape {_static_shape(x)}"
        )
    channels = gamma.shape[-1]
    if x.shape[-1] is not None and x.shape[-1] != channels:
        raise ShapeError(f"batch_norm: input has {x.shape[-1]} channels but gamma has {channels}")
    # (N, C) through the fused kernel as (N, 1, 1, C); bfloat16 through the two-op form in
    # float32. Each case is the same normalisation of a reshaped or recast input.
    again = functools.partial(
        batch_norm,
        gamma=gamma,
        beta=beta,
        moving_mean=moving_mean,
        moving_variance=moving_variance,
        training=training,
        momentum=momentum,
        epsilon=epsilon,
        fused=fused,
    )
    if fused and x.shape.rank == 2:
        return again(x[:, tf.newaxis, tf.newaxis, :])[:, 0, 0, :]
    if x.dtype != tf.float32 and not fused:
        return tf.cast(again(tf.cast(x, tf.float32)), x.dtype)
    if fused:
        # In training the kernel computes the batch's moments (given empty statistics);
        # in inference it normalises with the moving ones.
        empty = tf.constant([], dtype=tf.float32)
        y, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=gamma,
            offset=beta,
            mean=empty if training else moving_mean,
            variance=empty if training else moving_variance,
            epsilon=epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=bool(training),
        )[:3]
        if not training:
            return y
        n = tf.cast(tf.size(x) // tf.shape(x)[-1], variance.dtype)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
    elif not training:
        return tf.nn.batch_normalization(x, moving_mean, moving_variance, beta, gamma, epsilon)
    else:
        mean, variance = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)))
        y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)
    mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
    moving_mean.assign(moving_mean * momentum + mean * (1.0 - momentum))
    moving_variance.assign(moving_variance * momentum + variance * (1.0 - momentum))
    return y
