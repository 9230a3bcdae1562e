"""The benchmark suite: for every model, rawtf against Keras in one process, alternated.

    python benchmarks/run.py [--models all] [--rounds 5] [--steps 40] [--out benchmarks/results]

Per model: training img/s of rawtf's fit and of the Keras twin's fit (default compile
settings), inference img/s of rawtf's predict and of Keras's predict, the median ratio
and spread of each, and the share of the fp32 peak the training step reaches (FLOPs per
image from the layer shapes, ×3 for forward and backward; the peak is a large
``tf.linalg.matmul`` timed in the same run). With PyTorch installed, also the tutorial net
in PyTorch eager on the CPU. Writes ``results.json`` and ``results.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import ROOT, keras_twin, spread, tf


def matmul_peak(size: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of a large fp32 matmul: the machine's practical peak."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    matmul().numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        rates.append(2 * size**3 / (time.perf_counter() - start))
    return statistics.median(rates)


def alternate(rounds: int, ours, theirs) -> tuple[list[float], list[float]]:
    ours(), theirs()  # warm-up: tracing and first calls
    a, b = [], []
    for r in range(rounds):
        if r % 2 == 0:
            a.append(ours())
            b.append(theirs())
        else:
            b.append(theirs())
            a.append(ours())
    return a, b


def measure(name: str, x, y, args) -> dict:
    import keras

    import rawtf

    n = len(x)
    x_float = x[..., None].astype("float32") / 255.0
    model, optimizer = rawtf.get_model(name), rawtf.Adam(1e-3)
    twin = keras_twin(name)
    twin.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    def timed(fn):
        def run():
            start = time.perf_counter()
            fn()
            return n / (time.perf_counter() - start)

        return run

    train_ours, train_keras = alternate(
        args.rounds,
        timed(lambda: rawtf.fit(model, optimizer, (x, y), epochs=1, batch_size=128, verbose=0)),
        timed(lambda: twin.fit(x_float, y, batch_size=128, epochs=1, verbose=0)),
    )
    infer_ours, infer_keras = alternate(
        args.rounds,
        timed(lambda: rawtf.predict(model, x_float, batch_size=1000)),
        timed(lambda: twin.predict(x_float, batch_size=1000, verbose=0)),
    )
    return {
        "model": name,
        "flops_per_image": model.flops_per_image(),
        "train_rawtf": statistics.median(train_ours),
        "train_keras": statistics.median(train_keras),
        "train_ratios": [a / b for a, b in zip(train_ours, train_keras, strict=True)],
        "infer_rawtf": statistics.median(infer_ours),
        "infer_keras": statistics.median(infer_keras),
        "infer_ratios": [a / b for a, b in zip(infer_ours, infer_keras, strict=True)],
    }


def torch_tutorial(x, y, rounds: int) -> float | None:
    """Training img/s of the tutorial net in PyTorch eager, or None without torch."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    net = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 1024),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(1024, 10),
    )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    images = torch.tensor(x[:, None].astype("float32") / 255.0)
    labels = torch.tensor(y.astype("int64"))
    rates = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        for i in range(0, len(images), 128):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(images[i : i + 128]), labels[i : i + 128])
            loss.backward()
            opt.step()
        rates.append(len(images) / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def markdown(results: list[dict], peak: float, torch_rate: float | None) -> str:
    lines = [
        f"fp32 matmul peak: {peak / 1e9:.0f} GFLOP/s",
        "",
        "| model | train img/s rawtf | Keras fit | ratio (min–max) | % of peak | "
        "predict img/s rawtf | Keras predict | ratio (min–max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        share = 3 * r["flops_per_image"] * r["train_rawtf"] / peak
        lines.append(
            f"| {r['model']} | {r['train_rawtf']:.0f} | {r['train_keras']:.0f} | "
            f"{spread(r['train_ratios'])} | {100 * share:.0f}% | {r['infer_rawtf']:.0f} | "
            f"{r['infer_keras']:.0f} | {spread(r['infer_ratios'])} |"
        )
    if torch_rate:
        lines.append("")
        lines.append(f"PyTorch eager, tutorial net: {torch_rate:.0f} img/s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    import rawtf

    (x, y), _ = rawtf.load_mnist()
    x, y = x[: args.steps * 128], y[: args.steps * 128]
    names = rawtf.models.model_names() if args.models == "all" else args.models.split(",")
    peak = matmul_peak()
    results = []
    for name in names:
        results.append(measure(name, x, y, args))
        print(json.dumps(results[-1]), flush=True)
    torch_rate = torch_tutorial(x, y, args.rounds) if "tutorial" in names else None
    table = markdown(results, peak, torch_rate)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"peak_flops": peak, "results": results, "torch_tutorial": torch_rate}
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    (out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
