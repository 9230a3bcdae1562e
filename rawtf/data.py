"""Arrays in memory: checking images and labels, the one conversion of pixels to floats,
deterministic splits and epoch orders, and summary statistics. Needs numpy only.

Randomness here is a pure function of ``(seed, epoch)``: an epoch's order is the permutation
drawn from ``SeedSequence([seed, epoch])``, never a stateful reshuffle, so a run restarted
at any step sees the same batches it would have seen.
"""

from __future__ import annotations

import hashlib

import numpy as np

from rawtf.errors import ConfigError, DataError


def check_images(x, name: str = "x", shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Validate images and return them as NHWC: uint8 (0-255) kept as uint8, floats as
    float32 that must lie in [0, 1]. Accepts (N, H, W), (N, H, W, C) and (N, 784); with
    ``shape`` (H, W, C) each image must have that shape."""
    try:
        x = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged nested lists, say
        raise DataError(f"{name}: not an array of images ({e})") from None
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise DataError(
            f"{name}: expected images of shape (N, 28, 28), (N, 28, 28, 1) or (N, 784), "
            f"got {x.shape}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{name}: no images (empty array)")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        h, w, c = shape
        raise DataError(
            f"{name}: expected images of shape ({h}, {w}) or ({h}, {w}, {c}), "
            f"got {tuple(x.shape[1:])} per image"
        )
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{name}: expected uint8 pixels or floats in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"{name}: contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"{name}: float pixels must lie in [0, 1], got [{lo:g}, {hi:g}] "
            "(divide 0-255 pixels by 255, or pass them as uint8)"
        )
    return x


def check_labels(y, n: int, num_classes: int = 10, name: str = "y") -> np.ndarray:
    """Validate labels for ``n`` images: integer classes (N,) or one-hot (N, C). Returns int32."""
    try:
        y = np.asarray(y)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}: not an array of labels ({e})") from None
    if y.ndim == 2 and y.shape[1] == num_classes:
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise DataError(
            f"{name}: expected labels of shape ({n},) or one-hot ({n}, {num_classes}), "
            f"got {y.shape}"
        )
    if len(y) != n:
        raise DataError(f"{name}: {len(y)} labels for {n} images")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{name}: labels must be whole numbers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{name}: labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}"
        )
    return y.astype(np.int32)


def to_float(x) -> np.ndarray:
    """uint8 pixels -> float32 NHWC in [0, 1] (the models' input)."""
    x = check_images(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x


def permutation(n: int, seed: int, *keys: int) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``(seed, *keys)``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)])).permutation(
        n
    )


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training examples."""
    return permutation(n, seed, 1, epoch)


def train_validation_split(x, y, validation_fraction: float, seed: int = 0):
    """Split into ``(x_train, y_train), (x_val, y_val)`` by a permutation of ``seed``;
    the same seed always holds out the same examples."""
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(
            f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction}"
        )
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"{len(x)} images but {len(y)} labels")
    n_val = int(round(len(x) * validation_fraction))
    if n_val == 0 or n_val == len(x):
        raise ConfigError(
            f"validation_fraction={validation_fraction} of {len(x)} examples leaves an empty split"
        )
    order = permutation(len(x), seed, 0)
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def fingerprint(x, y) -> str:
    """SHA-256 of a labelled set's shapes, dtypes and values: the same images and labels in
    the same order give the same digest, wherever they were read from."""
    digest = hashlib.sha256()
    for array in (np.asarray(x), np.asarray(y)):
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in an epoch of ``n`` examples (a short last batch counts unless dropped)."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def statistics(x, y, num_classes: int = 10) -> dict:
    """What a first look at a labelled image set reports: count, shape, pixel mean and
    standard deviation (in [0, 1]), the fraction of pixels with ink, and label counts."""
    x = check_images(x)
    y = check_labels(y, len(x), num_classes)
    pixels = to_float(x)
    counts = np.bincount(y, minlength=num_classes)
    return {
        "images": int(len(x)),
        "image_shape": list(x.shape[1:]),
        "pixel_mean": float(pixels.mean()),
        "pixel_std": float(pixels.std()),
        "ink_fraction": float((pixels > 0).mean()),
        "label_counts": {str(k): int(c) for k, c in enumerate(counts)},
    }
