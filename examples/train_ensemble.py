"""Train an ensemble (one recipe, several seeds) and test the average of its members'
probabilities.

    python examples/train_ensemble.py --out runs/ensemble      # 3 x best recipe, 18 epochs
    python examples/train_ensemble.py --out runs/mixed --members 4 --elastic-members 2
    python examples/train_ensemble.py --out runs/bf16 --precision bf16   # CPUs with fast bf16
    python examples/train_ensemble.py --out runs/quick --recipe fast --members 5
    python examples/train_ensemble.py --out runs/bf16 --precision bf16 --tta 8   # test-time views

Each member is an ordinary run folder, ``OUT/seed-N``: the same as
``rawtf train --recipe RECIPE --epochs E --seed N --out OUT/seed-N``, so a member cut short
continues with ``rawtf train --out OUT/seed-N --resume`` and members already finished are
kept (run the script again to train only the missing ones). The last
``--elastic-members`` members also distort their images elastically (``--elastic 36
--elastic-sigma 6`` by default), meant to fail on other images than the plain members:
averaging repairs only what some members get right (on the MNIST test set they shared as
many errors as plain members do; see docs/results.md). Prints each member's test result,
how many mistakes the members share, then the ensemble's result, which is the line
``rawtf evaluate OUT/seed-*`` ends with too; with ``--tta K`` each member is tested on every
image and K warped copies of it (``rawtf evaluate --tta K``).
"""

import argparse
import sys
import time
from pathlib import Path

from rawtf import config, flags
from rawtf.cli import result_line, run_guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_ensemble.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder of the members")
    parser.add_argument("--recipe", default="best", choices=("best", "fast"))
    parser.add_argument("--members", type=int, default=3, metavar="N", help="(default: 3)")
    parser.add_argument(
        "--epochs", type=int, default=None, metavar="N", help="(default: 18 for best)"
    )
    parser.add_argument("--first-seed", type=int, default=0, metavar="N", help="(default: 0)")
    parser.add_argument(
        "--elastic-members",
        type=int,
        default=0,
        metavar="K",
        help="the last K members train with elastic distortion (default: 0)",
    )
    parser.add_argument("--elastic", type=float, default=36.0, metavar="F", help="(default: 36)")
    parser.add_argument(
        "--elastic-sigma", type=float, default=6.0, metavar="F", help="(default: 6)"
    )
    parser.add_argument(
        "--precision", choices=config.PRECISIONS, default=None, help="(default: the recipe's)"
    )
    parser.add_argument(
        "--tta",
        type=int,
        default=0,
        metavar="K",
        help="test each member on every image and K warped copies (default: 0)",
    )
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="MNIST folder")
    return parser


def main(argv=None) -> int:
    args = flags.parse_and_start(build_parser(), argv)
    from rawtf import runs
    from rawtf.errors import UsageError

    minimums = {"members": 1, "epochs": 1, "first_seed": 0, "elastic_members": 0, "tta": 0}
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be an integer >= {minimum}, got {value}")
    if args.elastic_members > args.members:
        raise UsageError(
            f"--elastic-members {args.elastic_members} is more than --members {args.members}"
        )
    epochs = args.epochs or (18 if args.recipe == "best" else None)
    first_elastic = args.first_seed + args.members - args.elastic_members
    models, trained, started = [], 0, time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.members):
        folder = Path(args.out) / f"seed-{seed}"
        if (folder / runs.MODEL).is_dir():
            print(f"member seed {seed}: {folder} is already trained, kept")
            models.append(runs.load_run(folder).model)
            continue
        given = {"recipe": args.recipe, "seed": seed, "data_dir": args.data_dir}
        if epochs:
            given["epochs"] = epochs
        if args.precision:
            given["precision"] = args.precision
        if seed >= first_elastic:
            given.update(elastic=args.elastic, elastic_sigma=args.elastic_sigma)
        result = runs.train_run(config.resolve(given), folder)
        print(f"member seed {seed}: {result_line(result.test)} ({result.seconds:.0f} s)")
        models.append(result.model)
        trained += 1
    print(f"trained {trained} member(s) in {time.perf_counter() - started:.0f} s")
    evaluation = runs.evaluate_run(
        models, data_dir=args.data_dir, print_fn=lambda line: None, tta=args.tta
    )
    for seed, member in enumerate(evaluation.members, start=args.first_seed):
        print(f"member seed {seed}: {result_line(member)}")
    if evaluation.overlap is not None:
        print(evaluation.overlap.summary())
    print(result_line(evaluation.result))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
