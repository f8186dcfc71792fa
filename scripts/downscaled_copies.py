"""Write downscaled copies of a folder of HR images: more training data from the same pictures.

Each image is shrunk by each factor with MATLAB's antialiased bicubic (srx.protocol.imresize, in
colour) and written as PNG (`NAME_s9.png` for 0.9, `NAME_s75.png` for 0.75). A shrunk photo has more detail per pixel than
the original, closer to what a camera of lower resolution sees; training on the original and its
copies (`srx train --data T91 --data T91-down ...`) is how the shipped `camera` weights were
continued in the fifteenth session (README, Shipped weights). Copies smaller than `--min-side`
pixels are left out (training skips images smaller than its patch anyway).

    python scripts/downscaled_copies.py ../shared/datasets/T91 runs/data/T91-down
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srx.errors import SrxError
from srx.imageio import list_images, read_image, write_image
from srx.protocol import imresize


def _factor_tag(factor: float) -> str:
    """The factor's decimals, so every factor names its own file: 0.9 -> "9", 0.75 -> "75"."""
    return f"{factor:.6f}".rstrip("0").split(".", 1)[1]


def downscaled_copies(src: Path, out: Path, factors: list[float], min_side: int) -> int:
    """Write every image of `src` shrunk by each factor into `out`; returns how many were written."""
    bad = [f for f in factors if not 0 < f < 1]
    if bad:
        raise SrxError(f"--factors {bad[0]}: expected factors between 0 and 1 (a copy is smaller than the original)")
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in list_images(src):
        img = read_image(path)
        for factor in factors:
            small = imresize(img, factor)
            if min(small.shape[:2]) < min_side:
                continue
            write_image(out / f"{path.stem}_s{_factor_tag(factor)}.png", small)
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="folder of HR images")
    parser.add_argument("out", type=Path, help="folder for the copies (created)")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.9, 0.8, 0.7, 0.6])
    parser.add_argument("--min-side", type=int, default=72, help="leave out copies smaller than this")
    args = parser.parse_args()
    try:
        n = downscaled_copies(args.src, args.out, args.factors, args.min_side)
    except SrxError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {n} copies into {args.out}")


if __name__ == "__main__":
    main()
