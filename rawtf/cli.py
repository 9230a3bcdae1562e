"""The ``rawtf`` command: argparse and thin commands over :mod:`rawtf.runs`.

Importing this module does not import TensorFlow: arguments are parsed first, then
TensorFlow is imported quietly unless ``--verbose``. Errors a user can cause print one line,
``rawtf: error: ...``, on stderr and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rawtf import flags
from rawtf.config import MODEL_NAMES, PRECISIONS
from rawtf.errors import RawtfError, TrainingInterrupted, UsageError

PROG = "rawtf"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def result_line(result: dict[str, float]) -> str:
    """The line every script that reports a result ends with."""
    return f"test_accuracy={result['accuracy']:.4f} test_loss={result['loss']:.4f}"


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_setting(parser, "data", "mnist")
    flags.add_setting(parser, "data_dir", None)
    parser.set_defaults(data="mnist", data_dir=None)


def _add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the commands that run a trained model: its precision, --verbose."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help=(
            "bf16: compute in bfloat16 (faster on CPUs with AVX-512 BF16; probabilities differ "
            "from fp32 by about 1e-2) (default: fp32)"
        ),
    )
    flags.add_verbose_argument(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = flags.ArgumentParser(
        prog=PROG, description="Train, evaluate and inspect rawtf models on MNIST."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=flags.ArgumentParser
    )
    train = commands.add_parser("train", help="train a model into a run folder")
    flags.add_train_arguments(train, out_required=True)

    evaluate = commands.add_parser(
        "evaluate", help="loss, accuracy, per-class accuracy, confusion matrix"
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    _add_data_arguments(evaluate)
    _add_inference_arguments(evaluate)

    predict = commands.add_parser("predict", help="classify your own digit pictures")
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="PNG, JPEG, BMP or GIF files")
    _add_inference_arguments(predict)

    submit = commands.add_parser("submit", help="write a Kaggle submission.csv")
    submit.add_argument("run_dir", metavar="RUN_DIR")
    submit.add_argument("--test", required=True, metavar="TEST.csv", help="Kaggle test.csv")
    submit.add_argument("--out", required=True, metavar="SUBMISSION.csv")
    _add_inference_arguments(submit)

    export = commands.add_parser("export", help="export a run's model as a SavedModel for serving")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("out", metavar="OUT", help="the SavedModel folder to write")
    _add_inference_arguments(export)

    summary = commands.add_parser("summary", help="print a model's layers and parameter counts")
    summary.add_argument("--model", default="tutorial", choices=MODEL_NAMES)
    flags.add_verbose_argument(summary)

    explore = commands.add_parser("explore", help="data statistics, an image grid, label counts")
    _add_data_arguments(explore)
    explore.add_argument("--out", required=True, metavar="DIR")
    flags.add_verbose_argument(explore)
    return parser


def _train(args: argparse.Namespace) -> int:
    result = flags.run_training(args)
    print(f"saved run to {result.directory}")
    if result.test is not None:
        print(f"wall time from TensorFlow import to the test result: {result.seconds:.1f}s")
        print(result_line(result.test))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rawtf import runs

    run = runs.load_run(args.run_dir)
    report = runs.evaluate_run(run, args.data, args.data_dir, args.precision)
    print(f"evaluated {run.config['model']['model']} on {report.result['count']} images")
    for label, share in enumerate(report.per_class):
        row = report.confusion[label]
        print(f"class {label}: accuracy={share:.4f} ({row[label]}/{row.sum()})")
    print(result_line(report.result))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from rawtf import images, metrics, runs

    run = runs.load_run(args.run_dir)
    pictures = images.load_digit_images(args.images)
    probabilities, labels = metrics.predict(run.model, pictures, precision=args.precision)
    for path, label, p in zip(args.images, labels, probabilities, strict=True):
        print(f"{path}\t{label}\t{p[label]:.4f}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from rawtf import runs

    run = runs.load_run(args.run_dir)
    labels = runs.write_submission(run.model, args.test, args.out, args.precision)
    print(f"wrote {len(labels)} predictions to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rawtf import export, runs

    run = runs.load_run(args.run_dir)
    export.export_saved_model(run.model, args.out, precision=args.precision)
    print(
        f"exported SavedModel ({args.precision}) to {args.out} "
        "(signatures serving_default, serving_uint8)"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    from rawtf import models

    models.get_model(args.model).summary()
    return 0


def _explore(args: argparse.Namespace) -> int:
    from rawtf import runs

    stats = runs.explore_data(args.data, args.data_dir, args.out)
    for key, value in stats.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out}/stats.json and figures to {args.out}")
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
    status 2, Ctrl-C status 130. Scripts end with ``sys.exit(run_guarded(main))``."""
    try:
        return function()
    except TrainingInterrupted as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RawtfError as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def run() -> int:
        args = parser.parse_args(argv)
        if args.version:
            from rawtf._version import __version__

            print(f"rawtf {__version__}")
            return 0
        if args.command is None:
            raise UsageError(f"{PROG}: a command is required ({', '.join(COMMANDS)}); see --help")
        flags.start_tensorflow(args)
        return COMMANDS[args.command](args)

    return run_guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
