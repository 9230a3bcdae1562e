"""Property-based tests of the two file readers that take data from anywhere: whatever bytes
a CSV or IDX file holds, the reader returns arrays or raises a DataError, never anything
else. Inputs are arbitrary bytes and valid files with random edits (the likelier damage)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtf import kaggle, mnist
from rawtf.errors import DataError

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def edited(draw, valid: bytes, alphabet: bytes) -> bytes:
    """``valid`` with up to four random insertions, deletions or replacements."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        piece = (
            draw(st.binary(min_size=1, max_size=6))
            if draw(st.booleans())
            else bytes(draw(st.lists(st.sampled_from(list(alphabet)), min_size=1, max_size=6)))
        )
        if kind == "insert":
            data[at:at] = piece
        elif kind == "delete":
            del data[at : at + len(piece)]
        elif kind == "replace":
            data[at : at + len(piece)] = piece
        else:
            del data[at:]
    return bytes(data)


def _csv(rows: int, labelled: bool) -> bytes:
    rng = np.random.default_rng(rows)
    header = (["label"] if labelled else []) + [f"pixel{i}" for i in range(784)]
    lines = [",".join(header)]
    for _ in range(rows):
        values = ([int(rng.integers(10))] if labelled else []) + rng.integers(0, 256, 784).tolist()
        lines.append(",".join(map(str, values)))
    return ("\r\n" if rows % 2 else "\n").join(lines).encode() + b"\n"


CSV_ALPHABET = b'0123456789,-+.e \r\n"\xef\xbb\xbf\xff'
VALID_CSVS = [_csv(1, True), _csv(2, False), _csv(3, True)]


def _check_csv(tmp_path, payload: bytes) -> None:
    path = tmp_path / "digits.csv"
    path.write_bytes(payload)
    try:
        images, labels = kaggle.load_kaggle_csv(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert images.dtype == np.uint8 and images.ndim == 3 and images.shape[1:] == (28, 28)
    assert labels is None or (labels.shape == (len(images),) and labels.max() <= 9)


@SETTINGS
@given(payload=st.binary(max_size=2000))
def test_csv_reader_on_any_bytes(tmp_path, payload):
    _check_csv(tmp_path, payload)


@SETTINGS
@given(payload=st.sampled_from(VALID_CSVS).flatmap(lambda v: edited(v, CSV_ALPHABET)))
def test_csv_reader_on_edited_files(tmp_path, payload):
    _check_csv(tmp_path, payload)


def _idx(shape: tuple[int, ...], code: int = 0x08) -> bytes:
    body = np.arange(int(np.prod(shape)), dtype=np.uint8).tobytes()
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


VALID_IDX = [_idx((3, 28, 28)), _idx((5,)), _idx((2, 3), 0x0D)[: 4 + 8] + b"\0" * 24]
IDX_ALPHABET = b"\x00\x01\x03\x08\x0d\x0e\xff\x1f\x8b"


def _check_idx(tmp_path, payload: bytes, compress: bool) -> None:
    path = tmp_path / ("x.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    try:
        array = mnist.read_idx(path, max_bytes=1 << 20)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert isinstance(array, np.ndarray) and array.ndim == payload[3]


@SETTINGS
@given(payload=st.binary(max_size=400), compress=st.booleans())
def test_idx_reader_on_any_bytes(tmp_path, payload, compress):
    _check_idx(tmp_path, payload, compress)


@SETTINGS
@given(
    payload=st.sampled_from(VALID_IDX).flatmap(lambda v: edited(v, IDX_ALPHABET)),
    compress=st.booleans(),
)
def test_idx_reader_on_edited_files(tmp_path, payload, compress):
    _check_idx(tmp_path, payload, compress)


@SETTINGS
@given(
    payload=st.sampled_from(VALID_IDX).map(gzip.compress).flatmap(lambda v: edited(v, IDX_ALPHABET))
)
def test_idx_reader_on_damaged_gzip(tmp_path, payload):
    path = tmp_path / "x.gz"
    path.write_bytes(payload)
    try:
        mnist.read_idx(path, max_bytes=1 << 20)
    except DataError as e:
        assert str(path) in str(e)


def test_the_seed_files_are_valid(tmp_path):
    """The edited-file strategies start from files the readers accept."""
    for n, payload in enumerate(VALID_IDX):
        (tmp_path / f"{n}.idx").write_bytes(payload)
        expected = [(3, 28, 28), (5,), (2, 3)][n]
        assert mnist.read_idx(tmp_path / f"{n}.idx").shape == expected
    for n, payload in enumerate(VALID_CSVS):
        (tmp_path / f"{n}.csv").write_bytes(payload)
        images, labels = kaggle.load_kaggle_csv(tmp_path / f"{n}.csv")
        assert len(images) == [1, 2, 3][n] and (labels is None) == (n == 1)
