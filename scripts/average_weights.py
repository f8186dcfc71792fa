"""Write a checkpoint whose weights are the mean of several runs' weights of one model (a weight soup).

Two continuations of the same file stay in one basin, so their mean is a model too, and it can keep
most of what each gained (README, Camera footage: the x3 and x4 `camera` files of the eighteenth
session were the mean of an L1 run and an MSE continuation of it). `--shares` weights the mean:
`--shares 9 1` gives the first input nine tenths (the x3 and x4 `camera` files now are nine tenths
those files and one tenth a JPEG-50 specialist continued from each).
Every input must hold the same architecture at the same scale; the output keeps the last input's
training record (config, steps), so `srx eval` and `scripts/ship_weights.py` read it like a run's
checkpoint; it has no optimizer state, so train on from it with `--init`, not `--resume`.

    python scripts/average_weights.py runs/aug3c/last.pt runs/m3c/last.pt --out runs/soup3/last.pt
    python scripts/average_weights.py srx/weights/camera-x3.pt runs/spec3/last.pt --shares 9 1 --out runs/mix10/last.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from srx.checkpoint import model_from_checkpoint, save_checkpoint
from srx.errors import SrxError
from srx.fsutil import check_output_file

#: kept from the last input: what a run's checkpoint records besides its weights (no optimizer state)
_KEPT = ("train_config", "step", "epoch", "elapsed_s", "best_psnr", "last_psnr", "bicubic_psnr", "val_set", "training")


def average_checkpoints(paths: list[Path], out: Path, shares: list[float] | None = None) -> str:
    """The mean of `paths`' weights into `out`, each counted by its share (equal when None)."""
    if len(paths) < 2:
        raise SrxError(f"averaging needs at least two checkpoints, got {len(paths)}")
    shares = [1.0] * len(paths) if shares is None else list(shares)
    if len(shares) != len(paths):
        raise SrxError(f"--shares gives {len(shares)} number(s) for {len(paths)} checkpoints; expected one for each")
    if any(not (x >= 0) for x in shares) or sum(shares) <= 0:
        raise SrxError(f"--shares expects numbers of 0 or more, not all 0, got {' '.join(f'{x:g}' for x in shares)}")
    total = sum(shares)
    models = [model_from_checkpoint(p) for p in paths]
    config = models[0][1]
    for path, (_, other, _) in zip(paths[1:], models[1:]):
        if other.to_dict() != config.to_dict():
            raise SrxError(f"{path} holds {other.name}, {paths[0]} holds {config.name}: "
                           "expected checkpoints of one architecture and scale")
    model = models[0][0]
    states = [m.state_dict() for m, _, _ in models]
    with torch.no_grad():
        model.load_state_dict({k: sum(s[k] * (w / total) for s, w in zip(states, shares)) if v.is_floating_point() else v
                               for k, v in states[0].items()})
    last = models[-1][2]  # the payload model_from_checkpoint already read
    save_checkpoint(out, model, config, **{k: last[k] for k in _KEPT if k in last})
    return config.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", type=Path, nargs="+", help="two or more checkpoints of one model")
    ap.add_argument("--shares", type=float, nargs="+", default=None,
                    help="how much of the mean each checkpoint gets, in their order (default: equal)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        check_output_file(args.out, "--out")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        name = average_checkpoints(args.checkpoints, args.out, args.shares)
    except SrxError as exc:
        sys.exit(f"error: {exc}")
    how = "" if args.shares is None else f" in shares {':'.join(f'{x:g}' for x in args.shares)}"
    print(f"wrote {args.out}: {name}, the mean of {len(args.checkpoints)} checkpoints{how}")


if __name__ == "__main__":
    main()
