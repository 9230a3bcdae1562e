"""Shared fixtures. TensorFlow is imported once, quietly; MNIST is read once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT / "data" / "mnist"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rawtf._tf import import_tensorflow  # noqa: E402

tf = import_tensorflow()


def cross_entropy(logits, labels):
    """Reference mean softmax cross-entropy of integer ``labels``, written here with
    ``tf.nn`` so that tests do not check rawtf's loss against itself."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


@pytest.fixture(scope="session")
def mnist():
    """The full MNIST arrays, read once from the checkout's data/mnist."""
    from rawtf.mnist import load_mnist

    return load_mnist(MNIST_DIR)


@pytest.fixture(scope="session")
def small_mnist(mnist):
    """4,000 training and 1,000 test images: enough to learn, quick to train on."""
    (x_train, y_train), (x_test, y_test) = mnist
    return (x_train[:4000], y_train[:4000]), (x_test[:1000], y_test[:1000])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def python_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's, quiet TensorFlow, no user data dir."""
    env = dict(os.environ)
    env.pop("RAWTF_DATA_DIR", None)
    env.pop("RAWTF_VERBOSE", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One short training run through the command, shared by the tests that read it."""
    import contextlib
    import io

    from rawtf import cli

    run_dir = tmp_path_factory.mktemp("cli") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            [
                "train",
                "--epochs",
                "1",
                "--train-limit",
                "1024",
                "--batch-size",
                "64",
                "--out",
                str(run_dir),
            ]
        )
    assert code == 0
    return run_dir, out.getvalue()
