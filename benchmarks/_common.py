"""Helpers shared by the benchmarks: quiet TensorFlow, the Keras twins (Keras is used only
in tests and benchmarks, as a reference), and robust summary statistics."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rawtf._tf import import_tensorflow  # noqa: E402
from tests.keras_twins import copy_weights, keras_twin  # noqa: E402

tf = import_tensorflow()

__all__ = ["ROOT", "copy_weights", "keras_twin", "spread", "tf"]


def spread(values: list[float]) -> str:
    """``median (min-max)`` of ``values``."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"
