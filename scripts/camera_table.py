"""The camera-robustness table of the README: shipped models vs bicubic on the same degraded LR.

    python scripts/camera_table.py --scale 3 --every 40   # Set5 and the CCTV clip from ../shared (the README's table)

For each degradation (clean, JPEG 30/50/75/95, H.264 intra at CRF 23/30 and H.265 at CRF 28/35 (PyAV), noise sigma 5, the
aliased shrink, the `camera` preset) and each data set,
prints bicubic's PSNR and each model's gain over it (standard protocol: Y, `scale` px shaved), as
`srx eval --degrade SPEC` measures them, in Markdown.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srx.checkpoint import model_from_checkpoint, resolve_weights
from srx.degrade import parse_degradation
from srx.evaluate import load_eval_data, robustness_rows, torch_predictor

REPO = Path(__file__).resolve().parents[1]
SPECS = ["none", "jpeg=30", "jpeg=50", "jpeg=75", "jpeg=95", "h264=23", "h264=30", "h265=28", "h265=35", "noise=5",
         "shrink=aliased", "camera"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["srcnn", "fast", "camera"])
    ap.add_argument("--data", nargs="+", type=Path,
                    default=[REPO.parent / "shared/datasets/Set5", REPO.parent / "shared/media/cctv_480x360.avi"])
    ap.add_argument("--every", type=int, default=20, help="video frames: every Nth")
    ap.add_argument("--specs", nargs="+", default=SPECS)
    args = ap.parse_args()
    models = {n: model_from_checkpoint(resolve_weights(n, args.scale), args.scale)[0] for n in args.models}
    head = "| data | LR degradation | bicubic dB | " + " | ".join(f"{n} (gain)" for n in models) + " |"
    print(head)
    print("|" + "---|" * (3 + len(models)))
    for data in args.data:
        pairs = load_eval_data(data, args.scale, args.every)
        label = f"{data.name} ({len(pairs)} {'frames' if data.is_file() else 'images'})"
        predictors = {n: torch_predictor(m) for n, m in models.items()}
        for spec_text in args.specs:
            row = robustness_rows(pairs, args.scale, [parse_degradation(spec_text)], predictors)[0]
            bic = row["bicubic_psnr"]
            cells = [f"{m:.2f} ({m - bic:+.2f})" for m in row["model_psnr"].values()]
            print(f"| {label} | {row['degrade']} | {bic:.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
