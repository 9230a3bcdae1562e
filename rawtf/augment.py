"""Random rotation, zoom and shift as one affine transform per image, and optional elastic
distortion, in raw TensorFlow.

Each image gets its own angle, scale and offset, drawn with stateless random ops keyed on
``(seed, epoch, step)``, so an augmented run repeats exactly and resumes exactly. The affine
warp is ``tf.raw_ops.ImageProjectiveTransformV3`` (bilinear, black fill), which has no XLA
kernel: it runs in the tf.data pipeline, not in a ``jit_compile`` step. No flips: a
mirrored digit is another symbol.

Elastic distortion (Simard, Steinkraus and Platt, 2003) moves every output pixel by its
own displacement: uniform noise in [-1, 1] per pixel and axis, smoothed by a Gaussian of
standard deviation ``elastic_sigma`` pixels (zero beyond the border) and scaled by
``elastic``. With it, each output pixel ``p'`` reads the input at the affine map of
``p' + d(p')``, sampled bilinearly with black fill: one resampling for both warps.

Geometry, for an image of height ``H`` and width ``W`` with centre
``c = ((W - 1) / 2, (H - 1) / 2)`` in (x = column, y = row) coordinates, an input point
``p`` lands at::

    p' = c + s * R(theta) (p - c) + t

and the op is given the inverse map, output -> input::

    p = c + R(-theta) (p' - c - t) / s
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rawtf._tf import import_tensorflow
from rawtf.config import ELASTIC_ALPHA, ELASTIC_SIGMA
from rawtf.errors import ConfigError, check_fraction

tf = import_tensorflow()

_STREAM = 0x61756720  # keeps augmentation's random numbers apart from other uses of the seed


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transform: rotation in degrees (±), zoom as a fraction (scale
    in ``[1 - zoom, 1 + zoom]``), shift as a fraction of each side (±); ``elastic`` scales
    the smoothed displacement field in pixels (0: no elastic distortion) and
    ``elastic_sigma`` is its smoothing in pixels."""

    rotation: float = 10.0
    zoom: float = 0.1
    shift: float = 0.1
    elastic: float = 0.0
    elastic_sigma: float = 4.0

    def __post_init__(self):
        if not 0 <= self.rotation <= 180:
            raise ConfigError(f"rotation must lie in [0, 180] degrees, got {self.rotation}")
        check_fraction("zoom", self.zoom)
        check_fraction("shift", self.shift)
        for name, number in (("elastic", ELASTIC_ALPHA), ("elastic_sigma", ELASTIC_SIGMA)):
            value = getattr(self, name)
            if not number.check(value):
                raise ConfigError(f"{name} must be {number.expected} pixels, got {value!r}")


def inverse_transforms(angles, scales, shifts_x, shifts_y, height: int, width: int):
    """The ``[N, 8]`` output -> input projective transforms for per-image ``angles``
    (radians), ``scales`` and shifts (pixels), in the op's ``a0 a1 a2 b0 b1 b2 c0 c1``
    layout."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = tf.cos(angles) / scales, tf.sin(angles) / scales
    a0, a1, b0, b1 = cos, sin, -sin, cos
    ox, oy = cx + shifts_x, cy + shifts_y
    a2 = cx - (a0 * ox + a1 * oy)
    b2 = cy - (b0 * ox + b1 * oy)
    zero = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


def transform(images, transforms):
    """Warp NHWC float ``images`` by per-image output -> input ``transforms`` [N, 8]."""
    shape = tf.shape(images)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=shape[1:3],
        fill_value=tf.constant(0.0, images.dtype),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(warped, images.shape)  # the op's own output shape is unknown


def augment_seed(seed, epoch, step):
    """The stateless ``[2]`` seed of one batch's transforms."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(_STREAM, tf.int64)])
    base = tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))


def random_transforms(n, height: int, width: int, seed, config: AugmentConfig):
    """``n`` random output -> input transforms ``[n, 8]`` within ``config``'s ranges, drawn
    uniformly from the stateless ``seed``."""
    draws = tf.random.stateless_uniform([n, 4], seed, -1.0, 1.0)
    angles = draws[:, 0] * (config.rotation * math.pi / 180.0)
    scales = 1.0 + draws[:, 1] * config.zoom
    shift_x = draws[:, 2] * (config.shift * width)
    shift_y = draws[:, 3] * (config.shift * height)
    return inverse_transforms(angles, scales, shift_x, shift_y, height, width)


#: The seed of test-time augmentation's views: fixed, so that a model's result with them
#: repeats.
TTA_SEED = 123


def tta_transforms(n, view: int, height: int, width: int, config=AugmentConfig()):
    """The ``[n, 8]`` transforms of test-time view ``view`` (from 1) of ``n`` images: image
    ``i`` gets the ``i``-th transform :func:`random_transforms` draws within ``config`` from
    the seed of ``(TTA_SEED, epoch 0, step view - 1)``, as :func:`random_affine`
    would warp a batch of those ``n`` images. Drawn for a whole set at once, so that an
    image's view does not depend on the batches it is evaluated in."""
    seed = augment_seed(TTA_SEED, 0, view - 1)
    return random_transforms(n, height, width, seed, config)


def random_affine(images, seed, epoch, step, config: AugmentConfig = AugmentConfig()):
    """Rotate, zoom and shift each image of the NHWC float batch by its own random amounts,
    drawn uniformly within ``config`` from the stateless seed of ``(seed, epoch, step)``."""
    images = tf.convert_to_tensor(images)
    n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    seed = augment_seed(seed, epoch, step)
    return transform(images, random_transforms(n, height, width, seed, config))


def gaussian_kernel(sigma: float):
    """The normalised 1-D Gaussian of standard deviation ``sigma``, cut at 3 sigma."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-0.5 * tf.square(x / sigma))
    return weights / tf.reduce_sum(weights)


def smooth(fields, sigma: float):
    """Gaussian-smooth each channel of NHWC ``fields`` separably, zero beyond the border."""
    kernel = gaussian_kernel(sigma)
    channels = fields.shape[-1]
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.reshape(rows, [1, -1, channels, 1])
    fields = tf.nn.depthwise_conv2d(fields, rows, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(fields, cols, [1, 1, 1, 1], "SAME")


def displacement_fields(n, height: int, width: int, seed, alpha: float, sigma: float):
    """``[n, height, width, 2]`` smoothed random displacements (x, y) in pixels."""
    noise = tf.random.stateless_uniform([n, height, width, 2], seed, -1.0, 1.0)
    return alpha * smooth(noise, sigma)


def sample_bilinear(images, x, y):
    """``images`` (NHWC) read at the per-pixel points ``(x, y)`` (``[N, H', W']``, column
    and row), bilinearly; neighbours outside the image count as 0."""
    shape = tf.shape(images)
    n, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    flat = tf.reshape(images, [-1, channels])
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    base = tf.reshape(tf.range(n) * (height * width), [-1, 1, 1])

    def corner(cx, cy):
        inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        index = base + tf.clip_by_value(cy, 0, height - 1) * width
        index += tf.clip_by_value(cx, 0, width - 1)
        return tf.gather(flat, index) * tf.cast(inside, images.dtype)[..., None]

    top = corner(x0, y0) * (1 - fx) + corner(x0 + 1, y0) * fx
    bottom = corner(x0, y0 + 1) * (1 - fx) + corner(x0 + 1, y0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def warp(images, transforms, displacements):
    """Warp NHWC float ``images``: output pixel ``p'`` reads the input at the output ->
    input ``transforms`` [N, 8] (affine rows) applied to ``p' + displacements[p']``."""
    height, width = images.shape[1], images.shape[2]
    rows, cols = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    qx = cols + displacements[..., 0]
    qy = rows + displacements[..., 1]
    t = tf.cast(transforms, tf.float32)[:, :, None, None]
    x = t[:, 0] * qx + t[:, 1] * qy + t[:, 2]
    y = t[:, 3] * qx + t[:, 4] * qy + t[:, 5]
    return tf.ensure_shape(sample_bilinear(images, x, y), images.shape)


def random_elastic(images, seed, epoch, step, config: AugmentConfig):
    """:func:`random_affine`'s transforms (the same draws) and elastic displacements of
    strength ``config.elastic`` and smoothing ``config.elastic_sigma``, in one resampling."""
    images = tf.convert_to_tensor(images)
    n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    seed = augment_seed(seed, epoch, step)
    transforms = random_transforms(n, height, width, seed, config)
    field_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    fields = displacement_fields(n, height, width, field_seed, config.elastic, config.elastic_sigma)
    return warp(images, transforms, fields)


def random_warp(images, seed, epoch, step, config: AugmentConfig = AugmentConfig()):
    """The augmentation ``config`` asks for: :func:`random_elastic` when it has an elastic
    strength, else :func:`random_affine`."""
    warp_batch = random_elastic if config.elastic else random_affine
    return warp_batch(images, seed, epoch, step, config)
