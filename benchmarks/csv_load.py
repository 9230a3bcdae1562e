"""How long a Kaggle-sized train.csv (42,000 rows, built from MNIST) takes to load.

python benchmarks/csv_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import rawtf
    from rawtf import kaggle

    (x, y), _ = rawtf.load_mnist()
    with tempfile.TemporaryDirectory() as folder:
        path = kaggle.write_kaggle_csv(x[:42000], y[:42000], Path(folder) / "train.csv")
        size = path.stat().st_size / 1e6
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            images, labels = kaggle.load_kaggle_csv(path)
            seconds.append(time.perf_counter() - start)
        assert len(images) == 42000
    print(f"load_kaggle_csv, 42,000 rows ({size:.0f} MB): {spread(seconds)} s, median (min-max)")


if __name__ == "__main__":
    main()
