"""Kaggle CSV reading/writing, with files built from MNIST by the csv module."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rawtf import kaggle
from rawtf.errors import DataError

HEADER = ["label"] + [f"pixel{i}" for i in range(784)]


def write_csv(path, images, labels=None, edit=None):
    """Write a Kaggle-format file with the csv module; ``edit(rows)`` may damage it."""
    rows = [list(HEADER) if labels is not None else HEADER[1:]]
    for i, image in enumerate(images):
        pixels = [str(v) for v in image.reshape(-1)]
        rows.append(([str(labels[i])] if labels is not None else []) + pixels)
    if edit:
        edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_train_and_test_formats(tmp_path, small_mnist):
    (x, y), _ = small_mnist
    images, labels = kaggle.load_kaggle_csv(write_csv(tmp_path / "train.csv", x[:100], y[:100]))
    np.testing.assert_array_equal(images, x[:100])
    np.testing.assert_array_equal(labels, y[:100])
    images, labels = kaggle.load_kaggle_csv(write_csv(tmp_path / "test.csv", x[:7]))
    assert labels is None and images.shape == (7, 28, 28)
    np.testing.assert_array_equal(images, x[:7])


def test_writer_round_trips(tmp_path, small_mnist):
    (x, y), _ = small_mnist
    path = kaggle.write_kaggle_csv(x[:20], y[:20], tmp_path / "t.csv")
    images, labels = kaggle.load_kaggle_csv(path)
    np.testing.assert_array_equal(images, x[:20])
    np.testing.assert_array_equal(labels, y[:20])


def _set(row, column, value):
    def edit(rows):
        rows[row][column] = value

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (_set(0, 0, "digit"), r":1: column 1 is named 'digit', expected 'label'"),
        (lambda rows: rows[0].pop(), r":1: header has 784 columns, expected 785"),
        (_set(3, 5, "abc"), r":4: column pixel4 is 'abc', expected an integer 0-255"),
        (_set(2, 10, ""), r":3: column pixel9 is empty"),
        (_set(5, 7, "256"), r":6: column pixel6 is '256', expected an integer 0-255"),
        (_set(4, 0, "10"), r":5: column label is '10', expected an integer 0-9"),
        (_set(2, 1, "-1"), r":3: column pixel0 is '-1', expected an integer 0-255"),
        (_set(3, 9, "1e20"), r":4: column pixel8 is '1e20', expected an integer 0-255"),
        (_set(3, 9, "1" + "0" * 20), r":4: column pixel8 is '10000000000000000000\.\.\.'"),
        (_set(6, 2, "12.5"), r":7: column pixel1 is '12.5', expected an integer 0-255"),
        (lambda rows: rows[3].append("0"), r":4: 786 fields, expected 785"),
        (lambda rows: rows[6].pop(), r":7: 784 fields, expected 785"),
        (lambda rows: rows.__delitem__(slice(1, None)), r"no data rows"),
    ],
)
def test_errors_name_file_line_and_column(tmp_path, small_mnist, edit, message):
    (x, y), _ = small_mnist
    path = write_csv(tmp_path / "bad.csv", x[:8], y[:8], edit)
    with pytest.raises(DataError, match=message) as info:
        kaggle.load_kaggle_csv(path)
    assert str(path) in str(info.value)


def test_spreadsheet_encodings_are_read(tmp_path, small_mnist):
    """Excel's "CSV UTF-8" starts with a byte-order mark; Windows ends lines with CRLF."""
    (x, y), _ = small_mnist
    plain = write_csv(tmp_path / "plain.csv", x[:5], y[:5]).read_bytes()
    for name, variant in {
        "bom.csv": b"\xef\xbb\xbf" + plain,
        "crlf.csv": plain.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
        "lf.csv": plain.replace(b"\r\n", b"\n"),
        "bom-crlf-no-final-newline.csv": b"\xef\xbb\xbf" + plain.rstrip(b"\r\n"),
    }.items():
        (tmp_path / name).write_bytes(variant)
        images, labels = kaggle.load_kaggle_csv(tmp_path / name)
        np.testing.assert_array_equal(images, x[:5])
        np.testing.assert_array_equal(labels, y[:5])


def test_bytes_that_are_not_utf8_name_their_line(tmp_path, small_mnist):
    (x, y), _ = small_mnist
    raw = write_csv(tmp_path / "good.csv", x[:6], y[:6]).read_bytes().split(b"\n")
    raw[3] = raw[3][:40] + b"\xe9" + raw[3][40:]  # a Latin-1 byte in the third data row
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(raw))
    with pytest.raises(DataError, match=r"latin1.csv:4: not UTF-8 text \(byte 0xe9 at column 41\)"):
        kaggle.load_kaggle_csv(path)
    path.write_bytes(b"\xff\xfe" + "label,pixel0".encode("utf-16-le"))  # UTF-16 from Notepad
    with pytest.raises(DataError, match=r":1: not UTF-8 text \(byte 0xff at column 1\)"):
        kaggle.load_kaggle_csv(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        kaggle.load_kaggle_csv(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        kaggle.load_kaggle_csv(tmp_path / "empty.csv")


def test_submission(tmp_path):
    path = kaggle.write_submission(np.array([3, 0, 9]), tmp_path / "submission.csv")
    assert path.read_text() == "ImageId,Label\n1,3\n2,0\n3,9\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temporary left over
    with pytest.raises(DataError, match="labels must be integers 0-9"):
        kaggle.write_submission(np.array([10]), tmp_path / "s.csv")
    with pytest.raises(DataError, match="folder does not exist"):
        kaggle.write_submission(np.array([1]), tmp_path / "nowhere" / "s.csv")
    assert not (tmp_path / "s.csv").exists()
