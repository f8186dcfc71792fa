"""Turn a training run's best.pt into the weights srx ships (maintainers only).

Keeps the weights, the model config and a record of how they were made (training config, steps,
wall time, the command) plus a fresh Set5 evaluation on the standard protocol; drops the optimizer
state, so the packaged file stays small.

    python scripts/ship_weights.py runs/x3/best.pt --name srcnn --scale 3 --val ../shared/datasets/Set5 \
        --command "srx train --data ... --scale 3 ..."

The evaluation is recorded twice: on the clean standard protocol and with the LR JPEG-compressed at
quality 50 (`srx eval --degrade jpeg50`), the two columns `srx models` shows.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srx.checkpoint import SHIPPED, _weights_dir, model_from_checkpoint, save_checkpoint
from srx.degrade import parse_degradation
from srx.evaluate import degraded, evaluate, load_eval_set, torch_predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--name", choices=sorted(SHIPPED), default="srcnn", help="the shipped model these weights are")
    ap.add_argument("--val", type=Path, required=True, help="Set5 folder")
    ap.add_argument("--command", action="append", default=[], help="the command(s) that trained it")
    ap.add_argument("--wall-time", default="", help="wall time of the training, as text")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    model, config, payload = model_from_checkpoint(args.checkpoint, args.scale)
    pairs = load_eval_set(args.val, args.scale)
    res = evaluate(pairs, args.scale, torch_predictor(model))
    jpeg = evaluate(degraded(pairs, parse_degradation("jpeg50"), args.scale), args.scale, torch_predictor(model))
    record = payload.get("training") if "train_config" not in payload else None  # re-shipping a shipped file
    record = record or {
        "train_config": payload.get("train_config"),
        "step": payload.get("step"),
        "epoch": payload.get("epoch"),
        "elapsed_s": payload.get("elapsed_s"),
        "commands": args.command,
        "wall_time": args.wall_time,
    }
    out = args.out or _weights_dir() / SHIPPED[args.name].file.format(scale=args.scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, config, training=record,
                    eval={"set5": {**res["mean"], "images": res["images"]},
                          "set5_jpeg50": {**jpeg["mean"], "images": jpeg["images"]}})
    m, j = res["mean"], jpeg["mean"]
    print(f"{out}: Set5 x{args.scale} bicubic {m['bicubic_psnr']:.2f} dB / {m['bicubic_ssim']:.4f}, "
          f"model {m['model_psnr']:.2f} dB / {m['model_ssim']:.4f}; JPEG 50: bicubic {j['bicubic_psnr']:.2f}, "
          f"model {j['model_psnr']:.2f} dB; {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
