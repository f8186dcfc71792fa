"""Publishing: rtsp://HOST:PORT/PATH sends H.264 to an RTSP server that takes published streams
(RtspOutput), for NVRs and viewers to pull; from a thread of its own, so a server that hangs holds
up nothing else.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from typing import Any, Iterator

import numpy as np

from srx.camera.outputs import Output, _fit
from srx.errors import SrxError
from srx.words import counted, seconds_text

log = logging.getLogger("srx")


#: the RTSP server's TCP port when a URL names none
RTSP_PORT = 554


def rtsp_address(url: str) -> tuple[str, int]:
    """(host, port) of an rtsp:// URL; SrxError saying what was expected for anything else."""
    from urllib.parse import urlsplit

    from srx.camera.sources import redact_url

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or RTSP_PORT
    except ValueError:  # a port that is not a number
        parts, host, port = None, None, 0
    if parts is None or parts.scheme.lower() != "rtsp" or not host or not parts.path.strip("/"):
        raise SrxError(f"--output {redact_url(url)}: expected rtsp://HOST[:PORT]/PATH, the address at which an RTSP "
                       "server takes the published stream")
    return host, port


def _listening(host: str, port: int, timeout: float = 2.0) -> OSError | None:
    """None if something accepts TCP connections at host:port, else why not."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc


def _answers(url: str, timeout: float = 3.0) -> str | None:
    """None if the RTSP server of `url` answers an OPTIONS request within `timeout`, else why not
    (srx.camera.sources.rtsp_answers). FFmpeg's handshake (ANNOUNCE, SETUP, RECORD) has no timeout and
    holds Python's lock while it waits, so a server that takes the connection and never answers (hung,
    or stopped) froze every thread of srx, Ctrl-C included: this look comes first."""
    from srx.camera.sources import NO_ANSWER, rtsp_answers

    why = rtsp_answers(url, timeout)
    return f"it takes connections but sent no answer in {timeout:g} s (hung?)" if why == NO_ANSWER else why


class RtspOutput(Output):
    """Publish the upscaled frames as H.264 to an RTSP server that takes published streams (RTSP
    ANNOUNCE/RECORD over TCP, through PyAV's FFmpeg: MediaMTX, GStreamer's rtsp-server in record
    mode, a media server or NVR that ingests RTSP), from which players, NVRs and video management
    systems pull the upscaled camera like any other.

    x264 as for a recording (preset ultrafast, one thread) with no B-frames or look-ahead and a
    keyframe every second, so a viewer that joins decodes within a second. Each frame carries its
    wall-clock time, so the published stream keeps real time without repeating frames; a file
    source is read at its own rate for it even with --no-drop (`paced`), never faster.

    A thread of its own sends: write() only hands the frame over (a queue of QUEUE frames, the
    oldest given up when it is full), so a server that hangs (stopped, a frozen NVR: its connection
    open, nothing read, FFmpeg's send blocked with no timeout) holds up neither the stream nor its
    other outputs and cameras. A send stuck for STALL_S seconds is logged once, and the frames from
    then on are not sent until it moves again (said once too).

    Nothing listening when the output is made is one clear error, before the model loads; a
    server that refuses the stream at first (a wrong path, a login) is an SrxError with its reason,
    raised by the next write() or by close(): the stream leaves this output out (`Output.failed`),
    goes on with its others, and exits 1 at the end. A server lost later is retried with backoff (1 s
    doubling to `retry_max_wait`) while the stream, its other outputs and its other cameras go on;
    the frames in between are not sent. `unsent` counts every frame not published."""

    realtime = False
    fixed_size = True
    paced = True
    #: seconds between the last frame and the end of the session: a receiver that holds what arrives
    #: in a jitter buffer (GStreamer's rtpbin: 200 ms) drops what it still holds at the TEARDOWN
    LINGER_S = 0.5
    #: frames waiting for the sender: enough for a session's start (FFmpeg's ANNOUNCE/SETUP/RECORD
    #: with the first frame took 0.14 s on loopback) without holding many full-size frames
    QUEUE = 8
    #: seconds one send may take before the server counts as hung
    STALL_S = 5.0

    def __init__(self, url: str, fps: float = 10.0, retry_max_wait: float = 30.0) -> None:
        from urllib.parse import urlsplit

        from srx.camera.sources import redact_url

        self.url, self.label = url, redact_url(url)
        self.name = f"RTSP publish {self.label}"
        self.host, self.port = rtsp_address(url)
        why = _listening(self.host, self.port)
        if why is not None:
            raise SrxError(f"--output {self.label}: nothing takes connections at {self.host}:{self.port} "
                           f"({why.strerror or why}); start the RTSP server first (e.g. MediaMTX), or check the address")
        netloc = urlsplit(url).netloc  # what an OPTIONS request names: the URL without its user and password
        self._options_url = url.replace(netloc, netloc.rpartition("@")[2], 1)
        silent = _answers(self._options_url)
        if silent is not None:
            raise SrxError(f"--output {self.label}: the RTSP server at {self.host}:{self.port} does not answer: {silent}")
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.retry_max_wait = retry_max_wait
        self.writer: Any = None  # the sender's
        self.size: tuple[int, int] | None = None
        self.frames = 0  # published
        self.unsent = 0  # upscaled but not published: the server away or hung, or the sender behind
        self.sessions = 0
        self._t0 = 0.0
        self._started = False
        self._retry_at = 0.0
        self._wait = 1.0
        self._sent_at = 0.0  # when the last frame went out
        # between the stream loop and the sender, under _cond: the frames handed over (each with
        # the time it was), since when a send has been under way, whether that was reported
        self._cond = threading.Condition()
        self._queue: deque[tuple[np.ndarray, float]] = deque()
        self._busy_since: float | None = None
        self._stalled = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._fatal: Exception | None = None  # why the sender ended the run, for the caller to raise
        self._raised = False

    # -- the stream loop's side --------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> bool:
        """Hand the frame to the sender and return at once (the loop gives each output a fresh
        array, which it does not change afterwards, so it is queued as it is)."""
        self._raise_fatal()
        now, stalled = time.monotonic(), 0.0
        with self._cond:
            if self._closing:  # closed: nothing more goes out
                self.unsent += 1
                return True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"srx {self.name}", daemon=True)
                self._thread.start()
            if self._busy_since is not None and now - self._busy_since > self.STALL_S and not self._stalled:
                self._stalled, stalled = True, now - self._busy_since
                self.unsent += len(self._queue)  # stale by the time it moves
                self._queue.clear()
            if self._stalled:
                self.unsent += 1
            else:
                if len(self._queue) >= self.QUEUE:  # the sender is behind: its oldest frame gives way
                    self._queue.popleft()
                    self.unsent += 1
                self._queue.append((frame, now))
                self._cond.notify()
        if stalled:
            log.warning("the RTSP server at %s has taken no data for %.0f s (hung?); frames are not sent until it does",
                        self.label, stalled)
        return True

    def status(self) -> dict[str, Any]:
        """/stats' and /metrics' view of it: `state` publishing (a session open), waiting (for its first
        frame), away (the server went: published again once it answers), stalled (the server takes no
        data), closed; `up` is false while away or stalled; frames published and not sent."""
        with self._cond:
            if self._closing:
                state = "closed"
            elif self._stalled:
                state = "stalled"
            elif self.writer is not None:
                state = "publishing"
            else:
                state = "away" if self.sessions else "waiting"
            return {"kind": "publish", "output": self.label, "state": state, "up": state not in ("away", "stalled"),
                    "frames": self.frames, "frames_unsent": self.unsent}

    def _raise_fatal(self) -> None:
        if self._fatal is not None and not self._raised:
            self._raised = True
            raise self._fatal

    def close(self) -> None:
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify()
        if thread is not None:
            thread.join(self.LINGER_S + 2.0)  # the last frames and the linger; a hung server is not waited for
            if thread.is_alive():
                log.debug("%s: the sender is still stuck in a send; left behind", self.label)
                with self._cond:
                    self.unsent += len(self._queue)
                    self._queue.clear()
        self._raise_fatal()
        if self.sessions:
            more = (f" in {counted(self.sessions, 'session')}, {counted(self.unsent, 'frame')} unsent while the server "
                    "was away or took no data" if self.sessions > 1 or self.unsent else "")
            log.info("published %s to %s%s", counted(self.frames, "frame"), self.label, more)

    # -- the sender's side -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if self._closing and (not self._queue or (self.writer is None and self.sessions)):
                        self.unsent += len(self._queue)  # no new session for the last frames of the run
                        self._queue.clear()
                        break
                    frame, at = self._queue.popleft()
                self._send(frame, at)
            if self.writer is not None:
                time.sleep(max(0.0, self._sent_at + self.LINGER_S - time.monotonic()))  # the last frames reach the viewers
                try:
                    with self._sending():
                        self.writer.close()
                except SrxError as exc:
                    log.warning("closing %s: %s", self.label, exc)
                self.writer = None
        except Exception as exc:  # the first session refused (or a fault): the caller raises it
            self._fatal = exc

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        """Around a call that may wait for the server: the loop watches how long it takes."""
        with self._cond:
            self._busy_since = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                since, stalled = self._busy_since, self._stalled
                self._busy_since, self._stalled = None, False
        if stalled:  # and it went through
            log.warning("the RTSP server at %s takes data again after %s; publishing goes on",
                        self.label, seconds_text(time.monotonic() - (since or 0.0)))

    def _open(self, frame: np.ndarray, at: float) -> None:
        from srx.media import H264Writer, LiveTarget

        why = _answers(self._options_url)  # FFmpeg's handshake would wait for good
        if why is not None:
            raise SrxError(f"{self.label}: {why}")
        size = self.size or (int(frame.shape[1]), int(frame.shape[0]))
        self.writer = H264Writer(self.url, self.fps, size, crf=23, preset="ultrafast", threads=1,
                                 live=LiveTarget("rtsp", self.label, (("rtsp_transport", "tcp"),)))
        self.size = self.writer.size  # even sides for 4:2:0
        self._t0 = at  # the session's clock starts with its first frame
        self._started = False  # FFmpeg announces the stream with the first frame: a session begins once it is taken

    def _drop_writer(self) -> bool:
        """Close a broken connection quietly; whether one was open."""
        writer, self.writer = self.writer, None
        if writer is None:
            return False
        try:
            writer.close()
        except SrxError:
            pass
        return True

    def _lost(self, exc: SrxError) -> None:
        if self._drop_writer():
            log.warning("lost the RTSP server at %s (%s); publishing again once it answers, the frames in "
                        "between are not sent", self.label, getattr(exc, "reason", exc))
            self._wait = 1.0
        self._retry_at = time.monotonic() + self._wait
        self._wait = min(self._wait * 2, self.retry_max_wait)

    def _send(self, frame: np.ndarray, at: float) -> None:
        """One frame out, at the time it was handed over; a session opened first where none is."""
        if self.writer is None:
            if time.monotonic() < self._retry_at:
                self._unsent()
                return
            try:
                self._open(frame, at)
            except SrxError as exc:
                return self._failed(exc)
        assert self.size is not None
        try:
            with self._sending():
                self.writer.write(_fit(frame, self.size), (at - self._t0) * 1000)
        except SrxError as exc:
            return self._failed(exc)
        self._sent_at = time.monotonic()
        if not self._started:
            self._started = True
            self.sessions += 1
            if self.sessions > 1:
                log.warning("publishing to %s again (session %d)", self.label, self.sessions)
        self.frames += 1

    def _unsent(self) -> None:
        with self._cond:
            self.unsent += 1

    def _failed(self, exc: SrxError) -> None:
        if not self.sessions:  # never published: a wrong path or a refused login, not an outage
            self._drop_writer()
            raise SrxError(f"--output {self.label}: the RTSP server did not take the stream: "
                           f"{getattr(exc, 'reason', exc)}") from None
        self._lost(exc)
        self._unsent()


