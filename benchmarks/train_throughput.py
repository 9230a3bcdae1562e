"""Training throughput: rawtf's fit against the Keras twin's fit, alternated in one process.

    python benchmarks/train_throughput.py [--model tutorial|all] [--rounds 5] [--steps 60]

Each round times one epoch of ``--steps`` batches of 128 fp32 MNIST images with each
framework (same model, Adam, softmax cross-entropy on logits; Keras with its default
compile settings), after one warm-up round each so tracing is excluded; which one goes
first alternates from round to round. Prints img/s per round, the per-round ratio
rawtf/Keras, and its median and spread.
"""

from __future__ import annotations

import argparse
import statistics

from _common import compiled_keras_twin, pair_rounds, spread, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tutorial", help="a model name, or 'all'")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import rawtf

    (x, y), _ = rawtf.load_mnist()
    n = args.steps * args.batch_size
    x, y = x[:n], y[:n]
    names = rawtf.models.model_names() if args.model == "all" else [args.model]
    summary = [measure(name, x, y, args) for name in names]
    print()
    for line in summary:
        print(line)


def measure(name: str, x, y, args) -> str:
    import rawtf

    n = len(x)
    x_float = x[..., None].astype("float32") / 255.0
    model = rawtf.get_model(name)
    optimizer = rawtf.Adam(1e-3)
    twin = compiled_keras_twin(name)

    rawtf_rates, keras_rates = pair_rounds(
        timed(
            n,
            lambda: rawtf.fit(
                model, optimizer, (x, y), epochs=1, batch_size=args.batch_size, verbose=0
            ),
        ),
        timed(
            n,
            lambda: twin.fit(
                x_float, y, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=True
            ),
        ),
        args.rounds,
    )
    ratios = [a / b for a, b in zip(rawtf_rates, keras_rates, strict=True)]
    for r, (a, b) in enumerate(zip(rawtf_rates, keras_rates, strict=True), start=1):
        print(f"{name} round {r}: rawtf {a:6.0f} img/s  keras {b:6.0f} img/s  ratio {a / b:.3f}")
    return (
        f"{name}: rawtf {statistics.median(rawtf_rates):.0f} img/s, "
        f"keras fit {statistics.median(keras_rates):.0f} img/s, "
        f"ratio rawtf/keras median (min-max) {spread(ratios)} over {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
