"""Several Triton servers as one runner: the frames of one srx process spread over more than one box.

`--server A --server B` (stream, upscale). Every server must serve the same srx model (the name,
scale, architecture and the source checkpoint's sha256, which `srx serve` and exported repositories
record, agree; the precision may differ, an FP16 engine on a GPU box beside an FP32 graph on a CPU one). Calls go to the servers in
turn, an idle one first, and may overlap (one call per server at a time, each on its own gRPC
client), so a tick of several cameras runs on every box at once (`create_upscaler(parallel=True)`
gives the Upscaler one worker per server).

A server that stops answering is taken out: the call that found it away runs again on another
server at once, so no frame is lost to it. One that hangs (a box that froze, a GPU that stopped)
is found by its calls' deadline, which follows what the server has taken so far
(TritonRunner.call_deadline), so a hang costs a few seconds of one tick. A background thread then
probes it with backoff (a short connect timeout, never a frame's) until it answers live with the
same model, and it takes frames again; one that answers with another model is probed every
`max_wait` seconds until ours is back there. Only when every server is away does `infer()` raise
`RunnerUnavailable`, which a stream turns into labelled bicubic frames while it retries
(srx.camera.fallback). At the start at least one server must answer; the others are probed in the
background the same way.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from srx.errors import SrxError
from srx.eventlog import EventLog
from srx.runtime.base import Runner, RunnerUnavailable
from srx.runtime.triton_runner import ServerAway, TritonRunner, parse_server

log = logging.getLogger("srx")

#: first wait before probing a server that went away again; doubles per failed probe up to `max_wait`
FIRST_PROBE_WAIT = 0.5
#: seconds a probe waits for a server to answer (a box that is off would otherwise hold it for long)
PROBE_TIMEOUT = 2.0
#: the srx_* parameters that must agree across the servers of a pool (precision may differ)
SAME = ("srx_scale", "srx_model", "srx_model_config")


@dataclass
class _Server:
    url: str
    runner: TritonRunner | None = None
    busy: int = 0  # calls given to it now: one runs, any others wait on its lock
    lock: threading.Lock = field(default_factory=threading.Lock)
    down_since: float | None = None
    next_probe: float = 0.0
    wait: float = FIRST_PROBE_WAIT
    refused: str = ""  # it answers with another model: no frames until a probe finds ours there again
    calls: int = 0
    frames: int = 0
    failures: int = 0
    outages: int = 0
    last_error: str = ""

    @property
    def up(self) -> bool:
        return self.runner is not None and self.down_since is None and not self.refused

    def summary(self) -> dict[str, Any]:
        state = "refused" if self.refused else ("up" if self.up else "away")
        return {"server": self.url, "state": state, "calls": self.calls, "frames": self.frames,
                "failures": self.failures, "outages": self.outages, "last_error": self.refused or self.last_error}


def _shown(key: str, params: dict[str, str]) -> str:
    """A parameter as the refusal shows it: the weights' hash short, with the file it came from."""
    value = params.get(key)
    if key == "srx_source_sha256" and value:
        return f"{value[:12]}… ({params.get('srx_source_name') or 'weights'})"
    return repr(value)


class TritonPool(Runner):
    """One srx model served by several Triton servers (`servers`: gRPC HOST:PORT each). `model`:
    its name on the servers (default: what the first server that answers has for `scale`);
    `timeout`: seconds for any one call; `max_wait`: the longest wait between probes of a server
    that is away."""

    backend = "triton"
    concurrent_infer = True

    def __init__(self, servers: Sequence[str], model: str | None = None, scale: int | None = None,
                 timeout: float = 20.0, max_wait: float = 30.0) -> None:
        super().__init__()
        urls = [parse_server(s) for s in servers]
        twice = sorted({u for u in urls if urls.count(u) > 1})
        if twice:
            raise SrxError(f"--server {twice[0]} is given twice; expected each Triton server once")
        if len(urls) < 2:
            raise SrxError(f"a pool of Triton servers needs at least two --server addresses, got {len(urls)}")
        self.timeout, self.max_wait = float(timeout), max(float(max_wait), FIRST_PROBE_WAIT)
        self.servers = [_Server(u) for u in urls]
        self.model = model
        self.reference: TritonRunner | None = None
        away: list[tuple[_Server, str]] = []
        for srv in self.servers:
            try:
                runner = TritonRunner(srv.url, model=self.model, scale=scale, timeout=self.timeout)
            except ServerAway as exc:
                away.append((srv, str(exc)))
                continue
            if self.reference is None:
                self.reference, self.model = runner, runner.model
            else:
                self._check_same(runner)
            srv.runner = runner
        if self.reference is None:
            raise SrxError(f"none of the {len(urls)} Triton servers answers: "
                           + "; ".join(f"{srv.url}: {why}" for srv, why in away))
        ref = self.reference
        self.scale, self.config, self.kernel_sizes = ref.scale, ref.config, ref.kernel_sizes
        self.input_hw_range, self.max_batch = ref.input_hw_range, ref.max_batch
        for srv in self.servers:
            if srv.runner is not None:
                self._narrow_limits(srv.runner)
        now = time.monotonic()
        for srv, why in away:
            srv.down_since, srv.next_probe, srv.outages, srv.last_error = now, now, 1, why
            log.warning("%s; the other Triton servers take its frames while it is probed with backoff up to %.0f s",
                        why, self.max_wait)
        self._lock = threading.Lock()
        self._turn = 0
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self.log = EventLog()  # servers lost, back, refused ..., for --json-summary

    # -- the servers agree -----------------------------------------------------------------------
    def _check_same(self, runner: TritonRunner) -> None:
        ref = self.reference or runner
        differ = [k for k in SAME if runner.params.get(k) != ref.params.get(k)]
        a, b = ref.params.get("srx_source_sha256"), runner.params.get("srx_source_sha256")
        if a and b and a != b:
            differ.append("srx_source_sha256")
        if differ:
            said = ", ".join(f"{k} {_shown(k, ref.params)} at {ref.url} but {_shown(k, runner.params)} at {runner.url}"
                             for k in differ)
            raise SrxError(f"the Triton servers of one run must serve the same srx model; {runner.model}: {said}")

    def _narrow_limits(self, runner: TritonRunner) -> None:
        """The batch and shape limits every server accepts (an engine's profile on one box)."""
        if runner.max_batch:
            self.max_batch = min(int(self.max_batch or runner.max_batch), int(runner.max_batch))
        if runner.input_hw_range is not None:
            if self.input_hw_range is None:
                self.input_hw_range = runner.input_hw_range
            else:
                (lo1, hi1), (lo2, hi2) = self.input_hw_range, runner.input_hw_range
                self.input_hw_range = ((max(lo1[0], lo2[0]), max(lo1[1], lo2[1])),
                                       (min(hi1[0], hi2[0]), min(hi1[1], hi2[1])))

    def describe(self) -> str:
        precisions = sorted({s.runner.precision.upper() for s in self.servers if s.runner is not None})
        # which are up changes while the run goes on: the summary's servers line says how each one ended
        return (f"triton ({self.model} on {len(self.servers)} servers: "
                f"{', '.join(s.url for s in self.servers)}; {'/'.join(precisions)}, batches up to {self.max_batch})")

    @property
    def lanes(self) -> int:
        """How many calls can run at once now: the servers that are up (the Upscaler splits a tick's
        frames into that many batches, so a pool with one server away sends one batch, not two that
        wait for each other)."""
        return max(1, sum(s.up for s in self.servers))

    def server_summary(self) -> list[dict[str, Any]]:
        """Per server: state (up, away, refused), calls and frames it ran, failed calls, outages."""
        return [s.summary() for s in self.servers]

    # -- Runner ----------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        for srv in self.servers:
            if srv.up:
                try:
                    srv.runner.activate()  # type: ignore[union-attr]
                except ServerAway as exc:
                    self._away(srv, exc)
        self._stop.clear()
        self._prober = threading.Thread(target=self._probe_loop, name="srx-triton-probe", daemon=True)
        self._prober.start()

    def deactivate_impl(self) -> None:
        self._stop.set()
        if self._prober is not None:
            self._prober.join(PROBE_TIMEOUT + 5.0)
            self._prober = None
        for srv in self.servers:
            if srv.runner is not None:
                with srv.lock:
                    srv.runner.deactivate()

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        tried: set[str] = set()
        while True:
            srv = self._take(tried)
            if srv is None:
                raise RunnerUnavailable(f"none of the {len(self.servers)} Triton servers answers ("
                                        + "; ".join(f"{s.url}: {s.refused or s.last_error or 'busy'}"
                                                    for s in self.servers) + ")")
            tried.add(srv.url)
            try:
                with srv.lock:
                    runner = srv.runner
                    if runner is None or not srv.up:  # taken out while this call waited for it
                        continue
                    if not runner.is_active:
                        runner.activate()
                    out = runner.infer(lr_y)
            except (RunnerUnavailable, ServerAway) as exc:
                srv.failures += 1
                self._away(srv, exc)
                continue  # the same frames on another server, now
            finally:
                with self._lock:
                    srv.busy -= 1
            srv.calls += 1
            srv.frames += int(lr_y.shape[0])
            return out

    def _take(self, tried: set[str]) -> _Server | None:
        """The next server for a call: up and not tried for it, an idle one first, in turn."""
        with self._lock:
            n = len(self.servers)
            order = [self.servers[(self._turn + k) % n] for k in range(n)]
            ready = [s for s in order if s.up and s.url not in tried]
            if not ready:
                return None
            srv = next((s for s in ready if s.busy == 0), ready[0])
            self._turn = (self.servers.index(srv) + 1) % n
            srv.busy += 1
            return srv

    # -- away and back ---------------------------------------------------------------------------
    def _away(self, srv: _Server, exc: Exception) -> None:
        with self._lock:
            srv.last_error = str(exc)
            if srv.down_since is not None:
                return
            now = time.monotonic()
            srv.down_since, srv.wait, srv.next_probe = now, FIRST_PROBE_WAIT, now + FIRST_PROBE_WAIT
            srv.outages += 1
            others = sum(s.up for s in self.servers)
        self._event("server-lost", server=srv.url, error=str(exc))
        if others:
            log.warning("%s; its frames go to the other %s while it is probed with backoff up to %.0f s",
                        exc, f"{others} Triton servers" if others > 1 else "Triton server", self.max_wait)
        else:
            log.warning("%s; no other Triton server of this run answers now", exc)

    def _probe_loop(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for srv in self.servers:
                if self._stop.is_set():
                    return
                if srv.down_since is not None and now >= srv.next_probe:
                    self._probe(srv)

    def _probe(self, srv: _Server) -> None:
        """Try a server that is away: back once it answers live with the same model."""
        try:
            runner = TritonRunner(srv.url, model=self.model, scale=self.scale, timeout=self.timeout,
                                  connect_timeout=PROBE_TIMEOUT)
            self._check_same(runner)
            runner.activate()
        except ServerAway as exc:
            self._probe_failed(srv, str(exc))
            return
        except SrxError as exc:  # it answers, with another model (or none for this scale): not ours
            with self._lock:
                first, srv.refused = not srv.refused, str(exc)
                srv.next_probe = time.monotonic() + self.max_wait  # someone may put the right model back
            if first:
                self._event("server-refused", server=srv.url, error=str(exc))
                log.error("Triton server %s is back with another model and takes no frames (probed again every "
                          "%.0f s): %s", srv.url, self.max_wait, exc)
            return
        except Exception as exc:  # anything else a half-started server or the transport raises: probe again later
            log.debug("probing Triton server %s failed", srv.url, exc_info=True)
            self._probe_failed(srv, f"Triton server {srv.url} did not answer a probe ({type(exc).__name__}: {exc})")
            return
        with srv.lock:
            old, srv.runner = srv.runner, runner
            if old is not None:
                old.deactivate()
        with self._lock:
            self._narrow_limits(runner)
            after = time.monotonic() - (srv.down_since or time.monotonic())
            srv.down_since, srv.wait, srv.refused = None, FIRST_PROBE_WAIT, ""
        self._event("server-back", server=srv.url, after_s=round(after, 3))
        log.warning("Triton server %s is back after %.1f s and takes frames again", srv.url, after)

    def _probe_failed(self, srv: _Server, why: str) -> None:
        with self._lock:
            srv.last_error = why
            srv.next_probe = time.monotonic() + srv.wait
            srv.wait = min(srv.wait * 2, self.max_wait)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.log.items

    def _event(self, kind: str, **info: Any) -> None:
        self.log.add(kind, **info)
