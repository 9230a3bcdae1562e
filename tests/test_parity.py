"""Parity with Keras: every model against its hand-written Keras twin with copied weights,
and every optimiser against keras.optimizers on the same gradient sequence. Keras is used
here only as the reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import rawtf
from rawtf import optim
from tests.conftest import tf
from tests.keras_twins import copy_weights, counterparts, keras_twin

MODELS = [
    "tutorial",
    "kaggle",
    "three_conv",
    "deep_bn",
    "deep_bn/wide",
    "small_bn",
    "small_bn/fast",
]
#: Settings of the variants, written out independently in their Keras twins.
VARIANTS = {"deep_bn/wide": {"width": 48, "fc": 256}}


def build(name, **settings):
    """rawtf's model ``name``; ``small_bn/fast`` is small_bn with the fast recipe's settings,
    ``deep_bn/wide`` deep_bn with :data:`VARIANTS`'s."""
    base, _, variant = name.partition("/")
    if name in VARIANTS:
        settings = {**VARIANTS[name], **settings}
    elif variant:
        settings = {**rawtf.config.get_recipe(variant).model_settings, **settings}
    return rawtf.get_model(base, **settings)


def perturbed(name, seed=0):
    """A model whose biases and batch-norm parameters are not at their initial constants,
    so that copying a wrong tensor cannot go unnoticed."""
    # Batch norm in its exact two-op form: the fused kernel rounds differently (it is
    # checked layer by layer against numpy in test_layers).
    base = name.partition("/")[0]
    exact = {"bn_fused": False} if "bn_fused" in rawtf.models.get_model_class(base).defaults else {}
    model = build(name, seed=seed, **exact)
    for i, v in enumerate(model.variables):
        noise = tf.random.stateless_uniform(v.shape, seed=[seed, i], minval=0.0, maxval=0.2)
        v.assign_add(noise if "variance" in v.name else noise - 0.1)
    return model


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts_equal(name):
    model = build(name)
    twin = keras_twin(name)
    assert model.count_params() == twin.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in twin.trainable_weights)
    assert model.count_params(trainable=True) == trainable
    assert model.summary(print_fn=None).count("\n") > len(model.layers())


@pytest.mark.parametrize("name", MODELS)
def test_inference_logits_match(name, rng):
    model = perturbed(name)
    twin = keras_twin(name)
    copy_weights(model, twin)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(
        model(x).numpy(), twin(x, training=False).numpy(), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", MODELS)
def test_training_mode_matches_without_dropout(name, rng):
    """Training mode with dropout off: batch norm on batch statistics, and after a few
    passes the moving statistics agree too, compiled and eager alike."""
    model = perturbed(name, seed=1)
    twin = keras_twin(name, dropout=False)
    copy_weights(model, twin)
    forward = tf.function(lambda x: model(x, training=True, dropout=False))
    for step in range(3):
        x = rng.random((32, 28, 28, 1), dtype=np.float32)
        ours = (forward if step % 2 else model)(
            x, **({} if step % 2 else {"training": True, "dropout": False})
        )
        np.testing.assert_allclose(
            ours.numpy(), twin(x, training=True).numpy(), rtol=1e-5, atol=1e-5
        )
    for layer in twin.layers:
        if layer.name.startswith("bn"):
            np.testing.assert_allclose(
                model.state[f"moving_mean_{layer.name}"].numpy(),
                layer.moving_mean.numpy(),
                rtol=1e-5,
                atol=1e-6,
            )
            np.testing.assert_allclose(
                model.state[f"moving_variance_{layer.name}"].numpy(),
                layer.moving_variance.numpy(),
                rtol=1e-5,
                atol=1e-6,
            )
    # Evaluation in between training passes uses the moving statistics and changes nothing.
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    before = [v.numpy() for v in model.state.values()]
    np.testing.assert_allclose(
        model(x).numpy(), twin(x, training=False).numpy(), rtol=1e-5, atol=1e-5
    )
    for old, v in zip(before, model.state.values(), strict=True):
        np.testing.assert_array_equal(old, v.numpy())


@pytest.mark.parametrize("name", MODELS)
def test_gradients_match_keras(name, rng):
    """The training loss's gradient for every trainable variable (dropout off) equals the
    one Keras computes for the twin with the same weights; rawtf's layers differentiate
    some products their own way (the tutorial net's 3136 x 1024 dense layer)."""
    model = perturbed(name, seed=3)
    twin = keras_twin(name, dropout=False)
    copy_weights(model, twin)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=16).astype(np.int32)
    pairs = [
        (variable, weight)
        for layer in twin.layers
        for variable, weight in zip(counterparts(model, layer), layer.weights, strict=True)
        if weight.trainable
    ]
    assert {v.ref() for v, _ in pairs} == {v.ref() for v in model.trainable_variables}
    with tf.GradientTape() as tape:
        losses, _ = rawtf.step.loss_and_hits(model(x, training=True, dropout=False), y)
        ours = tf.reduce_mean(losses)
    our_grads = tape.gradient(ours, [v for v, _ in pairs])
    with tf.GradientTape() as tape:
        logits = twin(x, training=True)
        theirs = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        )
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)
    their_grads = tape.gradient(theirs, [w for _, w in pairs])
    for mine, reference in zip(our_grads, their_grads, strict=True):
        reference = reference.numpy()
        scale = np.abs(reference).max()
        np.testing.assert_allclose(mine.numpy(), reference, rtol=1e-4, atol=1e-5 * scale)


def mixed_bfloat16_twin(name, dropout=True):
    """The Keras twin under Keras's own ``mixed_bfloat16`` policy (bfloat16 compute,
    float32 variables, batch norm in float32)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        return keras_twin(name, dropout=dropout)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_logits_match_keras_mixed_bfloat16(name, rng):
    """precision="bf16" rounds where Keras's mixed_bfloat16 policy rounds: inference and
    training-mode logits agree with the twin's, while they differ from float32 by far more."""
    model = perturbed(name, seed=2)
    twin = mixed_bfloat16_twin(name, dropout=False)
    copy_weights(model, twin)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    for training in (False, True):
        ours = model(x, training=training, dropout=False, precision="bf16").numpy()
        theirs = np.asarray(twin(x, training=training), dtype=np.float32)
        full = model(x, training=training, dropout=False).numpy()
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)
        # The check has teeth: bfloat16's 8-bit mantissa moves float32 logits by ~1e-2.
        assert np.abs(ours - full).max() > 10 * max(np.abs(ours - theirs).max(), 1e-3)


OPTIMIZERS = [
    # The element-wise forms (fused=False) follow Keras's arithmetic exactly.
    ("adam", {"fused": False}, keras.optimizers.Adam, {}),
    (
        "adam",
        {"fused": False, "learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5},
        keras.optimizers.Adam,
        {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5},
    ),
    (
        "adam",
        {"fused": False, "global_clipnorm": 0.5},
        keras.optimizers.Adam,
        {"global_clipnorm": 0.5},
    ),
    (
        "adamw",
        {"fused": False, "learning_rate": 0.05},
        keras.optimizers.AdamW,
        {"learning_rate": 0.05},
    ),
    ("adamw", {"fused": False, "weight_decay": 0.1}, keras.optimizers.AdamW, {"weight_decay": 0.1}),
    ("rmsprop", {}, keras.optimizers.RMSprop, {}),
    (
        "rmsprop",
        {"momentum": 0.9, "rho": 0.8},
        keras.optimizers.RMSprop,
        {"momentum": 0.9, "rho": 0.8},
    ),
    ("rmsprop", {"centered": True}, keras.optimizers.RMSprop, {"centered": True}),
    (
        "rmsprop",
        {"centered": True, "momentum": 0.5},
        keras.optimizers.RMSprop,
        {"centered": True, "momentum": 0.5},
    ),
    ("sgd", {}, keras.optimizers.SGD, {}),
    ("sgd", {"momentum": 0.9}, keras.optimizers.SGD, {"momentum": 0.9}),
    # Moving averages of the weights (Keras's use_ema), compared after finalizing.
    (
        "adam",
        {"fused": False, "ema_momentum": 0.9},
        keras.optimizers.Adam,
        {"use_ema": True, "ema_momentum": 0.9},
    ),
    (
        "sgd",
        {"momentum": 0.5, "ema_momentum": 0.6},
        keras.optimizers.SGD,
        {"momentum": 0.5, "use_ema": True, "ema_momentum": 0.6},
    ),
    (
        "sgd",
        {"momentum": 0.9, "nesterov": True},
        keras.optimizers.SGD,
        {"momentum": 0.9, "nesterov": True},
    ),
]


FUSED = [
    ("adam", {}, keras.optimizers.Adam, {}),
    (
        "adam",
        {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5},
        keras.optimizers.Adam,
        {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5},
    ),
    ("adam", {"global_clipnorm": 0.5}, keras.optimizers.Adam, {"global_clipnorm": 0.5}),
    ("adamw", {"learning_rate": 0.05}, keras.optimizers.AdamW, {"learning_rate": 0.05}),
    ("adamw", {"weight_decay": 0.1}, keras.optimizers.AdamW, {"weight_decay": 0.1}),
    (
        "adam",
        {"ema_momentum": 0.99},
        keras.optimizers.Adam,
        {"use_ema": True, "ema_momentum": 0.99},
    ),
]


@pytest.mark.parametrize("name,ours,theirs_cls,theirs", FUSED)
def test_fused_adam_matches_keras(rng, name, ours, theirs_cls, theirs):
    """The default, fused Adam (ResourceApplyAdam) against Keras. The kernel forms 1 - beta
    in float32 (Keras rounds it once from double), a relative 2e-7 per step; after 10 steps
    the weights agree to 1e-5 relative."""
    assert optim.OPTIMIZERS[name](**ours).fused
    check_against_keras(rng, name, ours, theirs_cls, theirs, tolerance=1e-5)


@pytest.mark.parametrize("name,ours,theirs_cls,theirs", OPTIMIZERS)
def test_optimizer_matches_keras(rng, name, ours, theirs_cls, theirs):
    check_against_keras(rng, name, ours, theirs_cls, theirs, tolerance=1e-6)


def check_against_keras(rng, name, ours, theirs_cls, theirs, tolerance):
    shapes = [(3, 4), (5,)]
    initial = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) * 3 for s in shapes] for _ in range(10)]
    ours_vars = [tf.Variable(v) for v in initial]
    keras_vars = [keras.Variable(v) for v in initial]
    ours_opt = optim.OPTIMIZERS[name](**ours).build(ours_vars)
    keras_opt = theirs_cls(**theirs)
    step = tf.function(lambda g: ours_opt.apply(g, ours_vars))
    for g in grads:
        step([tf.constant(x) for x in g])
        keras_opt.apply_gradients(zip([tf.constant(x) for x in g], keras_vars, strict=True))
    for a, b in zip(ours_vars, keras_vars, strict=True):
        np.testing.assert_allclose(a.numpy(), np.asarray(b.numpy()), rtol=tolerance, atol=tolerance)
    before = [v.numpy() for v in ours_vars]
    ours_opt.finalize_variable_values(ours_vars)
    keras_opt.finalize_variable_values(keras_vars)
    for a, b in zip(ours_vars, keras_vars, strict=True):
        np.testing.assert_allclose(a.numpy(), np.asarray(b.numpy()), rtol=tolerance, atol=tolerance)
    moved = any(not np.array_equal(a, v.numpy()) for a, v in zip(before, ours_vars, strict=True))
    assert moved == bool(ours.get("ema_momentum"))  # finalizing changes weights only with EMA
