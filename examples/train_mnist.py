"""Train a rawtf model on MNIST and report its test accuracy.

    python examples/train_mnist.py                    # tutorial net, 3 epochs
    python examples/train_mnist.py --epochs 1 --seed 7
    python examples/train_mnist.py --help             # every flag (shared with `rawtf train`)

Reads MNIST from data/mnist/ of this checkout (or --data-dir). Prints one line per epoch and
ends with ``test_accuracy=0.XXXX test_loss=X.XXXX``.
"""

import sys

from rawtf.cli import (
    build_from_args,
    fit_from_args,
    load_training_data,
    parse_and_import,
    prepare_training,
    result_line,
    run_guarded,
    seconds_since_start,
    train_parser,
)


def main(argv=None) -> int:
    args = parse_and_import(train_parser("train_mnist.py", __doc__.splitlines()[0]), argv)
    prepare_training(args)  # --recipe, defaults, --deterministic, --distribute
    import rawtf

    train, validation, test = load_training_data(args)
    print(f"training {args.model} on {len(train[0])} images for {args.epochs} epoch(s)")
    model, optimizer = build_from_args(args, len(train[0]))  # --model, --optimizer, --lr, ...
    history = fit_from_args(args, model, optimizer, train, validation)
    result = rawtf.evaluate(model, test)
    wall = seconds_since_start(args)
    seconds = sum(history["seconds"])
    images = len(train[0]) * args.epochs
    per_epoch = seconds / args.epochs
    print(f"trained in {seconds:.1f}s ({per_epoch:.1f}s/epoch, {images / seconds:.0f} img/s)")
    print(f"wall time from TensorFlow import to the test result: {wall:.1f}s")
    print(result_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(lambda: main()))
