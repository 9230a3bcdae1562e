"""The Kaggle digit-recognizer workflow end to end: train on train.csv, predict test.csv,
write submission.csv.

    python examples/kaggle_digit_recognizer.py --data train.csv --test test.csv --out runs/kaggle
    python examples/kaggle_digit_recognizer.py --from-mnist kaggle_data --out runs/kaggle

``--from-mnist DIR`` first writes Kaggle-format files built from MNIST into DIR (42,000
training rows; the 10,000 MNIST test images as test.csv, unlabelled) and, since their labels
are known, scores the submission at the end. Takes every training flag of ``rawtf train``;
the defaults here are the Kaggle tutorial's network with augmentation.
"""

import argparse
import sys
from pathlib import Path

import rawtf
from rawtf import flags, kaggle
from rawtf.cli import run_guarded

DEFAULTS = flags.defaults_with(model="kaggle", augment=True)


def _from_mnist(args):
    """Write Kaggle-style CSVs built from MNIST; returns the test set's true labels."""
    folder = Path(args.from_mnist)
    folder.mkdir(parents=True, exist_ok=True)
    (x, y), (x_test, y_test) = rawtf.load_mnist(getattr(args, "data_dir", None))
    args.data = str(kaggle.write_kaggle_csv(x[:42000], y[:42000], folder / "train.csv"))
    args.test = str(kaggle.write_kaggle_csv(x_test, None, folder / "test.csv"))
    print(f"wrote {args.data} and {args.test}")
    return y_test


def build_parser():
    parser = flags.train_parser("kaggle_digit_recognizer.py", __doc__, DEFAULTS)
    parser.add_argument(
        "--train",
        dest="data",
        default=argparse.SUPPRESS,
        metavar="TRAIN.csv",
        help="the same as --data",
    )
    parser.add_argument("--test", metavar="TEST.csv", help="Kaggle test.csv to predict")
    parser.add_argument(
        "--from-mnist", metavar="DIR", help="build Kaggle-style CSVs from MNIST first"
    )
    return parser


def main(argv=None) -> int:
    args = flags.parse_and_start(build_parser(), argv)
    if not args.out:
        raise rawtf.UsageError("give --out RUN_DIR (the submission is written into it)")
    truth = _from_mnist(args) if args.from_mnist else None
    if getattr(args, "data", "mnist") == "mnist" or not args.test:
        raise rawtf.UsageError("give --data TRAIN.csv and --test TEST.csv, or --from-mnist DIR")
    result = flags.run_training(args, DEFAULTS)
    submission = result.directory / "submission.csv"
    predicted = rawtf.runs.write_submission(
        result.model, args.test, submission, result.config.precision
    )
    print(f"wrote {submission} ({len(predicted)} rows)")
    if truth is not None:
        print(f"submission accuracy against the MNIST labels: {(predicted == truth).mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
