"""Import TensorFlow without its start-up chatter.

TensorFlow 2.21 writes oneDNN, CPU-feature and CUDA notices straight to file descriptor 2
when it is imported and when its runtime first starts, even at ``TF_CPP_MIN_LOG_LEVEL=3``.
Python-level redirection cannot catch them, so descriptor 2 itself is pointed at
``/dev/null`` for the duration. Python exceptions still propagate normally.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

VERBOSE_ENV = "RAWTF_VERBOSE"


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null inside the block, restoring it afterwards."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters, some IDEs)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool | None = None):
    """Return the ``tensorflow`` module, imported (and its runtime started) quietly.

    ``verbose=None`` reads ``$RAWTF_VERBOSE``; a module already imported is returned as is.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if verbose is None:
        verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    if verbose:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_stderr():
        import tensorflow as tf

        tf.constant(0)  # starts the runtime, which prints the CUDA probe notices
    return tf
