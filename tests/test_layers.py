"""Layers against closed-form shapes and a numpy reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rawtf import layers
from rawtf.errors import ConfigError, ShapeError
from tests.conftest import tf


def same_out(n, s):
    return math.ceil(n / s)


def valid_out(n, k, s):
    return math.ceil((n - k + 1) / s)


def pad_amounts(n, k, s, padding):
    """TensorFlow's padding (before, after) along one axis."""
    if padding == "VALID":
        return 0, 0
    out = same_out(n, s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def numpy_conv2d(x, w, stride, padding):
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    ph, pw = pad_amounts(h, kh, stride, padding), pad_amounts(wd, kw, stride, padding)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


def numpy_max_pool(x, k, stride, padding):
    n, h, wd, c = x.shape
    ph, pw = pad_amounts(h, k, stride, padding), pad_amounts(wd, k, stride, padding)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=-np.inf)
    oh = (xp.shape[1] - k) // stride + 1
    ow = (xp.shape[2] - k) // stride + 1
    out = np.empty((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j, :] = xp[
                :, i * stride : i * stride + k, j * stride : j * stride + k, :
            ].max(axis=(1, 2))
    return out


CONV_CASES = list(
    itertools.product(
        [1, 2, 3, 5], [1, 2, 3], ["SAME", "VALID"], [(7, 7), (8, 5), (28, 28), (5, 9)]
    )
)


@pytest.mark.parametrize("kernel,stride,padding,size", CONV_CASES)
def test_conv2d_output_shape_matches_formula_and_op(kernel, stride, padding, size):
    h, w = size
    expected_hw = (
        (same_out(h, stride), same_out(w, stride))
        if padding == "SAME"
        else (valid_out(h, kernel, stride), valid_out(w, kernel, stride))
    )
    predicted = layers.conv2d_output_shape((2, h, w, 3), kernel, 4, stride, padding)
    assert predicted == (2, *expected_hw, 4)
    x = tf.zeros((2, h, w, 3))
    W = tf.zeros((kernel, kernel, 3, 4))
    assert tuple(layers.conv2d(x, W, stride=stride, padding=padding).shape) == predicted


@pytest.mark.parametrize(
    "window,stride,padding,size",
    list(itertools.product([1, 2, 3], [1, 2, 3], ["SAME", "VALID"], [(7, 7), (28, 28), (5, 9)])),
)
def test_max_pool_output_shape_matches_formula_and_op(window, stride, padding, size):
    h, w = size
    expected_hw = (
        (same_out(h, stride), same_out(w, stride))
        if padding == "SAME"
        else (valid_out(h, window, stride), valid_out(w, window, stride))
    )
    predicted = layers.max_pool_output_shape((1, h, w, 2), window, stride, padding)
    assert predicted == (1, *expected_hw, 2)
    assert (
        tuple(layers.max_pool(tf.zeros((1, h, w, 2)), window, stride, padding).shape) == predicted
    )


def test_flatten_and_dense_shapes():
    assert layers.flatten_output_shape((None, 7, 7, 64)) == (None, 3136)
    assert layers.dense_output_shape((None, 3136), 1024) == (None, 1024)
    x = tf.zeros((3, 7, 7, 64))
    assert tuple(layers.flatten(x).shape) == (3, 3136)
    assert tuple(layers.dense(layers.flatten(x), tf.zeros((3136, 5))).shape) == (3, 5)


def test_valid_window_larger_than_input_is_a_shape_error():
    with pytest.raises(ShapeError, match="does not fit"):
        layers.conv2d_output_shape((1, 3, 3, 1), 5, 1, 1, "VALID")


@pytest.mark.parametrize(
    "kernel,stride,padding", [(3, 1, "SAME"), (5, 2, "SAME"), (3, 2, "VALID"), (5, 1, "VALID")]
)
def test_conv2d_values_match_numpy(rng, kernel, stride, padding):
    x = rng.normal(size=(2, 9, 8, 3))
    w = rng.normal(size=(kernel, kernel, 3, 4))
    b = rng.normal(size=(4,))
    got = layers.conv2d(tf.constant(x, tf.float64), tf.constant(w), tf.constant(b), stride, padding)
    np.testing.assert_allclose(
        got.numpy(), numpy_conv2d(x, w, stride, padding) + b, rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    "window,stride,padding", [(2, 2, "SAME"), (3, 2, "SAME"), (2, 1, "VALID"), (3, 3, "SAME")]
)
def test_max_pool_values_match_numpy(rng, window, stride, padding):
    x = rng.normal(size=(2, 7, 9, 3))
    got = layers.max_pool(tf.constant(x), window, stride, padding)
    np.testing.assert_array_equal(got.numpy(), numpy_max_pool(x, window, stride, padding))


def test_dense_and_relu_match_numpy(rng):
    x, w, b = rng.normal(size=(5, 6)), rng.normal(size=(6, 3)), rng.normal(size=(3,))
    got = layers.relu(layers.dense(tf.constant(x), tf.constant(w), tf.constant(b)))
    np.testing.assert_allclose(got.numpy(), np.maximum(x @ w + b, 0), rtol=1e-12)


@pytest.mark.parametrize(
    "rows, cols, bias",
    [
        (6, 3, True),
        (layers.TRANSPOSED_GRADIENT_MIN, layers.TRANSPOSED_GRADIENT_MIN + 8, True),
        (layers.TRANSPOSED_GRADIENT_MIN + 8, layers.TRANSPOSED_GRADIENT_MIN, False),
    ],
)
def test_dense_gradients_match_numpy(rng, rows, cols, bias):
    """Both ways of computing the input gradient (plain, and transposed for large weights)
    give the closed-form gradients of sum(g * (x @ W + b))."""
    assert layers._transposed_input_gradient(tf.zeros((rows, cols))) == (rows >= 512 <= cols)
    x, w, b = rng.normal(size=(7, rows)), rng.normal(size=(rows, cols)), rng.normal(size=cols)
    g = rng.normal(size=(7, cols))
    tensors = [tf.constant(x), tf.constant(w)] + ([tf.constant(b)] if bias else [])
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        y = layers.dense(*tensors)
        loss = tf.reduce_sum(y * g)
    np.testing.assert_allclose(y.numpy(), x @ w + (b if bias else 0), rtol=1e-10)
    grads = tape.gradient(loss, tensors)
    np.testing.assert_allclose(grads[0].numpy(), g @ w.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads[1].numpy(), x.T @ g, rtol=1e-10, atol=1e-10)
    if bias:
        np.testing.assert_allclose(grads[2].numpy(), g.sum(axis=0), rtol=1e-10, atol=1e-10)


def test_dense_transposed_gradient_in_bfloat16_flows_back_to_float32_weights(rng):
    """Under mixed precision the large-layer path computes in bfloat16 and the weights'
    gradient arrives in float32, close to the float32 one."""
    n = layers.TRANSPOSED_GRADIENT_MIN
    x = tf.constant(rng.normal(size=(4, n)), tf.float32)
    w = tf.Variable(rng.normal(size=(n, n)).astype(np.float32) / n**0.5)
    g = tf.constant(rng.normal(size=(4, n)), tf.float32)
    grads = []
    for dtype in (tf.float32, tf.bfloat16):
        with tf.GradientTape() as tape:
            y = layers.dense(tf.cast(x, dtype), w)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * g)
        grads.append(tape.gradient(loss, w))
    assert grads[1].dtype == tf.float32
    np.testing.assert_allclose(grads[0].numpy(), x.numpy().T @ g.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[1].numpy(), grads[0].numpy(), rtol=0.05, atol=0.05)


def test_shape_errors_name_expected_and_actual():
    with pytest.raises(
        ShapeError, match=r"conv2d: expected a rank-4 input .* got shape \(28, 28\)"
    ):
        layers.conv2d(tf.zeros((28, 28)), tf.zeros((3, 3, 1, 2)))
    with pytest.raises(ShapeError, match="input has 3 channels but the kernel"):
        layers.conv2d(tf.zeros((1, 8, 8, 3)), tf.zeros((3, 3, 1, 2)))
    with pytest.raises(ShapeError, match="dense: input has 4 features"):
        layers.dense(tf.zeros((2, 4)), tf.zeros((5, 3)))
    with pytest.raises(ShapeError, match="max_pool: expected a rank-4"):
        layers.max_pool(tf.zeros((2, 4)))
    with pytest.raises(ConfigError, match="padding"):
        layers.conv2d(tf.zeros((1, 8, 8, 1)), tf.zeros((3, 3, 1, 2)), padding="FULL")


def test_dropout_off_outside_training_and_seeded_inside():
    x = tf.ones((64, 256))
    np.testing.assert_array_equal(
        layers.dropout(x, 0.5, seed=[1, 2], training=False).numpy(), x.numpy()
    )
    a = layers.dropout(x, 0.25, seed=tf.constant([3, 4]), training=True).numpy()
    b = layers.dropout(x, 0.25, seed=tf.constant([3, 4]), training=True).numpy()
    c = layers.dropout(x, 0.25, seed=tf.constant([3, 5]), training=True).numpy()
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    kept = a != 0
    np.testing.assert_allclose(a[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.02  # 16,384 draws: 4 standard deviations is ~0.013
    with pytest.raises(ConfigError, match=r"rate must lie in \[0, 1\)"):
        layers.dropout(x, 1.0, seed=[1, 2], training=True)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (16, 7)])
def test_batch_norm_matches_numpy(rng, fused, shape):
    x = (rng.normal(size=shape) * 3 + 1).astype(np.float32)
    c = shape[-1]
    gamma, beta = rng.random(c).astype(np.float32) + 0.5, rng.normal(size=c).astype(np.float32)
    mean0, var0 = rng.normal(size=c).astype(np.float32), rng.random(c).astype(np.float32) + 0.5
    moving_mean, moving_var = tf.Variable(mean0), tf.Variable(var0)
    axes = tuple(range(len(shape) - 1))
    mu, var = x.mean(axis=axes), x.var(axis=axes)  # biased variance
    y = layers.batch_norm(
        x,
        gamma,
        beta,
        moving_mean,
        moving_var,
        training=True,
        momentum=0.9,
        epsilon=1e-3,
        fused=fused,
    )
    np.testing.assert_allclose(
        y.numpy(), gamma * (x - mu) / np.sqrt(var + 1e-3) + beta, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(moving_mean.numpy(), 0.9 * mean0 + 0.1 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moving_var.numpy(), 0.9 * var0 + 0.1 * var, rtol=1e-5, atol=1e-6)
    # Inference: moving statistics, and no update.
    m, v = moving_mean.numpy(), moving_var.numpy()
    y = layers.batch_norm(
        x, gamma, beta, moving_mean, moving_var, training=False, epsilon=1e-3, fused=fused
    )
    np.testing.assert_allclose(
        y.numpy(), gamma * (x - m) / np.sqrt(v + 1e-3) + beta, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(moving_mean.numpy(), m)


def test_batch_norm_checks_channels():
    with pytest.raises(ShapeError, match="input has 3 channels but gamma has 4"):
        layers.batch_norm(tf.zeros((2, 3)), tf.ones(4), tf.zeros(4), tf.zeros(4), tf.ones(4))
