"""Run folders: everything one training run leaves behind, in one place::

    RUN_DIR/config.json     model, settings, seed, data, optimiser, rawtf version
    RUN_DIR/model/          the trained model (rawtf.save)
    RUN_DIR/history.json    per-epoch metrics
    RUN_DIR/plots/*.png     figures

:func:`load_run` reads one back with one call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from rawtf import __version__
from rawtf import checkpoint as C
from rawtf.errors import ConfigError
from rawtf.models import Model

CONFIG = "config.json"
HISTORY = "history.json"
MODEL = "model"
PLOTS = "plots"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
#: The entries rawtf itself writes in a run folder; --overwrite replaces only these.
OWN_ENTRIES = (CONFIG, HISTORY, MODEL, PLOTS, CHECKPOINTS)


@dataclasses.dataclass
class Run:
    """A loaded run folder."""

    directory: Path
    config: dict[str, Any]
    model: Model
    history: list[dict[str, float]]

    @property
    def plots(self) -> Path:
        return self.directory / PLOTS


def prepare(directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Make ``directory`` ready for a new run. An existing non-empty folder is an error
    unless ``overwrite``, which removes rawtf's own entries in it (config, history, model,
    plots, checkpoints) and leaves anything else alone."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{directory}: run folder exists and is not empty (pass --resume to continue "
                "it or --overwrite to start it afresh)"
            )
        for name in OWN_ENTRIES:
            entry = directory / name
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.exists():
                entry.unlink()
    try:
        (directory / PLOTS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{directory}: cannot create run folder ({e.strerror or e})") from None
    return directory


def write_config(directory: str | os.PathLike, model: Model, settings: dict[str, Any]) -> Path:
    """Record what produces this run (model and ``settings``) in ``config.json``, before
    training starts, so that an interrupted run can be resumed with the same settings."""
    config = {
        "format": "rawtf-run",
        "rawtf_version": __version__,
        "model": model.config,
        **settings,
    }
    path = Path(directory) / CONFIG
    C.write_json_atomically(config, path)
    return path


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """A run folder's ``config.json``."""
    return C.read_json_config(Path(directory) / CONFIG, "rawtf-run", "run")


def save_run(directory: str | os.PathLike, model: Model, history, settings: dict[str, Any]) -> Path:
    """Write the model, its history and ``settings`` (what produced it) into ``directory``."""
    directory = Path(directory)
    C.save(model, directory / MODEL)
    rows = getattr(history, "epochs", history)
    C.write_json_atomically(list(rows), directory / HISTORY)
    write_config(directory, model, settings)
    return directory


def load_run(directory: str | os.PathLike) -> Run:
    """Load a run folder: its config, model and history."""
    directory = Path(directory)
    config = read_config(directory)
    model = C.load(directory / MODEL)
    try:
        history = json.loads((directory / HISTORY).read_text())
    except (OSError, ValueError):
        history = []
    return Run(directory, config, model, history)
