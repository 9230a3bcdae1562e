"""MNIST on disk: reading and verifying IDX files, finding the four MNIST files, downloading
them, and :func:`load_mnist`. Needs numpy only (no TensorFlow).

IDX is the MNIST release's format: two zero bytes, a dtype code, the rank, one big-endian
uint32 size per dimension, then the values in C order. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rawtf._io import atomic_path
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
    """Decode an IDX payload; every field is checked against the payload's length."""
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
