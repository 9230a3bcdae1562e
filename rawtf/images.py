"""A person's own digit pictures -> MNIST-style input.

Pillow decodes the file (any format and mode it reads, EXIF orientation, transparency,
16-bit greys); :mod:`rawtf.picture_ops`, in TensorFlow ops shared with exported
SavedModels, places it as MNIST did: grey, light ink on black, the digit's bounding box
scaled so its longer side is 20 pixels, centred by mass in 28x28. Needs Pillow (the
``images`` extra).

Pictures come from anywhere, so reading one is bounded: its header is checked against a
pixel budget before anything is decoded, a large JPEG is decoded at a reduced scale, and
an EXIF orientation (phone photos) is applied.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from rawtf.errors import ConfigError, DataError

#: The most pixels a picture may have (a 48-megapixel phone photo fits); beyond it the
#: picture is refused before it is decoded.
MAX_PIXELS = 50_000_000
#: Large JPEGs are decoded at a reduced scale, no smaller than this on the longer side:
#: far more than the 20 pixels the digit ends up as.
DECODE_SIDE = 1024


def _pillow():
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ConfigError("reading images needs Pillow: pip install 'rawtf[images]'") from None
    return Image, ImageOps, UnidentifiedImageError


def _grey_levels(image) -> np.ndarray:
    """Float grey levels 0-255 of a Pillow image of any mode: transparency shown on white,
    16-bit and 32-bit greys rescaled (not clipped) to 0-255."""
    Image, _, _ = _pillow()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    if image.mode.startswith("I") or image.mode == "F":
        levels = np.asarray(image, dtype=np.float64)
        top = float(levels.max(initial=0.0))
        if image.mode == "F" and top <= 1.0:
            full = 1.0  # floats in [0, 1]
        elif image.mode.startswith("I;16") or 255 < top <= 65535:
            full = 65535.0
        else:
            full = max(top, 255.0)
        return (np.clip(levels, 0.0, full) * (255.0 / full)).astype(np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32)


def to_grey(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The picture as float grey levels 0-255 (transparent parts shown on white, EXIF
    orientation applied). A picture of more than ``max_pixels`` is a :class:`DataError`
    before it is decoded."""
    Image, ImageOps, Unidentified = _pillow()
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # The budget below replaces Pillow's own decompression-bomb check and warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise _over_budget(path, width, height, max_pixels)
                image.seek(0)  # first frame of an animated GIF
                if image.format == "JPEG" and max(width, height) > 2 * DECODE_SIDE:
                    scale = DECODE_SIDE / max(width, height)
                    image.draft(image.mode, (round(width * scale), round(height * scale)))
                return _grey_levels(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as e:  # Pillow's own limit, met before ours is read
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f" of {int(pixels.group(1)):,} pixels" if pixels else ""
        raise DataError(
            f"{path}: picture{size} is over the {max_pixels:,}-pixel budget (max_pixels)"
        ) from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Unidentified:
        raise DataError(
            f"{path}: not an image Pillow can read (PNG, JPEG, BMP, GIF, ...)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's decoders raise all three
        raise DataError(f"{path}: cannot read image ({e})") from None


def _over_budget(path: Path, width: int, height: int, max_pixels: int) -> DataError:
    return DataError(
        f"{path}: picture of {width}x{height} pixels is over the {max_pixels:,}-pixel "
        "budget (max_pixels)"
    )


def mnist_style(grey: np.ndarray, source: str = "<array>") -> np.ndarray:
    """MNIST-style float32 (28, 28) image in [0, 1] from grey levels 0-255 of any size,
    by :func:`rawtf.picture_ops.mnist_style` (the geometry exported SavedModels use)."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise DataError(f"{source}: expected a 2-D grey image, got shape {grey.shape}")
    from rawtf import picture_ops  # TensorFlow, only once a picture is placed

    field, found = picture_ops.placed(grey)
    if not bool(found):
        raise DataError(f"{source}: no ink found (the picture is blank or has no contrast)")
    return field.numpy()


def load_digit_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a PNG/JPEG/BMP/GIF (any mode, up to ``max_pixels``) as an MNIST-style float32
    (28, 28) image in [0, 1]: light ink on black, the digit 20 pixels on its longer side,
    centred by mass."""
    return mnist_style(to_grey(path, max_pixels), str(path))


def load_digit_images(paths) -> np.ndarray:
    """:func:`load_digit_image` for each path, stacked as (N, 28, 28)."""
    paths = list(paths)
    if not paths:
        raise DataError("no image files given")
    return np.stack([load_digit_image(p) for p in paths])
