"""The command line: in-process through main(argv), and a few real subprocesses."""

from __future__ import annotations

import argparse
import re
import subprocess

import pytest

import rawtf
from rawtf import cli, flags
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
        (
            ["train", "--out", "x", "--epochs", "0"],
            "--epochs: expected a positive integer, got '0'",
        ),
        (["train"], "the following arguments are required: --out"),
        (["train", "--out", "OUT", "--lr", "abc"], "--lr: expected a positive number"),
        (["train", "--out", "OUT", "--model", "lenet"], "invalid choice: 'lenet'"),
        (["train", "--out", "OUT", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--out", "OUT", "--recipe", "fastest"], "--recipe: invalid choice: 'fastest'"),
        (["train", "--out", "OUT", "--precision", "fp16"], "--precision: invalid choice: 'fp16'"),
        (
            ["train", "--out", "OUT", "--validation-split", "1.5"],
            "--validation-split: expected a number in [0, 1)",
        ),
        (["train", "--out", "OUT", "--data", "/nonexistent/train.csv"], "train.csv: no such file"),
        (
            ["train", "--out", "OUT", "--data", "BAD"],
            "bad.csv:1: header has 2 columns, expected 785",
        ),
        (["train", "--out", "OUT", "--resume"], "config.json: no such file"),
        (["train", "--out", "OUT", "--resume", "--overwrite"], "contradict"),
        (["train", "--out", "OUT", "--model-setting", "width"], "expected NAME=VALUE, got 'width'"),
        (
            ["train", "--out", "OUT", "--model", "deep_bn", "--model-setting", "width=0"],
            "deep_bn: width must be a positive integer, got 0",
        ),
        (
            ["train", "--out", "OUT", "--model-setting", "depth=3"],
            "model 'tutorial' has no setting 'depth'",
        ),
        (["evaluate", "OUT"], "no such file (not a rawtf run folder)"),
        (["predict", "OUT", "x.png"], "no such file (not a rawtf run folder)"),
        (
            ["submit", "OUT", "--test", "BAD", "--out", "s.csv"],
            "no such file (not a rawtf run folder)",
        ),
        (["explore", "--data", "BAD", "--out", "OUT"], "bad.csv:1: header has 2 columns"),
        (["export", "OUT", "OUT2"], "no such file (not a rawtf run folder)"),
        (["summary", "--model", "resnet"], "invalid choice: 'resnet'"),
        (
            ["train", "--out", "OUT", "--data-dir", "/nonexistent/mnist"],
            "/nonexistent/mnist: MNIST folder (data_dir) does not exist",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    (tmp_path / "bad.csv").write_text("label,pixel0\n1,2\n")
    names = {
        "OUT": str(tmp_path / "run"),
        "OUT2": str(tmp_path / "run2"),
        "BAD": str(tmp_path / "bad.csv"),
    }
    code, out, err = run_main(capsys, *[names.get(a, a) for a in argv])
    assert code == 2
    assert not (tmp_path / "run").exists()  # a failed command leaves nothing behind
    assert err.count("\n") == 1 and err.startswith("rawtf: error: ")
    assert message in err


def test_model_choices_follow_the_registry():
    builtin = {n for n in rawtf.models.model_names() if not n.startswith("test_")}
    assert set(cli.MODEL_NAMES) == builtin


def test_train_writes_a_run_folder_that_loads_back(capsys, trained_run):
    run_dir, out = trained_run
    lines = out.strip().splitlines()
    assert RESULT_LINE.match(lines[-1])
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints",
        "config.json",
        "history.json",
        "model",
        "plots",
    ]
    assert (run_dir / "plots" / "history.png").stat().st_size > 1000
    run = rawtf.runs.load_run(run_dir)
    assert run.config["train"]["epochs"] == 1 and run.config["model"]["model"] == "tutorial"
    assert len(run.history) == 1
    accuracy = float(lines[-1].split()[0].split("=")[1])
    (_, _), test = rawtf.load_mnist()
    assert rawtf.evaluate(run.model, test)["accuracy"] == pytest.approx(accuracy, abs=5e-5)


def test_existing_run_folder_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    code, _, err = run_main(
        capsys, "train", "--epochs", "1", "--train-limit", "64", "--out", str(tmp_path / "run")
    )
    assert code == 2 and "run folder exists and is not empty" in err and err.count("\n") == 1
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_evaluate_reports_per_class_accuracy_and_plots(capsys, trained_run):
    run_dir, train_out = trained_run
    code, out, err = run_main(capsys, "evaluate", str(run_dir))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == train_out.strip().splitlines()[-1]
    assert sum(line.startswith("class ") for line in lines) == 10
    for name in ("confusion_matrix.png", "most_confident_errors.png"):
        assert (run_dir / "plots" / name).stat().st_size > 1000


def test_evaluate_and_predict_in_bf16(capsys, trained_run, mnist, tmp_path):
    from PIL import Image

    run_dir, _ = trained_run
    model = rawtf.runs.load_run(run_dir).model
    test = mnist[1]  # what `rawtf evaluate` reads by default
    fp32 = rawtf.evaluate(model, test)
    bf16 = rawtf.evaluate(model, test, precision="bf16")
    assert bf16["loss"] != fp32["loss"] and abs(bf16["accuracy"] - fp32["accuracy"]) < 0.01
    code, out, err = run_main(capsys, "evaluate", str(run_dir), "--precision", "bf16")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == cli.result_line(bf16)

    x = test[0][:2]
    paths = [tmp_path / f"digit{i}.png" for i in range(len(x))]
    for path, image in zip(paths, x, strict=True):
        Image.fromarray(image).save(path)
    pictures = rawtf.images.load_digit_images(paths)
    probabilities, labels = rawtf.predict(model, pictures, precision="bf16")
    code, out, err = run_main(
        capsys, "predict", str(run_dir), *map(str, paths), "--precision", "bf16"
    )
    assert code == 0, err
    for line, label, p in zip(out.strip().splitlines(), labels, probabilities, strict=True):
        assert line.split("\t")[1:] == [str(label), f"{p[label]:.4f}"]
    code, _, err = run_main(capsys, "evaluate", str(run_dir), "--precision", "fp16")
    assert code == 2 and "--precision: invalid choice" in err


def test_submit_and_csv_training(capsys, trained_run, tmp_path, small_mnist):
    from rawtf import kaggle

    run_dir, _ = trained_run
    (x, y), (xt, yt) = small_mnist
    test_csv = tmp_path / "test.csv"
    kaggle.write_kaggle_csv(xt[:50], None, test_csv)
    code, out, err = run_main(
        capsys, "submit", str(run_dir), "--test", str(test_csv), "--out", str(tmp_path / "sub.csv")
    )
    assert code == 0, err
    rows = (tmp_path / "sub.csv").read_text().splitlines()
    assert rows[0] == "ImageId,Label" and rows[1].startswith("1,") and len(rows) == 51
    predicted = [int(r.split(",")[1]) for r in rows[1:]]
    _, expected = rawtf.predict(rawtf.runs.load_run(run_dir).model, xt[:50])
    assert predicted == expected.tolist()
    train_csv = tmp_path / "train.csv"
    kaggle.write_kaggle_csv(x[:300], y[:300], train_csv)
    code, out, err = run_main(
        capsys,
        "train",
        "--data",
        str(train_csv),
        "--epochs",
        "1",
        "--validation-split",
        "0.2",
        "--out",
        str(tmp_path / "csvrun"),
    )
    assert code == 0, err
    assert "test_accuracy" not in out  # a Kaggle train.csv has no labelled test set
    assert rawtf.runs.load_run(tmp_path / "csvrun").config["train_size"] == 240
    code, _, err = run_main(capsys, "train", "--data", str(test_csv), "--out", str(tmp_path / "x"))
    assert code == 2 and "has no label column" in err


def test_predict_own_images(capsys, trained_run, tmp_path, small_mnist):
    from PIL import Image

    run_dir, _ = trained_run
    x = small_mnist[1][0]
    paths = []
    for i in range(3):  # MNIST digits, enlarged, dark on white, as a person might draw them
        picture = Image.fromarray(255 - x[i]).resize((140, 140))
        paths.append(tmp_path / f"digit{i}.png")
        picture.save(paths[-1])
    code, out, err = run_main(capsys, "predict", str(run_dir), *map(str, paths))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for path, line in zip(paths, lines, strict=True):
        name, digit, confidence = line.split("\t")
        assert (
            name == str(path) and digit in "0123456789" and re.fullmatch(r"[01]\.\d{4}", confidence)
        )
    code, _, err = run_main(capsys, "predict", str(run_dir), str(tmp_path / "missing.png"))
    assert code == 2 and "missing.png: no such file" in err


def test_explore(capsys, tmp_path):
    code, out, err = run_main(capsys, "explore", "--out", str(tmp_path / "explore"))
    assert code == 0, err
    assert "train_images: 60000" in out and "'1': 6742" in out
    for name in ("stats.json", "first_images.png", "label_distribution.png"):
        assert (tmp_path / "explore" / name).stat().st_size > 100


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


def test_export_command(capsys, trained_run, tmp_path):
    run_dir, _ = trained_run
    code, out, err = run_main(capsys, "export", str(run_dir), str(tmp_path / "served"))
    assert code == 0, err
    assert (tmp_path / "served" / "saved_model.pb").is_file() and "(fp32)" in out
    code, out, err = run_main(
        capsys, "export", str(run_dir), str(tmp_path / "served16"), "--precision", "bf16"
    )
    assert code == 0, err
    assert (tmp_path / "served16" / "saved_model.pb").is_file() and "(bf16)" in out
    code, _, err = run_main(capsys, "export", str(tmp_path / "no-run"), str(tmp_path / "x"))
    assert code == 2 and "no such file (not a rawtf run folder)" in err


def _prepared(*argv):
    """The settings ``rawtf train --out OUT ARGV`` resolves to."""
    return flags.train_config(cli.build_parser().parse_args(["train", "--out", "OUT", *argv]))


def test_model_settings_lie_over_the_recipes():
    """``--model-setting`` values are JSON numbers and booleans or else text; they add to
    the recipe's model settings, which a different ``--model`` drops."""
    wide = _prepared("--recipe", "best", "--model-setting", "width=48", "--model-setting", "fc=256")
    assert wide.model_settings == {"bn_fused": True, "width": 48, "fc": 256}
    assert _prepared("--recipe", "fast", "--model", "deep_bn").model_settings == {}
    assert _prepared("--recipe", "fast", "--model", "small_bn").model_settings["width"] == 8
    mixed = ["--model-setting", "bn_fused=false", "--model-setting", "rate=0.5"]
    mixed += [
        "--model-setting",
        "name=x=y",
        "--model-setting",
        "width=7",
        "--model-setting",
        "width=9",
    ]
    assert _prepared(*mixed).model_settings == {
        "bn_fused": False,
        "rate": 0.5,
        "name": "x=y",
        "width": 9,
    }


def test_recipe_fills_what_the_flags_leave_out():
    plain = _prepared()
    assert (plain.model, plain.epochs, plain.precision, plain.augment) == (
        "tutorial",
        3,
        "fp32",
        False,
    )
    fast = _prepared("--recipe", "fast")
    recipe = rawtf.config.get_recipe("fast")
    assert (fast.model, fast.epochs, fast.batch_size, fast.lr, fast.precision) == (
        recipe.model,
        recipe.epochs,
        recipe.batch_size,
        recipe.lr,
        recipe.precision,
    )
    mixed = _prepared("--recipe", "best", "--epochs", "2", "--precision", "bf16", "--lr", "1e-3")
    best = rawtf.config.get_recipe("best")
    assert (mixed.epochs, mixed.precision, mixed.lr) == (2, "bf16", 1e-3)  # flags win
    assert (mixed.model, mixed.augment, mixed.model_settings) == (
        best.model,
        True,
        {"bn_fused": True},
    )
    assert mixed.validation_split == 0.0  # best trains on the whole training set...
    watched = _prepared("--recipe", "best", "--validation-split", "0.083333")
    assert watched.validation_split == 0.083333  # ...unless told to hold some out


def test_train_with_a_recipe_records_its_settings(capsys, tmp_path):
    code, out, err = run_main(
        capsys,
        "train",
        "--recipe",
        "fast",
        "--train-limit",
        "1024",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 0, err
    assert "training small_bn on 1024 images for 2 epoch(s) (recipe fast)" in out
    assert re.search(r"wall time from TensorFlow import to the test result: \d+\.\ds", out)
    assert RESULT_LINE.match(out.strip().splitlines()[-1])
    settings = rawtf.runs.read_config(tmp_path / "run")["train"]
    assert settings["recipe"] == "fast" and settings["label_smoothing"] == 0.1
    assert settings["train_limit"] == 1024  # the flag wins over the recipe's 50000
    model = rawtf.load_run(tmp_path / "run").model
    assert model.model_name == "small_bn" and model.settings["bn_fused"] is True
    assert (model.settings["blocks"], model.settings["stem_stride"]) == (2, 2)


@pytest.mark.parametrize(
    "flag,value,stored",
    [("--model", "deep_bn", "'tutorial'"), ("--seed", "5", "0"), ("--batch-size", "32", "64")],
)
def test_resume_refuses_a_flag_contradicting_the_stored_run(
    capsys, trained_run, flag, value, stored
):
    run_dir, _ = trained_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code, out, err = run_main(capsys, "train", "--out", str(run_dir), "--resume", flag, value)
    assert code == 2 and err.count("\n") == 1
    shown = repr(int(value)) if value.isdigit() else repr(value)
    assert err.startswith(f"rawtf: error: {flag} {shown} contradicts the run in {run_dir}, ")
    assert f"which has {stored}" in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_resume_extends_a_run_and_records_it(capsys, tmp_path):
    run_dir = str(tmp_path / "run")
    common = ["--model", "three_conv", "--train-limit", "256", "--batch-size", "64"]
    assert run_main(capsys, "train", *common, "--epochs", "1", "--out", run_dir)[0] == 0
    code, out, err = run_main(capsys, "train", "--resume", "--epochs", "2", "--out", run_dir)
    assert code == 0, err
    assert "resuming from epoch 2, step 0" in out and "training three_conv on 256 images" in out
    settings = rawtf.runs.read_config(run_dir)["train"]
    assert (settings["epochs"], settings["model"], settings["batch_size"]) == (2, "three_conv", 64)
    assert [row["epoch"] for row in rawtf.load_run(run_dir).history] == [1, 2]


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_describes_every_command_with_examples_and_defaults():
    parser = cli.build_parser()
    assert "COMMAND --help" in parser.format_help()
    for name, sub in _subparsers(parser).items():
        text = sub.format_help()
        assert "\nexamples:\n  rawtf " + name in text, name
        assert len(sub.description) > 60, name  # a description, not a fragment
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = action.option_strings or [action.dest]
            assert action.help, (name, label)
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            if action.option_strings and has_default:
                assert "default" in action.help, (name, label)


def test_train_flags_all_show_their_default():
    train = _subparsers(cli.build_parser())["train"]
    for action in train._actions:
        if action.dest in rawtf.config.SETTINGS:
            assert "default" in action.help, action.dest


def test_usage_errors_have_one_prefix(capsys):
    code, _, err = run_main(capsys, "train", "--epochs", "0", "--out", "x")
    assert code == 2
    assert err == "rawtf: error: argument --epochs: expected a positive integer, got '0'\n"
    code, _, err = run_main(capsys)
    assert err.startswith("rawtf: error: a command is required (train, ")


def test_summary_answers_without_tensorflow():
    script = (
        "import sys; from rawtf import cli; code = cli.main(['summary', '--model', 'deep_bn']); "
        "assert code == 0 and 'tensorflow' not in sys.modules, sorted(sys.modules)"
    )
    proc = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, env=python_env(), cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout == rawtf.get_model("deep_bn").summary(print_fn=None) + "\n"
    assert "Total params: 327,242" in proc.stdout


def test_commands_say_which_files_they_wrote(capsys, trained_run, tmp_path):
    from PIL import Image

    run_dir, train_out = trained_run
    assert f"wrote {run_dir / 'plots' / 'history.png'}" in train_out
    code, out, _ = run_main(capsys, "evaluate", str(run_dir))
    assert code == 0
    for name in ("confusion_matrix.png", "most_confident_errors.png"):
        assert f"wrote {run_dir / 'plots' / name}" in out
    (x, _), _ = rawtf.load_mnist()
    pictures = []
    for i in range(3):
        pictures.append(tmp_path / f"digit{i}.png")
        Image.fromarray(255 - x[i]).resize((112, 112)).save(pictures[-1])
    shown = tmp_path / "seen.png"
    code, out, err = run_main(
        capsys, "predict", str(run_dir), *map(str, pictures), "--show", str(shown)
    )
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"wrote {shown}"
    with Image.open(shown) as image:
        assert image.size[0] >= 3 * 200  # each picture large enough to read
    code, out, _ = run_main(capsys, "explore", "--out", str(tmp_path / "explore"))
    assert code == 0
    for name in ("stats.json", "first_images.png", "label_distribution.png"):
        assert f"wrote {tmp_path / 'explore' / name}" in out


def test_ema_and_label_smoothing_flags_reach_the_run(capsys, tmp_path):
    """--ema and --label-smoothing are recorded, and with a validation split the averaged
    weights' validation result is printed (it is the final model's, evaluated here)."""
    out_dir = tmp_path / "run"
    code, out, err = run_main(
        capsys,
        "train",
        *("--model", "three_conv", "--epochs", "1", "--train-limit", "600"),
        *("--validation-split", "0.25", "--ema", "0.9", "--label-smoothing", "0.05"),
        *("--out", str(out_dir)),
    )
    assert code == 0, err
    settings = rawtf.runs.read_config(out_dir)["train"]
    assert (settings["ema"], settings["label_smoothing"]) == (0.9, 0.05)
    line = re.search(r"validation with the averaged weights: val_accuracy=(0\.\d{4})", out)
    (x, y), _ = rawtf.load_mnist()
    (_, _), (xv, yv) = rawtf.data.train_validation_split(x[:600], y[:600], 0.25, seed=0)
    model = rawtf.load_run(out_dir).model
    assert line and float(line.group(1)) == round(rawtf.evaluate(model, (xv, yv))["accuracy"], 4)
