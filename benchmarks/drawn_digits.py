"""How well a trained model reads digits as people make them: a fixed set of pictures drawn
here, read through ``rawtf.images`` (what ``rawtf predict`` and the server do).

    python benchmarks/drawn_digits.py RUN_DIR [RUN_DIR ...] [--write DIR]

The set (1,000 pictures, the same every time): typed digits in matplotlib's own fonts
(DejaVu Sans, Serif and Mono with bold and oblique faces, STIX, Computer Modern) at random
sizes, pen widths, positions and colours, dark on light or light on dark; and digits
drawn as a mouse draws them on the page (polylines with round pen ends, pen widths of 6-30
pixels on a 280-pixel pad, jittered). Prints the accuracy of each family and each digit,
and the digits most often misread.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Mouse strokes of each digit on a 280x280 pad, as lists of points.
STROKES = {
    0: [[(140, 40), (90, 70), (72, 140), (90, 210), (140, 242), (190, 210), (208, 140),
         (190, 70), (140, 40)]],
    1: [[(115, 75), (150, 40), (148, 245)]],
    2: [[(80, 85), (110, 45), (165, 42), (195, 85), (180, 135), (80, 240), (210, 240)]],
    3: [[(80, 60), (140, 40), (195, 70), (190, 115), (135, 140), (195, 170), (195, 215),
         (140, 245), (78, 225)]],
    4: [[(170, 240), (170, 40), (65, 175), (215, 175)]],
    5: [[(200, 45), (95, 45), (85, 130), (150, 118), (200, 155), (195, 215), (140, 245),
         (80, 225)]],
    6: [[(190, 50), (130, 45), (85, 110), (80, 190), (125, 242), (185, 220), (195, 170),
         (150, 135), (95, 150), (82, 185)]],
    7: [[(70, 50), (210, 50)], [(210, 50), (165, 145), (125, 245)]],
    8: [[(140, 140), (90, 105), (105, 50), (140, 40), (180, 55), (190, 100), (140, 140),
         (80, 185), (100, 235), (140, 245), (185, 230), (200, 185), (140, 140)]],
    9: [[(195, 105), (165, 55), (120, 45), (85, 80), (95, 130), (150, 140), (195, 105),
         (190, 180), (165, 245)]],
}  # fmt: skip

FONTS = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf",
    "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf",
]  # fmt: skip


def _font(name: str, size: int):
    import matplotlib

    folder = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return ImageFont.truetype(str(folder / name), size)


def _colours(rng) -> tuple[tuple, tuple]:
    """(paper, ink): dark on light mostly, sometimes light on dark, sometimes coloured."""
    kind = rng.integers(4)
    if kind == 0:
        return (0, 0, 0), (255, 255, 255)
    if kind == 1:
        return (235, 232, 220), (20, 40, 140)  # blue ballpoint on cream paper
    return (255, 255, 255), (int(rng.integers(0, 60)),) * 3


def typed(rng, digit: int) -> Image.Image:
    paper, ink = _colours(rng)
    size = int(rng.integers(80, 220))
    canvas = Image.new("RGB", (280, 280), paper)
    font = _font(FONTS[int(rng.integers(len(FONTS)))], size)
    x, y = int(rng.integers(0, 280 - size * 0.7)), int(rng.integers(0, 280 - size * 1.1))
    stroke = int(rng.integers(0, 1 + size // 25))
    ImageDraw.Draw(canvas).text((x, y), str(digit), fill=ink, font=font, stroke_width=stroke,
                                stroke_fill=ink)  # fmt: skip
    return canvas


def drawn(rng, digit: int) -> Image.Image:
    paper, ink = _colours(rng)
    canvas = Image.new("RGB", (280, 280), paper)
    draw = ImageDraw.Draw(canvas)
    pen = int(rng.integers(6, 31))
    scale, shift = rng.uniform(0.6, 1.0), rng.integers(-30, 31, 2)
    for stroke in STROKES[digit]:
        points = [
            (140 + (x - 140) * scale + shift[0] + rng.normal(0, 3),
             140 + (y - 140) * scale + shift[1] + rng.normal(0, 3))
            for x, y in stroke
        ]  # fmt: skip
        draw.line(points, fill=ink, width=pen, joint="curve")
        for x, y in points[:1] + points[-1:]:  # round pen ends
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=ink)
    return canvas


def drawn_set(count: int = 1000, seed: int = 2026):
    """``(pictures, labels, families)``: half typed, half drawn, digits in turn."""
    rng = np.random.default_rng(seed)
    pictures, labels, families = [], [], []
    for i in range(count):
        digit, family = i % 10, "typed" if (i // 10) % 2 == 0 else "mouse"
        pictures.append((typed if family == "typed" else drawn)(rng, digit))
        labels.append(digit)
        families.append(family)
    return pictures, np.array(labels), np.array(families)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--write", metavar="DIR", help="also save the pictures as PNGs there")
    args = parser.parse_args()

    import rawtf

    pictures, labels, families = drawn_set()
    if args.write:
        os.makedirs(args.write, exist_ok=True)
        for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
            picture.save(Path(args.write) / f"{i:04d}-{label}-{families[i]}.png")
    fields = np.stack([
        rawtf.images.mnist_style(np.asarray(p.convert("L"), np.float32), f"#{i}")
        for i, p in enumerate(pictures)
    ])  # fmt: skip
    for run in args.runs:
        _, predicted = rawtf.predict(rawtf.runs.load_run(run).model, fields)
        right = predicted == labels
        parts = [f"all {right.mean():.3f}"]
        parts += [f"{f} {right[families == f].mean():.3f}" for f in ("typed", "mouse")]
        print(f"{run}: " + ", ".join(parts))
        per_digit = [f"{d}: {right[labels == d].mean():.2f}" for d in range(10)]
        print("  per digit " + "  ".join(per_digit))
        errors = Counter(f"{t}→{p}" for t, p in zip(labels[~right], predicted[~right], strict=True))
        print("  most misread " + ", ".join(f"{k} x{v}" for k, v in errors.most_common(6)))


if __name__ == "__main__":
    main()
