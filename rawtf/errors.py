"""Errors a user can cause. Each carries a one-line message naming what and where.

The CLI prints ``rawtf: error: <message>`` for any :class:`RawtfError` and exits 2.
"""

from __future__ import annotations

import numbers


class RawtfError(Exception):
    """Base class of every error rawtf raises on bad input."""


class DataError(RawtfError, ValueError):
    """A data file or an array is missing, malformed, or outside the expected range."""


class ShapeError(RawtfError, ValueError):
    """A tensor does not have the rank, size or channels a layer or model expects."""


class CheckpointError(RawtfError):
    """A saved model or checkpoint is missing, corrupt, or belongs to another architecture."""


class ConfigError(RawtfError, ValueError):
    """An argument or setting has a value rawtf does not accept (unknown model, bad rate, ...)."""


class TrainingError(RawtfError):
    """Training cannot go on: a non-finite loss, say. The last checkpoint stays intact."""


class TrainingInterrupted(RawtfError):
    """Training was interrupted (Ctrl-C); a checkpoint was saved at the last finished step."""


class UsageError(RawtfError):
    """Bad command-line usage: an unknown flag, a bad value, flags that contradict each other."""


def check_int(name: str, value, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``; otherwise a
    :class:`ConfigError` naming ``name``: "epochs must be an integer >= 1, got 0"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_fraction(name: str, value) -> float:
    """``value`` as a float if it is a real number (not a bool) in [0, 1); otherwise a
    :class:`ConfigError` naming ``name``: "dropout rate must lie in [0, 1), got 1.0"."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (number and 0.0 <= value < 1.0):
        raise ConfigError(f"{name} must lie in [0, 1), got {value if number else repr(value)}")
    return float(value)
