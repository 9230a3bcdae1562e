"""The performance levers, one at a time: each one's training speed with and without it,
run back to back in one process, order swapped every round.

    python benchmarks/levers.py [--rounds 11] [--steps 24] [--only TEXT]

Each line compares two ways of training the same model for one epoch of ``--steps``
batches of 128 MNIST images (after a warm-up run of each):

- steps per compiled call: ``fit(steps_per_execution=32)`` against 1 (small_bn in bf16,
  whose steps are short, and the tutorial net);
- the fused Adam kernel: ``Adam(fused=True)`` against the element-wise form (tutorial);
- the fused batch-norm kernel: ``deep_bn`` with ``bn_fused=True`` against the two-op form;
- bfloat16 mixed precision against float32 (tutorial);
- the dense layer's transposed input gradient (``(W g^T)^T``, used for weights of at least
  ``rawtf.layers.TRANSPOSED_GRADIENT_MIN`` rows and columns) against the plain ``g W^T``
  (tutorial, whose 3136 x 1024 hidden layer takes it; fp32 and bf16);
- XLA: the training step compiled with ``jit_compile=True`` against plain ``tf.function``
  (the step alone on a constant batch: XLA cannot compile the tf.data iterator).

Prints the median (min-max) of the per-round speed ratios "with / without".
"""

from __future__ import annotations

import argparse

from _common import pair_rounds, spread, tf, timed, with_setting

BATCH = 128


def fit_runner(x, y, name, model_settings=None, optimizer_settings=None, **fit_options):
    import rawtf

    model = rawtf.get_model(name, **(model_settings or {}))
    optimizer = rawtf.Adam(1e-3, **(optimizer_settings or {}))
    return timed(
        len(x),
        lambda: rawtf.fit(
            model, optimizer, (x, y), epochs=1, batch_size=BATCH, verbose=0, **fit_options
        ),
    )


def plain_dense_gradient(run):
    """``run`` with every dense layer differentiated the plain way (``g W^T``); the choice
    is made when the training step is traced, in the warm-up run."""
    from rawtf import layers

    return with_setting(layers, "TRANSPOSED_GRADIENT_MIN", 1 << 62, run)


def step_runner(x, y, name, steps, jit_compile):
    import rawtf
    from rawtf import step as steps_module

    model, optimizer = rawtf.get_model(name), rawtf.Adam(1e-3)
    body = steps_module.step_body(model, optimizer)
    step = tf.function(lambda a, b, s: body(a, b, s)[:3], jit_compile=jit_compile)
    images = tf.constant(x[:BATCH, ..., None].astype("float32") / 255.0)
    labels = tf.constant(y[:BATCH].astype("int32"))

    def run():
        for i in range(steps):
            loss = step(images, labels, tf.constant([0, i], tf.int64))[0]
        float(loss)

    return timed(steps * BATCH, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--only", default="", help="run only the levers whose name has TEXT")
    args = parser.parse_args()

    import rawtf

    (x, y), _ = rawtf.load_mnist()
    x, y = x[: args.steps * BATCH], y[: args.steps * BATCH]
    levers = [
        (
            "32 steps per call vs 1, small_bn bf16",
            fit_runner(x, y, "small_bn", precision="bf16", steps_per_execution=32),
            fit_runner(x, y, "small_bn", precision="bf16", steps_per_execution=1),
        ),
        (
            "32 steps per call vs 1, tutorial",
            fit_runner(x, y, "tutorial", steps_per_execution=32),
            fit_runner(x, y, "tutorial", steps_per_execution=1),
        ),
        (
            "fused Adam vs element-wise, tutorial",
            fit_runner(x, y, "tutorial", optimizer_settings={"fused": True}),
            fit_runner(x, y, "tutorial", optimizer_settings={"fused": False}),
        ),
        (
            "fused batch norm vs two-op, deep_bn",
            fit_runner(x, y, "deep_bn", model_settings={"bn_fused": True}),
            fit_runner(x, y, "deep_bn", model_settings={"bn_fused": False}),
        ),
        (
            "bf16 vs fp32, tutorial",
            fit_runner(x, y, "tutorial", precision="bf16"),
            fit_runner(x, y, "tutorial"),
        ),
        (
            "transposed dense input gradient vs plain, tutorial fp32",
            fit_runner(x, y, "tutorial"),
            plain_dense_gradient(fit_runner(x, y, "tutorial")),
        ),
        (
            "transposed dense input gradient vs plain, tutorial bf16",
            fit_runner(x, y, "tutorial", precision="bf16"),
            plain_dense_gradient(fit_runner(x, y, "tutorial", precision="bf16")),
        ),
        (
            "XLA vs plain tf.function, tutorial step",
            step_runner(x, y, "tutorial", args.steps, jit_compile=True),
            step_runner(x, y, "tutorial", args.steps, jit_compile=False),
        ),
    ]
    for label, with_it, without in levers:
        if args.only not in label:
            continue
        a, b = pair_rounds(with_it, without, args.rounds)
        ratios = [p / q for p, q in zip(a, b, strict=True)]
        print(f"{label}: with/without {spread(ratios)} over {args.rounds} rounds", flush=True)


if __name__ == "__main__":
    main()
