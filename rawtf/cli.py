"""The ``rawtf`` command: argparse and thin commands over :mod:`rawtf.runs`.

Importing this module does not import TensorFlow: arguments are parsed first, then
TensorFlow is imported quietly unless ``--verbose``. Errors a user can cause print one line,
``rawtf: error: ...``, on stderr and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rawtf import flags
from rawtf.config import (
    MODEL_NAMES,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    PRECISIONS,
    Number,
)
from rawtf.errors import RawtfError, TrainingInterrupted, UsageError

PROG = "rawtf"
PORT = Number("a port number 1-65535", int, lambda v: 1 <= v <= 65535)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def result_line(result: dict[str, float]) -> str:
    """The line every script that reports a result ends with."""
    return f"test_accuracy={result['accuracy']:.4f} test_loss={result['loss']:.4f}"


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_setting(parser, "data", "mnist")
    flags.add_setting(parser, "data_dir", None)
    parser.set_defaults(data="mnist", data_dir=None)


def _add_run_dir(parser: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        parser.add_argument(
            "run_dir", metavar="RUN_DIR", nargs="+",
            help="run folders (rawtf train --out) or exported SavedModels; several make an "
            "ensemble, their probabilities averaged",
        )  # fmt: skip
        return
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run folder written by rawtf train --out"
    )


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


def _add_tta_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tta", type=flags.number_type(NON_NEGATIVE_INT), default=0, metavar="K",
        help="test-time augmentation: average each model over every image and K warped "
        "copies (random rotation, zoom and shift, the same for every run) (default: 0)",
    )  # fmt: skip


#: The serve command's numeric flags: flag, kind, default, metavar, help.
SERVE_NUMBERS = (
    ("--max-batch", POSITIVE_INT, 256, "N", "most examples per forward call"),
    ("--batch-wait-ms", POSITIVE_FLOAT, 2.0, "MS", "how long a request waits for company"),
    ("--max-queue", POSITIVE_INT, 1024, "N", "requests that may wait; more get 503"),
    ("--max-body-mb", POSITIVE_FLOAT, 4.0, "MB", "largest request body accepted, in MB"),
    ("--timeout", POSITIVE_FLOAT, 10.0, "S", "seconds a request may wait for its answer"),
)


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    number = flags.number_type
    parser.add_argument(
        "model", metavar="RUN_DIR|SAVEDMODEL", help="a run folder or an exported SavedModel"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=number(PORT), default=8501, metavar="N", help="port (default: 8501)"
    )
    parser.add_argument(
        "--model-name",
        default="rawtf",
        metavar="NAME",
        help="the NAME in /v1/models/NAME (default: rawtf)",
    )
    parser.add_argument(
        "--no-batching", action="store_true", help="run each request alone (default: batch)"
    )
    for flag, kind, default, metavar, text in SERVE_NUMBERS:
        parser.add_argument(
            flag, type=number(kind), default=default, metavar=metavar,
            help=f"{text} (default: {default})",
        )  # fmt: skip
    flags.add_verbose_argument(parser)


def _add_show_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--show",
        metavar="FILE.png",
        help="also draw the pictures as the model sees them, with digit and confidence",
    )


#: Each command: its one-line help, its description, and examples.
COMMAND_TEXTS = {
    "train": (
        "train a model into a run folder",
        "Train a model on MNIST (or a Kaggle CSV) into a run folder: its settings\n"
        "(config.json), checkpoints, the finished model, its history and plots. Flags left\n"
        "out take a recipe's values (--recipe) or the defaults shown. Ctrl-C saves a\n"
        "checkpoint; --resume continues from it with the run's own settings.",
        "rawtf train --out runs/first\n"
        "rawtf train --recipe fast --out runs/fast\n"
        "rawtf train --model deep_bn --epochs 30 --augment --validation-split 0.1 --out runs/bn\n"
        "rawtf train --out runs/bn --resume --epochs 40",
    ),
    "evaluate": (
        "loss, accuracy, per-class accuracy, confusion matrix",
        "Evaluate a run's model on the MNIST test set (or every row of a labelled Kaggle\n"
        "CSV): loss, accuracy and each class's accuracy, plus the confusion matrix and the\n"
        "most confident mistakes drawn into RUN_DIR/plots. Several runs are an ensemble\n"
        "(their probabilities averaged): each member's result, how many mistakes they\n"
        "share, and the images every member gets wrong (shared_mistakes.png), then the\n"
        "ensemble's.",
        "rawtf evaluate runs/first\nrawtf evaluate runs/first --data train.csv --precision bf16\n"
        "rawtf evaluate runs/a runs/b runs/c --plots ensemble/   # an ensemble\n"
        "rawtf evaluate runs/best --tta 8   # each image and 8 warped copies",
    ),
    "predict": (
        "classify your own digit pictures",
        "Classify pictures of digits (any size; dark ink on light paper or the reverse):\n"
        "each is brought to MNIST's style first. Prints file, digit and confidence per\n"
        "picture; --show draws them as the model sees them.",
        "rawtf predict runs/first my_seven.png photo_of_a_three.jpg\n"
        "rawtf predict runs/first *.png --show what_the_model_sees.png\n"
        "rawtf predict runs/a runs/b seven.png   # an ensemble of two runs",
    ),
    "submit": (
        "write a Kaggle submission.csv",
        "Predict every row of a Kaggle digit-recognizer test.csv and write the submission\n"
        "(ImageId,Label).",
        "rawtf submit runs/kaggle --test test.csv --out submission.csv\n"
        "rawtf submit runs/k1 runs/k2 runs/k3 --test test.csv --out submission.csv",
    ),
    "export": (
        "export a run's model as a SavedModel for serving",
        "Export a run's model as a SavedModel that plain TensorFlow and TF Serving load\n"
        "without rawtf: signature serving_default takes float32 images [N, 28, 28, 1] in\n"
        "[0, 1], serving_uint8 uint8 pixels [N, 28, 28], serving_image encoded pictures\n"
        "(PNG, JPEG, BMP, GIF; any size, made MNIST-style in the graph).",
        "rawtf export runs/first exported/1\nrawtf export runs/first exported/1 --precision bf16\n"
        "rawtf export runs/first digits.tflite --format tflite --quantize",
    ),
    "serve": (
        "serve a model over HTTP, as TF Serving does",
        "Serve a run's model (exported on the fly) or a SavedModel over TF Serving's REST\n"
        "API: GET /v1/models/NAME, GET /v1/models/NAME/metadata, POST\n"
        "/v1/models/NAME:predict (signatures serving_default, serving_uint8, serving_image;\n"
        "row and columnar forms), plus /healthz and Prometheus /metrics. Concurrent\n"
        "requests are batched into one forward call. Needs the serve extra.",
        "rawtf serve runs/first\n"
        "rawtf serve exported/1 --host 0.0.0.0 --port 8501 --model-name digits\n"
        'curl -d \'{"instances": [[[0, ...]]], "signature_name": "serving_uint8"}\' \\\n'
        "    localhost:8501/v1/models/rawtf:predict",
    ),
    "summary": (
        "print a model's layers and parameter counts",
        "Print a built-in model's layers, output shapes and parameter counts (computed\n"
        "from the shapes alone; TensorFlow is not started).",
        "rawtf summary --model deep_bn",
    ),
    "explore": (
        "data statistics, an image grid, label counts",
        "Describe a labelled data set: statistics (written to OUT/stats.json), a grid of\n"
        "its first images and the label counts (OUT/*.png).",
        "rawtf explore --out explore\nrawtf explore --data train.csv --out explore-kaggle",
    ),
}


def _command(commands, name: str) -> argparse.ArgumentParser:
    short, description, examples = COMMAND_TEXTS[name]
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples.splitlines())
    return commands.add_parser(name, help=short, description=description, epilog=epilog)


def build_parser() -> argparse.ArgumentParser:
    parser = flags.ArgumentParser(
        prog=PROG,
        description="Train, evaluate and inspect rawtf models on MNIST.",
        epilog="'rawtf COMMAND --help' describes a command, with examples.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=flags.ArgumentParser
    )
    flags.add_train_arguments(_command(commands, "train"), out_required=True)

    evaluate = _command(commands, "evaluate")
    _add_run_dir(evaluate, several=True)
    _add_data_arguments(evaluate)
    evaluate.add_argument(
        "--plots", metavar="DIR",
        help="where the figures go (default: the run's plots/; none for an ensemble)",
    )  # fmt: skip
    _add_tta_argument(evaluate)
    _add_inference_arguments(evaluate)

    predict = _command(commands, "predict")
    predict.add_argument(
        "inputs", metavar="RUN_DIR|IMAGE", nargs="+",
        help="run folders or SavedModels (folders; several make an ensemble), then PNG, "
        "JPEG, BMP or GIF files",
    )  # fmt: skip
    _add_show_argument(predict)
    _add_tta_argument(predict)
    _add_inference_arguments(predict)

    submit = _command(commands, "submit")
    _add_run_dir(submit, several=True)
    submit.add_argument("--test", required=True, metavar="TEST.csv", help="Kaggle test.csv")
    submit.add_argument(
        "--out", required=True, metavar="SUBMISSION.csv", help="the submission file to write"
    )
    _add_tta_argument(submit)
    _add_inference_arguments(submit)

    export = _command(commands, "export")
    _add_run_dir(export)
    export.add_argument(
        "out", metavar="OUT", help="the SavedModel folder (or, with tflite, the file) to write"
    )
    export.add_argument(
        "--format", choices=("savedmodel", "tflite"), default="savedmodel",
        help="SavedModel, or a TensorFlow Lite file without serving_image (default: savedmodel)",
    )  # fmt: skip
    export.add_argument(
        "--quantize", action="store_true",
        help="tflite only: int8 weights, dynamic-range quantisation (default: float32)",
    )  # fmt: skip
    _add_inference_arguments(export)

    _add_serve_arguments(_command(commands, "serve"))

    summary = _command(commands, "summary")
    summary.add_argument(
        "--model", default="tutorial", choices=MODEL_NAMES, help="architecture (default: tutorial)"
    )

    explore = _command(commands, "explore")
    _add_data_arguments(explore)
    explore.add_argument(
        "--out", required=True, metavar="DIR", help="the folder for stats.json and the figures"
    )
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

    several = len(args.run_dir) > 1
    target = runs.load_models(args.run_dir) if several else runs.load_run(args.run_dir[0])
    report = runs.evaluate_run(
        target, args.data, args.data_dir, args.precision, plots=args.plots, tta=args.tta
    )
    for path, member in zip(args.run_dir, report.members, strict=False):
        print(f"member {path}: {result_line(member)}")
    if report.overlap is not None:
        print(report.overlap.summary())
    what = f"an ensemble of {len(args.run_dir)}" if several else target.config["model"]["model"]
    views = f" and {args.tta} warped copies of each" if args.tta else ""
    print(f"evaluated {what} on {report.result['count']} images{views}")
    for label, share in enumerate(report.per_class):
        row = report.confusion[label]
        print(f"class {label}: accuracy={share:.4f} ({row[label]}/{row.sum()})")
    print(result_line(report.result))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from rawtf import runs

    inputs = args.inputs
    count = next((i for i, p in enumerate(inputs) if not Path(p).is_dir()), len(inputs))
    if any(Path(p).is_dir() for p in inputs[count:]):
        raise UsageError("give the run folders (or SavedModels) first, then the pictures")
    count = max(count, 1)  # a first argument that is no folder is reported by the loader
    folders, pictures = inputs[:count], inputs[count:]
    if not pictures:
        raise UsageError("no pictures given after the run folder(s)")
    models = runs.load_models(folders)
    runs.predict_pictures(models, pictures, args.precision, args.show, tta=args.tta)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from rawtf import runs

    models = runs.load_models(args.run_dir)
    labels = runs.write_submission(models, args.test, args.out, args.precision, args.tta)
    print(f"wrote {len(labels)} predictions to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rawtf import export, runs

    run = runs.load_run(args.run_dir)
    if args.format == "tflite":
        export.export_tflite(run.model, args.out, args.quantize, precision=args.precision)
        kind = "dynamic-range int8 weights" if args.quantize else "float32"
        print(f"wrote {args.out}: TFLite ({kind}; signatures serving_default, serving_uint8)")
        return 0
    if args.quantize:
        raise UsageError("--quantize needs --format tflite")
    export.export_saved_model(run.model, args.out, precision=args.precision)
    print(
        f"exported SavedModel ({args.precision}) to {args.out} "
        "(signatures serving_default, serving_uint8, serving_image)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import tempfile

    from rawtf import server

    server.require_extra()
    settings = server.Settings(
        model_name=args.model_name,
        max_batch=args.max_batch,
        batch_wait=args.batch_wait_ms / 1000,
        batching=not args.no_batching,
        max_queue=args.max_queue,
        max_body=int(args.max_body_mb * 2**20),
        timeout=args.timeout,
    )
    with tempfile.TemporaryDirectory(prefix="rawtf-serve-") as folder:
        loaded = server.load_servable(args.model, Path(folder))
        server.run(loaded, settings, args.host, args.port)
    return 0


def _summary(args: argparse.Namespace) -> int:
    from rawtf import architectures, specs

    layers = architectures.LAYERS[args.model](architectures.DEFAULTS[args.model], 10)
    print(specs.summary_text(args.model, layers, (28, 28, 1)))
    return 0


def _explore(args: argparse.Namespace) -> int:
    from rawtf import runs

    stats = runs.explore_data(args.data, args.data_dir, args.out)
    for key, value in stats.items():
        print(f"{key}: {value}")
    return 0


#: Commands that answer without importing TensorFlow.
TENSORFLOW_FREE = ("summary",)

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "submit": _submit,
    "export": _export,
    "serve": _serve,
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
            raise UsageError(f"a command is required ({', '.join(COMMANDS)}); see rawtf --help")
        if args.command not in TENSORFLOW_FREE:
            flags.start_tensorflow(args)
        return COMMANDS[args.command](args)

    return run_guarded(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
