"""A person's own digit pictures -> MNIST-style input.

MNIST's own recipe: grey, light ink on black, the digit's bounding box scaled so its longer
side is 20 pixels (keeping the aspect ratio), placed in a 28x28 field so that its centre
of mass sits at the centre. Pictures of dark ink on light paper are inverted first.
Needs Pillow (the ``images`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rawtf.errors import ConfigError, DataError

SIZE = 28
BOX = 20
#: A pixel counts as ink when it is this far (0-255) above the background level.
INK_THRESHOLD = 40


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ConfigError("reading images needs Pillow: pip install 'rawtf[images]'") from None
    return Image, UnidentifiedImageError


def to_grey(path: str | os.PathLike) -> np.ndarray:
    """The picture as float grey levels 0-255, transparent parts shown on white."""
    Image, Unidentified = _pillow()
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.seek(0)  # first frame of an animated GIF
            if image.mode in ("RGBA", "LA", "PA") or (
                image.mode == "P" and "transparency" in image.info
            ):
                rgba = image.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(canvas, rgba)
            grey = np.asarray(image.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Unidentified:
        raise DataError(
            f"{path}: not an image Pillow can read (PNG, JPEG, BMP, GIF, ...)"
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read image ({e})") from None
    return grey


def mnist_style(grey: np.ndarray, source: str = "<array>") -> np.ndarray:
    """MNIST-style float32 (28, 28) image in [0, 1] from grey levels 0-255 of any size."""
    Image, _ = _pillow()
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise DataError(f"{source}: expected a 2-D grey image, got shape {grey.shape}")
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on light paper: make it light ink on black
        grey, background = 255.0 - grey, 255.0 - background
    ink = np.clip(grey - background, 0.0, None)
    mask = ink > INK_THRESHOLD
    if not mask.any():
        raise DataError(f"{source}: no ink found (the picture is blank or has no contrast)")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.LANCZOS)
    box = np.clip(np.asarray(resized, dtype=np.float32), 0.0, None)
    total = box.sum()
    com_y = (box.sum(axis=1) * np.arange(new_h)).sum() / total
    com_x = (box.sum(axis=0) * np.arange(new_w)).sum() / total
    top = int(np.clip(round((SIZE - 1) / 2 - com_y), 0, SIZE - new_h))
    left = int(np.clip(round((SIZE - 1) / 2 - com_x), 0, SIZE - new_w))
    field = np.zeros((SIZE, SIZE), np.float32)
    field[top : top + new_h, left : left + new_w] = box
    return field / field.max()


def load_digit_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/BMP/GIF (any size or mode) as an MNIST-style float32 (28, 28) image
    in [0, 1]: light ink on black, the digit 20 pixels on its longer side, centred by mass."""
    return mnist_style(to_grey(path), str(path))


def load_digit_images(paths) -> np.ndarray:
    """:func:`load_digit_image` for each path, stacked as (N, 28, 28)."""
    paths = list(paths)
    if not paths:
        raise DataError("no image files given")
    return np.stack([load_digit_image(p) for p in paths])
