"""Saving and loading models."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rawtf
from rawtf import export, saving
from rawtf.errors import CheckpointError
from tests.conftest import tf


def test_round_trip_predicts_identically(tmp_path, rng):
    model = rawtf.get_model("tutorial", seed=3, dropout_rate=0.3)
    for v in model.trainable_variables:  # move away from the initial values
        v.assign_add(tf.random.stateless_normal(v.shape, seed=[1, 2], stddev=0.01))
    x = rng.random((20, 28, 28, 1), dtype=np.float32)
    before, _ = rawtf.predict(model, x)
    rawtf.save(model, tmp_path / "m")
    loaded = rawtf.load(tmp_path / "m")
    assert loaded.config == model.config
    after, _ = rawtf.predict(loaded, x)
    np.testing.assert_array_equal(before, after)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"] == "tutorial" and config["config"]["dropout_rate"] == 0.3
    # Saving again replaces the folder atomically and leaves no temporary folders behind.
    rawtf.save(loaded, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="config.json: no such file"):
        rawtf.load(tmp_path / "absent")
    model = rawtf.get_model("tutorial")
    rawtf.save(model, tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["config"]["model"] = "nonexistent"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown model 'nonexistent'"):
        rawtf.load(tmp_path / "m")
    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        rawtf.load(tmp_path / "m")


def test_mismatched_architecture_lists_the_differences(tmp_path):
    rawtf.save(rawtf.get_model("tutorial"), tmp_path / "m")
    prefix = str(tmp_path / "m" / saving.VARIABLES_PREFIX)

    class Wider(rawtf.networks.Tutorial):
        def layers(self):
            specs = super().layers()
            specs[5] = rawtf.specs.Dense("fc", 512)
            return specs

    with pytest.raises(
        CheckpointError, match=r"weights/W_fc has shape \[3136, 1024\], model expects \[3136, 512\]"
    ):
        saving.restore_variables(Wider(), prefix)


def test_corrupt_checkpoint_is_an_error(tmp_path):
    rawtf.save(rawtf.get_model("tutorial"), tmp_path / "m")
    index = tmp_path / "m" / (saving.VARIABLES_PREFIX + ".index")
    index.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        rawtf.load(tmp_path / "m")
    index.unlink()
    with pytest.raises(CheckpointError, match="incomplete model folder"):
        rawtf.load(tmp_path / "m")


def test_save_never_replaces_foreign_folders(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a rawtf model folder"):
        rawtf.save(rawtf.get_model("tutorial"), target)
    assert (target / "notes.txt").read_text() == "keep me"


SERVE = """
import json, sys
import numpy as np
import tensorflow as tf
assert "rawtf" not in sys.modules
loaded = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
f = loaded.signatures["serving_default"](images=tf.constant(x[..., None] / 255.0, tf.float32))
u = loaded.signatures["serving_uint8"](images=tf.constant(x))
print(json.dumps({
    "float": f["probabilities"].numpy().tolist(), "float_classes": f["classes"].numpy().tolist(),
    "uint8": u["probabilities"].numpy().tolist(), "uint8_classes": u["classes"].numpy().tolist(),
    "rawtf_imported": "rawtf" in sys.modules,
}))
"""


def test_saved_model_serves_without_rawtf(tmp_path, small_mnist):
    import subprocess

    from tests.conftest import PYTHON, python_env

    model = rawtf.get_model("deep_bn", seed=2)
    for v in model.variables:  # away from the initial values, batch-norm statistics included
        v.assign_add(tf.random.stateless_uniform(v.shape, seed=[3, 4], maxval=0.05))
    x = small_mnist[1][0][:16]
    expected, classes = rawtf.predict(model, x)
    export.export_saved_model(model, tmp_path / "served")
    np.save(tmp_path / "x.npy", x)
    env = python_env()
    env["PYTHONPATH"] = ""  # the serving process cannot see rawtf at all
    proc = subprocess.run(
        [PYTHON, "-c", SERVE, str(tmp_path / "served"), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rawtf_imported"] is False
    for key in ("float", "uint8"):
        np.testing.assert_allclose(np.array(out[key]), expected, rtol=1e-5, atol=1e-6)
        assert out[f"{key}_classes"] == classes.tolist()


def test_saved_model_in_bf16(tmp_path, small_mnist):
    model = rawtf.get_model("small_bn", seed=2)  # as initialised: probabilities far from 0, 1
    x = small_mnist[1][0][:32]
    fp32, _ = rawtf.predict(model, x)
    bf16, classes = rawtf.predict(model, x, precision="bf16")
    assert np.abs(bf16 - fp32).max() > 1e-4  # the two precisions are told apart
    export.export_saved_model(model, tmp_path / "served", precision="bf16")
    served = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_uint8"]
    out = served(images=tf.constant(x))
    assert out["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(out["probabilities"].numpy(), bf16, rtol=1e-5, atol=1e-6)
    assert out["classes"].numpy().tolist() == classes.tolist()
    with pytest.raises(rawtf.ConfigError, match="precision must be"):
        export.export_saved_model(model, tmp_path / "bad", precision="fp16")
    assert not (tmp_path / "bad").exists()


def test_export_refuses_foreign_folders(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a SavedModel folder"):
        export.export_saved_model(rawtf.get_model("three_conv"), tmp_path / "out")
