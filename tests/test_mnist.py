"""MNIST on disk: IDX reading and verification, locating and downloading the files."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from rawtf import mnist as mnist_files
from rawtf.errors import DataError
from tests.conftest import MNIST_DIR


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode ``array`` as IDX independently of the reader: magic, big-endian dims, data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist_like(directory, n_train=12, n_test=5, gz=True, rng=None):
    rng = rng or np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
    return arrays


@pytest.mark.parametrize(
    "dtype,code",
    [
        (np.uint8, 0x08),
        (np.int8, 0x09),
        (np.int16, 0x0B),
        (np.int32, 0x0C),
        (np.float32, 0x0D),
        (np.float64, 0x0E),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_dtype(tmp_path, rng, dtype, code, gz):
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    payload = idx_bytes(array, code)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    got = mnist_files.read_idx(path, sha256=hashlib.sha256(payload).hexdigest())
    assert got.dtype == np.dtype(dtype) and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, array)


def test_read_idx_rejects_bad_files(tmp_path, rng):
    good = idx_bytes(rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
    cases = {
        "truncated": (good[:-10], "truncated"),
        "trailing": (good + b"\0", "trailing bytes"),
        "magic": (b"\x01\x02" + good[2:], "bad IDX magic"),
        "dtype": (good[:2] + b"\x07" + good[3:], "unknown IDX dtype code 0x07"),
        "header": (good[:9], "truncated IDX header"),
        "tiny": (b"\0\0", "not an IDX file"),
    }
    for label, (payload, message) in cases.items():
        path = tmp_path / f"{label}.idx"
        path.write_bytes(payload)
        with pytest.raises(DataError, match=message) as info:
            mnist_files.read_idx(path)
        assert str(path) in str(info.value)
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        mnist_files.read_idx(gz)
    with pytest.raises(DataError, match="no such file"):
        mnist_files.read_idx(tmp_path / "absent.idx")


def test_read_idx_checks_the_digest(tmp_path, rng):
    payload = idx_bytes(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8))
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        mnist_files.read_idx(path, sha256="0" * 64)


def test_load_mnist_from_checkout(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10))
    # Independent facts about the release: the first training label is 5, the first test 7.
    assert y_train[0] == 5 and y_test[0] == 7
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_vendored_sha256sums_match_builtin_digests():
    assert mnist_files.read_sha256sums(MNIST_DIR / "SHA256SUMS") == mnist_files.MNIST_SHA256


def test_resolution_order(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    env_arrays = write_mnist_like(env_dir, n_train=7)
    write_mnist_like(arg_dir, n_train=9, gz=False)
    monkeypatch.setenv(mnist_files.DATA_DIR_ENV, str(env_dir))
    (x, _), _ = mnist_files.load_mnist(arg_dir, verify=False)
    assert len(x) == 9  # the argument wins over the environment
    (x, _), _ = mnist_files.load_mnist(verify=False)
    np.testing.assert_array_equal(x, env_arrays["train-images-idx3-ubyte"])
    monkeypatch.delenv(mnist_files.DATA_DIR_ENV)
    assert mnist_files.resolve_mnist_dir() == mnist_files.checkout_data_dir()


def test_explicit_folders_must_be_complete(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        mnist_files.load_mnist(tmp_path / "nowhere")
    write_mnist_like(tmp_path / "part")
    (tmp_path / "part" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\[.gz\]"):
        mnist_files.load_mnist(tmp_path / "part")
    monkeypatch.setenv(mnist_files.DATA_DIR_ENV, str(tmp_path / "part"))
    with pytest.raises(DataError, match=mnist_files.DATA_DIR_ENV):
        mnist_files.load_mnist()


def test_verification_checks_the_mnist_shapes_and_builtin_digests(tmp_path):
    write_mnist_like(tmp_path / "d")
    with pytest.raises(DataError, match=r"IDX shape \(12, 28, 28\), expected 60000x28x28"):
        mnist_files.load_mnist(tmp_path / "d")
    assert len(mnist_files.load_mnist(tmp_path / "d", verify=False)[0][0]) == 12


def test_a_folders_own_sums_cannot_vouch_for_altered_mnist(tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(MNIST_DIR, folder)
    labels = mnist_files.read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    labels[0] = (labels[0] + 1) % 10
    payload = idx_bytes(labels)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(payload))
    sums = mnist_files.read_sha256sums(folder / "SHA256SUMS")
    sums["t10k-labels-idx1-ubyte"] = hashlib.sha256(payload).hexdigest()
    (folder / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sums.items()))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: SHA-256 mismatch"):
        mnist_files.load_mnist(folder)
    # Without verification the folder's own sums are what is checked.
    (_, _), (_, y_test) = mnist_files.load_mnist(folder, verify=False)
    assert y_test[0] == labels[0]
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  t10k-labels-idx1-ubyte\n")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        mnist_files.load_mnist(folder, verify=False)


def test_unreadable_sha256sums_is_one_error_naming_the_line(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff binary")
    with pytest.raises(DataError, match=r"SHA256SUMS:1: not UTF-8 text \(byte 0x89"):
        mnist_files.read_sha256sums(sums)
    sums.write_text("a" * 63 + "g  name\n")
    with pytest.raises(DataError, match=r"SHA256SUMS:1: expected '<sha256>  <file name>'"):
        mnist_files.read_sha256sums(sums)


def test_mismatched_counts_and_labels_are_errors(tmp_path):
    arrays = write_mnist_like(tmp_path / "d", gz=False)
    labels = arrays["train-labels-idx1-ubyte"][:-1]
    (tmp_path / "d" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match="12 images but 11 labels"):
        mnist_files.load_mnist(tmp_path / "d", verify=False)
    (tmp_path / "d" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(12, 11, np.uint8)))
    with pytest.raises(DataError, match="labels must be 0-9"):
        mnist_files.load_mnist(tmp_path / "d", verify=False)


def test_download_from_a_mirror_verifies_and_renames(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MNIST_DIR, mirror)
    cache = tmp_path / "cache"
    mnist_files.download_mnist(
        cache, mirrors=["file:///nonexistent/", mirror.as_uri() + "/"], progress=False
    )
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        n + ".gz" for n in mnist_files.MNIST_FILES.values()
    )
    (x, _), (xt, _) = mnist_files.load_mnist(cache)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)


def test_download_of_a_corrupt_file_leaves_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    write_mnist_like(mirror)  # valid IDX but not MNIST: fails the digest check
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="could not download .*SHA-256 mismatch"):
        mnist_files.download_mnist(cache, mirrors=[mirror.as_uri() + "/"], progress=False)
    assert list(cache.iterdir()) == []


def test_cache_is_used_and_download_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist_files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_files, "checkout_data_dir", lambda: tmp_path / "no-checkout")
    with pytest.raises(DataError, match="download=False"):
        mnist_files.resolve_mnist_dir(download=False)
    calls = []
    monkeypatch.setattr(mnist_files, "download_mnist", lambda d: calls.append(d) or d)
    assert mnist_files.resolve_mnist_dir() == tmp_path / "cache" and calls == [tmp_path / "cache"]


def _gzip_bomb(path, head: bytes, zeros: int) -> None:
    """``head`` then ``zeros`` zero bytes, gzipped in a stream (a small file)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(packer.compress(head))
        for _ in range(zeros >> 20):
            f.write(packer.compress(block))
        f.write(packer.flush())


def test_gzip_bombs_are_read_no_further_than_the_header_announces(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28)
    _gzip_bomb(bomb, header, 512 << 20)  # 512 MB of zeros after 10 images
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"trailing bytes after shape \(10, 28, 28\)"):
            mnist_files.read_idx(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes held while reading a 512 MB bomb"


def test_an_mnist_folder_refuses_an_oversized_header_before_reading(tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(MNIST_DIR, folder)
    big = tmp_path / "d" / "t10k-images-idx3-ubyte.gz"
    _gzip_bomb(big, bytes([0, 0, 8, 3]) + struct.pack(">3I", 2_000_000, 28, 28), 64 << 20)
    with pytest.raises(DataError, match=r"IDX shape \(2000000, 28, 28\), expected 10000x28x28"):
        mnist_files.load_mnist(folder)
    with pytest.raises(DataError, match="over the 1048576-byte limit"):
        mnist_files.read_idx(big, max_bytes=1 << 20)


def _decoded_reference():
    """The four MNIST arrays read straight from the IDX files, past the cache."""
    return {
        name: mnist_files.read_idx(MNIST_DIR / (name + ".gz"))
        for name in mnist_files.MNIST_FILES.values()
    }


def test_decoded_arrays_are_cached_and_checked(tmp_path, monkeypatch):
    """The first load keeps each decoded file as .npy (named by the source file's SHA-256,
    with umask permissions); later loads read only those, and a cache entry whose values
    do not match the file's digest is decoded again and replaced."""
    monkeypatch.setenv(mnist_files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    reference = _decoded_reference()
    old = os.umask(0o027)
    try:
        mnist_files.load_mnist(MNIST_DIR)
    finally:
        os.umask(old)
    cached = {
        name: mnist_files.decoded_cache_dir()
        / f"{hashlib.sha256((MNIST_DIR / (name + '.gz')).read_bytes()).hexdigest()}.npy"
        for name in reference
    }
    for name, path in cached.items():
        assert (path.stat().st_mode & 0o777) == 0o640
        np.testing.assert_array_equal(np.load(path, allow_pickle=False), reference[name])

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an IDX file although the cache holds it")

    monkeypatch.setattr(mnist_files, "read_idx", no_decoding)
    (x, y), (xt, yt) = mnist_files.load_mnist(MNIST_DIR)
    np.testing.assert_array_equal(x, reference["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(yt, reference["t10k-labels-idx1-ubyte"])
    monkeypatch.undo()
    monkeypatch.setenv(mnist_files.CACHE_DIR_ENV, str(tmp_path / "cache"))

    altered = reference["t10k-labels-idx1-ubyte"].copy()
    altered[0] = (altered[0] + 1) % 10
    np.save(cached["t10k-labels-idx1-ubyte"], altered)
    (_, _), (_, yt) = mnist_files.load_mnist(MNIST_DIR)
    np.testing.assert_array_equal(yt, reference["t10k-labels-idx1-ubyte"])
    restored = np.load(cached["t10k-labels-idx1-ubyte"], allow_pickle=False)
    np.testing.assert_array_equal(restored, reference["t10k-labels-idx1-ubyte"])
    cached["t10k-labels-idx1-ubyte"].write_bytes(b"not an npy file")
    assert mnist_files.load_mnist(MNIST_DIR)[1][1][0] == reference["t10k-labels-idx1-ubyte"][0]


def test_the_cache_never_hides_a_damaged_file(tmp_path, monkeypatch):
    """A folder whose file differs from the cached one is read and checked as ever; a cache
    that cannot be written is no cache."""
    monkeypatch.setenv(mnist_files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    mnist_files.load_mnist(MNIST_DIR)  # fills the cache
    folder = tmp_path / "d"
    shutil.copytree(MNIST_DIR, folder)
    labels = mnist_files.read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    labels[0] = (labels[0] + 1) % 10
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: SHA-256 mismatch"):
        mnist_files.load_mnist(folder)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv(mnist_files.CACHE_DIR_ENV, str(blocked))
    (x, _), _ = mnist_files.load_mnist(MNIST_DIR)
    assert x.shape == (60000, 28, 28) and blocked.read_text() == ""
