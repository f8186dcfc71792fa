"""Triton backend: an srx model on a Triton Inference Server, over gRPC (`tritonclient`).

`--backend triton --server HOST:PORT` (gRPC; `srx serve` listens on 8001 by default). The runner
takes the scale, the model's layers and the batch and shape limits from the model's config on the
server (srx_* parameters, see srx.export.triton_repo), so it refuses a model that is not srx's,
and it picks the model itself when the server has one srx model for the scale (or is told which
with --model NAME). A server that is not there when the runner is made is bad input (SrxError);
one that goes away later makes infer() raise RunnerUnavailable, which a stream turns into
labelled bicubic frames while it retries (srx.camera.fallback); the next call after a failure
opens a new channel, so a restarted server is used again at once.
"""
from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any, Callable

import numpy as np

from srx.errors import SrxError
from srx.runtime.base import Runner, RunnerUnavailable

log = logging.getLogger("srx")



def unnamed_served_models(scale: int) -> list[str]:
    """The Triton names `srx serve` gives a model it is not given a --name for: a shipped model's
    (srx_camera_x3 by default), or the one its file carries, its architecture's for a checkpoint
    (srx_lrnet-32x4-pw3_x3, srx_srcnn-9-1-5_x3). Where the server does not list its models (PyTriton's
    do not), these are what a client can find without --model."""
    from srx.checkpoint import DEFAULT_SHIPPED, SHIPPED
    from srx.export.triton_repo import triton_model_name
    from srx.models import PRESETS, ModelConfig

    shipped = sorted(SHIPPED, key=lambda n: n != DEFAULT_SHIPPED)
    archs = dict.fromkeys(ModelConfig(**PRESETS[SHIPPED[n].preset], scale=scale).name for n in shipped)
    return [triton_model_name(n, scale) for n in (*(f"{n}-x{scale}" for n in shipped), *archs)]

#: the shortest deadline of a call once a server has a record (below it, a busy box could be taken for a hung one)
MIN_CALL_TIMEOUT = 2.0
#: a call may take this many times the server's slowest recent call (per pixel) before it counts as hung
HANG_FACTOR = 10.0
#: successful calls a runner needs before its deadline follows them (the first ones warm the server up)
RECORD_CALLS = 5

#: gRPC status codes that mean "not now" rather than "wrong": the stream retries these
TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED",
             "StatusCode.NOT_FOUND", "StatusCode.RESOURCE_EXHAUSTED", "StatusCode.ABORTED"}


def grpc_module():
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise SrxError(f"the triton backend needs tritonclient ({exc}); install it with "
                       "`pip install 'srx[serve]'` (or `pip install 'tritonclient[grpc]'`)") from None
    return grpcclient


def parse_server(text: str) -> str:
    """'HOST:PORT' (or ':PORT', 'PORT': on 127.0.0.1) -> 'host:port' for gRPC."""
    text = str(text or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise SrxError(f"--server {text!r}: expected the Triton server's gRPC HOST:PORT, e.g. 127.0.0.1:8001")
    return f"{host}:{int(port)}"


def _status(exc: Exception) -> str:
    try:
        return str(exc.status())  # type: ignore[attr-defined]
    except Exception:
        return ""


def _message(exc: Exception) -> str:
    try:
        text = str(exc.message())  # type: ignore[attr-defined]
    except Exception:
        text = str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


class TritonRunner(Runner):
    """An srx model served by Triton. `model`: its name on the server (default: the server's srx
    model for `scale`); `timeout`: seconds for any one call (a frame, a batch) until the runner has
    a record of the server's calls, then the deadline that follows them (`call_deadline`), so a
    server that hangs rather than refuses is given up on within seconds."""

    backend = "triton"

    def __init__(self, server: str, model: str | None = None, scale: int | None = None, timeout: float = 20.0,
                 connect_timeout: float = 5.0, scale_advice: Callable[[str], str] | None = None,
                 expect: str | None = None) -> None:
        super().__init__()
        #: a model name to look for first when `model` is not given (what `srx serve` calls the model
        #: of the checkpoint a command was given: parity's -w)
        self.expect = expect
        #: what a refusal for another scale tells the user to do, given the scales served ('2', '2|4')
        self.scale_advice = scale_advice or (lambda scales: f"pass --scale {scales}")
        self.url = parse_server(server)
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.client: Any = None
        self.params: dict[str, str] = {}  # the model's srx_* config parameters
        self.recent: deque[tuple[float, int]] = deque(maxlen=20)  # (seconds, LR pixels) of the last calls
        client = self._connect()
        try:
            self.model = str(model) if model else self._pick(client, scale)
            self._read_config(client, scale)
        finally:
            client.close()

    # -- set-up ----------------------------------------------------------------------------------
    def _connect(self) -> Any:
        return live_client(self.url, min(self.timeout, self.connect_timeout))

    def _pick(self, client: Any, scale: int | None) -> str:
        """The server's one srx model (for `scale`): from its model index where that is readable
        and lists it (a stock server's repository), else the one of the names `srx serve` gives
        without --name that the server has ready (PyTriton loads models outside the index)."""
        from tritonclient.utils import InferenceServerException

        want = f" for x{scale}" if scale else ""
        if self.expect and self._has(client, self.expect):
            return self.expect
        listed = True
        try:
            index = client.get_model_repository_index(as_json=True, client_timeout=min(self.timeout, 5.0))
        except InferenceServerException:
            index, listed = {}, False  # restricted (srx serve keeps model control to itself)
        models = [m for m in index.get("models", []) if m.get("state", "READY") == "READY"]
        srx = sorted({str(m["name"]) for m in models if str(m.get("name", "")).startswith("srx_")
                      and (not scale or str(m["name"]).endswith(f"_x{scale}"))})
        if len(srx) > 1:
            raise SrxError(f"the Triton server at {self.url} has several srx models{want} ({', '.join(srx)}); "
                           "pick one with --model NAME")
        if srx:
            return srx[0]
        tried = [*([self.expect] if self.expect else []), *unnamed_served_models(scale or 3)]
        ready = [name for name in tried if self._has(client, name)]
        if len(ready) == 1:
            return ready[0]
        if ready:
            raise SrxError(f"the Triton server at {self.url} has several srx models{want} ({', '.join(ready)}); "
                           "pick one with --model NAME")
        have = (f"models in its index: {', '.join(sorted({str(m.get('name')) for m in models})) or 'none'}" if listed
                else "it does not list its models, as srx serve does not")
        raise SrxError(f"the Triton server at {self.url} has no srx model{want} that srx can find (none of "
                       f"{', '.join(tried)}; {have}); {self._hint(client, scale or 3)}")

    def _hint(self, client: Any, scale: int) -> str:
        """How to find the model when the unnamed names of `scale` are not there: wait for a server
        still loading its models, the --scale of the one unnamed model it has, else --model NAME."""
        from tritonclient.utils import InferenceServerException

        def asked(call: Any, *args: Any) -> Any:
            try:
                return call(*args, client_timeout=min(self.timeout, 5.0))
            except InferenceServerException:
                return None

        if asked(client.is_server_ready) is False:  # Triton is not ready while a model loads
            return ("it answers but is not ready: its models may still be loading; try again in a few seconds "
                    "(or wait until `srx serve` prints its clients: line)")
        other = {s: [n for n in unnamed_served_models(s) if self._has(client, n)] for s in (2, 3, 4) if s != scale}
        found = {s: names for s, names in other.items() if names}
        if found:
            served = ", ".join(n for names in found.values() for n in names)
            return (f"it serves {served}: {self.scale_advice('|'.join(str(s) for s in found))}, or a model's name "
                    "with --model NAME")
        return (f"{self.scale_advice('N')} if it serves another scale, or the model's name with --model NAME (the "
                "clients: line `srx serve` prints says which a client needs)")

    def _has(self, client: Any, name: str) -> bool:
        """Whether the server has model `name` ready (an error asking counts as no)."""
        from tritonclient.utils import InferenceServerException

        try:
            return bool(client.is_model_ready(name, client_timeout=min(self.timeout, 5.0)))
        except InferenceServerException:
            return False

    def _read_config(self, client: Any, scale: int | None) -> None:
        from tritonclient.utils import InferenceServerException

        from srx.export.triton_repo import INPUT, OUTPUT, PARAM_SCALE

        try:
            cfg = client.get_model_config(self.model, as_json=True, client_timeout=min(self.timeout, 5.0))["config"]
        except InferenceServerException as exc:
            hint = ""
            if "/" in self.model or self.model.lower().endswith((".onnx", ".engine", ".plan", ".pt", ".pth")):
                hint = ("; with --server, --model names a model the server serves (such as srx_camera_x3, as "
                        "`srx serve` prints it), not a file")
            # a server with another srx model ready is another server, not one still loading ours (a PyTriton
            # server says it is ready before its model is, so readiness alone cannot tell them apart)
            serves = [n for s in (2, 3, 4) for n in unnamed_served_models(s) if n != self.model and self._has(client, n)]
            if serves:
                raise SrxError(f"the Triton server at {self.url} has no model {self.model!r} but serves "
                               f"{', '.join(serves)}{hint or '; every server of one run must serve the same srx model'}"
                               ) from None
            raise ServerAway(f"the Triton server at {self.url} has no model {self.model!r} ready: {_message(exc)}"
                             f"{hint}") from None
        params = {k: (v or {}).get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}
        self.params = params
        ins = [(t.get("name"), t.get("data_type")) for t in cfg.get("input", [])]
        outs = [(t.get("name"), t.get("data_type")) for t in cfg.get("output", [])]
        contract = f"srx models have input {INPUT}, output {OUTPUT} (FP32) and an {PARAM_SCALE} parameter"
        if PARAM_SCALE not in params or ins != [(INPUT, "TYPE_FP32")] or outs != [(OUTPUT, "TYPE_FP32")]:
            raise SrxError(f"model {self.model!r} on {self.url} is not an srx model (inputs {[i[0] for i in ins]}, "
                           f"outputs {[o[0] for o in outs]}, parameters {sorted(params) or 'none'}); {contract}")
        try:
            self.scale = int(params[PARAM_SCALE])
            model_config = json.loads(params.get("srx_model_config") or "{}")
        except (ValueError, TypeError) as exc:
            raise SrxError(f"model {self.model!r} on {self.url} has unreadable srx parameters ({exc})") from None
        if scale is not None and int(scale) != self.scale:
            raise SrxError(f"model {self.model} on {self.url} upscales x{self.scale} but x{scale} was asked for; "
                           f"{self.scale_advice(str(self.scale))}")
        if int(cfg.get("max_batch_size") or 0) < 1:
            raise SrxError(f"model {self.model!r} on {self.url} has no batch dimension (max_batch_size 0); {contract}")
        self.max_batch = int(cfg["max_batch_size"])
        self.precision = params.get("srx_precision", "fp32")
        self.config = self.config_from_dict(model_config)
        ks = model_config.get("kernel_sizes") if isinstance(model_config, dict) else None
        self.kernel_sizes = [int(k) for k in ks] if ks else None
        if params.get("srx_min_hw") and params.get("srx_max_hw"):
            lo, hi = ([int(v) for v in params[k].split("x")] for k in ("srx_min_hw", "srx_max_hw"))
            self.input_hw_range = ((lo[0], lo[1]), (hi[0], hi[1]))

    def call_deadline(self, pixels: int) -> float:
        """Seconds a call of `pixels` LR pixels may take before the server counts as hung: `timeout`
        for the first RECORD_CALLS calls, then HANG_FACTOR times the slowest recent call scaled to
        `pixels` (at least MIN_CALL_TIMEOUT, at most `timeout`)."""
        if len(self.recent) < RECORD_CALLS:
            return self.timeout
        slowest = max(t * max(1.0, pixels / max(p, 1)) for t, p in self.recent)
        return min(self.timeout, max(MIN_CALL_TIMEOUT, HANG_FACTOR * slowest))

    def describe(self) -> str:
        return f"triton ({self.model} at {self.url}, {self.precision.upper()}, batches up to {self.max_batch})"

    # -- Runner ----------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        self.client = self._connect()

    def deactivate_impl(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        grpcclient = grpc_module()
        from tritonclient.utils import InferenceServerException

        if self.max_batch and lr_y.shape[0] > self.max_batch:  # the server's limit: several calls
            return np.concatenate([self.infer_impl(lr_y[i : i + self.max_batch])
                                   for i in range(0, lr_y.shape[0], self.max_batch)])
        if self.client is None:  # the last call failed: a fresh channel, no inherited reconnect backoff
            self.client = grpcclient.InferenceServerClient(self.url)
        inp = grpcclient.InferInput("lr_y", list(lr_y.shape), "FP32")
        inp.set_data_from_numpy(lr_y)
        pixels = int(np.prod(lr_y.shape))
        t0 = time.monotonic()
        try:
            result = self.client.infer(self.model, [inp], outputs=[grpcclient.InferRequestedOutput("hr_y")],
                                       client_timeout=self.call_deadline(pixels))
        except InferenceServerException as exc:
            if _status(exc) in TRANSIENT or not _status(exc):
                try:
                    self.client.close()
                finally:
                    self.client = None
                raise RunnerUnavailable(f"Triton server {self.url} is unavailable ({_message(exc)})") from None
            raise SrxError(f"Triton server {self.url} failed on {self.model}: {_message(exc)}") from None
        self.recent.append((time.monotonic() - t0, pixels))
        out = result.as_numpy("hr_y")
        if out is None:
            raise SrxError(f"Triton server {self.url} returned no hr_y for {self.model}")
        return out if out.dtype == np.float32 else out.astype(np.float32)


class ServerAway(SrxError):
    """No Triton server answers at the address, it is not live yet, or it does not have the model
    ready (still loading it): bad input for one --server, a box to probe again for one of several."""


def live_client(url: str, timeout: float = 5.0) -> Any:
    """A gRPC client of the Triton server at `url` once it answers live; one `error:` line
    (ServerAway) where no server answers or it is not live yet."""
    grpcclient = grpc_module()
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    try:
        live = client.is_server_live(client_timeout=timeout)
    except InferenceServerException as exc:
        client.close()
        # a port that answers at once but not in gRPC may be Triton's HTTP one; a timeout (a box that
        # hangs, which the pool's prober meets again and again) is not worth another second of waiting
        kind = _triton_port_at(url) if _status(exc) != "StatusCode.DEADLINE_EXCEEDED" else None
        if kind:
            raise ServerAway(f"{url} is a Triton server's {kind} port; --server takes its gRPC port (8001 by default; "
                             "`srx serve` prints it in its clients: line)") from None
        raise ServerAway(f"no Triton server answers at {url} (gRPC): {_message(exc)}; start one with "
                       "`srx serve` or check --server HOST:PORT (the gRPC port, 8001 by default)") from None
    if not live:
        client.close()
        raise ServerAway(f"the Triton server at {url} answers but is not live; try again when it has started")
    return client


def _triton_port_at(url: str, timeout: float = 1.0) -> str | None:
    """Which of a Triton server's other ports `url` is, "HTTP" or "metrics" (someone gave it for the
    gRPC one), or None: the metrics port serves Prometheus text at /metrics, the HTTP port the health
    check at /v2/health/live."""
    import http.client

    host, _, port = url.rpartition(":")

    def get(path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read(65536)
        finally:
            conn.close()

    try:
        status, body = get("/metrics")
        if status == 200 and b"nv_" in body:
            return "metrics"
        return "HTTP" if get("/v2/health/live")[0] == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None


def check_server(server: str, timeout: float = 5.0) -> str:
    """One `error:` line now when no Triton server answers at `server` (gRPC HOST:PORT), as a
    runner's would be; returns the parsed address."""
    url = parse_server(server)
    live_client(url, timeout).close()
    return url


def server_version(server: str, timeout: float = 5.0) -> str:
    """The Triton server's version string ('2.51.0')."""
    grpcclient = grpc_module()
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(parse_server(server))
    try:
        return str(client.get_server_metadata(as_json=True, client_timeout=timeout).get("version", "?"))
    except InferenceServerException as exc:
        raise SrxError(f"no Triton server answers at {server}: {_message(exc)}") from None
    finally:
        client.close()


def batch_statistics(server: str, model: str, timeout: float = 5.0) -> dict[str, Any]:
    """Triton's own statistics of `model`: requests (inference_count), model executions, and the
    batch sizes its dynamic batcher formed ({batch size: executions}), with mean queue and
    compute times per request in ms."""
    grpcclient = grpc_module()
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(parse_server(server))
    try:
        stats = client.get_inference_statistics(model, as_json=True, client_timeout=timeout)
    except InferenceServerException as exc:
        raise SrxError(f"no statistics for {model} at {server}: {_message(exc)}") from None
    finally:
        client.close()
    entries = stats.get("model_stats") or [{}]
    ms = entries[0]
    inf = ms.get("inference_stats") or {}

    def mean_ms(key: str) -> float | None:
        part = inf.get(key) or {}
        n = int(part.get("count", 0) or 0)
        return round(int(part.get("ns", 0) or 0) / n / 1e6, 3) if n else None

    batches = {int(b.get("batch_size", 0)): int((b.get("compute_infer") or {}).get("count", 0) or 0)
               for b in ms.get("batch_stats") or []}
    return {
        "model": model,
        "inference_count": int(ms.get("inference_count", 0) or 0),
        "execution_count": int(ms.get("execution_count", 0) or 0),
        "batches": dict(sorted(batches.items())),
        "queue_ms_mean": mean_ms("queue"),
        "compute_infer_ms_mean": mean_ms("compute_infer"),
        "success_ms_mean": mean_ms("success"),
    }
