"""Optimisers against numpy implementations of their update rules."""

from __future__ import annotations

import numpy as np
import pytest

from rawtf import optim
from rawtf.errors import ConfigError
from tests.conftest import tf


def numpy_adam(theta, grads, lr, b1, b2, eps):
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        # Keras's epsilon sits outside the bias correction of v: rescale it to match.
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
    return theta, m, v


@pytest.mark.parametrize("lr,b1,b2,eps", [(1e-3, 0.9, 0.999, 1e-7), (0.05, 0.8, 0.99, 1e-4)])
def test_adam_matches_numpy(rng, lr, b1, b2, eps):
    theta0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(8)]
    var = tf.Variable(theta0, dtype=tf.float64)
    opt = optim.Adam(lr, beta_1=b1, beta_2=b2, epsilon=eps).build([var])
    for g in grads:
        opt.apply([tf.constant(g)], [var])
    theta, m, v = numpy_adam(theta0, grads, lr, b1, b2, eps)
    np.testing.assert_allclose(var.numpy(), theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(opt.slots[0]["m"].numpy(), m, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(opt.slots[0]["v"].numpy(), v, rtol=1e-6, atol=1e-9)
    assert int(opt.iterations) == 8


def test_adam_in_a_compiled_step_matches_eager(rng):
    theta0 = rng.normal(size=(5,)).astype(np.float32)
    grads = [rng.normal(size=(5,)).astype(np.float32) for _ in range(5)]
    eager, compiled = tf.Variable(theta0), tf.Variable(theta0)
    opt_e, opt_c = optim.Adam(0.01).build([eager]), optim.Adam(0.01).build([compiled])
    step = tf.function(lambda g: opt_c.apply([g], [compiled]))
    for g in grads:
        opt_e.apply([tf.constant(g)], [eager])
        step(tf.constant(g))
    np.testing.assert_allclose(compiled.numpy(), eager.numpy(), rtol=1e-6)


def test_slots_are_created_by_build_and_checked():
    a, b = tf.Variable(tf.ones((2, 2)), name="a"), tf.Variable(tf.ones(3), name="b")
    opt = optim.Adam()
    with pytest.raises(ConfigError, match="call build"):
        opt.apply([tf.ones((2, 2))], [a])
    opt.build([a])
    assert [tuple(s["m"].shape) for s in opt.slots] == [(2, 2)]
    with pytest.raises(ConfigError, match="was not passed to build"):
        opt.apply([tf.ones(3)], [b])
    opt.apply([None], [a])  # a variable without a gradient is left alone
    np.testing.assert_array_equal(a.numpy(), np.ones((2, 2)))
    with pytest.raises(ConfigError, match="learning rate must be positive"):
        optim.Adam(-1.0)
    with pytest.raises(ConfigError, match="unknown optimizer 'adagrad'"):
        optim.get_optimizer("adagrad")


def test_learning_rate_may_be_a_function_of_the_step():
    var = tf.Variable([0.0])
    seen = []
    opt = optim.Adam(lambda step: seen.append(int(step)) or 0.1).build([var])
    for _ in range(3):
        opt.apply([tf.constant([1.0])], [var])
    assert seen == [0, 1, 2]
    # With a constant gradient each Adam step moves by lr (up to epsilon).
    np.testing.assert_allclose(var.numpy(), [-0.3], rtol=1e-5)
