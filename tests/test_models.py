"""Models: names, parameter counts, shapes, modes, and the registry."""

from __future__ import annotations

import numpy as np
import pytest

import rawtf
from rawtf import layers, models
from rawtf.errors import ConfigError, ShapeError
from tests.conftest import tf


@pytest.fixture(scope="module")
def tutorial():
    return models.get_model("tutorial", seed=0)


def test_tutorial_declares_the_tutorial_dictionaries(tutorial):
    shapes = {k: tuple(v.shape) for k, v in tutorial.weights.items()}
    assert shapes == {
        "W_conv1": (5, 5, 1, 32),
        "W_conv2": (5, 5, 32, 64),
        "W_fc": (7 * 7 * 64, 1024),
        "out": (1024, 10),
    }
    assert {k: tuple(v.shape) for k, v in tutorial.biases.items()} == {
        "b_conv1": (32,),
        "b_conv2": (64,),
        "b_fc": (1024,),
        "out": (10,),
    }
    assert tutorial.count_params() == 3_274_634
    assert all(v.trainable for v in tutorial.variables)


def test_layer_shapes_and_forward_shape(tutorial):
    assert tutorial.layer_shapes((8, 28, 28, 1)) == [
        ("conv1", (8, 28, 28, 32)),
        ("pool1", (8, 14, 14, 32)),
        ("conv2", (8, 14, 14, 64)),
        ("pool2", (8, 7, 7, 64)),
        ("flatten", (8, 3136)),
        ("fc", (8, 1024)),
        ("dropout", (8, 1024)),
        ("out", (8, 10)),
    ]
    for x in (tf.zeros((3, 28, 28, 1)), tf.zeros((3, 28, 28)), tf.zeros((3, 784))):
        assert tuple(tutorial(x).shape) == (3, 10)
    with pytest.raises(
        ShapeError, match=r"expects images of shape \(N, 28, 28, 1\).*got \(3, 32, 32\)"
    ):
        tutorial(tf.zeros((3, 32, 32)))
    with pytest.raises(ShapeError, match="dtype int32"):
        tutorial(tf.zeros((3, 28, 28), tf.int32))


def test_forward_matches_a_plain_tf_nn_composition(tutorial, rng):
    """The tutorial's graph written out with raw tf.nn ops, independently of rawtf.layers."""
    x = rng.random((4, 28, 28, 1), dtype=np.float32)
    W, b = tutorial.weights, tutorial.biases
    h = tf.nn.relu(tf.nn.conv2d(x, W["W_conv1"], 1, "SAME") + b["b_conv1"])
    h = tf.nn.max_pool2d(h, 2, 2, "SAME")
    h = tf.nn.relu(tf.nn.conv2d(h, W["W_conv2"], 1, "SAME") + b["b_conv2"])
    h = tf.nn.max_pool2d(h, 2, 2, "SAME")
    h = tf.nn.relu(tf.reshape(h, [-1, 3136]) @ W["W_fc"] + b["b_fc"])
    expected = h @ W["out"] + b["out"]
    np.testing.assert_allclose(tutorial(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_dropout_only_in_training_and_keyed_on_the_seed(tutorial, rng):
    x = tf.constant(rng.random((16, 28, 28, 1), dtype=np.float32))
    eval_a, eval_b = tutorial(x).numpy(), tutorial(x, training=False).numpy()
    np.testing.assert_array_equal(eval_a, eval_b)
    np.testing.assert_array_equal(tutorial(x, training=True, dropout=False).numpy(), eval_a)
    seed = tf.constant([1, 5], tf.int64)
    train_a = tutorial(x, training=True, seed=seed).numpy()
    train_b = tutorial(x, training=True, seed=seed).numpy()
    train_c = tutorial(x, training=True, seed=tf.constant([1, 6], tf.int64)).numpy()
    np.testing.assert_array_equal(train_a, train_b)
    assert not np.allclose(train_a, eval_a) and not np.allclose(train_a, train_c)


def test_same_seed_same_weights():
    a, b, c = (models.get_model("tutorial", seed=s) for s in (3, 3, 4))
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k].numpy(), b.weights[k].numpy())
        assert not np.array_equal(a.weights[k].numpy(), c.weights[k].numpy())


def test_normal_init_reproduces_the_tutorial():
    model = models.get_model("tutorial", init="normal")
    assert abs(model.weights["W_fc"].numpy().std() - 1.0) < 0.01
    assert abs(model.biases["b_fc"].numpy().std() - 1.0) < 0.1
    assert np.all(models.get_model("tutorial").biases["b_fc"].numpy() == 0)


def test_summary_lists_layers_and_totals(tutorial):
    text = tutorial.summary(print_fn=None)
    assert "conv2 (Conv2D)" in text and "(None, 7, 7, 64)" in text and "3,212,288" in text
    assert "Total params: 3,274,634" in text and "Non-trainable params: 0" in text


def test_registry_and_user_models():
    assert "tutorial" in models.model_names()
    with pytest.raises(ConfigError, match="unknown model 'lenet'; choose from"):
        models.get_model("lenet")
    with pytest.raises(ConfigError, match="has no setting 'width'"):
        models.get_model("tutorial", width=3)

    @rawtf.register_model("test_tiny")
    class Tiny(models.Model):
        defaults = {"filters": 4}

        def layers(self):
            return [
                models.Conv("conv1", 3, self.settings["filters"], stride=2),
                models.Flatten(),
                models.Dense("out", 10),
            ]

        def forward(self, x, training, dropout, seed):
            x = layers.relu(
                layers.conv2d(x, self.weights["W_conv1"], self.biases["b_conv1"], stride=2)
            )
            return layers.dense(layers.flatten(x), self.weights["out"], self.biases["out"])

    model = models.get_model("test_tiny", filters=3)
    assert model.config == {"model": "test_tiny", "init": "he", "seed": 0, "filters": 3}
    assert model.count_params() == 3 * 3 * 3 + 3 + 14 * 14 * 3 * 10 + 10
    assert tuple(model(tf.zeros((2, 28, 28))).shape) == model.output_shape((2, 28, 28, 1))
    with pytest.raises(ConfigError, match="already registered"):
        rawtf.register_model("test_tiny")(type("Other", (models.Model,), {}))


def test_flops_per_image_closed_form():
    tutorial = models.get_model("tutorial")
    expected = 2 * (28 * 28 * 25 * 1 * 32 + 14 * 14 * 25 * 32 * 64 + 3136 * 1024 + 1024 * 10)
    assert tutorial.flops_per_image() == expected
    three = models.get_model("three_conv")
    expected = 2 * (
        26 * 26 * 9 * 64 + 11 * 11 * 9 * 64 * 64 + 3 * 3 * 9 * 64 * 64 + 64 * 64 + 64 * 32 + 32 * 10
    )
    assert three.flops_per_image() == expected


def test_small_bn_blocks_and_strided_stem_closed_form():
    """The fast recipe's small_bn (two blocks, 5x5 stride-2 first convolution, width 8):
    its layer shapes, parameter count and FLOPs worked out by hand."""
    model = models.get_model("small_bn", width=8, blocks=2, stem_stride=2)
    shapes = dict(model.layer_shapes())
    assert shapes["conv1"] == (None, 14, 14, 16) and shapes["pool1"] == (None, 7, 7, 16)
    assert shapes["conv2"] == (None, 7, 7, 32) and shapes["pool2"] == (None, 4, 4, 32)
    assert shapes["flatten"] == (None, 512) and shapes["out"] == (None, 10)
    trainable = (25 * 16 + 16) + 2 * 16 + (9 * 16 * 32 + 32) + 2 * 32
    trainable += (512 * 128 + 128) + 2 * 128 + (128 * 10 + 10)
    assert model.count_params(trainable=True) == trainable
    assert model.count_params() == trainable + 2 * (16 + 32 + 128)  # moving statistics
    expected = 2 * (14 * 14 * 25 * 16 + 7 * 7 * 9 * 16 * 32 + 512 * 128 + 128 * 10)
    assert model.flops_per_image() == expected
    assert model(np.zeros((3, 28, 28), np.float32)).shape == (3, 10)


def test_deep_bn_width_and_fc_closed_form():
    """deep_bn widened (48 then 96 filters, 256 dense units): its layer shapes, parameter
    count and FLOPs worked out by hand; the defaults give the notebook's 327,242."""
    assert models.get_model("deep_bn").count_params() == 327_242
    model = models.get_model("deep_bn", width=48, fc=256)
    shapes = dict(model.layer_shapes())
    assert shapes["conv1"] == (None, 26, 26, 48) and shapes["conv3"] == (None, 12, 12, 48)
    assert shapes["conv5"] == (None, 8, 8, 96) and shapes["conv6"] == (None, 4, 4, 96)
    assert shapes["flatten"] == (None, 1536) and shapes["fc"] == (None, 256)
    convs = [(3, 1, 48), (3, 48, 48), (5, 48, 48), (3, 48, 96), (3, 96, 96), (5, 96, 96)]
    trainable = sum(k * k * c * f + f + 2 * f for k, c, f in convs)
    trainable += (1536 * 256 + 256) + 2 * 256 + (256 * 10 + 10)
    assert model.count_params(trainable=True) == trainable
    assert model.count_params() == trainable + 2 * (3 * 48 + 3 * 96 + 256)
    sides = [26, 24, 12, 10, 8, 4]
    expected = sum(n * n * k * k * c * f for n, (k, c, f) in zip(sides, convs, strict=True))
    expected = 2 * (expected + 1536 * 256 + 256 * 10)
    assert model.flops_per_image() == expected
    assert model(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


@pytest.mark.parametrize(
    "name, setting",
    [("small_bn", s) for s in ("width", "fc", "blocks", "stem_stride")]
    + [("deep_bn", s) for s in ("width", "fc")],
)
def test_network_sizes_reject_bad_values(name, setting):
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match=f"{name}: {setting} must be a positive integer"):
            models.get_model(name, **{setting: bad})
