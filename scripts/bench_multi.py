"""Many cameras and Triton, measured: prints a table and writes JSON. Ratios only mean something within
one run on one machine (a shared machine's speed drifts; see the README's bench notes).

    python scripts/bench_multi.py                    # everything, ~4 minutes on 2 cores
    python scripts/bench_multi.py --skip-triton      # only the multi-source comparison
    python scripts/bench_multi.py --duration 30 --json out/bench_multi.json

1. Four sources of 426x240 (srx's demo scene rendered at that size, looped, paced at 10 fps each) at x3
   on the shipped weights with ONNX Runtime: one `srx stream` with four --source (one model call per
   tick, batched) against four single-source `srx stream` processes at once on the same clips (each
   with its default threads, and again with --threads 1 each). Total frames out per second (sum of
   the per-source fps) and per-source latency p95.
2. `srx serve` on free ports of 127.0.0.1: `srx stream --server` frames against the local runner's
   (same clip, --no-drop), the HR Y of the triton runner against ONNX Runtime (the FP32 parity gate,
   60 dB), and the per-frame cost of going through Triton (model call p50, triton - local).
3. Eight concurrent clients against that one server: aggregate frames per second and the batch sizes
   Triton's dynamic batcher formed (its statistics API).
4. Two servers, each `srx serve --threads 1` (a stand-in for two boxes on one machine): the four
   sources through one of them, then through both (`--server A --server B`: a tick's frames go to
   both at once), then through both with B stopped halfway (frames out, frames that went out bicubic,
   what each server ran).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRX = [sys.executable, "-m", "srx"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_clips(folder: Path, n: int, frames: int) -> list[Path]:
    import cv2

    from srx.camera.demo import DemoScene

    paths = []
    for i in range(n):
        scene = DemoScene(width=426, height=240, frames=frames, fps=10.0, seed=i)
        path = folder / f"cam{i}.mkv"
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (426, 240))
        for img in scene:
            writer.write(img)
        writer.release()
        paths.append(path)
    return paths


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res


def multi_vs_separate(clips: list[Path], duration: float, tmp: Path, weights: str = "srcnn") -> dict:
    common = ["--loop", "--duration", f"{duration}s", "--backend", "onnxruntime", "--no-window", "-q",
              "--weights", weights]
    out: dict = {}
    cmd = [*SRX, "stream", *[a for c in clips for a in ("--source", str(c))], *common,
           "--json-summary", str(tmp / "multi.json")]
    run(cmd)
    multi = json.loads((tmp / "multi.json").read_text())
    out["one_process_batched"] = {
        "fps_out_total": round(sum(s["fps_out"] for s in multi["sources"].values()), 2),
        "latency_p95_ms": {k: s["latency_ms"]["p95"] for k, s in multi["sources"].items()},
        "dropped": multi["total"]["dropped"], "batches": multi["batches"],
    }
    for label, extra in (("separate_processes", []), ("separate_processes_1_thread", ["--threads", "1"])):
        procs = []
        for i, clip in enumerate(clips):
            procs.append(subprocess.Popen([*SRX, "stream", "--source", str(clip), *common, *extra,
                                           "--json-summary", str(tmp / f"{label}{i}.json")],
                                          cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=duration + 300)
            if p.returncode != 0:
                raise SystemExit(f"a separate stream failed: {err[-2000:]}")
        sums = [json.loads((tmp / f"{label}{i}.json").read_text()) for i in range(len(clips))]
        out[label] = {
            "fps_out_total": round(sum(s["fps_out"] for s in sums), 2),
            "latency_p95_ms": {f"cam{i}": s["latency_ms"]["p95"] for i, s in enumerate(sums)},
            "dropped": sum(s["dropped"] for s in sums),
        }
    base = out["separate_processes"]["fps_out_total"]
    out["ratio_batched_over_separate"] = round(out["one_process_batched"]["fps_out_total"] / base, 3) if base else None
    base1 = out["separate_processes_1_thread"]["fps_out_total"]
    out["ratio_batched_over_separate_1_thread"] = (
        round(out["one_process_batched"]["fps_out_total"] / base1, 3) if base1 else None)
    return out


class Serve:
    def __init__(self, weights: str = "srcnn", extra: tuple[str, ...] = ()) -> None:
        self.grpc = free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen([*SRX, "serve", "-w", weights, "--grpc-port", str(self.grpc), "--http-port", str(free_port()),
                                      "--metrics-port", str(free_port()), *extra], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        end = time.monotonic() + 300
        while not any(line.startswith("serving ") for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise SystemExit("srx serve did not start:\n" + "".join(self.lines))
            time.sleep(0.1)
        self.url = f"127.0.0.1:{self.grpc}"

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return "".join(self.lines)


def triton_part(clip: Path, tmp: Path, clients: int, requests: int, reps: int) -> dict:
    import cv2

    from srx.checkpoint import shipped_weights
    from srx.protocol import psnr
    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from srx.runtime.select import cached_onnx
    from srx.runtime.triton_runner import TritonRunner, batch_statistics
    from srx.runtime.upscaler import _FWD

    out: dict = {}
    server = Serve()
    try:
        out["server"] = next(line.strip() for line in server.lines if line.startswith("serving "))
        common = ["--source", str(clip), "--no-drop", "--max-frames", "20", "--no-window", "-q"]
        run([*SRX, "stream", *common, "--server", server.url, "--output", str(tmp / "triton.mkv"),
             "--json-summary", str(tmp / "triton.json")])
        run([*SRX, "stream", *common, "--backend", "onnxruntime", "-w", "srcnn", "--output", str(tmp / "local.mkv"),
             "--json-summary", str(tmp / "local.json")])

        def frames(path: Path) -> list[np.ndarray]:
            cap, got = cv2.VideoCapture(str(path)), []
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                got.append(img)
            cap.release()
            return got

        a, b = frames(tmp / "triton.mkv"), frames(tmp / "local.mkv")
        out["stream_frames"] = len(a)
        out["stream_frames_max_abs_diff"] = int(max(np.abs(x.astype(int) - y).max() for x, y in zip(a, b)))
        st, sl = (json.loads((tmp / f"{k}.json").read_text()) for k in ("triton", "local"))
        out["stream_infer_ms_mean"] = {"triton": st["stage_ms"]["infer"]["mean"], "local": sl["stage_ms"]["infer"]["mean"]}
        # model calls, interleaved: the triton runner against ONNX Runtime in this process
        img = frames(clip)[0]
        lr = np.ascontiguousarray(cv2.transform(img.astype(np.float32), _FWD)[..., 0])[None, None]
        t_ms, l_ms = [], []
        with TritonRunner(server.url) as remote, OnnxRuntimeRunner(cached_onnx(shipped_weights(3, "srcnn"))) as local:
            ref, got = local.infer(lr), remote.infer(lr)
            db = float(psnr(ref * 255.0, got * 255.0, data_range=255.0))
            out["hr_y_psnr_vs_local_db"] = round(db, 2) if np.isfinite(db) else "inf (identical)"
            out["hr_y_max_abs_diff"] = float(np.abs(ref - got).max())
            out["parity_gate_fp32_60db"] = db >= 60.0
            for i in range(reps):
                for kind in (("t", "l") if i % 2 == 0 else ("l", "t")):
                    t0 = time.perf_counter()
                    (remote if kind == "t" else local).infer(lr)
                    (t_ms if kind == "t" else l_ms).append(1e3 * (time.perf_counter() - t0))
        out["model_call_p50_ms"] = {"triton": round(float(np.median(t_ms)), 2), "local": round(float(np.median(l_ms)), 2)}
        out["triton_overhead_ms_per_frame"] = round(float(np.median(t_ms) - np.median(l_ms)), 2)
        # eight clients at once
        model = TritonRunner(server.url).model
        before = batch_statistics(server.url, model)
        done, errors = [], []

        def client() -> None:
            try:
                with TritonRunner(server.url) as r:
                    for _ in range(requests):
                        r.infer(lr)
                        done.append(1)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise SystemExit(f"a client failed: {errors[0]}")
        after = batch_statistics(server.url, model)
        formed = {b: n - before["batches"].get(b, 0) for b, n in after["batches"].items()}
        out["clients"] = {
            "clients": clients, "requests": len(done), "wall_s": round(wall, 2),
            "aggregate_fps": round(len(done) / wall, 2),
            "model_runs": after["execution_count"] - before["execution_count"],
            "batches_formed": {str(b): n for b, n in formed.items() if n},
            "queue_ms_mean": after["queue_ms_mean"], "compute_infer_ms_mean": after["compute_infer_ms_mean"],
        }
    finally:
        log = server.stop()
    out["server_exit"] = server.proc.returncode
    out["server_last_line"] = log.strip().splitlines()[-1] if log.strip() else ""
    return out


def pool_part(clips: list[Path], duration: float, tmp: Path, weights: str) -> dict:
    """The four sources through one single-threaded server, through two, and through two with the
    second stopped halfway."""
    a, b = Serve(weights, ("--threads", "1")), Serve(weights, ("--threads", "1"))
    out: dict = {}
    try:
        sources = [a for c in clips for a in ("--source", str(c))]
        common = ["--loop", "--duration", f"{duration}s", "--no-window", "-q"]
        for label, servers, stop_b in (("one_server", [a.url], False), ("two_servers", [a.url, b.url], False),
                                       ("two_servers_b_stopped_halfway", [a.url, b.url], True)):
            timer = threading.Timer(duration / 2, b.stop) if stop_b else None
            if timer is not None:
                timer.start()
            run([*SRX, "stream", *sources, *[x for u in servers for x in ("--server", u)], *common,
                 "--json-summary", str(tmp / f"{label}.json")])
            if timer is not None:
                timer.join()
            summary = json.loads((tmp / f"{label}.json").read_text())
            out[label] = {
                "fps_out_total": round(sum(s["fps_out"] for s in summary["sources"].values()), 2),
                "latency_p95_ms": {k: s["latency_ms"]["p95"] for k, s in summary["sources"].items()},
                "fallback_frames": summary["inference"]["fallback_frames"],
                "servers": [{k: srv[k] for k in ("server", "state", "frames", "calls", "outages")}
                            for srv in summary["inference"].get("servers", [])],
                "batches": summary["batches"],
            }
        one = out["one_server"]["fps_out_total"]
        out["ratio_two_over_one"] = round(out["two_servers"]["fps_out_total"] / one, 3) if one else None
    finally:
        a.stop()
        b.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per multi-source run (default 20)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=10, help="requests per client (426x240 LR Y)")
    ap.add_argument("--reps", type=int, default=20, help="interleaved model calls for the triton overhead")
    ap.add_argument("--weights", default="srcnn", help="shipped model (or checkpoint) the streams run (default srcnn)")
    ap.add_argument("--skip-triton", action="store_true")
    ap.add_argument("--skip-multi", action="store_true")
    ap.add_argument("--skip-pool", action="store_true", help="leave out the two-server part")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    os.chdir(REPO)
    result: dict = {"cpu_count": os.cpu_count(), "loadavg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="srx-bench-multi-") as tmp_name:
        tmp = Path(tmp_name)
        clips = make_clips(tmp, 4, 100)
        if not args.skip_multi:
            result["multi"] = multi_vs_separate(clips, args.duration, tmp, args.weights)
            result["multi"]["weights"] = args.weights
        if not args.skip_triton:
            result["triton"] = triton_part(clips[0], tmp, args.clients, args.requests, args.reps)
        if not args.skip_triton and not args.skip_pool:
            result["pool"] = pool_part(clips, args.duration, tmp, args.weights)
            result["pool"]["weights"] = args.weights
    result["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    m = result.get("multi")
    if m:
        print(f"\n4 x 426x240 -> x3: one process {m['one_process_batched']['fps_out_total']} fps out, four processes "
              f"{m['separate_processes']['fps_out_total']} (ratio {m['ratio_batched_over_separate']}), four processes "
              f"with 1 thread {m['separate_processes_1_thread']['fps_out_total']} "
              f"(ratio {m['ratio_batched_over_separate_1_thread']})")
    t = result.get("triton")
    if t:
        print(f"triton: frames max |diff| {t['stream_frames_max_abs_diff']}, HR Y {t['hr_y_psnr_vs_local_db']} dB vs local, "
              f"model call p50 {t['model_call_p50_ms']} (overhead {t['triton_overhead_ms_per_frame']} ms); "
              f"{t['clients']['clients']} clients {t['clients']['aggregate_fps']} fps, batches {t['clients']['batches_formed']}")
    p = result.get("pool")
    if p:
        half = p["two_servers_b_stopped_halfway"]
        print(f"pool: one server {p['one_server']['fps_out_total']} fps out, two {p['two_servers']['fps_out_total']} "
              f"(ratio {p['ratio_two_over_one']}); B stopped halfway: {half['fps_out_total']} fps out, "
              f"{half['fallback_frames']} bicubic frames, servers {half['servers']}")
    if args.json:
        from srx.fsutil import atomic_write_text

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
