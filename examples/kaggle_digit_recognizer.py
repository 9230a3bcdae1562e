"""The Kaggle digit-recognizer workflow end to end: train on train.csv, predict test.csv,
write submission.csv.

    python examples/kaggle_digit_recognizer.py --train train.csv --test test.csv --out runs/kaggle
    python examples/kaggle_digit_recognizer.py --from-mnist kaggle_data --out runs/kaggle

``--from-mnist DIR`` first writes Kaggle-format files built from MNIST into DIR (42,000
training rows; the 10,000 MNIST test images as test.csv, unlabelled) and, since their labels
are known, scores the submission at the end. Takes the training flags of ``rawtf train``
(defaults here: --model kaggle --augment --epochs 3).
"""

import sys
from pathlib import Path

from rawtf.cli import (
    UsageError,
    make_optimizer,
    parse_and_import,
    prepare_training,
    run_guarded,
    train_parser,
)


def main(argv=None) -> int:
    parser = train_parser("kaggle_digit_recognizer.py", __doc__.splitlines()[0])
    parser.set_defaults(model="kaggle", augment=True)
    parser.add_argument("--train", metavar="TRAIN.csv")
    parser.add_argument("--test", metavar="TEST.csv")
    parser.add_argument(
        "--from-mnist", metavar="DIR", help="build Kaggle-style CSVs from MNIST first"
    )
    parser.add_argument("--out", required=True, metavar="RUN_DIR")
    parser.add_argument("--overwrite", action="store_true")
    args = parse_and_import(parser, argv)
    prepare_training(args)
    import numpy as np

    import rawtf
    from rawtf import kaggle, runs

    truth = None
    if args.from_mnist:
        folder = Path(args.from_mnist)
        folder.mkdir(parents=True, exist_ok=True)
        (x, y), (x_test, y_test) = rawtf.load_mnist(args.data_dir)
        args.train = str(kaggle.write_kaggle_csv(x[:42000], y[:42000], folder / "train.csv"))
        args.test = str(kaggle.write_kaggle_csv(x_test, None, folder / "test.csv"))
        truth = y_test
        print(f"wrote {args.train} and {args.test}")
    if not (args.train and args.test):
        raise UsageError("give --train and --test, or --from-mnist DIR")

    images, labels = kaggle.load_kaggle_csv(args.train)
    if labels is None:
        raise UsageError(f"{args.train}: has no label column")
    if args.train_limit:
        images, labels = images[: args.train_limit], labels[: args.train_limit]
    validation = None
    if args.validation_split:
        (images, labels), validation = rawtf.data.train_validation_split(
            images, labels, args.validation_split, seed=args.seed
        )
    run_dir = runs.prepare(args.out, overwrite=args.overwrite)
    model = rawtf.get_model(args.model, init=args.init, seed=args.seed)
    optimizer = make_optimizer(args, len(images))  # also fills in the model's --lr, --batch-size
    history = rawtf.fit(
        model,
        optimizer,
        (images, labels),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=validation,
        seed=args.seed,
        augment=args.augment,
    )
    runs.save_run(run_dir, model, history, {"train": vars(args), "train_size": len(images)})

    test_images, _ = kaggle.load_kaggle_csv(args.test)
    _, predicted = rawtf.predict(model, test_images)
    submission = kaggle.write_submission(predicted, run_dir / "submission.csv")
    print(f"wrote {submission} ({len(predicted)} rows)")
    if truth is not None:
        print(f"submission accuracy against the MNIST labels: {np.mean(predicted == truth):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(lambda: main()))
