"""`srx serve`: an srx model behind a real Triton Inference Server, through NVIDIA PyTriton.

PyTriton (`pip install 'srx[serve]'`) bundles the Triton server binary with its Python backend
only, so the model runs in this process on srx's own runner (ONNX Runtime, TensorRT or PyTorch)
and Triton does the serving: HTTP and gRPC endpoints, dynamic batching (requests of the same
frame size that arrive within the queue delay run as one batch), statistics and metrics. The
model follows srx's Triton contract (srx.export.triton_repo): name `srx_<name>_x<scale>`, input
`lr_y`, output `hr_y`, srx_* config parameters.

The server binds 127.0.0.1 unless told otherwise, runs until Ctrl-C, SIGTERM or SIGHUP and then stops the
server processes it started. Model control, shared memory, trace and logging settings are
closed to clients (PyTriton's access token, never printed, but on tritonserver's command line,
where local users read it: `_ReadyWatch` says when a served model stops being ready); health,
metadata, model config, inference and statistics are open.

The stop is bounded (`_StopGuard`). PyTriton's own stop waits without a limit in places (thread
joins, asyncio waits, a 120 s wait for a server that is going away), and the signal handler that
used to set a threading.Event could deadlock on that Event's lock when a second signal (a process
group's SIGTERM forwarded twice, say) arrived while the first was still inside `set()`. So the
handlers only note the signal (`signal.set_wakeup_fd`), and a watcher thread does the rest: the
first SIGINT/SIGTERM/SIGHUP asks for the stop, a second one, or `STOP_DEADLINE_S` after the first,
ends the server processes, removes the scratch folder and exits (status 128 + signal, or 1).
That is `srx serve`'s stop (`owns_process`); an application that calls `serve_model` keeps its own
signal handlers, stops the server with its `stop_event` and is never exited. Scratch folders are named for the process (`srx-serve-<pid>-*`), so one that a SIGKILL left
behind is removed by the next `srx serve` once that process is gone.

PyTriton's proxy cannot carry an empty tensor (its shared-memory transport fails on a zero in
the shape, and the client got HTTP 500 with a traceback); `_GUARD_MODEL` stands in front of its
proxy model in the server and refuses such a request with one line (INVALID_ARG: HTTP 400).

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
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from srx.errors import SrxError, bind_failure
from srx.signals import STOP_SIGNALS, hung_up, second_request, stop_signals
from srx.words import host_port
from srx.runtime.base import Runner

log = logging.getLogger("srx")

#: endpoints only PyTriton itself may use (it keeps the token); the rest are open to clients
RESTRICTED = ["model-repository", "shared-memory", "trace", "logging"]
#: seconds from the first stop signal (or the start of the stop) to a forced exit, plus
#: STOP_DEADLINE_PER_MODEL_S for each model after the first (each backend stub winds down on its own);
#: a normal stop takes 6-12 s
STOP_DEADLINE_S = 30.0
STOP_DEADLINE_PER_MODEL_S = 5.0
#: how often srx serve asks the server whether each of its models is still ready (`_ReadyWatch`)
READY_CHECK_S = 5.0
SCRATCH_PREFIX = "srx-serve-"


def pytriton_status() -> tuple[bool, str]:
    """(True, version) when PyTriton imports, else (False, why and how to install it)."""
    try:
        import importlib.metadata as md

        import pytriton.triton  # noqa: F401

        return True, md.version("nvidia-pytriton")
    except Exception as exc:  # ImportError, or a broken install raising anything
        import sys

        if sys.version_info >= (3, 13):  # the serve extra leaves PyTriton out there (pyproject.toml)
            return False, (f"PyTriton is not installed ({type(exc).__name__}: {exc}); srx serve needs Python 3.10-3.12, "
                           "where the serve extra brings it (its NumPy < 2 has no wheels for this Python); "
                           "--backend triton reaches a server run elsewhere")
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
            raise SrxError(f"cannot serve on {host_port(host, port)}: {bind_failure(exc, host, option, '--host')}") from None


def check_serve_options(host: str, http_port: int, grpc_port: int, metrics_port: int, max_batch: int,
                        queue_delay_us: int) -> None:
    """The server's options, each a clear line, before a model loads (and again at the start)."""
    if ":" in host:  # PyTriton writes its own client's address as http://HOST:PORT, which no IPv6 host fits
        raise SrxError(f"--host {host}: expected an IPv4 address (127.0.0.1, or 0.0.0.0 for every interface); srx serve "
                       "runs Triton through PyTriton, which cannot address its server at an IPv6 one")
    if max_batch < 1:
        raise SrxError(f"--max-batch must be at least 1, got {max_batch}")
    if queue_delay_us < 0:
        raise SrxError(f"--queue-delay-us must be zero or more microseconds, got {queue_delay_us}")
    ports = {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port}
    if len(set(ports.values())) != len(ports):
        raise SrxError(f"the HTTP, gRPC and metrics ports must differ, got {http_port}, {grpc_port} and {metrics_port}")
    for option, port in ports.items():
        check_port_free(host, port, option)


def model_identity(runner: Runner) -> dict[str, Any]:
    """What the srx_* parameters need, from any srx runner."""
    info = getattr(runner, "info", None) or {}
    cfg = runner.config
    ident = {
        "name": info.get("name") or (cfg.name if cfg is not None else "model"),
        "scale": int(runner.scale or info.get("scale") or 0),
        "model_config": info.get("model_config") or (cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else {}),
        "precision": info.get("precision", "fp32"),
        "version": info.get("version") or info.get("srx_version") or _srx_version(),
        "profile": info.get("profile"),
        "source_sha256": info.get("source_sha256"),
        "source_name": info.get("source_name"),
    }
    weights = getattr(runner, "weights", None)  # a checkpoint served as it is: the weights are the file itself
    if not ident["source_sha256"] and weights is not None and Path(weights).is_file():
        from srx.fsutil import sha256_file

        ident.update(source_sha256=sha256_file(Path(weights)), source_name=Path(weights).name)
    return ident


def _srx_version() -> str:
    from srx._version import __version__

    return __version__


class _StopGuard:
    """The bounded stop of `serve_model` (module docstring). In the main thread it takes SIGINT and
    SIGTERM: their handlers only note the signal (through `signal.set_wakeup_fd`; a handler that
    takes a lock, as Event.set() does, can deadlock against itself), and a watcher thread asks for
    the stop at the first signal and forces it at a second request (`srx.signals.second_request`:
    not a hangup's repeat, nor one within REPEAT_WITHIN_S of the first), or `deadline_s` after the
    stop began (`stopping()`, or the first signal). Forcing ends this
    process's children (the Triton server and its stubs), removes `scratch` and exits this process
    at once. Only where the process is srx's own (`owns_process`: `srx serve`, in its main thread);
    in an application that calls serve_model, or outside the main thread, no signal is taken and an
    overdue stop is only reported, with the scratch folder removed."""

    def __init__(self, stop: threading.Event, scratch: Path, deadline_s: float = STOP_DEADLINE_S,
                 owns_process: bool = True) -> None:
        self.stop, self.scratch, self.deadline_s = stop, Path(scratch), float(deadline_s)
        self.owns_process = owns_process and threading.current_thread() is threading.main_thread()
        self.done = threading.Event()
        self.saved: dict[int, Any] = {}
        self.old_wakeup = -1
        self.pipe: tuple[int, int] | None = None
        self.signals: list[int] = []
        self.first_at = 0.0
        self.since: float | None = None
        self.watcher: threading.Thread | None = None

    def __enter__(self) -> "_StopGuard":
        if self.owns_process:
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self.pipe = (read, write)
            for sig in stop_signals():
                self.saved[sig] = signal.signal(sig, _note_signal)
            self.old_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self.watcher = threading.Thread(target=self._watch, name="srx-serve-stop", daemon=True)
        self.watcher.start()
        return self

    def stopping(self) -> None:
        """The stop has begun (signal or not): the deadline runs from now at the latest."""
        if self.since is None:
            self.since = time.monotonic()

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        if self.watcher is not None:
            self.watcher.join(5.0)
        if self.owns_process:
            signal.set_wakeup_fd(self.old_wakeup)
            for sig, handler in self.saved.items():
                signal.signal(sig, handler)
            for fd in self.pipe or ():
                os.close(fd)

    def _watch(self) -> None:
        import select

        while not self.done.is_set():
            if self.pipe is not None:
                ready, _, _ = select.select([self.pipe[0]], [], [], 0.2)
                if ready:
                    try:
                        data = os.read(self.pipe[0], 64)
                    except OSError:
                        data = b""
                    for sig in (b for b in data if b in STOP_SIGNALS):
                        if not self.signals or second_request(sig, self.first_at):
                            self.signals.append(sig)
                            self.first_at = self.first_at or time.monotonic()
            else:
                self.done.wait(0.2)
            if self.done.is_set():
                return
            if self.signals:
                self.stopping()
                self.stop.set()  # a thread, not a signal handler: taking the Event's lock is safe here
            if self.stop.is_set():
                self.stopping()
            if len(self.signals) > 1:
                self._force(f"a second {signal.Signals(self.signals[1]).name}", 128 + self.signals[1])
            elif self.since is not None and time.monotonic() - self.since > self.deadline_s:
                self._force(f"the stop took more than {self.deadline_s:.0f} s", 1)

    def _force(self, why: str, status: int) -> None:
        left = [p for p in _descendants(os.getpid()) if not _resource_tracker(p)]
        if not self.owns_process:
            log.warning("the Triton server has not stopped (%s); its scratch folder %s is removed now", why,
                        self.scratch)
            _remove_scratch(self.scratch)
            self.done.set()
            return
        # Straight to fd 2 and with no lock taken: the main thread may hold any lock, logging's too.
        ended = ", ".join(f"{p} ({_command(p)})" for p in left) or "no server process was left"
        _say(f"srx serve: {why}; ending {ended}, removing {self.scratch} and exiting\n")
        stubs = _stub_folders(left)  # what Triton would have removed at a stop of its own
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        _remove_scratch(self.scratch, quiet=True)
        for folder in stubs:
            shutil.rmtree(folder, ignore_errors=True)
        _remove_shared_memory(os.getpid())
        flush = threading.Thread(target=_flush_std, daemon=True)  # a stuck writer must not keep us here
        flush.start()
        flush.join(1.0)
        os._exit(status)


def _say(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream: nothing more to say
            pass


def _stub_folders(pids: Sequence[int]) -> list[Path]:
    """The temporary copies of the model files (`/tmp/folderXXXX`) that Triton's Python backend stubs
    among `pids` run from, read from their command lines."""
    root, found = Path(tempfile.gettempdir()), []
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        found += [Path(a).parents[1] for a in args if a.endswith("/model.py") and len(Path(a).parents) > 2
                  and Path(a).parents[2] == root and Path(a).parents[1].name.startswith("folder")]
    return found


def _remove_shared_memory(pid: int) -> None:
    """The shared-memory regions of the Triton Python backend that served for `pid` (PyTriton names
    them pytrtion<pid>-...); a stop of its own removes them, a forced one or a SIGKILL does not."""
    for region in Path("/dev/shm").glob(f"pytrtion{int(pid)}-*"):
        try:
            if region.stat().st_uid == os.getuid():
                region.unlink()
        except OSError:
            pass


def _note_signal(signum: int, frame: Any) -> None:
    """SIGINT/SIGTERM/SIGHUP while serving: nothing here but letting go of a terminal that hung up
    (`srx.signals.hung_up`); the wakeup fd tells `_StopGuard`'s watcher."""
    hung_up(signum)


def _remove_scratch(scratch: Path, quiet: bool = False) -> None:
    """Remove a scratch folder; say so when that fails (rather than leave it silently)."""
    errors: list[str] = []
    shutil.rmtree(scratch, onerror=lambda _fn, path, exc: errors.append(f"{path}: {exc[1]}"))
    if Path(scratch).exists():
        why = f"could not remove the scratch folder {scratch} ({errors[0] if errors else 'unknown'})"
        if quiet:
            _say(f"{why}\n")
        else:
            log.warning(why)


def sweep_stale_scratch(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders of `srx serve` processes that are gone (a SIGKILL leaves one behind):
    `srx-serve-<pid>-*` under the temporary folder, owned by this user, whose process no longer
    runs, and that process's shared-memory regions. Returns the folders removed."""
    root = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    if not Path("/proc/self").exists():  # no /proc: a live process cannot be told from a gone one
        return removed
    for folder in root.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or int(pid) == os.getpid() or folder.stat().st_uid != os.getuid() \
                    or not folder.is_dir() or Path(f"/proc/{pid}").exists():
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        _remove_shared_memory(int(pid))
        if not folder.exists():
            removed.append(folder)
            log.debug("removed %s, left by srx serve process %s", folder, pid)
    return removed


#: srx's model.py in front of PyTriton's proxy model (renamed pytriton_model.py beside it)
_GUARD_MODEL = '''"""srx serve: a request whose lr_y holds no pixels is refused here with one line (INVALID_ARG,
HTTP 400), before PyTriton's proxy model (pytriton_model.py), whose shared-memory transport cannot
carry an empty tensor."""
import triton_python_backend_utils as pb_utils

from .pytriton_model import TritonPythonModel as _ProxyModel


def _problem(request):
    tensor = pb_utils.get_input_tensor_by_name(request, "lr_y")
    shape = list(tensor.shape()) if tensor is not None else []
    if 0 in shape:
        dims = "x".join(str(d) for d in shape)
        return (f"lr_y is empty ({dims}): expected (N, 1, h, w) with at least one sample and one LR pixel, "
                "Y/255 in float32")
    return None


class TritonPythonModel(_ProxyModel):
    def execute(self, requests):
        problems = [_problem(request) for request in requests]
        if not any(problems):
            return super().execute(requests)
        good = [request for request, problem in zip(requests, problems) if problem is None]
        answers = iter(super().execute(good) if good else [])
        return [next(answers) if problem is None else pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(problem, pb_utils.TritonError.INVALID_ARG))
                for problem in problems]
'''


def _guard_empty_inputs(triton: Any, name: str) -> None:
    """Serve `name` through _GUARD_MODEL: PyTriton hands the server its proxy model's files when it
    loads the model; this model's set gets srx's model.py, and PyTriton's as pytriton_model.py."""
    for model in getattr(getattr(triton, "_model_manager", None), "models", []):
        if model.model_name == name and hasattr(model, "get_proxy_model_files"):
            files = dict(model.get_proxy_model_files())
            version = str(model.model_version)
            proxy = files.get(f"file:{version}/model.py")
            if proxy is None:
                break
            files[f"file:{version}/pytriton_model.py"] = proxy
            files[f"file:{version}/model.py"] = _GUARD_MODEL.encode("utf-8")
            model.get_proxy_model_files = lambda files=files: dict(files)
            return
    raise SrxError(f"this PyTriton ({pytriton_status()[1]}) hands its model files to the server another way; "
                   "srx serve needs nvidia-pytriton 0.7")


class _ReadyWatch:
    """Each served model's readiness, asked of the server every READY_CHECK_S: a model that stops being
    ready is said in one warning, and again when it is back. PyTriton passes Triton's model-control
    token on tritonserver's command line, which any local user can read from /proc/PID/cmdline (and
    PyTriton 0.7 has no other way to hand it over), so anyone on the box can unload a served model;
    srx serve went on saying it served it. A model loaded again from outside is ready but may fail
    every request (PyTriton's proxy is not connected again), hence the advice in the line that says
    it is back. A server that does not answer is left to the liveness check."""

    def __init__(self, url: str, models: Sequence[str], every_s: float = READY_CHECK_S) -> None:
        from srx.runtime.triton_runner import grpc_module

        self.url, self.models, self.every_s = url, list(models), float(every_s)
        self.client = grpc_module().InferenceServerClient(url)
        self.down: set[str] = set()
        self.next_at = time.monotonic() + self.every_s

    def check(self) -> None:
        if time.monotonic() < self.next_at:
            return
        from tritonclient.utils import InferenceServerException

        for name in self.models:
            try:
                ready = bool(self.client.is_model_ready(name, client_timeout=2.0))
            except InferenceServerException:
                continue  # no answer: not a model that went, but a server that did (is_alive says so)
            if not ready and name not in self.down:
                self.down.add(name)
                log.warning("%s is no longer ready on the Triton server at %s (unloaded through its model-control "
                            "API?); its clients get errors until srx serve restarts", name, self.url)
            elif ready and name in self.down:
                self.down.discard(name)
                log.warning("%s is ready again on the Triton server at %s (loaded through its model-control API, not "
                            "by srx serve: restart srx serve if its clients get errors)", name, self.url)
        self.next_at = time.monotonic() + self.every_s

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a client of a server that went: nothing to say
            pass


#: error lines every Triton log on a CPU host has from its start: never why a server stopped
_BENIGN_LOG = ("CudaDriverHelper has not been initialized", "Failed to set config modification time")


def _log_tail(path: Path, lines: int = 8) -> str:
    """What a Triton log says went wrong: its error lines (glog's E..., "error", a fatal signal or
    exception), less the ones every CPU server logs at its start, else its last lines."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    text = [line for line in text if not any(b in line for b in _BENIGN_LOG)]
    errors = [line for line in text if line[:1] == "E" or any(w in line.lower() for w in ("error", "signal (", "exception"))]
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
    owns_process: bool = False,
) -> dict[str, Any]:
    """Serve each runner's model through one Triton server until `stop_event` (or Ctrl-C /
    SIGTERM); returns what was served: the model names (`models`; `model`: the first), the server
    version and Triton's own batch statistics per model. `on_ready(info)` is called once the models
    answer (info: models, version, grpc, http, metrics). A model is srx_<name>_x<scale>; without a
    `name` (one per runner, or one for a single runner), the name its file carries (the
    architecture's for a checkpoint). Several models (x2, x3 and x4, say) let clients of each scale
    share one server.

    `owns_process` (what `srx serve` passes): the process is srx's, so SIGINT and SIGTERM stop the
    server, and a stop that hangs (a second signal, or the deadline) ends the server's processes and
    exits the process at once (`os._exit`). An application that serves through this function keeps
    its own signal handlers and is never exited: it stops the server with `stop_event`, and a stop
    past the deadline is reported in a warning."""
    runners = [runners] if isinstance(runners, Runner) else list(runners)
    names = list(name) if isinstance(name, (list, tuple)) else [name] * len(runners)
    if not runners or len(names) != len(runners):
        raise SrxError(f"expected a name (or None) for each of the {len(runners)} models to serve, got {len(names)}")

    ok, why = pytriton_status()
    if not ok:
        raise SrxError(why)
    check_serve_options(host, http_port, grpc_port, metrics_port, max_batch, queue_delay_us)
    models = served_models(runners, names, max_batch)

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
    sweep_stale_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    log_file = scratch / "tritonserver.log"
    config = TritonConfig(
        http_address=host, http_port=int(http_port), grpc_address=host, grpc_port=int(grpc_port),
        metrics_address=host, metrics_port=int(metrics_port), exit_timeout_secs=5,
        log_verbose=1 if verbose else 0, log_file=None if verbose else log_file,
        allow_gpu_metrics=_gpu_present(),  # DCGM prints an NVML error at start where there is no GPU
    )
    was_active = {model_name: runner.is_active for model_name, (runner, _, _) in models.items()}

    # srx's own count of each model's runs: what the stop reports when Triton can no longer say (a
    # process group's SIGINT or SIGTERM reaches the server too, which then refuses statistics)
    tally = {model_name: {"model": model_name, "inference_count": 0, "execution_count": 0, "batches": {}}
             for model_name in models}
    tally_lock = threading.Lock()

    def infer_with(runner: Runner, count: dict[str, Any]) -> Callable[..., dict[str, np.ndarray]]:
        @batch
        def infer(lr_y: np.ndarray) -> dict[str, np.ndarray]:
            out = runner.infer(lr_y)
            with tally_lock:
                count["inference_count"] += int(lr_y.shape[0])
                count["execution_count"] += 1
                count["batches"][int(lr_y.shape[0])] = count["batches"].get(int(lr_y.shape[0]), 0) + 1
            return {"hr_y": out}

        return infer

    triton = None
    served: dict[str, Any] = {"model": next(iter(models)), "models": list(models),
                              "scales": {model_name: int(params["srx_scale"]) for model_name, (_, params, _) in models.items()},
                              "host": host, "grpc_port": int(grpc_port)}
    url = host_port("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, grpc_port)
    deadline = STOP_DEADLINE_S + STOP_DEADLINE_PER_MODEL_S * (len(models) - 1)
    with _StopGuard(stop, scratch, deadline, owns_process=owns_process) as guard:
        try:
            for runner, _, _ in models.values():
                runner.activate()  # load the models before the server announces them
            triton = Triton(config=config, workspace=scratch / "workspace",
                            security_config=TritonSecurityConfig(restricted_endpoints=RESTRICTED))
            for model_name, (runner, params, limit) in models.items():
                triton.bind(
                    model_name=model_name, infer_func=infer_with(runner, tally[model_name]),
                    inputs=[Tensor(name="lr_y", dtype=np.float32, shape=(1, -1, -1))],
                    outputs=[Tensor(name="hr_y", dtype=np.float32, shape=(1, -1, -1))],
                    config=ModelConfig(max_batch_size=int(limit), batching=True,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=int(queue_delay_us))),
                    strict=False,
                )
                _add_parameters(triton, model_name, params)
                _guard_empty_inputs(triton, model_name)
            if stop.is_set():  # stopped while the models loaded: no server to start
                served["statistics"] = {model_name: {**count, "batches": {}} for model_name, count in tally.items()}
                return served
            try:
                triton.run()
            except Exception as exc:  # PyTriton / tritonclient errors of every kind: one line, with the log
                tail = _log_tail(log_file)
                raise SrxError(f"the Triton server did not start: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                               + (f" (server log: {tail})" if tail else "")) from None
            from srx.runtime.triton_runner import server_version

            served.update(version=server_version(url), grpc=host_port(host, grpc_port), http=host_port(host, http_port),
                          metrics=host_port(host, metrics_port), max_batch=max(limit for _, _, limit in models.values()),
                          queue_delay_us=int(queue_delay_us),
                          backend=" | ".join(runner.describe() for runner, _, _ in models.values()),
                          backends={model_name: runner.describe() for model_name, (runner, _, _) in models.items()})
            if on_ready is not None and not stop.is_set():
                on_ready(served)
            watch = _ReadyWatch(url, list(models))
            try:
                while not stop.is_set():
                    if not triton.is_alive():
                        tail = _log_tail(log_file)
                        raise SrxError("the Triton server stopped unexpectedly" + (f": {tail}" if tail else ""))
                    watch.check()
                    stop.wait(0.5)
            finally:
                watch.close()
            guard.stopping()
            served["statistics"] = _read_statistics(url, models)
            with tally_lock:
                for model_name, count in tally.items():
                    served["statistics"].setdefault(model_name, {**count, "batches": dict(sorted(count["batches"].items())),
                                                                 "counted_by": "srx serve"})
        finally:
            guard.stopping()
            try:
                if triton is not None:
                    # before the stop (orphans no longer point at us); not our own multiprocessing resource
                    # tracker, which PyTriton's first request starts and which ends with this process
                    family = {p for p in _descendants(os.getpid()) if not _resource_tracker(p)}
                    try:
                        triton.stop()
                    except Exception as exc:  # PyTriton's stop of a server that never started, say: the error
                        log.debug("PyTriton's stop: %s", exc)  # that got us here is the one to report
                    _reap(family, grace=10.0 + 5.0 * (len(models) - 1))  # each backend stub winds down on its own
            finally:
                for model_name, (runner, _, _) in models.items():
                    if not was_active[model_name]:
                        try:
                            runner.deactivate()
                        except Exception as exc:  # the stop goes on: the scratch folder must go too
                            log.warning("could not close %s: %s", runner.describe(), exc)
                _remove_scratch(scratch)
    return served


def served_models(runners: Sequence[Runner], names: Sequence[str | None],
                  max_batch: int) -> dict[str, tuple[Runner, dict[str, str], int]]:
    """{Triton name: (runner, srx_* parameters, max batch)} for the models to serve. A model is
    srx_<name>_x<scale>: `name` where given, else the name its file carries. An FP16 graph or engine
    is served under the same name as its FP32 graph (srx_camera_x3, the name clients look for;
    srx_precision says FP16), so two models that would share a name are refused."""
    from srx.export.onnx import export_stem
    from srx.export.triton_repo import srx_parameters, triton_model_name

    models: dict[str, tuple[Runner, dict[str, str], int]] = {}
    for runner, given in zip(runners, names):
        ident = model_identity(runner)
        if not ident["scale"]:
            raise SrxError(f"{runner.describe()} does not say its scale; serve an srx checkpoint, graph or engine")
        if given is not None:
            ident["name"] = export_stem("", ident["scale"], given)
        model_name = triton_model_name(ident["name"], ident["scale"])  # FP16 too: the precision is a parameter
        if model_name in models:
            other = models[model_name][1]
            if "fp16" in (ident["precision"], other.get("srx_precision")):
                raise SrxError(f"{runner.describe()} and {models[model_name][0].describe()} would both be served as "
                               f"{model_name} (an FP16 model takes its FP32 name); serve one of them from its own "
                               "srx serve with --name NAME")
            raise SrxError(f"two of the models to serve would both be {model_name}; serve each once (or name them "
                           "apart with separate servers' --name)")
        limit = min(max_batch, int(runner.max_batch)) if runner.max_batch is not None else max_batch
        models[model_name] = (runner, srx_parameters(ident), limit)
    return models


def _read_statistics(url: str, models: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Triton's statistics of each served model that it still gives."""
    from srx.runtime.triton_runner import batch_statistics

    found = {}
    for model_name in models:
        try:
            found[model_name] = batch_statistics(url, model_name, timeout=timeout)
        except SrxError as exc:
            log.debug("no statistics for %s: %s", model_name, exc)
    return found


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
