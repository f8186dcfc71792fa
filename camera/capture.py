"""The capture thread: reads the source continuously and hands the consumer the newest frames.

Latest-frames policy (the default): the thread holds at most `buffer` frames the consumer has not
taken yet; when one more arrives, the oldest is discarded and counted as dropped. So when the model
is slower than the camera the latency stays bounded (at most `buffer` frames plus one inference),
not a growing queue. `buffer=1` always hands over the newest frame alone (the lowest latency, but a
single inference slower than the frame interval costs a frame); the default of 2 rides out such a
one-off slow inference when the model keeps up on average, at the cost of one frame interval of
latency while it catches up. Reading never stops (OpenCV's own buffer is kept at one frame where the
backend allows it), so the held frames are always the camera's newest. Recorded sources (files, the
demo scene) are paced at their fps, as if they were a camera. `drop=False` turns this into a small
blocking queue: every frame is processed, none dropped, no pacing (for measuring, not for live
viewing; `pace=True` keeps a recorded source's rate all the same, for a published stream).

`SourceSpec.max_fps` (--max-fps) passes at most that many frames a second to the model, evenly
spaced in the source's time (a file's frame times, a live source's clock), and counts the rest as
skipped, not dropped: a host with many cameras shares its cores by design rather than by whichever
frames happen to be dropped.

When a live source stops (a network camera or RTSP server restarts, a USB camera is replugged),
the thread reconnects with exponential backoff capped at `reconnect_max_wait`, logging every
attempt, and resumes as soon as the source is back; the stream loop meanwhile shows a generated
"no signal" frame. A live source that stays connected but sends nothing (a frozen camera, a hung
server) counts as lost once `open_timeout` passes without a frame (`stalled`), long before
OpenCV's own read gives up, and as back with its next frame.

`state` says what the source is doing for /stats and /metrics (srx_source_up is 1 only while it is
"up"): a source that failed (a looping file moved away mid-run, said to be gone) or ended is down
for good. The events for --json-summary keep the run's first EVENTS_FIRST and its newest
EVENTS_LAST, and count those between them (`events_left_out`).

A live source opened (or reopened), or back from a stall, hands over at once the frames it queued
meanwhile (an RTSP camera: a couple of seconds of them). They are seconds old, so they are read
and skipped as stale until a read waits for the camera, and the first frame upscaled is live:
not counted as dropped, not a burst that would make a recording run ahead of the clock.

An RTSP source's frames carry the camera's own times (RTP), so a link slower than the stream (a
Wi-Fi bridge, a 4G router) shows as frames that trail the camera's clock more and more (`LinkLag`):
once they have been LATE_S behind for LATE_HOLD_S, a warning says so and `lag_s` (/stats, /metrics)
says by how much; the newest frame that came is upscaled all the same, and every frame of a link that
keeps up however late, but a backlog read at once (more than LATE_S of the stream queued behind newer
frames: what a link hands over when it recovers) is skipped past its first LATE_S as stale, so the
picture is live again as soon as the link lets it be. Frames dropped from such a burst are counted
apart (`dropped_in_bursts`): no slow model is blamed for them.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from srx.camera.sources import CHECK_ADDRESS, PIPELINE_ADVICE, FrameReader, SourceSpec, open_reader
from srx.camera.stats import LATE_S, recent_rate
from srx.errors import SrxError
from srx.eventlog import EVENTS_FIRST, EVENTS_LAST, EventLog
from srx.imageio import cut_short, square_size
from srx.words import counted, seconds_text

log = logging.getLogger("srx")

#: first reconnect wait; doubles per failed attempt up to the cap
RECONNECT_FIRST_WAIT = 0.5
#: a source lost again within this many seconds of coming back keeps dropping (a camera at its limit
#: of clients, a relay that hangs up at once): it waits before its first attempt, twice as long each
#: time in a row up to the cap, instead of being reopened at once over and over
FLAP_S = 5.0
#: the names of the threads that read sources (and open them): one may still be inside OpenCV's C++
#: when the command is over (an open or read that does not heed a stop), and the interpreter's exit
#: must not wait for it or tear it down (srx.cli.app.main ends such a process at once, its work done)
READER_THREADS = ("srx-open", "srx-capture")

#: a read after a (re)connect that returns within this share of the frame interval was queued, not live
STALE_READ_SHARE = 0.6

#: how fast the least lag may rise, seconds a second: a camera's clock and the box's part by far less
#: (crystals: 0.01 %), a link slower than the stream by far more (a link at 90 % of the bitrate: 10 %)
LAG_DRIFT = 0.001

#: how long frames must come late before it is said (not the one frame after a stall)
LATE_HOLD_S = 1.0

#: damaged frames are said at the first and then at most once in this many seconds (the summary counts them all)
DAMAGE_SAY_S = 60.0


class LinkLag:
    """How far a live source's newest frame trails the camera's own clock: its arrival against its
    stream time (the RTP times FFmpeg gives), less the least that difference has been since the
    source connected (the link at its best; it may rise by LAG_DRIFT a second, for a camera clock a
    little slower than the box's). A time that stands still or goes back (a camera that restarted its
    clock) is taken as on time; one that jumps ahead (frames the camera left out) lowers the lag."""

    def __init__(self) -> None:
        self.worst = 0.0  # the most a frame trailed, over the run
        self.reset()

    def reset(self) -> None:
        """A new connection: its times start afresh."""
        self.lag = 0.0
        self._least: float | None = None
        self._last: tuple[float, float] | None = None  # (arrival, stream time) of the frame before
        self._shift = 0.0

    def update(self, arrived: float, stream_s: float | None) -> float:
        """The lag of a frame that `arrived` (monotonic seconds) with stream time `stream_s` (None:
        the source gives none, no lag)."""
        if stream_s is None:
            return self.lag
        t = stream_s + self._shift
        if self._last is not None and t <= self._last[1]:
            self._shift += (arrived - self._last[0]) - (stream_s + self._shift - self._last[1])
            t = stream_s + self._shift  # as far ahead of the frame before as it came after it
        behind = arrived - t
        if self._least is None:
            self._least = behind
        else:
            self._least = min(self._least + LAG_DRIFT * (arrived - self._last[0]), behind)
        step = t - self._last[1] if self._last is not None else 0.0
        self._last = (arrived, t)
        # less one interval of the stream: the frame the decoder holds until the next one comes (seconds
        # at a low rate; srx decodes an RTSP source on one thread, FFmpeg's frame threads hold one each)
        self.lag = max(0.0, behind - self._least - step)
        self.worst = max(self.worst, self.lag)
        return self.lag


@dataclass
class Frame:
    image: np.ndarray
    index: int  # the n-th frame this capture published (0-based), over reconnects and loops
    t_capture: float  # time.monotonic() when the frame was grabbed (after pacing, for files)
    capture_s: float  # time spent reading and decoding it
    t_taken: float | None = None  # time.monotonic() when the stream loop took it from the capture
    t_source: float | None = None  # seconds into a recorded source (SourceClock); None for a live one
    sar: Fraction | None = None  # the shape of the source's pixels where they are not square (FrameReader.sar)


class SourceClock:
    """Seconds into a recorded source of each frame it gives, from 0: the container's own frame
    times where it has them (a variable-rate video, a phone's or an NVR's export with quiet
    stretches thinned out, keeps its bursts and gaps), else one frame interval after the frame
    before. It only goes forward: across a --loop restart it goes on from the last frame."""

    #: a gap in the container's times longer than this is said in the log (a motion-triggered
    #: recording's pause, or a broken time stamp): it is kept, so a paced stream waits it out
    LONG_GAP_S = 10.0

    def __init__(self, fps: float | None, name: str = "the source") -> None:
        self.step = 1.0 / (fps or 25.0)
        self.name = name
        self.last: float | None = None
        self.last_raw: float | None = None

    def next(self, raw: float | None) -> float:
        """The time of the next frame, whose container time is `raw` (None: unknown)."""
        if self.last is None:
            t = 0.0
        elif raw is not None and self.last_raw is not None and raw > self.last_raw:
            gap = raw - self.last_raw
            if gap > self.LONG_GAP_S:
                log.info("%s has no frame for %.0f s of its time (%.1f s to %.1f s); the gap is kept",
                         self.name, gap, self.last_raw, raw)
            t = self.last + gap
        else:
            t = self.last + self.step
        self.last, self.last_raw = t, raw
        return t

    def restart(self) -> None:
        """The source starts again (a loop): its next frame comes one interval after the last."""
        self.last_raw = None


def check_buffer(buffer: int) -> int:
    """`--buffer`, the frames held for the model: at least one."""
    if buffer < 1:
        raise SrxError(f"--buffer must be at least 1 frame, got {buffer}")
    return int(buffer)


class CaptureThread:
    """Reads `reader` (already opened from `spec`) in a daemon thread; `get()` returns frames."""

    def __init__(
        self,
        spec: SourceSpec,
        reader: FrameReader,
        *,
        drop: bool = True,
        pace: bool | None = None,
        reconnect_max_wait: float = 30.0,
        open_timeout: float = 10.0,
        queue_size: int = 4,
        buffer: int = 2,
        name: str | None = None,
    ) -> None:
        self.spec, self.reader, self.drop = spec, reader, drop
        # what the log calls the source: its name too where the user gave one, or where there are several
        self.label = f"{name} ({spec.describe()})" if name else spec.describe()
        fps = reader.fps or spec.fps
        self.pace_fps = fps if (pace if pace is not None else (drop and not spec.live)) and fps else None
        self.reconnect_max_wait = max(float(reconnect_max_wait), RECONNECT_FIRST_WAIT)
        self.open_timeout = open_timeout
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._held: collections.deque[Frame] = collections.deque()  # frames not taken yet (drop mode)
        self.buffer = check_buffer(buffer)
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=max(1, queue_size))
        self._thread = threading.Thread(target=self._run, name="srx-capture", daemon=True)
        # state, read by the stream loop and the status line
        self.frames_read = 0
        self.dropped = 0
        self.skipped = 0  # left out by the source's max_fps before the model saw them
        self.dropped_in_bursts = 0  # of the dropped, those a live source handed over at once (a stall's, a link's)
        self.late_spells = 0  # times its frames came late (RTSP: LinkLag), said in a warning
        self._next_due: float | None = None  # when (source time, s) the next frame may pass max_fps
        self.stale = 0  # frames a live source held up at a (re)connect or stall, skipped unread by the model
        self.damaged = 0  # frames its decoder flagged as decoded with errors or could not decode (FrameReader.damaged)
        self._damage_seen: tuple[FrameReader | None, int] = (None, 0)  # the reader last looked at, and its count then
        self._damage_said_at: float | None = None  # when damaged frames were last said, and those since
        self._damage_unsaid = 0
        self._form: tuple | None = None  # what its frames were last said to be (size, pixel shape, interlaced)
        self.sizes: list[tuple[float, int, int]] = []  # (when, width, height) of each size its frames came in
        self._audio_said = False
        self.sends: str | None = None  # what its frames are, in the words of its first line (the latest such line)
        self.lag = LinkLag() if spec.rtsp else None  # how late an RTSP source's frames come (its RTP times)
        self._late_said = False  # the source's frames are late (said once, until they are in time again)
        self._late_since: float | None = None  # when its frames began to come more than LATE_S late
        self._spell_worst = 0.0  # the most they trailed in this spell
        self._burst_from: float | None = None  # the stream time where the frames read at once began
        self._arrivals: collections.deque[float] = collections.deque(maxlen=512)  # when frames came: the rate now
        self.eof = False
        self._connected = True
        self.last_frame_at = time.monotonic()  # when the source last delivered a frame
        self.ever_opened = True  # False for a source the run started before it opened (srx.camera.multi)
        self.last_failure: str | None = None  # why the latest attempt to open it failed
        self._stall_said = False
        self.first_read_at: float | None = None  # when the first and the latest frame came
        self.last_read_at: float | None = None
        self._active_s, self._active_n = 0.0, 0  # time between live frames and their count (the input rate)
        self.error: BaseException | None = None
        self.reconnect_attempts = 0
        self.reconnects = 0
        self.attempt = 0  # attempts in the current outage
        self._back_at: float | None = None  # when it last came back (a reconnect or a late opening)
        self._flaps, self._flap_wait = 0, 0.0  # times in a row it was lost again soon after, and the wait that earns
        self.next_retry_at: float | None = None
        # what happened, for --json-summary (bounded: the run's first events and its newest)
        self.event_log = EventLog()

    # -- consumer side ---------------------------------------------------------------------------
    def start(self) -> "CaptureThread":
        self._thread.start()
        return self

    def get(self, timeout: float) -> Frame | None:
        """The oldest frame held and not yet taken (with `drop`, of at most the `buffer` newest),
        waiting up to `timeout` s; None if none came."""
        if not self.drop:
            try:
                frame: Frame | None = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
        else:
            with self._cond:
                if not self._held and not (self.eof or self.error):
                    self._cond.wait(timeout)
                frame = self._held.popleft() if self._held else None
        if frame is not None:
            frame.t_taken = time.monotonic()
        return frame

    @property
    def connected(self) -> bool:
        """The source is not lost: not being reconnected, and not silent for `open_timeout` (the
        stream loops show no-signal frames while it is). A source that failed or ended is not lost
        but not up either: `state` says which, and is what /stats and /metrics report."""
        return self._connected and not self.stalled

    @connected.setter
    def connected(self, value: bool) -> None:
        self._connected = value

    @property
    def state(self) -> str:
        """What the source is doing: "up" (it delivers frames; a file that ended still is while the
        model takes the frames it left), "starting" (no frame read yet), "reconnecting" (lost, being
        retried), "stalled" (connected but silent for `open_timeout`), "failed" (it stopped with an
        error: a looping file moved away, a frame source that raised), "ended" (a file or scene that
        ran out, not looping, every frame taken) or "stopped" (the run stopped reading it)."""
        if self.error is not None:
            return "failed"
        if self.eof:
            return "ended" if self.finished else "up"
        if self._stop.is_set():
            return "stopped"
        if not self._connected:
            return "reconnecting"
        if self.stalled:
            return "stalled"
        return "up" if self.frames_read > 0 else "starting"

    @property
    def events(self) -> list[dict]:
        """What happened (lost, attempt, reconnected, stalled, loop, end ...), oldest first: the first
        EVENTS_FIRST of the run and the EVENTS_LAST newest; `events_left_out` counts those between."""
        return self.event_log.items

    @property
    def events_left_out(self) -> int:
        return self.event_log.left_out

    @property
    def stalled(self) -> bool:
        """A live source still connected that has sent no frame for `open_timeout` seconds (a frozen
        camera or server): the stream shows no-signal frames until its next frame or reconnect."""
        if not (self.spec.live and self._connected and not self.eof and self.error is None):
            return False
        silent = time.monotonic() - self.last_frame_at
        if silent <= self.open_timeout:
            return False
        if not self._stall_said:
            self._stall_said = True
            self._event("stalled")
            log.warning("source %s sent no frame for %.0f s; showing no signal until it sends again or is reconnected",
                        self.label, silent)
        return True

    def outage_note(self) -> str:
        """What the no-signal frame says: how long the source has been silent, or the reconnect's state."""
        if self._connected:
            return f"no frame for {time.monotonic() - self.last_frame_at:.0f} s; waiting for the source"
        wait = max(0.0, (self.next_retry_at or time.monotonic()) - time.monotonic())
        if self.attempt == 0 and self._flaps:  # waiting before its first attempt: it keeps dropping
            return f"dropped {counted(self._flaps, 'time')} soon after it came back: reconnecting in {wait:.0f} s"
        return f"reconnecting: attempt {self.attempt}, next in {wait:.0f} s"

    def input_fps(self) -> float:
        """Frames a second the source delivered while it delivered: over the intervals between its
        live frames, not the time it took to open, its outages and stalls, nor the stale frames it
        had queued; 0.0 before a second frame."""
        if self._active_n < 1:
            return 0.0
        return self._active_n / max(self._active_s, 1e-9)

    def recent_fps(self, span: float = 5.0) -> float:
        """Frames a second the source delivers now: those read over the last `span` seconds, but the
        stale ones (a link slower than the stream shows here, the run's rate hides it; the backlog it
        hands over when it recovers is no rate of the camera's)."""
        return recent_rate(list(self._arrivals), time.monotonic(), span)

    @property
    def lag_s(self) -> float:
        """How far the newest frame trailed the camera's own clock (LinkLag; 0 for a source without
        such times: not RTSP)."""
        return self.lag.lag if self.lag is not None else 0.0

    @property
    def finished(self) -> bool:
        """The source ended and every frame it produced was taken."""
        if not self.eof:
            return False
        return self._queue.empty() if not self.drop else not self._held

    def stop(self, timeout: float = 3.0, wait: bool = True) -> None:
        """Stop reading; with `wait`, wait up to `timeout` s for the thread (without: several sources'
        captures are all told first, so none reads on while another's blocked open is waited for)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if wait and self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():  # a read blocked inside OpenCV: the daemon thread ends with it
            log.debug("capture thread still blocked in a read after %.1f s; leaving it", timeout)

    # -- producer side ---------------------------------------------------------------------------
    def _event(self, kind: str, **info: object) -> None:
        self.event_log.add(kind, **info)

    def _publish(self, frame: Frame) -> bool:
        if self.drop:
            with self._cond:
                while len(self._held) >= self.buffer:
                    self._held.popleft()
                    self.dropped += 1
                    if self.spec.live and frame.capture_s < STALE_READ_SHARE / max(self.reader.fps or 25.0, 1.0):
                        self.dropped_in_bursts += 1  # the source handed frames over at once: not srx's speed
                self._held.append(frame)
                self._cond.notify_all()
            return True
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # handed to the stream loop, which reports it
            self.error = exc if isinstance(exc, SrxError) else SrxError(
                f"reading {self.spec.describe()} failed: {type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self.eof = True if self.error is None and not self._stop.is_set() else self.eof
                self._cond.notify_all()
            try:
                self.reader.release()
            except Exception:  # releasing a broken capture must not hide the real outcome
                pass

    def _catching_up(self) -> int:
        """How many queued frames a live source may hand over at a (re)connect before its reads must
        wait for the camera: a few seconds' worth at most (0 for a recorded source)."""
        if not self.spec.live:
            return 0
        return int(max(self.reader.fps or 25.0, 1.0) * max(self.open_timeout, 5.0))

    def _loop(self) -> None:
        index = 0
        # pacing schedule: a recorded frame is due at t0 + its source time - src0, a frame without
        # one (a live source told to pace) at t0 + n / fps
        t0, n, src0 = time.monotonic(), 0, None
        clock = None if self.spec.live else SourceClock(self.reader.fps or self.spec.fps, self.spec.describe())
        catch_up = self._catching_up()
        fresh = True  # the next live frame follows an open, a reconnect or a stall: no interval to count
        held: tuple[np.ndarray, float] | None = None  # the newest frame skipped as stale since the (re)connect
        while not self._stop.is_set():
            t_read = time.monotonic()
            image = self.reader.read()
            t_got = time.monotonic()
            if image is not None and self.spec.kind != "folder":  # a folder: pictures of any size, each its own
                self._note_form(image)
            self._count_damage()
            if image is None:
                if self._stop.is_set():
                    return
                if held is not None:  # it ended before a read waited for it: its newest frame, not none
                    self.stale -= 1
                    if not self._publish(Frame(held[0], index, time.monotonic(), held[1], sar=self.reader.sar)):
                        return
                    index, held = index + 1, None
                if self.spec.reconnects:
                    self._reconnect()
                    t0, n = time.monotonic(), 0
                    catch_up, fresh = self._catching_up(), True
                    continue
                if self.spec.loop and n > 0:
                    self.reader.release()
                    self.reader = self._reopen_for_loop()
                    if clock is not None:
                        clock.restart()
                    self._event("loop")
                    continue
                self.eof = True
                self._event("end")
                listed = self.reader.frame_count or 0
                whole = self.spec.kind == "file" and not self.spec.loop and not getattr(self.reader, "cut_off", False)
                if whole and cut_short(self.frames_read, listed, self.spec.target, self.reader.time_s):
                    log.warning("%s ended after %d of the %d frames its container lists (cut off or damaged?)",
                                self.label, self.frames_read, listed)
                    # in --json-summary's events too: a script saw only the end (a stderr line said the rest)
                    self._event("cut-short", frames=self.frames_read, listed=listed)
                return
            t_src = clock.next(self.reader.time_s) if clock is not None else None
            if self.pace_fps:
                if t_src is not None and src0 is None:
                    t0, src0 = time.monotonic(), t_src
                due = t0 + (t_src - src0 if t_src is not None else n / self.pace_fps)
                now = time.monotonic()
                if due > now:
                    if self._stop.wait(due - now):
                        return
                elif now - due > 1.0 / self.pace_fps:  # decoding fell behind: restart the schedule
                    t0, n, src0 = now, 0, t_src
                n += 1
            else:
                n += 1
            self.frames_read += 1
            # a read that waited out OpenCV's read timeout returns what the decoder still held, not a
            # frame the camera sent: the source is still silent
            resumed = False
            if self.spec.live and t_got - t_read >= 0.9 * self.open_timeout:
                self.stale += 1  # what the decoder held when OpenCV's read gave up waiting: not live
                fresh = True
                continue
            if not self.spec.live or t_got - t_read < 0.9 * self.open_timeout:
                if self.spec.live and t_got - self.last_frame_at > self.open_timeout:
                    # back from a stall: this frame and what comes at once with it were held up
                    resumed, catch_up, fresh = True, self._catching_up(), True
                self.last_frame_at = t_got
                if self._stall_said:
                    self._stall_said = False
                    self._event("frames again")
                    log.warning("source %s sends frames again", self.label)
            if catch_up > 0:
                interval = 1.0 / self.reader.fps if self.reader.fps else 0.04
                if resumed or t_got - t_read < STALE_READ_SHARE * interval:  # queued at the connect or in a stall: seconds old
                    catch_up -= 1
                    self.stale += 1
                    held = (image, t_got - t_read)  # the newest of them, shown should the source end now
                    continue
                catch_up = 0  # this read waited for the camera: live from here
            held = None
            if self.lag is not None and self._late(t_got, t_got - t_read):
                self.stale += 1  # late and queued behind newer frames: the backlog of a slow link
                continue
            t_in = t_got if self.spec.live else time.monotonic()  # a paced file's frame comes in when it is due
            self._arrivals.append(t_in)  # the rate it delivers now: stale ones left out (a backlog is not a rate)
            if self.last_read_at is not None and not fresh:  # the source's own rate: its outages left out
                self._active_s += t_in - self.last_read_at
                self._active_n += 1
            fresh = False
            self.first_read_at, self.last_read_at = self.first_read_at or t_in, t_in
            if self._over_rate(index, t_src):
                self.skipped += 1
                index += 1  # a real-time recording repeats the frame before for this one: the source's timing holds
                continue
            frame = Frame(image, index, time.monotonic(), t_got - t_read, t_source=t_src, sar=self.reader.sar)
            index += 1
            if not self._publish(frame):
                return

    def _note_form(self, image: np.ndarray) -> None:
        """Say what the source's frames are when it starts and whenever that changes (an installer
        reconfigured the camera): their size, codec and frame rate, pixels that are not square (srx's
        output is made square to match: srx.imageio.square_pixels) and fields deinterlaced;
        each size in `sizes` and a `size` event; a camera's audio track, which is not recorded, once."""
        reader = self.reader
        h, w = image.shape[:2]
        form = ((w, h), reader.sar, reader.interlaced, reader.fields)
        if form == self._form:
            return
        was, self._form = self._form, form
        t = time.monotonic()
        if was is None or was[0] != form[0]:
            self.sizes.append((t, w, h))
            if was is not None:
                self._event("size", width=w, height=h)
        rate = f"{reader.fps:g} fps" if reader.fps else "no frame rate stated (srx measures it)" if self.spec.live else ""
        what = [f"{w}x{h}"] + ([reader.codec] if reader.codec else []) + ([rate] if rate else [])
        if reader.sar is not None:
            shown = square_size(w, h, reader.sar)
            what.append(f"pixels {reader.sar.numerator}:{reader.sar.denominator} wide, shown as {shown[0]}x{shown[1]}: "
                        "the upscaled frames are resampled to square pixels to match")
        if reader.interlaced:
            what.append("interlaced, deinterlaced (FFmpeg's yadif) before it is upscaled")
        if reader.fields:
            what.append("interlaced and NOT deinterlaced (a file is read through OpenCV, which passes the fields on "
                        "combed): deinterlace it first, e.g. ffmpeg -i IN -vf yadif OUT")
        self.sends = ", ".join(what + ([f"sound ({reader.audio}) not recorded"] if reader.audio else []))
        if was is None:
            (log.warning if reader.fields else log.info)("source %s: %s", self.label, ", ".join(what))
        else:
            log.warning("source %s now sends %s (was %dx%d)", self.label, ", ".join(what), *was[0])
        if reader.audio and not self._audio_said:
            self._audio_said = True
            log.info("source %s also sends sound (%s); srx stream records the picture only", self.label, reader.audio)

    def _count_damage(self) -> None:
        """Add the frames the reader counted as damaged since the last look (a new reader, after a
        reconnect, counts from 0) and say them: the first at once, then at most once in DAMAGE_SAY_S
        (a lossy link damages frames all the time; the summary and /metrics count every one)."""
        reader = self.reader
        count = reader.damaged
        seen = self._damage_seen[1] if self._damage_seen[0] is reader else 0
        self._damage_seen = (reader, count)
        if count <= seen:
            return
        self.damaged += count - seen
        self._damage_unsaid += count - seen
        now = time.monotonic()
        if self._damage_said_at is None:
            udp = self.spec.rtsp and self.spec.rtsp_transport == "udp"
            log.warning("source %s: a frame came damaged (packets lost or broken on the way; the decoder filled the "
                        "gap from the frame before, so part of the picture may smear until the next keyframe)%s",
                        self.label, "; over UDP every lost packet does this: --rtsp-transport tcp carries them all"
                        if udp else "")
        elif now - self._damage_said_at >= DAMAGE_SAY_S:
            log.warning("source %s: %s came damaged since the last such line, %s ago", self.label,
                        counted(self._damage_unsaid, "more frame"), seconds_text(now - self._damage_said_at))
        else:
            return
        self._event("damaged", frames=self._damage_unsaid)
        self._damage_said_at, self._damage_unsaid = now, 0

    def _late(self, t_got: float, waited: float) -> bool:
        """Whether an RTSP frame is late and part of a backlog: it came at once (a newer one right
        behind it) in a run of such frames longer than LATE_S of the stream (what a link hands over
        when it recovers; a clump that jitter makes on a link that keeps up is not one). Says when the
        frames have come late for LATE_HOLD_S (not for one frame after a stall), and when they come in
        time again, with that spell's worst."""
        assert self.lag is not None
        lag, stream_s = self.lag.update(t_got, self.reader.time_s), self.reader.time_s
        interval = 1.0 / self.reader.fps if self.reader.fps else 0.04
        at_once = waited < STALE_READ_SHARE * interval
        if not at_once or stream_s is None:
            self._burst_from = None
        elif self._burst_from is None:
            self._burst_from = stream_s
        if lag <= LATE_S:
            self._late_since = None
        elif self._late_since is None:
            self._late_since = t_got
        self._spell_worst = max(self._spell_worst, lag)
        if self._late_since is not None and t_got - self._late_since >= LATE_HOLD_S and not self._late_said:
            self._late_said = True
            self.late_spells += 1
            self._event("late", lag_s=round(lag, 1))
            log.warning("source %s: its frames come %.1f s behind the camera's own clock (a link slower than the "
                        "stream?); the newest that comes is upscaled, a backlog of late ones is skipped",
                        self.label, lag)
        elif lag < LATE_S / 2 and self._late_said:
            self._late_said = False
            self._event("in time", worst_lag_s=round(self._spell_worst, 1))
            log.warning("source %s: its frames come in time again (at worst %.1f s late)", self.label, self._spell_worst)
        if not self._late_said and lag < LATE_S / 2:
            self._spell_worst = 0.0
        return (lag > LATE_S and at_once and self._burst_from is not None and stream_s is not None
                and stream_s - self._burst_from > LATE_S)

    def _reopen_for_loop(self) -> FrameReader:
        """The looping source opened again from its start; a file or folder that is no longer there
        (moved or deleted while it played: its open handle read on to the end) is said to be gone,
        not to be a video FFmpeg cannot decode."""
        try:
            return open_reader(self.spec, self.open_timeout)
        except SrxError:
            if self.spec.kind not in ("file", "folder") or Path(str(self.spec.target)).exists():
                raise  # there, but no longer opens (rewritten, truncated): its own message
        raise SrxError(f"{self.spec.describe_whole()} was moved or deleted during the run; it cannot be looped "
                       "again")

    def _over_rate(self, index: int, t_source: float | None = None) -> bool:
        """Whether frame `index` comes before the source's max_fps lets the next one through. Time
        is the source's own for a recorded source (`t_source`, else its index over its fps: the same
        frames pass however fast it is read) and the clock's otherwise; a frame up to half a source
        frame early still passes, so 25 fps capped at 10 gives 10, not every third frame's 8.3."""
        cap = self.spec.max_fps
        if not cap:
            return False
        src_fps = self.reader.fps or self.spec.fps
        if t_source is not None:
            now = t_source
        else:
            now = index / src_fps if src_fps and not self.spec.live else time.monotonic()
        step = 1.0 / cap
        slack = (0.5 / src_fps if src_fps else 0.1 * step) + 1e-6  # + 1e-6: a tie (25 fps to 10) passes
        if self._next_due is not None and now < self._next_due - slack:
            return True
        due = now if self._next_due is None else self._next_due
        # on the grid (an even rate), but never sooner than a step after this frame (after a gap or an
        # outage, the grid starts again from it instead of letting a burst through to catch up)
        self._next_due = max(due + step, now + step)
        return False

    def _reconnect(self, failed: SrxError | None = None) -> None:
        """Retry the source with capped exponential backoff until it returns or we are stopped.
        `failed`: why its first open failed (said by the caller), the first attempt of a source that
        never opened: it is tried again after the first wait, and its opening is no reconnect."""
        self.connected = False
        try:
            self.reader.release()
        except Exception:
            pass
        lost_at = min(time.monotonic(), self.last_frame_at)  # the signal went with the last frame, not the failed read
        first = not self.ever_opened
        if not first:
            self._event("lost")
        back_for = None if self._back_at is None or first else time.monotonic() - self._back_at
        if back_for is not None and back_for < FLAP_S:
            self._flaps += 1
            self._flap_wait = min(max(RECONNECT_FIRST_WAIT, 2 * self._flap_wait), self.reconnect_max_wait)
            log.warning("source %s stopped again %s after srx reopened it (%s in a row); reconnecting in %s",
                        self.label, seconds_text(back_for), counted(self._flaps, "time"), seconds_text(self._flap_wait))
        elif self.frames_read or self.reconnects:
            self._flaps, self._flap_wait = 0, 0.0
            log.warning("source %s stopped; reconnecting (backoff up to %.0f s)", self.label, self.reconnect_max_wait)
        wait = RECONNECT_FIRST_WAIT
        self.attempt = 0
        if self._flaps:
            self.next_retry_at = time.monotonic() + self._flap_wait
            if self._stop.wait(self._flap_wait):
                return
        if failed is not None:  # that was attempt 1
            self.attempt, self.last_failure = 1, str(failed)
            self.reconnect_attempts += 1
            self._event("attempt", n=1)
            self.next_retry_at = time.monotonic() + wait
            if self._stop.wait(wait):
                return
            wait = min(wait * 2, self.reconnect_max_wait)
        while not self._stop.is_set():
            self.attempt += 1
            self.reconnect_attempts += 1
            self._event("attempt", n=self.attempt)
            try:
                reader = open_reader(self.spec, self.open_timeout)
            except SrxError as exc:
                self.next_retry_at = time.monotonic() + wait
                said = str(exc)
                if self.frames_read:  # it worked: no advice on how to make it work
                    said = said.split(f"; {CHECK_ADDRESS}")[0].split(f"; {PIPELINE_ADVICE}")[0]
                self.last_failure = said
                log.warning("reconnect attempt %d to %s failed (%s); next in %.1f s",
                            self.attempt, self.label, said, wait)
                if self._stop.wait(wait):
                    return
                wait = min(wait * 2, self.reconnect_max_wait)
                continue
            self.reader = reader
            self._next_due = None
            if self.lag is not None:
                self.lag.reset()  # a new session's times
            self.last_frame_at = time.monotonic()
            self._stall_said = False  # "reconnected" says it: no "sends frames again" after it
            self.connected = True
            self.next_retry_at = None
            self._back_at = time.monotonic()
            if first:  # a source the run began without: it opens now, it does not come back
                self.ever_opened = True
                self._event("opened", attempts=self.attempt)
                log.warning("opened %s at attempt %d, %.1f s after it was first tried",
                            self.label, self.attempt, time.monotonic() - lost_at)
                return
            self.reconnects += 1
            self._event("reconnected", attempts=self.attempt)
            log.warning("reconnected to %s after %d attempt(s), %.1f s without signal",
                        self.label, self.attempt, time.monotonic() - lost_at)
            return
