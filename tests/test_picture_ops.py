"""MNIST's picture geometry in TensorFlow ops against an independent numpy + Pillow
reference of the same recipe (median border as paper, invert light paper, threshold 40,
bounding box, Lanczos to 20 pixels on the longer side, centre of mass at the centre; strokes
thinner than 1.4 pixels there thickened by 3x3 dilations towards 2, up to 3 rounds)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rawtf import picture_ops
from tests.test_images import drawn_digit


def width(field: np.ndarray) -> float:
    inked = np.pad(field > 0.5, 1).astype(float)
    edges = np.abs(np.diff(inked, axis=0)).sum() + np.abs(np.diff(inked, axis=1)).sum()
    return 2 * inked.sum() / max(edges, 1)


def dilate(ink: np.ndarray, steps: int) -> np.ndarray:
    grown = np.pad(ink, steps)
    for _ in range(steps):
        shifted = np.pad(grown, 1, constant_values=-np.inf)
        h, w = grown.shape
        grown = np.max([shifted[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)
    return grown


def place(ink: np.ndarray) -> tuple[np.ndarray, float]:
    mask = ink > 40
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = 20 / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    box = Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.LANCZOS)
    box = np.clip(np.asarray(box, dtype=np.float32), 0.0, None)
    com_y = (box.sum(axis=1) * np.arange(new_h)).sum() / box.sum()
    com_x = (box.sum(axis=0) * np.arange(new_w)).sum() / box.sum()
    top = int(np.clip(round(13.5 - com_y), 0, 28 - new_h))
    left = int(np.clip(round(13.5 - com_x), 0, 28 - new_w))
    field = np.zeros((28, 28), np.float32)
    field[top : top + new_h, left : left + new_w] = box
    return field / field.max(), scale


def reference(grey: np.ndarray) -> np.ndarray:
    grey = grey.astype(np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.sort(border)[len(border) // 2])
    if background > 127:
        grey, background = 255.0 - grey, 255.0 - background
    ink = np.clip(grey - background, 0.0, None)
    field, scale = place(ink)
    for _ in range(3):
        if width(field) >= 1.4:
            break
        steps = int(np.clip(np.ceil((2.0 - width(field)) / (2 * scale) - 0.25), 1, 64))
        ink = dilate(ink, steps).astype(np.float32)
        field, scale = place(ink)
    return field


def pictures():
    """Digits in several sizes, pen widths, positions and aspect ratios, both ways round;
    the large thin ones are thickened."""
    rng = np.random.default_rng(7)
    for digit in range(10):
        for size, at, font, stroke in [
            ((300, 220), (40, 20), 150, 0),
            ((100, 100), (10, 0), 80, 3),
            ((600, 200), (300, 10), 160, 8),
            ((900, 900), (200, 100), 600, 0),
        ]:
            grey = np.asarray(drawn_digit(digit, size, at, font, "L", stroke), np.float32)
            yield grey if rng.random() < 0.5 else 255 - grey


@pytest.mark.parametrize("index", range(40))
def test_matches_the_reference(index):
    grey = list(pictures())[index]
    field, found = picture_ops.placed(grey)
    assert bool(found)
    np.testing.assert_allclose(field.numpy(), reference(grey), atol=1e-4)


def test_thin_strokes_are_thickened_to_mnist_width():
    thin = np.zeros((900, 900), np.float32)
    thin[100:800, 445:449] = 255  # a 4-pixel line, 700 long: 0.1 pixels wide in 28x28
    thin[100:104, 300:449] = 255
    field = picture_ops.placed(thin)[0].numpy()
    assert 1.4 <= width(field) <= 3.0
    assert width(place(thin)[0]) < 1.0  # without the rule it would be a hairline
    typical = np.asarray(drawn_digit(4, mode="L", stroke=3), np.float32)
    assert width(place(255 - typical)[0]) >= 1.4  # a usual pen is left as it is
    np.testing.assert_allclose(
        picture_ops.placed(typical)[0].numpy(), place(255 - typical)[0], atol=1e-4
    )


def test_blank_and_tiny_pictures():
    field, found = picture_ops.placed(np.full((30, 40), 200, np.float32))
    assert not bool(found) and float(field.numpy().max()) == 0.0
    dot = np.zeros((5, 5), np.float32)
    dot[2, 2] = 255
    field, found = picture_ops.placed(dot)
    assert bool(found) and field.shape == (28, 28) and field.numpy().max() == pytest.approx(1)
    field, found = picture_ops.placed(np.full((1, 1), 255, np.float32))
    assert not bool(found)  # a single pixel is its own border: paper, no ink
