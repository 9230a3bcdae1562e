"""Classify digits you drew yourself (PNG, JPEG, BMP or GIF, any size, dark ink on light
paper or the other way round) with a trained run folder.

    rawtf train --model deep_bn --augment --out runs/mine       # once, for a trained run
    python examples/predict_own_image.py runs/mine my_seven.png my_two.jpg

Each picture is made MNIST-style first (grey, light ink on black, 20-pixel box, centred by
mass). Prints ``PATH<TAB>DIGIT<TAB>CONFIDENCE`` per picture, like ``rawtf predict``; with
``--show FILE.png`` also draws the pictures as the model sees them, captioned.
"""

import sys

import rawtf
from rawtf import flags
from rawtf.cli import run_guarded


def main(argv=None) -> int:
    parser = flags.ArgumentParser(prog="predict_own_image.py", description=__doc__)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder from rawtf train")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG, BMP or GIF files")
    parser.add_argument(
        "--show", metavar="FILE.png", help="also draw what the model sees, captioned"
    )
    flags.add_verbose_argument(parser)
    args = flags.parse_and_start(parser, argv)
    model = rawtf.runs.load_run(args.run_dir).model
    rawtf.runs.predict_pictures(model, args.images, show=args.show)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
