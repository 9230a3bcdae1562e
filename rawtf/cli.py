"""The ``rawtf`` command, and the one argparse builder it shares with the examples so that
a flag means the same everywhere.

Importing this module does not import TensorFlow: arguments are parsed first, then
TensorFlow is imported quietly unless ``--verbose``. Errors a user can cause print one line,
``rawtf: error: ...``, on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rawtf.errors import RawtfError

PROG = "rawtf"
EXIT_USAGE = 2


class UsageError(RawtfError):
    """Bad command-line usage (unknown flag, bad value)."""


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised rather than printed."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _number(convert, accept, expected: str):
    """An argparse type: ``convert`` the text, which must then pass ``accept``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_fraction = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


MODEL_NAMES = (
    "tutorial",
    "kaggle",
    "three_conv",
    "deep_bn",
    "small_bn",
)  # kept in step with rawtf.models by a test
RECIPE_NAMES = ("fast", "best")  # as rawtf.recipes.RECIPES, kept in step by a test
PRECISIONS = ("fp32", "bf16")
DISTRIBUTE_NAMES = ("mirrored", "multiworker")
INIT_NAMES = ("he", "glorot", "normal")
OPTIMIZER_NAMES = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULE_NAMES = ("constant", "cosine", "step", "onecycle")  # as rawtf.schedules.SCHEDULES


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own start-up messages"
    )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default="mnist",
        metavar="mnist|PATH.csv",
        help="MNIST (default) or a Kaggle digit-recognizer CSV file",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the MNIST IDX files (default: $RAWTF_DATA_DIR, the checkout's "
        "data/mnist, ~/.cache/rawtf/mnist, else a download)",
    )


def add_precision_argument(parser, default, help) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default=default, help=help)


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the commands that run a trained model: its precision, then the common ones."""
    add_precision_argument(
        parser,
        "fp32",
        "bf16: compute in bfloat16 (faster on CPUs with AVX-512 BF16; probabilities differ "
        "from fp32 by about 1e-2)",
    )
    add_common_arguments(parser)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags, shared by ``rawtf train`` and ``examples/train_mnist.py``.
    Flags left out take the ``--recipe``'s value if one is named, else the built-in default
    (see :data:`TRAIN_DEFAULTS`)."""
    parser.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        help="start from a named recipe's settings (fast: 99%% in seconds; best: highest "
        "accuracy in 45 min); flags given as well win",
    )
    parser.add_argument("--model", choices=MODEL_NAMES, help="architecture (default tutorial)")
    add_data_arguments(parser)
    parser.add_argument(
        "--epochs", type=_positive_int, metavar="N", help="epochs to train in all (default 3)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="examples per step (default: the model's, 128 for the tutorial net)",
    )
    parser.add_argument("--optimizer", choices=OPTIMIZER_NAMES, help="(default adam)")
    parser.add_argument(
        "--lr",
        type=_positive_float,
        metavar="F",
        help="(peak) learning rate (default: the model's, 1e-3 for the tutorial net)",
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULE_NAMES,
        help="learning-rate schedule over the whole run (default: onecycle, peaking at --lr)",
    )
    parser.add_argument("--init", default="he", choices=INIT_NAMES, help="weight initialiser")
    parser.add_argument("--seed", type=_non_negative_int, default=0, metavar="N")
    parser.add_argument(
        "--train-limit", type=_positive_int, metavar="N", help="train on the first N images only"
    )
    parser.add_argument(
        "--validation-split",
        type=_fraction,
        metavar="F",
        help="hold out this fraction of the training set (chosen by --seed) for validation",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        default=None,
        help="random rotation (±10°), zoom (±10%%) and shift (±10%%) of training images",
    )
    add_precision_argument(
        parser, None, "bf16: bfloat16 mixed precision, float32 weights and loss (default fp32)"
    )
    parser.add_argument(
        "--distribute",
        choices=DISTRIBUTE_NAMES,
        help="data-parallel training; --batch-size is then the global batch. mirrored: every "
        "local GPU (else the CPU); multiworker: one process per machine, the cluster named "
        "by $TF_CONFIG (each worker writes its own --out)",
    )
    parser.add_argument(
        "--logdir", metavar="DIR", help="write TensorBoard summaries here (needs tensorboard)"
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="bit-identical reruns: TensorFlow's op determinism (slower)",
    )
    add_common_arguments(parser)


def train_parser(
    prog: str | None = None, description: str | None = None
) -> argparse.ArgumentParser:
    """A parser holding exactly the training flags (for scripts that only train)."""
    parser = ArgumentParser(prog=prog, description=description)
    add_train_arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG, description="Train, evaluate and inspect rawtf models on MNIST."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train a model into a run folder")
    add_train_arguments(train)
    train.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to create")
    train.add_argument(
        "--overwrite", action="store_true", help="start an existing run folder afresh"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR from its last checkpoint, with its own settings",
    )
    train.add_argument(
        "--save-every-steps",
        type=_positive_int,
        metavar="N",
        help="also checkpoint every N steps (always after each epoch)",
    )

    evaluate = commands.add_parser(
        "evaluate", help="loss, accuracy, per-class accuracy, confusion matrix"
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    add_data_arguments(evaluate)
    add_inference_arguments(evaluate)

    predict = commands.add_parser("predict", help="classify your own digit pictures")
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="PNG, JPEG, BMP or GIF files")
    add_inference_arguments(predict)

    submit = commands.add_parser("submit", help="write a Kaggle submission.csv")
    submit.add_argument("run_dir", metavar="RUN_DIR")
    submit.add_argument("--test", required=True, metavar="TEST.csv", help="Kaggle test.csv")
    submit.add_argument("--out", required=True, metavar="SUBMISSION.csv")
    add_inference_arguments(submit)

    export = commands.add_parser("export", help="export a run's model as a SavedModel for serving")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("out", metavar="OUT", help="the SavedModel folder to write")
    add_inference_arguments(export)

    summary = commands.add_parser("summary", help="print a model's layers and parameter counts")
    summary.add_argument("--model", default="tutorial", choices=MODEL_NAMES)
    add_common_arguments(summary)

    explore = commands.add_parser("explore", help="data statistics, an image grid, label counts")
    add_data_arguments(explore)
    explore.add_argument("--out", required=True, metavar="DIR")
    add_common_arguments(explore)
    return parser


TRAIN_SETTINGS = (
    "recipe",
    "model",
    "model_settings",
    "init",
    "data",
    "data_dir",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "schedule",
    "seed",
    "train_limit",
    "validation_split",
    "augment",
    "precision",
)

#: What a training flag means when neither the command line nor a recipe sets it.
TRAIN_DEFAULTS: dict[str, Any] = {
    "model": "tutorial",
    "model_settings": {},
    "epochs": 3,
    "optimizer": "adam",
    "schedule": "onecycle",
    "validation_split": 0.0,
    "augment": False,
    "precision": "fp32",
}


def prepare_training(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> None:
    """Fill in what the flags left out — from ``--recipe``, then :data:`TRAIN_DEFAULTS` —
    switch on op determinism when asked, and make the ``--distribute`` strategy
    (``args.strategy``, None without it). With ``stored`` (a resumed run's settings)
    those settings win, except a larger ``--epochs`` given now. The model's own default
    learning rate and batch size are filled in by :func:`make_optimizer`."""
    if stored is not None:
        epochs = args.epochs
        for key in TRAIN_SETTINGS:
            if key in stored:
                setattr(args, key, stored[key])
        if epochs is not None:
            args.epochs = epochs
    if getattr(args, "recipe", None):
        from rawtf.recipes import get_recipe

        for key, value in get_recipe(args.recipe).flags().items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    # Made before any TensorFlow op runs (multi-worker collectives must be set up first)
    # and before anything is written.
    args.strategy = make_strategy(getattr(args, "distribute", None))


def load_labelled(args: argparse.Namespace):
    """``(train, test or None)`` from ``--data``: MNIST's two sets, or a labelled Kaggle
    CSV (which has no separate test set)."""
    from rawtf import data, kaggle

    if args.data == "mnist":
        return data.load_mnist(args.data_dir)
    images, labels = kaggle.load_kaggle_csv(args.data)
    if labels is None:
        raise UsageError(f"{args.data}: has no label column; training and evaluation need one")
    return (images, labels), None


def load_training_data(args: argparse.Namespace):
    """``(train, validation or None, test or None)`` array pairs as the flags ask."""
    from rawtf import data

    (x_train, y_train), test = load_labelled(args)
    if args.train_limit:
        x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    validation = None
    if args.validation_split:
        (x_train, y_train), validation = data.train_validation_split(
            x_train, y_train, args.validation_split, seed=args.seed
        )
    return (x_train, y_train), validation, test


def make_optimizer(args: argparse.Namespace, train_size: int):
    """The optimiser the flags ask for, its schedule spanning the whole run. Fills in the
    model's default ``--lr`` and ``--batch-size`` where they were not given."""
    from rawtf import data, optim, schedules
    from rawtf.models import get_model_class

    model_class = get_model_class(args.model)
    # Defaults are resolved here so that the run's config records what was used.
    if args.lr is None:
        args.lr = model_class.default_lr
    if args.batch_size is None:
        args.batch_size = model_class.default_batch_size
    total = data.steps_per_epoch(train_size, args.batch_size) * args.epochs
    rate = schedules.get_schedule(args.schedule, args.lr, total)
    return optim.get_optimizer(args.optimizer, learning_rate=rate)


def build_from_args(args, train_size: int):
    """``(model, optimizer)`` as the prepared flags describe them; with ``--distribute``
    both are made under the strategy's scope (``args.strategy``, from
    :func:`prepare_training`)."""
    import rawtf

    strategy = getattr(args, "strategy", None)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = rawtf.get_model(args.model, init=args.init, seed=args.seed, **args.model_settings)
        return model, make_optimizer(args, train_size)


def make_strategy(name: str | None):
    """The ``tf.distribute`` strategy ``--distribute`` names, or None; says how many
    replicas it has. ``multiworker`` reads the cluster from ``$TF_CONFIG``."""
    if name is None:
        return None
    import json
    import os

    from rawtf._tf import import_tensorflow

    tf = import_tensorflow()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        where = ""
    else:
        try:
            config = json.loads(os.environ.get("TF_CONFIG") or "null")
            task = config["task"]
            workers = len(config["cluster"]["worker"])
        except (ValueError, TypeError, KeyError):
            raise UsageError(
                "--distribute multiworker: set TF_CONFIG to the cluster and this worker's task, "
                '\'{"cluster": {"worker": ["host1:port", ...]}, "task": {"type": "worker", '
                '"index": 0}}\''
            ) from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        where = f" (worker {task.get('index', 0)} of {workers})"
    devices = ", ".join(strategy.extended.worker_devices)
    print(f"distributing over {strategy.num_replicas_in_sync} replica(s){where}: {devices}")
    return strategy


def fit_from_args(args, model, optimizer, train, validation, **fit_options):
    """Train ``model`` on ``train`` as the prepared flags say; ``fit_options`` go to
    :func:`rawtf.fit` (checkpointing, resuming). Returns the history."""
    import rawtf

    return rawtf.fit(
        model,
        optimizer,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=validation,
        seed=args.seed,
        augment=args.augment,
        logdir=args.logdir,
        precision=args.precision,
        strategy=getattr(args, "strategy", None),
        **fit_options,
    )


def seconds_since_start(args) -> float:
    """Wall seconds since TensorFlow finished importing (see :func:`parse_and_import`)."""
    return time.perf_counter() - getattr(args, "clock_start", time.perf_counter())


def result_line(result: dict[str, float]) -> str:
    """The line every script that reports a result ends with."""
    return f"test_accuracy={result['accuracy']:.4f} test_loss={result['loss']:.4f}"


def _train(args: argparse.Namespace) -> int:
    import rawtf
    from rawtf import runs

    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other")
    stored = runs.read_config(args.out).get("train") if args.resume else None
    prepare_training(args, stored)
    train, validation, test = load_training_data(args)
    run_dir = Path(args.out) if args.resume else runs.prepare(args.out, overwrite=args.overwrite)
    model, optimizer = build_from_args(args, len(train[0]))
    settings = {
        "train": {key: getattr(args, key) for key in TRAIN_SETTINGS},
        "train_size": len(train[0]),
    }
    runs.write_config(run_dir, model, settings)
    recipe = f" (recipe {args.recipe})" if args.recipe else ""
    print(f"training {args.model} on {len(train[0])} images for {args.epochs} epoch(s){recipe}")
    try:
        history = fit_from_args(
            args,
            model,
            optimizer,
            train,
            validation,
            checkpoint_dir=str(run_dir / runs.CHECKPOINTS),
            save_every_steps=args.save_every_steps,
            resume=bool(args.resume),
        )
    except rawtf.TrainingInterrupted as e:
        raise rawtf.TrainingInterrupted(
            f"{e}; continue with: rawtf train --out {run_dir} --resume"
        ) from None
    result = rawtf.evaluate(model, test) if test is not None else None
    seconds = seconds_since_start(args)
    runs.save_run(run_dir, model, history, settings)
    _try_plot(lambda plots: plots.plot_history(history, run_dir / runs.PLOTS / "history.png"))
    print(f"saved run to {run_dir}")
    if result is not None:
        print(f"wall time from TensorFlow import to the test result: {seconds:.1f}s")
        print(result_line(result))
    return 0


def _try_plot(draw) -> None:
    """Draw a figure when matplotlib is installed; say so once when it is not."""
    from rawtf.errors import ConfigError

    try:
        from rawtf import plots

        draw(plots)
    except ConfigError as e:
        print(f"note: {e}")


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    import rawtf
    from rawtf import metrics, runs

    run = runs.load_run(args.run_dir)
    train, test = load_labelled(args)
    x, y = test if test is not None else train
    result = rawtf.evaluate(run.model, (x, y), precision=args.precision)
    probabilities, predictions = rawtf.predict(run.model, x, precision=args.precision)
    matrix = metrics.confusion_matrix(y, predictions, run.model.num_classes)
    print(f"evaluated {run.config['model']['model']} on {len(x)} images")
    for label in range(len(matrix)):
        total = matrix[label].sum()
        share = matrix[label, label] / total if total else float("nan")
        print(f"class {label}: accuracy={share:.4f} ({matrix[label, label]}/{total})")
    plots_dir = run.plots
    _try_plot(lambda p: p.plot_confusion_matrix(matrix, plots_dir / "confusion_matrix.png"))
    _try_plot(
        lambda p: p.plot_most_confident_errors(
            x, np.asarray(y), probabilities, plots_dir / "most_confident_errors.png"
        )
    )
    print(result_line(result))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import rawtf
    from rawtf import images, runs

    run = runs.load_run(args.run_dir)
    pictures = images.load_digit_images(args.images)
    probabilities, labels = rawtf.predict(run.model, pictures, precision=args.precision)
    for path, label, p in zip(args.images, labels, probabilities, strict=True):
        print(f"{path}\t{label}\t{p[label]:.4f}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    import rawtf
    from rawtf import kaggle, runs

    run = runs.load_run(args.run_dir)
    pictures, _ = kaggle.load_kaggle_csv(args.test)
    _, labels = rawtf.predict(run.model, pictures, precision=args.precision)
    kaggle.write_submission(labels, args.out)
    print(f"wrote {len(labels)} predictions to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rawtf import checkpoint, runs

    run = runs.load_run(args.run_dir)
    checkpoint.export_saved_model(run.model, args.out, precision=args.precision)
    print(
        f"exported SavedModel ({args.precision}) to {args.out} "
        "(signatures serving_default, serving_uint8)"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    import rawtf

    rawtf.get_model(args.model).summary()
    return 0


def _explore(args: argparse.Namespace) -> int:

    import numpy as np

    from rawtf import checkpoint

    train, test = load_labelled(args)
    x, y = train
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = np.bincount(y, minlength=10)
    stats = {
        "source": args.data,
        "train_images": int(len(x)),
        "test_images": int(len(test[0])) if test is not None else 0,
        "image_shape": list(x.shape[1:]),
        "missing_values": 0,  # the readers reject files with missing values
        "pixel_mean": float(x.mean() / 255.0),
        "pixel_std": float(x.std() / 255.0),
        "ink_fraction": float((x > 0).mean()),
        "label_counts": {str(k): int(c) for k, c in enumerate(counts)},
    }
    for key, value in stats.items():
        print(f"{key}: {value}")
    checkpoint.write_json_atomically(stats, out / "stats.json")
    _try_plot(
        lambda p: p.plot_image_grid(x[:120], out / "first_images.png", labels=y[:120], columns=12)
    )
    _try_plot(lambda p: p.plot_label_distribution(y, out / "label_distribution.png"))
    print(f"wrote {out / 'stats.json'} and figures to {out}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "submit": _submit,
    "export": _export,
    "summary": _summary,
    "explore": _explore,
}


def run_guarded(function: Callable[[], int]) -> int:
    """Run ``function``; a :class:`RawtfError` becomes one ``rawtf: error:`` line and
    status 2, Ctrl-C status 130."""
    from rawtf.errors import TrainingInterrupted

    try:
        return function()
    except TrainingInterrupted as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 130
    except RawtfError as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def start_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow (quietly unless ``--verbose``) and start the clock that
    :func:`seconds_since_start` reads."""
    from rawtf._tf import import_tensorflow

    import_tensorflow(verbose=getattr(args, "verbose", False))
    args.clock_start = time.perf_counter()


def parse_and_import(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> Any:
    """Parse ``argv``, then :func:`start_tensorflow`."""
    args = parser.parse_args(argv)
    start_tensorflow(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def run() -> int:
        args = parser.parse_args(argv)
        if args.version:
            from rawtf import __version__

            print(f"rawtf {__version__}")
            return 0
        if args.command is None:
            raise UsageError(f"{PROG}: a command is required ({', '.join(COMMANDS)}); see --help")
        start_tensorflow(args)
        return COMMANDS[args.command](args)

    return run_guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
