"""Probe for the slow state seen in benchmarks/run.py: the same compiled tutorial forward
over 3,072 images, fed three ways, alternated with a large matmul, for ``--seconds``.

    python benchmarks/tfdata_stall.py [--seconds 240]

Feeds: ``rawtf.data.eval_dataset`` (the pipeline ``rawtf.predict`` uses), the same pipeline
with tf.data's autotuning switched off, and constant tensors. Prints, per contestant, the
median duration and how many runs took over 1.3x the constant-fed median.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240)
    args = parser.parse_args()

    import rawtf
    from rawtf import data as D

    (x, _), _ = rawtf.load_mnist()
    x = x[:3072]
    model = rawtf.get_model("tutorial")
    forward = tf.function(lambda batch: model(batch, training=False))
    pipeline = D.eval_dataset(x, None, 1000)
    options = tf.data.Options()
    options.autotune.enabled = False
    constants = [tf.constant(batch) for batch in pipeline]
    a = tf.random.normal((4096, 4096))
    matmul = tf.function(lambda: tf.reduce_sum(a @ a))
    contestants = {
        "tf.data (rawtf.predict's)": lambda: [forward(b).numpy() for b in pipeline],
        "tf.data, autotune off": lambda: [
            forward(b).numpy() for b in pipeline.with_options(options)
        ],
        "constant tensors": lambda: [forward(b).numpy() for b in constants],
        "matmul 4096^2": lambda: matmul().numpy(),
    }
    durations: dict[str, list[float]] = {name: [] for name in contestants}
    for run in contestants.values():
        run()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for name, run in contestants.items():
            start = time.perf_counter()
            run()
            durations[name].append(time.perf_counter() - start)
    limit = 1.3 * statistics.median(durations["constant tensors"])
    for name, values in durations.items():
        line = f"{name:28s} runs {len(values):4d}  median {statistics.median(values):.3f} s  "
        line += f"max {max(values):.3f} s"
        if name != "matmul 4096^2":  # a different workload: no common limit
            line += f"  over {limit:.3f} s: {sum(d > limit for d in values)}"
        print(line)


if __name__ == "__main__":
    main()
