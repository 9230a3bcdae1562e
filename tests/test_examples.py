"""The examples, run in-process through their main(argv) on small inputs."""

from __future__ import annotations

import importlib.util
import re

import numpy as np

import rawtf
from rawtf import kaggle
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
