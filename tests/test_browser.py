"""The draw-a-digit page in a real browser: Chromium driven by Playwright draws digits
with mouse moves on ``rawtf serve``'s page and reads the prediction shown.

Needs Debian's headless Chromium (``apt-get install chromium-headless-shell``; another
binary through ``$RAWTF_CHROMIUM``). Without one the tests are skipped, unless
``$RAWTF_REQUIRE_BROWSER`` is set (as ``.ci/run`` does), which makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rawtf import config, runs
from tests.conftest import PYTHON, ROOT, python_env

CHROMIUM = os.environ.get("RAWTF_CHROMIUM", "/usr/lib/chromium/chromium-headless-shell")

try:
    import playwright.sync_api as playwright
except ImportError:  # the dev extra has it
    if os.environ.get("RAWTF_REQUIRE_BROWSER"):
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)


def _browser_or_skip() -> str:
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which(CHROMIUM)
    if found:
        return found
    message = f"no Chromium at {CHROMIUM} (apt-get install chromium-headless-shell)"
    if os.environ.get("RAWTF_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """A server on a free port for a small model trained here (small_bn, 12,000 images)."""
    folder = tmp_path_factory.mktemp("browser")
    settings = config.TrainConfig(model="small_bn", epochs=1, train_limit=12000, seed=0)
    runs.train_run(settings, out=folder / "run", verbose=0, print_fn=lambda line: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [PYTHON, "-m", "rawtf.cli", "serve", str(folder / "run"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=python_env(),
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_healthy(base: str, process) -> None:
    for _ in range(240):
        if process.poll() is not None:
            raise RuntimeError(f"rawtf serve ended: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("rawtf serve did not become healthy in 2 minutes")


@pytest.fixture(scope="module")
def page(url):
    executable = _browser_or_skip()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1000, "height": 600})
        page.goto(url + "/")
        yield page
        browser.close()


#: Strokes of each digit as a person draws them on the 280x280 pad, as point lists.
STROKES = {
    1: [[(150, 40), (145, 140), (140, 245)]],
    7: [[(70, 55), (215, 55)], [(215, 55), (170, 150), (125, 245)]],
    0: [
        [
            (140, 40),
            (85, 80),
            (70, 140),
            (85, 205),
            (140, 245),
            (195, 205),
            (210, 140),
            (195, 80),
            (140, 40),
        ]
    ],  # fmt: skip
}


def _draw(page, digit: int) -> None:
    box = page.locator("#pad").bounding_box()
    for stroke in STROKES[digit]:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
            for t in np.linspace(0, 1, 12)[1:]:
                page.mouse.move(box["x"] + x0 + t * (x1 - x0), box["y"] + y0 + t * (y1 - y0))
        page.mouse.up()


def _answer(page) -> str:
    page.wait_for_function("document.getElementById('answer').dataset.digit !== ''")
    page.wait_for_timeout(400)  # the answer to the last stroke
    return page.locator("#answer").get_attribute("data-digit")


@pytest.mark.parametrize("digit", [1, 7, 0])
def test_drawn_digits_are_read(page, digit, tmp_path):
    page.click("#clear")
    assert page.locator("#answer").get_attribute("data-digit") == ""
    _draw(page, digit)
    answer = _answer(page)
    page.screenshot(path=str(tmp_path / f"drawn-{digit}.png"))
    assert answer == str(digit), tmp_path / f"drawn-{digit}.png"
    assert page.locator("#confidence").inner_text().endswith("% sure")
    seen = page.evaluate(
        "Array.from(document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0)"
    )
    assert max(seen) == 255 and sum(v > 0 for v in seen) > 20  # the 28x28 the model saw
    widths = [page.locator(f"#bar{d}").evaluate("e => e.style.width") for d in range(10)]
    assert widths[digit] == max(widths, key=lambda w: float(w.rstrip("%")))


def test_an_uploaded_photo_is_read(page, mnist, tmp_path):
    (_, _), (x_test, y_test) = mnist
    photo = 255 - np.kron(x_test[0], np.ones((10, 10), np.uint8))  # dark ink on paper
    Image.fromarray(photo).convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    page.click("#clear")
    page.set_input_files("#photo", str(tmp_path / "photo.jpg"))
    assert _answer(page) == str(int(y_test[0]))
