"""The examples, run in-process through their main(argv) on small inputs."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import rawtf
from rawtf import cli, kaggle
from rawtf.errors import UsageError
from tests.conftest import ROOT


def example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kaggle_example_writes_a_submission(tmp_path, small_mnist, capsys):
    (x, y), (xt, yt) = small_mnist
    kaggle.write_kaggle_csv(x[:512], y[:512], tmp_path / "train.csv")
    kaggle.write_kaggle_csv(xt[:40], None, tmp_path / "test.csv")
    code = example("kaggle_digit_recognizer").main(
        [
            "--train",
            str(tmp_path / "train.csv"),
            "--test",
            str(tmp_path / "test.csv"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    rows = (tmp_path / "run" / "submission.csv").read_text().splitlines()
    assert rows[0] == "ImageId,Label" and len(rows) == 41
    run = rawtf.runs.load_run(tmp_path / "run")
    assert run.config["model"]["model"] == "kaggle" and run.config["train"]["augment"] is True
    _, expected = rawtf.predict(run.model, xt[:40])
    assert [int(r.split(",")[1]) for r in rows[1:]] == expected.tolist()


def test_predict_own_image_example(tmp_path, trained_run, small_mnist, capsys):
    from PIL import Image

    run_dir, _ = trained_run
    x = small_mnist[1][0]
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"d{i}.jpg")
        Image.fromarray(255 - x[i]).resize((90, 90)).save(paths[-1])
    code = example("predict_own_image").main(
        [str(run_dir), *map(str, paths), "--show", str(tmp_path / "seen.png")]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert all(re.fullmatch(r".*\.jpg\t\d\t[01]\.\d{4}", line) for line in out[:2])
    assert (tmp_path / "seen.png").stat().st_size > 500
    assert np.isfinite(rawtf.images.load_digit_images(paths)).all()


TRAINING_EXAMPLES = ("train_mnist", "kaggle_digit_recognizer")


def _value_for(action) -> list[str]:
    """A valid command-line value for ``action`` (none for switches)."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [list(action.choices)[-1]]
    field = rawtf.config.SETTINGS.get(action.dest)
    if field is not None and field.metadata["number"] is rawtf.config.FRACTION:
        return ["0.25"]  # fractions accept [0, 1)
    if action.dest == "lr":
        return ["0.25"]
    if action.dest == "model_settings":
        return ["width=7"]
    if action.type is not None:
        return ["7"]
    return [f"/somewhere/{action.dest}"]


def test_every_train_flag_means_the_same_in_each_training_example():
    """Each flag of ``rawtf train``, given alone, parses in every training example to the
    same value it parses to in the command."""
    from tests.test_config import _train_options

    options = _train_options()
    assert len(options) > 20
    for name in TRAINING_EXAMPLES:
        parser = example(name).build_parser()
        for dest, action in options.items():
            argv = [action.option_strings[-1], *_value_for(action)]
            if dest != "out":
                argv += ["--out", "/somewhere/out"]  # the command requires it
            ours = vars(parser.parse_args(argv))
            theirs = vars(cli.build_parser().parse_args(["train", *argv]))
            assert ours.get(dest) == theirs.get(dest), (name, argv)


def _subprocess(*argv, cwd=ROOT):
    import subprocess

    from tests.conftest import PYTHON, python_env

    proc = subprocess.run(
        [PYTHON, *argv], capture_output=True, text=True, env=python_env(), cwd=cwd, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _losses(run_dir):
    import json

    return [row["loss"] for row in json.loads((run_dir / "history.json").read_text())]


def test_kaggle_example_trains_exactly_as_the_command(tmp_path, small_mnist):
    """Under --deterministic the Kaggle example and ``rawtf train --data THE.csv`` given the
    same flags train identically; --precision bf16 really changes the computation."""
    (x, y), (xt, _) = small_mnist
    kaggle.write_kaggle_csv(x[:320], y[:320], tmp_path / "train.csv")
    kaggle.write_kaggle_csv(xt[:20], None, tmp_path / "test.csv")
    shared = [
        *("--data", str(tmp_path / "train.csv"), "--model", "kaggle", "--augment"),
        *("--epochs", "2", "--batch-size", "64", "--seed", "3", "--deterministic"),
    ]
    script = str(ROOT / "examples" / "kaggle_digit_recognizer.py")
    test_csv = ["--test", str(tmp_path / "test.csv")]
    _subprocess(script, *shared, *test_csv, "--out", str(tmp_path / "example"))
    _subprocess("-m", "rawtf.cli", "train", *shared, "--out", str(tmp_path / "command"))
    _subprocess(script, *shared, *test_csv, "--precision", "bf16", "--out", str(tmp_path / "bf16"))
    example_losses, command_losses = _losses(tmp_path / "example"), _losses(tmp_path / "command")
    assert len(example_losses) == 2 and example_losses == command_losses
    assert _losses(tmp_path / "bf16")[0] != example_losses[0]
    settings = rawtf.runs.read_config(tmp_path / "bf16")["train"]
    assert settings["precision"] == "bf16" and settings["deterministic"] is True


def test_ensemble_example_reports_members_then_the_mean(tmp_path, mnist, capsys):
    """Two fast-recipe members in bf16, the second distorted elastically: each one's result, the
    mistakes they share, then the ensemble's as the last line, which is the accuracy of the
    mean of the members' probabilities computed here; run again, the finished members are
    kept, not retrained, and with --tta the last line is the mean over members and views."""
    argv = ["--out", str(tmp_path / "ens"), "--recipe", "fast", "--members", "2"]
    argv += ["--elastic-members", "1", "--precision", "bf16"]
    assert example("train_ensemble").main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    settings = [rawtf.load_run(tmp_path / "ens" / f"seed-{s}").config for s in (0, 1)]
    chosen = [
        (c["train"]["elastic"], c["train"]["elastic_sigma"], c["train"]["seed"]) for c in settings
    ]
    assert chosen == [(0, 4, 0), (36, 6, 1)]
    assert [c["train"]["precision"] for c in settings] == ["bf16", "bf16"]
    assert re.fullmatch(r"member seed 1: test_accuracy=0\.\d{4} test_loss=\d\.\d{4}", lines[-3])
    members = [rawtf.load_run(tmp_path / "ens" / f"seed-{s}").model for s in (0, 1)]
    _, (xt, yt) = mnist
    own = [rawtf.predict(m, xt)[0] for m in members]
    errors = [int((p.argmax(axis=1) != yt).sum()) for p in own]
    assert lines[-2].startswith(f"mistakes: members {errors[0]}/{errors[1]}; ")
    mean = np.mean(own, axis=0)
    assert lines[-1].startswith(f"test_accuracy={np.mean(mean.argmax(axis=1) == yt):.4f} ")
    assert example("train_ensemble").main(argv) == 0
    again = capsys.readouterr().out
    assert "already trained, kept" in again and again.strip().splitlines()[-1] == lines[-1]
    assert "trained 0 member(s)" in again
    assert example("train_ensemble").main([*argv, "--tta", "2"]) == 0
    viewed = np.mean([rawtf.predict(m, xt, tta=2)[0] for m in members], axis=0)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"test_accuracy={np.mean(viewed.argmax(axis=1) == yt):.4f} ")
    with pytest.raises(UsageError, match=r"^--tta must be an integer >= 0, got -1$"):
        example("train_ensemble").main([*argv, "--tta", "-1"])
