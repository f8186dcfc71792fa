"""Choosing a backend for a model file: `make_runner("auto" | "torch" | "torch-cuda" | "onnxruntime" | "tensorrt")`.

`auto` takes the fastest backend that works on this machine: TensorRT for an engine on a GPU, else
ONNX Runtime with CUDA when installed, else PyTorch on the GPU where it sees one (a checkpoint
only; on an H200 5.8x faster than ONNX Runtime on 16 CPU threads for `fast` at 720p-out x3), else
ONNX Runtime on the CPU (about 3x faster than PyTorch eager for SRCNN here). Checkpoints run on ONNX
Runtime through an ONNX graph exported on first use into a cache keyed by the checkpoint's SHA-256,
so later runs start at once.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Sequence

from srx.errors import SrxError
from srx.runtime.base import Runner

log = logging.getLogger("srx")

BACKENDS = ("auto", "torch", "torch-cuda", "onnxruntime", "tensorrt", "triton")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def cache_root() -> Path:
    """`$SRX_CACHE_DIR` if set, else ~/.cache/srx."""
    env = os.environ.get("SRX_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srx"


def model_kind(path: Path) -> str:
    """'onnx', 'engine' or 'checkpoint' from the file name; SrxError for anything else."""
    path = Path(path)
    if not path.exists():
        raise SrxError(f"model file {path} does not exist")
    if path.is_dir():
        raise SrxError(f"model file {path} is a folder; expected a .onnx, .engine or .pt file")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    raise SrxError(
        f"model file {path.name} has an unknown kind ({suffix or 'no extension'}); expected an srx "
        "ONNX graph (.onnx), a TensorRT engine (.engine/.plan) or an srx checkpoint (.pt)"
    )


#: threads that make upscalers of one checkpoint at once export it once, the others find it in the cache
_CACHE_LOCK = threading.Lock()


def cached_onnx(checkpoint: Path, scale: int | None = None) -> Path:
    """The FP32 ONNX graph of `checkpoint`, exported once into <cache>/onnx/<sha256>/ and reused
    while it comes from this graph revision (a newer srx re-exports rather than run an old graph).
    Thread-safe: one thread exports, the others wait for it and take its graph."""
    with _CACHE_LOCK:
        return _cached_onnx(checkpoint, scale)


def _cached_onnx(checkpoint: Path, scale: int | None) -> Path:
    from srx.checkpoint import shipped_model_of
    from srx.export.onnx import GRAPH_REVISION, check_srx_onnx, onnx_from_checkpoint
    from srx.fsutil import WriteError, ensure_dir, sha256_file

    checkpoint = Path(checkpoint)
    shipped = shipped_model_of(checkpoint)
    # a copy of a shipped file has its bytes but not its name: its graph is named as `srx export` names
    # a checkpoint's (the architecture's), so the cache keeps the two apart
    folder = cache_root() / "onnx" / sha256_file(checkpoint) / (shipped or "checkpoint")
    for found in sorted(folder.glob("*.onnx")) if folder.is_dir() else []:
        try:
            info = check_srx_onnx(found, scale)
            if info["precision"] != "fp32" or info.get("graph_revision") != str(GRAPH_REVISION):
                continue  # the FP16 graph beside it (bench writes one), or an older export
            log.debug("ONNX graph for %s from the cache: %s", checkpoint.name, found)
            return found
        except SrxError as exc:  # a stale or damaged cache entry: export again
            log.debug("ignoring cached %s: %s", found, exc)
    made = [p for p in (folder.parent.parent, folder.parent, folder) if not p.exists()]  # removed if it cannot be kept
    try:
        ensure_dir(folder)
    except SrxError as exc:  # a read-only home or cache: export for this run only
        return _export_for_this_run(checkpoint, scale, shipped, exc)
    log.debug("exporting %s to ONNX for the cache in %s", checkpoint.name, folder)
    try:
        # a shipped model's graph is named for it (camera-x3.onnx), as `srx export` names it
        graph = onnx_from_checkpoint(checkpoint, folder, scale=scale, name=shipped)
    except WriteError as exc:  # a full cache disk: the same, and the empty folders made for it go
        for made_folder in reversed(made):
            try:
                made_folder.rmdir()
            except OSError:
                break  # not empty: another process's export is there
        return _export_for_this_run(checkpoint, scale, shipped, exc)
    log.info("exported %s to ONNX once (cached in %s)", checkpoint.name, folder)  # said once it is true
    return graph


def _export_for_this_run(checkpoint: Path, scale: int | None, shipped: str | None, why: SrxError) -> Path:
    from srx.export.onnx import onnx_from_checkpoint

    log.warning("cannot keep the ONNX graph of %s in the cache (%s); exporting it for this run only "
                "(set SRX_CACHE_DIR to a writable folder with room to keep it)", checkpoint.name, why)
    return onnx_from_checkpoint(checkpoint, _scratch_folder(), scale=scale, name=shipped)


def _scratch_folder() -> Path:
    """A temporary folder removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="srx-onnx-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _gpu_present() -> bool:
    """A CUDA GPU is visible (checked without initialising CUDA in this process)."""
    return Path("/dev/nvidia0").exists() or Path("/dev/nvhost-ctrl").exists() or Path("/dev/nvgpu").exists()


def make_runner(
    backend: str = "auto",
    *,
    scale: int | None = 3,
    weights: Path | None = None,
    model_file: Path | None = None,
    threads: int | None = None,
    server: "str | Sequence[str] | None" = None,
) -> Runner:
    """A runner for `model_file` (.onnx / .engine / .pt) or `weights` (a checkpoint; default the
    shipped weights for `scale`) on `backend`. Logs which backend `auto` chose and why.
    `server` (a Triton server's gRPC HOST:PORT, or several: a TritonPool) means the triton backend;
    `model_file` then names the model on the server (default: its srx model for `scale`)."""
    from srx.checkpoint import resolve_weights

    if backend not in BACKENDS:
        raise SrxError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    servers = [server] if isinstance(server, str) else list(server or [])
    if servers and backend == "auto":
        backend = "triton"
    if backend == "triton" or servers:
        if backend != "triton":
            raise SrxError(f"--server is a Triton server: it runs on --backend triton, not {backend}")
        if not servers:
            raise SrxError("--backend triton needs --server HOST:PORT (the Triton server's gRPC address)")
        if weights is not None:
            raise SrxError("--weights is a local checkpoint; with --server the model is on the server "
                           "(pick it with --model NAME)")
        from srx.runtime.triton_pool import TritonPool
        from srx.runtime.triton_runner import TritonRunner

        served = str(model_file) if model_file is not None else None
        if len(servers) > 1:
            pool = TritonPool(servers, model=served, scale=scale)
            _log_choice(backend, pool, f"{len(servers)} Triton servers were given")
            return pool
        runner_t = TritonRunner(servers[0], model=served, scale=scale)
        _log_choice(backend, runner_t, "a Triton server was given")
        return runner_t
    if model_file is not None and weights is not None:
        raise SrxError("pass either --weights (a checkpoint) or --model (a .onnx/.engine/.pt file), not both")
    if model_file is not None:
        kind, path = model_kind(model_file), Path(model_file)
    else:
        kind, path = "checkpoint", resolve_weights(weights, scale or 3)
        if not path.exists():
            raise SrxError(f"checkpoint {path} does not exist")
        if path.is_dir():
            raise SrxError(f"checkpoint {path} is a folder; expected a .pt file written by `srx train`")

    if kind == "checkpoint":  # read it first: a bad file or the wrong --scale is said before any export or load
        from srx.checkpoint import load_checkpoint

        _scale_matches(int(load_checkpoint(path)["model_config"]["scale"]), scale, path)

    if kind == "engine":
        if backend not in ("auto", "tensorrt"):
            raise SrxError(
                f"{path.name} is a TensorRT engine; it runs on --backend tensorrt (or auto) only, "
                f"not {backend}. For {backend} pass the .onnx graph or the .pt checkpoint"
            )
        from srx.runtime.tensorrt_runner import TensorRTRunner

        return _chosen(TensorRTRunner(path), backend, "a TensorRT engine was given", scale, path)

    if backend == "tensorrt":
        raise SrxError(
            f"--backend tensorrt needs a TensorRT engine (.engine), got {path.name}; "
            "build one with `srx export` on the target GPU"
        )

    if kind == "onnx":
        if backend in ("torch", "torch-cuda"):
            raise SrxError(
                f"--backend {backend} needs an srx checkpoint (.pt), got the ONNX graph {path.name}; "
                "use --backend onnxruntime or pass --weights"
            )
        return _chosen(*_onnxruntime(path, backend, threads), scale, path)

    # a checkpoint
    from srx.runtime.torch_runner import TorchRunner

    if backend in ("torch", "torch-cuda"):
        device = "cuda" if backend == "torch-cuda" else "cpu"
        return _chosen(TorchRunner(path, scale=scale or 3, threads=threads, device=device), backend, "asked for",
                       scale, path)
    if backend == "auto" and not _ort_has_cuda() and _torch_sees_gpu():
        return _chosen(TorchRunner(path, scale=scale or 3, threads=threads, device="cuda"), backend,
                       "a GPU is present and ONNX Runtime has no CUDA provider", scale, path)
    try:
        onnx_path = cached_onnx(path)
    except ImportError as exc:
        if backend == "onnxruntime":
            raise SrxError(f"cannot export {path.name} to ONNX ({exc}); install onnx and onnxruntime") from None
        return _chosen(TorchRunner(path, scale=scale or 3, threads=threads), backend,
                       f"ONNX export unavailable ({exc})", scale, path)
    return _chosen(*_onnxruntime(onnx_path, backend, threads), scale, path)


def _ort_has_cuda() -> bool:
    """ONNX Runtime is installed with its CUDA provider and a GPU is present."""
    from srx.runtime.onnxruntime_runner import ort_module

    try:
        return "CUDAExecutionProvider" in ort_module().get_available_providers() and _gpu_present()
    except SrxError:
        return False


def _torch_sees_gpu() -> bool:
    """PyTorch has CUDA and a device (checked only where a GPU device node exists)."""
    if not _gpu_present():
        return False
    import torch

    return bool(torch.cuda.is_available())


def _onnxruntime(path: Path, backend: str, threads: int | None) -> tuple[Runner, str, str]:
    """The ONNX Runtime runner for `backend`, the backend and why it was chosen (for `_chosen`)."""
    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner

    if backend == "onnxruntime":
        return OnnxRuntimeRunner(path, threads=threads), backend, "asked for"
    if _ort_has_cuda():
        return (OnnxRuntimeRunner(path, providers=["cuda"], threads=threads), backend,
                "ONNX Runtime has the CUDA provider and a GPU is present")
    why = "no GPU found" if not _gpu_present() else "no CUDA provider in ONNX Runtime"
    return OnnxRuntimeRunner(path, threads=threads), backend, f"{why}; the CPU provider is the fastest CPU backend"


def _scale_matches(found: int | None, scale: int | None, path: Path) -> None:
    if scale is not None and found is not None and found != scale:
        raise SrxError(f"{Path(path).name} holds a x{found} model but x{scale} was asked for; pass --scale {found}")


def _chosen(runner: Runner, backend: str, why: str, scale: int | None, path: Path) -> Runner:
    """`runner` once its model's scale is the one asked for; the choice is logged only then, so a
    refused model prints its error alone."""
    _scale_matches(runner.scale, scale, path)
    _log_choice(backend, runner, why)
    return runner


def _log_choice(backend: str, runner: Runner, why: str) -> None:
    if backend == "auto":
        log.info("backend: %s (auto: %s)", runner.describe(), why)
    else:
        log.debug("backend: %s (%s)", runner.describe(), why)
