"""The one way rawtf writes files and folders — atomically, honouring the umask — and reads
text and the JSON configs it wrote.

Everything is first written under a temporary name in the destination's own folder (so the
final rename never crosses file systems), given the permissions an ordinary ``open`` would
give (``mkstemp``/``mkdtemp`` make 0600 files and 0700 folders), and only then renamed over
the destination. A failure leaves the previous file or folder intact and no temporary
behind; an ``OSError`` (or TensorFlow's error for a failed write, whose message carries its
graph internals) becomes the caller's :class:`rawtf.errors.RawtfError` type with a one-line
message naming the path and the reason, e.g. ``"run/model: cannot write (No space left on
device)"``.

Text is read whole, as UTF-8 with or without a byte-order mark; a byte that is not UTF-8 is
an error naming the line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rawtf.errors import CheckpointError, DataError, RawtfError


def current_umask() -> int:
    """The process's umask (read by setting it and putting it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed write raises: ``OSError``, and TensorFlow's ``OpError`` once
    TensorFlow is imported (this module never imports it)."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return (OSError, errors.OpError) if errors is not None else (OSError,)


#: Lines of TensorFlow's error messages that say where, not what.
_WHERE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces unavailable>|\[\[)")


def first_line(error: BaseException) -> str:
    """An error's message as one line without TensorFlow's internals (``Graph execution
    error``, ``Detected at node ...``, ``{{function_node ...}}``, ``[Op:SaveV2]``), or its
    type's name when it has none."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\]", "", text)
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not _WHERE.match(line)]
    return lines[0] if lines else type(error).__name__


def write_failure_reason(error: BaseException) -> str:
    """Why a write failed, in a few words: an ``OSError``'s ``strerror``, or the reason at
    the end of a TensorFlow error (``"{{function_node ...}} PATH; File too large [Op:SaveV2]"``
    gives ``"File too large"``)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return first_line(error).rsplit("; ", 1)[-1].strip() or type(error).__name__


def _cannot_write(path: Path, error: BaseException, kind: type[RawtfError]) -> RawtfError:
    return kind(f"{path}: cannot write ({write_failure_reason(error)})")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, error: type[RawtfError] = DataError) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; when the block succeeds the file there
    is given umask permissions and renamed to ``path``. ``path`` may not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, expected a file name")
    if not path.parent.is_dir():
        raise error(f"{path.parent}: folder does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _cannot_write(path, e, error) from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except write_errors() as e:
        raise _cannot_write(path, e, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str, error: type[RawtfError] = DataError) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_path(path, error) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, payload: Any, error: type[RawtfError] = DataError) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(payload, indent=2) + "\n", error)


def honour_umask(folder: Path) -> None:
    """Give ``folder`` and every folder and file in it the permissions the umask asks for
    (TensorFlow makes its folders 0755 whatever the umask)."""
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def _replace_dir(tmp: Path, directory: Path) -> None:
    """Move the finished folder ``tmp`` to ``directory``, replacing an old one there."""
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
        os.replace(directory, old / directory.name)
    os.replace(tmp, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(
    directory: str | os.PathLike, marker: str, kind: str, error: type[RawtfError]
) -> Iterator[Path]:
    """Yield a temporary folder beside ``directory``; when the block succeeds it replaces
    ``directory``. An existing ``directory`` without the file ``marker`` (not a ``kind``
    folder) is never replaced, unless it is an empty folder."""
    directory = Path(directory)
    if directory.exists() and not (directory / marker).is_file():
        if not directory.is_dir() or any(directory.iterdir()):
            raise error(f"{directory}: exists and is not a {kind} folder; refusing to replace it")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    except OSError as e:
        raise _cannot_write(directory, e, error) from None
    try:
        yield tmp
        honour_umask(tmp)
        _replace_dir(tmp, directory)
    except write_errors() as e:
        raise _cannot_write(directory, e, error) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_text(
    path: str | os.PathLike, error: type[RawtfError] = DataError, limit: int | None = None
) -> str:
    """The text of the file ``path``: UTF-8, a leading byte-order mark dropped, newlines as
    they are. A missing or unreadable file, one over ``limit`` bytes, or a byte that is not
    UTF-8 is an ``error`` naming the file (and the line)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read() if limit is None else f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected a file") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    if limit is not None and len(raw) > limit:
        raise error(f"{path}: larger than {limit} bytes; not a file rawtf wrote")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise error(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {column})"
        ) from None


#: No config.json rawtf writes comes near this; a larger one is not one of ours.
CONFIG_LIMIT = 1 << 20


def read_json_config(path: Path, fmt: str, folder_kind: str) -> dict[str, Any]:
    """The JSON object at ``path``, whose ``format`` field must be ``fmt`` (a rawtf
    ``folder_kind`` folder's config); anything else is a :class:`CheckpointError`."""
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"{path}: no such file (not a rawtf {folder_kind} folder)")
    text = read_text(path, CheckpointError, CONFIG_LIMIT)
    try:
        config = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != fmt:
        raise CheckpointError(f"{path}: not a rawtf {folder_kind} config (format {fmt!r} expected)")
    return config
