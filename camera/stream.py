"""The stream loop: source -> capture thread (latest frame) -> Upscaler -> outputs, with numbers.

`stream()` is a plain function; `srx stream` only builds its arguments. It returns a
`StreamSummary` and always finalises its outputs and stops its threads, whether the input ended,
a bound (`max_frames`, `duration`) was reached, the user pressed Ctrl-C or the process got SIGTERM or
SIGHUP (`srx.signals.stop_signals`).
"""
from __future__ import annotations

import logging
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from srx.camera.capture import CaptureThread, Frame, check_buffer
from srx.camera.fallback import InferenceGuard
from srx.camera.outputs import Output, compare_frame, nosignal_frame, overlay_text
from srx.camera.sources import SourceSpec, open_reader, parse_source
from srx.camera.stats import StreamStats, StreamSummary, source_settings
from srx.console import status_line, status_write, stderr_tty
from srx.errors import OutOfMemory, SrxError
from srx.eventlog import merged
from srx.imageio import square_pixels
from srx.signals import StoppedEarly, _WindDown, hung_up, stop_signals, stopping_signals  # noqa: F401 (theirs)
from srx.runtime.base import Runner

log = logging.getLogger("srx")


class TimedRunner(Runner):
    """Wraps the Upscaler's runner so the model's own time (`infer`) is measured apart from the
    colour conversion before it (`pre`) and the chroma enlargement and merge after it (`post`).

    Everything the Upscaler asks a runner passes through: `input_hw_range` (an engine's profile:
    frames within it run whole, smaller ones are refused) and, when the runner has them,
    `infer_frame` / `frames_on_device` (the all-GPU frame path, timed as the model stage)."""

    def __init__(self, inner: Runner) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.backend, self.scale = inner.backend, inner.scale
        self.config, self.kernel_sizes = inner.config, inner.kernel_sizes
        self.input_hw_range = inner.input_hw_range
        self.is_active = inner.is_active
        self.calls: list[tuple[float, float]] = []
        if hasattr(inner, "infer_frame"):  # the Upscaler looks for the attribute itself
            self.infer_frame = self._infer_frame_timed

    @property
    def frames_on_device(self) -> bool:
        return bool(getattr(self.inner, "frames_on_device", False))

    def _infer_frame_timed(self, bgr: np.ndarray) -> np.ndarray:
        t0 = time.monotonic()
        out = self.inner.infer_frame(bgr)  # type: ignore[attr-defined]
        self.calls.append((t0, time.monotonic()))
        return out

    def describe(self) -> str:
        return self.inner.describe()

    def activate_impl(self) -> None:
        self.inner.activate()

    def deactivate_impl(self) -> None:
        self.inner.deactivate()

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        t0 = time.monotonic()
        out = self.inner.infer(lr_y)
        self.calls.append((t0, time.monotonic()))
        return out


def _upscale_timed(upscaler: Any, timed: TimedRunner | None, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    t0 = time.monotonic()
    if timed is not None:
        timed.calls.clear()
    sr = upscaler.upscale(image)
    t1 = time.monotonic()
    if timed is None or not timed.calls:
        return sr, {"infer": t1 - t0}
    first, last = timed.calls[0][0], timed.calls[-1][1]
    # infer spans first model call to last (tile stitching between tiles, if any, counts there)
    return sr, {"pre": first - t0, "infer": last - first, "post": t1 - last}


class _Signals:
    """SIGINT/SIGTERM/SIGHUP (`srx.signals.stop_signals`) set a flag the loop checks between frames, so outputs are finalised; a
    second Ctrl-C interrupts at once. Only installed in the main thread. The handler sets the
    stop event once: a second signal that lands while the first handler is inside Event.set()
    (which holds the event's lock) must not call it again, or it waits on that lock for good."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.saved = stop, {}
        self.raised = False

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals():
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        hung_up(signum)
        if self.raised or self.stop.is_set():  # is_set() takes no lock
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("already stopping: finishing the outputs and the summary")  # as _WindDown says it later
            return
        self.raised = True
        self.stop.set()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
            if isinstance(handler, _WindDown):  # the loop is over: what is left is finishing up
                handler.stopping = True


def check_bounds(max_frames: int | None, duration: float | None) -> None:
    """--max-frames and --duration, checked before anything loads or opens."""
    if max_frames is not None and max_frames < 1:
        raise SrxError(f"--max-frames must be at least 1, got {max_frames}")
    if duration is not None and duration <= 0:
        raise SrxError(f"--duration must be positive, got {duration:g} s")


def stream(
    source_spec: SourceSpec | str,
    upscaler: Any,
    outputs: Sequence[Output] = (),
    *,
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
    stats: StreamStats | None = None,
    on_frame: Callable[[Frame, np.ndarray, float], None] | None = None,
    name: str | None = None,
) -> StreamSummary:
    """Upscale `source_spec` frame by frame into `outputs` until the input ends, `max_frames`
    upscaled frames, `duration` seconds, a stop (Ctrl-C, SIGTERM, SIGHUP, `stop_event`) or a window closing.

    `upscaler`: anything with `upscale(bgr_uint8) -> bgr_uint8` and `scale`; with a `runner`
    (srx.runtime.upscaler.Upscaler) the model's time is reported apart from pre/post-processing.
    `drop=True` is the latest-frames policy (the capture holds the newest `buffer` frames; bounded
    latency, dropped frames counted); `drop=False` processes every frame. `stats` may be passed in
    to share live numbers (e.g. with a server); `on_frame(frame, output_image, t_done)` is called
    after each upscaled frame is delivered. `name`: what the user called the source (`door=rtsp://...`),
    which its log lines then say first, as those of several sources do."""
    try:
        spec = parse_source(source=source_spec) if isinstance(source_spec, str) else source_spec
        check_bounds(max_frames, duration)
        check_buffer(buffer)
        reader = open_reader(spec, open_timeout)
    except BaseException:  # no run: the outputs let go of what they claimed (a lock, folders made for it),
        discard_outputs(outputs)  # and say nothing of frames they never got: the error says why
        raise
    stop = stop_event or threading.Event()
    scale = int(getattr(upscaler, "scale", 0) or 0)

    runner = getattr(upscaler, "runner", None)
    timed = TimedRunner(runner) if isinstance(runner, Runner) else None
    was_active = bool(runner is not None and runner.is_active)
    if timed is not None:
        upscaler.runner = timed
    backend = runner.describe() if isinstance(runner, Runner) else type(upscaler).__name__
    model_label = (runner.config.name.split("-x")[0].upper().replace("-", " ")
                   if isinstance(runner, Runner) and runner.config is not None else "SR")
    source_error: str | None = None
    run_error: str | None = None  # the upscale ran out of memory (StreamSummary.run_error, said after it)
    note = "" if timed is not None else "the upscaler exposes no runner: infer is the whole upscale() (pre/post included)"

    stats = stats or StreamStats()
    pool = runner if hasattr(runner, "server_summary") else None  # several Triton servers (a TritonPool)
    guard = InferenceGuard(scale, reconnect_max_wait)
    watch(stats, guard, outputs, backend, runner, scale, pool)
    capture: CaptureThread | None = None
    stopped_by = "end-of-input"
    last_size: tuple[int, int] | None = None
    clock = RecordingClock(reader.fps or spec.fps, spec.live, nosignal_fps)  # real-time recordings keep time
    frames_at_reconnect, seen_reconnects = 0, 0
    tty = stderr_tty()
    try:
        with _Signals(stop):
            if timed is not None and not timed.is_active:
                timed.activate()  # load the model before the clock starts: startup is not latency
            why = every_frame(spec)
            if drop and why:
                log.info("%s (the images themselves, named as they are: srx upscale %s --out FOLDER)", why, spec.target)
            capture = CaptureThread(spec, reader, drop=drop and why is None, pace=paced_for(outputs, drop, why),
                                    buffer=buffer, reconnect_max_wait=reconnect_max_wait, open_timeout=open_timeout,
                                    name=name)
            note_clock_jumps(outputs, capture.event_log)
            for o in outputs:
                if hasattr(o, "fps") and reader.fps:
                    o.fps = reader.fps  # recordings play at the source's rate
            for o in outputs:
                o.started()
            stats.t_start = time.monotonic()
            stats.capture = capture
            capture.start()
            next_status = stats.t_start + status_interval
            while True:
                now = time.monotonic()
                if stop.is_set():
                    stopped_by = "interrupted"
                    break
                if duration is not None and now - stats.t_start >= duration:
                    stopped_by = "duration"
                    break
                if max_frames is not None and stats.frames_out >= max_frames:
                    stopped_by = "max-frames"
                    break
                if now >= next_status:
                    stats.publish()  # one snapshot for the status line, the overlay and --serve's page
                    if not quiet:
                        line = stats.live_line()
                        quiet = not status_line(line, tty)
                    next_status = now + status_interval
                frame = capture.get(timeout=1.0 / nosignal_fps)
                if capture.reconnects != seen_reconnects:
                    seen_reconnects, frames_at_reconnect = capture.reconnects, stats.frames_out
                if frame is None:
                    if capture.error is not None:  # said after the summary, which it does not cost
                        source_error, stopped_by = str(capture.error), "source-failed"
                        break
                    if capture.finished:
                        break
                    if not capture.connected:
                        size = last_size or (640, 360)
                        img = nosignal_frame(size, spec.describe(), capture.outage_note())
                        stats.nosignal += 1
                        now = time.monotonic()
                        if not _write_all(outputs, img, clock.nosignal(now), clock.time_now(now), sized=last_size is not None):
                            stopped_by = "window-closed"
                            break
                    continue
                try:
                    done = guard.run(lambda: _upscale_timed(upscaler, timed, frame.image))
                except OutOfMemory as exc:  # said after the summary, as a failed source is
                    run_error, stopped_by = str(exc), "out-of-memory"
                    break
                # the backend is away (a Triton server restarting): bicubic, labelled, while it is retried
                sr, timings = done if done is not None else (guard.fallback_frame(frame.image), {})
                stats.fallback_frames += done is None
                t_out = time.monotonic()
                sr = square_pixels(sr, frame.sar)  # a PAL camera's 12:11 pixels shown as it meant them
                out = compare_frame(frame.image, sr, scale, model_label) if compare else sr
                if overlay:
                    out = overlay_text(out, stats.live_line().strip())
                keep_going = _write_all(outputs, out, clock.frame(frame), clock.time_of(frame))
                t_done = time.monotonic()
                timings["capture"] = frame.capture_s
                timings["output"] = t_done - t_out
                stats.record(frame.t_capture, t_done, timings, frame.image.shape, out.shape)
                last_size = (out.shape[1], out.shape[0])
                if on_frame is not None:
                    on_frame(frame, out, t_done)
                if not keep_going:
                    stopped_by = "window-closed"
                    break
                if all_failed(outputs):
                    stopped_by = "outputs-failed"
                    break
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        t_end = time.monotonic()  # the run's span ends here, not after its teardown (closing the recordings)
        if capture is not None:
            capture.stop()
        else:
            reader.release()
        output_errors = close_outputs(outputs)
        if timed is not None:
            upscaler.runner = runner
            if not was_active:
                runner.deactivate()
        if not quiet and tty:
            status_write("\n")
        if output_errors and sys.exc_info()[0] is not None:  # the error on its way out says the rest
            log.error("outputs that failed: %s", "; ".join(output_errors))

    if capture is None:
        raise SrxError("interrupted before the stream started")
    wall = t_end - stats.t_start
    return _summary(spec.describe(), backend, scale, stopped_by, wall, capture, stats, frames_at_reconnect,
                    note, outputs, *merged(capture.event_log, guard.log, *([pool.log] if pool is not None else [])),
                    fallback_frames=guard.fallback_frames, servers=pool.server_summary() if pool is not None else [],
                    output_errors=output_errors, source_error=source_error, run_error=run_error)


def _summary(source: str, backend: str, scale: int, stopped_by: str, wall: float, capture: CaptureThread,
             stats: StreamStats, frames_at_reconnect: int, note: str, outputs: Sequence[Output],
             events: Sequence[dict[str, Any]], events_left_out: int, **extra: Any) -> StreamSummary:
    """The StreamSummary of one source's capture and stats (shared by stream and multi-stream runs);
    event times are made relative to the stream's start."""
    return StreamSummary(
        source=source,
        backend=backend,
        scale=scale,
        stopped_by=stopped_by,
        wall_s=round(wall, 3),
        frames_in=capture.frames_read,
        frames_out=stats.frames_out,
        dropped=capture.dropped,
        nosignal_frames=stats.nosignal,
        fps_in=round(capture.input_fps(), 3),
        source_fps=capture.reader.fps or capture.spec.fps,
        live=capture.spec.live,
        paced=capture.spec.live or bool(capture.pace_fps) or capture.spec.kind == "folder",  # pictures: no rate
        fps_out=round(stats.fps_out(), 3),
        latency_ms=stats.latency_summary(),
        stage_ms=stats.stage_summary(),
        input_size=stats.input_size,
        output_size=stats.output_size,
        reconnect_attempts=capture.reconnect_attempts,
        reconnects=capture.reconnects,
        frames_after_reconnect=stats.frames_out - frames_at_reconnect if capture.reconnects else 0,
        timing_note=note,
        outputs=[o.describe() for o in outputs],
        events=[{**e, "t": round(e["t"] - stats.t_start, 3)} for e in events],
        buffer=capture.buffer if capture.drop else None,
        queued_at_stop=max(0, capture.frames_read - stats.frames_out - capture.dropped - capture.skipped - capture.stale),
        skipped=capture.skipped,
        stale=capture.stale,
        damaged=capture.damaged,
        sends=capture.sends,
        sizes=[{"t": round(max(0.0, t - stats.t_start), 3), "width": w, "height": h} for t, w, h in capture.sizes]
        if len(capture.sizes) > 1 else [],
        worst_lag_s=round(capture.lag.worst, 2) if capture.lag is not None else None,
        late_spells=capture.late_spells, dropped_in_bursts=capture.dropped_in_bursts,
        **{k: v for k, v in source_settings(capture.spec).items() if k != "source"},  # max_fps, roi, rtsp_transport
        latency_window=stats.latency_window(), events_left_out=events_left_out,
        **extra,
    )


def every_frame(spec: SourceSpec) -> str | None:
    """Why every frame of `spec` is upscaled whatever the drop policy (None: the policy holds). A
    folder of images is a set of pictures, each wanted, not a camera to keep up with."""
    if spec.kind == "folder":
        every = "every image" if not spec.max_fps else f"the images --max-fps {spec.max_fps:g} lets through"
        return f"a folder of images: {every} upscaled, in name order, as frames of one stream"
    return None


class RecordingClock:
    """When each frame is in a recording, so it keeps the source's timing: its time for a timed
    recording (time_of: H.264, FFV1), and for one at a fixed rate without frame times (.avi) how
    many slots reach through it: the frame before is held for all but the last (Output.hold), so no
    frame shows before its time. A recorded source goes by its frames' own times (by their numbers
    where it has none): the slots stand in for the source frames dropped or skipped and a
    variable-rate file's gaps; in a burst faster than the rate every frame still goes in, a slot
    ahead, and the frames after it catch up. A live one goes by the clock: the frame slots (1/fps)
    that passed since the last frame, so a stall, an outage and dropped frames keep their length,
    and frames that come in a burst are not written ahead of real time (0: a frame whose slot is
    taken already)."""

    def __init__(self, fps: float | None, live: bool, nosignal_fps: float = 5.0) -> None:
        self.fps, self.live = float(fps or 10.0), live  # 10: what a recording without a source rate plays at
        self.nosignal_repeat = max(1, round(self.fps / nosignal_fps))
        self.last_index: int | None = None
        self.t0: float | None = None
        self.slots = 0

    def frame(self, frame: Frame) -> int:
        if self.live:
            return self._at(frame.t_capture)
        if frame.t_source is not None:  # the source's own time: a variable-rate file keeps its gaps
            repeat = self._at(frame.t_source)
            if repeat == 0:  # in a burst: in all the same, a slot ahead of its time
                self.slots += 1
                return 1
            return repeat
        repeat = frame.index - self.last_index if self.last_index is not None else 1
        self.last_index = frame.index
        return repeat

    def nosignal(self, now: float) -> int:
        return self._at(now) if self.live else self.nosignal_repeat

    def time_of(self, frame: Frame) -> float | None:
        """Seconds from the recording's start that a timed output (H.264) shows `frame` at: the
        clock's for a live source, the source's own for a recorded one. Call after frame()."""
        if self.live:
            return frame.t_capture - self.t0 if self.t0 is not None else 0.0
        if frame.t_source is not None:
            return frame.t_source - (self.t0 or 0.0)
        return frame.index / self.fps

    def time_now(self, now: float) -> float | None:
        """When a no-signal frame shown now is, as time_of (a live source; None for a recorded one)."""
        return now - self.t0 if self.live and self.t0 is not None else None

    def _at(self, t: float) -> int:
        if self.t0 is None:
            self.t0 = t
        due = int((t - self.t0) * self.fps + 0.5) + 1  # slots from the recording's start through this frame
        repeat, self.slots = due - self.slots, max(self.slots, due)
        return max(repeat, 0)


def paced_for(outputs: Sequence[Output], drop: bool, every_frame_why: str | None) -> bool | None:
    """Whether the capture paces a recorded source at its own rate where it would not: with
    `--no-drop` (which reads a file as fast as the model takes it) when an output is `paced` (a
    published stream, which would otherwise play fast). None: the capture's own rule (paced unless
    --no-drop); an image folder (`every_frame_why`) is never paced."""
    if drop or every_frame_why is not None or not any(o.paced for o in outputs):
        return None
    return True


def _write_all(outputs: Sequence[Output], frame: np.ndarray, repeat: int = 1, at_s: float | None = None,
               sized: bool = True) -> bool:
    """Every output gets the frame; real-time recordings get it `repeat` times (capped; 0: not at
    all, its time is taken) as RecordingClock says, or, where they are timed, once at `at_s`.
    `sized` False: a placeholder in a made-up size (no real frame yet), which outputs of a fixed size
    do not get, lest a recording open at that size for the whole run."""
    keep = True
    for o in outputs:
        if getattr(o, "failed", None) is not None or (not sized and o.fixed_size):
            continue
        try:
            if o.timed and at_s is not None:
                keep = o.write(frame, at_s) and keep
                continue
            times = min(max(int(repeat), 0), 300) if o.realtime else 1
            if times > 1:  # the frame before stays on screen through the slots before this one's
                o.hold(times - 1)
            if times:
                keep = o.write(frame) and keep
        except SrxError as exc:  # one output's disk filled up: the cameras and the other outputs go on
            _retire(o, exc)
    return keep


def _retire(output: Output, exc: SrxError) -> None:
    """An output that failed mid-run: closed (what it holds kept where it can be) and left out from
    here on; the run says so at the end and exits 1 (StreamSummary.output_errors)."""
    output.failed = _why(exc)
    log.error("%s failed: %s; the stream goes on without it", output.describe(), output.failed)
    try:
        output.close()
    except Exception as again:  # noqa: BLE001  (a full disk may refuse the finish too)
        log.warning("closing %s: %s", output.describe(), again)
        partial = getattr(output, "tmp", None)
        if partial is not None and partial.exists():  # it plays up to where it stopped (fragmented, or as it went)
            log.warning("what %s recorded until then is in %s", output.describe(), partial)


def all_failed(outputs: Sequence[Output]) -> bool:
    """Every output of a run that had some has failed: nothing is left to upscale for."""
    return bool(outputs) and all(getattr(o, "failed", None) is not None for o in outputs)


def close_outputs(outputs: Sequence[Output]) -> list[str]:
    """Close every output that is still open, even when one fails; what failed, in the run or now,
    as 'OUTPUT: why' lines (said after the summary, which a failed output does not stop)."""
    return failure_lines(outputs, close_each(outputs))


def watch(stats: StreamStats, guard: InferenceGuard, outputs: Sequence[Output], backend: str, runner: Any,
          scale: int, pool: Any = None) -> None:
    """What /stats and /metrics read beside the frame counts: whether the model backend is up, the
    source's outputs (a recording's state), what runs (srx_build_info) and, on several Triton servers
    (a TritonPool), how each one does."""
    from srx import __version__

    config = getattr(runner, "config", None)
    stats.guard, stats.outputs = guard, list(outputs)
    if pool is not None:
        stats.servers = pool.server_summary
    stats.run = {"version": __version__, "backend": str(getattr(runner, "backend", "") or "other"),
                 "detail": backend, "scale": str(scale), "model": str(getattr(config, "name", "") or "")}


def note_clock_jumps(outputs: Sequence[Output], events: Any, source: str = "") -> None:
    """A clock set while the source's recordings are cut by it (NTP after a boot without a clock)
    goes into the source's events (--json-summary) as `clock-set`, with the seconds it moved; its
    warning names the source among several."""
    for o in outputs:
        clock = getattr(o, "clock", None)
        if clock is not None and hasattr(clock, "on_jump"):
            clock.on_jump = lambda moved: events.add("clock-set", moved_s=moved)
            clock.source = source


def discard_outputs(outputs: Sequence[Output]) -> None:
    """Let go of every output of a run that never started (its source did not open, the model did
    not load): no 'not written' line for each beside the error that says why."""
    for o in outputs:
        try:
            o.discard()
        except Exception as exc:  # noqa: BLE001  (each output lets go, even if one fails)
            log.debug("%s: %s", o.describe(), exc)


def close_each(outputs: Sequence[Output]) -> dict[int, str | None]:
    """Close every output not failed already, even when one fails: why each could not be, by id."""
    whys: dict[int, str | None] = {}
    for o in outputs:
        if getattr(o, "failed", None) is not None:
            whys[id(o)] = o.failed
            continue
        whys[id(o)] = None
        try:
            o.close()
        except Exception as exc:  # noqa: BLE001  (close every output even if one fails)
            whys[id(o)] = f"could not finalise it: {_why(exc)}"
    return whys


def failure_lines(outputs: Sequence[Output], whys: dict[int, str | None]) -> list[str]:
    """One 'OUTPUT: why' line for each output that failed or lost segments (`lost`), made once every
    output is closed: one's close may delete another's files (--keep-free), which its line names."""
    errors = []
    for o in outputs:
        lost = getattr(o, "lost", None) if getattr(o, "failed", None) is None else None
        parts = [w for w in (whys.get(id(o)), lost) if w is not None]
        if parts:
            errors.append(f"{o.describe()}: " + "; ".join(parts))
    return errors


def _why(exc: BaseException) -> str:
    """An output's error without its '--output NAME: ' (said for the command line), where it is
    said after the output's own description."""
    return re.sub(r"^--output \S+: ", "", str(exc), count=1)


