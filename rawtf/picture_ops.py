"""People's pictures in TensorFlow ops, so that a SavedModel (and so any server) reads
them exactly as ``rawtf.images`` does: decoding encoded bytes (:func:`decode_grey`) and
MNIST's geometry (:func:`mnist_style`), the one implementation of it.

MNIST's recipe: grey, light ink on black (dark ink on light paper is inverted, judged by
the border), the ink's bounding box scaled so its longer side is 20 pixels keeping the
aspect ratio, placed in a 28x28 field so that its centre of mass sits at the centre, and
scaled so the brightest pixel is 1. Strokes that come out much thinner than MNIST's (a
fine pen, a large picture) are thickened first. Every function works on one picture; ``tf.map_fn``
applies it to a batch.
"""

from __future__ import annotations

from rawtf._tf import import_tensorflow

tf = import_tensorflow()

SIZE = 28
BOX = 20
#: Stroke width in the 28x28 field (2 x area / perimeter of the pixels above 0.5): MNIST's
#: median is 1.95 (10th percentile 1.43). Thinner strokes are thickened to about TARGET;
#: thick ones are left alone (thinning them lost accuracy on benchmarks/drawn_digits.py).
THIN, TARGET, ROUNDS = 1.4, 2.0, 3
#: The most pixels an encoded picture may declare; beyond it decoding is refused.
MAX_PIXELS = 50_000_000
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
    gives all zeros (every other picture has a pixel at 1)."""
    ink = ink_of(grey)
    mask = ink > INK_THRESHOLD
    return tf.cond(
        tf.reduce_any(mask),
        lambda: _place_thick_enough(ink, mask),
        lambda: tf.zeros([SIZE, SIZE], tf.float32),
    )


def stroke_width(field):
    """The stroke width of a placed [28, 28] field: 2 x area / perimeter of the pixels above
    0.5 (for a long stroke, its width in pixels)."""
    inked = tf.pad(tf.cast(field > 0.5, tf.float32), [[1, 1], [1, 1]])
    edges = tf.reduce_sum(tf.abs(inked[1:] - inked[:-1]))
    edges += tf.reduce_sum(tf.abs(inked[:, 1:] - inked[:, :-1]))
    return 2.0 * tf.reduce_sum(inked) / tf.maximum(edges, 1.0)


def _place_thick_enough(ink, mask):
    """:func:`_place`, thickening the ink first while its strokes come out thinner than
    ``THIN`` (at most ``ROUNDS`` times: a hairline's width is overestimated, so one round
    may fall short): each 3x3 dilation widens them by 2 of the picture's pixels."""
    field, scale = _place(ink, mask)

    def thinner(rounds, ink, field, scale):
        return tf.logical_and(rounds < ROUNDS, stroke_width(field) < THIN)

    def thicken(rounds, ink, field, scale):
        steps = tf.math.ceil((TARGET - stroke_width(field)) / (2.0 * scale) - 0.25)
        steps = tf.clip_by_value(tf.cast(steps, tf.int32), 1, 64)
        padded = tf.pad(ink, [[steps, steps], [steps, steps]])[None, :, :, None]
        grown = tf.while_loop(
            lambda i, x: i < steps,
            lambda i, x: (i + 1, tf.nn.max_pool2d(x, 3, 1, "SAME")),
            [0, padded],
            shape_invariants=[tf.TensorShape([]), tf.TensorShape([1, None, None, 1])],
        )[1][0, :, :, 0]
        return (rounds + 1, grown, *_place(grown, grown > INK_THRESHOLD))

    return tf.while_loop(
        thinner,
        thicken,
        [0, ink, field, scale],
        shape_invariants=[
            tf.TensorShape([]),
            tf.TensorShape([None, None]),
            tf.TensorShape([SIZE, SIZE]),
            tf.TensorShape([]),
        ],
    )[2]


def _place(ink, mask):
    """``(field, scale)``: the ink under ``mask``'s bounding box placed in 28x28, and the
    factor its picture was scaled by."""
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
    return field / tf.reduce_max(field), scale


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)], autograph=False)
def placed(grey):
    """``(mnist_style(grey), whether it found ink)``, compiled once for pictures of any size."""
    field = mnist_style(grey)
    return field, tf.reduce_max(field) > 0


def _uint(contents, start: int, length: int, little_endian: bool):
    """The unsigned integer of ``length`` (2 or 4) bytes at ``start`` of a string tensor."""
    raw = tf.io.decode_raw(tf.strings.substr(contents, start, length), tf.uint8)
    raw = tf.cast(raw, tf.int64)
    order = (
        tf.range(length, dtype=tf.int64)
        if little_endian
        else tf.range(length - 1, -1, -1, tf.int64)
    )
    return tf.reduce_sum(raw * tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * order))


def declared_pixels(contents):
    """Width x height as the header of an encoded PNG, JPEG, GIF or BMP declares it, read
    without decoding (0 for anything else, or a header too short to say)."""
    magic = tf.strings.substr(contents, 0, 4)
    long_enough = tf.strings.length(contents) >= 26

    def png():
        return _uint(contents, 16, 4, False) * _uint(contents, 20, 4, False)

    def gif():
        return _uint(contents, 6, 2, True) * _uint(contents, 8, 2, True)

    def bmp():
        height = _uint(contents, 22, 4, True)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # top-down BMPs: negative
        return _uint(contents, 18, 4, True) * height

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(contents), tf.int64)
        return shape[0] * shape[1]

    zero = lambda: tf.constant(0, tf.int64)  # noqa: E731
    is_png = tf.logical_and(long_enough, tf.equal(magic, b"\x89PNG"))
    is_gif = tf.logical_and(long_enough, tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"))
    is_bmp = tf.logical_and(long_enough, tf.equal(tf.strings.substr(magic, 0, 2), b"BM"))
    is_jpeg = tf.equal(tf.strings.substr(magic, 0, 2), b"\xff\xd8")
    return tf.case([(is_png, png), (is_gif, gif), (is_bmp, bmp), (is_jpeg, jpeg)], default=zero)


def decode_grey(contents, max_pixels: int = MAX_PIXELS):
    """Float grey levels 0-255 [H, W] of one encoded picture (PNG, JPEG, BMP, or a GIF's
    first frame), transparent parts shown on white, 16-bit levels rescaled. A picture
    declaring more than ``max_pixels`` is refused before it is decoded."""
    pixels = declared_pixels(contents)
    check = tf.debugging.assert_less_equal(
        pixels,
        tf.constant(max_pixels, tf.int64),
        message=f"picture over the {max_pixels:,}-pixel budget",
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(contents, channels=0, dtype=tf.float32, expand_animations=False)
    channels = tf.shape(image)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # grey+alpha or RGBA
    alpha = tf.cond(has_alpha, lambda: image[..., -1:], lambda: tf.ones_like(image[..., :1]))
    colour = tf.cond(has_alpha, lambda: image[..., :-1], lambda: image)
    colour = colour * alpha + (1.0 - alpha)
    grey = tf.cond(
        tf.equal(tf.shape(colour)[-1], 3),
        lambda: tf.image.rgb_to_grayscale(colour),
        lambda: colour[..., :1],
    )
    return grey[..., 0] * 255.0


def pictures_to_inputs(contents):
    """A batch of encoded pictures (``tf.string [N]``) as MNIST-style model inputs
    ``float32 [N, 28, 28, 1]``; a picture without ink is all zeros."""
    return tf.map_fn(
        lambda one: mnist_style(decode_grey(one))[..., None],
        contents,
        fn_output_signature=tf.TensorSpec([SIZE, SIZE, 1], tf.float32),
    )


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def placed_bytes(contents):
    """:func:`placed` of one encoded picture's bytes: what ``serving_image`` feeds the model."""
    field = mnist_style(decode_grey(contents))
    return field, tf.reduce_max(field) > 0
