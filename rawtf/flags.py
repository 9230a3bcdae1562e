"""The command-line face of :class:`rawtf.config.TrainConfig`: one argparse builder for the
training flags that ``rawtf train`` and the examples share (so a flag means the same
everywhere), and the steps every script takes — parse, then import TensorFlow quietly, then
resolve the settings. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from rawtf.config import (
    POSITIVE_INT,
    SETTINGS,
    Number,
    TrainConfig,
    flag_name,
    resolve,
    stored_config,
)
from rawtf.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised as one-line :class:`UsageError` s (the
    caller prints ``rawtf: error: ...``, the one prefix) and whose description and
    examples keep their line breaks."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def number_type(number: Number):
    """An argparse type for a :class:`~rawtf.config.Number` setting."""

    def parse(text: str):
        try:
            value = number.convert(text)
        except ValueError:
            value = None
        if value is None or not number.check(value):
            raise argparse.ArgumentTypeError(
                f"expected {number.describe(value) if value is not None else number.expected}, "
                f"got {text!r}"
            )
        return value

    return parse


def _shown(default, help_text: str) -> str:
    if "default" in help_text:
        return ""
    if default is None:
        return " (default: none)"
    if isinstance(default, bool):
        return " (default: on)" if default else " (default: off)"
    return f" (default: {default})"


def model_setting(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` as ``(name, value)``: the value a JSON number, true or false, else
    the text itself."""
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        return name, value
    if not isinstance(parsed, (int, float, bool)):
        return name, value
    if isinstance(parsed, float) and not math.isfinite(parsed):
        raise argparse.ArgumentTypeError(f"expected a finite number for {name}, got {value!r}")
    return name, parsed


def add_setting(parser: argparse.ArgumentParser, name: str, default) -> None:
    """The flag of setting ``name``, showing ``default``. Flags left out do not appear in
    the parsed namespace, so that only settings given on the command line override."""
    meta = SETTINGS[name].metadata
    flag = flag_name(name)
    options: dict[str, Any] = {
        "default": argparse.SUPPRESS,
        "help": meta["help"] + _shown(default, meta["help"]),
    }
    if name == "model_settings":  # one flag per setting, gathered into a dict
        parser.add_argument(
            flag,
            dest=name,
            action="append",
            type=model_setting,
            metavar=meta["metavar"],
            **options,
        )
        return
    if isinstance(SETTINGS[name].default, bool):
        if name == "deterministic":
            parser.add_argument(flag, action="store_true", **options)
        else:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        return
    if meta["number"] is not None:
        options["type"] = number_type(meta["number"])
        options["metavar"] = "N" if meta["number"].convert is int else "F"
    if meta["choices"] is not None:
        options["choices"] = meta["choices"]
    if meta["metavar"]:
        options["metavar"] = meta["metavar"]
    parser.add_argument(flag, **options)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own start-up messages"
    )


def add_train_arguments(
    parser: argparse.ArgumentParser, defaults: TrainConfig | None = None, out_required=False
) -> None:
    """Every training flag (one per :class:`TrainConfig` setting that has one), then the
    run-folder flags ``--out``, ``--resume``, ``--overwrite``, ``--save-every-steps``."""
    defaults = defaults or TrainConfig()
    for name, field in SETTINGS.items():
        if field.metadata["flag"]:
            add_setting(parser, name, getattr(defaults, name))
    parser.add_argument(
        "--out",
        required=out_required,
        metavar="RUN_DIR",
        help="the run folder to write (model, config, history, checkpoints, plots)"
        + ("" if out_required else "; none by default"),
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its own settings",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start an existing run folder afresh"
    )
    parser.add_argument(
        "--save-every-steps",
        type=number_type(POSITIVE_INT),
        metavar="N",
        help="also checkpoint every N steps (default: only after each epoch)",
    )
    add_verbose_argument(parser)


def train_parser(
    prog: str, description: str | None = None, defaults: TrainConfig | None = None
) -> ArgumentParser:
    """A parser holding exactly the training flags, for scripts that train."""
    parser = ArgumentParser(prog=prog, description=description)
    add_train_arguments(parser, defaults)
    return parser


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line (flags left out are absent)."""
    given = {name: value for name, value in vars(args).items() if name in SETTINGS}
    if "model_settings" in given:
        given["model_settings"] = dict(given["model_settings"])
    return given


def train_config(args: argparse.Namespace, defaults: TrainConfig | None = None) -> TrainConfig:
    """The run's settings from the parsed flags: over a recipe or ``defaults``, or, with
    ``--resume``, over the settings stored in the run folder ``--out``."""
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other")
    if (args.resume or args.overwrite) and not args.out:
        raise UsageError(f"--{'resume' if args.resume else 'overwrite'} needs --out RUN_DIR")
    stored = stored_config(args.out) if args.resume else None
    source = f"the run in {args.out}"
    return resolve(given_settings(args), defaults, stored, source)


def run_training(args: argparse.Namespace, defaults: TrainConfig | None = None):
    """:func:`rawtf.runs.train_run` as the parsed flags (see :func:`parse_and_start`) ask;
    returns its :class:`~rawtf.runs.TrainResult`."""
    from rawtf.runs import train_run

    return train_run(
        train_config(args, defaults),
        args.out,
        overwrite=args.overwrite,
        resume=args.resume,
        save_every_steps=args.save_every_steps,
        started=args.clock_start,
    )


def start_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow (quietly unless ``--verbose``) and start the clock that
    ``args.clock_start`` keeps (wall time is counted from here)."""
    from rawtf._tf import import_tensorflow

    import_tensorflow(verbose=getattr(args, "verbose", False))
    args.clock_start = time.perf_counter()


def parse_and_start(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> Any:
    """Parse ``argv``, then :func:`start_tensorflow`."""
    args = parser.parse_args(argv)
    start_tensorflow(args)
    return args


def defaults_with(**changes: Any) -> TrainConfig:
    """:class:`TrainConfig` defaults with ``changes``, for scripts with defaults of their own."""
    return dataclasses.replace(TrainConfig(), **changes)
