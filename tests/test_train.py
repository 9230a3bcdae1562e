"""The training loop: learning, determinism, exact evaluation, and input checks."""

from __future__ import annotations

import numpy as np
import pytest

import rawtf
from rawtf import callbacks, data, metrics, pipeline, step
from rawtf.errors import ConfigError, DataError
from tests.conftest import cross_entropy, tf

# Measured on 4,000 training images, 2 epochs, batch 64, tested on 1,000 test images:
# seeds 0-4 gave 0.952-0.967 (docs/results.md). The bar sits well below the worst of them.
ACCURACY_BAR = 0.90


@pytest.fixture(scope="module")
def trained(small_mnist):
    """The tutorial net after a short fixed-seed run, shared by the tests below."""
    train_set, _ = small_mnist
    model = rawtf.get_model("tutorial", seed=0)
    history = rawtf.fit(
        model, rawtf.Adam(1e-3), train_set, epochs=2, batch_size=64, seed=0, verbose=0
    )
    return model, history


def test_short_run_learns(trained, small_mnist):
    model, history = trained
    _, test_set = small_mnist
    result = rawtf.evaluate(model, test_set)
    assert result["accuracy"] >= ACCURACY_BAR, result
    assert history["loss"][1] < history["loss"][0]
    assert set(history.history) == {"epoch", "loss", "accuracy", "seconds"}
    assert history["epoch"] == [1, 2]


def test_evaluate_is_exact_whatever_the_batch_size(trained, small_mnist):
    model, _ = trained
    x, y = small_mnist[1]
    x, y = x[:301], y[:301]
    probs, labels = rawtf.predict(model, x, batch_size=1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    loss = -np.mean(np.log(probs[np.arange(len(y)), y].astype(np.float64)))
    accuracy = np.mean(labels == y)
    for batch_size in (1000, 64, 7):
        result = rawtf.evaluate(model, (x, y), batch_size=batch_size)
        assert result["count"] == 301
        assert result["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert result["loss"] == pytest.approx(loss, rel=1e-4)


def test_uint8_and_float_inputs_agree_and_bad_floats_are_rejected(trained, small_mnist):
    model, _ = trained
    x = small_mnist[1][0][:50]
    p_uint8, _ = rawtf.predict(model, x)
    p_float, _ = rawtf.predict(model, x.astype(np.float32) / 255.0)
    np.testing.assert_allclose(p_uint8, p_float, rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        rawtf.predict(model, x.astype(np.float32))
    with pytest.raises(DataError, match="NaN"):
        rawtf.evaluate(model, (np.full((2, 28, 28), np.nan, np.float32), [0, 1]))


def _steps(seed, x, y, steps=6, batch_size=32):
    """Run a few training steps, recording the batches' labels and the resulting weights."""
    model = rawtf.get_model("tutorial", seed=0)
    step_fn = step.make_train_step(model, rawtf.Adam(1e-3))
    seen = []
    batches = pipeline.train_dataset(x, y, batch_size, seed, epoch=0)
    for index, (images, labels) in enumerate(batches):
        if index == steps:
            break
        seen.append(labels.numpy())
        step_fn(images, labels, step.step_seed(seed, index))
    return seen, model.weights["W_fc"].numpy()


def test_same_seed_same_batches_and_masks(small_mnist):
    x, y = small_mnist[0]
    x, y = data.check_images(x[:500]), data.check_labels(y[:500], 500)
    labels_a, weights_a = _steps(11, x, y)
    labels_b, weights_b = _steps(11, x, y)
    labels_c, weights_c = _steps(12, x, y)
    for a, b in zip(labels_a, labels_b, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(weights_a, weights_b)
    assert not np.array_equal(weights_a, weights_c)
    assert any(not np.array_equal(a, c) for a, c in zip(labels_a, labels_c, strict=True))


def test_dropout_mask_comes_from_the_seed_and_step(small_mnist):
    """Dropout masks keyed on (seed, step): the training step's update with dropout is
    reproduced by the same forward with that seed, and differs for another step."""
    x = data.to_float(small_mnist[0][0][:32])
    y = data.check_labels(small_mnist[0][1][:32], 32)
    model = rawtf.get_model("tutorial", seed=0)
    seed = tf.constant([5, 3], tf.int64)
    with tf.GradientTape() as tape:
        loss = cross_entropy(model(x, training=True, seed=seed), y)
    expected = tape.gradient(loss, model.weights["W_fc"]).numpy()
    with tf.GradientTape() as tape:
        loss = cross_entropy(model(x, training=True, seed=tf.constant([5, 4], tf.int64)), y)
    other = tape.gradient(loss, model.weights["W_fc"]).numpy()
    with tf.GradientTape() as tape:
        loss = cross_entropy(model(x, training=True, seed=seed), y)
    np.testing.assert_array_equal(tape.gradient(loss, model.weights["W_fc"]).numpy(), expected)
    assert not np.allclose(other, expected)


def test_validation_and_callbacks(small_mnist):
    (x, y), (xv, yv) = small_mnist
    model = rawtf.get_model("tutorial", seed=1)
    calls = []
    history = rawtf.fit(
        model,
        rawtf.Adam(),
        (x[:256], y[:256]),
        epochs=2,
        batch_size=128,
        validation_data=(xv[:100], yv[:100]),
        verbose=0,
        callbacks=[lambda epoch, h: calls.append((epoch, len(h)))],
    )
    assert calls == [(0, 1), (1, 2)]
    assert history["val_accuracy"][-1] == rawtf.evaluate(model, (xv[:100], yv[:100]))["accuracy"]


def test_fit_rejects_bad_arguments(small_mnist):
    (x, y), _ = small_mnist
    model = rawtf.get_model("tutorial")
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        rawtf.fit(model, rawtf.Adam(), (x, y), epochs=0)
    with pytest.raises(ConfigError, match="batch_size"):
        rawtf.fit(model, rawtf.Adam(), (x, y), batch_size=0)
    with pytest.raises(DataError, match="y_train: 3 labels for 4000 images"):
        rawtf.fit(model, rawtf.Adam(), (x, y[:3]))
    with pytest.raises(DataError, match="x_train: float pixels must lie"):
        rawtf.fit(model, rawtf.Adam(), (x.astype(np.float32), y))


def test_confusion_matrix():
    counts = metrics.confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], num_classes=3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


class _Scripted:
    """A stand-in model whose only variable records which epoch's values were kept."""

    def __init__(self):
        self.marker = tf.Variable(0.0)
        self.variables = [self.marker]


def test_early_stopping_patience_and_restore():
    model = _Scripted()
    stopper = callbacks.EarlyStopping(model, monitor="val_accuracy", patience=2)
    history = callbacks.History()
    scores = [0.90, 0.95, 0.94, 0.95, 0.93, 0.99]
    stopped_at = None
    for epoch, score in enumerate(scores):
        model.marker.assign(float(epoch + 1))
        history.append({"epoch": epoch + 1, "val_accuracy": score})
        if stopper(epoch, history):
            stopped_at = epoch + 1
            break
    stopper.on_train_end()
    assert stopped_at == 4 and stopper.best_epoch == 2 and stopper.best == 0.95
    assert float(model.marker) == 2.0  # the best epoch's values are back
    loss_stopper = callbacks.EarlyStopping(model, monitor="val_loss", patience=0)
    history = callbacks.History()
    history.append({"epoch": 1, "val_loss": 0.5})
    assert loss_stopper(0, history) is False
    history.append({"epoch": 2, "val_loss": 0.6})
    assert loss_stopper(1, history) is True
    with pytest.raises(ConfigError, match="history has no 'val_accuracy'"):
        callbacks.EarlyStopping(model)(0, history)


def test_fit_stops_early_and_restores(small_mnist):
    (x, y), (xv, yv) = small_mnist
    model = rawtf.get_model("three_conv", seed=0)
    # 64 training images: the model overfits, and validation loss turns up within a few epochs.
    stopper = rawtf.EarlyStopping(model, monitor="val_loss", patience=2)
    history = rawtf.fit(
        model,
        rawtf.Adam(3e-3),
        (x[:64], y[:64]),
        epochs=40,
        batch_size=16,
        validation_data=(xv[:200], yv[:200]),
        verbose=0,
        callbacks=[stopper],
    )
    assert stopper.stopped_epoch == len(history) < 40
    best = min(history["val_loss"])
    assert stopper.best == best
    assert rawtf.evaluate(model, (xv[:200], yv[:200]))["loss"] == pytest.approx(best, rel=1e-5)


def _fit_small(x, y, **kwargs):
    model = rawtf.get_model("kaggle", seed=0)  # three dropout layers: the masks matter
    optimizer = rawtf.Adam(rawtf.schedules.OneCycle(3e-3, 2 * 5))
    history = rawtf.fit(
        model, optimizer, (x, y), epochs=2, batch_size=64, seed=5, verbose=0, **kwargs
    )
    return model, history


def test_steps_per_execution_changes_nothing_but_speed(small_mnist):
    """Running 1, 3 or 32 steps per compiled call trains the same weights: batch order and
    dropout masks are functions of the global step, not of the call."""
    x, y = small_mnist[0][0][:300], small_mnist[0][1][:300]  # 5 batches, the last of 44
    reference, ref_history = _fit_small(x, y, steps_per_execution=1)
    for per_call in (3, 32):
        model, history = _fit_small(x, y, steps_per_execution=per_call)
        assert history["loss"] == pytest.approx(ref_history["loss"], rel=1e-5)
        assert history["accuracy"] == ref_history["accuracy"]
        for key, value in reference.variable_map().items():
            np.testing.assert_allclose(
                model.variable_map()[key].numpy(),
                value.numpy(),
                rtol=1e-5,
                atol=1e-6,
                err_msg=key,
            )


def test_training_loop_traces_once_per_run(small_mnist):
    """Full and short batches, several epochs and several fit calls share one trace."""
    x, y = small_mnist[0][0][:300], small_mnist[0][1][:300]
    model, optimizer = rawtf.get_model("three_conv", seed=0), rawtf.Adam(1e-3)
    for _ in range(2):
        rawtf.fit(
            model, optimizer, (x, y), epochs=2, batch_size=64, verbose=0, steps_per_execution=2
        )
    loop = step.make_train_loop(model, optimizer)
    assert loop.experimental_get_tracing_count() == 1
    assert int(optimizer.iterations) == 2 * 2 * 5


def test_loss_sum_is_exact_over_a_short_last_batch(small_mnist):
    """The epoch's loss is the mean over examples: each batch's mean loss weighted by its
    size, the short last batch included (checked against per-step losses)."""
    x, y = small_mnist[0][0][:100], small_mnist[0][1][:100]  # batches of 64 and 36
    model = rawtf.get_model("three_conv", seed=0)
    step_fn = step.make_train_step(model, rawtf.Adam(1e-3))
    losses = []
    checked = data.check_images(x, "x", (28, 28, 1)), data.check_labels(y, 100, 10, "y")
    for index, (images, labels) in enumerate(pipeline.train_dataset(*checked, 64, seed=0, epoch=0)):
        loss, _, _ = step_fn(images, labels, step.step_seed(0, index))
        losses.append(float(loss) * len(labels))
    fitted = rawtf.get_model("three_conv", seed=0)
    history = rawtf.fit(fitted, rawtf.Adam(1e-3), (x, y), batch_size=64, seed=0, verbose=0)
    assert history["loss"][0] == pytest.approx(sum(losses) / 100, rel=1e-5)


def test_bf16_training_learns(small_mnist):
    """Mixed precision reaches the same bar as float32 training on the short run."""
    train_set, test_set = small_mnist
    model = rawtf.get_model("tutorial", seed=0)
    rawtf.fit(
        model,
        rawtf.Adam(1e-3),
        train_set,
        epochs=2,
        batch_size=64,
        seed=0,
        verbose=0,
        precision="bf16",
    )
    assert all(v.dtype == tf.float32 for v in model.variables)
    assert rawtf.evaluate(model, test_set)["accuracy"] >= ACCURACY_BAR
    with pytest.raises(ConfigError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        rawtf.fit(model, rawtf.Adam(), train_set, precision="fp16", verbose=0)


class _Calls(callbacks.Callback):
    """Records the global step after every compiled call."""

    def __init__(self):
        self.steps = []

    def on_steps_end(self, progress):
        self.steps.append(progress.global_step)


def test_progress_bar_advances_per_step_with_running_means(small_mnist, capsys, monkeypatch):
    (x, y), _ = small_mnist
    lines, calls = [], _Calls()
    bar = callbacks.ProgressLog(print_fn=lines.append, enabled=True)
    monkeypatch.setattr(callbacks.ProgressLog, "UPDATE_SECONDS", 1e-9)  # a call per step
    history = rawtf.fit(
        rawtf.get_model("three_conv"),
        rawtf.Adam(),
        (x, y),  # 4,000 images: 125 steps
        batch_size=32,
        verbose=0,
        callbacks=[bar, calls],
    )
    # The first two calls run 32 steps (tracing, then timing); after that one step each.
    assert calls.steps == [32, 64, *range(65, 126)]
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "/125 [" in err and "accuracy=0." in err and "loss=" in err
    assert lines == [callbacks.format_epoch(history.epochs[0], 1)]


def test_progress_bar_shows_the_running_means(capsys):
    bar = callbacks.ProgressLog(print_fn=lambda line: None, enabled=True)
    progress = callbacks.Progress(0, 10, 1, 0)
    bar.on_epoch_begin(progress)
    progress.step, progress.seen, progress.loss_sum, progress.hits = 3, 300, 60.0, 240
    bar.on_steps_end(progress)
    assert bar.bar.n == 3 and bar.bar.postfix == "accuracy=0.8000, loss=0.2000"
    bar.close()


def test_running_means_and_steps_rows(small_mnist):
    (x, y), _ = small_mnist
    history = rawtf.fit(
        rawtf.get_model("three_conv"), rawtf.Adam(), (x[:1000], y[:1000]), batch_size=100,
        verbose=0, steps_per_execution=4,
    )  # fmt: skip
    assert [row["step"] for row in history.steps] == [4, 8, 10]
    assert [row["epoch"] for row in history.steps] == [0.4, 0.8, 1.0]
    weights = [400, 400, 200]  # examples in each call
    mean = sum(w * row["loss"] for w, row in zip(weights, history.steps, strict=True)) / 1000
    assert mean == pytest.approx(history["loss"][0], rel=1e-6)
    progress = callbacks.Progress(0, 10, 1, 0, step=3, seen=300, loss_sum=60.0, hits=240)
    assert progress.running == {"loss": 0.2, "accuracy": 0.8}


def _smoothed_reference(logits: np.ndarray, labels: np.ndarray, e: float) -> np.ndarray:
    """Per-example cross-entropy against the smoothed target ``(1 - e) one_hot + e / K``,
    in numpy."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    k = logits.shape[1]
    target = np.full(logits.shape, e / k)
    target[np.arange(len(labels)), labels] += 1.0 - e
    return -(target * log_p).sum(axis=1)


@pytest.mark.parametrize("e", [0.0, 0.1, 0.5])
def test_label_smoothing_loss_matches_numpy_and_keras(rng, e):
    import keras

    logits = rng.normal(size=(32, 10)).astype(np.float32) * 3
    labels = rng.integers(0, 10, 32).astype(np.int32)
    losses, hits = step.loss_and_hits(tf.constant(logits), tf.constant(labels), e)
    np.testing.assert_allclose(losses.numpy(), _smoothed_reference(logits, labels, e), rtol=1e-5)
    theirs = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=e)
    mean = theirs(np.eye(10, dtype=np.float32)[labels], logits)
    np.testing.assert_allclose(float(np.mean(losses.numpy())), float(mean), rtol=1e-5)
    assert int(hits) == int(np.sum(logits.argmax(axis=1) == labels))  # hits are unsmoothed


def test_label_smoothing_trains_on_the_smoothed_loss(small_mnist):
    """One step with smoothing applies the gradient of the smoothed loss (checked against
    a tape over the numpy-equivalent formula), and fit rejects values outside [0, 1)."""
    (x, y), _ = small_mnist
    images = tf.constant(x[:64, ..., None], tf.float32) / 255.0
    labels = tf.constant(y[:64].astype(np.int32))
    model = rawtf.get_model("three_conv", seed=0)
    twin = rawtf.get_model("three_conv", seed=0)
    step.make_train_step(model, rawtf.optim.SGD(0.1), label_smoothing=0.2)(
        images, labels, step.step_seed(0, 0)
    )
    with tf.GradientTape() as tape:
        log_p = tf.nn.log_softmax(twin(images, training=True))
        target = 0.8 * tf.one_hot(labels, 10) + 0.02
        loss = -tf.reduce_mean(tf.reduce_sum(target * log_p, axis=1))
    grads = tape.gradient(loss, twin.trainable_variables)
    pairs = zip(twin.trainable_variables, grads, model.trainable_variables, strict=True)
    for var, grad, updated in pairs:
        np.testing.assert_allclose(updated.numpy(), (var - 0.1 * grad).numpy(), atol=1e-5)
    for bad in (1.0, -0.1, "0.1", True):
        with pytest.raises(ConfigError, match=r"label_smoothing must lie in \[0, 1\)"):
            rawtf.fit(model, rawtf.Adam(), (x, y), label_smoothing=bad, verbose=0)


def test_fit_ends_with_the_moving_average_of_the_weights(small_mnist, tmp_path):
    """With ``ema_momentum`` the model ends at the optimiser's averages, the raw weights of
    the last step stay in the checkpoint (to resume from), and the average is the one
    recomputed here from the weights after each step."""
    (x, y), _ = small_mnist
    model = rawtf.get_model("three_conv", seed=0)
    optimizer = rawtf.Adam(1e-3, ema_momentum=0.5)
    after_each_step, raw = [], {}

    class Record(callbacks.Callback):
        def on_steps_end(self, progress):
            after_each_step.append([v.numpy() for v in model.trainable_variables])

        def on_epoch_end(self, progress, row):
            raw["last"] = [v.numpy() for v in model.trainable_variables]

    rawtf.fit(
        model,
        optimizer,
        (x[:256], y[:256]),
        batch_size=64,
        verbose=0,
        callbacks=[Record()],
        steps_per_execution=1,
        checkpoint_dir=str(tmp_path / "c"),
    )
    expected = after_each_step[0]
    for weights in after_each_step[1:]:
        expected = [0.5 * e + 0.5 * w for e, w in zip(expected, weights, strict=True)]
    for variable, value in zip(model.trainable_variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-6)
    pairs = zip(model.trainable_variables, raw["last"], strict=True)
    assert any(not np.allclose(v.numpy(), r) for v, r in pairs)
    restored = rawtf.get_model("three_conv", seed=1)
    tf.train.Checkpoint(model=restored).read(
        tf.train.latest_checkpoint(tmp_path / "c")
    ).expect_partial()
    for variable, value in zip(restored.trainable_variables, raw["last"], strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    with pytest.raises(ConfigError, match=r"ema_momentum must lie in \[0, 1\)"):
        rawtf.Adam(ema_momentum=1.0)
