#!/usr/bin/env python
"""Soak benchmark (not a test): push many frames through srx.camera.stream.stream() with the demo
source and real outputs, and report how the process's resident memory (RSS) grows.

    python scripts/soak.py                          # 5,000 frames, shipped x3 weights, recording + server
    python scripts/soak.py --frames 1000 --tiny     # quicker: a tiny random SRCNN (exercises the pipeline)

The demo clip loops, frames are processed without dropping (--no-drop: every frame counts and the
run is as fast as the model allows), and go to an .mp4 recording and an MJPEG server with one
client reading the stream. RSS is sampled every --every frames; growth is measured from the end
of the warm-up (the first 10% of frames: allocator pools, ONNX Runtime arenas and codec buffers
settle there) to the end. Target: < 50 MB.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; ru_maxrss elsewhere is a peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny_checkpoint(folder: Path, scale: int) -> Path:
    import torch

    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(scale=scale, kernel_sizes=[5, 1, 3], widths=[8, 4])
    path = folder / f"tiny-x{scale}.pt"
    save_checkpoint(path, build_model(cfg), cfg)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--weights", type=Path, default=Path("srcnn"),
                    help="a shipped model's name or a checkpoint (default: srcnn, the model of the README's figures)")
    ap.add_argument("--tiny", action="store_true", help="use a tiny random SRCNN instead of real weights")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--every", type=int, default=250, help="sample RSS every N frames")
    ap.add_argument("--no-server", action="store_true", help="record only, no MJPEG server")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    from srx.camera.outputs import recording_output
    from srx.camera.server import MjpegServer
    from srx.camera.sources import parse_source
    from srx.camera.stats import StreamStats
    from srx.camera.stream import stream
    from srx.runtime.upscaler import create_upscaler

    work = Path(tempfile.mkdtemp(prefix="srx-soak-"))
    weights = tiny_checkpoint(work, args.scale) if args.tiny else args.weights
    upscaler = create_upscaler(args.scale, weights=weights, backend=args.backend, threads=args.threads)
    stats = StreamStats()
    outputs = [recording_output(work / "soak.mp4")]
    stop_client = threading.Event()
    if not args.no_server:
        server = MjpegServer("127.0.0.1:0", stats=stats.live)
        outputs.append(server)

        def client() -> None:  # one viewer reading the MJPEG stream for the whole run
            while not stop_client.is_set():
                try:
                    with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as resp:
                        while not stop_client.is_set() and resp.read(1 << 16):
                            pass
                except OSError:
                    time.sleep(0.2)

        threading.Thread(target=client, daemon=True).start()

    warm = max(1, args.frames // 10)
    samples: list[tuple[int, float]] = [(0, rss_mb())]

    def on_frame(frame, out, t_done) -> None:
        n = stats.frames_out
        if n == warm or n % args.every == 0 or n == args.frames:
            samples.append((n, rss_mb()))
            print(f"frame {n:6d}  RSS {samples[-1][1]:8.1f} MiB  out {stats.live_fps():5.2f} fps", flush=True)

    t0 = time.monotonic()
    summary = stream(parse_source(demo=True, loop=True), upscaler, outputs, max_frames=args.frames,
                     drop=False, quiet=True, stats=stats, on_frame=on_frame)
    stop_client.set()
    wall = time.monotonic() - t0
    warm_rss = next(r for n, r in samples if n >= warm)
    end_rss = samples[-1][1]
    growth = end_rss - warm_rss
    print(summary.format())
    print(f"soak: {summary.frames_out} frames in {wall:.0f} s; RSS {samples[0][1]:.1f} MiB at start, "
          f"{warm_rss:.1f} after {warm} frames of warm-up, {end_rss:.1f} at the end: "
          f"growth {growth:+.1f} MiB over {summary.frames_out - warm} frames (target < 50 MiB)")
    if args.json:
        args.json.write_text(json.dumps({"frames": summary.frames_out, "wall_s": wall, "rss_mb": samples,
                                         "growth_mb": growth, "summary": summary.to_dict()}, indent=2))
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return 0 if growth < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
