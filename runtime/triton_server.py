"""`srx serve`: an srx model behind a real Triton Inference Server, through NVIDIA PyTriton.

PyTriton (`pip install 'srx[serve]'`) bundles the Triton server binary with its Python backend
only, so the model runs in this process on srx's own runner (ONNX Runtime, TensorRT or PyTorch)
and Triton does the serving: HTTP and gRPC endpoints, dynamic batching (requests of the same
frame size that arrive within the queue delay run as one batch), statistics and metrics. The
model follows srx's Triton contract (srx.export.triton_repo): name `srx_<name>_x<scale>`, input
`lr_y`, output `hr_y`, srx_* config parameters.

The server binds 127.0.0.1 unless told otherwise, runs until Ctrl-C or SIGTERM and then stops the
server processes it started. Model control, shared memory, trace and logging settings are
closed to clients (PyTriton's access token, never shown); health, metadata, model config,
inference and statistics are open.

Triton's Python backend stub is a separate program linked against `libpython3.X.so.1.0`. Where
the interpreter is another build of the same version than the system's libpython (pyenv, conda,
a venv of either), the stub would load the system library under this interpreter's standard
library and fail to load the model (`'_thread.RLock' object has no attribute
'_recursion_count'`). `use_own_libpython()` puts this interpreter's libpython folder first on
LD_LIBRARY_PATH, which PyTriton passes to the server and the server to the stub.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from srx.errors import SrxError, bind_failure
from srx.runtime.base import Runner

log = logging.getLogger("srx")

#: endpoints only PyTriton itself may use (it keeps the token); the rest are open to clients
RESTRICTED = ["model-repository", "shared-memory", "trace", "logging"]


def pytriton_status() -> tuple[bool, str]:
    """(True, version) when PyTriton imports, else (False, why and how to install it)."""
    try:
        import importlib.metadata as md

        import pytriton.triton  # noqa: F401

        return True, md.version("nvidia-pytriton")
    except Exception as exc:  # ImportError, or a broken install raising anything
        return False, (f"PyTriton is not installed ({type(exc).__name__}: {exc}); install the serve extra: "
                       "pip install 'srx[serve]'")


def python_library_dir() -> Path | None:
    """The folder holding this interpreter's shared libpython, or None (a static build)."""
    import sysconfig

    names = [n for n in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY"))
             if n and ".so" in str(n)]
    folders = [sysconfig.get_config_var("LIBDIR"), Path(sys.base_prefix) / "lib",
               Path(sys.executable).resolve().parent.parent / "lib"]
    for folder in folders:
        for name in names:
            if folder and (Path(folder) / name).exists():
                return Path(folder)
    return None


def use_own_libpython() -> Path | None:
    """Put this interpreter's libpython folder first on LD_LIBRARY_PATH (for the processes Triton
    starts; this process is not affected). Returns the folder, or None when there is none."""
    folder = python_library_dir()
    if folder is None:
        log.warning("this Python (%s) has no shared libpython; Triton's Python backend will load the system's "
                    "libpython%d.%d, which must be the same build", sys.executable, *sys.version_info[:2])
        return None
    parts = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != str(folder)]
    os.environ["LD_LIBRARY_PATH"] = ":".join([str(folder), *parts])
    return folder


def check_port_free(host: str, port: int, option: str) -> None:
    """One clear line now, rather than a server that dies at start with the reason in its log."""
    if not 0 < int(port) <= 65535:
        raise SrxError(f"{option} {port}: expected a port 1-65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            raise SrxError(f"cannot serve on {host}:{port}: {bind_failure(exc, host, option, '--host')}") from None


def model_identity(runner: Runner) -> dict[str, Any]:
    """What the srx_* parameters need, from any srx runner."""
    info = getattr(runner, "info", None) or {}
    cfg = runner.config
    return {
        "name": info.get("name") or (cfg.name if cfg is not None else "model"),
        "scale": int(runner.scale or info.get("scale") or 0),
        "model_config": info.get("model_config") or (cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else {}),
        "precision": info.get("precision", "fp32"),
        "version": info.get("version") or info.get("srx_version") or _srx_version(),
        "profile": info.get("profile"),
    }


def _srx_version() -> str:
    from srx._version import __version__

    return __version__


class _StopOnSignal:
    """SIGINT/SIGTERM set `stop` (main thread only); the previous handlers come back on exit."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.saved = stop, {}

    def __enter__(self) -> "_StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    errors = [line for line in text if line[:1] == "E" or "error" in line.lower()]
    return " | ".join((errors or text)[-lines:])


def serve_model(
    runners: Runner | Sequence[Runner],
    *,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    max_batch: int = 8,
    queue_delay_us: int = 2000,
    stop_event: threading.Event | None = None,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    verbose: bool = False,
    name: str | None | Sequence[str | None] = None,
) -> dict[str, Any]:
    """Serve each runner's model through one Triton server until `stop_event` (or Ctrl-C /
    SIGTERM); returns what was served: the model names (`models`; `model`: the first), the server
    version and Triton's own batch statistics per model. `on_ready(info)` is called once the models
    answer (info: models, version, grpc, http, metrics). A model is srx_<name>_x<scale>; without a
    `name` (one per runner, or one for a single runner), the name its file carries (the
    architecture's for a checkpoint). Several models (x2, x3 and x4, say) let clients of each scale
    share one server."""
    from srx.export.onnx import export_stem
    from srx.export.triton_repo import srx_parameters, triton_model_name

    runners = [runners] if isinstance(runners, Runner) else list(runners)
    names = list(name) if isinstance(name, (list, tuple)) else [name] * len(runners)
    if not runners or len(names) != len(runners):
        raise SrxError(f"expected a name (or None) for each of the {len(runners)} models to serve, got {len(names)}")

    ok, why = pytriton_status()
    if not ok:
        raise SrxError(why)
    if max_batch < 1:
        raise SrxError(f"--max-batch must be at least 1, got {max_batch}")
    if queue_delay_us < 0:
        raise SrxError(f"--queue-delay must be zero or more microseconds, got {queue_delay_us}")
    ports = {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port}
    if len(set(ports.values())) != len(ports):
        raise SrxError(f"the HTTP, gRPC and metrics ports must differ, got {http_port}, {grpc_port} and {metrics_port}")
    for option, port in ports.items():
        check_port_free(host, port, option)
    models: dict[str, tuple[Runner, dict[str, str], int]] = {}  # Triton name -> runner, parameters, max batch
    for runner, given in zip(runners, names):
        ident = model_identity(runner)
        if not ident["scale"]:
            raise SrxError(f"{runner.describe()} does not say its scale; serve an srx checkpoint, graph or engine")
        if given is not None:
            ident["name"] = export_stem("", ident["scale"], given)
        model_name = triton_model_name(ident["name"], ident["scale"], ident["precision"])
        if model_name in models:
            raise SrxError(f"two of the models to serve would both be {model_name}; serve each once (or name them "
                           "apart with separate servers' --name)")
        limit = min(max_batch, int(runner.max_batch)) if runner.max_batch is not None else max_batch
        models[model_name] = (runner, srx_parameters(ident), limit)

    import numpy as np
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    if not verbose:
        for noisy in ("pytriton", "sh", "tritonclient"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from srx.runtime.select import _gpu_present

    use_own_libpython()
    stop = stop_event or threading.Event()
    scratch = Path(tempfile.mkdtemp(prefix="srx-serve-"))
    log_file = scratch / "tritonserver.log"
    config = TritonConfig(
        http_address=host, http_port=int(http_port), grpc_address=host, grpc_port=int(grpc_port),
        metrics_address=host, metrics_port=int(metrics_port), exit_timeout_secs=5,
        log_verbose=1 if verbose else 0, log_file=None if verbose else log_file,
        allow_gpu_metrics=_gpu_present(),  # DCGM prints an NVML error at start where there is no GPU
    )
    was_active = {model_name: runner.is_active for model_name, (runner, _, _) in models.items()}
    for runner, _, _ in models.values():
        runner.activate()  # load the models before the server announces them

    def infer_with(runner: Runner) -> Callable[..., dict[str, np.ndarray]]:
        @batch
        def infer(lr_y: np.ndarray) -> dict[str, np.ndarray]:
            return {"hr_y": runner.infer(lr_y)}

        return infer

    triton = None
    served: dict[str, Any] = {"model": next(iter(models)), "models": list(models)}
    try:
        with _StopOnSignal(stop):
            triton = Triton(config=config, workspace=scratch / "workspace",
                            security_config=TritonSecurityConfig(restricted_endpoints=RESTRICTED))
            for model_name, (runner, params, limit) in models.items():
                triton.bind(
                    model_name=model_name, infer_func=infer_with(runner),
                    inputs=[Tensor(name="lr_y", dtype=np.float32, shape=(1, -1, -1))],
                    outputs=[Tensor(name="hr_y", dtype=np.float32, shape=(1, -1, -1))],
                    config=ModelConfig(max_batch_size=int(limit), batching=True,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=int(queue_delay_us))),
                    strict=False,
                )
                _add_parameters(triton, model_name, params)
            try:
                triton.run()
            except Exception as exc:  # PyTriton / tritonclient errors of every kind: one line, with the log
                tail = _log_tail(log_file)
                raise SrxError(f"the Triton server did not start: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                               + (f" (server log: {tail})" if tail else "")) from None
            from srx.runtime.triton_runner import batch_statistics, server_version

            url = f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{grpc_port}"
            served.update(version=server_version(url), grpc=f"{host}:{grpc_port}", http=f"{host}:{http_port}",
                          metrics=f"{host}:{metrics_port}", max_batch=max(limit for _, _, limit in models.values()),
                          queue_delay_us=int(queue_delay_us),
                          backend=" | ".join(runner.describe() for runner, _, _ in models.values()),
                          backends={model_name: runner.describe() for model_name, (runner, _, _) in models.items()})
            if on_ready is not None:
                on_ready(served)
            while not stop.is_set():
                if not triton.is_alive():
                    tail = _log_tail(log_file)
                    raise SrxError("the Triton server stopped unexpectedly" + (f": {tail}" if tail else ""))
                stop.wait(0.5)
            for model_name in models:
                try:
                    served.setdefault("statistics", {})[model_name] = batch_statistics(url, model_name)
                except SrxError as exc:
                    log.debug("no statistics for %s at exit: %s", model_name, exc)
    finally:
        if triton is not None:
            # before the stop (orphans no longer point at us); not our own multiprocessing resource
            # tracker, which PyTriton's first request starts and which ends with this process
            family = {p for p in _descendants(os.getpid()) if not _resource_tracker(p)}
            triton.stop()
            _reap(family, grace=10.0 + 5.0 * (len(models) - 1))  # each model's backend stub winds down on its own
        for model_name, (runner, _, _) in models.items():
            if not was_active[model_name]:
                runner.deactivate()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return served


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (empty where there is no /proc)."""
    parents: dict[int, int] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else []:
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = set(), [pid]
    while todo:
        pid = todo.pop()
        kids = [c for c, parent in parents.items() if parent == pid]
        found.update(kids)
        todo.extend(kids)
    return found


def _resource_tracker(pid: int) -> bool:
    """Whether `pid` is a Python multiprocessing resource tracker (it outlives a stop by design)."""
    try:
        return b"multiprocessing.resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _command(pid: int) -> str:
    """The program a process runs, for a message: its executable's file name."""
    try:
        return Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")).name or "?"
    except OSError:
        return "?"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _reap(pids: set[int], grace: float = 10.0) -> None:
    """Wait for the server's processes (the server, the Python backend stub and its helpers) to end;
    after `grace` seconds, end the ones left (SIGTERM, then SIGKILL), so none outlives srx serve."""
    import time

    end = time.monotonic() + grace
    while time.monotonic() < end and any(_running(p) for p in pids):
        time.sleep(0.1)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p for p in pids if _running(p)]
        if not left:
            return
        log.warning("Triton process(es) %s still running after the stop; sending %s",
                    ", ".join(f"{p} ({_command(p)})" for p in left), signal.Signals(sig).name)
        for p in left:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        time.sleep(1.0)


def _add_parameters(triton: Any, name: str, params: dict[str, str]) -> None:
    """Put srx's parameters into the model config PyTriton will hand Triton (PyTriton's ModelConfig
    has no field for them; its internal TritonModelConfig keeps backend parameters)."""
    try:
        for model in triton._model_manager.models:
            if model.model_name == name:
                model._get_triton_model_config().backend_parameters.update(params)
                return
    except AttributeError as exc:
        raise SrxError(f"this PyTriton ({pytriton_status()[1]}) keeps its model config elsewhere ({exc}); "
                       "srx serve needs nvidia-pytriton 0.7") from None
    raise SrxError(f"PyTriton did not register model {name}")
