"""Training settings in one place: :class:`TrainConfig` holds every setting of a training
run with its default and its check, and the named recipes are TrainConfig values. The
command-line flags (:mod:`rawtf.flags`), a run folder's ``config.json`` and ``--resume`` all
go through it; :func:`resolve` decides, once, what a run's settings are. Needs no
TensorFlow.

A recipe is a complete set of settings chosen by measurement for a goal, on held-out
training images (``docs/results.md`` gives the runs behind them, and the one time a test
result was seen before a choice was final):

- ``fast``: the shortest wall time to 99.0% test accuracy on a 2-core CPU — ``small_bn``
  cut to two blocks (a 5x5 stride-2 first convolution, 16 and 32 filters), 2 epochs over
  the first 50,000 training images at batch 256, one-cycle Adam peaking at 3e-2, label
  smoothing 0.1, float32 (picked among candidates on the last 5,000 training images).
- ``best``: the highest single-model accuracy within 45 minutes — ``deep_bn`` with the
  fused batch-norm kernel, ±10° / ±10% / ±10% augmentation, 30 epochs of one-cycle Adam
  peaking at 3e-3, batch 128, on all 60,000 training images (fixed in advance and watched
  on a held-out split; ``validation_split=0.083333`` holds those 5,000 images out again).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rawtf._io import read_json_config
from rawtf.errors import CheckpointError, ConfigError, UsageError

# Kept in step with rawtf.networks, rawtf.optim and rawtf.schedules by tests; listed here
# so that flags can be checked before TensorFlow is imported.
MODEL_NAMES = ("tutorial", "kaggle", "three_conv", "deep_bn", "small_bn")
OPTIMIZER_NAMES = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULE_NAMES = ("constant", "cosine", "step", "onecycle")
INIT_NAMES = ("he", "glorot", "normal")
PRECISIONS = ("fp32", "bf16")
DISTRIBUTE_NAMES = ("mirrored", "multiworker")
RECIPE_NAMES = ("fast", "best")

#: The largest integer any setting accepts (seeds become int64 tensors, counts int32).
MAX_INT = 2**31 - 1

RUN_FORMAT = "rawtf-run"
RUN_CONFIG = "config.json"


@dataclasses.dataclass(frozen=True)
class Number:
    """A kind of numeric setting: how text converts to it and which values it accepts."""

    expected: str
    convert: Callable[[str], Any]
    accept: Callable[[Any], bool]

    def describe(self, value) -> str:
        """What was expected, said for ``value`` (the upper bound when it is too large)."""
        too_large = isinstance(value, (int, float)) and value > MAX_INT and self.convert is int
        return f"an integer <= {MAX_INT}" if too_large else self.expected

    def check(self, value) -> bool:
        if self.convert is int:
            return isinstance(value, int) and not isinstance(value, bool) and self.accept(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and self.accept(float(value))


POSITIVE_INT = Number("a positive integer", int, lambda v: 1 <= v <= MAX_INT)
NON_NEGATIVE_INT = Number("an integer >= 0", int, lambda v: 0 <= v <= MAX_INT)
POSITIVE_FLOAT = Number("a positive number", float, lambda v: 0 < v < math.inf)
FRACTION = Number("a number in [0, 1)", float, lambda v: 0.0 <= v < 1.0)
#: Elastic distortion's strength and smoothing, in pixels (rawtf.augment checks them too).
ELASTIC_ALPHA = Number("a number in [0, 1000]", float, lambda v: 0.0 <= v <= 1000.0)
ELASTIC_SIGMA = Number("a number in [0.5, 100]", float, lambda v: 0.5 <= v <= 100.0)


def setting(
    default: Any,
    help: str,
    *,
    number: Number | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    flag: bool = True,
    on_resume: str = "fixed",
):
    """A TrainConfig field: its default, help text, accepted values, whether it has a flag,
    and whether ``--resume`` may change it (``"fixed"``: it defines the run; ``"free"``: it
    only says how or how long to run; ``"given"``: where to read from, taken from the flags
    alone, the stored value being only a record)."""
    metadata = {
        "help": help,
        "number": number,
        "choices": choices,
        "metavar": metavar,
        "flag": flag,
        "on_resume": on_resume,
    }
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. ``batch_size`` and ``lr`` left at None take the
    model's own defaults (:meth:`with_model_defaults`); a run folder records the values
    used."""

    recipe: str | None = setting(
        None,
        "start from a named recipe's settings (fast: 99%% in seconds; best: highest accuracy "
        "in 45 min); flags given as well win",
        choices=RECIPE_NAMES,
    )
    model: str = setting("tutorial", "architecture", choices=MODEL_NAMES)
    model_settings: dict = setting(
        {},
        "a setting of the model, NAME=VALUE (repeat the flag for more), e.g. width=48; over "
        "the recipe's own, which a --model other than the recipe's drops (default: none)",
        metavar="NAME=VALUE",
    )
    init: str = setting("he", "weight initialiser", choices=INIT_NAMES)
    data: str = setting(
        "mnist",
        "MNIST or a Kaggle digit-recognizer CSV file",
        metavar="mnist|PATH.csv",
        on_resume="given",
    )
    data_dir: str | None = setting(
        None,
        "folder with the MNIST IDX files (default: $RAWTF_DATA_DIR, the checkout's "
        "data/mnist, ~/.cache/rawtf/mnist, else a download)",
        metavar="DIR",
        on_resume="given",
    )
    epochs: int = setting(3, "epochs to train in all", number=POSITIVE_INT, on_resume="free")
    batch_size: int | None = setting(
        None, "examples per step (default: the model's)", number=POSITIVE_INT
    )
    optimizer: str = setting("adam", "optimiser", choices=OPTIMIZER_NAMES)
    lr: float | None = setting(
        None, "(peak) learning rate (default: the model's)", number=POSITIVE_FLOAT
    )
    schedule: str = setting(
        "onecycle",
        "learning-rate schedule over the whole run (peaking at --lr)",
        choices=SCHEDULE_NAMES,
    )
    seed: int = setting(
        0,
        "seed of the initial weights, data order, augmentation, dropout and split",
        number=NON_NEGATIVE_INT,
    )
    train_limit: int | None = setting(
        None, "train on the first N images only (default: all)", number=POSITIVE_INT
    )
    validation_split: float = setting(
        0.0,
        "hold out this fraction of the training set (chosen by --seed) for validation",
        number=FRACTION,
    )
    augment: bool = setting(
        False, "random rotation (±10°), zoom (±10%%) and shift (±10%%) of training images"
    )
    elastic: float = setting(
        0.0,
        "elastic distortion of training images (Simard et al. 2003): the strength, in pixels, "
        "of a smoothed random displacement field, e.g. 34 (0: off); with --augment or alone",
        number=ELASTIC_ALPHA,
    )
    elastic_sigma: float = setting(
        4.0, "smoothing of the elastic displacement field, in pixels", number=ELASTIC_SIGMA
    )
    ema: float = setting(
        0.0,
        "keep a moving average of the weights with this momentum (e.g. 0.999) and end "
        "with it (0: off)",
        number=FRACTION,
    )
    label_smoothing: float = setting(
        0.0,
        "train against targets with this weight spread evenly over every class",
        number=FRACTION,
    )
    precision: str = setting(
        "fp32", "bf16: bfloat16 mixed precision, float32 weights and loss", choices=PRECISIONS
    )
    distribute: str | None = setting(
        None,
        "data-parallel training; --batch-size is then the global batch. mirrored: every "
        "local GPU (else the CPU); multiworker: one process per machine, the cluster named "
        "by $TF_CONFIG (each worker writes its own --out)",
        choices=DISTRIBUTE_NAMES,
        on_resume="free",
    )
    logdir: str | None = setting(
        None,
        "write TensorBoard summaries here (needs tensorboard)",
        metavar="DIR",
        on_resume="free",
    )
    deterministic: bool = setting(
        False, "bit-identical reruns: TensorFlow's op determinism (slower)", on_resume="free"
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _check(field, getattr(self, field.name))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "settings") -> TrainConfig:
        """A config from stored ``values`` (missing ones take their defaults); an unknown
        or ill-typed value is a :class:`ConfigError` naming ``source`` and the field."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: expected an object of settings, got {values!r}")
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"{source}: unknown setting {unknown[0]!r}")
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    def with_model_defaults(self) -> TrainConfig:
        """This config with ``batch_size`` and ``lr`` filled in from the model's defaults."""
        from rawtf.models import get_model_class

        model = get_model_class(self.model)
        return dataclasses.replace(
            self,
            batch_size=self.batch_size or model.default_batch_size,
            lr=self.lr or model.default_lr,
        )


def _check(field: dataclasses.Field, value) -> None:
    """Raise a :class:`ConfigError` unless ``value`` suits ``field``."""
    meta, name = field.metadata, field.name
    if value is None and field.default is None:
        return
    number, choices = meta["number"], meta["choices"]
    if number is not None:
        ok, expected = number.check(value), number.describe(value)
    elif choices is not None and name != "model":  # models may be registered by users
        ok, expected = value in choices, f"one of {', '.join(choices)}"
    elif isinstance(field.default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif field.default is dataclasses.MISSING:  # model_settings
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        expected = "an object of named settings"
    else:
        ok, expected = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{name} must be {expected}, got {value!r}")


SETTINGS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}

RECIPES: dict[str, TrainConfig] = {
    "fast": TrainConfig(
        recipe="fast",
        model="small_bn",
        model_settings={"width": 8, "blocks": 2, "stem_stride": 2},
        epochs=2,
        batch_size=256,
        lr=3e-2,
        label_smoothing=0.1,
        train_limit=50000,
    ),
    "best": TrainConfig(
        recipe="best",
        model="deep_bn",
        model_settings={"bn_fused": True},
        epochs=30,
        batch_size=128,
        lr=3e-3,
        augment=True,
    ),
}

#: One line on what each recipe is for.
RECIPE_SUMMARIES = {
    "fast": "99.0% test accuracy in the least wall time (seconds on 2 CPU cores)",
    "best": "the best single model within 45 minutes on 2 CPU cores",
}


def get_recipe(name: str) -> TrainConfig:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}") from None


def resolve(
    given: Mapping[str, Any],
    base: TrainConfig | None = None,
    stored: TrainConfig | None = None,
    source: str = "the stored run",
) -> TrainConfig:
    """The settings of a run: those ``given`` (flags) over a named recipe's, else over
    ``base`` (default :class:`TrainConfig`). Resuming, ``stored`` (the run's own settings)
    takes the place of both; a given setting that defines the run and differs from the
    stored one is a :class:`UsageError` naming both values, and the free ones (epochs,
    logging, determinism, devices) are applied. Where the data is read from is never
    taken from ``stored`` (a file anyone may edit): it is as given, else the default."""
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    if stored is not None:
        given = _with_model_settings(given, stored)
        for name, value in given.items():
            fixed = SETTINGS[name].metadata["on_resume"] == "fixed"
            if fixed and value != getattr(stored, name):
                raise UsageError(
                    f"{flag_name(name)} {value!r} contradicts {source}, which has "
                    f"{getattr(stored, name)!r} (resume it with its own settings, or train a "
                    "new run)"
                )
        where = {
            name: SETTINGS[name].default
            for name in SETTINGS
            if SETTINGS[name].metadata["on_resume"] == "given"
        }
        return dataclasses.replace(stored, **{**where, **given})
    recipe = given.get("recipe")
    start = get_recipe(recipe) if recipe else (base or TrainConfig())
    if given.get("model", start.model) != start.model:
        start = dataclasses.replace(start, model_settings={})  # they were the other model's
    return dataclasses.replace(start, **_with_model_settings(given, start))


def flag_name(name: str) -> str:
    """The command-line flag of setting ``name`` (``model_settings`` has one flag per setting)."""
    return "--model-setting" if name == "model_settings" else "--" + name.replace("_", "-")


def _with_model_settings(given: Mapping[str, Any], start: TrainConfig) -> dict[str, Any]:
    """``given`` with its model settings (if any) laid over ``start``'s."""
    given = dict(given)
    if isinstance(given.get("model_settings"), dict):
        given["model_settings"] = {**start.model_settings, **given["model_settings"]}
    return given


def read_run_config(directory: str | os.PathLike) -> dict[str, Any]:
    """A run folder's ``config.json`` as a dict, its format and the types of its fields
    checked (a wrong one is a :class:`CheckpointError` naming the file and the field)."""
    path = Path(directory) / RUN_CONFIG
    config = read_json_config(path, RUN_FORMAT, "run")
    for name, (kind, expected) in RUN_FIELDS.items():
        value = config.get(name)
        if value is not None and not kind(value):
            raise CheckpointError(f"{path}: field {name!r} is {_shown(value)}, expected {expected}")
    return config


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: The fields of a run's config.json other than ``train`` (checked by
#: :meth:`TrainConfig.from_dict`): a test of the value and what is expected.
RUN_FIELDS = {
    "rawtf_version": (lambda v: isinstance(v, str), "a version string"),
    "model": (lambda v: isinstance(v, dict), "an object of model settings"),
    "train": (lambda v: isinstance(v, dict), "an object of training settings"),
    "train_size": (lambda v: POSITIVE_INT.check(v), "a positive integer"),
    "train_sha256": (
        lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v),
        "64 hexadecimal digits",
    ),
}


def stored_config(directory: str | os.PathLike) -> TrainConfig:
    """The training settings a run folder records."""
    path = Path(directory) / RUN_CONFIG
    try:
        return TrainConfig.from_dict(read_run_config(directory).get("train"), str(path))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
