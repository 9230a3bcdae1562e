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


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("lr,b1,b2,eps", [(1e-3, 0.9, 0.999, 1e-7), (0.05, 0.8, 0.99, 1e-4)])
def test_adam_matches_numpy(rng, lr, b1, b2, eps, fused):
    theta0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(8)]
    var = tf.Variable(theta0, dtype=tf.float64)
    opt = optim.Adam(lr, beta_1=b1, beta_2=b2, epsilon=eps, fused=fused).build([var])
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


def run(opt, theta0, grads):
    var = tf.Variable(theta0)
    opt.build([var])
    for g in grads:
        opt.apply([tf.constant(g)], [var])
    return var.numpy()


@pytest.fixture
def problem(rng):
    return rng.normal(size=(4, 3)), [rng.normal(size=(4, 3)) for _ in range(6)]


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_numpy(problem, momentum, nesterov):
    theta, grads = problem
    lr, velocity = 0.1, np.zeros_like(theta)
    expected = theta.copy()
    for g in grads:
        if momentum == 0:
            expected -= lr * g
            continue
        velocity = momentum * velocity - lr * g
        expected += momentum * velocity - lr * g if nesterov else velocity
    got = run(optim.SGD(lr, momentum=momentum, nesterov=nesterov), theta, grads)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize(
    "centered,momentum", [(False, 0.0), (True, 0.0), (False, 0.5), (True, 0.5)]
)
def test_rmsprop_matches_numpy(problem, centered, momentum):
    theta, grads = problem
    lr, rho, eps = 0.01, 0.9, 1e-7
    v, mg, mom = (np.zeros_like(theta) for _ in range(3))
    expected = theta.copy()
    for g in grads:
        v = rho * v + (1 - rho) * g**2
        mg = rho * mg + (1 - rho) * g
        denominator = v - mg**2 if centered else v
        step = lr * g / np.sqrt(denominator + eps)
        mom = momentum * mom + step
        expected -= mom if momentum else step
    got = run(optim.RMSprop(lr, rho=rho, momentum=momentum, centered=centered), theta, grads)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_adamw_decays_before_the_adam_step(problem):
    theta, grads = problem
    lr, wd = 0.01, 0.1
    adam_only = theta.copy()
    expected = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        expected = expected - expected * wd * lr
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        alpha = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        expected = expected - alpha * m / (np.sqrt(v) + 1e-7)
    got = run(optim.AdamW(lr, weight_decay=wd), theta, grads)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert not np.allclose(got, run(optim.Adam(lr), adam_only, grads))


def test_global_norm_clipping(rng):
    var = tf.Variable([0.0, 0.0])
    opt = optim.SGD(1.0, global_clipnorm=1.0).build([var])
    opt.apply([tf.constant([3.0, 4.0])], [var])  # norm 5 -> scaled to 1
    np.testing.assert_allclose(var.numpy(), [-0.6, -0.8], rtol=1e-6)
    opt.apply([tf.constant([0.3, 0.4])], [var])  # norm 0.5: untouched
    np.testing.assert_allclose(var.numpy(), [-0.9, -1.2], rtol=1e-6)


def test_optimizer_slots_checkpoint_with_the_model(tmp_path):
    var = tf.Variable([1.0, 2.0])
    opt = optim.RMSprop(0.1, momentum=0.5, centered=True).build([var])
    opt.apply([tf.constant([1.0, -1.0])], [var])
    tf.train.Checkpoint(var=var, optimizer=opt).write(str(tmp_path / "ck"))
    names = {n for n, _ in tf.train.list_variables(str(tmp_path / "ck"))}
    for slot in ("velocity", "momentum", "average_gradient"):
        assert any(f"slots/0/{slot}" in n for n in names), (slot, names)
    assert any("optimizer/iterations" in n for n in names)
