"""MNIST on disk and in memory: IDX reading and verification, locating and downloading the
files, array checks, deterministic splits and epoch orders, and tf.data pipelines.

Randomness here is a pure function of ``(seed, epoch)``: an epoch's order is the permutation
drawn from ``SeedSequence([seed, epoch])``, never a stateful reshuffle, so a run restarted
at any step sees the same batches it would have seen.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rawtf._tf import import_tensorflow
from rawtf.errors import ConfigError, DataError

tf = import_tensorflow()

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 of the decompressed files, as published with the data set.
MNIST_SHA256 = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

#: Public mirrors of the gzipped files, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

DATA_DIR_ENV = "RAWTF_DATA_DIR"
CACHE_DIR_ENV = "RAWTF_CACHE_DIR"

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------- IDX files


def _read_bytes(path: Path) -> bytes:
    """The file's payload, decompressed when it is gzip (by its magic, not its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def parse_idx(payload: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an IDX payload: 2 zero bytes, a dtype code, the rank, big-endian uint32 sizes,
    then the values in C order. Every field is checked against the payload's length."""
    if len(payload) < 4:
        raise DataError(f"{source}: not an IDX file (only {len(payload)} bytes)")
    if payload[0] != 0 or payload[1] != 0:
        raise DataError(
            f"{source}: bad IDX magic number 0x{payload[:4].hex()} "
            "(expected 0x0000 followed by a dtype code and a rank)"
        )
    code, ndim = payload[2], payload[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{source}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{source}: IDX rank is 0")
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise DataError(f"{source}: truncated IDX header ({len(payload)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(payload, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(payload) != expected:
        kind = "truncated" if len(payload) < expected else "has trailing bytes"
        raise DataError(
            f"{source}: IDX data {kind}: {len(payload)} bytes for shape {shape}, "
            f"expected {expected}"
        )
    array = np.frombuffer(payload, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped). With ``sha256``, the decompressed payload must
    have that digest."""
    path = Path(path)
    payload = _read_bytes(path)
    if sha256 is not None:
        actual = sha256_hex(payload)
        if actual != sha256:
            raise DataError(
                f"{path}: SHA-256 mismatch: got {actual[:16]}..., expected {sha256[:16]}... "
                "(corrupt file, or not the MNIST release)"
            )
    return parse_idx(payload, str(path))


def read_sha256sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file: ``<hex digest>  <file name>`` per line."""
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}:{number}: expected '<sha256>  <file name>', got {line!r}")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


# ----------------------------------------------------------------- locating the files


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _complete(directory: Path) -> bool:
    return all(_find(directory, name) for name in MNIST_FILES.values())


def checkout_data_dir() -> Path:
    """``data/mnist`` of the source checkout this package was installed from."""
    return Path(__file__).resolve().parent.parent / "data" / "mnist"


def cache_dir() -> Path:
    """Where downloads go: ``$RAWTF_CACHE_DIR``, else ``$XDG_CACHE_HOME/rawtf/mnist``,
    else ``~/.cache/rawtf/mnist``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rawtf" / "mnist"


def _missing(directory: Path) -> str:
    names = [n for n in MNIST_FILES.values() if not _find(directory, n)]
    return ", ".join(f"{n}[.gz]" for n in names)


def resolve_mnist_dir(data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder MNIST is read from: ``data_dir``, ``$RAWTF_DATA_DIR``, the checkout's
    ``data/mnist``, the user cache, and last a download into that cache.

    A folder named explicitly (argument or environment) must hold the four files."""
    for explicit, origin in ((data_dir, "data_dir"), (os.environ.get(DATA_DIR_ENV), DATA_DIR_ENV)):
        if explicit:
            directory = Path(explicit).expanduser()
            if directory.exists() and not directory.is_dir():
                raise DataError(f"{directory}: MNIST folder ({origin}) is a file, not a folder")
            if not directory.is_dir():
                raise DataError(f"{directory}: MNIST folder ({origin}) does not exist")
            if not _complete(directory):
                raise DataError(f"{directory}: MNIST folder ({origin}) lacks {_missing(directory)}")
            return directory
    for directory in (checkout_data_dir(), cache_dir()):
        if directory.is_dir() and _complete(directory):
            return directory
    if not download:
        raise DataError(
            f"MNIST not found in {checkout_data_dir()} or {cache_dir()} and download=False"
        )
    return download_mnist(cache_dir())


def download_mnist(
    directory: str | os.PathLike, mirrors: Sequence[str] = MNIST_MIRRORS, progress: bool = True
) -> Path:
    """Download the four gzipped files into ``directory``, each verified against
    :data:`MNIST_SHA256` and moved into place atomically. Files already there are kept."""
    from tqdm.auto import tqdm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES.values():
        if _find(directory, name):
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name + ".gz"
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(
                        total=total, unit="B", unit_scale=True, desc=name, disable=not progress
                    ) as bar:
                        while chunk := resp.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                read_idx(tmp, sha256=MNIST_SHA256[name])
                os.replace(tmp, directory / (name + ".gz"))
                break
            except (OSError, urllib.error.URLError, DataError) as e:
                failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise DataError(f"could not download {name}: " + "; ".join(failures))
    return directory


def load_mnist(
    data_dir: str | os.PathLike | None = None, verify: bool = True, download: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    The folder is found by :func:`resolve_mnist_dir`. With ``verify`` each decompressed file
    must match the folder's ``SHA256SUMS`` if it has one, else the MNIST digests; pass
    ``verify=False`` to read other data in the same format (Fashion-MNIST, say).
    """
    directory = resolve_mnist_dir(data_dir, download=download)
    sums = dict(MNIST_SHA256)
    if (directory / "SHA256SUMS").is_file():
        sums.update(read_sha256sums(directory / "SHA256SUMS"))
    arrays = {}
    for key, name in MNIST_FILES.items():
        path = _find(directory, name)
        assert path is not None  # resolve_mnist_dir checked
        arrays[key] = read_idx(path, sha256=sums.get(name) if verify else None)
        want_rank = 3 if key.endswith("images") else 1
        if arrays[key].ndim != want_rank or arrays[key].dtype != np.uint8:
            raise DataError(
                f"{path}: expected a rank-{want_rank} uint8 IDX array, "
                f"got rank {arrays[key].ndim} {arrays[key].dtype}"
            )
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(
                f"{directory}: {split} has {len(images)} images but {len(labels)} labels"
            )
        if labels.size and labels.max() > 9:
            raise DataError(f"{directory}: {split} labels must be 0-9, found {labels.max()}")
    return (arrays["train_images"], arrays["train_labels"]), (
        arrays["test_images"],
        arrays["test_labels"],
    )


# ------------------------------------------------------------------- arrays and checks


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


def one_hot(y, num_classes: int = 10) -> np.ndarray:
    """Integer labels -> float32 one-hot rows."""
    y = check_labels(y, len(np.asarray(y)), num_classes)
    return np.eye(num_classes, dtype=np.float32)[y]


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


# --------------------------------------------------------------------------- pipelines


def _scale(images):
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) * (1.0 / 255.0)
    return images


#: Whether rawtf's input pipelines (:func:`train_dataset`, :func:`eval_dataset`) leave their
#: parallelism and prefetch depth to tf.data's autotuner. Off by default: the pipelines then
#: map with one call per schedulable CPU core and prefetch two batches, with autotuning
#: disabled. On the 2-core machine rawtf is developed on, autotuned pipelines held the steps
#: they fed to one fixed rate (about 1,190 training img/s, whatever the model) in a third to
#: half of the runs of a few minutes; fed by the fixed pipelines, no more runs were slow
#: than fed by constant tensors (``benchmarks/tfdata_stall.py``, ``benchmarks/run.py``;
#: README, "Speed"). Set it to True to have tf.data tune, e.g. on a machine with many cores.
AUTOTUNE = False

#: Batches prefetched by the fixed (not autotuned) pipelines.
PREFETCH = 2


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _parallel_calls() -> int:
    return tf.data.AUTOTUNE if AUTOTUNE else _cores()


def pipeline_options() -> tf.data.Options:
    """The tf.data options of rawtf's pipelines: autotuning off unless :data:`AUTOTUNE`."""
    options = tf.data.Options()
    if not AUTOTUNE:
        options.autotune.enabled = False
    return options


def _prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
    if AUTOTUNE:
        return ds.prefetch(tf.data.AUTOTUNE)
    return ds.prefetch(PREFETCH).with_options(pipeline_options())


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    return n // batch_size if drop_remainder else -(-n // batch_size)


def train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    drop_remainder: bool = False,
    augment=None,
) -> tf.data.Dataset:
    """One epoch of ``(images float32 NHWC, labels int32)`` batches in the order
    :func:`epoch_order` gives, starting at batch ``start_step``.

    ``x`` and ``y`` are checked arrays (see :func:`check_images`, :func:`check_labels`), or
    those arrays already made tensors, which a caller running many epochs does once;
    gathering, scaling and augmentation (an :class:`rawtf.augment.AugmentConfig`, drawn
    from ``(seed, epoch, step)``) happen inside tf.data, overlapped with training by
    prefetch."""
    from rawtf import augment as A

    order = epoch_order(len(x), seed, epoch)[start_step * batch_size :]
    images, labels = tf.convert_to_tensor(x), tf.convert_to_tensor(y)  # no copy if tensors
    batches = tf.data.Dataset.from_tensor_slices(order).batch(
        batch_size, drop_remainder=drop_remainder
    )
    steps = tf.data.Dataset.range(start_step, start_step + len(order))
    ds = tf.data.Dataset.zip((batches, steps))

    def load(idx, step):
        batch = _scale(tf.gather(images, idx))
        if augment is not None:
            batch = A.random_affine(batch, seed, epoch, step, augment)
        return batch, tf.gather(labels, idx)

    return _prefetched(ds.map(load, num_parallel_calls=_parallel_calls(), deterministic=True))


def eval_dataset(x: np.ndarray, y: np.ndarray | None, batch_size: int) -> tf.data.Dataset:
    """Batches in the arrays' own order, for evaluation and prediction."""
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y)).batch(batch_size)
    if y is None:
        ds = ds.map(_scale, num_parallel_calls=_parallel_calls())
    else:
        ds = ds.map(lambda a, b: (_scale(a), b), num_parallel_calls=_parallel_calls())
    return _prefetched(ds)
