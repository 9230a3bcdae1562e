"""IDX reading and verification, locating/downloading MNIST, checks, splits, pipelines."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest

from rawtf import data, pipeline
from rawtf import mnist as mnist_files
from rawtf.errors import ConfigError, DataError
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


def test_verification_uses_the_folder_sums_or_builtin_digests(tmp_path):
    write_mnist_like(tmp_path / "d")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        mnist_files.load_mnist(tmp_path / "d")  # no SHA256SUMS: checked against the MNIST digests
    assert len(mnist_files.load_mnist(tmp_path / "d", verify=False)[0][0]) == 12


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


def test_check_images_and_labels():
    assert data.check_images(np.zeros((2, 784), np.uint8)).shape == (2, 28, 28, 1)
    assert data.check_images(np.zeros((2, 28, 28), np.float64)).dtype == np.float32
    for bad, message in [
        (np.full((2, 28, 28), 255.0), r"must lie in \[0, 1\], got \[255, 255\]"),
        (np.full((2, 28, 28), np.nan), "NaN"),
        (np.zeros((0, 28, 28)), "empty"),
        (np.zeros((28, 28)), "expected images of shape"),
        (np.zeros((2, 28, 28), np.int32), "dtype int32"),
    ]:
        with pytest.raises(DataError, match=message):
            data.check_images(bad, "x")
    np.testing.assert_array_equal(data.check_labels(np.eye(10)[[3, 1]], 2), [3, 1])
    with pytest.raises(DataError, match=r"labels must lie in 0..9, got 0..10"):
        data.check_labels([0, 10], 2)
    with pytest.raises(DataError, match="3 labels for 2 images"):
        data.check_labels([0, 1, 2], 2)
    with pytest.raises(DataError, match="whole numbers"):
        data.check_labels([0.5, 1.0], 2)


def test_to_float():
    x = np.array([[[0, 255], [51, 102]]], np.uint8)
    np.testing.assert_allclose(data.to_float(x)[0, :, :, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)


def test_statistics_of_a_small_set():
    x = np.zeros((4, 28, 28), np.uint8)
    x[0, 0, 0], x[1, 5, 5] = 255, 51  # two inked pixels of 3,136
    stats = data.statistics(x, [3, 3, 0, 9])
    assert stats["images"] == 4 and stats["image_shape"] == [28, 28, 1]
    assert stats["pixel_mean"] == pytest.approx((1.0 + 0.2) / 3136, rel=1e-6)
    assert stats["ink_fraction"] == pytest.approx(2 / 3136)
    assert stats["label_counts"] == {
        "0": 1,
        "1": 0,
        "2": 0,
        "3": 2,
        **{str(k): 0 for k in range(4, 9)},
        "9": 1,
    }


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = data.epoch_order(1000, seed=3, epoch=0)
    assert sorted(a) == list(range(1000))
    np.testing.assert_array_equal(a, data.epoch_order(1000, seed=3, epoch=0))
    assert (a != data.epoch_order(1000, seed=3, epoch=1)).any()
    assert (a != data.epoch_order(1000, seed=4, epoch=0)).any()


def test_split_is_deterministic_and_disjoint():
    x = np.arange(100)[:, None].repeat(784, 1).astype(np.uint8)
    y = np.arange(100) % 10
    (xt, yt), (xv, yv) = data.train_validation_split(x, y, 0.2, seed=5)
    assert len(xv) == 20 and len(xt) == 80
    assert set(xt[:, 0]).isdisjoint(xv[:, 0]) and len(set(xt[:, 0]) | set(xv[:, 0])) == 100
    (_, _), (xv2, _) = data.train_validation_split(x, y, 0.2, seed=5)
    np.testing.assert_array_equal(xv, xv2)
    with pytest.raises(ConfigError):
        data.train_validation_split(x, y, 1.0)


def test_train_dataset_follows_the_epoch_order_and_resumes(rng):
    x = rng.integers(0, 256, (50, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 50).astype(np.int32)
    order = data.epoch_order(50, seed=1, epoch=2)
    batches = list(pipeline.train_dataset(x, y, 16, seed=1, epoch=2))
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
    images = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_allclose(images, x[order] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y[order])
    resumed = list(pipeline.train_dataset(x, y, 16, seed=1, epoch=2, start_step=2))
    np.testing.assert_array_equal(resumed[0][1].numpy(), batches[2][1].numpy())


@pytest.mark.parametrize("autotune", [False, True])
def test_pipelines_autotune_only_when_asked_and_give_the_same_batches(rng, monkeypatch, autotune):
    monkeypatch.setattr(pipeline, "AUTOTUNE", autotune)
    x = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 40).astype(np.int32)
    train = pipeline.train_dataset(x, y, 16, seed=3, epoch=1)
    evaluation = pipeline.eval_dataset(x, y, 16)
    # tf.data's default (None) autotunes; rawtf's fixed pipelines switch it off.
    expected = None if autotune else False
    assert [ds.options().autotune.enabled for ds in (train, evaluation)] == [expected] * 2
    order = data.epoch_order(40, seed=3, epoch=1)
    np.testing.assert_allclose(np.concatenate([b[0] for b in train]), x[order] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([b[0] for b in evaluation]), x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in evaluation]), y)
