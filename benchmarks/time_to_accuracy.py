"""Time to accuracy of a recipe: ``rawtf train --recipe NAME`` once per seed, each in a
fresh process, as a user runs it.

    python benchmarks/time_to_accuracy.py [--recipe fast] [--seeds 0,1,2,3,4] [--target 0.99]
    python benchmarks/time_to_accuracy.py --rounds 3 --variant "" --variant "--precision bf16"

The clock is the command's own: it starts when TensorFlow has been imported and stops when
the test evaluation ends, so it covers loading the data, tracing, training and the final
evaluation (saving the run folder afterwards is not counted). Prints each run's wall time
and test accuracy, then, per variant, the mean and the worst of each; exits 1 if a
variant's mean accuracy misses ``--target`` or a seed falls below ``--floor``.

Since a shared machine's speed drifts, ``--rounds`` repeats every seed and reports each
round's mean wall time, and with several ``--variant`` s the runs of one seed follow one
another (in turn reversed every other round) and each variant's time is also given as its
ratio to the first variant's on the same seed and round: median and spread.
"""

from __future__ import annotations

import argparse
import re
import shlex
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
        raise SystemExit(f"seed {seed}: {shlex.join(command)} failed:\n{done.stderr}")
    wall, accuracy = WALL.search(done.stdout), ACCURACY.search(done.stdout)
    if not (wall and accuracy):
        raise SystemExit(f"seed {seed}: no result in the output:\n{done.stdout}")
    return float(wall.group(1)), float(accuracy.group(1))


def spread(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    low, high = min(values), max(values)
    return f"{statistics.median(values):.{digits}f} (median; {low:.{digits}f}-{high:.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--target", type=float, default=0.99, help="mean accuracy to reach")
    parser.add_argument("--floor", type=float, default=0.99, help="no seed may fall below")
    parser.add_argument("--rounds", type=int, default=1, help="run every seed this many times")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help='more rawtf train flags for one variant, e.g. "--precision bf16" (repeatable)',
    )
    parser.add_argument("extra", nargs="*", help="flags for every run of rawtf train (after --)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variant or [""]
    names = [v or "recipe" for v in variants]
    # walls[v][r][i] and accuracies[v][i]: variant v, round r, seed i
    walls = [[[] for _ in range(args.rounds)] for _ in variants]
    accuracies: list[dict[int, set[float]]] = [{} for _ in variants]
    for r in range(args.rounds):
        for seed in seeds:
            order = range(len(variants)) if r % 2 == 0 else reversed(range(len(variants)))
            for v in order:
                wall, accuracy = run_seed(
                    args.recipe, seed, [*args.extra, *shlex.split(variants[v])]
                )
                walls[v][r].append(wall)
                accuracies[v].setdefault(seed, set()).add(accuracy)
                label = f"[{names[v]}] " if len(variants) > 1 else ""
                round_label = f"round {r + 1} " if args.rounds > 1 else ""
                print(
                    f"{label}{round_label}seed {seed}: {wall:.1f} s  test_accuracy={accuracy:.4f}",
                    flush=True,
                )
    ok = True
    for v, name in enumerate(names):
        every = [w for round_walls in walls[v] for w in round_walls]
        # A run repeats exactly, so a seed's accuracy is the same in every round; the worst
        # is kept if it is not.
        per_seed = [min(accuracies[v][seed]) for seed in seeds]
        mean_acc = statistics.mean(per_seed)
        line = f"recipe {args.recipe}"
        if len(variants) > 1:
            line += f" [{name}]"
        line += (
            f", {len(seeds)} seeds: wall mean {statistics.mean(every):.2f} s, "
            f"worst {max(every):.2f} s; accuracy mean {mean_acc:.4f}, worst {min(per_seed):.4f}"
        )
        if args.rounds > 1:
            means = [statistics.mean(round_walls) for round_walls in walls[v]]
            line += f"; round means {' / '.join(f'{m:.2f}' for m in means)} s"
        if v > 0:
            ratios = [
                mine / first
                for mine_round, first_round in zip(walls[v], walls[0], strict=True)
                for mine, first in zip(mine_round, first_round, strict=True)
            ]
            line += f"; wall / [{names[0]}]'s: {spread(ratios, 3)}"
        if any(len(found) > 1 for found in accuracies[v].values()):
            line += " (a seed's accuracy differed between rounds: its worst is counted)"
        print(line)
        ok = ok and mean_acc >= args.target and min(per_seed) >= args.floor
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
