"""Kaggle "digit recognizer" files: ``train.csv`` (``label,pixel0,...,pixel783``),
``test.csv`` (``pixel0,...,pixel783``) and ``submission.csv`` (``ImageId,Label``, ImageId
from 1).

Reading is one vectorised pass; when it fails, a second, line-by-line pass finds the first
offending line and column so the error can name them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from rawtf._io import write_text
from rawtf.errors import DataError

PIXELS = [f"pixel{i}" for i in range(784)]
TRAIN_HEADER = ["label", *PIXELS]
TEST_HEADER = PIXELS
SUBMISSION_HEADER = "ImageId,Label"


def _columns(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            first = f.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not first.strip():
        raise DataError(f"{path}:1: empty file (expected a header 'label,pixel0,...')")
    columns = [c.strip().strip('"') for c in first.rstrip("\r\n").split(",")]
    if columns == TRAIN_HEADER or columns == TEST_HEADER:
        return columns
    train = columns[0] == "label" or len(columns) == len(TRAIN_HEADER)
    expected = TRAIN_HEADER if train else TEST_HEADER
    if len(columns) != len(expected):
        raise DataError(
            f"{path}:1: header has {len(columns)} columns, expected {len(expected)} "
            f"({expected[0]},{expected[1]},...,pixel783)"
        )
    bad = next(i for i, (a, b) in enumerate(zip(columns, expected, strict=True)) if a != b)
    raise DataError(
        f"{path}:1: column {bad + 1} is named {columns[bad]!r}, expected {expected[bad]!r}"
    )


def _locate_error(path: Path, columns: list[str]) -> DataError:
    """Scan line by line for the first malformed row (slow path, only after a failure)."""
    with open(path, encoding="utf-8", newline="") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split(",")
            if len(fields) != len(columns):
                return DataError(f"{path}:{number}: {len(fields)} fields, expected {len(columns)}")
            for name, field in zip(columns, fields, strict=True):
                if not field.strip():
                    return DataError(f"{path}:{number}: column {name} is empty")
                try:
                    int(field)
                except ValueError:
                    return DataError(
                        f"{path}:{number}: column {name} is {field.strip()!r}, expected an integer"
                    )
    return DataError(f"{path}: unreadable CSV")


def load_kaggle_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Kaggle digit-recognizer CSV as ``(images uint8 (N, 28, 28), labels uint8 (N,)
    or None)``; the format (train or test) is detected from the header. Every value must
    be an integer, pixels 0-255 and labels 0-9; errors name the file, line and column."""
    path = Path(path)
    columns = _columns(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no data": reported below
            values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except ValueError:
        raise _locate_error(path, columns) from None
    if values.size == 0:
        raise DataError(f"{path}: no data rows after the header")
    if values.shape[1] != len(columns):
        raise _locate_error(path, columns)
    low, high = np.zeros(len(columns), np.int64), np.full(len(columns), 255, np.int64)
    if columns[0] == "label":
        high[0] = 9
    bad = np.argwhere((values < low) | (values > high))
    if len(bad):
        row, col = bad[0]
        limit = "0-9" if columns[col] == "label" else "0-255"
        raise DataError(
            f"{path}:{row + 2}: column {columns[col]} is {values[row, col]}, expected {limit}"
        )
    labels = values[:, 0].astype(np.uint8) if columns[0] == "label" else None
    images = values[:, -784:].astype(np.uint8).reshape(-1, 28, 28)
    return images, labels


def write_submission(labels, path: str | os.PathLike) -> Path:
    """Write predicted ``labels`` as a Kaggle submission: header ``ImageId,Label``, one row
    per image, ImageId counting from 1."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise DataError(
            f"{path}: expected a non-empty 1-D array of labels, got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels must be integers 0-9")
    rows = "\n".join(f"{i},{int(label)}" for i, label in enumerate(labels, start=1))
    return write_text(path, f"{SUBMISSION_HEADER}\n{rows}\n")


def write_kaggle_csv(images, labels, path: str | os.PathLike) -> Path:
    """Write uint8 ``images`` (and ``labels``, or None for the test format) in Kaggle's
    CSV format: e.g. to build Kaggle-style files from MNIST."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(images), 784)
    table = images if labels is None else np.column_stack([np.asarray(labels, np.uint8), images])
    header = ",".join(TEST_HEADER if labels is None else TRAIN_HEADER)
    body = "\n".join(",".join(map(str, row)) for row in table.tolist())
    return write_text(path, f"{header}\n{body}\n")
