"""Ensembles: the probabilities of several models averaged, checked against the members'
own probabilities combined with numpy; mismatched members are clear errors; the commands
take several run folders (or SavedModels)."""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
import pytest

import rawtf
from rawtf import export, kaggle, models
from rawtf.errors import ConfigError, ShapeError
from tests.conftest import tf


def _moved(name: str, seed: int):
    """A model whose variables are moved away from their initial values."""
    model = rawtf.get_model(name, seed=seed)
    for v in model.variables:
        v.assign_add(tf.random.stateless_uniform(v.shape, seed=[seed, 7], maxval=0.05))
    return model


@pytest.fixture(scope="module")
def members():
    return [_moved("three_conv", 0), _moved("three_conv", 1), _moved("small_bn", 2)]


def test_ensemble_probabilities_are_the_mean_of_the_members(members, small_mnist):
    (x, _), _ = small_mnist
    x = x[:300]
    own = [rawtf.predict(m, x)[0] for m in members]
    probabilities, labels = rawtf.predict(members, x)
    np.testing.assert_allclose(probabilities, np.mean(own, axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(labels, np.mean(own, axis=0).argmax(axis=1))


def test_ensemble_evaluation_from_the_members_logits(trained_run, second_run, small_mnist):
    (x, y), _ = small_mnist
    x, y = x[:300], y[:300]
    members = rawtf.runs.load_models([trained_run[0], second_run])  # trained: finite losses
    images = tf.constant(x[..., None] / 255.0, tf.float32)
    logits = [m(images, training=False).numpy().astype(np.float64) for m in members]
    softmax = [np.exp(z - z.max(1, keepdims=True)) for z in logits]
    mean = np.mean([s / s.sum(1, keepdims=True) for s in softmax], axis=0)
    result = rawtf.evaluate(members, (x, y))
    assert result["accuracy"] == pytest.approx((mean.argmax(1) == y).mean())
    assert result["loss"] == pytest.approx(-np.log(mean[np.arange(len(y)), y]).mean(), rel=1e-4)
    assert result["count"] == 300


def test_a_saved_model_can_be_a_member(members, small_mnist, tmp_path):
    (x, _), _ = small_mnist
    served = export.ExportedModel(export.export_saved_model(members[0], tmp_path / "m"))
    assert served.input_shape == (28, 28, 1) and served.num_classes == 10
    mixed, _ = rawtf.predict([served, members[1]], x[:50])
    own = [rawtf.predict(m, x[:50])[0] for m in members[:2]]
    np.testing.assert_allclose(mixed, np.mean(own, axis=0), atol=1e-6)


class _FiveClasses(models.Model):
    num_classes: ClassVar[int] = 5

    def layers(self):
        return [rawtf.specs.Flatten(), rawtf.specs.Dense("out", 5)]

    def forward(self, x, training, dropout, seed):
        return rawtf.layers.dense(rawtf.layers.flatten(x), self.weights["out"], self.biases["out"])


class _Wider(_FiveClasses):
    num_classes: ClassVar[int] = 10
    input_shape: ClassVar[tuple[int, int, int]] = (32, 32, 1)

    def layers(self):
        return [rawtf.specs.Flatten(), rawtf.specs.Dense("out", 10)]


def test_members_that_do_not_match_are_clear_errors(members, small_mnist):
    (x, _), _ = small_mnist
    with pytest.raises(
        ShapeError, match=r"ensemble member 2 answers 5 classes, member 1 answers 10"
    ):
        rawtf.predict([members[0], _FiveClasses()], x[:4])
    with pytest.raises(ShapeError, match=r"member 3 takes inputs of shape \(32, 32, 1\)"):
        rawtf.evaluate([members[0], members[1], _Wider()], (x[:4], np.arange(4)))
    with pytest.raises(ConfigError, match="at least one model"):
        rawtf.predict([], x[:4])


def test_error_overlap_counts_against_hand_made_answers():
    """Four images, three members; which member is wrong where is chosen by hand."""
    labels = np.array([0, 1, 2, 3])

    def answers(predicted, confidence=0.9):
        probabilities = np.full((4, 4), (1 - confidence) / 3)
        probabilities[np.arange(4), predicted] = confidence
        return probabilities

    parts = [
        answers([1, 1, 2, 0]),  # wrong on 0 and 3
        answers([1, 1, 0, 3]),  # wrong on 0 and 2
        answers([2, 1, 2, 3], 0.5),  # wrong on 0, unsure
    ]
    overlap = rawtf.metrics.error_overlap(parts, labels)
    np.testing.assert_array_equal(overlap.member_errors, [2, 2, 1])
    np.testing.assert_array_equal(overlap.shared, [[2, 1, 1], [1, 2, 1], [1, 1, 1]])
    np.testing.assert_array_equal(overlap.wrong_in, [1, 2, 0, 1])  # image 1 right everywhere
    np.testing.assert_array_equal(overlap.in_all, [0])
    # the mean: image 0 puts 0.655 on class 1, so the ensemble is wrong there only
    np.testing.assert_array_equal(overlap.ensemble, [True, False, False, False])
    assert overlap.summary() == (
        "mistakes: members 2/2/1; images wrong in at least one member 3, in every member 1; "
        "ensemble 1 (1 of them wrong in every member)"
    )
    # both wrong, on different classes: the mean puts 0.4 on the true class, 0.3 elsewhere
    split = rawtf.metrics.error_overlap([[[0.4, 0.6, 0.0]], [[0.4, 0.0, 0.6]]], [0])
    np.testing.assert_array_equal(split.in_all, [0])
    np.testing.assert_array_equal(split.ensemble, [False])
    assert split.summary().endswith(
        "in every member 1; ensemble 0 (0 of them wrong in every member)"
    )
    with pytest.raises(ShapeError, match=r"member 2's probabilities have shape \(3, 4\)"):
        rawtf.metrics.error_overlap([parts[0], parts[1][:3]], labels)
    with pytest.raises(rawtf.DataError, match="labels"):
        rawtf.metrics.error_overlap(parts, labels[:3])
    with pytest.raises(ConfigError, match="at least one model"):
        rawtf.metrics.error_overlap([], labels)


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    config = rawtf.config.TrainConfig(model="small_bn", epochs=1, train_limit=2048, seed=3)
    out = tmp_path_factory.mktemp("second") / "run"
    rawtf.train_run(config, out=out, verbose=0, print_fn=lambda line: None)
    return out


def test_commands_take_several_runs(capsys, trained_run, second_run, tmp_path, mnist):
    first = trained_run[0]
    code = rawtf.cli.main(["evaluate", str(first), str(second_run), "--plots", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    members = [line for line in out if line.startswith("member ")]
    assert members[0].startswith(f"member {first}: test_accuracy=")
    assert members[1].startswith(f"member {second_run}: test_accuracy=")
    assert out.index(members[1]) < out.index("evaluated an ensemble of 2 on 10000 images")
    errors = [round((1 - float(line.split("=")[1].split()[0])) * 10000) for line in members]
    mistakes = next(line for line in out if line.startswith("mistakes: "))
    assert mistakes.startswith(f"mistakes: members {errors[0]}/{errors[1]}; ")
    assert (tmp_path / "shared_mistakes.png").is_file()
    assert "evaluated an ensemble of 2 on 10000 images" in out
    assert re.fullmatch(r"test_accuracy=0\.\d{4} test_loss=\d\.\d{4}", out[-1])
    models_ = rawtf.runs.load_models([first, second_run])
    expected = rawtf.evaluate(models_, mnist[1])
    assert out[-1] == f"test_accuracy={expected['accuracy']:.4f} test_loss={expected['loss']:.4f}"
    assert (tmp_path / "confusion_matrix.png").is_file()
    (_, _), (x_test, _) = mnist
    kaggle.write_kaggle_csv(x_test[:30], None, tmp_path / "test.csv")
    argv = ["submit", str(first), str(second_run), "--test", str(tmp_path / "test.csv")]
    assert rawtf.cli.main([*argv, "--out", str(tmp_path / "s.csv")]) == 0
    rows = (tmp_path / "s.csv").read_text().splitlines()[1:]
    _, labels = rawtf.predict(models_, x_test[:30])
    assert [int(r.split(",")[1]) for r in rows] == labels.tolist()


def test_predict_with_an_ensemble_and_its_mistakes(capsys, trained_run, second_run, tmp_path):
    from PIL import Image

    (x, _), _ = rawtf.load_mnist()
    Image.fromarray(255 - x[0]).save(tmp_path / "five.png")
    code = rawtf.cli.main(
        ["predict", str(trained_run[0]), str(second_run), str(tmp_path / "five.png")]
    )
    assert code == 0 and capsys.readouterr().out.startswith(f"{tmp_path / 'five.png'}\t")
    code = rawtf.cli.main(["predict", str(tmp_path / "five.png"), str(trained_run[0])])
    assert code == 2 and "give the run folders (or SavedModels) first" in capsys.readouterr().err
