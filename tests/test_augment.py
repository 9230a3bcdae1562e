"""Augmentation geometry on synthetic images, and its determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rawtf import augment, pipeline
from rawtf.errors import ConfigError
from tests.conftest import tf

H = W = 28


def dot(row, col, n=1):
    image = np.zeros((n, H, W, 1), np.float32)
    image[:, row, col, 0] = 1.0
    return image


def forward(row, col, angle, scale, tx, ty):
    """Where the pixel (row, col) lands: p' = c + s R(angle) (p - c) + t, x = col, y = row."""
    c = (W - 1) / 2
    dx, dy = col - c, row - c
    x = c + scale * (math.cos(angle) * dx - math.sin(angle) * dy) + tx
    y = c + scale * (math.sin(angle) * dx + math.cos(angle) * dy) + ty
    return y, x


@pytest.mark.parametrize(
    "angle,scale,tx,ty",
    [
        (0.0, 1.0, 3.0, -2.0),
        (math.pi / 2, 1.0, 0.0, 0.0),
        (-math.pi / 2, 1.0, 2.0, 1.0),
        (0.0, 3.0, 0.0, 0.0),  # c + 3 (p - c) lands on a pixel centre
        (math.pi, 1.0, 0.0, 0.0),
    ],
)
def test_a_dot_lands_where_the_matrix_says(angle, scale, tx, ty):
    row, col = 9, 16
    transforms = augment.inverse_transforms(
        tf.constant([angle]), tf.constant([scale]), tf.constant([tx]), tf.constant([ty]), H, W
    )
    out = augment.transform(tf.constant(dot(row, col)), transforms).numpy()[0, :, :, 0]
    y, x = forward(row, col, angle, scale, tx, ty)
    assert (round(y), round(x)) == (pytest.approx(y, abs=1e-6), pytest.approx(x, abs=1e-6))
    assert out[round(y), round(x)] == pytest.approx(1.0, abs=1e-4)
    assert np.unravel_index(out.argmax(), out.shape) == (round(y), round(x))
    if scale == 1.0:  # a rigid motion onto pixel centres moves the dot whole
        assert out.sum() == pytest.approx(1.0, abs=1e-4)


def test_identity_and_fill():
    x = np.random.default_rng(0).random((3, H, W, 1)).astype(np.float32)
    none = augment.AugmentConfig(rotation=0, zoom=0, shift=0)
    np.testing.assert_allclose(augment.random_affine(x, 1, 0, 0, none).numpy(), x, atol=1e-6)
    shifted = augment.transform(
        tf.constant(np.ones((1, H, W, 1), np.float32)),
        augment.inverse_transforms(
            tf.constant([0.0]), tf.constant([1.0]), tf.constant([5.0]), tf.constant([0.0]), H, W
        ),
    ).numpy()[0, :, :, 0]
    assert (shifted[:, :5] == 0).all() and (
        shifted[:, 5:] == 1
    ).all()  # black comes in from the edge


def test_random_shifts_stay_in_range_and_vary():
    config = augment.AugmentConfig(rotation=0, zoom=0, shift=0.1)
    out = augment.random_affine(dot(14, 14, n=64), seed=3, epoch=0, step=0, config=config).numpy()
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    mass = out[..., 0].sum(axis=(1, 2))
    com_r = (out[..., 0] * rows).sum(axis=(1, 2)) / mass
    com_c = (out[..., 0] * cols).sum(axis=(1, 2)) / mass
    assert np.all(np.abs(com_r - 14) <= 2.8 + 1e-4) and np.all(np.abs(com_c - 14) <= 2.8 + 1e-4)
    assert com_r.std() > 0.5 and com_c.std() > 0.5


def test_rotation_stays_within_ten_degrees():
    config = augment.AugmentConfig(rotation=10, zoom=0, shift=0)
    out = augment.random_affine(dot(14, 24, n=64), seed=5, epoch=1, step=2, config=config).numpy()
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    mass = out[..., 0].sum(axis=(1, 2))
    dy = (out[..., 0] * rows).sum(axis=(1, 2)) / mass - 13.5
    dx = (out[..., 0] * cols).sum(axis=(1, 2)) / mass - 13.5
    angles = np.degrees(np.arctan2(dy, dx) - np.arctan2(0.5, 10.5))
    assert np.all(np.abs(angles) <= 10.5) and angles.std() > 2  # bilinear spread: small slack


def test_same_key_same_warp():
    x = np.random.default_rng(1).random((4, H, W, 1)).astype(np.float32)
    a = augment.random_affine(x, 7, 2, 3).numpy()
    np.testing.assert_array_equal(a, augment.random_affine(x, 7, 2, 3).numpy())
    assert not np.allclose(a, augment.random_affine(x, 7, 2, 4).numpy())
    assert not np.allclose(a, augment.random_affine(x, 7, 3, 3).numpy())


def test_pipeline_augments_deterministically_and_resumes():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (40, H, W, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 40).astype(np.int32)
    config = augment.AugmentConfig()
    first = [
        b[0].numpy() for b in pipeline.train_dataset(x, y, 16, seed=1, epoch=0, augment=config)
    ]
    again = [
        b[0].numpy() for b in pipeline.train_dataset(x, y, 16, seed=1, epoch=0, augment=config)
    ]
    resumed = [
        b[0].numpy() for b in pipeline.train_dataset(x, y, 16, 1, 0, start_step=1, augment=config)
    ]
    plain = [b[0].numpy() for b in pipeline.train_dataset(x, y, 16, seed=1, epoch=0)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed[0], first[1])
    assert not np.allclose(first[0], plain[0])


def test_bad_ranges():
    with pytest.raises(ConfigError, match="zoom"):
        augment.AugmentConfig(zoom=1.5)
