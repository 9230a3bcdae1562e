"""The command line: in-process through main(argv), and a few real subprocesses."""

from __future__ import annotations

import re
import subprocess

import pytest

import rawtf
from rawtf import cli
from tests.conftest import PYTHON, ROOT, python_env

RESULT_LINE = re.compile(r"^test_accuracy=0\.\d{4} test_loss=\d+\.\d{4}$")


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary(capsys):
    code, out, err = run_main(capsys, "summary", "--model", "tutorial")
    assert code == 0 and err == ""
    assert "Total params: 3,274,634" in out


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"rawtf {rawtf.__version__}"


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "a command is required"),
        (["train", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
        (["train", "--lr", "abc"], "--lr: expected a positive number"),
        (["train", "--model", "lenet"], "invalid choice: 'lenet'"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--validation-split", "1.5"], "--validation-split: expected a number in [0, 1)"),
        (
            ["train", "--data-dir", "/nonexistent/mnist"],
            "/nonexistent/mnist: MNIST folder (data_dir) does not exist",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rawtf: error: ")
    assert message in err


def test_model_choices_follow_the_registry():
    builtin = {n for n in rawtf.models.model_names() if not n.startswith("test_")}
    assert set(cli.MODEL_NAMES) == builtin


def test_train_saves_a_loadable_model(capsys, tmp_path):
    code, out, err = run_main(
        capsys,
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "256",
        "--batch-size",
        "64",
        "--out",
        str(tmp_path / "model"),
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert RESULT_LINE.match(lines[-1])
    model = rawtf.load(tmp_path / "model")
    accuracy = float(lines[-1].split()[0].split("=")[1])
    (_, _), test = rawtf.load_mnist()
    assert rawtf.evaluate(model, test)["accuracy"] == pytest.approx(accuracy, abs=5e-5)


def test_example_end_to_end_is_quiet():
    proc = subprocess.run(
        [
            PYTHON,
            str(ROOT / "examples" / "train_mnist.py"),
            "--epochs",
            "1",
            "--train-limit",
            "512",
        ],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no TensorFlow start-up chatter
    lines = proc.stdout.strip().splitlines()
    assert lines[1].startswith("epoch 1/1  loss=")
    assert RESULT_LINE.match(lines[-1]), lines[-1]


def test_example_bad_input_exits_2_with_one_line():
    proc = subprocess.run(
        [PYTHON, str(ROOT / "examples" / "train_mnist.py"), "--data-dir", "/nonexistent"],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr == "rawtf: error: /nonexistent: MNIST folder (data_dir) does not exist\n"


def test_schedule_choices_follow_the_schedules_module():
    assert set(cli.SCHEDULE_NAMES) == set(rawtf.schedules.SCHEDULES)
