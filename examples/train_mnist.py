"""Train a rawtf model on MNIST and report its test accuracy.

    python examples/train_mnist.py                    # tutorial net, 3 epochs
    python examples/train_mnist.py --epochs 1 --seed 7
    python examples/train_mnist.py --recipe fast      # 99% in seconds
    python examples/train_mnist.py --out runs/mine    # also keep a run folder
    python examples/train_mnist.py --help             # every flag (shared with `rawtf train`)

Reads MNIST from data/mnist/ of this checkout (or --data-dir). Prints one line per epoch and
ends with ``test_accuracy=0.XXXX test_loss=X.XXXX``.
"""

import sys

from rawtf import flags
from rawtf.cli import result_line, run_guarded


def build_parser():
    return flags.train_parser("train_mnist.py", __doc__)


def main(argv=None) -> int:
    args = flags.parse_and_start(build_parser(), argv)  # TensorFlow is imported (quietly) here
    result = flags.run_training(args)  # --recipe, defaults, or the run being resumed
    if result.test is None:
        print(f"{result.config.data} has no labelled test set: no test result to report")
        return 0
    seconds = sum(result.history["seconds"])
    images = result.train_size * len(result.history)
    per_epoch = seconds / len(result.history)
    print(f"trained in {seconds:.1f}s ({per_epoch:.1f}s/epoch, {images / seconds:.0f} img/s)")
    print(f"wall time from TensorFlow import to the test result: {result.seconds:.1f}s")
    print(result_line(result.test))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
