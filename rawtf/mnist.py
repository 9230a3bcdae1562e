"""MNIST on disk: reading and verifying IDX files, finding the four MNIST files, downloading
them, and :func:`load_mnist`. Needs numpy only (no TensorFlow).

IDX is the MNIST release's format: two zero bytes, a dtype code, the rank, one big-endian
uint32 size per dimension, then the values in C order. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rawtf._io import atomic_path, read_text
from rawtf.errors import DataError

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

#: The shape of each MNIST file's array.
MNIST_SHAPES = {
    "train_images": (60000, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 28, 28),
    "test_labels": (10000,),
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

#: The most an IDX file may decode to unless the caller allows more: 4 GiB, beyond every
#: MNIST-format data set (EMNIST's largest is 0.55 GB), so a gzip bomb cannot exhaust memory.
MAX_IDX_BYTES = 1 << 32

_CHUNK = 1 << 20


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _read_exact(stream: BinaryIO, size: int, source: str, what: str) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise DataError(f"{source}: truncated IDX {what} ({len(data)} bytes, need {size})")
    return data


def _read_body(stream: BinaryIO, size: int, source: str, expected_total: int) -> np.ndarray:
    """Exactly ``size`` bytes from ``stream`` into a new buffer, chunk by chunk."""
    body = np.empty(size, np.uint8)
    view, filled = memoryview(body), 0
    while filled < size:
        got = stream.readinto(view[filled : filled + _CHUNK])
        if not got:
            raise DataError(
                f"{source}: IDX data truncated: {expected_total - size + filled} bytes, "
                f"expected {expected_total}"
            )
        filled += got
    return body


def read_idx_stream(
    stream: BinaryIO,
    source: str = "<bytes>",
    shape: tuple[int | None, ...] | None = None,
    max_bytes: int = MAX_IDX_BYTES,
    digest=None,
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """Decode the IDX payload read from ``stream``, reading no further than the header
    announces (one byte more, to find trailing data). With ``shape`` (None for any size),
    the header must announce that shape, with ``dtype`` that element type, before anything
    more is read; it may never announce more than ``max_bytes``. Every byte read is fed to
    ``digest`` (a ``hashlib`` object) when given."""

    def read(size: int, what: str) -> bytes:
        data = _read_exact(stream, size, source, what)
        if digest is not None:
            digest.update(data)
        return data

    first = stream.read(4)
    if len(first) < 4:
        raise DataError(f"{source}: not an IDX file (only {len(first)} bytes)")
    if digest is not None:
        digest.update(first)
    if first[0] != 0 or first[1] != 0:
        raise DataError(
            f"{source}: bad IDX magic number 0x{first.hex()} "
            "(expected 0x0000 followed by a dtype code and a rank)"
        )
    code, ndim = first[2], first[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{source}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{source}: IDX rank is 0")
    stored = _IDX_DTYPES[code]
    if dtype is not None and stored != np.dtype(dtype).newbyteorder(">"):
        raise DataError(f"{source}: IDX holds {stored.name}, expected {np.dtype(dtype).name}")
    dims = read(4 * ndim, f"header (rank {ndim})")
    found = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    if shape is not None and not _matches(found, shape):
        wanted = "x".join("N" if d is None else str(d) for d in shape)
        raise DataError(f"{source}: IDX shape {found}, expected {wanted}")
    size = int(np.prod(found, dtype=object)) * stored.itemsize
    header = 4 + 4 * ndim
    if size > max_bytes:
        raise DataError(
            f"{source}: IDX header announces shape {found} ({size} bytes), over the "
            f"{max_bytes}-byte limit"
        )
    body = _read_body(stream, size, source, header + size)
    if digest is not None:
        digest.update(body)
    if stream.read(1):
        raise DataError(f"{source}: IDX data has trailing bytes after shape {found}")
    return body.view(stored).reshape(found).astype(stored.newbyteorder("="), copy=False)


def _matches(shape: tuple[int, ...], pattern: tuple[int | None, ...]) -> bool:
    return len(shape) == len(pattern) and all(
        p is None or p == d for d, p in zip(shape, pattern, strict=False)
    )


def parse_idx(payload: bytes, source: str = "<bytes>", **limits) -> np.ndarray:
    """Decode an IDX payload held in memory (see :func:`read_idx_stream`)."""
    return read_idx_stream(io.BytesIO(payload), source, **limits)


def read_idx(
    path: str | os.PathLike,
    sha256: str | None = None,
    shape: tuple[int | None, ...] | None = None,
    max_bytes: int = MAX_IDX_BYTES,
    dtype: np.dtype | None = None,
) -> np.ndarray:
    """Read an IDX file, raw or gzipped (by its magic, not its name), decompressing as a
    stream no further than its header announces. With ``sha256``, the decompressed payload
    must have that digest; ``shape``, ``dtype`` and ``max_bytes`` are as in
    :func:`read_idx_stream`."""
    path = Path(path)
    digest = hashlib.sha256() if sha256 is not None else None
    try:
        with open(path, "rb") as raw:
            stream: BinaryIO = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw
            raw.seek(0)
            with stream:
                array = read_idx_stream(stream, str(path), shape, max_bytes, digest, dtype)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected an IDX file") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if digest is not None and digest.hexdigest() != sha256:
        raise DataError(
            f"{path}: SHA-256 mismatch: got {digest.hexdigest()[:16]}..., expected "
            f"{sha256[:16]}... (corrupt file, or not the MNIST release)"
        )
    return array


# ------------------------------------------------------------ the decoded-array cache


def decoded_cache_dir() -> Path:
    """Where decoded IDX files are kept as ``.npy`` arrays: ``decoded/`` in
    :func:`cache_dir`."""
    return cache_dir() / "decoded"


def _idx_header(array: np.ndarray) -> bytes:
    """The IDX header of a uint8 ``array`` (what its payload digest starts with)."""
    return bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()


def _cached(path: Path, sha256: str | None, shape) -> tuple[np.ndarray | None, Path | None]:
    """``(array or None, cache file or None)``: the decoded array of the IDX file ``path``
    if the cache holds one for exactly these bytes (named by their SHA-256), of ``shape``
    and, with ``sha256``, of that payload digest; else None and where to keep it."""
    try:
        if path.stat().st_size > MAX_IDX_BYTES:
            return None, None
        source = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None, None  # read_idx says what is wrong with the file
    cached = decoded_cache_dir() / f"{source}.npy"
    try:
        array = np.load(cached, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None, cached
    if array.dtype != np.uint8 or not _matches(array.shape, shape):
        return None, cached
    if sha256 is not None:
        digest = hashlib.sha256(_idx_header(array))
        digest.update(np.ascontiguousarray(array).data)
        if digest.hexdigest() != sha256:
            return None, cached
    return array, cached


def _keep(array: np.ndarray, cached: Path) -> None:
    """Write ``array`` to the cache file ``cached``, atomically; a cache that cannot be
    written is no cache."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
    except (OSError, DataError):
        pass


def read_mnist_file(path: Path, sha256: str | None, shape) -> np.ndarray:
    """The uint8 array of the IDX file ``path`` (see :func:`read_idx`), from the
    decoded-array cache when it holds these exact bytes (about 5x faster than
    decompressing), decoded and added to the cache otherwise."""
    array, cached = _cached(path, sha256, shape)
    if array is None:
        array = read_idx(path, sha256=sha256, shape=shape, dtype=np.uint8)
        if cached is not None:
            _keep(array, cached)
    return array


def read_sha256sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file: ``<hex digest>  <file name>`` per line."""
    sums: dict[str, str] = {}
    for number, line in enumerate(read_text(path, DataError, 1 << 20).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64 or not _is_hex(parts[0]):
            raise DataError(f"{path}:{number}: expected '<sha256>  <file name>', got {line!r}")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


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


def _fetch(url: str, target: Path, name: str, progress: bool) -> None:
    """Copy ``url`` to the file ``target``, with a progress bar when ``progress``; any
    failure is a :class:`DataError` naming the URL."""
    from tqdm.auto import tqdm

    try:
        with open(target, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=name, disable=not progress
            ) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # urllib's errors are OSErrors too
        raise DataError(f"{url}: {getattr(e, 'reason', None) or e.strerror or e}") from None


def download_mnist(
    directory: str | os.PathLike, mirrors: Sequence[str] = MNIST_MIRRORS, progress: bool = True
) -> Path:
    """Download the four gzipped files into ``directory``, each verified against
    :data:`MNIST_SHA256` before it is moved into place. Files already there are kept."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES.values():
        if _find(directory, name):
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name + ".gz"
            try:
                with atomic_path(directory / (name + ".gz")) as tmp:
                    _fetch(url, tmp, name, progress)
                    read_idx(tmp, sha256=MNIST_SHA256[name])
                break
            except DataError as e:
                failures.append(str(e))
        else:
            raise DataError(f"could not download {name}: " + "; ".join(failures))
    return directory


def load_mnist(
    data_dir: str | os.PathLike | None = None, verify: bool = True, download: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    The folder is found by :func:`resolve_mnist_dir`. With ``verify`` each file must be the
    MNIST release's: its shape and :data:`MNIST_SHA256` digest, whatever else the folder
    holds. Pass ``verify=False`` to read other data in the same format (Fashion-MNIST, say):
    uint8 images of 28x28 and labels 0-9, each file checked against the folder's own
    ``SHA256SUMS`` when it has one.
    """
    directory = resolve_mnist_dir(data_dir, download=download)
    sums = dict(MNIST_SHA256)
    if not verify:
        listed = directory / "SHA256SUMS"
        sums = read_sha256sums(listed) if listed.is_file() else {}
    arrays = {}
    for key, name in MNIST_FILES.items():
        path = _find(directory, name)
        assert path is not None  # resolve_mnist_dir checked
        shape = MNIST_SHAPES[key] if verify else (None, 28, 28)[: len(MNIST_SHAPES[key])]
        arrays[key] = read_mnist_file(path, sums.get(name), shape)
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
