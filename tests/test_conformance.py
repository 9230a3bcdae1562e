"""Every registered model through the same checks, after Sonnet's conformance suite:
shapes, gradients, one trace per batch shape, XLA, checkpoint and SavedModel round trips,
and deterministic evaluation."""

from __future__ import annotations

import numpy as np
import pytest

import rawtf
from rawtf import export, step
from tests.conftest import cross_entropy, tf

BUILTIN = [n for n in rawtf.models.model_names() if not n.startswith("test_")]


@pytest.fixture(params=BUILTIN)
def model(request):
    return rawtf.get_model(request.param, seed=1)


@pytest.fixture
def batch(rng):
    return rng.random((6, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 6).astype(np.int32)


def test_registry_holds_the_builtin_models():
    assert {"tutorial", "kaggle", "three_conv", "deep_bn", "small_bn"} <= set(BUILTIN)


def test_output_shapes_match_the_closed_form(model):
    for n in (1, 5):
        x = tf.zeros((n, 28, 28, 1))
        assert tuple(model(x).shape) == model.output_shape((n, 28, 28, 1)) == (n, 10)
        assert tuple(model(x, training=True, seed=[1, 2]).shape) == (n, 10)


def test_every_trainable_variable_gets_a_finite_gradient(model, batch):
    x, y = batch
    with tf.GradientTape() as tape:
        logits = model(x, training=True, seed=tf.constant([0, 1], tf.int64))
        loss = cross_entropy(logits, y)
    grads = tape.gradient(loss, model.trainable_variables)
    for var, grad in zip(model.trainable_variables, grads, strict=True):
        assert grad is not None, var.name
        assert np.isfinite(grad.numpy()).all(), var.name
        assert np.abs(grad.numpy()).sum() > 0, var.name
    assert not any(v.trainable for v in model.state.values())


def test_one_trace_per_batch_shape(model, batch):
    traces = []

    @tf.function
    def forward(x):
        traces.append(1)
        return model(x)

    x, _ = batch
    for _ in range(3):
        forward(tf.constant(x))
    forward(tf.constant(x[:2]))
    assert len(traces) == 2


def test_train_step_traces_once(model, batch):
    x, y = batch
    train_step = step.make_train_step(model, rawtf.Adam())
    for s in range(3):
        train_step(tf.constant(x), tf.constant(y), step.step_seed(0, s))
    assert train_step.experimental_get_tracing_count() == 1


def test_xla_forward_matches(model, batch):
    x, _ = batch
    compiled = tf.function(lambda t: model(t), jit_compile=True)
    np.testing.assert_allclose(
        compiled(tf.constant(x)).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4
    )


def test_evaluation_is_deterministic(model, batch):
    x, _ = batch
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


def test_checkpoint_round_trip(model, batch, tmp_path):
    x, _ = batch
    for v in model.variables:
        v.assign_add(tf.random.stateless_uniform(v.shape, seed=[5, 6], maxval=0.05))
    rawtf.save(model, tmp_path / "m")
    np.testing.assert_array_equal(rawtf.load(tmp_path / "m")(x).numpy(), model(x).numpy())


def test_saved_model_round_trip(model, batch, tmp_path):
    x, _ = batch
    export.export_saved_model(model, tmp_path / "sm")
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    probabilities = served(images=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, tf.nn.softmax(model(x)).numpy(), rtol=1e-5, atol=1e-6)
