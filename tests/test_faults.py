"""Faults injected for real: a full disk (without root: writes fail with EFBIG under
``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so the process lives), damaged checkpoints, a
run folder that is not rawtf's. Each ends in one ``rawtf: error:`` line, exit 2, and leaves
every file that was there before as it was, with no temporary file behind."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rawtf
from rawtf import kaggle, saving
from rawtf.errors import CheckpointError, RawtfError
from tests.conftest import PYTHON, ROOT, python_env

#: Far below a checkpoint of the tutorial net (13 MB), above every config and log file.
LIMIT = 1 << 20


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored stays ignored across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_limited(args: list[str], limit: int = LIMIT, cwd=None) -> subprocess.CompletedProcess:
    """``args`` run by this interpreter with files limited to ``limit`` bytes."""
    return subprocess.run(
        [PYTHON, *args],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=cwd or ROOT,
        timeout=600,
        preexec_fn=_limit_file_size(limit),
    )


def rawtf_limited(*argv: str, limit: int = LIMIT) -> subprocess.CompletedProcess:
    return run_limited(["-m", "rawtf.cli", *argv], limit)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symbolic links not followed) with its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_one_error_line(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rawtf: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "function_node" not in proc.stderr and "[Op:" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run_dir, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_full_disk_while_training_keeps_the_last_checkpoint(run_copy):
    before = snapshot(run_copy / "checkpoints")
    proc = rawtf_limited("train", "--out", str(run_copy), "--resume", "--epochs", "2")
    assert_one_error_line(proc, f"{run_copy}/checkpoints: cannot write checkpoint", "too large")
    assert snapshot(run_copy / "checkpoints") == before  # no temporary, the latest in force
    assert snapshot(run_copy / "model")  # the finished run's model is still there
    # The run resumes from that checkpoint once there is room again.
    code = rawtf.cli.main(["train", "--out", str(run_copy), "--resume", "--epochs", "2"])
    assert code == 0
    assert [row["epoch"] for row in rawtf.runs.load_run(run_copy).history] == [1, 2]


def test_full_disk_on_export_keeps_the_previous_export(run_copy, tmp_path):
    served = tmp_path / "served"
    assert rawtf.cli.main(["export", str(run_copy), str(served)]) == 0
    before, entries = snapshot(served), sorted(os.listdir(tmp_path))
    proc = rawtf_limited("export", str(run_copy), str(served))
    assert_one_error_line(proc, f"{served}: cannot write (File too large)")
    assert snapshot(served) == before and sorted(os.listdir(tmp_path)) == entries


def test_full_disk_on_save_keeps_the_previous_model(tmp_path):
    target = tmp_path / "model"
    saving.save(rawtf.get_model("tutorial", seed=1), target)
    before, entries = snapshot(target), sorted(os.listdir(tmp_path))
    script = textwrap.dedent(
        f"""
        import rawtf
        try:
            rawtf.save(rawtf.get_model("tutorial", seed=2), {str(target)!r})
        except rawtf.errors.CheckpointError as e:
            print(e)
        """
    )
    proc = run_limited(["-c", script])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{target}: cannot write (File too large)\n"
    assert snapshot(target) == before and sorted(os.listdir(tmp_path)) == entries


def test_full_disk_on_submit_keeps_the_previous_file(run_copy, tmp_path, small_mnist):
    (_, _), (x_test, _) = small_mnist
    kaggle.write_kaggle_csv(x_test[:1000], None, tmp_path / "test.csv")
    submission = tmp_path / "submission.csv"
    submission.write_text("ImageId,Label\n1,7\n")
    entries = sorted(os.listdir(tmp_path))
    proc = rawtf_limited(
        "submit",
        str(run_copy),
        "--test",
        str(tmp_path / "test.csv"),
        "--out",
        str(submission),
        limit=4096,  # the test file is read, the 1000-row answer cannot be written
    )
    assert_one_error_line(proc, f"{submission}: cannot write (File too large)")
    assert submission.read_text() == "ImageId,Label\n1,7\n"
    assert sorted(os.listdir(tmp_path)) == entries


@pytest.mark.parametrize("damage", ["truncate", "flip"])
@pytest.mark.parametrize("part", ["index", "data"])
def test_damaged_checkpoints_are_checkpoint_errors(run_copy, damage, part):
    """Every cut and every flipped bit of a saved model's files: a CheckpointError naming
    the checkpoint, or (a bit the reader never uses) the very same weights."""
    variables = run_copy / "model" / "variables"
    name = "ckpt.index" if part == "index" else "ckpt.data-00000-of-00001"
    original = (variables / name).read_bytes()
    reference = {k: v.numpy() for k, v in saving.load(run_copy / "model").variable_map().items()}
    rng = np.random.default_rng(len(original))
    positions = sorted({0, 1, len(original) - 1, *rng.integers(0, len(original), 12).tolist()})
    for at in positions:
        damaged = bytearray(original[:at] if damage == "truncate" else original)
        if damage == "flip":
            damaged[at] ^= 1 << int(rng.integers(8))
        (variables / name).write_bytes(bytes(damaged))
        try:
            model = saving.load(run_copy / "model")
        except CheckpointError as e:
            assert str(variables / "ckpt") in str(e) and "\n" not in str(e), str(e)
            continue
        assert damage == "flip", f"a model loaded from {name} cut at {at}"
        for key, value in model.variable_map().items():
            np.testing.assert_array_equal(value.numpy(), reference[key], err_msg=f"byte {at}")
    (variables / name).write_bytes(original)


def test_a_truncated_training_checkpoint_stops_resume_with_one_line(capsys, run_copy):
    data = next((run_copy / "checkpoints").glob("ckpt-*.data-*"))
    os.truncate(data, data.stat().st_size // 2)
    code = rawtf.cli.main(["train", "--out", str(run_copy), "--resume", "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "does not match this training run (Read less bytes than requested)" in err


def test_an_error_after_resume_is_still_one_line(run_copy):
    """A checkpoint that is restored and then refused used to leave TensorFlow's warnings
    about unrestored values on stderr as the process ended."""
    config = run_copy / "config.json"
    config.write_text(config.read_text().replace('"seed": 0', '"seed": 5'))
    proc = rawtf_limited(
        "train", "--out", str(run_copy), "--resume", "--epochs", "2", limit=1 << 40
    )
    assert_one_error_line(proc, "was written by a run with seed 0, not 5")


OTHER_TYPES = [None, True, 7, -1, 2.5, "text", [1, 2], {"a": 1}, 2**70]


def _field_paths(node, prefix=()):
    for key, value in node.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _field_paths(value, (*prefix, key))


def _with_value(config, path, value):
    edited = json.loads(json.dumps(config))
    node = edited
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return edited


@pytest.mark.parametrize("which", ["config.json", "model/config.json"])
def test_config_json_fields_of_another_type(run_copy, which):
    """Every field (nested ones too) replaced by a value of each other type: reading the
    run gives a rawtf error naming the file, or a run whose settings are still valid."""
    path = run_copy / which
    original = json.loads(path.read_text())
    refused = 0
    for field in _field_paths(original):
        for value in OTHER_TYPES:
            path.write_text(json.dumps(_with_value(original, field, value)))
            try:
                run = rawtf.runs.load_run(run_copy)
                settings = rawtf.config.stored_config(run_copy)
            except RawtfError as e:
                assert str(path) in str(e) and "\n" not in str(e), (field, value, str(e))
                refused += 1
                continue
            assert isinstance(run.model, rawtf.Model) and settings.epochs >= 1
    assert refused > len(list(_field_paths(original))), "most edits must be refused"
    path.write_text(json.dumps(original))


def test_config_json_cannot_point_reads_elsewhere(capsys, run_copy, tmp_path):
    """The data a run was trained on is recorded, not obeyed: resuming reads what the
    flags say and checks it is the same data."""
    bad = tmp_path / "elsewhere.csv"
    kaggle.write_kaggle_csv(np.zeros((3, 28, 28), np.uint8), np.array([1, 2, 3]), bad)
    config = json.loads((run_copy / "config.json").read_text())
    config["train"]["data"] = str(bad)
    (run_copy / "config.json").write_text(json.dumps(config))
    code = rawtf.cli.main(["train", "--out", str(run_copy), "--resume", "--epochs", "2"])
    assert code == 0, capsys.readouterr().err  # MNIST, as the flags (none) say
    assert json.loads((run_copy / "config.json").read_text())["train"]["data"] == "mnist"
    capsys.readouterr()
    code = rawtf.cli.main(
        ["train", "--out", str(run_copy), "--resume", "--epochs", "3", "--data", str(bad)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "the run was trained on other data than --data" in err and "1024 images recorded" in err


def _user_folder(folder: Path) -> dict[str, str]:
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.h5").write_bytes(b"the user's own")
    (folder / "plots").mkdir()
    (folder / "plots" / "figure.png").write_bytes(b"png")
    (folder / "config.json").write_text('{"learning_rate": 0.1}')
    (folder / "history.json").write_text("[]")
    return snapshot(folder)


def test_overwrite_leaves_a_folder_rawtf_did_not_make_alone(capsys, tmp_path):
    folder = tmp_path / "experiment"
    before = _user_folder(folder)
    argv = ["train", "--epochs", "1", "--train-limit", "64", "--out", str(folder), "--overwrite"]
    assert rawtf.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a rawtf run folder, so --overwrite leaves it alone" in err
    assert snapshot(folder) == before


def test_overwrite_checks_everything_before_removing_anything(capsys, run_copy, tmp_path):
    elsewhere = tmp_path / "kept-checkpoints"
    shutil.move(run_copy / "checkpoints", elsewhere)
    (run_copy / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    (run_copy / "notes.txt").write_text("mine")
    before, linked = snapshot(run_copy), snapshot(elsewhere)
    argv = ["train", "--epochs", "1", "--train-limit", "64", "--out", str(run_copy), "--overwrite"]
    assert rawtf.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoints: is a symbolic link" in err
    assert snapshot(run_copy) == before and snapshot(elsewhere) == linked
    (run_copy / "checkpoints").unlink()
    assert rawtf.cli.main(argv) == 0
    assert (run_copy / "notes.txt").read_text() == "mine"
    assert rawtf.runs.read_config(run_copy)["train"]["train_limit"] == 64
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("mask", [0o002, 0o027])
def test_everything_written_honours_the_umask(tmp_path, small_mnist, mask):
    """Run folder, checkpoints (best/ too), exported SavedModel, submission and plots: files
    0666 and folders 0777 less the umask, whatever TensorFlow or tempfile default to."""
    (_, _), (x_test, _) = small_mnist
    kaggle.write_kaggle_csv(x_test[:20], None, tmp_path / "test.csv")
    out = tmp_path / "made"
    out.mkdir()
    script = textwrap.dedent(
        f"""
        import os, sys
        os.umask({mask})
        from rawtf import cli
        os.chdir({str(out)!r})
        for argv in (
            ["train", "--epochs", "1", "--train-limit", "256", "--batch-size", "64",
             "--validation-split", "0.25", "--out", "run"],
            ["export", "run", "exported"],
            ["evaluate", "run"],
            ["submit", "run", "--test", {str(tmp_path / "test.csv")!r}, "--out", "s.csv"],
        ):
            assert cli.main(argv) == 0, argv
        """
    )
    proc = run_limited(["-c", script], limit=resource.RLIM_INFINITY)
    assert proc.returncode == 0, proc.stderr
    modes = {
        str(p.relative_to(out)): (p.stat().st_mode & 0o777, p.is_dir()) for p in out.rglob("*")
    }
    assert "run/checkpoints/best" in modes and "exported/variables" in modes
    wrong = {
        name: oct(mode)
        for name, (mode, is_dir) in modes.items()
        if mode != (0o777 if is_dir else 0o666) & ~mask
    }
    assert not wrong, wrong


def _hostile_files(tmp: Path) -> dict[str, Path]:
    """Small files that attack a reader: built here, each a few KB at most."""
    from tests.test_images import png_header_only
    from tests.test_mnist import _gzip_bomb

    files = {}
    png_header_only(tmp / "bomb.png", 30000, 30000)
    files["bomb.png"] = tmp / "bomb.png"
    mnist_dir = tmp / "mnist"
    shutil.copytree(ROOT / "data" / "mnist", mnist_dir)
    header = bytes([0, 0, 8, 1]) + (60000).to_bytes(4, "big")
    _gzip_bomb(mnist_dir / "train-labels-idx1-ubyte.gz", header, 64 << 20)
    files["mnist"] = mnist_dir
    rows = "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n"
    (tmp / "latin1.csv").write_bytes((rows + "1," + "0," * 783 + "0\n").encode() + b"2,\xe9\n")
    files["latin1.csv"] = tmp / "latin1.csv"
    (tmp / "huge-number.csv").write_text(rows + "1," + "0," * 782 + "1e20,0\n")
    files["huge-number.csv"] = tmp / "huge-number.csv"
    return files


@pytest.mark.parametrize(
    "argv,message",
    [
        (["predict", "RUN", "bomb.png"], "bomb.png: picture of 900,000,000 pixels is over the"),
        (
            ["train", "--epochs", "1", "--data-dir", "mnist", "--out", "x"],
            "train-labels-idx1-ubyte.gz: IDX data has trailing bytes after shape (60000,)",
        ),
        (["explore", "--data", "latin1.csv", "--out", "x"], "latin1.csv:3: not UTF-8 text"),
        (
            ["train", "--data", "huge-number.csv", "--out", "x"],
            "huge-number.csv:2: column pixel782 is '1e20', expected an integer 0-255",
        ),
        (["train", "--seed", "1180591620717411303424", "--out", "x"], "integer <= 2147483647"),
    ],
)
def test_hostile_files_through_the_command_line(capsys, trained_run, tmp_path, argv, message):
    files = {name: str(path) for name, path in _hostile_files(tmp_path).items()}
    files["RUN"] = str(trained_run[0])
    code = rawtf.cli.main([files.get(a, a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rawtf: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "x").exists()
