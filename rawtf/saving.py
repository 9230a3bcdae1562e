"""Saving and loading models: the variables through ``tf.train.Checkpoint`` and a
``config.json`` naming the architecture and its settings. No pickle.

A saved model folder::

    DIR/config.json          {"format": "rawtf-model", "model": "tutorial", "config": {...}}
    DIR/variables/ckpt.*     the tf.train.Checkpoint of the model's variables

Folders are written atomically (:mod:`rawtf._io`): an interrupted save never leaves a
half-written model, and never replaces a folder that is not a rawtf model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rawtf._io import atomic_folder, first_line, read_json_config, write_json
from rawtf._tf import import_tensorflow
from rawtf._version import __version__
from rawtf.errors import CheckpointError, RawtfError
from rawtf.models import Model, get_model

tf = import_tensorflow()

FORMAT = "rawtf-model"
CONFIG_FILE = "config.json"
VARIABLES_PREFIX = "variables/ckpt"
#: What TensorFlow's checkpoint reader raises on a damaged file: an ``OpError`` for a bad
#: checksum, ``IndexError`` for a truncated data file, ``ValueError`` for a bad index.
READ_ERRORS = (tf.errors.OpError, ValueError, IndexError)


def save(model: Model, directory: str | os.PathLike) -> Path:
    """Save ``model`` to ``directory``. An existing rawtf model folder there is replaced;
    any other existing path is left alone and is an error."""
    directory = Path(directory)
    with atomic_folder(directory, CONFIG_FILE, "rawtf model", CheckpointError) as tmp:
        tf.train.Checkpoint(model=model).write(str(tmp / VARIABLES_PREFIX))
        config = {
            "format": FORMAT,
            "rawtf_version": __version__,
            "model": model.model_name,
            "config": model.config,
        }
        write_json(tmp / CONFIG_FILE, config, CheckpointError)
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a saved model folder, checked."""
    path = Path(directory) / CONFIG_FILE
    config = read_json_config(path, FORMAT, "model")
    settings = config.get("config")
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: has no 'config' object naming the architecture")
    name = settings.get("model", config.get("model"))
    if not isinstance(name, str):
        raise CheckpointError(f"{path}: field 'model' is {name!r}, expected a model name")
    return config


def checkpoint_key(path: str) -> str:
    """The key ``tf.train.Checkpoint(model=...)`` stores variable ``path`` under."""
    return f"model/{path}/.ATTRIBUTES/VARIABLE_VALUE"


def check_compatible(model: Model, prefix: str) -> None:
    """Raise :class:`CheckpointError` listing every variable that is missing from, extra
    in, or shaped differently in the checkpoint at ``prefix``. ``Checkpoint.restore`` is
    deferred and silent about such mismatches, so they are compared here first."""
    try:
        stored = {
            name: tuple(shape)
            for name, shape in tf.train.list_variables(prefix)
            if name.startswith("model/")
        }
    except READ_ERRORS as e:
        raise CheckpointError(f"{prefix}: unreadable checkpoint ({first_line(e)})") from None
    expected = {checkpoint_key(p): tuple(v.shape) for p, v in model.variable_map().items()}
    problems = [f"missing {k.split('/.')[0][6:]}" for k in expected if k not in stored]
    problems += [f"unexpected {k.split('/.')[0][6:]}" for k in stored if k not in expected]
    problems += [
        f"{k.split('/.')[0][6:]} has shape {list(stored[k])}, model expects {list(expected[k])}"
        for k in expected
        if k in stored and stored[k] != expected[k]
    ]
    if problems:
        shown = "; ".join(problems[:6]) + (
            f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        )
        raise CheckpointError(f"{prefix}: does not match model {model.model_name!r}: {shown}")


def restore_checkpoint(checkpoint, prefix: str, model: Model, problem: str) -> None:
    """Read the checkpoint at ``prefix`` into ``checkpoint`` (a ``tf.train.Checkpoint``
    holding ``model``) after checking that the stored variables match ``model``; a failure
    is a :class:`CheckpointError` reading ``"{prefix}: {problem} (...)"``."""
    check_compatible(model, prefix)
    try:
        status = checkpoint.read(prefix)
        status.expect_partial()  # the file's own save counter is not ours: no warning at exit
        status.assert_existing_objects_matched()
    except (AssertionError, *READ_ERRORS) as e:
        raise CheckpointError(f"{prefix}: {problem} ({first_line(e)})") from None


def restore_variables(model: Model, prefix: str) -> None:
    """Load the checkpoint at ``prefix`` into ``model`` after checking that it matches."""
    restore_checkpoint(tf.train.Checkpoint(model=model), prefix, model, "cannot restore")


def load(directory: str | os.PathLike) -> Model:
    """Rebuild the model saved in ``directory`` and restore its variables."""
    directory = Path(directory)
    config = read_config(directory)
    settings = dict(config["config"])
    name = settings.pop("model", config.get("model"))
    try:
        model = get_model(name, **settings)
    except (RawtfError, TypeError, ValueError) as e:  # the settings come from an editable file
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: field 'config' does not describe a {name!r} model "
            f"({first_line(e)})"
        ) from None
    prefix = directory / VARIABLES_PREFIX
    if not Path(str(prefix) + ".index").is_file():
        raise CheckpointError(f"{prefix}.index: no such file (incomplete model folder)")
    restore_variables(model, str(prefix))
    return model
