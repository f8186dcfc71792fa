"""Honest streaming numbers: per-stage time, fps in and out, dropped frames, end-to-end latency.

Latency is measured from the moment the capture thread grabbed a frame (time.monotonic) to the
moment the last output took the upscaled frame, so it includes waiting in the slot, the model and
the outputs. Percentiles (p50, p95) come from the last `window` frames (bounded memory for long
runs), and the summary says so once more frames than that went out (`latency_window`); counts,
means and the maximum cover the whole run.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from srx.jsonout import json_text


STAGES = ("capture", "pre", "infer", "post", "output")


class Samples:
    """Count, total and maximum over the run, plus the last `window` values for percentiles."""

    def __init__(self, window: int = 10_000) -> None:
        self.count, self.total = 0, 0.0
        self.max: float | None = None  # over the whole run (a freeze at frame 11,000 stays in it)
        self.values: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.max is None or value > self.max:
            self.max = value
        self.values.append(value)

    def window_used(self) -> int | None:
        """How many of the newest values the percentiles cover where that is not all of them (more
        values came than the window holds); None while they cover every value."""
        return len(self.values) if self.count > len(self.values) else None

    def summary(self) -> dict[str, float | None]:
        """p50 and p95 (of the window), max and mean (of the run), rounded: a summary's `latency_ms`."""
        return {"p50": _round(self.percentile(50)), "p95": _round(self.percentile(95)),
                "max": _round(self.max), "mean": _round(self.mean())}

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(np.fromiter(self.values, float), q)) if self.values else None


@dataclass
class StreamSummary:
    """What a run did, in numbers (times in milliseconds, rates in frames per second)."""

    source: str
    backend: str
    scale: int
    stopped_by: str  # end-of-input | max-frames | duration | interrupted | window-closed
    wall_s: float
    frames_in: int  # frames the capture read from the source
    frames_out: int  # upscaled frames delivered to the outputs
    dropped: int  # frames discarded before the model took them (latest-frames policy)
    nosignal_frames: int
    fps_in: float
    fps_out: float
    latency_ms: dict[str, float | None]  # p50, p95 (of the last latency_window frames), max, mean (of the run)
    stage_ms: dict[str, dict[str, float | None]]  # per stage: mean, p50, p95
    input_size: list[int] | None  # [width, height] of the last input frame
    output_size: list[int] | None  # [width, height] of the last output frame
    reconnect_attempts: int = 0
    reconnects: int = 0
    frames_after_reconnect: int = 0  # upscaled frames delivered after the last reconnect
    timing_note: str = ""
    outputs: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    fallback_frames: int = 0  # frames sent bicubic while the model backend was unavailable
    buffer: int | None = None  # frames the capture held for the model (None: --no-drop, every frame queued)
    queued_at_stop: int = 0  # frames read but neither upscaled nor dropped: still queued when the run stopped
    alone: bool = True  # the only source on its loop, so its stage times are the loop's whole work per frame
    skipped: int = 0  # frames --max-fps left out before the model (by design, unlike the dropped ones)
    max_fps: float | None = None  # --max-fps: at most this many frames a second went to the model
    roi: list[int] | None = None  # --roi: [left, top, width, height] of the source's frames upscaled (None: all)
    rtsp_transport: str | None = None  # an rtsp:// source: how its video came (--rtsp-transport tcp or udp)
    stale: int = 0  # frames a live source held up at a (re)connect, a stall or a slow link: skipped as seconds old
    damaged: int = 0  # frames its decoder flagged as decoded with errors (concealed) or could not decode: a lossy link
    sizes: list[dict[str, Any]] = field(default_factory=list)  # where its frames changed size: each size and from when
    sends: str | None = None  # what the source sends (size, codec, rate, pixel shape, fields, sound), as its log said
    worst_lag_s: float | None = None  # an RTSP source: the most its frames trailed the camera's clock (LinkLag)
    late_spells: int = 0  # times its frames came late, said in a warning
    dropped_in_bursts: int = 0  # of the dropped, those a live source handed over at once (after a stall, a slow link)
    source_fps: float | None = None  # the rate the source says it runs at (None: it does not say)
    live: bool = False  # a camera or network stream: judged by the rate it delivered, not the one it claims
    paced: bool = True  # frames came at the source's rate (False: a file read as fast as the model took them, --no-drop)
    servers: list[dict[str, Any]] = field(default_factory=list)  # several Triton servers: what each one ran
    output_errors: list[str] = field(default_factory=list)  # outputs that failed ('OUTPUT: why'); the run exits 1
    source_error: str | None = None  # why the source failed (a looping file moved away); the run exits 1
    run_error: str | None = None  # why the upscale stopped the run (out of memory); said after the summary, exit 1
    latency_window: int | None = None  # p50/p95 are of the last this many frames out (None: of every frame)
    events_left_out: int = 0  # the source's events between its first ones and its newest left out of `events`

    def _unpaced(self) -> str:
        """What `fps in` measured where it is not the source's rate: a file read as fast as the model
        took its frames (--no-drop), beside the rate the file states."""
        if self.paced or self.live:
            return ""
        own = f"; its own rate {self.source_fps:.2f}" if self.source_fps else ""
        return f" (read as fast as the model took them{own})"

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["alone"]  # how keep_up reads the numbers, not a number itself
        return {**fields, "keep_up": self.keep_up()}

    def keep_up(self) -> str:
        """Why the latest-frames policy dropped frames, and what would help: one line, or "" when
        none were dropped. The loop's work per frame (every stage but capture, which runs in its
        own thread) against the time between the source's frames says whether srx was slower than
        the source on average, so close to it that any slow spell drops frames, or only slow now and
        then (then a larger buffer helps)."""
        if not self.alone or not self.dropped or self.buffer is None or not self.frames_out or self.fps_in <= 0:
            return ""
        # what the model had to keep up with: a live source's measured rate while it delivered (an MJPEG
        # or RTSP stream may claim OpenCV's default 25 fps whatever it sends), a file's own rate
        rate = self.fps_in if self.live else (self.source_fps or self.fps_in)
        interval = 1000.0 / min(rate, self.max_fps or rate)  # what the model was asked to keep up with
        means = {name: stage.get("mean") or 0.0 for name, stage in self.stage_ms.items() if name != "capture"}
        work = sum(means.values())
        share = f"{self.dropped / max(self.frames_in, 1):.0%} of the frames ({self.dropped})"
        if work >= 0.9 * interval:
            # with a --max-fps, what was too much is the rate it lets through, and a lower one is the fix
            capped = bool(self.max_fps) and self.max_fps < rate
            pace = f"--max-fps {self.max_fps:g}" if capped else "the source"
            verdict, cause = ((f"srx was slower than {pace}", "") if work > interval else
                              (f"srx barely kept up with {pace}", " leaves no room for slow spells"))
            fits = _fitting_rate(work)
            lower = not self.max_fps or float(fits) < self.max_fps
            return (f"{verdict}: {work:.0f} ms of work per frame ({means.get('infer', 0.0):.0f} ms in the model) against "
                    f"{interval:.0f} ms between {'the frames it lets through' if capped else 'its frames'}{cause}, so "
                    f"{share} were dropped. To keep up: "
                    + (f"--max-fps {fits} (evenly spaced frames, none dropped), " if lower else "")
                    + ("" if self.roi else "--roi (the part of the picture that matters), ")
                    + "a faster model or backend (srx models, srx bench), a lower --scale, or fewer streams on this host")
        if 2 * self.dropped_in_bursts >= self.dropped:
            return bursts_text(self.dropped, self.dropped_in_bursts)
        p95 = self.stage_ms.get("infer", {}).get("p95")
        slow = f" (model p95 {p95:.0f} ms)" if p95 is not None else ""
        return (f"{share} were dropped in slow spells{slow}: the mean work per frame ({work:.0f} ms) fits the "
                f"{interval:.0f} ms between the source's frames. A larger --buffer rides such spells out, at the cost "
                f"of latency")

    def write_json(self, path: Path) -> None:
        from srx.fsutil import write_report

        write_report(Path(path), json_text(self.to_dict()) + "\n")

    def format(self) -> str:
        """A few lines for the terminal."""
        def ms(v: float | None) -> str:
            return f"{v:.1f}" if v is not None else "-"

        lat = self.latency_ms
        size = (f"{self.input_size[0]}x{self.input_size[1]} -> {self.output_size[0]}x{self.output_size[1]}"
                if self.input_size and self.output_size else "no frames")
        lines = [
            f"stream summary: {self.source} x{self.scale} on {self.backend}, {size}, {stopped_text(self.stopped_by)}",
            f"  frames: {self.frames_in} in, {self.frames_out} out, {self.dropped} dropped"
            + (f" (newest {self.buffer} held)" if self.buffer else "")
            + (f", {self.skipped} skipped by --max-fps {self.max_fps:g}" if self.skipped and self.max_fps else "")
            + (f", {self.stale} stale (held up at a connect, a stall or a slow link)" if self.stale else "")
            + (f", {self.queued_at_stop} still queued at the stop" if self.queued_at_stop else "")
            + (f", {self.nosignal_frames} no-signal" if self.nosignal_frames else "")
            + (f", {damaged_text(self.damaged)}" if self.damaged else "")
            + f" in {self.wall_s:.1f} s",
            f"  fps: {self.fps_in:.2f} in{self._unpaced()}, {self.fps_out:.2f} out",
            f"  latency capture->out ms: p50 {ms(lat['p50'])}, p95 {ms(lat['p95'])}, max {ms(lat['max'])}"
            + window_words(self.latency_window, with_max=True),
            "  stage ms (mean/p95): " + ", ".join(
                f"{name} {ms(s['mean'])}/{ms(s['p95'])}" for name, s in self.stage_ms.items()),
        ]
        if self.late_spells and self.worst_lag_s is not None:
            lines.append(f"  {late_text(self.worst_lag_s, self.late_spells)}")
        lines += [f"  {line}" for line in source_lines(self)]
        if self.reconnect_attempts and self.reconnects:
            lines.append(f"  reconnects: {self.reconnects} after {self.reconnect_attempts} attempt(s); "
                         f"{self.frames_after_reconnect} frames since the last")
        elif self.reconnect_attempts:
            lines.append(f"  not reconnected: {self.reconnect_attempts} attempt(s) failed")
        if self.events_left_out:
            from srx.eventlog import EVENTS_FIRST, EVENTS_LAST

            lines.append(f"  events: {self.events_left_out:,} left out of the list (it keeps the first {EVENTS_FIRST} "
                         f"and the newest {EVENTS_LAST} of the source's, and of the model backend's; "
                         "events_left_out in --json-summary)")
        if self.fallback_frames:
            lines.append(f"  {self.fallback_frames} frames went out bicubic while the model backend was unavailable")
        if self.servers:
            lines.append(servers_line(self.servers))
        if self.timing_note:
            lines.append(f"  note: {self.timing_note}")
        if self.source_error:
            lines.append(f"  source failed: {self.source_error}")
        for failed in self.output_errors:
            lines.append(f"  output failed: {failed}")
        keep_up = self.keep_up()
        if keep_up:
            lines.append(f"  {keep_up}")
        return "\n".join(lines)


#: how the summary line says why a stream stopped (`stopped_by` keeps the token, for JSON readers)
STOPPED = {"end-of-input": "at the end of the input", "interrupted": "by an interrupt (Ctrl-C, SIGTERM or SIGHUP)",
           "duration": "after --duration", "max-frames": "after --max-frames", "window-closed": "when its window closed",
           "outputs-failed": "when every output had failed", "source-failed": "when its source failed",
           # several sources (camera.multi.run_end): every one failed, or each stopped for its own reason
           "sources-failed": "when every source had failed", "out-of-memory": "when the upscale ran out of memory",
           "sources-stopped": "when every source had stopped (each source's line says why)"}


#: an RTSP frame that trails the camera's clock by more than this (beyond the least it has) is late
#: (camera/capture.py, LinkLag)
LATE_S = 2.0


def _fitting_rate(work_ms: float) -> str:
    """A --max-fps the work per frame leaves room for (a fifth to spare), as a user would write it."""
    fps = 800.0 / max(work_ms, 1.0)
    return f"{fps:.0f}" if fps >= 2 else f"{max(fps, 0.1):.1g}"


#: a share of damaged frames that the summary says in a line of its own (the camera is hardly watchable)
DAMAGED_SHARE = 0.05


def source_lines(s: "StreamSummary") -> list[str]:
    """The summary's lines on what came from the source: the sizes it changed to (the size at the
    top is the last; recordings keep their first size and fit later frames in) and damage that was
    more than now and then."""
    lines = []
    if len(s.sizes) > 1:
        lines.append("the source changed size: " + ", then ".join(
            f"{z['width']}x{z['height']} from {z['t']:.1f} s" if i else f"{z['width']}x{z['height']} at first"
            for i, z in enumerate(s.sizes)) + " (recordings keep their first size, later frames fitted in)")
    if s.damaged and s.frames_in and s.damaged >= DAMAGED_SHARE * s.frames_in:
        lines.append(f"{s.damaged} of the {s.frames_in} frames read came damaged ({s.damaged / s.frames_in:.0%}), "
                     "as FFmpeg flagged them (more may be broken unflagged): check the camera's link and its encoder "
                     "settings" + (" (--rtsp-transport tcp carries every packet)" if s.rtsp_transport == "udp" else ""))
    return lines


def late_text(worst_s: float, spells: int) -> str:
    """The summary's line for a source whose frames came late."""
    return (f"frames came late {'once' if spells == 1 else f'{spells} times'}, at worst {worst_s:.1f} s behind the "
            "camera's own clock (a link slower than the stream?)")


def bursts_text(dropped: int, bursts: int) -> str:
    """What keep_up says where most drops were frames a live source handed over at once."""
    return (f"{bursts} of the {dropped} dropped came in bursts the source handed over at once (the frames it "
            "queued in a stall or on a slow link), not in slow spells of srx's: a larger --buffer would only keep "
            "older frames")


def window_words(window: int | None, with_max: bool = False) -> str:
    """What a summary's latency line adds once more frames went out than the percentiles keep:
    ' (p50/p95 of the last 10,000 frames)' (`with_max`: '; max over the whole run' too), else ''."""
    if not window:
        return ""
    return f" (p50/p95 of the last {window:,} frames{'; max over the whole run' if with_max else ''})"


def source_settings(spec: Any) -> dict[str, Any]:
    """What a source was set to (/stats, --json-summary): its description, passwords hidden, and
    its own --max-fps, --roi and, over RTSP, --rtsp-transport (a --config file's tables too)."""
    roi = getattr(spec, "roi", None)
    return {"source": spec.describe_whole(), "max_fps": getattr(spec, "max_fps", None),
            "roi": list(roi) if roi is not None else None,
            "rtsp_transport": spec.rtsp_transport if getattr(spec, "rtsp", False) else None}


def stopped_text(token: str) -> str:
    """'stopped at the end of the input' for 'end-of-input', and so on."""
    return "stopped " + STOPPED.get(token, f"by {token}")


def servers_line(servers: list[dict[str, Any]]) -> str:
    """What each Triton server of a pool ran: '  servers: a:8001 120 frames in 60 calls, b:8001 ...'."""
    parts = []
    for srv in servers:
        part = f"{srv['server']} {srv['frames']} frames in {srv['calls']} calls"
        if srv.get("outages"):
            part += f" ({srv['outages']} outage{'s' if srv['outages'] > 1 else ''})"
        if srv.get("state") != "up":
            part += f", {srv.get('state')} at the end"
        parts.append(part)
    return "  servers: " + "; ".join(parts)


def recent_rate(times: list[float], now: float, span: float) -> float:
    """Events a second lately, from their times (oldest first): over the last `span` seconds, or the
    last three where a slow stream had fewer in it (a frame every 2 s is 0.5 fps, not 0); it falls
    while none comes (an outage), to 0 once none came for `span` and three of their intervals."""
    if len(times) < 2:
        return 0.0
    recent = [t for t in times if now - t <= span]
    if len(recent) < 3:
        recent = times[-3:]
    took = max(recent[-1] - recent[0], 1e-9)
    interval = took / (len(recent) - 1)
    if now - recent[-1] > max(span, 3 * interval):  # nothing for a long while: stopped
        return 0.0
    if now - recent[-1] > 2 * interval:  # no frame for a while (an outage): the rate falls with it
        took = now - recent[0] - interval
    return (len(recent) - 1) / took


class StreamStats:
    """Collects the numbers while the stream runs; `summary()` freezes them."""

    def __init__(self, window: int = 10_000) -> None:
        self.t_start = time.monotonic()
        self.stages = {name: Samples(window) for name in STAGES}
        self.latency = Samples(window)
        self.frames_out = 0
        self.nosignal = 0
        self.t_first_out: float | None = None
        self.t_last_out: float | None = None
        self.input_size: list[int] | None = None
        self.output_size: list[int] | None = None
        self._recent: deque[float] = deque(maxlen=256)  # output times, for the live fps
        self.capture: Any = None  # the running CaptureThread (set by stream()), for live counts
        self.published: dict[str, Any] | None = None  # the live numbers as last shown (see publish)
        self.servers: Callable[[], list[dict[str, Any]]] | None = None  # several Triton servers: their summary
        self.started_at = time.time()  # the wall clock at the start: /metrics' srx_start_time_seconds
        self.guard: Any = None  # the run's InferenceGuard: whether the model backend is up
        self.fallback_frames = 0  # this source's frames that went out bicubic while the backend was away
        self.outputs: Sequence[Any] = ()  # this source's outputs: a recording's status()
        self.run: dict[str, str] = {}  # version, backend, model and scale: /metrics' srx_build_info

    def record(self, t_capture: float, t_done: float, timings: dict[str, float], in_shape: tuple, out_shape: tuple) -> None:
        for name, seconds in timings.items():
            if name in self.stages and seconds is not None:
                self.stages[name].add(seconds * 1000.0)
        self.latency.add((t_done - t_capture) * 1000.0)
        self.frames_out += 1
        self.t_first_out = self.t_first_out or t_done
        self.t_last_out = t_done
        self._recent.append(t_done)
        self.input_size = [int(in_shape[1]), int(in_shape[0])]
        self.output_size = [int(out_shape[1]), int(out_shape[0])]

    def live_fps(self, now: float | None = None, span: float = 2.0) -> float:
        """Frames out a second lately (`recent_rate` of their times)."""
        return recent_rate(list(self._recent), time.monotonic() if now is None else now, span)

    def fps_out(self) -> float:
        if self.frames_out < 2 or self.t_first_out is None or self.t_last_out is None:
            return 0.0
        return (self.frames_out - 1) / max(self.t_last_out - self.t_first_out, 1e-9)

    def snapshot(self) -> dict[str, Any]:
        """Live numbers for the status line, the overlay and the web page's /stats (with `servers`
        where the stream runs on several Triton servers: what each one ran, and whether it is up).
        `connected` (/metrics' srx_source_up) is true only while the source delivers frames: false
        while it is lost, and for good once it failed (a looping file moved away), ended or was
        stopped; `state` says which (CaptureThread.state)."""
        cap = self.capture
        guard = self.guard
        frames_in = cap.frames_read if cap is not None else 0
        dropped = cap.dropped if cap is not None else 0
        skipped = cap.skipped if cap is not None else 0
        stale = cap.stale if cap is not None else 0
        damaged = cap.damaged if cap is not None else 0
        state = cap.state if cap is not None else "starting"
        elapsed = time.monotonic() - self.t_start
        return {
            "elapsed_s": round(elapsed, 2),
            **(source_settings(cap.spec) if cap is not None and getattr(cap, "spec", None) is not None else {}),
            "frames_in": frames_in,
            "frames_out": self.frames_out,
            "dropped": dropped,
            "skipped": skipped,
            "stale": stale,
            "damaged": damaged,
            "nosignal_frames": self.nosignal,
            "connected": state == "up",  # delivering frames: not lost, failed, ended or stopped
            "state": state,  # up | starting | reconnecting | stalled | failed | ended | stopped
            "sends": getattr(cap, "sends", None),  # what its frames are: size, codec, rate, pixel shape, fields, sound
            "reconnects": cap.reconnects if cap is not None else 0,
            "fps_in": round(cap.recent_fps(), 2) if cap is not None and state == "up" else 0.0,  # now, not the run's
            **({"lag_s": round(cap.lag_s, 2)} if getattr(cap, "lag", None) is not None else {}),  # an RTSP source's
            "fps_out": round(self.live_fps(), 2),
            "latency_ms_p50": _round(self.latency.percentile(50)),
            "latency_ms_p95": _round(self.latency.percentile(95)),
            "latency_count": self.latency.count,  # and its sum: a mean over any span (Prometheus' rate)
            "latency_sum_s": round(self.latency.total / 1000.0, 6),
            "infer_ms_mean": _round(self.stages["infer"].mean()),
            "infer_count": self.stages["infer"].count,
            "infer_sum_s": round(self.stages["infer"].total / 1000.0, 6),
            "backend_up": guard is None or not guard.down,  # false while frames go out bicubic
            "fallback_frames": self.fallback_frames,
            "started_at": round(self.started_at, 3),
            "input_size": self.input_size,
            "output_size": self.output_size,
            **({"outputs": outputs} if (outputs := [r for r in (o.status() for o in self.outputs) if r is not None])
               else {}),  # recordings and published streams: Output.status()
            **({"run": dict(self.run)} if self.run else {}),
            **({"servers": self.servers()} if self.servers is not None else {}),
        }

    def publish(self) -> dict[str, Any]:
        """Freeze the live numbers once per status interval: the status line, the overlay and the web
        page's /stats all show this one snapshot, so they agree (each taking its own at its own moment
        gave different fps from a 2-second window: 4.7 on the page against 8.5 on the terminal)."""
        self.published = self.snapshot()
        return self.published

    def live(self) -> dict[str, Any]:
        """The published snapshot (a fresh one until the first publish): what /stats serves."""
        return self.published if self.published is not None else self.snapshot()

    def live_line(self) -> str:
        s = self.live()
        dropped, connected = s["dropped"], s["connected"]
        lat = f"{s['latency_ms_p50']:.0f}/{s['latency_ms_p95']:.0f} ms" if s["latency_ms_p50"] is not None else "-"
        state = "" if connected else {"failed": "  FAILED", "ended": "  ended", "stopped": ""}.get(
            s.get("state", ""), "  NO SIGNAL, reconnecting")
        late = f"  LATE {s['lag_s']:.1f} s" if s.get("lag_s", 0.0) > LATE_S else ""
        return (f"{s['elapsed_s']:7.1f}s  out {s['fps_out']:5.2f} fps  in {s['fps_in']:5.2f} fps  "
                f"frames {s['frames_out']}  dropped {dropped}  latency p50/p95 {lat}{late}{state}")

    def stage_summary(self) -> dict[str, dict[str, float | None]]:
        return {name: {"mean": _round(s.mean()), "p50": _round(s.percentile(50)), "p95": _round(s.percentile(95))}
                for name, s in self.stages.items()}

    def latency_summary(self) -> dict[str, float | None]:
        """p50 and p95 of the last `window` frames, max and mean of every frame (see latency_window)."""
        return self.latency.summary()

    def latency_window(self) -> int | None:
        """How many of the newest frames the latency p50/p95 cover, once that is not all of them."""
        return self.latency.window_used()


def damaged_text(n: int) -> str:
    """The summary's words for a source's damaged frames."""
    return f"{n} damaged (packets lost or broken on the way)"


def sources_stats(sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """/stats of a run: the run's own (`run`, `servers`: taken out of the sources' snapshots, which
    each carry them), the totals and each source's snapshot by name. One source's /stats is this too,
    with that source's keys also at the top, where they were before there was a `sources`."""
    shared = {}
    for key in ("run", "servers"):
        found = [snap.pop(key) for snap in sources.values() if key in snap][:1]  # one run's, once
        if found:
            shared[key] = found[0]
    added = ("frames_in", "frames_out", "dropped", "skipped", "stale", "damaged", "nosignal_frames", "fallback_frames",
             "reconnects")
    return {
        **shared,
        "total": {"sources": len(sources),
                  **{key: sum(s.get(key, 0) for s in sources.values()) for key in added},
                  "fps_out": round(sum(s["fps_out"] for s in sources.values()), 2),
                  "fps_in": round(sum(s["fps_in"] for s in sources.values()), 2)},
        "sources": sources,
    }


def _round(v: float | None, nd: int = 2) -> float | None:
    return round(float(v), nd) if v is not None else None


#: a source's states (CaptureThread.state), each a series of /metrics' srx_source_state
SOURCE_STATES = ("up", "starting", "reconnecting", "stalled", "failed", "ended", "stopped")

#: what /metrics serves for each source, from its snapshot: (metric, type, help, snapshot key)
_METRICS = (
    ("srx_frames_read_total", "counter", "Frames read from the source.", "frames_in"),
    ("srx_frames_upscaled_total", "counter", "Frames sent to the outputs (those that went out bicubic included).",
     "frames_out"),
    ("srx_frames_bicubic_total", "counter", "Frames that went out bicubic (labelled) while the model backend was away.",
     "fallback_frames"),
    ("srx_frames_dropped_total", "counter", "Source frames dropped to keep to the newest (the model was busy).",
     "dropped"),
    ("srx_frames_skipped_total", "counter", "Source frames left out by --max-fps (by design, unlike the dropped).",
     "skipped"),
    ("srx_frames_stale_total", "counter", "Source frames held up by a (re)connect or stall, skipped as seconds old.",
     "stale"),
    ("srx_frames_damaged_total", "counter", "Source frames that came damaged: decoded with errors (concealed from "
     "the frame before) or not decodable; packets lost or broken on the way.", "damaged"),
    ("srx_nosignal_frames_total", "counter", "Generated no-signal frames sent while the source was away.",
     "nosignal_frames"),
    ("srx_source_reconnects_total", "counter", "Times the source came back after it was lost (a camera that opens "
     "late, after the run began, is not counted).", "reconnects"),
    ("srx_source_up", "gauge", "1 while the source delivers frames; 0 while it is lost (reconnecting, stalled), "
     "and for good once it failed or ended (srx_source_state says which).", "connected"),
    ("srx_backend_up", "gauge", "1 while the model backend upscales; 0 while it is away and frames go out bicubic.",
     "backend_up"),
    ("srx_output_fps", "gauge", "Frames sent to the outputs per second over the last two seconds.", "fps_out"),
    ("srx_input_fps", "gauge", "Frames the source delivered per second over the last five seconds.", "fps_in"),
    ("srx_source_lag_seconds", "gauge", "How far the newest frame of an RTSP source trailed the camera's own clock, "
     "beyond the least since it connected: a link slower than the stream, or the backlog it hands over.", "lag_s"),
)

#: the recordings' series, labelled source and output: (metric, type, help, status key)
_RECORDING_METRICS = (
    ("srx_recording_up", "gauge", "0 while the recording cannot write: its segment was lost (it tries again at the "
     "next), or it failed for good; 1 otherwise.", "up"),
    ("srx_recording_segments_total", "counter", "Segments the recording finished (--segment).", "segments"),
    ("srx_recording_segments_lost_total", "counter", "Segments lost to a failed write, open or finish (--segment).",
     "segments_lost"),
    ("srx_recording_segments_deleted_total", "counter", "This run's segments that --keep or --keep-free deleted.",
     "segments_deleted"),
    ("srx_recording_disk_free_bytes", "gauge", "Free bytes on the recording's disk.", "disk_free_bytes"),
)

#: the published streams' series (--output rtsp://), labelled source and output: (metric, type, help, status key)
_PUBLISH_METRICS = (
    ("srx_publish_up", "gauge", "0 while the RTSP server is away or takes no data (frames are not sent); 1 otherwise.",
     "up"),
    ("srx_publish_frames_total", "counter", "Frames published to the RTSP server.", "frames"),
    ("srx_publish_frames_unsent_total", "counter", "Frames not published: the server away or hung, or the sender "
     "behind.", "frames_unsent"),
)

#: what /metrics serves for each Triton server of a run on several: (metric, type, help, summary key)
_SERVER_METRICS = (
    ("srx_triton_server_up", "gauge", "1 while the Triton server takes frames, 0 while it is away (probed) or refused.",
     "state"),
    ("srx_triton_server_frames_total", "counter", "Frames the Triton server upscaled for this run.", "frames"),
    ("srx_triton_server_outages_total", "counter", "Times the Triton server was away (at the start too) or hung during this run.",
     "outages"),
)


def prometheus_text(stats: dict[str, Any]) -> str:
    """A run's /stats (`sources_stats`) in Prometheus' text exposition format (version 0.0.4): what
    `--serve`'s /metrics gives a Prometheus server to scrape, so the cameras of many boxes land on
    one dashboard and one set of alert rules (deploy/srx-alerts.yml). Each source's series are
    labelled source="NAME", its recordings' and published streams' also output="PATH" (or URL); a run on several Triton servers has
    one series per server, labelled server="HOST:PORT"; srx_build_info says what runs."""

    def label(name: Any) -> str:
        return str(name).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    def number(value: Any) -> str:
        return repr(float(value)) if not isinstance(value, bool) else ("1" if value else "0")

    def family(metric: str, kind: str, text: str) -> None:
        lines.extend([f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"])

    sources: dict[str, dict[str, Any]] = stats.get("sources", {})
    lines: list[str] = []
    run = stats.get("run")
    if run:
        family("srx_build_info", "gauge", "What runs: srx's version, the model backend (torch, onnxruntime, tensorrt, "
               "triton), the model and the scale (1).")
        labels = ",".join(f'{k}="{label(run[k])}"' for k in ("version", "backend", "model", "scale") if k in run)
        lines.append(f"srx_build_info{{{labels}}} 1")
    started = [snap["started_at"] for snap in sources.values() if snap.get("started_at") is not None]
    if started:
        family("srx_start_time_seconds", "gauge", "When the run started, in seconds since the Unix epoch.")
        lines.append(f"srx_start_time_seconds {number(min(started))}")
    for metric, kind, text, key in _METRICS:
        family(metric, kind, text)
        for name, snap in sources.items():
            if snap.get(key) is not None:
                lines.append(f'{metric}{{source="{label(name)}"}} {number(snap[key])}')
    family("srx_source_state", "gauge", "1 for the state the source is in (up, starting, reconnecting, stalled, "
           "failed, ended, stopped), 0 for the others.")
    for name, snap in sources.items():
        if snap.get("state") is not None:
            lines += [f'srx_source_state{{source="{label(name)}",state="{st}"}} {number(snap["state"] == st)}'
                      for st in SOURCE_STATES]
    for metric, text, prefix, quantiles in (
            ("srx_latency_seconds", "Capture-to-output latency; quantiles of the newest 10,000 frames, sum and count "
             "of the run.", "latency", (("0.5", "latency_ms_p50"), ("0.95", "latency_ms_p95"))),
            ("srx_inference_seconds", "Time of the model call per frame; sum and count of the run.", "infer", ())):
        family(metric, "summary", text)
        for name, snap in sources.items():
            src = f'source="{label(name)}"'
            lines += [f'{metric}{{{src},quantile="{q}"}} {number(float(snap[key]) / 1000.0)}'
                      for q, key in quantiles if snap.get(key) is not None]
            if snap.get(f"{prefix}_count") is not None:
                lines += [f"{metric}_sum{{{src}}} {number(snap.get(f'{prefix}_sum_s') or 0.0)}",
                          f"{metric}_count{{{src}}} {number(snap[f'{prefix}_count'])}"]
    for what, metrics in (("recording", _RECORDING_METRICS), ("publish", _PUBLISH_METRICS)):
        outputs = [(name, out) for name, snap in sources.items() for out in snap.get("outputs", ())
                   if out.get("kind") == what]
        for metric, kind, text, key in metrics if outputs else ():
            family(metric, kind, text)
            lines += [f'{metric}{{source="{label(name)}",output="{label(out["output"])}"}} {number(out[key])}'
                      for name, out in outputs if out.get(key) is not None]
    servers = stats.get("servers")
    for metric, kind, text, key in _SERVER_METRICS if servers else ():
        family(metric, kind, text)
        for srv in servers or ():
            value = srv[key] == "up" if key == "state" else srv[key]
            lines.append(f'{metric}{{server="{label(srv["server"])}"}} {number(value)}')
    return "\n".join(lines) + "\n"
