"""MNIST's picture geometry in TensorFlow ops, so that a SavedModel (and so any server)
reads people's pictures exactly as ``rawtf.images`` does: one implementation.

MNIST's recipe: grey, light ink on black (dark ink on light paper is inverted, judged by
the border), the ink's bounding box scaled so its longer side is 20 pixels keeping the
aspect ratio, placed in a 28x28 field so that its centre of mass sits at the centre, and
scaled so the brightest pixel is 1. Every function works on one picture; ``tf.map_fn``
applies it to a batch.
"""

from __future__ import annotations

from rawtf._tf import import_tensorflow

tf = import_tensorflow()

SIZE = 28
BOX = 20
#: A pixel counts as ink when it is this far (0-255) above the background level.
INK_THRESHOLD = 40.0


def _median(values):
    """The median (the upper one of an even count) of a 1-D tensor."""
    ordered = tf.sort(values)
    return ordered[tf.size(values) // 2]


def ink_of(grey):
    """Light-on-dark ink levels (>= 0) of a float grey picture [H, W] in 0-255: the border's
    median is the paper; pictures on light paper are inverted first."""
    grey = tf.convert_to_tensor(grey, tf.float32)
    border = tf.concat([grey[0], grey[-1], grey[:, 0], grey[:, -1]], axis=0)
    background = _median(border)
    light_paper = background > 127.0
    grey = tf.where(light_paper, 255.0 - grey, grey)
    background = tf.where(light_paper, 255.0 - background, background)
    return tf.nn.relu(grey - background)


def _span(any_ink):
    """First and one-past-last index where ``any_ink`` (1-D bool) is True."""
    where = tf.cast(tf.reshape(tf.where(any_ink), [-1]), tf.int32)
    return where[0], where[-1] + 1


def mnist_style(grey):
    """The MNIST-style float32 [28, 28] picture in [0, 1] of a float grey picture [H, W]
    with levels 0-255. A picture with no ink (nothing ``INK_THRESHOLD`` above the paper)
    gives all zeros; :func:`has_ink` tells them apart."""
    ink = ink_of(grey)
    mask = ink > INK_THRESHOLD
    return tf.cond(
        tf.reduce_any(mask),
        lambda: _place(ink, mask),
        lambda: tf.zeros([SIZE, SIZE], tf.float32),
    )


def has_ink(grey):
    """Whether the picture has any ink for :func:`mnist_style` to find."""
    return tf.reduce_any(ink_of(grey) > INK_THRESHOLD)


def _place(ink, mask):
    top, bottom = _span(tf.reduce_any(mask, axis=1))
    left, right = _span(tf.reduce_any(mask, axis=0))
    crop = ink[top:bottom, left:right]
    h, w = tf.cast(bottom - top, tf.float32), tf.cast(right - left, tf.float32)
    scale = BOX / tf.maximum(h, w)
    new_h = tf.maximum(1, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(1, tf.cast(tf.round(w * scale), tf.int32))
    box = tf.image.resize(crop[..., None], [new_h, new_w], method="lanczos3", antialias=True)
    box = tf.nn.relu(box[..., 0])
    total = tf.reduce_sum(box)
    rows = tf.range(tf.cast(new_h, tf.float32))
    cols = tf.range(tf.cast(new_w, tf.float32))
    com_y = tf.reduce_sum(tf.reduce_sum(box, axis=1) * rows) / total
    com_x = tf.reduce_sum(tf.reduce_sum(box, axis=0) * cols) / total
    centre = (SIZE - 1) / 2
    at_top = tf.clip_by_value(tf.cast(tf.round(centre - com_y), tf.int32), 0, SIZE - new_h)
    at_left = tf.clip_by_value(tf.cast(tf.round(centre - com_x), tf.int32), 0, SIZE - new_w)
    field = tf.pad(box, [[at_top, SIZE - new_h - at_top], [at_left, SIZE - new_w - at_left]])
    field = tf.ensure_shape(field, [SIZE, SIZE])
    return field / tf.reduce_max(field)


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)], autograph=False)
def placed(grey):
    """``(mnist_style(grey), has_ink(grey))``, compiled once for pictures of any size."""
    return mnist_style(grey), has_ink(grey)
