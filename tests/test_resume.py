"""Training checkpoints: exact resumption, interruption, non-finite losses, mismatches."""

from __future__ import annotations

import os
import re
import signal

import numpy as np
import pytest

import rawtf
from rawtf import callbacks, step
from rawtf.checkpoint import TrainingCheckpoint
from rawtf.errors import CheckpointError, TrainingError, TrainingInterrupted
from tests.conftest import tf


@pytest.fixture(scope="module")
def subset(small_mnist):
    (x, y), (xv, yv) = small_mnist
    return (x[:640], y[:640]), (xv[:200], yv[:200])


def weights(model):
    return {k: v.numpy() for k, v in model.variable_map().items()}


def run(
    subset,
    ckpt,
    epochs,
    resume="auto",
    seed=3,
    save_every=None,
    verbose=0,
    per_call=32,
    print_fn=lambda s: None,
):
    model = rawtf.get_model("deep_bn", seed=0)  # batch-norm state and dropout both matter
    optimizer = rawtf.Adam(rawtf.schedules.OneCycle(3e-3, 2 * 10))
    history = rawtf.fit(
        model,
        optimizer,
        subset[0],
        epochs=epochs,
        batch_size=64,
        seed=seed,
        validation_data=subset[1],
        checkpoint_dir=ckpt,
        resume=resume,
        save_every_steps=save_every,
        verbose=verbose,
        augment=True,
        print_fn=print_fn,
        steps_per_execution=per_call,
    )
    return model, optimizer, history


def test_one_epoch_then_resume_equals_two_straight(subset, tmp_path):
    straight, opt_a, hist_a = run(subset, str(tmp_path / "a"), epochs=2)
    _, _, _ = run(subset, str(tmp_path / "b"), epochs=1)
    resumed, opt_b, hist_b = run(subset, str(tmp_path / "b"), epochs=2, resume=True)
    assert int(opt_a.iterations) == int(opt_b.iterations) == 20
    assert [r["epoch"] for r in hist_b.epochs] == [1, 2]
    assert hist_b.epochs[0]["loss"] == hist_a.epochs[0]["loss"]
    # Without op determinism multi-threaded kernels may round differently between
    # processes; within this process the arithmetic repeats, so the match is tight.
    for key, value in weights(straight).items():
        np.testing.assert_allclose(weights(resumed)[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert (tmp_path / "a" / "best").is_dir()


@pytest.mark.parametrize("per_call, saved_at", [(1, 4), (3, 6)])
def test_interrupt_saves_and_resumes_mid_epoch(subset, tmp_path, monkeypatch, per_call, saved_at):
    """Ctrl-C arrives during the 4th step of epoch 1; training stops at the end of the
    compiled call that holds it (steps 1-4 with one step per call, 4-6 with three)."""
    original = step.make_train_loop

    def interrupting(*args, **kwargs):
        loop = original(*args, **kwargs)

        def call(iterator, seed, first_step, count):
            if int(first_step) <= 3 < int(first_step) + int(count):
                os.kill(os.getpid(), signal.SIGINT)
            return loop(iterator, seed, first_step, count)

        return call

    monkeypatch.setattr(step, "make_train_loop", interrupting)
    with pytest.raises(
        TrainingInterrupted, match=f"interrupted at epoch 1, step {saved_at}; checkpoint saved"
    ):
        run(subset, str(tmp_path / "c"), epochs=2, per_call=per_call)
    monkeypatch.setattr(step, "make_train_loop", original)
    assert TrainingCheckpoint(
        tmp_path / "c", rawtf.get_model("deep_bn"), rawtf.Adam()
    ).latest.endswith(f"ckpt-{saved_at}")
    lines = []
    model, _, _ = run(subset, str(tmp_path / "c"), epochs=2, verbose=1, print_fn=lines.append)
    assert lines[0].startswith(f"resuming from epoch 1, step {saved_at}")
    straight, _, _ = run(subset, str(tmp_path / "d"), epochs=2)
    for key, value in weights(straight).items():
        np.testing.assert_allclose(weights(model)[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_sigint_handler_is_installed_even_when_ignored(subset, tmp_path, monkeypatch):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        flag = callbacks.InterruptFlag()
        with flag:
            os.kill(os.getpid(), signal.SIGINT)
        assert flag.raised
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # restored afterwards
    finally:
        signal.signal(signal.SIGINT, previous)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(subset, tmp_path):
    model = rawtf.get_model("three_conv", seed=0)
    optimizer = rawtf.optim.SGD(1e6)  # diverges within a few steps
    with pytest.raises(TrainingError, match=r"non-finite loss .* at epoch 1, step \d+ .*is intact"):
        rawtf.fit(
            model,
            optimizer,
            subset[0],
            epochs=1,
            batch_size=32,
            verbose=0,
            checkpoint_dir=str(tmp_path / "n"),
            save_every_steps=1,
        )
    for value in weights(model).values():
        assert np.isfinite(value).all()
    check = TrainingCheckpoint(tmp_path / "n", rawtf.get_model("three_conv"), rawtf.optim.SGD(1e6))
    check.checkpoint.optimizer.build(check.model.trainable_variables)
    assert check.restore(seed=0)["epoch"] == 0


def test_resume_rules_and_mismatches(subset, tmp_path):
    ckpt = str(tmp_path / "r")
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        run(subset, ckpt, epochs=1, resume=True)
    run(subset, ckpt, epochs=1)
    with pytest.raises(CheckpointError, match="holds checkpoints of an earlier run"):
        run(subset, ckpt, epochs=2, resume=False)
    with pytest.raises(CheckpointError, match="seed 3, not 4"):
        run(subset, ckpt, epochs=2, seed=4)
    other = rawtf.get_model("three_conv")
    with pytest.raises(
        CheckpointError, match="does not match model 'three_conv'.*missing weights/W_fc1"
    ):
        rawtf.fit(other, rawtf.Adam(), subset[0], epochs=2, verbose=0, checkpoint_dir=ckpt, seed=3)


def _cli(*argv, **kwargs):
    import subprocess

    from tests.conftest import PYTHON, ROOT, python_env

    env = python_env()
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [PYTHON, "-m", "rawtf.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def test_deterministic_resume_gives_identical_weights(tmp_path):
    """Under --deterministic (process-wide op determinism, hence subprocesses), 2 epochs
    straight and 1 epoch + resume + 1 epoch give bit-identical weights. The schedule is
    constant: one-cycle and cosine span the planned run, so planning 1 epoch and then
    extending to 2 is a different schedule by design."""
    common = [
        "--schedule",
        "constant",
        "--model",
        "deep_bn",
        "--train-limit",
        "768",
        "--batch-size",
        "64",
        "--augment",
        "--deterministic",
        "--seed",
        "5",
    ]
    _finish(_cli("train", *common, "--epochs", "2", "--out", str(tmp_path / "straight")))
    _finish(_cli("train", *common, "--epochs", "1", "--out", str(tmp_path / "split")))
    out = _finish(
        _cli(
            "train",
            "--resume",
            "--deterministic",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "split"),
        )
    )
    assert "resuming from epoch 2, step 0" in out
    a = rawtf.runs.load_run(tmp_path / "straight").model
    b = rawtf.runs.load_run(tmp_path / "split").model
    for key, value in weights(a).items():
        np.testing.assert_array_equal(weights(b)[key], value, err_msg=key)


def test_kill_9_loses_at_most_save_every_steps(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "--model",
        "three_conv",
        "--train-limit",
        "3200",
        "--batch-size",
        "32",
        "--epochs",
        "2",
        "--save-every-steps",
        "10",
        "--out",
        str(run_dir),
    ]
    proc = _cli("train", *args)
    saved = None
    for line in proc.stdout:  # wait for a line the run prints, never a fixed sleep
        if line.startswith("saved checkpoint at step 30"):
            saved = 30
            proc.kill()  # SIGKILL: no handler runs
            break
    proc.wait(timeout=60)
    assert saved == 30 and proc.returncode == -signal.SIGKILL
    out = _finish(_cli("train", "--resume", "--out", str(run_dir)))
    first = next(line for line in out.splitlines() if line.startswith("resuming from"))
    step = int(first.split("step ")[1].split()[0])
    assert first.startswith("resuming from epoch 1,") and 30 <= step < 40
    assert rawtf.runs.load_run(run_dir).history[-1]["epoch"] == 2


def test_ctrl_c_in_the_command_saves_and_exits_cleanly(tmp_path):
    run_dir = tmp_path / "run"
    proc = _cli(
        "train",
        "--model",
        "three_conv",
        "--train-limit",
        "3200",
        "--batch-size",
        "32",
        "--save-every-steps",
        "10",
        "--out",
        str(run_dir),
    )
    for line in proc.stdout:
        if line.startswith("saved checkpoint at step 20"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and err.startswith("rawtf: interrupted at epoch 1, step ")
    assert err.rstrip().endswith(f"continue with: rawtf train --out {run_dir} --resume")
    assert "Traceback" not in err


def _summaries(folder) -> dict[str, list]:
    """Every summary in ``folder``'s event files: tag -> [(step, value or description)]."""
    found: dict[str, list] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                numeric = tensor is not None and tensor.shape == () and tensor.dtype.kind in "fiu"
                shown = float(tensor) if numeric else None
                found.setdefault(value.tag, []).append(
                    (event.step, shown if shown is not None else value.metadata.summary_description)
                )
    return found


def test_logdir_writes_train_and_validation_runs_as_keras_does(subset, tmp_path):
    model = rawtf.get_model("three_conv", seed=0)
    history = rawtf.fit(
        model,
        rawtf.Adam(),
        subset[0],
        epochs=2,
        batch_size=64,
        verbose=0,
        validation_data=subset[1],
        logdir=str(tmp_path / "logs"),
    )
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["train", "validation"]
    train, validation = (
        _summaries(tmp_path / "logs" / "train"),
        _summaries(tmp_path / "logs" / "validation"),
    )
    for key in ("loss", "accuracy"):  # the same tags in both runs, so the curves overlay
        expected = [pytest.approx(v, rel=1e-6) for v in history[key]]
        assert [v for _, v in train[f"epoch_{key}"]] == expected
        assert [s for s, _ in train[f"epoch_{key}"]] == [0, 1]
        expected = [pytest.approx(v, rel=1e-6) for v in history[f"val_{key}"]]
        assert [v for _, v in validation[f"epoch_{key}"]] == expected
    assert [s for s, _ in train["epoch_learning_rate"]] == [0, 1]
    assert "weights/W_conv1" in train and "biases/out" in train
    assert "train_step" in train  # the graph of the training step
    assert [s for s, _ in validation["misclassified"]] == [0, 1]
    assert "true → predicted" in validation["misclassified"][0][1]
    assert re.search(r"1: \d → \d \(0\.\d\d\)", validation["misclassified"][0][1])
    assert "misclassified_captioned" in validation
    old_tags = {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert not old_tags & (set(train) | set(validation))  # Keras's tag names only


def test_tensorboard_batch_values_every_n_steps(subset, tmp_path):
    model, optimizer = rawtf.get_model("three_conv", seed=0), rawtf.Adam()
    board = rawtf.callbacks.TensorBoard(tmp_path / "logs", model, optimizer, update_freq=5)
    history = rawtf.fit(
        model, optimizer, subset[0], epochs=2, batch_size=64, verbose=0, callbacks=[board]
    )
    train = _summaries(tmp_path / "logs" / "train")
    assert [s for s, _ in train["batch_loss"]] == [5, 10, 15, 20]
    assert [s for s, _ in train["batch_accuracy"]] == [5, 10, 15, 20]
    rows = {row["step"]: row for row in history.steps}
    # Keras's batch values are the epoch's running means: after the first 5 steps of an
    # epoch, the mean of those 5; at its end, the epoch's own mean.
    expected = [rows[5]["loss"], history["loss"][0], rows[15]["loss"], history["loss"][1]]
    assert [v for _, v in train["batch_loss"]] == [pytest.approx(v, rel=1e-6) for v in expected]
    expected = [rows[5]["accuracy"], history["accuracy"][0], rows[15]["accuracy"]]
    assert [v for _, v in train["batch_accuracy"]][:3] == [
        pytest.approx(v, rel=1e-6) for v in expected
    ]
    assert not (tmp_path / "logs" / "validation").exists()


def test_logdir_without_tensorboard_is_a_clear_error(subset, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(rawtf.ConfigError, match=r"logdir needs the tensorboard package"):
        rawtf.fit(
            rawtf.get_model("three_conv"),
            rawtf.Adam(),
            subset[0],
            verbose=0,
            logdir=str(tmp_path / "logs"),
        )
    assert not (tmp_path / "logs").exists()
