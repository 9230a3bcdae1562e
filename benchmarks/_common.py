"""Helpers shared by the benchmarks: quiet TensorFlow, the Keras twins (Keras is used only
here and in tests, as a reference), and robust timing statistics."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rawtf._tf import import_tensorflow  # noqa: E402

tf = import_tensorflow()


def keras_twin(name: str):
    """The Keras model with rawtf's architecture ``name``, ending in linear logits."""
    import keras
    from keras import layers

    if name == "tutorial":
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, 5, padding="same", activation="relu"),
                layers.MaxPool2D(2, padding="same"),
                layers.Conv2D(64, 5, padding="same", activation="relu"),
                layers.MaxPool2D(2, padding="same"),
                layers.Flatten(),
                layers.Dense(1024, activation="relu"),
                layers.Dropout(0.2),
                layers.Dense(10),
            ]
        )
    raise KeyError(name)


def spread(values: list[float]) -> str:
    """``median (min-max)`` of ``values``."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"
