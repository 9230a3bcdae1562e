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
    diff = {k: float(np.max(np.abs(v.numpy() - multi.variable_map()[k].numpy())))
            for k, v in single.variable_map().items()}
    scale = {k: float(np.max(np.abs(v.numpy()))) for k, v in single.variable_map().items()}
    copies = max(float(np.max(np.abs(v.values[0].numpy() - v.values[1].numpy())))
                 for v in multi.variable_map().values())
    results[f"fused={fused}"] = {"diff": diff, "loss": [h1["loss"], h2["loss"]], "scale": scale,
                                 "copies": copies, "devices": len(multi.variables[0].values)}
print(json.dumps(results))
"""


def test_mirrored_training_matches_single_device():
    proc = subprocess.run(
        [PYTHON, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for form, result in results.items():
        # Same data, same updates: only the order of floating-point sums differs (each
        # replica sums its half of the batch). After 16 Adam steps the weights agree to 1e-5
        # (measured: 1.2e-7 for both forms).
        for key, diff in result["diff"].items():
            assert diff <= 1e-5 * max(1.0, result["scale"][key]), (form, key, diff)
        np.testing.assert_allclose(result["loss"][0], result["loss"][1], rtol=1e-5)
        # Both devices hold identical copies of every variable.
        assert result["devices"] == 2 and result["copies"] == 0.0, (form, result["copies"])


CLI_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from rawtf import cli
sys.exit(cli.main(["train", "--distribute", "mirrored", "--model", "three_conv", "--epochs", "1",
                   "--train-limit", "512", "--batch-size", "64", "--out", sys.argv[1]]))
"""


def test_train_command_distributes(tmp_path):
    import rawtf

    proc = subprocess.run(
        [PYTHON, "-c", CLI_SCRIPT, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("distributing over 2 replica(s): ") and "CPU:1" in lines[0]
    # The saved model is the trained one: it scores what the command reported.
    model = rawtf.runs.load_run(tmp_path / "run").model
    _, test = rawtf.load_mnist()
    assert lines[-1] == rawtf.cli.result_line(rawtf.evaluate(model, test))
