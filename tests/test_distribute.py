"""Data-parallel training with tf.distribute. Logical devices must be configured before
TensorFlow starts, so the distributed run happens in a subprocess."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from tests.conftest import PYTHON, ROOT, python_env

SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import rawtf

(x, y), _ = rawtf.load_mnist()
x, y = x[:1024], y[:1024]

def train(strategy, fused):
    scope = strategy.scope() if strategy else tf.name_scope("single")
    with scope:
        model = rawtf.get_model("tutorial", seed=0, dropout_rate=0.0)
        # At 1e-3 the first epoch on 1,024 images overshoots (mean loss 3.4), which amplifies
        # the replicas' different summation order chaotically (1e-6 to 1e-4 depending on
        # the rounding); at 1e-4 training is smooth and the comparison sharp.
        optimizer = rawtf.Adam(1e-4, fused=fused)
    history = rawtf.fit(model, optimizer, (x, y), epochs=2, batch_size=128, seed=0,
                        verbose=0, strategy=strategy)
    return model, history

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
results = {}
for fused in (False, True):  # Adam's element-wise form, then its kernel on each device's copy
    single, h1 = train(None, fused)
    multi, h2 = train(mirrored, fused)
    for name, model in (("single", single), ("multi", multi)):
        np.savez(f"{sys.argv[1]}/{name}-{fused}.npz",
                 **{k.replace("/", "."): v.numpy() for k, v in model.variable_map().items()})
    copies = max(float(np.max(np.abs(v.values[0].numpy() - v.values[1].numpy())))
                 for v in multi.variable_map().values())
    results[fused] = {"loss": [h1["loss"], h2["loss"]], "copies": copies,
                      "devices": len(multi.variables[0].values)}
print(json.dumps(results))
"""


def _python(*args, env=None, cwd=ROOT):
    """Run this interpreter with ``args``, output captured (10 minutes at most)."""
    return subprocess.run(
        [PYTHON, *args],
        capture_output=True,
        text=True,
        env=python_env() if env is None else env,
        cwd=cwd,
        timeout=600,
    )


def _assert_close(reference, weights, tolerance=1e-5):
    for key, value in reference.items():
        diff = float(np.max(np.abs(value - weights[key])))
        assert diff <= tolerance * max(1.0, float(np.max(np.abs(value)))), (key, diff)


def test_mirrored_training_matches_single_device(tmp_path):
    proc = _python("-c", SCRIPT, str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == {"false", "true"}
    for fused, result in results.items():
        # Same data, same updates: only the order of floating-point sums differs (each
        # replica sums its half of the batch). After 16 Adam steps the weights agree to 1e-5
        # (measured: 1.2e-7 for both forms).
        single = dict(np.load(tmp_path / f"single-{fused.title()}.npz"))
        _assert_close(single, dict(np.load(tmp_path / f"multi-{fused.title()}.npz")))
        np.testing.assert_allclose(result["loss"][0], result["loss"][1], rtol=1e-5)
        # Both devices hold identical copies of every variable.
        assert result["devices"] == 2 and result["copies"] == 0.0, (fused, result["copies"])


CLI_SCRIPT = """
import sys
import tensorflow as tf
if sys.argv[1] == "mirrored":  # two logical CPU devices, set before TensorFlow starts
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from rawtf import cli
sys.exit(cli.main(["train", "--distribute", sys.argv[1], "--out", sys.argv[2], *sys.argv[3:]]))
"""

# three_conv has neither dropout nor batch norm, so replicas see exactly what one device
# sees; 1e-3 keeps its training smooth, which makes the comparison sharp.
TRAIN_FLAGS = [
    *("--model", "three_conv", "--lr", "1e-3", "--epochs", "2"),
    *("--train-limit", "1024", "--batch-size", "128"),
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _weights(run_dir):
    import rawtf

    return {k: v.numpy() for k, v in rawtf.runs.load_run(run_dir).model.variable_map().items()}


def test_train_command_distributes(tmp_path, capsys):
    """``rawtf train --distribute mirrored`` on 2 logical CPU devices and ``--distribute
    multiworker`` as 2 local worker processes train what one device trains."""
    import rawtf

    assert rawtf.cli.main(["train", "--out", str(tmp_path / "single"), *TRAIN_FLAGS]) == 0
    capsys.readouterr()
    reference = _weights(tmp_path / "single")

    mirrored = _python("-c", CLI_SCRIPT, "mirrored", str(tmp_path / "mirrored"), *TRAIN_FLAGS)
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    first = mirrored.stdout.splitlines()[0]
    assert first.startswith("distributing over 2 replica(s): ") and "CPU:1" in first
    _assert_close(reference, _weights(tmp_path / "mirrored"))

    cluster = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    workers = []
    for index in range(2):
        env = python_env()
        task = {"type": "worker", "index": index}
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": cluster}, "task": task})
        out = str(tmp_path / f"worker{index}")
        workers.append(
            subprocess.Popen(
                [PYTHON, "-c", CLI_SCRIPT, "multiworker", out, *TRAIN_FLAGS],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
        )
    for index, worker in enumerate(workers):
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
        assert stdout.startswith(f"distributing over 2 replica(s) (worker {index} of 2): ")
    w0, w1 = _weights(tmp_path / "worker0"), _weights(tmp_path / "worker1")
    _assert_close(reference, w0)
    _assert_close(w0, w1, tolerance=0.0)  # the workers hold the same model


def test_multiworker_needs_tf_config(tmp_path):
    env = python_env()
    env.pop("TF_CONFIG", None)
    proc = _python(
        "-m",
        "rawtf.cli",
        "train",
        "--distribute",
        "multiworker",
        "--out",
        "x",
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("rawtf: error: --distribute multiworker: set TF_CONFIG")
    assert not (tmp_path / "x").exists()
