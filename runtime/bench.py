"""`srx bench`: latency of each backend, model-only and end to end, against this machine's GEMM rate.

Numbers only mean something relative to the machine, so one run also measures the float32 GEMM
rate on the same threads and turns the model's FLOPs into a floor: `model / floor` says how close a
backend gets to the hardware, `e2e / model` what the colour and chroma work around it costs.
Model-only and end-to-end runs alternate back to back in blocks of a few, the rows of a case
(every model and backend) take turns block by block, and GEMM samples sit between the blocks, so a
shared machine that speeds up or slows down during the run moves the rows and the floor alike
(seen here: the same GEMM measured anywhere from 50 to 190 GFLOP/s over an afternoon). The GEMM rate is the best of the libraries present (torch, NumPy's BLAS, ONNX
Runtime's MLAS), so the floor is as low as this machine allows.
"""
from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from srx.errors import SrxError

log = logging.getLogger("srx")

#: (name, LR width, LR height, scale). 720p output at x3 needs 1280/3 LR columns; 426 gives 1278.
FULL_CASES = [("480p x2", 640, 480, 2), ("720p-out x3", 426, 240, 3), ("1080p-out x3", 640, 360, 3)]
QUICK_CASES = [("quick x2", 48, 32, 2), ("quick x3", 40, 32, 3)]
#: pause around each GEMM sample: thread pools (BLAS, ORT) keep spinning for a while after a call
#: and steal the cores from whatever runs next (measured: 20-40 % slower model runs, or GEMM)
SETTLE_S = 0.15
#: timed model/e2e pairs between two GEMM samples
BLOCK = 5
BENCH_BACKENDS = ("torch", "torch-cuda", "onnxruntime", "onnxruntime-fp16", "onnxruntime-cuda", "tensorrt", "triton")
#: backends whose model runs on the GPU: their floor is the GPU's GEMM rate, not the CPU's
GPU_BACKENDS = ("torch-cuda", "onnxruntime-cuda", "tensorrt")


@dataclass
class BenchRow:
    model: str
    backend: str
    case: str
    lr: str
    hr: str
    reps: int
    model_p50_ms: float
    model_p95_ms: float
    e2e_p50_ms: float
    e2e_p95_ms: float
    fps: float
    floor_ms: float
    model_over_floor: float
    e2e_over_model: float
    gemm_gflops: float
    gemm_library: str
    model_gflop: float
    graph_gflop: float


class GemmProbe:
    """Float32 GEMM timings from every library at hand, one sample each per `sample()` call."""

    def __init__(self, threads: int, quick: bool = False, gpu: bool = False) -> None:
        import torch

        self.n = n = 384 if quick else 1024
        rng = np.random.default_rng(0)
        a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        self.calls = {"torch": lambda: torch.mm(ta, tb), "numpy": lambda: a @ b}
        session = _ort_matmul(n, threads)
        if session is not None:
            self.calls["onnxruntime"] = lambda: session.run(None, {"a": a, "b": b})
        self.sizes = {k: n for k in self.calls}
        if gpu:  # FP32 without TF32 (as the torch reference runs); big enough to outlast the launch
            torch.backends.cuda.matmul.allow_tf32 = False
            g = 4096
            ga, gb = (torch.rand(g, g, device="cuda") for _ in range(2))
            self.calls["torch-cuda"] = lambda: (torch.mm(ga, gb), torch.cuda.synchronize())
            self.sizes["torch-cuda"] = g
        self.times: dict[str, list[float]] = {k: [] for k in self.calls}
        for call in self.calls.values():  # warm up thread pools and caches
            call()
            call()

    def sample(self) -> None:
        for k, (name, call) in enumerate(self.calls.items()):
            if k:
                time.sleep(SETTLE_S)  # the previous library's threads are still spinning
            t0 = time.perf_counter()
            call()
            self.times[name].append(time.perf_counter() - t0)

    def rates(self, since: int = 0) -> dict[str, float]:
        """Median GFLOP/s per library over the samples from index `since` on."""
        return {k: 2 * self.sizes[k] ** 3 / float(np.median(v[since:])) / 1e9
                for k, v in self.times.items() if v[since:]}

    def best(self, since: int = 0, gpu: bool = False) -> tuple[str, float]:
        """The fastest CPU library, or with `gpu` the GPU's rate (the floor of a GPU backend's rows)."""
        rates = {k: r for k, r in self.rates(since).items() if k.endswith("-cuda") == gpu}
        if not rates:
            raise SrxError("no GPU GEMM rate was measured (torch sees no CUDA GPU)" if gpu else "no GEMM rate measured")
        name = max(rates, key=rates.get)
        return name, rates[name]

    def count(self) -> int:
        return len(next(iter(self.times.values())))


def _ort_matmul(n: int, threads: int):
    """An ORT session holding one n x n MatMul (MLAS), or None without onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    io = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b", "c")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", io[:2], io[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def frame_flops(model_of: Path | ModelConfig, lr_h: int, lr_w: int) -> tuple[float, float]:
    """(model, exported graph) FLOPs for one LR frame of a checkpoint's model, or of a configuration's
    (a served model's: the count does not depend on the weights), counted by torch on meta tensors:
    the export arrangement may do fewer multiply-adds than the model it computes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from srx.checkpoint import model_from_checkpoint
    from srx.export.layouts import export_module
    from srx.models import ModelConfig, build_model

    model = build_model(model_of) if isinstance(model_of, ModelConfig) else model_from_checkpoint(model_of)[0]
    modules = [model.eval(), export_module(model.eval())]  # both built before anything moves
    counts = []
    for module in modules:
        module = module.to("meta")  # shapes only: no arithmetic, no memory
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(torch.empty(1, 1, lr_h, lr_w, device="meta"))
        counts.append(float(counter.get_total_flops()))
    return counts[0], counts[1]


#: shipped models benched by default: one per architecture (`camera` runs the very graph of `fast`)
DEFAULT_MODELS = ("srcnn", "fast")


def _bench_checkpoint(scale: int, weights: str | Path | None) -> Path:
    """Shipped (or given) weights for `scale`; a shipped model without weights at that scale runs as
    a fresh model of its architecture kept in the cache (speed does not depend on the weights'
    values; one file means one ONNX export)."""
    import torch

    from srx.checkpoint import SHIPPED, load_checkpoint, resolve_weights, save_checkpoint
    from srx.models import build_model, config_from_preset
    from srx.runtime.select import cache_root

    name = str(weights) if weights is not None else "srcnn"
    if name not in SHIPPED or Path(name).exists():
        path = resolve_weights(weights, scale)
        have = int(load_checkpoint(path)["model_config"]["scale"])
        if have != scale:
            raise SrxError(f"{path} holds a x{have} model, this case needs x{scale}")
        return path
    try:
        return resolve_weights(name, scale)
    except SrxError:
        preset = SHIPPED[name].preset
        path = cache_root() / "bench" / f"{preset}-x{scale}-untrained.pt"
        if not path.exists():
            torch.manual_seed(scale)
            cfg = config_from_preset(preset, scale)
            save_checkpoint(path, build_model(cfg), cfg)
        return path


def _check_engine_weights(engine: Path, ckpt: Path) -> None:
    """One engine holds one model's weights: a row for another model must not time it under that
    model's name. The engine's sidecar (srx export writes it) says which checkpoint it came from."""
    import json

    from srx.export.tensorrt import sidecar_path
    from srx.fsutil import sha256_file

    try:
        side = json.loads(sidecar_path(engine).read_text())
    except (OSError, ValueError):
        return  # the runner names a missing or unreadable sidecar itself
    source = side.get("source_sha256") if isinstance(side, dict) else None
    if source and source != sha256_file(ckpt):
        raise SrxError(f"--engine {Path(engine).name} was built from other weights ({side.get('name') or 'unnamed'}, "
                       f"{Path(str(side.get('weights') or '?')).name}), not these; bench it with -w naming the weights "
                       "it was built from")


def _runner(backend: str, ckpt: Path, threads: int, engine: Path | None, server: str | None = None,
            scale: int | None = None, server_model: str | None = None):
    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from srx.runtime.select import cached_onnx
    from srx.runtime.torch_runner import TorchRunner

    if backend == "torch":
        return TorchRunner(ckpt, threads=threads)
    if backend == "torch-cuda":
        return TorchRunner(ckpt, threads=threads, device="cuda")
    if backend == "onnxruntime":
        return OnnxRuntimeRunner(cached_onnx(ckpt), threads=threads)
    if backend == "onnxruntime-cuda":
        return OnnxRuntimeRunner(cached_onnx(ckpt), providers=["cuda"], threads=threads)
    if backend == "onnxruntime-fp16":
        from srx.export.onnx import fp16_onnx_from_onnx

        src = cached_onnx(ckpt)
        fp16 = src.with_name(src.stem + "-fp16.onnx")
        if not fp16.exists():
            fp16_onnx_from_onnx(src, fp16)
        return OnnxRuntimeRunner(fp16, threads=threads)
    if backend == "tensorrt":
        if engine is None:
            raise SrxError("--backend tensorrt needs --engine FILE (built with `srx export` on this GPU)")
        if Path(engine).suffix.lower() in (".onnx", ".pt", ".pth"):
            raise SrxError(f"--engine {Path(engine).name} is not a TensorRT engine (.engine or .plan, built with "
                           "`srx export --engine` on this GPU); bench an ONNX graph's weights with --backend "
                           "onnxruntime and -w naming their checkpoint")
        _check_engine_weights(engine, ckpt)
        from srx.runtime.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(engine)
    if backend == "triton":
        if server is None:
            raise SrxError("--backend triton needs --server HOST:PORT (a Triton server's gRPC address)")
        from srx.runtime.triton_runner import TritonRunner

        def advice(scales: str) -> str:
            named = [c[0] for c in FULL_CASES + QUICK_CASES if scales == "N" or str(c[3]) in scales.split("|")]
            return f"bench it with a case of that scale (--case {' | '.join(repr(n) for n in named)})"

        return TritonRunner(server, model=server_model, scale=scale, scale_advice=advice)
    raise SrxError(f"unknown bench backend {backend!r}: expected one of {', '.join(BENCH_BACKENDS)}")


def available_backends() -> list[str]:
    """What runs here without extra flags: torch, ONNX Runtime FP32 and FP16 on the CPU, torch on the
    GPU where PyTorch sees one, ORT CUDA with a GPU (TensorRT needs an engine: --backend tensorrt
    --engine FILE)."""
    from srx.runtime.select import _ort_has_cuda, _torch_sees_gpu

    found = ["torch"] + (["torch-cuda"] if _torch_sees_gpu() else [])
    try:
        import onnxruntime  # noqa: F401

        found += ["onnxruntime", "onnxruntime-fp16"] + (["onnxruntime-cuda"] if _ort_has_cuda() else [])
    except ImportError:
        pass
    return found


def _synthetic_frame(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(xx * f + yy * g) for f, g in ((0.05, 0.02), (0.03, 0.07), (0.11, 0.01))], -1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@dataclass
class BenchEntry:
    """One row of a case: an active runner, the model label it is reported under, its FLOPs (model,
    exported graph) per frame."""

    runner: object
    label: str
    flops: tuple[float, float]


def bench_case(entries: list[BenchEntry], case: tuple[str, int, int, int], reps: int, warmup: int,
               probe: GemmProbe) -> tuple[list[BenchRow], list[tuple[BenchEntry, SrxError]]]:
    """Every row of one case measured in turns: each block runs a few model-only and end-to-end pairs
    on every runner, one runner after the other (the order rotating from block to block), between
    GEMM samples. A drift of this shared machine then reaches every row of the case alike, so the
    ratio between two models is one measurement, not two taken minutes apart. A runner that fails
    (SrxError) leaves the turns and is returned with its error. The floor is the model's FLOPs over
    the best GEMM rate sampled during the case."""
    from srx.runtime.upscaler import _FWD, Upscaler
    import cv2

    name, w, h, scale = case
    frame = _synthetic_frame(h, w)
    lr_y = np.ascontiguousarray(cv2.transform(frame.astype(np.float32), _FWD)[..., 0])[None, None]
    # tile=max side: measure the frame as one piece, as model-only does
    ups = [Upscaler(e.runner, scale, tile=max(h, w)) for e in entries]
    times = [([], []) for _ in entries]  # (model, e2e) seconds per entry
    live = list(range(len(entries)))
    failed: list[tuple[BenchEntry, SrxError]] = []
    since = probe.count()

    def gemm() -> None:
        time.sleep(SETTLE_S)
        probe.sample()
        time.sleep(SETTLE_S)

    for block in range(0, reps, BLOCK):
        gemm()
        turn = block // BLOCK
        order = live[turn % len(live):] + live[:turn % len(live)] if live else []
        for k, i in enumerate(order):
            runner, up = entries[i].runner, ups[i]
            if k:
                time.sleep(SETTLE_S)  # the previous runner's thread pool is still spinning
            try:
                for _ in range(warmup if block == 0 else 1):  # untimed: wakes the pools after the pause
                    runner.infer(lr_y)
                    up.upscale(frame)
                for rep in range(block, min(reps, block + BLOCK)):
                    # Back to back, as frames run; alternate the order so neither always goes first.
                    for kind in (("model", "e2e") if rep % 2 == 0 else ("e2e", "model")):
                        t0 = time.perf_counter()
                        runner.infer(lr_y) if kind == "model" else up.upscale(frame)
                        times[i][kind == "e2e"].append(time.perf_counter() - t0)
            except SrxError as exc:
                failed.append((entries[i], exc))
                live.remove(i)
    gemm()
    rows = []
    for i in live:
        entry, (model_t, e2e_t) = entries[i], times[i]
        m50, m95 = np.percentile(model_t, [50, 95])
        e50, e95 = np.percentile(e2e_t, [50, 95])
        backend = _label(entry.runner)
        library, gflops = probe.best(since, gpu=backend in GPU_BACKENDS)
        model_flops, graph_flops = entry.flops
        floor_s = model_flops / (gflops * 1e9)
        rows.append(BenchRow(
            model=entry.label, backend=backend, case=name, lr=f"{w}x{h}", hr=f"{w * scale}x{h * scale}", reps=reps,
            model_p50_ms=1e3 * m50, model_p95_ms=1e3 * m95, e2e_p50_ms=1e3 * e50, e2e_p95_ms=1e3 * e95,
            fps=1.0 / e50, floor_ms=1e3 * floor_s, model_over_floor=m50 / floor_s, e2e_over_model=e50 / m50,
            gemm_gflops=gflops, gemm_library=library, model_gflop=model_flops / 1e9,
            graph_gflop=(model_flops if backend.startswith("torch") else graph_flops) / 1e9,
        ))
    return rows, failed


def _label(runner) -> str:
    """The bench backend name of a runner: where it runs as well as what runs it."""
    if runner.backend == "torch":
        return "torch" if runner.device == "cpu" else "torch-cuda"
    return runner.backend if runner.backend != "onnxruntime" else _ort_label(runner)


def _ort_label(runner) -> str:
    label = "onnxruntime"
    if runner.providers and runner.providers[0] == "CUDAExecutionProvider":
        label += "-cuda"
    if "fp16" in runner.onnx_path.name:
        label += "-fp16"
    return label


def run_bench(
    backends: list[str] | None = None,
    *,
    quick: bool = False,
    threads: int | None = None,
    weights: str | Path | list[str | Path] | None = None,
    engine: Path | None = None,
    reps: int | None = None,
    cases: list[str] | None = None,
    server: str | None = None,
    server_model: str | None = None,
) -> dict:
    """Benchmark `backends` (default: all that run here) on the standard cases (or those named in
    `cases`) for each of `weights` (shipped names or checkpoints; default: DEFAULT_MODELS), so the
    rows of one run compare models as well as backends; a JSON-able dict."""
    import torch

    from srx.checkpoint import SHIPPED, load_checkpoint, resolve_weights, shipped_name
    from srx.models import ModelConfig
    from srx.runtime.onnxruntime_runner import physical_cores

    threads = int(threads or physical_cores())
    backends = list(backends or available_backends() + (["triton"] if server else []))
    bad = [b for b in backends if b not in BENCH_BACKENDS]
    if bad:
        raise SrxError(f"unknown bench backend {', '.join(bad)}: expected {', '.join(BENCH_BACKENDS)}")
    all_cases = QUICK_CASES if quick else FULL_CASES
    if cases:
        unknown = [c for c in cases if c not in {k[0] for k in all_cases}]
        if unknown:
            raise SrxError(f"unknown bench case {unknown[0]!r}: expected one of {', '.join(k[0] for k in all_cases)}")
        all_cases = [k for k in all_cases if k[0] in cases]
    if weights is None:
        models: list[str | Path] = list(DEFAULT_MODELS)
    else:
        models = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    for weights_one in models:  # a missing or unreadable checkpoint is an error, not a row skipped among others
        if shipped_name(weights_one) is None:  # a file (the scale is the file's own)
            load_checkpoint(resolve_weights(weights_one, 3))
    if reps is not None and reps < 1:
        raise SrxError(f"--reps must be at least 1, got {reps}")
    if server is not None and "triton" in backends:  # a server that is not there is one error, not a local-only run
        from srx.runtime.triton_runner import check_server

        check_server(server)
    reps = reps or (3 if quick else 15)
    warmup = 1 if quick else 3
    from srx.runtime.upscaler import _cv2, keep_frame_buffers, single_threaded_opencv

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    saved_cv2 = single_threaded_opencv()  # as `srx upscale` / `srx stream` run frames
    keep_frame_buffers()
    try:
        from srx.runtime.select import _torch_sees_gpu

        probe = GemmProbe(threads, quick, gpu=any(b in GPU_BACKENDS for b in backends) and _torch_sees_gpu())
        rows, skipped = [], []

        def skip(backend: str, label: str, case: tuple, exc: SrxError) -> None:
            skipped.append({"backend": backend, "model": label, "case": case[0], "reason": str(exc)})

        for case in all_cases:
            with ExitStack() as active:  # every runner of the case stays up while the case runs in turns
                entries: list[BenchEntry] = []
                for weights_one in models:
                    label = str(weights_one)
                    try:
                        ckpt = _bench_checkpoint(case[3], weights_one)
                    except SrxError as exc:
                        skip("*", label, case, exc)
                        continue
                    cfg = ModelConfig.from_dict(dict(load_checkpoint(ckpt)["model_config"]))
                    arch = cfg.name.rsplit("-x", 1)[0]
                    label = label if label in SHIPPED else arch
                    flops = frame_flops(ckpt, case[2], case[1])
                    for backend in backends:
                        if backend == "triton" and weights_one is not models[0]:
                            continue  # the server runs its own model: one triton row per case
                        try:
                            runner = active.enter_context(_runner(backend, ckpt, threads, engine, server, case[3],
                                                                      server_model))
                        except SrxError as exc:
                            skip(backend, label, case, exc)
                            continue
                        shown, counted_flops = label, flops
                        if backend == "triton":  # the server's own model: its name, and its FLOPs where it says its layers
                            shown = runner.model
                            if runner.config is not None:
                                counted_flops = frame_flops(runner.config, case[2], case[1])
                        entries.append(BenchEntry(runner, shown, counted_flops))
                case_rows, failed = bench_case(entries, case, reps, warmup, probe)
                rows += case_rows
                for entry, exc in failed:
                    skip(_label(entry.runner), entry.label, case, exc)
        if not rows and skipped:  # nothing ran (a bad checkpoint, no server): one clear error, not max() of nothing
            raise SrxError(skipped[0]["reason"])
        said: dict[tuple[str, str], list[str]] = {}  # one line per reason, however many cases and models it cost
        for s in skipped:
            who = s["model"] if s["backend"] == "*" else s["backend"]
            said.setdefault((who, s["reason"]), []).append(s["case"])
        for (who, reason), where in said.items():
            log.warning("bench: skipped %s on %s: %s", who, ", ".join(dict.fromkeys(where)), reason)
        library, gflops = probe.best()
        return {
            "threads": threads,
            "gemm_gflops": gflops,
            "gemm_library": library,
            "gemm_gflops_by_library": probe.rates(),
            "models": list(dict.fromkeys(r.model for r in rows)),  # what was benchmarked (a served model's name)
            "quick": quick,
            "rows": [asdict(r) for r in rows],
            "skipped": skipped,
            "note": "end-to-end = colour conversion + model + chroma bicubic + back to BGR uint8; "
                    "floor = the model's FLOPs / the best float32 GEMM rate measured on the same threads, "
                    "sampled between the blocks in which a case's rows take turns; the exported ONNX graph computes "
                    "the same function with the FLOPs in the graph GFLOP column (for SRCNN, bicubic folded into its first layer)",
        }
    finally:
        torch.set_num_threads(saved_threads)
        _cv2().setNumThreads(saved_cv2)
