"""Bad input everywhere: each case gets a rawtf error with a one-line message naming what
and where, and leaves no partial file behind. The README's table lists these cases."""

from __future__ import annotations

import numpy as np
import pytest

import rawtf
from rawtf import export, images, kaggle, layers, optim
from rawtf.errors import CheckpointError, ConfigError, DataError, RawtfError, ShapeError
from tests.conftest import tf

GOOD_X = np.zeros((4, 28, 28), np.uint8)
GOOD_Y = np.array([0, 1, 2, 3])


@pytest.fixture(scope="module")
def model():
    return rawtf.get_model("three_conv")


def cases(tmp):
    """(label, callable, error type, message fragment)."""
    (tmp / "a_file").write_text("x")
    (tmp / "garbage.png").write_bytes(b"\x00" * 10)
    (tmp / "bad.csv").write_bytes(b"\xff\xfe\x00binary")
    (tmp / "binary_run").mkdir()
    (tmp / "binary_run" / "config.json").write_bytes(b'{"format": "rawtf-run",\n"x": "\xc0"}')
    (tmp / "huge_run").mkdir()
    (tmp / "huge_run" / "config.json").write_bytes(b" " * (2 << 20))
    m = rawtf.get_model("three_conv")
    fit = rawtf.fit
    return [
        (
            "a run config that is not UTF-8",
            lambda: rawtf.runs.load_run(tmp / "binary_run"),
            CheckpointError,
            "config.json:2: not UTF-8 text (byte 0xc0 at column 7)",
        ),
        (
            "a run config of megabytes",
            lambda: rawtf.runs.load_run(tmp / "huge_run"),
            CheckpointError,
            "config.json: larger than 1048576 bytes",
        ),
        (
            "load_mnist on a file",
            lambda: rawtf.load_mnist(tmp / "a_file"),
            DataError,
            "is a file, not a folder",
        ),
        (
            "load_mnist on a missing folder",
            lambda: rawtf.load_mnist(tmp / "nope"),
            DataError,
            "does not exist",
        ),
        ("read_idx on a folder", lambda: rawtf.mnist.read_idx(tmp), DataError, "is a folder"),
        (
            "fit: string images",
            lambda: fit(m, optim.Adam(), (np.full((2, 28, 28), "a"), [0, 1])),
            DataError,
            "dtype",
        ),
        (
            "fit: ragged images",
            lambda: fit(m, optim.Adam(), ([[1, 2], [3]], [0, 1])),
            DataError,
            "not an array",
        ),
        (
            "fit: wrong image size",
            lambda: fit(m, optim.Adam(), (np.zeros((2, 32, 32)), [0, 1])),
            DataError,
            "expected images of shape (28, 28)",
        ),
        (
            "fit: empty",
            lambda: fit(m, optim.Adam(), (np.zeros((0, 28, 28)), [])),
            DataError,
            "empty",
        ),
        (
            "fit: NaN pixels",
            lambda: fit(m, optim.Adam(), (np.full((2, 28, 28), np.nan), [0, 1])),
            DataError,
            "NaN",
        ),
        (
            "fit: raw 0-255 floats",
            lambda: fit(m, optim.Adam(), (GOOD_X * 1.0 + 3, GOOD_Y)),
            DataError,
            "[0, 1]",
        ),
        ("fit: label 10", lambda: fit(m, optim.Adam(), (GOOD_X, [0, 1, 2, 10])), DataError, "0..9"),
        (
            "fit: negative label",
            lambda: fit(m, optim.Adam(), (GOOD_X, [0, 1, 2, -1])),
            DataError,
            "0..9",
        ),
        (
            "fit: NaN labels",
            lambda: fit(m, optim.Adam(), (GOOD_X, [0, 1, 2, np.nan])),
            DataError,
            "whole numbers",
        ),
        (
            "fit: too few labels",
            lambda: fit(m, optim.Adam(), (GOOD_X, [0])),
            DataError,
            "1 labels for 4",
        ),
        ("fit: not a pair", lambda: fit(m, optim.Adam(), GOOD_X), DataError, "expected a pair"),
        (
            "fit: optimiser by name",
            lambda: fit(m, "adam", (GOOD_X, GOOD_Y)),
            ConfigError,
            "optimiser",
        ),
        (
            "fit: epochs 0",
            lambda: fit(m, optim.Adam(), (GOOD_X, GOOD_Y), epochs=0),
            ConfigError,
            "epochs",
        ),
        (
            "fit: bad resume",
            lambda: fit(m, optim.Adam(), (GOOD_X, GOOD_Y), resume="yes"),
            ConfigError,
            "resume",
        ),
        ("evaluate: not a pair", lambda: rawtf.evaluate(m, GOOD_X), DataError, "expected a pair"),
        ("predict: None", lambda: rawtf.predict(m, None), DataError, "expected images"),
        ("get_model: unknown", lambda: rawtf.get_model("resnet"), ConfigError, "choose from"),
        (
            "get_model: bad init",
            lambda: rawtf.get_model("tutorial", init="zeros"),
            ConfigError,
            "initialiser",
        ),
        (
            "Adam: text rate",
            lambda: optim.Adam("fast"),
            ConfigError,
            "learning rate must be a number",
        ),
        ("Adam: infinite rate", lambda: optim.Adam(float("inf")), ConfigError, "positive"),
        (
            "SGD: nesterov without momentum",
            lambda: optim.SGD(nesterov=True),
            ConfigError,
            "nesterov",
        ),
        (
            "conv2d: rank 3",
            lambda: layers.conv2d(tf.zeros((2, 3, 3)), tf.zeros((1, 1, 3, 1))),
            ShapeError,
            "rank-4",
        ),
        (
            "dense: width",
            lambda: layers.dense(tf.zeros((2, 3)), tf.zeros((4, 1))),
            ShapeError,
            "3 features",
        ),
        ("model: wrong image", lambda: m(tf.zeros((1, 27, 27))), ShapeError, "expects images"),
        (
            "save: under a file",
            lambda: rawtf.save(m, tmp / "a_file" / "m"),
            CheckpointError,
            "cannot write",
        ),
        ("load: missing", lambda: rawtf.load(tmp / "nope"), CheckpointError, "no such file"),
        (
            "load_run: not a run",
            lambda: rawtf.runs.load_run(tmp),
            CheckpointError,
            "not a rawtf run folder",
        ),
        (
            "export: over a file",
            lambda: export.export_saved_model(m, tmp / "a_file"),
            CheckpointError,
            "not a SavedModel folder",
        ),
        (
            "kaggle csv: binary",
            lambda: kaggle.load_kaggle_csv(tmp / "bad.csv"),
            DataError,
            "bad.csv",
        ),
        (
            "kaggle csv: missing",
            lambda: kaggle.load_kaggle_csv(tmp / "nope.csv"),
            DataError,
            "no such file",
        ),
        (
            "submission: 2-D labels",
            lambda: kaggle.write_submission(np.zeros((2, 2), int), tmp / "s.csv"),
            DataError,
            "1-D",
        ),
        (
            "submission: into a folder",
            lambda: kaggle.write_submission([1], tmp),
            DataError,
            "is a folder",
        ),
        (
            "image: not a picture",
            lambda: images.load_digit_image(tmp / "garbage.png"),
            DataError,
            "not an image",
        ),
        ("image: a folder", lambda: images.load_digit_image(tmp), DataError, "cannot read image"),
        ("images: none", lambda: images.load_digit_images([]), DataError, "no image files"),
        (
            "split: fraction 0",
            lambda: rawtf.data.train_validation_split(GOOD_X, GOOD_Y, 0.0),
            ConfigError,
            "strictly between",
        ),
        (
            "schedule: warm-up too long",
            lambda: rawtf.schedules.CosineDecay(0.1, 10, warmup=20),
            ConfigError,
            "warmup",
        ),
        ("augment: zoom 2", lambda: rawtf.augment.AugmentConfig(zoom=2), ConfigError, "zoom"),
    ]


def test_every_case_raises_a_one_line_rawtf_error(tmp_path):
    before = None
    for label, call, error, fragment in cases(tmp_path):
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(error) as info:
            call()
        message = str(info.value)
        assert isinstance(info.value, RawtfError), label
        assert "\n" not in message, (label, message)
        assert fragment in message, (label, message)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, f"{label} left files behind"
