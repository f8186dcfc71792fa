"""Write an lrnet checkpoint with a pointwise (1x1) layer inserted before its last layer (or before
each layer `--at` names, in the order given), computing exactly what the input computes: the warm
start for training `lrnet-32x4-pw` from `lrnet-32x4` weights, and `lrnet-32x4-pw3` from those (README, Shipped weights: `fast` and `camera`).

    python scripts/add_pointwise.py runs/f3/best.pt runs/init-pw-x3.pt   # lrnet-32x4 -> lrnet-32x4-pw
    srx train ... --model lrnet-32x4-pw --init runs/init-pw-x3.pt ...
    python scripts/add_pointwise.py runs/x3c/best.pt runs/init-pw3-x3.pt --at 2 --at 1   # lrnet-32x4-pw -> lrnet-32x4-pw3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srx.checkpoint import model_from_checkpoint, save_checkpoint
from srx.errors import SrxError
from srx.fsutil import check_output_file
from srx.models import build_model, with_pointwise_layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="an lrnet checkpoint (a shipped fast-x*.pt or a run's best.pt)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--at", type=int, action="append", metavar="LAYER",
                    help="insert before this layer (1 = the second; repeat for more, applied in order); "
                         "default: before the last layer")
    args = ap.parse_args()
    try:
        check_output_file(args.out, "OUT")
        source, source_config, _ = model_from_checkpoint(args.checkpoint)
        config, state = source_config, source.state_dict()
        for position in args.at or [None]:
            config, state = with_pointwise_layer(config, state, position)
        model = build_model(config)
        model.load_state_dict(state)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(args.out, model, config)
    except SrxError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.out}: {config.name}")


if __name__ == "__main__":
    main()
