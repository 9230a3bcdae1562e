"""Random rotation, zoom and shift as one affine transform per image, in raw TensorFlow.

Each image gets its own angle, scale and offset, drawn with stateless random ops keyed on
``(seed, epoch, step)``, so an augmented run repeats exactly and resumes exactly. The warp
is ``tf.raw_ops.ImageProjectiveTransformV3`` (bilinear, black fill), which has no XLA
kernel: it runs in the tf.data pipeline, not in a ``jit_compile`` step. No flips: a
mirrored digit is another symbol.

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
from rawtf.errors import ConfigError, check_fraction

tf = import_tensorflow()

_STREAM = 0x61756720  # keeps augmentation's random numbers apart from other uses of the seed


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transform: rotation in degrees (±), zoom as a fraction (scale
    in ``[1 - zoom, 1 + zoom]``), shift as a fraction of each side (±)."""

    rotation: float = 10.0
    zoom: float = 0.1
    shift: float = 0.1

    def __post_init__(self):
        if not 0 <= self.rotation <= 180:
            raise ConfigError(f"rotation must lie in [0, 180] degrees, got {self.rotation}")
        check_fraction("zoom", self.zoom)
        check_fraction("shift", self.shift)


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


def random_affine(images, seed, epoch, step, config: AugmentConfig = AugmentConfig()):
    """Rotate, zoom and shift each image of the NHWC float batch by its own random amounts,
    drawn uniformly within ``config`` from the stateless seed of ``(seed, epoch, step)``."""
    images = tf.convert_to_tensor(images)
    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    draws = tf.random.stateless_uniform([n, 4], augment_seed(seed, epoch, step), -1.0, 1.0)
    angles = draws[:, 0] * (config.rotation * math.pi / 180.0)
    scales = 1.0 + draws[:, 1] * config.zoom
    shift_x = draws[:, 2] * (config.shift * width)
    shift_y = draws[:, 3] * (config.shift * height)
    return transform(images, inverse_transforms(angles, scales, shift_x, shift_y, height, width))
