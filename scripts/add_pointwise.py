"""Write an lrnet checkpoint with a pointwise (1x1) layer inserted before its last layer, computing
exactly what the input computes: the warm start for training `lrnet-32x4-pw` from `lrnet-32x4`
weights (README, Fast model).

    python scripts/add_pointwise.py srx/weights/fast-x3.pt runs/init-pw-x3.pt
    srx train ... --model lrnet-32x4-pw --init runs/init-pw-x3.pt ...
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="an lrnet checkpoint (a shipped fast-x*.pt or a run's best.pt)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    try:
        check_output_file(args.out, "OUT")
        source, source_config, _ = model_from_checkpoint(args.checkpoint)
        config, state = with_pointwise_layer(source_config, source.state_dict())
        model = build_model(config)
        model.load_state_dict(state)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(args.out, model, config)
    except SrxError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.out}: {config.name}")


if __name__ == "__main__":
    main()
