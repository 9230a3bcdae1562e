"""Train a rawtf model on MNIST and report its test accuracy.

    python examples/train_mnist.py                    # tutorial net, 3 epochs
    python examples/train_mnist.py --epochs 1 --seed 7
    python examples/train_mnist.py --help             # every flag (shared with `rawtf train`)

Reads MNIST from data/mnist/ of this checkout (or --data-dir). Prints one line per epoch and
ends with ``test_accuracy=0.XXXX test_loss=X.XXXX``.
"""

import sys

from rawtf.cli import (
    load_training_data,
    make_optimizer,
    parse_and_import,
    prepare_training,
    result_line,
    run_guarded,
    train_parser,
)


def main(argv=None) -> int:
    args = parse_and_import(train_parser("train_mnist.py", __doc__.splitlines()[0]), argv)
    prepare_training(args)  # --epochs default, --deterministic
    import rawtf

    train, validation, test = load_training_data(args)
    print(f"training {args.model} on {len(train[0])} images for {args.epochs} epoch(s)")
    model = rawtf.get_model(args.model, init=args.init, seed=args.seed)
    optimizer = make_optimizer(args, len(train[0]))  # --optimizer, --lr, --schedule
    history = rawtf.fit(
        model,
        optimizer,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=validation,
        seed=args.seed,
        augment=args.augment,
        logdir=args.logdir,
    )
    seconds = sum(history["seconds"])
    images = len(train[0]) * args.epochs
    per_epoch = seconds / args.epochs
    print(f"trained in {seconds:.1f}s ({per_epoch:.1f}s/epoch, {images / seconds:.0f} img/s)")
    print(result_line(rawtf.evaluate(model, test)))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(lambda: main()))
