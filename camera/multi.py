"""Many cameras in one process: one capture thread per source, one model call per tick.

`stream_many()` is the multi-source twin of `srx.camera.stream.stream()`. Each source has its own
capture thread with the latest-frames policy (`srx.camera.capture`), its own reconnects and "no
signal" frames, its own outputs and numbers. Each tick the loop takes the next held frame of every
source that has one and upscales them together (`Upscaler.upscale_batch`): frames of the same LR
size go through the model as one batch, other sizes as one batch per size. A source that ends, fails
or drops out never stops the others; a model backend that becomes unavailable (a Triton server that
went away) turns every source's frames into labelled bicubic frames while it is retried with backoff
(`srx.camera.fallback`).

Sources are named: `--source NAME=SPEC` names one; otherwise the name comes from the source (`cam0`
for camera 0, the file's stem, the URL's host and last path part, `demo`). Names select outputs
(`--output out/{name}.mkv`), web paths (`/cam/NAME/stream.mjpg`) and summary entries.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from srx.camera.capture import CaptureThread, Frame, check_buffer
from srx.camera.outputs import Output, compare_frame, nosignal_frame, overlay_text
from srx.camera.sources import (FrameReader, SourceSpec, is_pipeline, open_reader, parse_max_fps, parse_roi,
                                parse_rtsp_transport, parse_source, redact_url)
from srx.camera.stats import (LATE_S, Samples, StreamStats, StreamSummary, bursts_text, damaged_text, late_text,
                              servers_line, source_lines, stopped_text, window_words)
from srx.console import status_line, status_write, stderr_tty
from srx.errors import OutOfMemory, SrxError
from srx.eventlog import merged
from srx.imageio import square_pixels
from srx.jsonout import json_text
from srx.words import counted

if TYPE_CHECKING:
    from srx.camera.stream import RecordingClock

log = logging.getLogger("srx")

#: seconds a stop waits, in all, for the sources' threads (one blocked in an open that heeds no stop is
#: left: it ends with the process, srx.cli.app.main)
STOP_WAIT_S = 3.0

#: what a source name may look like: it becomes part of file names and URL paths
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}"
_NAMED = re.compile(rf"^({NAME_PATTERN})=(.+)$", re.S)
#: NAME_PATTERN in words, for the messages that refuse a name
NAME_RULE = "ASCII letters, digits, _ . - (at most 40, a letter or digit first)"


@dataclass
class NamedSource:
    name: str
    spec: SourceSpec
    given: bool = False  # named by the user (NAME=...), not by default_name: a lone source is called by it too


def check_name(name: str) -> str:
    """A source's name as srx takes it (NAME_PATTERN), else an SrxError saying what is expected."""
    if not re.fullmatch(NAME_PATTERN, str(name)):
        raise SrxError(f"source name {name!r}: expected {NAME_RULE}, e.g. door_east")
    return name


def split_name(text: str) -> tuple[str | None, str]:
    """'lobby=rtsp://...' -> ('lobby', 'rtsp://...'); anything else -> (None, text). A path that
    exists as written is never split (a file may have '=' in its name); URLs cannot match (':' comes
    before their first '='), nor GStreamer pipelines (a space comes before it, and a pipeline's first
    element may well set a URL: 'rtspsrc location=rtsp://...')."""
    m = _NAMED.match(str(text).strip())
    if m is None or Path(str(text)).expanduser().exists():
        loose = None if is_pipeline(str(text)) else re.match(r"^([^=/:]+)=([A-Za-z][A-Za-z0-9+.-]*://.+)$",
                                                       str(text).strip(), re.S)
        if m is None and loose is not None and not Path(str(text)).expanduser().exists():  # a name srx cannot take
            raise SrxError(f"source name {loose.group(1)!r} (in {loose.group(1)}={redact_url(loose.group(2))}): expected "
                           f"{NAME_RULE}, e.g. door_east=URL")
        return None, str(text)
    return m.group(1), m.group(2)


def _sanitize(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    return name[:40].rstrip("-.")


def default_name(spec: SourceSpec, index: int) -> str:
    """cam0 for camera 0, a file's stem, a folder's name, host[-last path part] for a URL (an IPv6
    host as ip6-fe80-1), pipelineN for a GStreamer pipeline, demo for the built-in clip, srcN otherwise."""
    if spec.kind == "camera":
        return f"cam{spec.target}"
    if spec.kind == "demo":
        return "demo"
    if spec.kind == "file":
        name = _sanitize(Path(spec.target).stem)
    elif spec.kind == "folder":
        name = _sanitize(Path(spec.target).name)
    elif spec.kind == "url":
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(str(spec.target))
            host, path = parts.hostname or "", parts.path  # an IPv6 host without its brackets: ::1
        except ValueError:  # not a URL urllib can split: no host part in the name
            host, path = "", ""
        last = [p for p in path.split("/") if p and "=" not in p]  # no parameters (a DVR's user=...&password=...)
        if ":" in host:  # an IPv6 address, said as one: ::1 would read "1", fe80::1 "fe80-1"
            host = "ip6-" + re.sub(":+", "-", host.strip(":"))
        name = _sanitize(host + ("-" + last[-1] if last else ""))
    elif spec.kind == "gstreamer":
        name = f"pipeline{index}"
    else:
        name = f"src{index}"
    return name or f"src{index}"


def parse_sources(cameras: Sequence[str] = (), sources: Sequence[str] = (), demo: bool = False,
                  loop: bool = False) -> list[NamedSource]:
    """--camera [NAME=]N (repeatable), --source [NAME=]SPEC (repeatable) and --demo -> named
    sources, in that order. Two sources with one name are an SrxError."""
    items: list[NamedSource] = []
    for text in cameras:
        name, value = split_name(str(text))
        value = value.strip()
        if not re.fullmatch(r"-?\d+", value):
            raise SrxError(f"--camera {text!r}: expected a device index (0 for /dev/video0), optionally named: "
                           "--camera NAME=0")
        items.append(NamedSource(name or "", parse_source(camera=int(value)), given=bool(name)))
    for text in sources:
        name, value = split_name(str(text))
        items.append(NamedSource(name or "", parse_source(source=value, loop=loop), given=bool(name)))
    if demo:
        items.append(NamedSource("", parse_source(demo=True, loop=loop)))
    if not items:
        raise SrxError("expected at least one of --camera N, --source FILE|URL|PIPELINE or --demo")
    for i, item in enumerate(items):
        if not item.name:
            item.name = default_name(item.spec, i)
    seen: dict[str, NamedSource] = {}
    for item in items:
        if item.name in seen:
            raise SrxError(
                f"two sources are named {item.name!r} ({seen[item.name].spec.describe()} and {item.spec.describe()}); "
                f"give them different names with --source NAME=SPEC (or --camera NAME=N; in a --config file, name = in each "
                f"[[source]] table), e.g. --source {item.name}_2=...")
        seen[item.name] = item
    return items


def per_source(items: Sequence[NamedSource], texts: Sequence[str], option: str, what: str,
               parse: Callable[[str], Any]) -> dict[str, Any]:
    """A repeatable [NAME=]VALUE option: {source name: parsed value}, a named value for that source,
    a bare one for every other source (absent: no entry). One line for a repeat or an unknown name."""
    by_name: dict[str, Any] = {}
    names = [item.name for item in items]
    for text in texts:
        name, value = split_name(str(text))
        key = name or ""
        if key in by_name:
            raise SrxError(f"{option} given twice for {'source ' + repr(name) if name else 'every source'}; "
                           f"expected one per source ({option} NAME={what}) and at most one without a name")
        if name and name not in names:
            raise SrxError(f"{option} {text!r}: no source is named {name!r}; the sources are {', '.join(names)}")
        by_name[key] = parse(value)
    return {item.name: by_name.get(item.name, by_name.get("")) for item in items
            if item.name in by_name or "" in by_name}


def apply_regions(items: Sequence[NamedSource], regions: Sequence[str]) -> None:
    """--roi [NAME=]LEFT,TOP,WIDTH,HEIGHT (repeatable): a named region is that source's, a bare one
    every other source's (each camera watches its own doorway). Sets each source's `spec.roi`."""
    chosen = per_source(items, regions, "--roi", "LEFT,TOP,WIDTH,HEIGHT", parse_roi)
    for item in items:
        item.spec.roi = chosen.get(item.name)


def apply_rates(items: Sequence[NamedSource], rates: Sequence[str]) -> None:
    """--max-fps [NAME=]N (repeatable): at most N frames a second of that source (or, bare, of every
    other source) go to the model. Sets each source's `spec.max_fps`."""
    chosen = per_source(items, rates, "--max-fps", "N", parse_max_fps)
    for item in items:
        item.spec.max_fps = chosen.get(item.name)


def apply_transports(items: Sequence[NamedSource], transports: Sequence[str]) -> None:
    """--rtsp-transport [NAME=]tcp|udp (repeatable): how that rtsp:// source's (or, bare, every other
    one's) video comes; tcp where none is given. Sets each source's `spec.rtsp_transport`."""
    chosen = per_source(items, transports, "--rtsp-transport", "tcp|udp", parse_rtsp_transport)
    for item in items:
        item.spec.rtsp_transport = chosen.get(item.name) or "tcp"


def output_for(pattern: str, name: str) -> str:
    """A source's --output: {name} replaced (a path, or an rtsp:// URL, which a Path would mangle)."""
    return str(pattern).replace("{name}", name)


def check_pattern(pattern: str, count: int, option: str = "--output") -> None:
    """With several sources, a per-source file needs {name} in its path."""
    if count > 1 and "{name}" not in str(pattern):
        raise SrxError(f"{option} {pattern} would be the same file for all {count} sources; put {{name}} "
                       f"in it, e.g. {option} out/{{name}}.mkv")


class _Unopened(FrameReader):
    """The reader of a live source that did not open at start: the capture reconnects first."""

    def read(self) -> np.ndarray | None:
        return None


class _Opening:
    """A live source's first open, under way in a thread of its own while the run starts: the
    cameras that open sooner do not wait for it (one that does not answer costs its `open_timeout`
    to itself alone). `result` is the reader, or the exception the open raised."""

    def __init__(self, spec: SourceSpec, timeout: float) -> None:
        self.done = threading.Event()
        self.result: FrameReader | BaseException | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        threading.Thread(target=self._work, args=(spec, timeout), name="srx-open", daemon=True).start()

    def _work(self, spec: SourceSpec, timeout: float) -> None:
        try:
            result: FrameReader | BaseException = open_reader(spec, timeout)
        except BaseException as exc:  # the capture thread says it, or reconnects
            result = exc
        with self._lock:
            self.result = result
            self.done.set()
            if not self._abandoned:
                return
        if isinstance(result, FrameReader):  # nobody will take it: the run stopped while it opened
            result.release()

    def wait(self, stop: threading.Event) -> FrameReader | BaseException | None:
        """The open's outcome, or None if `stop` came first (the open is then abandoned)."""
        while not self.done.wait(0.1):
            if stop.is_set():
                self.abandon()
                return None
        return self.result

    def abandon(self) -> None:
        """Nobody takes the reader: released now if it came, else by the open when it comes."""
        with self._lock:
            self._abandoned = True
            result = self.result if self.done.is_set() else None
        if isinstance(result, FrameReader):
            result.release()


class SourceCapture(CaptureThread):
    """A CaptureThread that wakes the multi-source loop (`ready`) whenever it publishes a frame or
    ends, and that may start before its source opened: with the open still under way (`_Opening`:
    "starting", no no-signal frames yet) or after it failed (then it reconnects, with backoff, first)."""

    def __init__(self, spec: SourceSpec, reader: FrameReader | _Opening | None, ready: threading.Event,
                 name: str | None = None, **kwargs: Any) -> None:
        self.opening = reader if isinstance(reader, _Opening) else None
        self.first_open_pending = self.opening is not None  # still so if the run stops before the open ends
        super().__init__(spec, reader if isinstance(reader, FrameReader) else _Unopened(), **kwargs)
        if name is not None:
            self.label = f"{name} ({spec.describe()})"
        self.ready = ready
        self.unopened = reader is None
        self.ever_opened = isinstance(reader, FrameReader)
        if self.unopened:
            self.connected = False
            self._thread.name = "srx-capture-reconnect"

    @property
    def stalled(self) -> bool:
        return self.opening is None and super().stalled  # an open under way has its own timeout

    def _publish(self, frame: Frame) -> bool:
        ok = super()._publish(frame)
        self.ready.set()
        return ok

    def _take_open(self, opening: _Opening) -> SrxError | None:
        """Wait for the first open: its reader, or its failure (said here; it is the first attempt of
        the reconnects that follow)."""
        result = opening.wait(self._stop)
        self.first_open_pending = result is None
        self.opening = None
        if isinstance(result, FrameReader):
            self.reader, self.last_frame_at, self.ever_opened = result, time.monotonic(), True
            return None
        if isinstance(result, SrxError) and self.spec.reconnects:
            log.warning("source %s did not open: %s; retrying in the background (the others run meanwhile)",
                        self.label, result)
            return result
        if result is not None:
            raise result
        return None

    def _loop(self) -> None:
        if self.opening is not None:
            failed = self._take_open(self.opening)
            if failed is not None:
                self._reconnect(failed)
            if self._stop.is_set():
                return
        elif self.unopened:
            self._reconnect()
            if self._stop.is_set():
                return
        super()._loop()

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            if self.opening is not None:
                self.opening.abandon()
            self.ready.set()


@dataclass
class _Lane:
    """One source's state in the loop."""

    src: NamedSource
    outputs: list[Output]
    stats: StreamStats
    capture: SourceCapture | None = None
    done: str | None = None  # why this source stopped: end-of-input, max-frames, error, outputs-failed
    error: str | None = None
    last_size: tuple[int, int] | None = None
    next_nosignal: float = 0.0
    clock: RecordingClock | None = None  # how often real-time recordings take each frame
    frames_at_reconnect: int = 0
    seen_reconnects: int = 0
    output_errors: list[str] = field(default_factory=list)  # its outputs that failed ('OUTPUT: why')
    closed: dict[int, str | None] | None = None  # its outputs closed once it stopped (close_each), the run going on
    rate_known: bool = False  # its clock and recordings have its source's frame rate (it opened)


def _learn_rate(lane: _Lane, reader_fps: float | None, nosignal_fps: float) -> None:
    """The lane's recording clock and recordings at its source's rate (or the spec's): at the start,
    or at the first frame of a source that opened after the run began, before any recording opened."""
    from srx.camera.stream import RecordingClock

    fps = reader_fps or lane.src.spec.fps
    lane.clock = RecordingClock(fps, lane.src.spec.live, nosignal_fps)
    for o in lane.outputs:
        if hasattr(o, "fps") and fps:
            o.fps = fps  # recordings play at their source's rate


@dataclass
class MultiSummary:
    """Per-source summaries (StreamSummary each) and the totals over all sources."""

    backend: str
    scale: int
    stopped_by: str
    wall_s: float
    sources: dict[str, StreamSummary]
    total: dict[str, Any]
    batches: dict[int, int] = field(default_factory=dict)  # frames per model call -> number of calls
    inference: dict[str, Any] = field(default_factory=dict)  # backend outages and fallback frames
    shared_errors: list[str] = field(default_factory=list)  # a shared output (the web server) that failed
    run_error: str | None = None  # why the upscale stopped the run (out of memory); said after the summary, exit 1

    @property
    def output_errors(self) -> list[str]:
        """Every output of the run that failed: the sources' own and the shared ones."""
        return [e for s in self.sources.values() for e in s.output_errors] + self.shared_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "scale": self.scale, "stopped_by": self.stopped_by, "wall_s": self.wall_s,
            "total": self.total, "batches": {str(k): v for k, v in sorted(self.batches.items())},
            "inference": self.inference, "sources": {k: v.to_dict() for k, v in self.sources.items()},
            "output_errors": self.output_errors, "run_error": self.run_error,
        }

    def write_json(self, path: Path) -> None:
        """One file for all sources, or one per source when the path holds {name}."""
        from srx.fsutil import write_report

        if "{name}" in str(path):  # each written that can be (a full disk under one of them); then one error
            failed = []
            for name, summary in self.sources.items():
                try:
                    summary.write_json(output_for(str(path), name))
                except SrxError as exc:
                    failed.append(str(exc))
            if failed:
                raise SrxError("; ".join(failed))
        else:
            write_report(Path(path), json_text(self.to_dict()) + "\n")

    def format(self) -> str:
        def ms(v: float | None) -> str:
            return f"{v:.1f}" if v is not None else "-"

        t = self.total
        lines = [
            f"stream summary: {len(self.sources)} sources x{self.scale} on {self.backend}, {stopped_text(self.stopped_by)}",
            f"  total: {t['frames_in']} in, {t['frames_out']} out, {t['dropped']} dropped"
            + "".join(f", {t[k]} {label}" for k, label in (("skipped", "skipped"), ("stale", "stale"),
                                                            ("queued_at_stop", "still queued at the stop"),
                                                            ("damaged", "damaged")) if t.get(k))
            + f" in {self.wall_s:.1f} s; "
            f"fps {t['fps_in']:.2f} in, {t['fps_out']:.2f} out; latency ms p50 {ms(t['latency_ms']['p50'])}, "
            f"p95 {ms(t['latency_ms']['p95'])}" + window_words(t.get("latency_window")),
            "  model calls: " + (", ".join(f"{n} of {size} frame{'s' if size > 1 else ''}"
                                           for size, n in sorted(self.batches.items())) or "none"),
        ]
        if self.inference.get("outages"):
            lines.append(f"  backend unavailable {self.inference['outages']} time(s), {self.inference['failed_attempts']} "
                         f"failed attempt(s); {self.inference['fallback_frames']} frames went out bicubic meanwhile")
        if self.inference.get("servers"):
            lines.append(servers_line(self.inference["servers"]))
        for name, s in self.sources.items():
            size = (f"{s.input_size[0]}x{s.input_size[1]} -> {s.output_size[0]}x{s.output_size[1]}"
                    if s.input_size and s.output_size else "no frames")
            lat = s.latency_ms
            extra = ""
            if s.skipped and s.max_fps:
                extra += f", {s.skipped} skipped by --max-fps {s.max_fps:g}"
            if s.stale:
                extra += f", {s.stale} stale (held up at a connect, a stall or a slow link)"
            if s.queued_at_stop:
                extra += f", {s.queued_at_stop} still queued at the stop"
            if s.nosignal_frames:
                extra += f", {s.nosignal_frames} no-signal"
            if s.damaged:
                extra += f", {damaged_text(s.damaged)}"
            if s.reconnect_attempts and (s.reconnects or s.frames_in):  # one that never opened: its note says it
                extra += f", {s.reconnects} reconnects after {s.reconnect_attempts} attempts"
            lines.append(f"  {name}: {s.source}, {size}, {stopped_text(s.stopped_by)}: {s.frames_in} in, {s.frames_out} out, "
                         f"{s.dropped} dropped{extra}; fps {s.fps_in:.2f} in, {s.fps_out:.2f} out; "
                         f"latency ms p50 {ms(lat['p50'])}, p95 {ms(lat['p95'])}" + window_words(s.latency_window))
            if s.late_spells and s.worst_lag_s is not None:
                lines.append(f"    {late_text(s.worst_lag_s, s.late_spells)}")
            lines += [f"    {line}" for line in source_lines(s)]
            if s.timing_note:
                lines.append(f"    note: {s.timing_note}")
            for failed in s.output_errors:
                lines.append(f"    output failed: {failed}")
        for failed in self.shared_errors:
            lines.append(f"  output failed: {failed}")
        if self.total.get("keep_up"):
            lines.append(f"  {self.total['keep_up']}")
        return "\n".join(lines)


def _open_all(sources: Sequence[NamedSource], timeout: float) -> list[FrameReader | _Opening]:
    """Open every source at once. A source whose failure is the user's input (a file, a folder, the
    demo) is opened before the run starts, and a failure is an SrxError; a live one (a camera, a URL)
    is left opening (`_Opening`), so the run starts without waiting for the slowest camera and one
    that does not open reconnects in the background while the others run."""
    opens = [_Opening(src.spec, timeout) for src in sources]
    try:
        for src, o in zip(sources, opens):  # the first failure in the sources' order is the one said
            if src.spec.reconnects:
                continue
            o.done.wait()
            if isinstance(o.result, SrxError):
                raise SrxError(f"source {src.name}: {o.result}") from None
            if isinstance(o.result, BaseException):
                raise o.result
    except BaseException:
        for o in opens:
            o.abandon()
        raise
    return [o if src.spec.reconnects else o.result for src, o in zip(sources, opens)]


def stream_many(
    sources: Sequence[NamedSource],
    upscaler: Any,
    outputs: dict[str, Sequence[Output]] | None = None,
    *,
    shared_outputs: Sequence[Any] = (),
    max_frames: int | None = None,
    duration: float | None = None,
    drop: bool = True,
    buffer: int = 2,
    compare: bool = False,
    overlay: bool = False,
    quiet: bool = True,
    status_interval: float = 1.0,
    reconnect_max_wait: float = 30.0,
    open_timeout: float = 10.0,
    nosignal_fps: float = 5.0,
    stop_event: threading.Event | None = None,
    stats: dict[str, StreamStats] | None = None,
    on_frame: Callable[[str, Frame, np.ndarray, float], None] | None = None,
) -> MultiSummary:
    """Upscale every source into its own outputs until all sources ended, `duration` seconds, a
    stop (Ctrl-C, SIGTERM, SIGHUP, `stop_event`) or a window closing. `max_frames` bounds each source.

    `upscaler`: an srx Upscaler (anything with `upscale_batch(frames, timings)` and `scale`).
    `outputs[name]`: that source's outputs; `shared_outputs`: things closed at the end too (the
    web server). `stats[name]` may be passed in to share live numbers. `on_frame(name, frame,
    output, t_done)` is called after each upscaled frame is delivered."""
    from srx.camera.fallback import InferenceGuard
    from srx.camera.stream import (_Signals, _write_all, all_failed, check_bounds, close_each, close_outputs,
                                   discard_outputs, every_frame, failure_lines, note_clock_jumps, paced_for,
                                   watch)

    check_bounds(max_frames, duration)
    check_buffer(buffer)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise SrxError(f"source names must differ, got {', '.join(names)}")
    outputs = dict(outputs or {})
    stats = stats if stats is not None else {}
    stop = stop_event or threading.Event()
    scale = int(getattr(upscaler, "scale", 0) or 0)
    runner = getattr(upscaler, "runner", None)
    was_active = bool(runner is not None and runner.is_active)
    backend = runner.describe() if runner is not None else type(upscaler).__name__
    pool = runner if hasattr(runner, "server_summary") else None  # several Triton servers (a TritonPool)
    if int(getattr(upscaler, "workers", 1)) > 1:
        backend += (f", {upscaler.workers} calls at a time, one per server" if pool is not None
                    else f", {upscaler.workers} single-threaded calls at a time")
    model_label = (runner.config.name.split("-x")[0].upper().replace("-", " ")
                   if runner is not None and getattr(runner, "config", None) is not None else "SR")
    guard = InferenceGuard(scale, reconnect_max_wait)
    ready = threading.Event()
    lanes = [_Lane(s, list(outputs.get(s.name, ())), stats.setdefault(s.name, StreamStats())) for s in sources]
    for lane in lanes:
        watch(lane.stats, guard, lane.outputs, backend, runner, scale, pool)
    batches: dict[int, int] = {}
    latency_all = Samples()
    tick_ms, upscale_ms = Samples(), Samples()  # each tick's work (upscaling its frames, their outputs), and the first part
    stopped_by = "end-of-input"
    run_error: str | None = None
    started = False
    tty = stderr_tty()
    readers: list[FrameReader | _Opening] = []
    try:
        readers = _open_all(sources, open_timeout)
        with _Signals(stop):
            if runner is not None and not runner.is_active:
                runner.activate()  # load the model before the clock starts: startup is not latency
            for lane, reader in zip(lanes, readers):
                why = every_frame(lane.src.spec)
                if drop and why:
                    log.info("%s: %s", lane.src.name, why)
                lane.capture = SourceCapture(lane.src.spec, reader, ready, name=lane.src.name,
                                             drop=drop and why is None, pace=paced_for(lane.outputs, drop, why), buffer=buffer,
                                             reconnect_max_wait=reconnect_max_wait, open_timeout=open_timeout)
                lane.rate_known = isinstance(reader, FrameReader)  # else at its first frame, _learn_rate
                _learn_rate(lane, reader.fps if isinstance(reader, FrameReader) else None, nosignal_fps)
                note_clock_jumps(lane.outputs, lane.capture.event_log, lane.src.name)
            for lane in lanes:
                for o in lane.outputs:
                    o.started()
            t_start = time.monotonic()
            for lane in lanes:
                lane.stats.t_start = t_start
                lane.stats.capture = lane.capture
                lane.capture.start()
            started = True
            next_status = t_start + status_interval
            while True:
                now = time.monotonic()
                if stop.is_set():
                    stopped_by = "interrupted"
                    break
                if duration is not None and now - t_start >= duration:
                    stopped_by = "duration"
                    break
                for lane in lanes:  # a source that stopped: its recordings finished now, not at the run's end
                    if lane.done and lane.closed is None:
                        lane.closed = close_each(lane.outputs)
                if all(lane.done for lane in lanes):
                    stopped_by = run_end([lane.done for lane in lanes if lane.done])
                    break
                if not quiet and now >= next_status:
                    line = live_line(lanes, t_start)
                    quiet = not status_line(line, tty)
                    next_status = now + status_interval
                ready.clear()
                taken: list[tuple[_Lane, Frame]] = []
                wait = 1.0 / nosignal_fps
                window_closed = False
                for lane in lanes:
                    if lane.done:
                        continue
                    cap = lane.capture
                    frame = cap.get(timeout=0)
                    if cap.reconnects != lane.seen_reconnects:
                        lane.seen_reconnects, lane.frames_at_reconnect = cap.reconnects, lane.stats.frames_out
                    if frame is not None:
                        if not lane.rate_known:  # it opened after the run began: its rate is known now
                            lane.rate_known = True
                            _learn_rate(lane, cap.reader.fps, nosignal_fps)
                        taken.append((lane, frame))
                        continue
                    if cap.error is not None:
                        lane.done, lane.error = "error", str(cap.error)
                        log.error("source %s stopped: %s (the others go on)", lane.src.name, cap.error)
                        cap.stop()
                    elif cap.finished:
                        lane.done = "end-of-input"
                        log.info("source %s ended: %d frames upscaled", lane.src.name, lane.stats.frames_out)
                        cap.stop()
                    elif not cap.connected:
                        if now >= lane.next_nosignal:
                            size = lane.last_size or (640, 360)
                            img = nosignal_frame(size, f"{lane.src.name}: {lane.src.spec.describe()}", cap.outage_note())
                            lane.stats.nosignal += 1
                            lane.next_nosignal = now + 1.0 / nosignal_fps
                            if not _write_all(lane.outputs, img, lane.clock.nosignal(now), lane.clock.time_now(now),
                                              sized=lane.last_size is not None):
                                window_closed = True
                        wait = min(wait, max(0.0, lane.next_nosignal - now))
                if window_closed:
                    stopped_by = "window-closed"
                    break
                if not taken:
                    if not all(lane.done for lane in lanes):
                        ready.wait(max(wait, 0.001))
                    continue
                images = [f.image for _, f in taken]
                timings: list[dict[str, float]] = []
                t_tick = time.monotonic()
                try:
                    results = guard.run(lambda: upscaler.upscale_batch(images, timings))
                except OutOfMemory as exc:  # said after the summary, as one source's stream says it
                    run_error, stopped_by = str(exc), "out-of-memory"
                    break
                upscale_ms.add((time.monotonic() - t_tick) * 1000.0)
                if results is None:  # the backend is down: bicubic, labelled, while it is retried
                    results = [guard.fallback_frame(img) for img in images]
                    timings = [{} for _ in images]
                    for lane, _ in taken:
                        lane.stats.fallback_frames += 1
                else:
                    calls = {t["call"]: int(t["batch"]) for t in timings if "call" in t}
                    made = (Counter(calls.values()) if len(calls) and len(timings) == len(images)
                            else _batch_sizes(images, getattr(runner, "max_batch", None)))
                    for size, n in made.items():
                        batches[size] = batches.get(size, 0) + n
                for (lane, frame), sr, tim in zip(taken, results, timings):
                    t_out = time.monotonic()
                    sr = square_pixels(sr, frame.sar)
                    out = compare_frame(frame.image, sr, scale, model_label) if compare else sr
                    if overlay:
                        out = overlay_text(out, f"{lane.src.name}  " + lane.stats.live_line().strip())
                    keep = _write_all(lane.outputs, out, lane.clock.frame(frame), lane.clock.time_of(frame))
                    t_done = time.monotonic()
                    tim = dict(tim)
                    tim["capture"] = frame.capture_s
                    tim["output"] = t_done - t_out
                    lane.stats.record(frame.t_capture, t_done, tim, frame.image.shape, out.shape)
                    latency_all.add((t_done - frame.t_capture) * 1000.0)
                    lane.last_size = (out.shape[1], out.shape[0])
                    if on_frame is not None:
                        on_frame(lane.src.name, frame, out, t_done)
                    if not keep:
                        window_closed = True
                    if max_frames is not None and lane.stats.frames_out >= max_frames and not lane.done:
                        lane.done = "max-frames"
                        lane.capture.stop()
                    if all_failed(lane.outputs) and not lane.done:  # nothing left to write this camera to
                        lane.done = "outputs-failed"
                        log.error("source %s stopped: every output of it failed (the others go on)", lane.src.name)
                        lane.capture.stop()
                tick_ms.add((time.monotonic() - t_tick) * 1000.0)
                if window_closed:
                    stopped_by = "window-closed"
                    break
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        t_end = time.monotonic()  # the run's span ends here, not after its teardown
        captures = [lane.capture for lane in lanes if lane.capture is not None]
        for cap in captures:  # every source stops reading now, then each is waited for: one blocked in an
            cap.stop(wait=False)  # open (up to --open-timeout) while the others read on counted frames and drops
        until = time.monotonic() + STOP_WAIT_S  # one wait for them all, not 3 s each in turn
        for cap in captures:
            cap.stop(timeout=max(0.0, until - time.monotonic()))
        if not started:
            for reader in readers:
                if isinstance(reader, _Opening):
                    reader.abandon()
                else:
                    reader.release()
            for lane in lanes:  # no run: the error on its way out says why, not each output
                discard_outputs(lane.outputs)
                lane.closed = {}
        closed = {lane.src.name: lane.closed if lane.closed is not None else close_each(lane.outputs)
                  for lane in lanes}  # each camera's own; a shared
        for lane in lanes:  # server's channels close with it; the lines once all are closed (--keep-free)
            lane.output_errors = failure_lines(lane.outputs, closed[lane.src.name])
        shared_errors = close_outputs(list(shared_outputs))
        if runner is not None and not was_active:
            runner.deactivate()
        if not quiet and tty:
            status_write("\n")
        failed = [e for lane in lanes for e in lane.output_errors] + shared_errors
        if failed and sys.exc_info()[0] is not None:  # the error on its way out says the rest
            log.error("outputs that failed: %s", "; ".join(failed))

    if not started:
        raise SrxError("interrupted before the stream started")
    wall = t_end - t_start
    summaries = {lane.src.name: _lane_summary(lane, backend, scale, stopped_by, wall) for lane in lanes}
    frames_in = sum(s.frames_in for s in summaries.values())
    frames_out = sum(s.frames_out for s in summaries.values())
    total = {
        "frames_in": frames_in,
        "frames_out": frames_out,
        "dropped": sum(s.dropped for s in summaries.values()),
        "skipped": sum(s.skipped for s in summaries.values()),
        "stale": sum(s.stale for s in summaries.values()),
        "damaged": sum(s.damaged for s in summaries.values()),
        "queued_at_stop": sum(s.queued_at_stop for s in summaries.values()),
        "nosignal_frames": sum(s.nosignal_frames for s in summaries.values()),
        "fps_in": round(sum(s.fps_in for s in summaries.values()), 3),  # each source's own rate, added up
        # each source's own rate (its frames over its own span), added up, as fps_in and the status line's total;
        # the frames of all sources pooled over one span overstated a short run (3 frames of one tick: 383 fps)
        "fps_out": round(sum(s.fps_out for s in summaries.values()), 3),
        "latency_ms": latency_all.summary(), "latency_window": latency_all.window_used(),  # max: of the run
        "model_calls": sum(batches.values()),
        "ticks": tick_ms.count,  # rounds of the loop that upscaled frames: one frame of each source that had one
        "tick_ms": {**tick_ms.summary(), "upscale_mean": upscale_ms.summary()["mean"]},  # each tick's work
    }
    total["keep_up"] = run_keep_up(summaries, tick_ms, upscale_ms)
    inference: dict[str, Any] = {**guard.summary(), **({"servers": pool.server_summary()} if pool is not None else {})}
    events, left_out = merged(guard.log, *([pool.log] if pool is not None else []))
    if events:  # the shared backend's own: lost and back, servers that left and returned
        inference["events"] = [{**e, "t": round(e["t"] - t_start, 3)} for e in events]
        inference["events_left_out"] = left_out
    return MultiSummary(backend=backend, scale=scale, stopped_by=stopped_by, wall_s=round(wall, 3),
                        sources=summaries, total=total, batches=batches, inference=inference,
                        shared_errors=shared_errors, run_error=run_error)


def run_end(done: Sequence[str]) -> str:
    """Why a run stopped whose every source stopped, from each one's own reason (`_Lane.done`): the
    reason they share (every output failed, every source failed: `sources-failed`, --max-frames),
    `end-of-input` where each ended or reached --max-frames, `sources-stopped` for any other mix
    (each source's line says its own)."""
    kinds = set(done)
    if len(kinds) == 1:
        return {"error": "sources-failed"}.get(done[0], done[0])
    return "end-of-input" if kinds <= {"end-of-input", "max-frames"} else "sources-stopped"


def run_keep_up(sources: dict[str, StreamSummary], tick: Samples, upscale: Samples) -> str:
    """Why the sources' frames were dropped, and what would help: one line, or "" when none were
    (StreamSummary.keep_up's verdict for a run of several sources, whose own lines cannot say it: the
    model calls are shared). Each tick takes one frame of every source that has one, so the loop's
    mean work per tick against the time between the frames of the fastest source that dropped
    frames says whether srx was slower than the sources, close to it, or slow only now and then."""
    dropped = sum(s.dropped for s in sources.values())
    if not dropped or not tick.count:
        return ""
    asked: dict[str, float] = {}  # frames a second each source asked the model for (as StreamSummary.keep_up reads it)
    for name, s in sources.items():
        if s.fps_in > 0 and s.frames_out:
            rate = s.fps_in if s.live else (s.source_fps or s.fps_in)
            asked[name] = min(rate, s.max_fps or rate)
    dropping = [name for name in asked if sources[name].dropped and sources[name].buffer is not None]
    if not dropping:
        return ""
    interval = 1000.0 / max(asked[name] for name in dropping)
    work, up = tick.mean() or 0.0, upscale.mean() or 0.0
    share = f"{dropped / max(sum(s.frames_in for s in sources.values()), 1):.0%} of the frames ({dropped})"
    sizes = {tuple(sources[name].input_size or ()) for name in dropping}
    lockstep = ("; the sources go in lock-step (each tick takes one frame of every source), so a small source drops "
                "as much as a large one" if len(dropping) > 1 and len(sizes) > 1 else "")
    if work >= 0.9 * interval:
        verdict, cause = (("srx was slower than the sources", "") if work > interval else
                          ("srx barely kept up with the sources", ", which leaves no room for slow spells"))
        offered = sum(asked.values())
        done = sum(s.fps_out for s in sources.values())
        return (f"{verdict}: {work:.0f} ms of work per tick ({up:.0f} ms of it upscaling one frame of each source) "
                f"against {interval:.0f} ms between a source's frames{cause}; they offered {offered:.1f} frames a second "
                f"in all, {done:.1f} were upscaled, so {share} were dropped. To keep up: --max-fps per source "
                f"(--max-fps NAME=N), fewer sources, a faster model or backend (srx models, srx bench), or a lower "
                f"--scale{lockstep}")
    bursts = sum(s.dropped_in_bursts for s in sources.values())
    if 2 * bursts >= dropped:
        return bursts_text(dropped, bursts)
    p95 = tick.percentile(95)
    return (f"{share} were dropped in slow spells (work per tick p95 {p95:.0f} ms): the mean work per tick "
            f"({work:.0f} ms, one frame of each source) fits the {interval:.0f} ms between a source's frames. A larger "
            f"--buffer rides such spells out, at the cost of latency{lockstep}")


def _batch_sizes(images: Sequence[np.ndarray], max_batch: int | None) -> dict[int, int]:
    """How an upscaler that does not report its calls splits `images` into model calls (one per
    size, in chunks of `max_batch`): {frames per call: calls}."""
    groups: dict[tuple, int] = {}
    for img in images:
        groups[img.shape] = groups.get(img.shape, 0) + 1
    sizes: dict[int, int] = {}
    for n in groups.values():
        step = max(1, int(max_batch or n))
        for k in range(0, n, step):
            size = min(step, n - k)
            sizes[size] = sizes.get(size, 0) + 1
    return sizes


def _lane_summary(lane: _Lane, backend: str, scale: int, stopped_by: str, wall: float) -> StreamSummary:
    cap, st = lane.capture, lane.stats
    note = f"source failed: {lane.error}" if lane.error else ""
    if cap.first_open_pending:
        note = f"it never opened: its first open was still under way at the stop (--open-timeout {cap.open_timeout:g} s)"
    elif not cap.ever_opened and cap.spec.live:
        note = (f"it never opened: {counted(cap.reconnect_attempts, 'attempt')} failed, the last: "
                f"{cap.last_failure or 'no reason given'}")
    if lane.stats.fallback_frames:
        note = (note + "; " if note else "") + f"{lane.stats.fallback_frames} frames went out bicubic while the backend was down"
    from srx.camera.stream import _summary

    # this source's own end (end-of-input, max-frames, error) or the run's
    # the model calls are shared (batched), so one source's stage times are not the loop's work per
    # frame: no keep-up verdict per source
    return _summary(lane.src.spec.describe(), backend, scale, lane.done or stopped_by, wall, cap, st,
                    lane.frames_at_reconnect, note, lane.outputs, cap.events, cap.events_left_out, alone=False,
                    output_errors=lane.output_errors)


def live_line(lanes: Sequence[_Lane], t_start: float) -> str:
    """Total, then one short part per source: out fps, drops, latency p95, starting/NO SIGNAL/ended."""
    now = time.monotonic()
    parts = []
    total_fps = 0.0
    for lane in lanes:
        s = lane.stats.snapshot()
        total_fps += s["fps_out"]
        state = {"end-of-input": " ended", "max-frames": " done", "error": " FAILED",
                 "outputs-failed": " outputs FAILED"}.get(lane.done or "", "")
        if not state and s["state"] == "starting":
            state = " starting"
        elif not state and not s["connected"]:
            state = " NO SIGNAL"
        elif not state and s.get("lag_s", 0.0) > LATE_S:
            state = f" LATE {s['lag_s']:.1f}s"
        p95 = f"{s['latency_ms_p95']:.0f}ms" if s["latency_ms_p95"] is not None else "-"
        parts.append(f"{lane.src.name} {s['fps_out']:.1f}fps d{s['dropped']} p95 {p95}{state}")
    return f"{now - t_start:7.1f}s  total out {total_fps:5.2f} fps | " + " | ".join(parts)
