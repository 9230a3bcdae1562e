"""Time to accuracy of a recipe: ``rawtf train --recipe NAME`` once per seed, each in a
fresh process, as a user runs it.

    python benchmarks/time_to_accuracy.py [--recipe fast] [--seeds 0,1,2,3,4] [--target 0.99]

The clock is the command's own: it starts when TensorFlow has been imported and stops when
the test evaluation ends, so it covers loading the data, tracing, training and the final
evaluation (saving the run folder afterwards is not counted). Prints each seed's wall time
and test accuracy, then the mean and the worst of each; exits 1 if the mean accuracy misses
``--target`` or a seed falls below ``--floor``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WALL = re.compile(r"wall time from TensorFlow import to the test result: ([0-9.]+)s")
ACCURACY = re.compile(r"test_accuracy=([0-9.]+)")


def run_seed(recipe: str, seed: int, extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "rawtf.cli",
            "train",
            "--recipe",
            recipe,
            "--seed",
            str(seed),
            "--out",
            str(Path(tmp) / "run"),
            *extra,
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: {' '.join(command)} failed:\n{done.stderr}")
    wall, accuracy = WALL.search(done.stdout), ACCURACY.search(done.stdout)
    if not (wall and accuracy):
        raise SystemExit(f"seed {seed}: no result in the output:\n{done.stdout}")
    return float(wall.group(1)), float(accuracy.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--target", type=float, default=0.99, help="mean accuracy to reach")
    parser.add_argument("--floor", type=float, default=0.99, help="no seed may fall below")
    parser.add_argument("extra", nargs="*", help="more flags for rawtf train (after --)")
    args = parser.parse_args()
    walls, accuracies = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        wall, accuracy = run_seed(args.recipe, seed, args.extra)
        walls.append(wall)
        accuracies.append(accuracy)
        print(f"seed {seed}: {wall:.1f} s  test_accuracy={accuracy:.4f}", flush=True)
    mean_acc = statistics.mean(accuracies)
    print(
        f"recipe {args.recipe}, {len(walls)} seeds: wall mean {statistics.mean(walls):.2f} s, "
        f"worst {max(walls):.2f} s; accuracy mean {mean_acc:.4f}, worst {min(accuracies):.4f}"
    )
    return 0 if mean_acc >= args.target and min(accuracies) >= args.floor else 1


if __name__ == "__main__":
    sys.exit(main())
