"""Own-image preprocessing: digits drawn with Pillow's font, dark on white, off-centre."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from rawtf import images
from rawtf.errors import DataError


def drawn_digit(digit: int, size=(300, 220), at=(40, 20), font_size=150, mode="RGB", stroke=0):
    """A digit in dark ink on a white canvas, away from the centre; ``stroke`` thickens the
    pen as a marker would."""
    canvas = Image.new("RGB", size, "white")
    ImageDraw.Draw(canvas).text(
        at,
        str(digit),
        fill=(20, 20, 20),
        font=ImageFont.load_default(size=font_size),
        stroke_width=stroke,
        stroke_fill=(20, 20, 20),
    )
    return canvas.convert(mode)


def centre_of_mass(field):
    rows, cols = np.indices(field.shape)
    return (field * rows).sum() / field.sum(), (field * cols).sum() / field.sum()


@pytest.mark.parametrize(
    "mode,suffix", [("RGB", "png"), ("L", "jpg"), ("P", "gif"), ("RGBA", "png"), ("L", "bmp")]
)
def test_drawn_digit_becomes_mnist_style(tmp_path, mode, suffix):
    path = tmp_path / f"seven.{suffix}"
    drawn_digit(7, mode=mode).save(path)
    field = images.load_digit_image(path)
    assert field.shape == (28, 28) and field.dtype == np.float32
    assert field.min() >= 0 and field.max() == pytest.approx(1.0)
    assert field[0].max() < 0.05 and field[:, 0].max() < 0.05  # black background, ink is light
    ink = np.argwhere(field > 0.1)
    height, width = ink.max(axis=0) - ink.min(axis=0) + 1
    assert 18 <= max(height, width) <= 21  # longer side scaled to 20 pixels
    r, c = centre_of_mass(field)
    assert abs(r - 13.5) <= 1.0 and abs(c - 13.5) <= 1.0


def test_transparent_background_and_light_on_dark(tmp_path):
    canvas = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (30, 10), "3", fill=(0, 0, 0, 255), font=ImageFont.load_default(size=120)
    )
    canvas.save(tmp_path / "transparent.png")
    dark = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(dark).text((30, 10), "3", fill=255, font=ImageFont.load_default(size=120))
    dark.save(tmp_path / "dark.png")
    a = images.load_digit_image(tmp_path / "transparent.png")
    b = images.load_digit_image(tmp_path / "dark.png")
    assert np.abs(a - b).mean() < 0.05  # the same digit, whichever way it was drawn


def test_blank_and_unreadable(tmp_path):
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    with pytest.raises(DataError, match="no ink found"):
        images.load_digit_image(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(DataError, match="not an image Pillow can read"):
        images.load_digit_image(tmp_path / "notes.png")
    with pytest.raises(DataError, match="no such file"):
        images.load_digit_image(tmp_path / "absent.png")


def test_a_model_trained_on_mnist_reads_drawn_digits(tmp_path, mnist):
    """Digits drawn with Pillow's font at three pen widths, off-centre on large canvases,
    read by deep_bn after 2 augmented epochs on MNIST (its command-line defaults). Measured
    when written: 26 of 30 right (every printed 1, with its flag and base, reads as 7)."""
    import rawtf

    (x, y), _ = mnist
    cls = rawtf.models.get_model_class("deep_bn")
    model = rawtf.get_model("deep_bn", seed=0)
    steps = -(-len(x) // cls.default_batch_size) * 2
    optimizer = rawtf.Adam(rawtf.schedules.OneCycle(cls.default_lr, steps))
    rawtf.fit(
        model,
        optimizer,
        (x, y),
        epochs=2,
        batch_size=cls.default_batch_size,
        verbose=0,
        augment=True,
    )
    pictures, truth = [], []
    layouts = [
        ((300, 220), (40, 20), 150, 0),
        ((400, 400), (200, 150), 110, 2),
        ((160, 260), (10, 60), 130, 4),
    ]
    for digit in range(10):
        for k, (size, at, font, stroke) in enumerate(layouts):
            path = tmp_path / f"{digit}_{k}.png"
            drawn_digit(digit, size, at, font, stroke=stroke).save(path)
            pictures.append(path)
            truth.append(digit)
    _, predicted = rawtf.predict(model, images.load_digit_images(pictures))
    share = float(np.mean(predicted == np.array(truth)))
    assert share >= 0.8, (share, list(zip(truth, predicted.tolist(), strict=True)))
