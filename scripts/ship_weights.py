"""Turn a training run's best.pt into the weights srx ships (maintainers only).

Keeps the weights, the model config and a record of how they were made (training config, steps,
wall time, the command) plus a fresh Set5 evaluation on the standard protocol; drops the optimizer
state, so the packaged file stays small.

    python scripts/ship_weights.py runs/x3/best.pt --scale 3 --val ../shared/datasets/Set5 \
        --command "srx train --data ... --scale 3 ..."
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srx.checkpoint import model_from_checkpoint, save_checkpoint
from srx.evaluate import evaluate, load_eval_set, torch_predictor

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--val", type=Path, required=True, help="Set5 folder")
    ap.add_argument("--command", action="append", default=[], help="the command(s) that trained it")
    ap.add_argument("--wall-time", default="", help="wall time of the training, as text")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    model, config, payload = model_from_checkpoint(args.checkpoint, args.scale)
    res = evaluate(load_eval_set(args.val, args.scale), args.scale, torch_predictor(model))
    record = {
        "train_config": payload.get("train_config"),
        "step": payload.get("step"),
        "epoch": payload.get("epoch"),
        "elapsed_s": payload.get("elapsed_s"),
        "commands": args.command,
        "wall_time": args.wall_time,
    }
    out = args.out or REPO / "srx" / "weights" / f"srcnn-915-x{args.scale}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, config, training=record,
                    eval={"set5": {**res["mean"], "images": res["images"]}})
    m = res["mean"]
    print(f"{out}: Set5 x{args.scale} bicubic {m['bicubic_psnr']:.2f} dB / {m['bicubic_ssim']:.4f}, "
          f"model {m['model_psnr']:.2f} dB / {m['model_ssim']:.4f}; {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
