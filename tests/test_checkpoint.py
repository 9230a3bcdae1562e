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


SERVE_PICTURES = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
pictures = [open(path, "rb").read() for path in sys.argv[2:]]
out = loaded.signatures["serving_image"](images=tf.constant(pictures))
print(json.dumps({
    "probabilities": out["probabilities"].numpy().tolist(),
    "classes": out["classes"].numpy().tolist(),
    "rawtf_imported": "rawtf" in sys.modules,
}))
"""


def _varied_pictures(folder):
    """Digits as people send them: formats, modes, sizes, positions, both ways round."""
    from PIL import Image

    from tests.test_images import drawn_digit

    paths = []
    for digit, (mode, suffix, size, at, font, stroke) in enumerate(
        [
            ("RGB", "png", (300, 220), (40, 20), 150, 0),
            ("L", "jpg", (640, 480), (200, 60), 300, 6),
            ("P", "gif", (120, 160), (20, 10), 110, 2),
            ("RGBA", "png", (200, 200), (50, 10), 150, 0),
            ("L", "bmp", (90, 60), (30, 0), 50, 1),
            ("RGB", "jpg", (400, 300), (10, 10), 200, 4),
            ("LA", "png", (256, 256), (80, 40), 160, 3),
            ("L", "png", (300, 300), (100, 50), 180, 5),
        ]
    ):
        path = folder / f"digit{digit}.{suffix}"
        drawn_digit(digit, size, at, font, mode, stroke).save(path)
        paths.append(path)
    inverted = 255 - np.asarray(drawn_digit(8, mode="L"), np.uint16)  # light on dark, 16-bit
    Image.fromarray((inverted * 257).astype(np.uint16)).save(folder / "digit8_16bit.png")
    return [*paths, folder / "digit8_16bit.png"]


def test_picture_signature_reads_pictures_as_rawtf_images_does(tmp_path, trained_run):
    import subprocess

    from rawtf import images, picture_ops, runs
    from tests.conftest import PYTHON, python_env

    model = runs.load_run(trained_run[0]).model
    paths = _varied_pictures(tmp_path)
    pictures = images.load_digit_images(paths)
    in_graph = picture_ops.pictures_to_inputs(tf.constant([p.read_bytes() for p in paths]))
    for path, ours, graph in zip(paths, pictures, in_graph.numpy()[..., 0], strict=True):
        limit = 0.03 if path.suffix == ".jpg" else 1e-3  # JPEG decoders round differently
        assert np.abs(ours - graph).mean() < limit, path.name
    expected, classes = rawtf.predict(model, pictures)
    export.export_saved_model(model, tmp_path / "served")
    proc = subprocess.run(
        [PYTHON, "-c", SERVE_PICTURES, str(tmp_path / "served"), *map(str, paths)],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rawtf_imported"] is False
    assert out["classes"] == classes.tolist()
    np.testing.assert_allclose(np.array(out["probabilities"]), expected, atol=0.02)


def test_picture_signature_refuses_a_bomb_before_decoding(tmp_path):
    from tests.test_images import png_header_only

    served = export.export_saved_model(rawtf.get_model("three_conv"), tmp_path / "served")
    png_header_only(tmp_path / "bomb.png", 30000, 30000)
    signature = tf.saved_model.load(str(served)).signatures["serving_image"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="over the 50,000,000-pixel budget"):
        signature(images=tf.constant([(tmp_path / "bomb.png").read_bytes()]))


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("quantize", [False, True])
def test_tflite_export_agrees_with_the_saved_model(tmp_path, trained_run, mnist, quantize):
    from rawtf import cli

    (_, _), (x_test, y_test) = mnist
    x_test, y_test = x_test[:2000], y_test[:2000]
    out = tmp_path / "digits.tflite"
    argv = ["export", str(trained_run[0]), str(out), "--format", "tflite"]
    assert cli.main(argv + (["--quantize"] if quantize else [])) == 0
    model = rawtf.runs.load_run(trained_run[0]).model
    expected, classes = rawtf.predict(model, x_test)
    interpreter = tf.lite.Interpreter(model_path=str(out))
    assert set(interpreter.get_signature_list()) == {"serving_default", "serving_uint8"}
    run = interpreter.get_signature_runner("serving_uint8")
    got = np.concatenate([run(images=x_test[i : i + 500])["classes"] for i in range(0, 2000, 500)])
    ours, theirs = (classes == y_test).mean(), (got == y_test).mean()
    assert abs(ours - theirs) <= 0.001, (ours, theirs)  # within 0.1 points
    assert (got == classes).mean() >= (0.995 if quantize else 1.0)
    floats = interpreter.get_signature_runner("serving_default")(
        images=(x_test[:8, ..., None] / 255).astype(np.float32)
    )
    np.testing.assert_allclose(
        floats["probabilities"], expected[:8], atol=0.02 if quantize else 1e-4
    )
    if quantize:  # int8 weights: about a quarter of the float file
        assert cli.main(argv[:2] + [str(tmp_path / "float.tflite"), "--format", "tflite"]) == 0
        assert out.stat().st_size < 0.3 * (tmp_path / "float.tflite").stat().st_size
