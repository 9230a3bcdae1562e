"""Probe for the slow state seen in benchmarks/run.py: the same compiled tutorial forward
over 3,072 images, fed three ways, alternated with a large matmul, for ``--seconds``.

    python benchmarks/tfdata_stall.py [--seconds 240]

Feeds: ``rawtf.pipeline.eval_dataset`` (the pipeline ``rawtf.predict`` uses) built with
``rawtf.pipeline.AUTOTUNE = True`` (tf.data's autotuning on) and as rawtf builds it by default
(fixed parallelism and prefetch, autotuning off), and constant tensors. Prints, per contestant, the
median duration and how many runs took over 1.3x the constant-fed median.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import matmul_run, tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240)
    args = parser.parse_args()

    import rawtf
    from rawtf import pipeline

    (x, _), _ = rawtf.load_mnist()
    x = x[:3072]
    model = rawtf.get_model("tutorial")
    forward = tf.function(lambda batch: model(batch, training=False))

    def predict(batches):
        for batch in batches:
            forward(batch).numpy()

    pipeline = pipeline.eval_dataset(x, None, 1000)
    pipeline.AUTOTUNE = True
    autotuned = pipeline.eval_dataset(x, None, 1000)
    pipeline.AUTOTUNE = False
    feeds = {
        "tf.data, autotuned": autotuned,
        "tf.data, fixed (rawtf's)": pipeline,
        "constant tensors": [tf.constant(batch) for batch in pipeline],
    }
    matmul = matmul_run()
    durations: dict[str, list[float]] = {name: [] for name in feeds}
    peaks: list[float] = []
    for batches in feeds.values():
        predict(batches)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for name, batches in feeds.items():
            start = time.perf_counter()
            predict(batches)
            durations[name].append(time.perf_counter() - start)
        peaks.append(matmul())
    limit = 1.3 * statistics.median(durations["constant tensors"])
    for name, values in durations.items():
        print(
            f"{name:28s} runs {len(values):4d}  median {statistics.median(values):.3f} s  "
            f"max {max(values):.3f} s  over {limit:.3f} s: {sum(d > limit for d in values)}"
        )
    print(
        f"{'matmul 4096^2':28s} runs {len(peaks):4d}  median "
        f"{statistics.median(peaks) / 1e9:.0f} GFLOP/s  min {min(peaks) / 1e9:.0f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
