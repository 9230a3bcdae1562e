"""Compare variants of a recipe on a held-out split of the training set, never the test set:
``rawtf train --recipe NAME --validation-split F --seed S`` plus each variant's flags, one
fresh process per run, and a table of the final validation accuracy of each.

    python benchmarks/validate_variants.py --recipe best --epochs 10 --seeds 0,1 \\
        --variant "" --variant "--label-smoothing 0.1" --ema 0.999

With ``--ema M`` every run also keeps a moving average of its weights, which does not
change training, so each run gives two results: the raw weights' (the last epoch's
``val_accuracy``) and the averaged weights'. Run folders go to ``--out`` (default: a
temporary folder, removed).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AVERAGED = re.compile(r"validation with the averaged weights: val_accuracy=([0-9.]+)")


def run(recipe, seed, flags, args, out: Path) -> tuple[float, float | None, float]:
    """(raw validation accuracy, averaged one or None, wall seconds) of one run."""
    command = [sys.executable, "-m", "rawtf.cli", "train", "--recipe", recipe]
    command += ["--seed", str(seed), "--validation-split", str(args.validation_split)]
    command += ["--out", str(out), *flags]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    if args.ema:
        command += ["--ema", str(args.ema)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr}")
    history = json.loads((out / "history.json").read_text())
    averaged = AVERAGED.search(done.stdout)
    wall = sum(row["seconds"] for row in history)
    return history[-1]["val_accuracy"], float(averaged.group(1)) if averaged else None, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="best")
    parser.add_argument("--epochs", type=int, default=None, help="(default: the recipe's)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--validation-split", type=float, default=0.083333)
    parser.add_argument("--variant", action="append", default=None, help='flags, e.g. "--lr 1e-3"')
    parser.add_argument("--ema", type=float, default=None, help="also average the weights")
    parser.add_argument("--out", default=None, help="keep the run folders here")
    args = parser.parse_args()
    variants = args.variant or [""]
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        for index, variant in enumerate(variants):
            raw, averaged = [], []
            for seed in seeds:
                out = base / f"variant-{index}-seed-{seed}"
                r, a, wall = run(args.recipe, seed, shlex.split(variant), args, out)
                raw.append(r)
                averaged += [a] if a is not None else []
                extra = f", averaged {a:.4f}" if a is not None else ""
                print(
                    f"[{variant or 'recipe'}] seed {seed}: val {r:.4f}{extra} ({wall:.0f} s)",
                    flush=True,
                )
            line = f"[{variant or 'recipe'}] mean val {statistics.mean(raw):.4f}"
            if averaged:
                line += f", averaged weights {statistics.mean(averaged):.4f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
