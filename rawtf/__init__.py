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
from rawtf._version import __version__
from rawtf.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RawtfError,
    ShapeError,
    TrainingError,
    TrainingInterrupted,
    UsageError,
)

#: Submodules that need no TensorFlow (the rest import it, quietly, on first use).
_WITHOUT_TENSORFLOW = (
    "cli",
    "config",
    "data",
    "flags",
    "images",
    "kaggle",
    "mnist",
    "plots",
    "specs",
)

_SUBMODULES = (
    *_WITHOUT_TENSORFLOW,
    "augment",
    "callbacks",
    "checkpoint",
    "export",
    "initializers",
    "layers",
    "metrics",
    "models",
    "networks",
    "optim",
    "pipeline",
    "runs",
    "saving",
    "schedules",
    "step",
    "train",
)

_NAMES = {
    "load_mnist": "mnist",
    "TrainConfig": "config",
    "Model": "models",
    "register_model": "models",
    "get_model": "models",
    "fit": "train",
    "History": "callbacks",
    "Callback": "callbacks",
    "EarlyStopping": "callbacks",
    "evaluate": "metrics",
    "predict": "metrics",
    "save": "saving",
    "load": "saving",
    "export_saved_model": "export",
    "train_run": "runs",
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
    "UsageError",
    *_SUBMODULES,
    *_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _NAMES:
        module_name = _NAMES.get(name, name)
        if module_name not in _WITHOUT_TENSORFLOW:
            from rawtf._tf import import_tensorflow

            import_tensorflow()
        module = importlib.import_module(f"rawtf.{module_name}")
        value = module if name in _SUBMODULES else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rawtf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from rawtf import (  # noqa: F401
        augment,
        callbacks,
        checkpoint,
        cli,
        config,
        data,
        export,
        flags,
        images,
        initializers,
        kaggle,
        layers,
        metrics,
        mnist,
        models,
        networks,
        optim,
        pipeline,
        plots,
        runs,
        saving,
        schedules,
        specs,
        step,
        train,
    )
    from rawtf.callbacks import Callback, EarlyStopping, History  # noqa: F401
    from rawtf.config import TrainConfig  # noqa: F401
    from rawtf.export import export_saved_model  # noqa: F401
    from rawtf.metrics import evaluate, predict  # noqa: F401
    from rawtf.mnist import load_mnist  # noqa: F401
    from rawtf.models import Model, get_model, register_model  # noqa: F401
    from rawtf.optim import Adam  # noqa: F401
    from rawtf.runs import load_run, train_run  # noqa: F401
    from rawtf.saving import load, save  # noqa: F401
    from rawtf.train import fit  # noqa: F401
