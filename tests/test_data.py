"""Arrays in memory: image and label checks, the pixel conversion, statistics, epoch
orders and splits."""

from __future__ import annotations

import numpy as np
import pytest

from rawtf import data
from rawtf.errors import ConfigError, DataError


def test_check_images_and_labels():
    assert data.check_images(np.zeros((2, 784), np.uint8)).shape == (2, 28, 28, 1)
    assert data.check_images(np.zeros((2, 28, 28), np.float64)).dtype == np.float32
    for bad, message in [
        (np.full((2, 28, 28), 255.0), r"must lie in \[0, 1\], got \[255, 255\]"),
        (np.full((2, 28, 28), np.nan), "NaN"),
        (np.zeros((0, 28, 28)), "empty"),
        (np.zeros((28, 28)), "expected images of shape"),
        (np.zeros((2, 28, 28), np.int32), "dtype int32"),
    ]:
        with pytest.raises(DataError, match=message):
            data.check_images(bad, "x")
    np.testing.assert_array_equal(data.check_labels(np.eye(10)[[3, 1]], 2), [3, 1])
    with pytest.raises(DataError, match=r"labels must lie in 0..9, got 0..10"):
        data.check_labels([0, 10], 2)
    with pytest.raises(DataError, match="3 labels for 2 images"):
        data.check_labels([0, 1, 2], 2)
    with pytest.raises(DataError, match="whole numbers"):
        data.check_labels([0.5, 1.0], 2)


def test_to_float():
    x = np.array([[[0, 255], [51, 102]]], np.uint8)
    np.testing.assert_allclose(data.to_float(x)[0, :, :, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)


def test_statistics_of_a_small_set():
    x = np.zeros((4, 28, 28), np.uint8)
    x[0, 0, 0], x[1, 5, 5] = 255, 51  # two inked pixels of 3,136
    stats = data.statistics(x, [3, 3, 0, 9])
    assert stats["images"] == 4 and stats["image_shape"] == [28, 28, 1]
    assert stats["pixel_mean"] == pytest.approx((1.0 + 0.2) / 3136, rel=1e-6)
    assert stats["ink_fraction"] == pytest.approx(2 / 3136)
    assert stats["label_counts"] == {
        "0": 1,
        "1": 0,
        "2": 0,
        "3": 2,
        **{str(k): 0 for k in range(4, 9)},
        "9": 1,
    }


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = data.epoch_order(1000, seed=3, epoch=0)
    assert sorted(a) == list(range(1000))
    np.testing.assert_array_equal(a, data.epoch_order(1000, seed=3, epoch=0))
    assert (a != data.epoch_order(1000, seed=3, epoch=1)).any()
    assert (a != data.epoch_order(1000, seed=4, epoch=0)).any()


def test_split_is_deterministic_and_disjoint():
    x = np.arange(100)[:, None].repeat(784, 1).astype(np.uint8)
    y = np.arange(100) % 10
    (xt, yt), (xv, yv) = data.train_validation_split(x, y, 0.2, seed=5)
    assert len(xv) == 20 and len(xt) == 80
    assert set(xt[:, 0]).isdisjoint(xv[:, 0]) and len(set(xt[:, 0]) | set(xv[:, 0])) == 100
    (_, _), (xv2, _) = data.train_validation_split(x, y, 0.2, seed=5)
    np.testing.assert_array_equal(xv, xv2)
    with pytest.raises(ConfigError):
        data.train_validation_split(x, y, 1.0)
