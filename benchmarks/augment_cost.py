"""What augmentation costs: seconds per training epoch with and without ``augment``,
alternated in one process.

    python benchmarks/augment_cost.py [--model kaggle] [--rounds 5] [--images 15360]

The warp runs in the tf.data pipeline, overlapped with the training step by prefetch, so
its cost shows only where the pipeline cannot keep up. Prints each round's ratio
(augmented / plain time) and the median and spread.
"""

from __future__ import annotations

import argparse
import time

from _common import spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="kaggle")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=15360)
    args = parser.parse_args()

    import rawtf

    (x, y), _ = rawtf.load_mnist()
    x, y = x[: args.images], y[: args.images]
    model = rawtf.get_model(args.model)
    optimizer = rawtf.Adam(1e-3)

    def epoch(augment: bool) -> float:
        start = time.perf_counter()
        rawtf.fit(model, optimizer, (x, y), epochs=1, verbose=0, augment=augment)
        return time.perf_counter() - start

    epoch(False), epoch(True)  # warm-up
    ratios = []
    for r in range(args.rounds):
        if r % 2 == 0:
            plain, augmented = epoch(False), epoch(True)
        else:
            augmented, plain = epoch(True), epoch(False)
        ratios.append(augmented / plain)
        print(
            f"round {r + 1}: plain {plain:.2f}s  augmented {augmented:.2f}s  ratio {ratios[-1]:.3f}"
        )
    print(
        f"{args.model}: augmented/plain epoch time, median (min-max) {spread(ratios)} "
        f"over {args.rounds} rounds of {len(x)} images"
    )


if __name__ == "__main__":
    main()
