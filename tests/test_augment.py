"""Augmentation geometry on synthetic images, and its determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rawtf import augment, pipeline
from rawtf.config import TrainConfig
from rawtf.errors import ConfigError
from rawtf.runs import augmentation
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


@pytest.mark.parametrize(
    "config",
    [augment.AugmentConfig(), augment.AugmentConfig(elastic=34)],
    ids=["affine", "elastic"],
)
def test_pipeline_augments_deterministically_and_resumes(config):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (40, H, W, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 40).astype(np.int32)
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
    with pytest.raises(ConfigError, match=r"elastic must be a number in \[0, 1000\] pixels"):
        augment.AugmentConfig(elastic=-1)
    with pytest.raises(ConfigError, match="elastic_sigma must be"):
        augment.AugmentConfig(elastic=34, elastic_sigma=0.1)


# Elastic distortion, against numpy references written from the definitions.


def numpy_bilinear(images, x, y):
    """images[n] read at (x, y) with bilinear weights, neighbours outside the image 0."""
    n, height, width, _ = images.shape
    out = np.zeros(x.shape + (images.shape[-1],), np.float64)
    for b, i, j in np.ndindex(*x.shape):
        px, py = x[b, i, j], y[b, i, j]
        x0, y0 = math.floor(px), math.floor(py)
        for cx, cy, weight in (
            (x0, y0, (1 - (px - x0)) * (1 - (py - y0))),
            (x0 + 1, y0, (px - x0) * (1 - (py - y0))),
            (x0, y0 + 1, (1 - (px - x0)) * (py - y0)),
            (x0 + 1, y0 + 1, (px - x0) * (py - y0)),
        ):
            if 0 <= cx < width and 0 <= cy < height:
                out[b, i, j] += weight * images[b, cy, cx]
    return out


def numpy_smooth(field, sigma):
    """2-D Gaussian smoothing, zero beyond the border, by direct summation."""
    radius = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k2 = np.outer(k, k) / k.sum() ** 2
    padded = np.pad(field, radius)
    out = np.zeros_like(field, np.float64)
    for i, j in np.ndindex(*field.shape):
        out[i, j] = (padded[i : i + 2 * radius + 1, j : j + 2 * radius + 1] * k2).sum()
    return out


def test_bilinear_sampling_matches_numpy_inside_on_and_beyond_the_border():
    rng = np.random.default_rng(3)
    images = rng.random((2, 6, 5, 2)).astype(np.float32)
    x = rng.uniform(-2, 7, (2, 4, 3)).astype(np.float32)
    y = rng.uniform(-2, 8, (2, 4, 3)).astype(np.float32)
    x[0, 0, :] = [0.0, 4.0, 4.5]  # exactly on pixels and half past the last column
    got = augment.sample_bilinear(tf.constant(images), tf.constant(x), tf.constant(y)).numpy()
    np.testing.assert_allclose(got, numpy_bilinear(images, x, y), atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 4.0, 6.0])
def test_displacement_fields_are_gaussian_smoothed_noise(sigma):
    noise = tf.random.stateless_uniform([1, H, W, 2], [5, 6], -1.0, 1.0).numpy()
    fields = augment.displacement_fields(1, H, W, tf.constant([5, 6]), 34.0, sigma).numpy()
    for axis in (0, 1):
        want = 34.0 * numpy_smooth(noise[0, :, :, axis].astype(np.float64), sigma)
        np.testing.assert_allclose(fields[0, :, :, axis], want, atol=1e-4)


def test_displacement_size_follows_from_alpha_and_sigma():
    """Away from the border, a field's standard deviation is alpha * sqrt(1/3) * sum(k^2)
    for the normalised 1-D kernel k (uniform noise in [-1, 1] has variance 1/3)."""
    sigma, alpha, radius = 4.0, 34.0, 12
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    want = alpha * math.sqrt(1 / 3) * (k**2).sum()
    fields = augment.displacement_fields(400, 64, 64, tf.constant([1, 2]), alpha, sigma)
    inner = fields.numpy()[:, radius:-radius, radius:-radius]
    assert inner.std() == pytest.approx(want, rel=0.05)
    assert abs(inner.mean()) < 0.05 * want


def test_no_displacement_is_the_projective_warp():
    """The elastic path's own resampling, with no displacement, against TensorFlow's
    projective-transform kernel, for random rotations, zooms and shifts."""
    x = np.random.default_rng(4).random((16, H, W, 1)).astype(np.float32)
    config = augment.AugmentConfig(rotation=30, zoom=0.2, shift=0.2)
    seed = augment.augment_seed(1, 2, 3)
    transforms = augment.random_transforms(16, H, W, seed, config)
    want = augment.transform(tf.constant(x), transforms).numpy()
    got = augment.warp(tf.constant(x), transforms, tf.zeros([16, H, W, 2])).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_constant_displacement_moves_the_picture_the_other_way():
    """Output pixel p' reads the input at p' + d: a dot at column 10 shows at column 10 - 3."""
    identity = augment.inverse_transforms(*(tf.constant([v]) for v in (0.0, 1.0, 0.0, 0.0)), H, W)
    field = np.zeros((1, H, W, 2), np.float32)
    field[..., 0], field[..., 1] = 3.0, -2.0
    out = augment.warp(tf.constant(dot(12, 10)), identity, tf.constant(field)).numpy()[0, :, :, 0]
    assert out[14, 7] == pytest.approx(1.0, abs=1e-6)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)


def test_elastic_distortion_is_keyed_and_keeps_the_affine_draws():
    x = np.random.default_rng(5).random((8, H, W, 1)).astype(np.float32)
    config = augment.AugmentConfig(elastic=34)
    a = augment.random_warp(x, 7, 2, 3, config).numpy()
    np.testing.assert_array_equal(a, augment.random_warp(x, 7, 2, 3, config).numpy())
    assert not np.allclose(a, augment.random_warp(x, 7, 2, 4, config).numpy())
    affine = augment.random_warp(x, 7, 2, 3, augment.AugmentConfig()).numpy()
    faint = augment.random_warp(x, 7, 2, 3, augment.AugmentConfig(elastic=1e-6)).numpy()
    np.testing.assert_allclose(faint, affine, atol=1e-5)  # same rotation, zoom and shift
    assert np.abs(a - affine).mean() > 0.01


def test_run_settings_choose_the_augmentation():
    assert augmentation(TrainConfig()) is None
    assert augmentation(TrainConfig(augment=True)) == augment.AugmentConfig()
    both = augmentation(TrainConfig(augment=True, elastic=34))
    assert both == augment.AugmentConfig(elastic=34)
    alone = augmentation(TrainConfig(elastic=36, elastic_sigma=6))
    assert alone == augment.AugmentConfig(rotation=0, zoom=0, shift=0, elastic=36, elastic_sigma=6)
