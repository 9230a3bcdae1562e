"""Test-time augmentation: a model's probabilities averaged over each image and warped
copies of it, checked against a numpy model's probabilities of the documented views
(``random_affine`` over the whole set, itself tested against where a dot lands), the same
whatever the batch size, for ensembles and through the commands."""

from __future__ import annotations

import numpy as np
import pytest

import rawtf
from rawtf import augment, kaggle
from rawtf.errors import ConfigError
from tests.conftest import tf


class _NumpyModel:
    """A member computed in numpy (as an exported SavedModel is duck-typed): softmax of a
    fixed linear map of the pixels."""

    input_shape = (28, 28, 1)
    num_classes = 10

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0, 0.2, (784, 10))
        self.b = rng.normal(0, 0.1, 10)

    def probabilities(self, images):
        logits = np.asarray(images, np.float64).reshape(len(images), 784) @ self.w + self.b
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _views(x_uint8: np.ndarray, k: int) -> list[np.ndarray]:
    """The image set and its k documented test-time views, as floats in [0, 1]."""
    x = tf.constant(x_uint8[..., None].astype(np.float32) / 255.0)
    warped = [augment.random_affine(x, augment.TTA_SEED, 0, v - 1) for v in range(1, k + 1)]
    return [x.numpy()] + [w.numpy() for w in warped]


def test_tta_is_the_mean_over_the_image_and_its_views(small_mnist):
    (x, _), _ = small_mnist
    x = x[:40]
    member = _NumpyModel(0)
    expected = np.mean([member.probabilities(v) for v in _views(x, 3)], axis=0)
    got, labels = rawtf.predict(member, x, batch_size=7, tta=3)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    plain, _ = rawtf.predict(member, x)
    np.testing.assert_allclose(plain, member.probabilities(_views(x, 0)[0]), atol=1e-6)
    assert np.abs(got - plain).max() > 1e-3  # the views are not the image itself


def test_views_do_not_depend_on_the_batches(small_mnist):
    (x, _), _ = small_mnist
    model = rawtf.get_model("small_bn", seed=3, width=4)
    one, _ = rawtf.predict(model, x[:60], batch_size=1000, tta=2)
    many, _ = rawtf.predict(model, x[:60], batch_size=13, tta=2)
    np.testing.assert_allclose(many, one, atol=1e-6)


def test_evaluate_and_ensembles_with_tta(small_mnist):
    (x, y), _ = small_mnist
    x, y = x[:50], y[:50]
    members = [rawtf.get_model("small_bn", seed=s, width=4) for s in (1, 2)]
    own = [rawtf.predict(m, x, tta=2)[0] for m in members]
    mean, _ = rawtf.predict(members, x, tta=2)
    np.testing.assert_allclose(mean, np.mean(own, axis=0), atol=1e-6)
    result = rawtf.evaluate(members[0], (x, y), tta=2)
    chosen = own[0][np.arange(len(y)), y].astype(np.float64)
    assert result["accuracy"] == pytest.approx(float((own[0].argmax(axis=1) == y).mean()))
    assert result["loss"] == pytest.approx(float(-np.log(chosen).mean()), rel=1e-5)
    assert result["count"] == 50


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_tta_is_a_clear_error(bad, small_mnist):
    (x, y), _ = small_mnist
    with pytest.raises(ConfigError, match=r"^tta must be an integer >= 0, got "):
        rawtf.predict(_NumpyModel(0), x[:5], tta=bad)
    with pytest.raises(ConfigError, match=r"^tta must be an integer >= 0"):
        rawtf.evaluate(rawtf.get_model("small_bn", width=4), (x[:5], y[:5]), tta=bad)


def test_commands_take_tta(capsys, trained_run, tmp_path, mnist):
    run_dir = trained_run[0]
    (_, _), test = mnist
    code = rawtf.cli.main(["evaluate", str(run_dir), "--tta", "2", "--plots", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    model = rawtf.load_run(run_dir).model
    expected = rawtf.evaluate(model, test, tta=2)
    assert code == 0
    assert "evaluated tutorial on 10000 images and 2 warped copies of each" in out
    assert out[-1] == f"test_accuracy={expected['accuracy']:.4f} test_loss={expected['loss']:.4f}"
    kaggle.write_kaggle_csv(test[0][:30], None, tmp_path / "test.csv")
    argv = ["submit", str(run_dir), "--test", str(tmp_path / "test.csv"), "--tta", "2"]
    assert rawtf.cli.main([*argv, "--out", str(tmp_path / "s.csv")]) == 0
    rows = (tmp_path / "s.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[1]) for r in rows] == rawtf.predict(model, test[0][:30], tta=2)[
        1
    ].tolist()
    capsys.readouterr()
    code = rawtf.cli.main(["evaluate", str(run_dir), "--tta", "many"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "rawtf: error: argument --tta: expected an integer >= 0, got 'many'"
