"""Measure the shipped models' speed in one `srx bench` run and record it for `srx models`.

    python scripts/record_speed.py            # writes srx/weights/speed.json, prints the ratios

ONNX Runtime on the CPU, one thread per core, 720p-out x3 and 1080p-out x3, SRCNN, fast and camera
back to back in the same run (this machine's speed drifts, so only ratios within one run are
compared; each shipped model is benched on its own, even where two share an architecture). Run it
on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from srx.catalog import speed_file
from srx.fsutil import atomic_write_text
from srx.runtime.bench import run_bench


NAMES = ("srcnn", "fast", "camera")
CASES = ("720p-out x3", "1080p-out x3")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--from-json", type=Path, help="use the rows of a saved `srx bench --json` run instead of benching")
    args = ap.parse_args()
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        result = run_bench(["onnxruntime"], weights=list(NAMES), cases=list(CASES),
                           reps=args.reps)
    rows = {(r["model"], r["case"]): r for r in result["rows"] if r["backend"] == "onnxruntime"}
    missing = [f"{name} {case}" for name in NAMES for case in CASES if (name, case) not in rows]
    if missing:
        raise SystemExit(f"error: the bench run has no ONNX Runtime rows for {', '.join(missing)}")
    for (model, case), r in rows.items():
        print(f"{model:6s} {case:13s} model {r['model_p50_ms']:6.1f} ms  e2e {r['e2e_p50_ms']:6.1f} ms  "
              f"{r['fps']:5.1f} fps  model/floor {r['model_over_floor']:.2f}  e2e/model {r['e2e_over_model']:.2f}  "
              f"GEMM {r['gemm_gflops']:.0f} GFLOP/s")
    for case in CASES:
        for name in NAMES[1:]:
            f, s = rows[(name, case)], rows[("srcnn", case)]
            print(f"{case}: {name} e2e / srcnn e2e = {f['e2e_p50_ms'] / s['e2e_p50_ms']:.3f}, "
                  f"{name} model / srcnn model = {f['model_p50_ms'] / s['model_p50_ms']:.3f}")
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, {result['threads']} threads, "
               f"{time.strftime('%Y-%m-%d')}")
    record = {"machine": machine, "gemm_gflops": result["gemm_gflops"], "case": "720p-out x3", "models": {}}
    for name in NAMES:
        r = rows[(name, "720p-out x3")]
        r1080 = rows[(name, "1080p-out x3")]
        record["models"][name] = {"model_ms": round(r["model_p50_ms"], 1), "e2e_ms": round(r["e2e_p50_ms"], 1),
                                  "fps_1080p_x3": round(r1080["fps"], 1)}
    if not args.no_write:
        atomic_write_text(speed_file(), json.dumps(record, indent=2) + "\n")
        print(f"wrote {speed_file()}")


if __name__ == "__main__":
    main()
