"""The capture thread with real sources: what it reports once a source failed or ended, the events it
keeps for --json-summary over a long run, and a looping file that disappears mid-run."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from srx.camera import capture
from srx.camera.capture import CaptureThread
from srx.camera.sources import SourceSpec, open_reader, parse_source
from srx.camera.stats import StreamStats, prometheus_text
from srx.camera.stream import stream
from tests.camera.conftest import frames, in_background, wait_until
from tests.camera.test_stream import write_ffv1


def _capture(spec: SourceSpec, **kwargs) -> tuple[CaptureThread, StreamStats]:
    cap = CaptureThread(spec, open_reader(spec, 5.0), **kwargs)
    stats = StreamStats()
    stats.capture = cap
    return cap.start(), stats


def test_a_looping_file_moved_away_fails_and_is_no_longer_up(tmp_path: Path) -> None:
    """The soak trial's case: a --loop file source whose file is moved away mid-run. Its open handle
    reads on to the end; reopening it for the next loop fails, and it is said to be gone (not "not a
    video ... corrupt"), and the source is reported down for good: /stats' connected false, state
    "failed", srx_source_up 0 (it stayed 1 with frames_out stuck, so `srx_source_up == 0` never fired)."""
    src = tmp_path / "run10" / "a.mkv"
    src.parent.mkdir()
    write_ffv1(src, frames(4), fps=25.0)
    cap, stats = _capture(parse_source(source=str(src), loop=True))
    try:
        wait_until(lambda: cap.frames_read >= 6, 30, "the file to loop once")
        assert stats.snapshot()["connected"] is True
        src.rename(tmp_path / "elsewhere.mkv")
        wait_until(lambda: cap.error is not None, 30, "the loop's reopen to fail")
    finally:
        cap.stop()
    snap = stats.snapshot()
    assert snap["connected"] is False and 'srx_source_up{source="a"} 0' in prometheus_text({"sources": {"a": snap}})
    message = str(cap.error)
    assert message == f"file {src} was moved or deleted during the run; it cannot be looped again"
    assert "decode" not in message and "corrupt" not in message
    assert snap["state"] == "failed"
    assert "FAILED" in stats.live_line() and "reconnecting" not in stats.live_line()


def test_a_file_that_ended_is_up_until_its_frames_are_taken_then_ended(tmp_path: Path) -> None:
    """A file that ran out (no --loop) is not "up" once the model took its last frame, though it
    never failed; until then it still delivers the frames it left."""
    src = tmp_path / "short.mkv"
    write_ffv1(src, frames(3))
    cap, stats = _capture(parse_source(source=str(src)), drop=False)
    try:
        wait_until(lambda: cap.eof, 30, "the end of the file")
        assert stats.snapshot()["connected"] is True  # 3 frames still queued
        taken = [cap.get(timeout=5) for _ in range(3)]
        assert all(f is not None for f in taken) and cap.finished
        snap = stats.snapshot()
        assert snap["connected"] is False and 'srx_source_up{source="short"} 0' in prometheus_text({"sources": {"short": snap}})
        assert snap["state"] == "ended"
        assert stats.live_line().endswith("  ended")
    finally:
        cap.stop()


def test_the_summary_keeps_the_first_and_the_newest_events_and_counts_the_rest(make_upscaler) -> None:
    """A night of reconnect attempts (each an event) must not push out the morning's events: the
    summary keeps the run's first EVENTS_FIRST events and its newest EVENTS_LAST, and says how many
    between them were left out (it kept the first 1000 and dropped the rest, silently). Here each
    loop of a one-frame source is an event; after `loops` of them it stays on its last loop."""
    EVENTS_FIRST, EVENTS_LAST = capture.EVENTS_FIRST, capture.EVENTS_LAST  # noqa: N806 (the module's names)
    img = frames(1)[0]
    loops = EVENTS_FIRST + EVENTS_LAST + 300
    opened: list[float] = []

    def one_frame():
        opened.append(time.monotonic())
        if len(opened) > loops:
            while True:  # the last open: frames from here on, no more loops
                yield img
        yield img

    stop, stats = threading.Event(), StreamStats()
    spec = SourceSpec.from_frames(one_frame, fps=2000.0, loop=True)
    thread, result = in_background(lambda: stream(spec, make_upscaler(2), [], stop_event=stop, stats=stats))
    try:
        wait_until(lambda: len(opened) > loops or "error" in result, 120, f"{loops} loops of the source")
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    kept = [e for e in summary.events if e["event"] == "loop"]
    # opened[0] is the stream's start; loop event j comes after opened[j] and before opened[j + 1]
    assert len(kept) == EVENTS_FIRST + EVENTS_LAST and summary.events_left_out == loops - len(kept)
    since = [t - stats.t_start for t in opened]  # the events' times are relative to the stream's start
    ms = 0.001  # they are rounded to it
    assert kept[EVENTS_FIRST - 1]["t"] <= since[EVENTS_FIRST + 1] + ms  # loop EVENTS_FIRST, the last of the first
    assert kept[EVENTS_FIRST]["t"] >= since[loops - EVENTS_LAST + 1] - ms  # then the newest EVENTS_LAST ...
    assert kept[-1]["t"] >= since[loops] - ms  # ... up to the last loop
    assert all(a["t"] <= b["t"] for a, b in zip(kept, kept[1:]))
    assert summary.to_dict()["events_left_out"] == loops - len(kept)
    assert f"events: {loops - len(kept):,} left out of the list" in summary.format()


def test_events_stay_bounded_however_many_come() -> None:
    """The bound itself, on a capture that is never started: first and newest kept, the rest counted."""
    cap = CaptureThread(SourceSpec.from_frames([np.zeros((8, 8, 3), np.uint8)]), open_reader(
        SourceSpec.from_frames([np.zeros((8, 8, 3), np.uint8)])))
    for n in range(5000):
        cap._event("attempt", n=n)
    got = [e["n"] for e in cap.events]
    first, last = capture.EVENTS_FIRST, capture.EVENTS_LAST
    assert got == list(range(first)) + list(range(5000 - last, 5000))
    assert cap.events_left_out == 5000 - first - last


def test_reconnect_attempts_wait_at_most_reconnect_max_wait(caplog) -> None:
    """A camera that went away and does not come back is retried with a backoff that doubles up to
    --reconnect-max-wait and stays there (0.5, 1, 1, ... s here), not past it. The camera sent one
    frame, then its address stopped taking connections (nothing listens on the port)."""
    import logging
    import re

    from tests.camera.conftest import free_port

    spec = parse_source(source=f"rtsp://127.0.0.1:{free_port()}/cam")
    one = SourceSpec.from_frames([frames(1)[0]])
    cap = CaptureThread(spec, open_reader(one), reconnect_max_wait=1.0, open_timeout=2.0)
    caplog.set_level(logging.WARNING, logger="srx")
    waits = lambda: [float(m) for r in caplog.records  # noqa: E731
                     for m in re.findall(r"^reconnect attempt \d+ to .* failed .*; next in ([\d.]+) s$", r.getMessage())]
    cap.start()
    try:
        wait_until(lambda: len(waits()) >= 4, 30, "four failed reconnect attempts")
    finally:
        cap.stop()
    assert waits()[:4] == [capture.RECONNECT_FIRST_WAIT, 1.0, 1.0, 1.0], waits()
    assert cap.reconnects == 0 and cap.reconnect_attempts >= 4



def test_a_source_that_drops_soon_after_each_reconnect_is_retried_with_a_growing_wait(tmp_path: Path, caplog) -> None:
    """A camera that hangs up a moment after each connection (at its limit of clients; here a real
    HTTP server whose stream is three seconds of video read at once) was reopened at once, over and
    over: 150 connections and 300 warnings in 3 s. Lost again within FLAP_S of coming back, it now
    waits before the first attempt, twice as long each time in a row (0.5, 1, 2 s here, up to
    --reconnect-max-wait); one that stayed up longer is reopened at once, as before."""
    import logging
    import re

    from tests.camera.conftest import camera_ts, serve_folder

    camera_ts(tmp_path / "clip.ts")
    server = serve_folder(tmp_path)
    caplog.set_level(logging.WARNING, logger="srx")
    flaps = lambda: [(float(m[0]), int(m[1]), float(m[2])) for r in caplog.records  # noqa: E731
                     for m in re.findall(r"stopped again ([\d.]+) s after srx reopened it \((\d+) times? in a row\); "
                                         r"reconnecting in ([\d.]+) s$", r.getMessage())]
    spec = parse_source(source=f"http://127.0.0.1:{server.server_address[1]}/clip.ts")
    cap = CaptureThread(spec, open_reader(spec, 5.0), reconnect_max_wait=2.0, open_timeout=5.0)
    notes = []
    cap.start()
    try:
        wait_until(lambda: len(flaps()) >= 1, 30, "a drop soon after a reconnect")
        notes.append(cap.outage_note())  # while it waits before the attempt
        wait_until(lambda: len(flaps()) >= 4, 30, "four drops in a row")
    finally:
        cap.stop()
        server.shutdown()
        server.server_close()
    assert [(n, wait) for _, n, wait in flaps()[:4]] == [(1, 0.5), (2, 1.0), (3, 2.0), (4, 2.0)], flaps()
    assert all(back < capture.FLAP_S for back, _, _ in flaps())
    assert cap.reconnects <= 6, f"{cap.reconnects} reconnects: reopened at once"
    assert re.fullmatch(r"dropped 1 time soon after it came back: reconnecting in [01] s", notes[0]), notes
    # the first loss, after the source had been up since the start, is retried at once
    assert "stopped; reconnecting" in caplog.records[0].getMessage(), caplog.records[0].getMessage()


def test_a_source_that_ends_inside_its_connect_backlog_still_shows_its_newest_frame(tmp_path: Path) -> None:
    """A camera that hangs up before srx's reads ever wait for it (a trial's relay closed 2 s after
    PLAY, about as long as srx's open took): every frame came at once after the open and was skipped
    as stale, so nothing was ever shown (189 in, 0 out). The newest of them is now shown when the
    source ends there; the rest stay stale."""
    import av

    from tests.camera.conftest import camera_ts, serve_folder

    camera_ts(tmp_path / "clip.ts")
    last = list(av.open(str(tmp_path / "clip.ts")).decode(video=0))[-1].to_ndarray(format="bgr24")
    server = serve_folder(tmp_path)  # the whole stream at once, then the connection closes
    spec = parse_source(source=f"http://127.0.0.1:{server.server_address[1]}/clip.ts")
    cap = CaptureThread(spec, open_reader(spec, 5.0), buffer=30, reconnect_max_wait=30.0, open_timeout=5.0)
    cap.start()
    try:
        got = cap.get(timeout=20)
    finally:
        cap.stop()
        server.shutdown()
        server.server_close()
    assert got is not None and np.array_equal(got.image, last), "the newest frame of the backlog"
    assert cap.stale >= 25 and cap.frames_read >= cap.stale + 1

def test_link_lag_follows_a_slow_link_and_forgives_a_slow_camera_clock() -> None:
    """LinkLag, frame by frame: frames in step with the camera's clock are on time; frames a link
    delivers slower than the stream trail it by what they lost (less the frame interval a decoder
    holds a frame for); the backlog handed over at once brings it back; a camera that lowers its rate
    to a frame in 3 s, each frame out of the decoder when the next comes in, is not late (a re-check
    trial: 5.8 s); a camera clock 0.05 % slower than the box's (crystals differ) is no lag even over
    hours; a clock that goes back, or no times at all, change nothing."""
    from srx.camera.capture import LinkLag

    lag, t, pos = LinkLag(), 100.0, 5.0
    for _ in range(50):  # in step: 10 fps
        t, pos = t + 0.1, pos + 0.1
        assert lag.update(t, pos) < 1e-6
    for _ in range(20):  # a link at a third of the stream's rate: each frame 0.2 s later than the one before
        t, pos = t + 0.3, pos + 0.1
        lag.update(t, pos)
    assert 3.8 < lag.lag < 4.0, lag.lag
    for _ in range(40):  # the link recovers and hands over its backlog (4 s of the stream) at once
        t, pos = t + 0.001, pos + 0.1
        lag.update(t, pos)
    assert lag.lag < 0.1 and 3.8 < lag.worst < 4.0, (lag.lag, lag.worst)
    before = lag.lag
    assert abs(lag.update(t + 0.1, pos - 30.0) - before) < 1e-3  # the camera restarted its clock: as on time
    assert lag.update(t + 0.2, None) == lag.lag  # no time: as it was
    still, t, pos = LinkLag(), 0.0, 0.0
    for _ in range(50):  # 10 fps, each frame out when the next comes in
        t, pos = pos + 0.2, pos + 0.1
        still.update(t, pos)
    for _ in range(10):  # a still scene: a frame every 3 s, out 3 s after its time
        pos += 3.0
        still.update(pos + 3.0, pos)
    assert still.worst < 0.2, still.worst
    slow, t, pos = LinkLag(), 0.0, 0.0
    for _ in range(36_000):  # an hour at 10 fps of a camera whose clock runs 0.05 % slow
        t, pos = t + 0.1, pos + 0.1 * 0.9995
        slow.update(t, pos)
    assert slow.worst < 0.01, slow.worst


def test_a_stalled_source_that_is_reconnected_is_said_back_once(monkeypatch, caplog) -> None:
    """A live source silent past --open-timeout (stalled, said) whose read then gives up and which is
    reconnected: "reconnected to ..." says it is back; "sends frames again" after it said it twice (a
    bad-link trial)."""
    import logging

    from srx.camera.sources import FrameReader

    class Silent(FrameReader):  # two frames, then a read that waits past the timeout and fails
        fps = 10.0

        def __init__(self) -> None:
            self.n = 0

        def read(self):
            self.n += 1
            if self.n <= 2:
                return np.zeros((8, 8, 3), np.uint8)
            time.sleep(0.6)
            return None

    class Back(FrameReader):
        fps = 10.0

        def read(self):
            time.sleep(0.1)
            return np.zeros((8, 8, 3), np.uint8)

    monkeypatch.setattr(capture, "open_reader", lambda spec, timeout: Back())
    caplog.set_level(logging.WARNING, logger="srx")
    cap = CaptureThread(SourceSpec("url", "rtsp://cam/live"), Silent(), open_timeout=0.3).start()
    try:
        deadline = time.monotonic() + 10
        while cap.reconnects == 0 or cap.frames_read < 6:
            assert time.monotonic() < deadline, caplog.text
            cap.get(0.05)
            _ = cap.connected  # what the stream loop asks: says the stall
    finally:
        cap.stop()
    said = [r.getMessage() for r in caplog.records]
    assert any("sent no frame for" in m for m in said) and any(m.startswith("reconnected to") for m in said), said
    assert not any("sends frames again" in m for m in said), said


def test_the_status_line_says_when_a_cameras_frames_come_late() -> None:
    class Late:  # an RTSP capture whose frames come 12.3 s behind the camera's clock
        frames_read, dropped, skipped, stale, damaged, reconnects, state, lag, lag_s = 10, 0, 0, 0, 0, 0, "up", object(), 12.34

        def recent_fps(self) -> float:
            return 3.3

    stats = StreamStats()
    stats.capture = Late()
    assert stats.live_line().endswith("latency p50/p95 -  LATE 12.3 s"), stats.live_line()
    Late.lag_s = 1.0
    stats.published = None
    assert "LATE" not in stats.live_line()
