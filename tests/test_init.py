"""Initialisers: statistics from their closed-form definitions, and determinism by seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rawtf import initializers
from rawtf.errors import ConfigError


def test_fans():
    assert initializers.fans((5, 5, 32, 64)) == (800, 1600)
    assert initializers.fans((3136, 1024)) == (3136, 1024)


def test_he_normal_statistics():
    w = initializers.he_normal((5, 5, 32, 64), seed=[1, 2]).numpy()
    std = math.sqrt(2 / 800)
    assert abs(w.std() - std) / std < 0.03  # the truncated normal is rescaled to this stddev
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-6
    assert abs(w.mean()) < 0.05 * std


def test_glorot_uniform_statistics():
    w = initializers.glorot_uniform((300, 200), seed=[0, 1]).numpy()
    limit = math.sqrt(6 / 500)
    assert w.min() >= -limit and w.max() <= limit
    assert abs(w.std() - limit / math.sqrt(3)) / (limit / math.sqrt(3)) < 0.03


def test_normal_is_standard():
    w = initializers.normal((200, 200), seed=[0, 1]).numpy()
    assert abs(w.std() - 1.0) < 0.02 and abs(w.mean()) < 0.02


def test_declare_is_deterministic_and_streams_differ():
    shapes = {"W_a": (4, 4), "W_b": (4, 4)}
    a = initializers.declare(shapes, "he", seed=7, stream=1)
    b = initializers.declare(shapes, "he", seed=7, stream=1)
    c = initializers.declare(shapes, "he", seed=8, stream=1)
    np.testing.assert_array_equal(a["W_a"].numpy(), b["W_a"].numpy())
    assert (a["W_a"].numpy() != a["W_b"].numpy()).all()
    assert (a["W_a"].numpy() != c["W_a"].numpy()).any()
    assert a["W_a"].name.startswith("W_a")
    with pytest.raises(ConfigError, match="unknown initialiser 'xavier'"):
        initializers.declare(shapes, "xavier", seed=0, stream=1)
