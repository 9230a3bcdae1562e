"""The benchmark suite: for every model, rawtf against Keras (and PyTorch) in one process,
alternated round by round.

    python benchmarks/run.py [--models all] [--rounds 11] [--steps 24] [--bf16 tutorial]
                             [--out benchmarks/results]

Each comparison is a pair of contestants run back to back, ``--rounds`` times, the order
swapped every round (after a warm-up run of each that absorbs tracing); a training run is
one epoch of ``--steps`` batches of 128 MNIST images. The contestants:

- rawtf ``fit`` in float32, as a user gets it (fused Adam; batch-norm models with
  ``bn_fused=True``, as the recipes use them) and the Keras twin's ``fit`` (default compile)
  fed two ways: arrays, as a Keras user would, which Keras pipes through tf.data with its
  autotuning on; and rawtf's own pipeline (``rawtf.pipeline.eval_dataset``: tf.data with
  autotuning off, rawtf's default), so that both sides get the same feed;
- for the models named by ``--bf16``: rawtf ``fit(precision="bf16")`` and the twin under
  Keras's ``mixed_bfloat16`` policy, fed both ways;
- for the tutorial net: rawtf ``fit`` with ``rawtf.pipeline.AUTOTUNE = True`` (what autotuning
  costs), the same compiled rawtf training loop fed a constant batch instead of the tf.data
  pipeline (the pipeline's cost), and PyTorch eager when torch is installed.

Ratios are taken per round (both numbers from adjacent runs), then the median and the
spread over rounds are reported. On this machine tf.data's autotuning caps the runs fed by
autotuned pipelines, for seconds to minutes at a time, at the same images per second
whatever the model (docs/results.md has the measurements); adjacent runs mostly share the
state. The JSON also keeps every rate and each contestant's fastest run. Inference: rawtf
``predict`` (fp32 and bf16) against Keras ``predict`` on the same images, batch 1000, fed
both ways, alternated the same way; and, apart, rawtf ``predict`` against Keras ``predict``
each with its own default batch size (1000 and 32). The share of the peak is
``3 x FLOPs per image x img/s`` (inference: ``FLOPs per image x img/s``) over a large
``tf.linalg.matmul``'s FLOP/s, the matmul alternated with the run like a contestant, so that
each round's share compares runs made in the same state of the machine. Writes
``results.json`` and ``results.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import (
    ROOT,
    compiled_keras_twin,
    matmul_run,
    pair_rounds,
    spread,
    tf,
    timed,
    with_setting,
)

BATCH = 128


def matmul_peak(dtype=None, repeats: int = 5) -> float:
    """The median FLOP/s of ``repeats`` large matmuls."""
    run = matmul_run(dtype)
    return statistics.median(run() for _ in range(repeats))


def constant_feed(model, optimizer, x, y, steps: int):
    """The fit loop's compiled training function fed one constant batch, repeated (tf.data
    autotuning off, as in rawtf's pipelines)."""
    from rawtf import data, pipeline, step

    loop = step.make_train_loop(model, optimizer)
    images = data.to_float(x[:BATCH])
    batch = tf.data.Dataset.from_tensors(
        (tf.constant(images), tf.constant(y[:BATCH], tf.int32))
    ).with_options(pipeline.pipeline_options())  # an autotuned feed gets capped
    seed, first = tf.constant(0, tf.int64), tf.constant(0, tf.int64)

    def run():
        iterator = iter(batch.repeat(steps))
        done = 0
        while done < steps:
            count = min(32, steps - done)
            float(loop(iterator, seed, first, tf.constant(count))[0])
            done += count

    return run


def autotuned(run):
    """``run`` with rawtf's pipelines left to tf.data's autotuner (``rawtf.pipeline.AUTOTUNE``)."""
    from rawtf import pipeline

    return with_setting(pipeline, "AUTOTUNE", True, run)


def measure(name: str, x, y, args) -> dict:
    import rawtf
    from rawtf import pipeline

    n = len(x)
    x_float = x[..., None].astype("float32") / 255.0
    settings = (
        {"bn_fused": True} if "bn_fused" in rawtf.models.get_model_class(name).defaults else {}
    )
    model, optimizer = rawtf.get_model(name, **settings), rawtf.Adam(1e-3)
    twin = compiled_keras_twin(name)

    def fit(m, opt, **kw):
        return lambda: rawtf.fit(m, opt, (x, y), epochs=1, batch_size=BATCH, verbose=0, **kw)

    # Keras fed by rawtf's own pipeline (tf.data with autotuning off, see rawtf.pipeline.AUTOTUNE)
    # next to Keras fed arrays, which it pipes through tf.data with autotuning on.
    train_feed, infer_feed = (
        pipeline.eval_dataset(x_float, y, BATCH),
        pipeline.eval_dataset(x_float, None, 1000),
    )
    train = {
        "rawtf": timed(n, fit(model, optimizer)),
        "keras": timed(n, lambda: twin.fit(x_float, y, batch_size=BATCH, epochs=1, verbose=0)),
        "keras_rawtf_feed": timed(n, lambda: twin.fit(train_feed, epochs=1, verbose=0)),
    }
    infer = {
        "rawtf": timed(n, lambda: rawtf.predict(model, x_float, batch_size=1000)),
        "keras": timed(n, lambda: twin.predict(x_float, batch_size=1000, verbose=0)),
        "keras_rawtf_feed": timed(n, lambda: twin.predict(infer_feed, verbose=0)),
        "rawtf_bf16": timed(
            n, lambda: rawtf.predict(model, x_float, batch_size=1000, precision="bf16")
        ),
        # What a Keras user gets without choosing a batch size (Keras's default is 32;
        # rawtf's is the 1000 used above).
        "keras_default_batch": timed(n, lambda: twin.predict(x_float, verbose=0)),
    }
    if name in args.bf16:
        model16, optimizer16 = rawtf.get_model(name, **settings), rawtf.Adam(1e-3)
        twin16 = compiled_keras_twin(name, "mixed_bfloat16")
        train["rawtf_bf16"] = timed(n, fit(model16, optimizer16, precision="bf16"))
        train["keras_bf16"] = timed(
            n, lambda: twin16.fit(x_float, y, batch_size=BATCH, epochs=1, verbose=0)
        )
        train["keras_bf16_rawtf_feed"] = timed(
            n, lambda: twin16.fit(train_feed, epochs=1, verbose=0)
        )
        infer["keras_bf16"] = timed(n, lambda: twin16.predict(x_float, batch_size=1000, verbose=0))
    # The peak, timed next to each rawtf run, so that a round's share of the peak compares
    # a run and a matmul made in the same state of the machine.
    train["peak"] = infer["peak"] = matmul_run()
    if name == "tutorial":
        train["rawtf_autotune"] = timed(n, autotuned(fit(model, optimizer)))
        train["rawtf_constant_feed"] = timed(n, constant_feed(model, optimizer, x, y, n // BATCH))
        torch_run = torch_tutorial(x, y)
        if torch_run is not None:
            train["torch"] = timed(n, torch_run)
    result = {"model": name, "settings": settings, "flops_per_image": model.flops_per_image()}
    for kind, contestants in (("train", train), ("infer", infer)):
        rates: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for a, b in RATIOS[kind]:
            if a in contestants and b in contestants:
                ra, rb = pair_rounds(contestants[a], contestants[b], args.rounds)
                ratios[f"{a}/{b}"] = [p / q for p, q in zip(ra, rb, strict=True)]
                rates.setdefault(a, []).extend(ra)
                rates.setdefault(b, []).extend(rb)
        result[kind] = {k: statistics.median(v) for k, v in rates.items()}
        result[f"{kind}_fastest"] = {k: max(v) for k, v in rates.items()}
        result[f"{kind}_rates"] = rates
        result[f"{kind}_ratios"] = ratios
    return result


RATIOS = {
    "train": [
        ("rawtf", "keras"),
        ("rawtf", "keras_rawtf_feed"),
        ("rawtf_bf16", "keras"),
        ("rawtf_bf16", "keras_bf16"),
        ("rawtf_bf16", "keras_bf16_rawtf_feed"),
        ("rawtf_bf16", "rawtf"),
        ("rawtf", "rawtf_autotune"),
        ("rawtf", "rawtf_constant_feed"),
        ("rawtf", "torch"),
        ("rawtf", "peak"),
    ],
    "infer": [
        ("rawtf", "keras"),
        ("rawtf", "keras_rawtf_feed"),
        ("rawtf", "peak"),
        ("keras", "peak"),
        ("rawtf_bf16", "keras"),
        ("rawtf_bf16", "keras_bf16"),
        ("rawtf_bf16", "rawtf"),
        ("rawtf", "keras_default_batch"),
    ],
}


def torch_tutorial(x, y):
    """One epoch of the tutorial net in PyTorch eager on the CPU, or None without torch."""
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

    def run():
        for i in range(0, len(images), BATCH):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(images[i : i + BATCH]), labels[i : i + BATCH])
            loss.backward()
            opt.step()

    return run


def share(result: dict, kind: str, contestant: str) -> list[float]:
    """Per-round shares of the fp32 peak: FLOP/s of ``contestant``'s run (3 x the forward
    FLOPs per image when training) over the matmul peak timed next to it."""
    flops = result["flops_per_image"] * (3 if kind == "train" else 1)
    return [flops * r for r in result[f"{kind}_ratios"][f"{contestant}/peak"]]


def percent(values: list[float]) -> str:
    return f"{100 * statistics.median(values):.0f}%"


def markdown(results: list[dict], peak: float, peak16: float) -> str:
    lines = [
        f"Matmul peak in this run: fp32 {peak / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} "
        "GFLOP/s. Ratios: median (min–max) of per-round ratios. Shares of the peak: median "
        "over rounds of a run's FLOP/s over the peak timed next to it; 'fastest' is the "
        "fastest run over the run's median peak.",
        "",
        "| model | train img/s rawtf fp32 | Keras fit | rawtf/Keras | rawtf/Keras, rawtf's feed "
        "| % of fp32 peak (median / fastest run) | predict img/s rawtf | Keras predict | "
        "rawtf/Keras | rawtf/Keras, rawtf's feed | predict, % of fp32 peak (rawtf / Keras) | "
        "rawtf bf16/Keras fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        t, i = r["train"], r["infer"]
        fastest = 3 * r["flops_per_image"] * r["train_fastest"]["rawtf"] / peak
        lines.append(
            f"| {r['model']} | {t['rawtf']:.0f} | {t['keras']:.0f} | "
            f"{spread(r['train_ratios']['rawtf/keras'])} | "
            f"{spread(r['train_ratios']['rawtf/keras_rawtf_feed'])} | "
            f"{percent(share(r, 'train', 'rawtf'))} / {100 * fastest:.0f}% | "
            f"{i['rawtf']:.0f} | {i['keras']:.0f} | {spread(r['infer_ratios']['rawtf/keras'])} | "
            f"{spread(r['infer_ratios']['rawtf/keras_rawtf_feed'])} | "
            f"{percent(share(r, 'infer', 'rawtf'))} / {percent(share(r, 'infer', 'keras'))} | "
            f"{spread(r['infer_ratios']['rawtf_bf16/keras'])} |"
        )
    in_main_table = {
        "train": ("rawtf/keras", "rawtf/keras_rawtf_feed", "rawtf/peak"),
        "infer": (
            "rawtf/keras",
            "rawtf/keras_rawtf_feed",
            "rawtf_bf16/keras",
            "rawtf/peak",
            "keras/peak",
        ),
    }
    for kind, title in (("train", "training"), ("infer", "inference")):
        extra = [
            (r["model"], key, values)
            for r in results
            for key, values in r[f"{kind}_ratios"].items()
            if key not in in_main_table[kind]
        ]
        if extra:
            lines += ["", f"| model | {title} ratio | median (min–max) |", "| --- | --- | --- |"]
            lines += [f"| {model} | {key} | {spread(values)} |" for model, key, values in extra]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma-separated names, or all")
    # Many short rounds: this machine drops to half speed for seconds at a time (another
    # tenant taking a core), which a median over many alternated rounds shrugs off.
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument(
        "--bf16", default="tutorial", help="models to also train in bf16 (comma-separated)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    args.bf16 = args.bf16.split(",")

    import rawtf

    (x, y), _ = rawtf.load_mnist()
    x, y = x[: args.steps * BATCH], y[: args.steps * BATCH]
    names = rawtf.models.model_names() if args.models == "all" else args.models.split(",")
    peak, peak16 = matmul_peak(), matmul_peak(tf.bfloat16)
    results = []
    for name in names:
        results.append(measure(name, x, y, args))
        print(json.dumps({k: results[-1][k] for k in ("model", "train", "infer")}), flush=True)
    table = markdown(results, peak, peak16)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"peak_flops": peak, "peak_flops_bf16": peak16, "results": results}
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    (out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
