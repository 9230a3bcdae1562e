"""Kaggle "digit recognizer" files: ``train.csv`` (``label,pixel0,...,pixel783``),
``test.csv`` (``pixel0,...,pixel783``) and ``submission.csv`` (``ImageId,Label``, ImageId
from 1).

Files are read as UTF-8 with or without a byte-order mark (what spreadsheet programs write),
with LF or CRLF line ends. Parsing is one vectorised pass; when it fails, a second, line by
line pass finds the first offending line and column so the error can name them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from rawtf._io import read_text, write_text
from rawtf.errors import DataError

PIXELS = [f"pixel{i}" for i in range(784)]
TRAIN_HEADER = ["label", *PIXELS]
TEST_HEADER = PIXELS
SUBMISSION_HEADER = "ImageId,Label"


def _columns(path: Path, first: str) -> list[str]:
    if not first.strip():
        raise DataError(f"{path}:1: empty file (expected a header 'label,pixel0,...')")
    columns = [c.strip().strip('"') for c in first.split(",")]
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


def _limits(columns: list[str]) -> np.ndarray:
    """The largest value each column may hold: 9 for the label, 255 for a pixel."""
    high = np.full(len(columns), 255, np.int64)
    if columns[0] == "label":
        high[0] = 9
    return high


def _expected(name: str) -> str:
    return "an integer 0-9" if name == "label" else "an integer 0-255"


def _locate_error(path: Path, columns: list[str], rows: list[str]) -> DataError:
    """The first malformed row, found line by line (slow path, only after a failure)."""
    for number, text in enumerate(rows, start=2):
        if not text.strip():
            continue
        fields = text.split(",")
        if len(fields) != len(columns):
            return DataError(f"{path}:{number}: {len(fields)} fields, expected {len(columns)}")
        for name, field, high in zip(columns, fields, _limits(columns), strict=True):
            value = field.strip()
            if not value:
                return DataError(f"{path}:{number}: column {name} is empty")
            if not (value.isascii() and value.isdigit() and int(value) <= high):
                shown = value if len(value) <= 20 else value[:20] + "..."
                return DataError(
                    f"{path}:{number}: column {name} is {shown!r}, expected {_expected(name)}"
                )
    return DataError(f"{path}: unreadable CSV")


def load_kaggle_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Kaggle digit-recognizer CSV as ``(images uint8 (N, 28, 28), labels uint8 (N,)
    or None)``; the format (train or test) is detected from the header. Every value must
    be an integer, pixels 0-255 and labels 0-9; errors name the file, line and column."""
    path = Path(path)
    text = read_text(path)
    lines = text.split("\n")
    if "\r" in text:  # CRLF line ends (Windows, spreadsheets)
        lines = [line.removesuffix("\r") for line in lines]
    columns = _columns(path, lines[0] if lines else "")
    rows = lines[1:]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no data": reported below
            values = np.loadtxt(rows, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError):
        raise _locate_error(path, columns, rows) from None
    if values.size == 0:
        raise DataError(f"{path}: no data rows after the header")
    if values.shape[1] != len(columns):
        raise _locate_error(path, columns, rows)
    bad = np.argwhere((values < 0) | (values > _limits(columns)))
    if len(bad):
        raise _locate_error(path, columns, rows)
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
