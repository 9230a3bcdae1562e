"""rawtf: convolutional networks for handwritten digits in TensorFlow 2, the explicit way.

Weights and biases are ``tf.Variable`` s in named dictionaries, layers are functions over
``tf.nn`` ops, training is a ``tf.GradientTape`` loop with rawtf's own optimisers.

Submodules and the names below load on first use, so ``import rawtf`` is instant and the
command line can decide how TensorFlow is imported (quietly unless ``--verbose``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rawtf import errors
from rawtf.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RawtfError,
    ShapeError,
    TrainingError,
    TrainingInterrupted,
)

__version__ = "0.1.0"

_SUBMODULES = (
    "data",
    "init",
    "layers",
    "models",
    "optim",
    "schedules",
    "train",
    "metrics",
    "checkpoint",
    "cli",
    "augment",
    "kaggle",
    "images",
    "plots",
    "runs",
    "recipes",
)

_NAMES = {
    "load_mnist": "data",
    "Model": "models",
    "register_model": "models",
    "get_model": "models",
    "fit": "train",
    "History": "train",
    "EarlyStopping": "train",
    "evaluate": "metrics",
    "predict": "metrics",
    "save": "checkpoint",
    "load": "checkpoint",
    "load_run": "runs",
    "Adam": "optim",
}

__all__ = [
    "__version__",
    "errors",
    "RawtfError",
    "DataError",
    "ShapeError",
    "CheckpointError",
    "ConfigError",
    "TrainingError",
    "TrainingInterrupted",
    *_SUBMODULES,
    *_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _NAMES:
        from rawtf._tf import import_tensorflow

        if name not in ("cli", "kaggle", "images", "plots", "recipes"):
            import_tensorflow()
        module = importlib.import_module(f"rawtf.{_NAMES.get(name, name)}")
        value = module if name in _SUBMODULES else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rawtf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from rawtf import (  # noqa: F401
        augment,
        checkpoint,
        cli,
        data,
        images,
        init,
        kaggle,
        layers,
        metrics,
        models,
        optim,
        plots,
        recipes,
        runs,
        schedules,
        train,
    )
    from rawtf.checkpoint import load, save  # noqa: F401
    from rawtf.data import load_mnist  # noqa: F401
    from rawtf.metrics import evaluate, predict  # noqa: F401
    from rawtf.models import Model, get_model, register_model  # noqa: F401
    from rawtf.optim import Adam  # noqa: F401
    from rawtf.runs import load_run  # noqa: F401
    from rawtf.train import EarlyStopping, History, fit  # noqa: F401
