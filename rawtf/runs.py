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
    unless ``overwrite``, in which case only rawtf's own entries in it are replaced when
    the run is saved."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise ConfigError(
            f"{directory}: run folder exists and is not empty (pass --overwrite to start it afresh)"
        )
    try:
        (directory / PLOTS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{directory}: cannot create run folder ({e.strerror or e})") from None
    return directory


def save_run(directory: str | os.PathLike, model: Model, history, settings: dict[str, Any]) -> Path:
    """Write the model, its history and ``settings`` (what produced it) into ``directory``."""
    directory = Path(directory)
    C.save(model, directory / MODEL)
    rows = getattr(history, "epochs", history)
    C.write_json_atomically(list(rows), directory / HISTORY)
    config = {
        "format": "rawtf-run",
        "rawtf_version": __version__,
        "model": model.config,
        **settings,
    }
    C.write_json_atomically(config, directory / CONFIG)
    return directory


def load_run(directory: str | os.PathLike) -> Run:
    """Load a run folder: its config, model and history."""
    directory = Path(directory)
    config = C.read_json_config(directory / CONFIG, "rawtf-run", "run")
    model = C.load(directory / MODEL)
    try:
        history = json.loads((directory / HISTORY).read_text())
    except (OSError, ValueError):
        history = []
    return Run(directory, config, model, history)
