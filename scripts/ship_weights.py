"""Turn a training run's best.pt into the weights srx ships (maintainers only).

Keeps the weights, the model config and a record of how they were made (training config, steps,
wall time, the command) plus a fresh Set5 evaluation on the standard protocol; drops the optimizer
state, so the packaged file stays small.

    python scripts/ship_weights.py runs/x3/best.pt --name srcnn --scale 3 --val ../shared/datasets/Set5 \
        --command "srx train --data ... --scale 3 ..."

The evaluation is recorded for each of `srx.catalog.EVALUATIONS`: the clean standard protocol, the
LR JPEG-compressed at quality 50 (`srx eval --degrade jpeg50`) and the `camera` preset (`srx eval
--degrade camera`), the columns `srx models` shows. Re-shipping a shipped file keeps its training
record and re-measures these.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srx.catalog import EVALUATIONS
from srx.checkpoint import SHIPPED, _weights_dir, model_from_checkpoint, save_checkpoint
from srx.degrade import parse_degradation
from srx.evaluate import degraded, evaluate, load_eval_set, torch_predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    results = {key: evaluate(degraded(pairs, parse_degradation(preset), args.scale), args.scale, torch_predictor(model))
               for key, (preset, _) in EVALUATIONS.items()}
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
                    eval={key: {**r["mean"], "images": r["images"]} for key, r in results.items()})
    scores = "; ".join(f"{EVALUATIONS[key][1]}: bicubic {r['mean']['bicubic_psnr']:.2f}, model {r['mean']['model_psnr']:.2f} dB"
                       for key, r in results.items())
    print(f"{out}: Set5 x{args.scale} {scores}; {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
