"""What the progress bar costs: seconds per training epoch with the bar showing (compiled
calls shortened to about 0.25 s so that it advances smoothly) and without it (32 steps per
call), alternated in one process.

    python benchmarks/progress_cost.py [--model small_bn] [--rounds 6] [--images 30000]

Prints each round's ratio (with bar / without) and the median and spread, and how many
compiled calls an epoch took each way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

from _common import spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_bn")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--images", type=int, default=30000)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import rawtf
    from rawtf.callbacks import ProgressLog

    (x, y), _ = rawtf.load_mnist()
    x, y = x[: args.images], y[: args.images]
    model = rawtf.get_model(args.model)
    optimizer = rawtf.Adam(1e-3)

    def epoch(bar: bool) -> tuple[float, int]:
        hooks = [ProgressLog(print_fn=lambda line: None, enabled=True)] if bar else []
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            history = rawtf.fit(
                model, optimizer, (x, y), batch_size=args.batch_size, verbose=0, callbacks=hooks
            )
        return time.perf_counter() - start, len(history.steps)

    epoch(False), epoch(True)  # warm-up: tracing
    ratios, calls = [], {}
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        seconds = {}
        for bar in order:
            seconds[bar], calls[bar] = epoch(bar)
        ratios.append(seconds[True] / seconds[False])
        print(
            f"round {r + 1}: without {seconds[False]:.2f}s ({calls[False]} calls)  "
            f"with bar {seconds[True]:.2f}s ({calls[True]} calls)  ratio {ratios[-1]:.3f}"
        )
    print(
        f"{args.model}: with bar / without, epoch time, median (min-max) {spread(ratios)} "
        f"over {args.rounds} rounds of {len(x)} images"
    )


if __name__ == "__main__":
    main()
