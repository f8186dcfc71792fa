"""Several sources in one process with real parts: files of different sizes (one ends early), a dead
URL that keeps reconnecting, per-source recordings, the index page and MJPEG paths over real HTTP
and in a real headless Chromium, per-source numbers, and a model backend that goes away."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from srx.camera.multi import NamedSource, default_name, parse_sources, split_name, stream_many
from srx.camera.multi_server import MultiMjpegServer, multi_stats
from srx.camera.outputs import recording_output
from srx.camera.server import BOUNDARY
from srx.camera.sources import SourceSpec, parse_source
from srx.camera.stats import StreamStats
from srx.cli import app
from srx.errors import SrxError
from srx.runtime.base import Runner, RunnerUnavailable
from tests.camera.conftest import ThumbnailSink, frames, free_port, in_background, wait_until
from tests.camera.test_rtsp import _gst_rtsp_available
from tests.camera.test_stream import read_video, write_ffv1
from tests.conftest import skip_or_fail

BACKGROUND = (30, 30, 30)  # the page's #1e1e1e, BGR


def test_names_and_bad_input(tmp_path: Path) -> None:
    clip = tmp_path / "lobby.mkv"
    write_ffv1(clip, frames(2))
    assert split_name("door=rtsp://h/x") == ("door", "rtsp://h/x")
    assert split_name("rtsp://h/x?a=1") == (None, "rtsp://h/x?a=1")
    assert split_name("videotestsrc pattern=ball ! appsink")[0] is None
    # an IP camera's pipeline sets its URL in its first element: a pipeline, not a name (trial jetgst)
    rtspsrc = "rtspsrc location=rtsp://admin:pw@10.0.0.5/live latency=200 ! rtph264depay ! avdec_h264 ! appsink"
    assert split_name(rtspsrc) == (None, rtspsrc)
    assert split_name(f"door={rtspsrc}") == ("door", rtspsrc)
    assert [n.spec.kind for n in parse_sources(sources=[rtspsrc, "souphttpsrc location=http://h/x.mjpg ! appsink"])] \
        == ["gstreamer", "gstreamer"]
    named = parse_sources(["0", "gate=2"], [str(clip), f"back={clip}", "rtsp://u:pw@10.0.0.5:554/live/main"], demo=True)
    assert [n.name for n in named] == ["cam0", "gate", "lobby", "back", "10.0.0.5-main", "demo"]
    assert named[3].spec.target == clip
    assert default_name(SourceSpec("gstreamer", "a ! b"), 7) == "pipeline7"
    # an IPv6 camera is named by its address too (it was only 'clip'); a password's '@' is not the host's
    assert default_name(SourceSpec("url", "rtsp://[fe80::a1]:8554/clip"), 0) == "ip6-fe80-a1-clip"
    assert default_name(SourceSpec("url", "rtsp://[::1]:8554/clip"), 0) == "ip6-1-clip"  # was "1-clip"
    # a name srx cannot take is said to be the name (it was "unsupported URL scheme 'tür ost=rtsp'")
    with pytest.raises(SrxError, match=r"source name 'Tür Ost' \(in Tür Ost=rtsp://admin:\*\*\*@h/x\): expected ASCII letters"):
        parse_sources(sources=["Tür Ost=rtsp://admin:pw@h/x"])
    assert default_name(SourceSpec("url", "rtsp://admin:Ab@S9@10.0.0.5/live/main"), 0) == "10.0.0.5-main"
    # a DVR's login in the path never names the source (nor the recordings named after it)
    assert default_name(SourceSpec("url", "rtsp://10.0.0.5:554/user=admin&password=S3cr3t&channel=1.sdp"), 0) == "10.0.0.5"
    with pytest.raises(SrxError, match="two sources are named 'lobby'"):
        parse_sources([], [str(clip), str(clip)])
    with pytest.raises(SrxError, match="expected a device index"):
        parse_sources(["front"], [])
    runner = CliRunner()
    cases = {
        "two sources are named 'x'": ["--source", f"x={clip}", "--source", f"x={clip}"],
        "same file for all 2 sources; put {name}": ["--source", str(clip), "--demo", "--output", str(tmp_path / "o.mkv")],
        "--buffer must be at least 1 frame, got -1": ["--source", str(clip), "--demo", "--buffer", "-1"],
    }
    for message, args in cases.items():
        res = runner.invoke(app, ["stream", *args, "--backend", "torch", "--no-window", "-q"])
        assert res.exit_code == 1 and message in res.output, res.output
        assert len([line for line in res.output.splitlines() if line.strip()]) == 1, res.output


def _get(url: str) -> bytes:
    return urllib.request.urlopen(url, timeout=10).read()


def _first_mjpeg_part(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        assert resp.readline().strip() == f"--{BOUNDARY}".encode()
        headers = {}
        while (line := resp.readline().strip()):
            k, v = line.decode().split(":", 1)
            headers[k.lower()] = v.strip()
        return resp.read(int(headers["content-length"]))


def _chromium_shot(url: str, tmp_path: Path, size: tuple[int, int]) -> np.ndarray:
    import cv2

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        skip_or_fail("no chromium on this machine (CI installs it via .ci/system-packages.sh)")
    shot = tmp_path / "index.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}",
           "--timeout=4000", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert shot.exists(), proc.stderr[-2000:]
    return cv2.imread(str(shot))


def test_three_files_and_a_dead_url(tmp_path: Path, make_upscaler, caplog) -> None:
    """The issue's scenario: files of three sizes (one much shorter) and a URL that never answers, all
    at once with --no-drop, recorded per source and served on one page."""
    import cv2

    counts = {"small": 9, "wide": 4, "tall": 7}  # "wide" ends early
    sizes = {"small": (24, 32), "wide": (20, 44), "tall": (36, 28)}
    inputs = {}
    for i, (name, n) in enumerate(counts.items()):
        write_ffv1(tmp_path / f"{name}.mkv", frames(n, *sizes[name], seed=10 * i))
        inputs[name] = read_video(tmp_path / f"{name}.mkv")
    dead = f"http://127.0.0.1:{free_port()}/cam"
    named = parse_sources([], [str(tmp_path / f"{n}.mkv") for n in counts] + [f"door={dead}"])
    assert [n.name for n in named] == ["small", "wide", "tall", "door"]
    upscaler = make_upscaler(2)
    stats = {n.name: StreamStats() for n in named}
    web = MultiMjpegServer("127.0.0.1:0", [n.name for n in named], stats=multi_stats(stats), title="srx test cameras")
    outputs = {n.name: [recording_output(tmp_path / "out" / f"{n.name}.mkv"), web.channel(n.name)] for n in named}
    stop = threading.Event()
    thread, result = in_background(lambda: stream_many(
        named, upscaler, outputs, shared_outputs=[web], drop=False, stats=stats, stop_event=stop,
        reconnect_max_wait=0.5, open_timeout=3.0))
    try:
        wait_until(lambda: all(stats[n].frames_out == c for n, c in counts.items()) or "error" in result, 90,
                   "every file frame upscaled")
        wait_until(lambda: stats["door"].nosignal >= 2, 30, "no-signal frames for the dead URL")
        live = json.loads(_get(web.url + "stats"))
        assert live["total"]["sources"] == 4 and live["sources"]["door"]["connected"] is False
        metrics = _get(web.url + "metrics").decode()  # what a Prometheus server scrapes: the same numbers
        assert 'srx_source_up{source="door"} 0' in metrics
        for name, n in counts.items():
            assert f'srx_frames_upscaled_total{{source="{name}"}} {float(n)}' in metrics
        page = _get(web.url).decode()
        for name in stats:
            assert f'src="/cam/{name}/stream.mjpg"' in page
            jpeg = _first_mjpeg_part(web.url + f"cam/{name}/stream.mjpg")
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            h, w = sizes.get(name, (180, 320))
            assert img.shape[:2] == ((2 * h, 2 * w) if name in sizes else (360, 640))  # door: no-signal frames
            assert _get(web.url + f"cam/{name}/frame.jpg")[:2] == b"\xff\xd8"
        assert "/cam/door/stream.mjpg" in _get(web.url + "cam/door/").decode()
        with pytest.raises(urllib.error.HTTPError):
            _get(web.url + "cam/nobody/stream.mjpg")
        shot = _chromium_shot(web.url, tmp_path, (1000, 700))
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    # the page: the four camera images side by side at their natural sizes under the title line
    assert shot.shape[:2] == (700, 1000)
    ink = np.abs(shot.astype(int) - BACKGROUND).max(axis=2) > 12
    top = int(np.nonzero(ink[:, 250:870].mean(axis=1) > 0.9)[0].min())  # the door's 640-wide frame's top row
    band = ink[top + 5 : top + 35].any(axis=0)  # every image (>= 40 px high), no caption text yet
    # four images side by side at their natural sizes (2x the inputs; door: a 640x360 no-signal frame),
    # 8 px of page between them (the grid's padding and gap)
    spans = [(8, 72), (80, 168), (176, 232), (240, 880)]
    for a, b in spans:
        assert band[a + 2 : b - 2].mean() > 0.9, (a, b, np.flatnonzero(band).tolist())
    for (_, b), (a, _) in zip(spans, spans[1:]):
        assert not band[b + 2 : a - 2].any(), (b, a, np.flatnonzero(band).tolist())
    assert not band[884:].any()
    # per-source results
    assert summary.stopped_by == "interrupted" and set(summary.sources) == {"small", "wide", "tall", "door"}
    for name, n in counts.items():
        s = summary.sources[name]
        assert (s.frames_in, s.frames_out, s.dropped, s.stopped_by) == (n, n, 0, "end-of-input")
        assert not s.alone  # the model calls are shared: no keep-up verdict from one source's stage times
        back = read_video(tmp_path / "out" / f"{name}.mkv")
        assert len(back) == n  # every live source's recording has the right frame count
        for got, img in zip(back, inputs[name]):
            assert np.abs(got.astype(int) - upscaler.upscale(img)).max() <= 1
    door = summary.sources["door"]
    assert door.frames_out == 0 and door.nosignal_frames >= 2 and door.reconnect_attempts >= 1
    # no real frame ever came, so no recording opened at the placeholder's made-up size; the log says so
    assert not (tmp_path / "out" / "door.mkv").exists() and "door.mkv not written: no frame was upscaled" in caplog.text
    assert summary.total["frames_out"] == sum(counts.values())
    assert sum(size * n for size, n in summary.batches.items()) == sum(counts.values())
    assert "door" in summary.format() and "model calls" in summary.format()


def test_past_four_cameras_the_page_loads_each_frame_and_shows_no_broken_image(tmp_path: Path, make_upscaler) -> None:
    """Five cameras: the index refreshes each camera's frame.jpg (browsers open six connections to a
    host), and an image gets its address only once a frame has loaded, so a camera still opening (whose
    frame.jpg answers 503) shows its name, not a broken image. In a real headless Chromium the five
    frames come up side by side."""
    names = [f"cam{i}" for i in range(5)]
    named = [NamedSource(n, SourceSpec.from_frames(frames(1, 24, 32, seed=i) * 400, fps=10.0)) for i, n in enumerate(names)]
    stats = {n: StreamStats() for n in names}
    web = MultiMjpegServer("127.0.0.1:0", names, stats=multi_stats(stats), title="five")
    page = _get(web.url).decode()
    for n in names:
        assert f'<img data-frame="/cam/{n}/frame.jpg" alt="">' in page and f'src="/cam/{n}/frame.jpg"' not in page
    stop = threading.Event()
    thread, result = in_background(lambda: stream_many(named, make_upscaler(2), {n: [web.channel(n)] for n in names},
                                                       shared_outputs=[web], stats=stats, stop_event=stop))
    try:
        wait_until(lambda: all(st.frames_out >= 3 for st in stats.values()) or "error" in result, 60, "every camera's frames")
        shot = _chromium_shot(web.url, tmp_path, (600, 300))
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in result, result.get("error")
    ink = np.abs(shot.astype(int) - BACKGROUND).max(axis=2) > 12
    rows = np.nonzero(ink[:, [40 + 72 * i for i in range(5)]].all(axis=1))[0]  # rows crossing all five 64x48 frames
    assert len(rows) >= 40, np.nonzero(ink.any(axis=1))[0].tolist()
    band = ink[rows[0]:rows[0] + 40].all(axis=0)
    for i in range(5):  # 64 px wide each, 8 px apart, from the page's 8 px margin
        a = 8 + i * 72
        assert band[a + 2:a + 62].all(), (i, np.flatnonzero(band).tolist())


def test_a_looping_file_moved_away_is_down_in_stats_and_metrics(tmp_path: Path, make_upscaler, caplog) -> None:
    """The soak trial's case: several --loop file sources served with --serve, and one file moved away
    mid-run. That source stops (the others go on) saying its file is gone, and /stats and /metrics say
    it is down for good: connected false, state "failed", srx_source_up 0 (they said 1 forever, with
    frames_out stuck, so the README's alert `srx_source_up == 0` never fired)."""
    for name, seed in (("a", 0), ("b", 7)):
        write_ffv1(tmp_path / f"{name}.mkv", frames(4, 24, 32, seed=seed), fps=25.0)
    named = parse_sources([], [str(tmp_path / "a.mkv"), str(tmp_path / "b.mkv")], loop=True)
    stats = {n.name: StreamStats(window=3) for n in named}  # latency p50/p95 of each one's last 3 frames
    web = MultiMjpegServer("127.0.0.1:0", [n.name for n in named], stats=multi_stats(stats))
    outputs = {n.name: [web.channel(n.name)] for n in named}
    stop = threading.Event()
    thread, result = in_background(lambda: stream_many(named, make_upscaler(2), outputs, shared_outputs=[web],
                                                       stats=stats, stop_event=stop))
    try:
        wait_until(lambda: all(st.frames_out >= 6 for st in stats.values()) or "error" in result, 60,
                   "both files to loop")
        live = json.loads(_get(web.url + "stats"))["sources"]
        assert [live[n]["connected"] for n in "ab"] == [True, True]
        (tmp_path / "a.mkv").rename(tmp_path / "moved.mkv")
        wait_until(lambda: stats["a"].capture.error is not None or "error" in result, 30, "source a to fail")
        out_b = stats["b"].frames_out
        wait_until(lambda: stats["b"].frames_out >= out_b + 4 or "error" in result, 60, "source b to go on")
        live = json.loads(_get(web.url + "stats"))["sources"]
        metrics = _get(web.url + "metrics").decode()
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in result, result.get("error")
    assert live["a"]["connected"] is False and live["b"]["connected"] is True
    assert 'srx_source_up{source="a"} 0' in metrics and 'srx_source_up{source="b"} 1' in metrics
    assert (live["a"]["state"], live["b"]["state"]) == ("failed", "up")
    assert live["a"]["fps_in"] == 0.0 and live["b"]["fps_in"] > 0  # a source that is gone delivers nothing now
    gone = f"file {tmp_path / 'a.mkv'} was moved or deleted during the run; it cannot be looped again"
    assert f"source a stopped: {gone} (the others go on)" in caplog.text and "decode" not in caplog.text
    summary = result["summary"]
    assert summary.sources["a"].stopped_by == "error" and gone in summary.sources["a"].timing_note
    line_b = next(line for line in summary.format().splitlines() if line.startswith("  b: "))
    assert summary.sources["b"].latency_window == 3 and line_b.endswith("(p50/p95 of the last 3 frames)"), line_b


def test_batches_form_per_size_and_a_failing_source_does_not_stop_others(make_upscaler) -> None:
    calls: list[tuple[int, ...]] = []

    class Counting(Runner):
        backend = "counting"

        def __init__(self, inner: Runner) -> None:
            super().__init__("counting " + inner.name)
            self.inner, self.scale, self.config, self.kernel_sizes = inner, inner.scale, inner.config, inner.kernel_sizes

        def activate_impl(self) -> None:
            self.inner.activate()

        def deactivate_impl(self) -> None:
            self.inner.deactivate()

        def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
            calls.append(lr_y.shape)
            return self.inner.infer(lr_y)

    def broken():
        yield from frames(3, 24, 32, seed=5)
        raise OSError("camera unplugged")

    upscaler = make_upscaler(2)
    upscaler.runner = Counting(upscaler.runner)
    named = [NamedSource("a", SourceSpec.from_frames(frames(6, 24, 32))),
             NamedSource("b", SourceSpec.from_frames(frames(6, 24, 32, seed=1))),
             NamedSource("c", SourceSpec.from_frames(frames(6, 30, 20, seed=2))),
             NamedSource("bad", SourceSpec.from_frames(broken))]
    sinks = {n.name: [ThumbnailSink()] for n in named}
    summary = stream_many(named, upscaler, sinks, drop=False)
    assert [summary.sources[n].frames_out for n in "abc"] == [6, 6, 6]
    bad = summary.sources["bad"]
    assert bad.stopped_by == "error" and "camera unplugged" in bad.timing_note and bad.frames_out == 3
    assert all(len(s[0].thumbs) == summary.sources[n].frames_out and s[0].closed for n, s in sinks.items())
    # one model call per frame size per tick: 24x32 frames of a, b (and bad) together, 30x20 alone
    assert max(shape[0] for shape in calls) >= 2
    assert sum(shape[0] for shape in calls) == 6 * 3 + 3
    assert sum(size * n for size, n in summary.batches.items()) == 6 * 3 + 3


def test_backend_outage_gives_bicubic_frames_then_the_model_again(make_upscaler) -> None:
    class Flaky(Runner):
        """The real model, unavailable for calls 3..6 (a server restarting)."""

        backend = "flaky"

        def __init__(self, inner: Runner) -> None:
            super().__init__("flaky " + inner.name)
            self.inner, self.scale, self.config, self.kernel_sizes = inner, inner.scale, inner.config, inner.kernel_sizes
            self.n = 0

        def activate_impl(self) -> None:
            self.inner.activate()

        def deactivate_impl(self) -> None:
            self.inner.deactivate()

        def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
            self.n += 1
            if 3 <= self.n <= 6:
                raise RunnerUnavailable("Triton server 127.0.0.1:1 is unavailable (test)")
            return self.inner.infer(lr_y)

    upscaler = make_upscaler(2)
    upscaler.runner = Flaky(upscaler.runner)
    sink = ThumbnailSink()
    named = [NamedSource("one", SourceSpec.from_frames(frames(1, 24, 32) * 200, fps=10.0))]
    summary = stream_many(named, upscaler, {"one": [sink]}, max_frames=40, reconnect_max_wait=0.2)
    inf = summary.inference
    assert inf["outages"] == 1 and inf["failed_attempts"] == 4 and inf["fallback_frames"] >= 4
    assert summary.sources["one"].frames_out == 40 and len(sink.thumbs) == 40  # outputs never stopped
    # the shared backend's outage is in the JSON too, timed from the run's start (it was left out)
    events = summary.to_dict()["inference"]["events"]
    assert [e["event"] for e in events] == ["backend-lost", "backend-back"] and 0 <= events[0]["t"] <= events[1]["t"]
    assert summary.inference["events_left_out"] == 0
    # the single-source loop does the same
    upscaler.runner.n = 0
    from srx.camera.stream import stream

    live = StreamStats()
    seen = []  # what /stats and /metrics said of the backend at each frame: it went, and came back
    one = stream(SourceSpec.from_frames(frames(1, 24, 32) * 200, fps=10.0), upscaler, [ThumbnailSink()],
                 max_frames=40, reconnect_max_wait=0.2, stats=live,
                 on_frame=lambda *_: seen.append((live.snapshot()["backend_up"], live.fallback_frames)))
    assert one.fallback_frames >= 4 and one.frames_out == 40 and live.fallback_frames == one.fallback_frames
    assert seen[0] == (True, 0) and (False, 1) in seen and seen[-1] == (True, one.fallback_frames), seen
    assert [e["event"] for e in one.events if e["event"].startswith("backend")] == ["backend-lost", "backend-back"]


def test_cli_two_sources_json_per_source(tmp_path: Path, tiny_checkpoint) -> None:
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    write_ffv1(a, frames(3, 20, 24))
    write_ffv1(b, frames(2, 16, 20, seed=4))
    res = CliRunner().invoke(app, [
        "stream", "--source", str(a), "--source", f"second={b}", "--no-drop", "-w", str(tiny_checkpoint(2)),
        "--scale", "2", "--backend", "onnxruntime", "--threads", "1", "--output", str(tmp_path / "rec" / "{name}.mkv"),
        "--json-summary", str(tmp_path / "sum-{name}.json"), "--no-window", "-q"])
    assert res.exit_code == 0, res.output
    assert "2 sources x2" in res.output and "  a: " in res.output and "  second: " in res.output
    # each source's line says why it stopped in words, as a one-source summary does (not 'end-of-input')
    assert ", stopped at the end of the input: 3 in, 3 out" in res.output and "end-of-input" not in res.output, res.output
    sa = json.loads((tmp_path / "sum-a.json").read_text())
    sb = json.loads((tmp_path / "sum-second.json").read_text())
    assert (sa["frames_out"], sb["frames_out"], sa["output_size"], sb["output_size"]) == (3, 2, [48, 40], [40, 32])
    assert len(read_video(tmp_path / "rec" / "a.mkv")) == 3 and len(read_video(tmp_path / "rec" / "second.mkv")) == 2


def test_json_summaries_onto_a_full_disk_are_one_error_line_and_the_failed_recordings_another(
        tmp_path: Path, small_disk, tiny_checkpoint) -> None:
    """Several sources' --json-summary on a full disk: a traceback after the summary (camera/multi.py
    write_json), the run's error line lost. Now every source's file that can be is written, those that
    cannot are named in one error line, and the failed recordings in the next."""
    from tests.conftest import fill_disk

    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    write_ffv1(a, frames(3, 60, 80))  # PNG frames over stdio's buffer: OpenCV reports no failure for a smaller one
    write_ffv1(b, frames(2, 48, 64, seed=4))
    disk = small_disk(64)
    fill_disk(disk)
    res = CliRunner().invoke(app, [
        "stream", "--source", str(a), "--source", str(b), "--no-drop", "-w", str(tiny_checkpoint(2)), "--scale", "2",
        "--backend", "torch", "--threads", "1", "--output", str(disk / "{name}") + "/",
        "--json-summary", str(disk / "sum-{name}.json"), "--no-window", "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, res.output
    full = "no space left on device (the disk is full)"
    assert errors[0] == f"error: cannot write {disk / 'sum-a.json'}: {full}; cannot write {disk / 'sum-b.json'}: {full}"
    assert errors[1].startswith("error: 2 outputs failed: ")
    assert res.output.index("stream summary: 2 sources") < res.output.index("error:")


def test_a_camera_not_plugged_in_is_retried_while_the_others_run(tmp_path: Path, tiny_checkpoint, caplog) -> None:
    """Among several sources, a camera device that does not exist (yet) is retried in the background,
    as a URL that does not answer is; alone, it is one error line (tests/test_bad_input.py)."""
    from tests.conftest import silent_video

    if Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    clip = silent_video(tmp_path / "gate.avi", 6, (48, 32))
    summary = tmp_path / "summary.json"
    res = CliRunner().invoke(app, ["stream", "--camera", "7", "--source", str(clip), "-w", str(tiny_checkpoint(3)),
                                   "--backend", "torch", "--no-window", "-q", "--duration", "3s",
                                   "--reconnect-max-wait", "1", "--output", str(tmp_path / "{name}.mkv"),
                                   "--json-summary", str(summary)])
    assert res.exit_code == 0, res.output
    assert "source cam7 (camera 7) did not open: no camera at index 7: /dev/video7 does not exist" in caplog.text
    assert "retrying in the background (the others run meanwhile)" in caplog.text
    got = json.loads(summary.read_text())["sources"]
    assert got["gate"]["frames_out"] == 6 and got["cam7"]["frames_out"] == 0 and got["cam7"]["reconnect_attempts"] >= 1
    assert (tmp_path / "gate.mkv").exists() and not (tmp_path / "cam7.mkv").exists()


def test_the_others_start_without_waiting_for_a_camera_that_is_slow_to_open(tmp_path: Path, make_upscaler) -> None:
    """A camera whose address takes the connection and never answers (a box that hangs) costs its own
    --open-timeout, not the others': a file upscales to its end while that camera is still opening
    ("starting" in /stats, no no-signal frames, no stall), and a stop during the open ends the run
    at once. Before, every source waited for the slowest to open."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4)  # the kernel accepts the connection; nobody ever reads or answers
    port = hole.getsockname()[1]
    clip = tmp_path / "gate.mkv"
    write_ffv1(clip, frames(6, 24, 32))
    named = [NamedSource("hung", parse_source(source=f"rtsp://127.0.0.1:{port}/live")),
             NamedSource("gate", parse_source(source=str(clip)))]
    stats: dict[str, StreamStats] = {}
    stop = threading.Event()
    sinks = {"hung": ThumbnailSink(), "gate": ThumbnailSink()}
    thread, result = in_background(lambda: stream_many(named, make_upscaler(2), {k: [v] for k, v in sinks.items()},
                                                       stats=stats, stop_event=stop,
                                                       open_timeout=120.0, nosignal_fps=20.0))
    try:
        wait_until(lambda: "error" in result or ("gate" in stats and stats["gate"].frames_out == 6), 60,
                   "the file's frames, upscaled while the other source opens")
        assert "error" not in result, result.get("error")
        hung = stats["hung"].capture
        assert hung is not None and hung.state == "starting" and hung.connected and not hung.stalled
        assert stats["hung"].nosignal == 0 and not sinks["hung"].thumbs
    finally:
        stop.set()
        thread.join(30)  # not the 120 s of the open under way
        hole.close()
    assert not thread.is_alive(), "a stop during a source's first open waited for the open"
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary.stopped_by == "interrupted"
    assert summary.sources["gate"].frames_out == 6 and summary.sources["hung"].frames_out == 0


def test_an_open_under_way_is_not_a_stall(tmp_path: Path) -> None:
    """A source whose first open takes longer than --open-timeout (an RTSP camera that answered gets
    5 s more) is "starting" all that time, not "stalled" with no-signal frames."""
    import socket

    from srx.camera.multi import SourceCapture, _Opening

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4)
    spec = parse_source(source=f"rtsp://127.0.0.1:{hole.getsockname()[1]}/live")
    cap = SourceCapture(spec, _Opening(spec, 60.0), threading.Event(), name="slow", open_timeout=0.2).start()
    try:
        time.sleep(0.6)
        assert cap.state == "starting" and cap.connected and not cap.stalled
    finally:
        cap.stop()
        hole.close()
    assert cap.state == "stopped"


def test_a_camera_that_comes_up_after_the_start_records_at_its_own_rate(tmp_path: Path, make_upscaler, caplog) -> None:
    """A camera that is down when the run starts and comes up later: its .avi recording plays at the
    camera's rate (25 fps here), learnt at its first frame, not at the 10 fps srx assumes for a source
    it has not seen."""
    import cv2

    from srx.camera.recording import VideoFileOutput
    from tests.camera.test_rtsp import RtspServer, clip_to_serve

    clip = clip_to_serve(tmp_path, 100, fps=25.0)
    port = free_port()
    named = [NamedSource("late", parse_source(source=f"rtsp://127.0.0.1:{port}/clip"))]
    stats: dict[str, StreamStats] = {}
    stop = threading.Event()
    rec = VideoFileOutput(tmp_path / "late.avi")
    thread, result = in_background(lambda: stream_many(named, make_upscaler(2), {"late": [rec]}, stats=stats,
                                                       stop_event=stop, reconnect_max_wait=1.0, open_timeout=4.0))
    server = None
    try:
        wait_until(lambda: "error" in result or ("late" in stats and stats["late"].capture is not None
                                                 and stats["late"].capture.reconnect_attempts >= 1), 30,
                   "a first failed attempt at the camera that is down")
        server = RtspServer(clip, port)
        wait_until(lambda: "error" in result or stats["late"].frames_out >= 10, 60, "frames from the camera once up")
    finally:
        stop.set()
        thread.join(30)
        if server is not None:
            server.kill()
    assert "error" not in result, result.get("error")
    cap = cv2.VideoCapture(str(tmp_path / "late.avi"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert fps == 25.0, fps
    # it opened late: no reconnect, no "lost" (it never had a signal to lose), and the summary says so
    late = result["summary"].sources["late"]
    events = [e["event"] for e in late.events]
    assert late.reconnects == 0 and "lost" not in events and "reconnected" not in events and "opened" in events, events
    assert "opened late (rtsp://127.0.0.1" in caplog.text and "reconnected to late" not in caplog.text


def test_at_the_stop_no_source_reads_on_while_another_is_waited_for(tmp_path: Path, make_upscaler) -> None:
    """A camera caught in a reconnect attempt (its address took the connection and never answers) is
    waited for at the stop; meanwhile the other sources read nothing more: no frames counted in and
    dropped after the run ended, and the run's time ends at the stop, not after the wait. Before, the
    sources were stopped one after another and a file read on for the 3 s of that wait."""
    import socket

    port = free_port()  # nothing listens yet: the first open is refused at once
    named = [NamedSource("hung", parse_source(source=f"rtsp://127.0.0.1:{port}/live")),
             NamedSource("gate", SourceSpec.from_frames(frames(1, 24, 32) * 1000, fps=10.0))]
    stats: dict[str, StreamStats] = {}
    stop = threading.Event()
    hole = None
    thread, result = in_background(lambda: stream_many(named, make_upscaler(2), {}, stats=stats, stop_event=stop,
                                                       reconnect_max_wait=1.0, open_timeout=60.0))
    try:
        wait_until(lambda: "error" in result or ("hung" in stats and stats["hung"].capture is not None
                                                 and stats["hung"].capture.reconnect_attempts >= 1), 30,
                   "a refused first attempt")
        hole = socket.socket()
        hole.bind(("127.0.0.1", port))
        hole.listen(4)  # the next attempt is taken and never answered
        n = stats["hung"].capture.reconnect_attempts
        wait_until(lambda: stats["hung"].capture.reconnect_attempts > n, 30, "an attempt that hangs")
        wait_until(lambda: stats["gate"].frames_out >= 10, 30, "the file's frames")
        t_stop = time.monotonic()
        stop.set()
        thread.join(30)
    finally:
        stop.set()
        if hole is not None:
            hole.close()
    assert not thread.is_alive() and "error" not in result, result.get("error")
    gate = result["summary"].sources["gate"]
    assert gate.dropped == 0 and gate.queued_at_stop <= 2, gate.format()
    assert gate.frames_in <= gate.frames_out + 2, gate.format()
    assert result["summary"].wall_s < t_stop - stats["gate"].t_start + 1.0, result["summary"].wall_s


def test_a_camera_that_never_opened_says_so_and_why_in_the_summary(tmp_path: Path, tiny_checkpoint, caplog) -> None:
    """A camera down all the run (nothing listens at its port): its first failure is said once, as
    the first of its attempts (not again at once as "reconnect attempt 1"); its summary line says it
    never opened and the last reason, in --json-summary too; its events have no "lost" (it never had a
    signal to lose). A trial found "0 reconnects after 7 attempts" and nothing else."""
    from tests.conftest import silent_video

    port = free_port()  # nothing listens there
    clip = silent_video(tmp_path / "gate.avi", 6, (48, 32))
    summary = tmp_path / "summary.json"
    res = CliRunner().invoke(app, ["stream", "--source", f"door=rtsp://127.0.0.1:{port}/live", "--source", str(clip),
                                   "-w", str(tiny_checkpoint(3)), "--backend", "torch", "--no-window", "-q",
                                   "--duration", "3s", "--reconnect-max-wait", "1", "--json-summary", str(summary)])
    assert res.exit_code == 0, res.output
    said = [r.getMessage() for r in caplog.records if "door" in r.getMessage()]
    assert said[0].startswith("source door (rtsp://127.0.0.1") and "did not open" in said[0], said
    assert not any(m.startswith("reconnect attempt 1 ") for m in said), said
    assert any(m.startswith("reconnect attempt 2 ") for m in said), said
    door = json.loads(summary.read_text())["sources"]["door"]
    assert door["timing_note"].startswith(f"it never opened: {door['reconnect_attempts']} attempts failed, the last: ")
    assert "Connection refused" in door["timing_note"] and door["reconnect_attempts"] >= 2, door["timing_note"]
    assert "lost" not in [e["event"] for e in door["events"]], door["events"]
    line = next(ln for ln in res.output.splitlines() if ln.startswith("  door: "))
    assert "reconnects after" not in line, line
    assert "    note: it never opened: " in res.output, res.output


def test_a_recording_that_fills_its_disk_stops_alone(tmp_path: Path, tiny_checkpoint) -> None:
    """One camera's recording hits the file-size limit of its disk (a real write error from the OS:
    the process's RLIMIT_FSIZE, as a full disk gives ENOSPC): that recording is closed and named, the
    other camera records to the end, the summary and --json-summary are written, and the run exits 1
    with one line naming the failed output. Once the first write error ended every camera."""
    import os
    import resource
    import signal
    import sys

    from tests.conftest import silent_video

    big = silent_video(tmp_path / "yard.avi", 24, (320, 240))
    small = silent_video(tmp_path / "door.avi", 24, (32, 24))
    rec = tmp_path / "rec"
    limit = 600_000  # bytes a file may have: the yard's lossless frames pass it in a few frames, the door's never

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-m", "srx", "stream", "--source", f"yard={big}", "--source", f"door={small}", "--no-drop",
         "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch", "--threads", "1", "--no-window", "-q",
         "--output", str(rec / "{name}.mkv"), "--json-summary", str(tmp_path / "run.json")],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=limited)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: 1 output failed: recording {rec / 'yard.mkv'}: ")
    assert "the stream goes on without it" in res.stderr and "Traceback" not in res.stderr
    # where the frames up to then are is said (kept under the partial name: a failed recording replaces nothing)
    kept = re.search(r"recorded until then is in (\S+) \(\d+ frames? went to it", res.stderr)
    assert kept and Path(kept[1]).parent == rec and Path(kept[1]).exists()
    assert re.fullmatch(r"\.yard\.partial\.\w{8}\.mkv", Path(kept[1]).name)  # hidden, new each run
    assert len(read_video(rec / "door.mkv")) == 24  # the other camera, whole
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["sources"]["door"]["frames_out"] == 24 and summary["sources"]["yard"]["output_errors"]
    assert summary["output_errors"] == summary["sources"]["yard"]["output_errors"]
    assert "output failed: recording" in res.stdout and "stream summary: 2 sources" in res.stdout


def _clips(tmp_path: Path, fps: float, n: int = 6) -> list[NamedSource]:
    """Three real files of three sizes (a small camera beside two larger ones), `fps` each."""
    named = []
    for name, (h, w), seed in (("small", (24, 32), 0), ("mid", (48, 64), 10), ("large", (72, 96), 20)):
        write_ffv1(tmp_path / f"{name}.mkv", frames(n, h, w, seed=seed), fps=fps)
        named.append(NamedSource(name, SourceSpec("file", tmp_path / f"{name}.mkv")))
    return named


def test_the_total_fps_out_is_the_sources_own_rates_added_up(tmp_path: Path, make_upscaler) -> None:
    """The total fps out is each source's own output rate, added up (as fps in and the status line's
    total): the frames of every source pooled over one span made 3 sources of one frame each 383 fps."""
    upscaler = make_upscaler(2)
    named = _clips(tmp_path, 10.0)
    one = stream_many(named, upscaler, {n.name: [ThumbnailSink()] for n in named}, max_frames=1)
    assert one.total["frames_out"] == 3 and one.total["fps_out"] == 0.0  # one frame each: no rate, as one source says
    assert one.stopped_by == "max-frames" and "stopped after --max-frames" in one.format()
    three = stream_many(named, upscaler, {n.name: [ThumbnailSink()] for n in named}, max_frames=3)
    own = [s.fps_out for s in three.sources.values()]
    assert three.total["frames_out"] == 9 and all(r > 0 for r in own)
    assert three.total["fps_out"] == pytest.approx(sum(own), abs=1e-3)
    assert f"{three.total['fps_out']:.2f} out" in three.format().splitlines()[1]  # the sum, not sum(own) rounded anew


def test_the_total_counts_every_frame_the_sources_read(tmp_path: Path, make_upscaler) -> None:
    """The total line and --json-summary's total add up every count of the sources, so the run's
    frames in are its frames out + dropped + skipped + stale + still queued, as each source's are
    (stale and queued were left at 0 and the total did not add up): an RTSP camera hands over stale
    frames at its connect, and --no-drop files read ahead of the model are still queued at the stop."""
    from tests.camera.test_rtsp import RtspServer, make_clip
    from tests.conftest import CCTV, need_shared

    need_shared(CCTV)
    why = _gst_rtsp_available()
    if why:
        skip_or_fail(why)
    clip = tmp_path / "clip.avi"
    make_clip(clip, frames=100)
    port = free_port()
    server = RtspServer(clip, port)
    try:
        named = [NamedSource("cam", parse_source(source=f"rtsp://127.0.0.1:{port}/clip")),
                 *_clips(tmp_path, 10.0, n=40)]
        run = stream_many(named, make_upscaler(2), {n.name: [ThumbnailSink()] for n in named}, max_frames=6,
                          drop=False, open_timeout=5.0)
    finally:
        server.kill()
    sources, total = run.sources.values(), run.total
    for key in ("frames_in", "frames_out", "dropped", "skipped", "stale", "queued_at_stop", "nosignal_frames"):
        assert total[key] == sum(getattr(s, key) for s in sources), (key, total)
    for counts in [*(vars(s) for s in sources), total]:
        assert counts["frames_in"] == (counts["frames_out"] + counts["dropped"] + counts["skipped"] + counts["stale"]
                                       + counts["queued_at_stop"]), counts
    assert run.sources["cam"].stale >= 1 and total["queued_at_stop"] >= 1, run.format()


def test_why_a_run_of_several_sources_stopped() -> None:
    """The run's reason is the one its sources share; sources that ended or reached --max-frames
    are the end of the input; any other mix says that each stopped (each source's line says why)."""
    from srx.camera.multi import run_end
    from srx.camera.stats import stopped_text

    assert run_end(["outputs-failed"] * 3) == "outputs-failed"
    assert run_end(["error", "error"]) == "sources-failed"
    assert run_end(["max-frames", "max-frames"]) == "max-frames"
    assert run_end(["end-of-input", "max-frames"]) == run_end(["end-of-input"]) == "end-of-input"
    assert run_end(["end-of-input", "outputs-failed"]) == run_end(["error", "outputs-failed"]) == "sources-stopped"
    assert stopped_text("sources-failed") == "stopped when every source had failed"
    assert stopped_text("sources-stopped") == "stopped when every source had stopped (each source's line says why)"


def test_looping_sources_whose_recordings_all_failed_stop_for_that(tmp_path: Path, tiny_checkpoint) -> None:
    """Every camera's recording fails (the file-size limit of a full disk, as in the test above) while
    the sources loop: the run stopped because every output had failed, as one source's run says,
    not 'at the end of the input' (which looping sources never reach)."""
    import os
    import resource
    import signal
    import sys

    from tests.conftest import silent_video

    rec = tmp_path / "rec"
    clips = [silent_video(tmp_path / f"{name}.avi", 4, (320, 240)) for name in ("yard", "gate")]
    limit = 600_000  # bytes a file may have: each recording's lossless frames pass it in a few frames

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-m", "srx", "stream", *(a for c in clips for a in ("--source", str(c))), "--loop", "--no-drop",
         "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch", "--threads", "1", "--no-window", "-q",
         "--output", str(rec / "{name}.mkv"), "--json-summary", str(tmp_path / "run.json")],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=limited)
    assert res.returncode == 1, res.stderr
    assert "stream summary: 2 sources x2 on torch" in res.stdout and "stopped when every output had failed" in res.stdout
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["stopped_by"] == "outputs-failed"
    assert [s["stopped_by"] for s in summary["sources"].values()] == ["outputs-failed"] * 2
    assert "Traceback" not in res.stderr


def test_a_run_that_drops_frames_says_why_for_all_its_sources(tmp_path: Path, tiny_checkpoint) -> None:
    """Sources offering more frames than srx upscales (files at 2000 fps) drop frames; their own lines
    cannot say why (the model calls are shared), so the run says it once, in the summary and as
    total.keep_up in --json-summary, with what helps and the lock-step of the sources."""
    _clips(tmp_path, 2000.0, n=20)  # 500 fps: on a quiet machine a run once dropped a single frame, of one source
    res = CliRunner().invoke(app, [
        "stream", *(a for name in ("small", "mid", "large") for a in ("--source", str(tmp_path / f"{name}.mkv"))),
        "--loop", "--duration", "2s", "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch",
        "--threads", "1", "--no-window", "-q", "--json-summary", str(tmp_path / "run.json")])
    assert res.exit_code == 0, res.output
    total = json.loads((tmp_path / "run.json").read_text())["total"]
    assert total["dropped"] > 0 and total["ticks"] > 0 and total["tick_ms"]["mean"] > 0
    keep_up = total["keep_up"]
    # which verdict depends on this machine's speed: both name the work per tick and the sources' lock-step
    assert ("srx was slower than the sources" in keep_up or "were dropped in slow spells" in keep_up), keep_up
    assert "ms of work per tick" in keep_up or "the mean work per tick" in keep_up
    assert keep_up.endswith("each tick takes one frame of every source), so a small source drops as much as a large one")
    assert f"  {keep_up}" in res.stdout.splitlines()


def _multi(dropped: tuple[int, ...], tick_ms: list[float], sizes: tuple[tuple[int, int], ...] | None = None,
           fps: float | tuple[float, ...] = 10.0, max_fps: tuple[float | None, ...] | None = None):
    """Per-source summaries of a run of len(dropped) files (10 fps, or each its own `fps`), 100 frames read
    each, and its ticks."""
    from srx.camera.stats import Samples, StreamSummary

    sizes = sizes or tuple((480, 360) for _ in dropped)
    sources = {}
    rates = fps if isinstance(fps, tuple) else (fps,) * len(dropped)
    for i, d in enumerate(dropped):
        fps = rates[i]
        sources[f"s{i}"] = StreamSummary(
            source=f"file s{i}.mp4", backend="onnxruntime", scale=3, stopped_by="interrupted", wall_s=10.0,
            frames_in=100, frames_out=100 - d, dropped=d, nosignal_frames=0, fps_in=fps, fps_out=(100 - d) / 10.0,
            latency_ms={}, stage_ms={}, input_size=list(sizes[i]), output_size=None, buffer=2, alone=False,
            source_fps=fps, max_fps=(max_fps or (None,) * len(dropped))[i])
    tick, upscale = Samples(), Samples()
    for ms in tick_ms:
        tick.add(ms)
        upscale.add(ms - 5.0)
    return sources, tick, upscale


def test_the_runs_keep_up_verdict_from_its_own_numbers() -> None:
    """Several sources: the mean work per tick against the time between a source's frames says
    whether srx was slower than the sources, barely kept up, or dropped in slow spells; the lock-step
    is said where sources of different sizes dropped frames; nothing where none was dropped."""
    from srx.camera.multi import run_keep_up

    slow = run_keep_up(*_multi((85, 85, 85), [300.0] * 10, sizes=((480, 360), (240, 180), (640, 480))))
    assert slow == (
        "srx was slower than the sources: 300 ms of work per tick (295 ms of it upscaling one frame of each source) "
        "against 100 ms between a source's frames; they offered 30.0 frames a second in all, 4.5 were upscaled, so "
        "85% of the frames (255) were dropped. To keep up: --max-fps per source (--max-fps NAME=N), fewer sources, a "
        "faster model or backend (srx models, srx bench), or a lower --scale; the sources go in lock-step (each tick "
        "takes one frame of every source), so a small source drops as much as a large one")
    barely = run_keep_up(*_multi((10, 10), [95.0] * 10))
    assert barely.startswith("srx barely kept up with the sources: 95 ms of work per tick (90 ms of it upscaling one "
                             "frame of each source) against 100 ms between a source's frames, which leaves no room "
                             "for slow spells; ") and "lock-step" not in barely  # one size: nothing to say on it
    spells = run_keep_up(*_multi((3, 0), [40.0] * 18 + [400.0] * 2))
    assert spells == ("2% of the frames (3) were dropped in slow spells (work per tick p95 400 ms): the mean work per "
                      "tick (76 ms, one frame of each source) fits the 100 ms between a source's frames. A larger "
                      "--buffer rides such spells out, at the cost of latency")
    # --max-fps 2 on the source that dropped: 500 ms between the frames it was asked for
    capped = run_keep_up(*_multi((0, 40), [300.0] * 10, max_fps=(None, 2.0)))
    assert "in slow spells" in capped and "fits the 500 ms between a source's frames" in capped
    assert run_keep_up(*_multi((0, 0, 0), [300.0] * 10)) == ""
    burst = _multi((3, 0), [40.0] * 18 + [400.0] * 2)
    burst[0]["s0"].dropped_in_bursts = 3  # what a camera handed over at once after a stall: not srx's slow spells
    assert run_keep_up(*burst).startswith("3 of the 3 dropped came in bursts the source handed over at once")
    # a 25 fps and a 5 fps camera both dropping: judged against the faster one's 40 ms, not 200 ms
    mixed = run_keep_up(*_multi((60, 20), [100.0] * 10, fps=(25.0, 5.0)))
    assert mixed.startswith("srx was slower than the sources: 100 ms of work per tick") and "against 40 ms" in mixed, mixed


def test_the_live_line_says_which_camera_has_no_signal() -> None:
    from srx.camera.multi import NamedSource, _Lane, live_line
    from srx.camera.sources import SourceSpec
    from srx.camera.stats import StreamStats

    class Up:  # a capture that delivers
        frames_read, dropped, skipped, stale, damaged, reconnects, state, lag = 10, 0, 0, 0, 0, 0, "up", None

        def recent_fps(self) -> float:
            return 10.0

    class Lost(Up):  # one being reconnected
        frames_read, state = 0, "reconnecting"

    class Opening(Lost):  # one whose first open is under way: not lost, not up yet
        state = "starting"

    names = ("door", "gate", "yard")
    lanes = [_Lane(NamedSource(name, SourceSpec("url", f"rtsp://{name}/live")), [], StreamStats()) for name in names]
    for lane, cap in zip(lanes, (Up(), Lost(), Opening())):
        lane.stats.capture = cap
    line = live_line(lanes, 0.0)
    assert "door 0.0fps d0 p95 - |" in line + " |" and "gate 0.0fps d0 p95 - NO SIGNAL" in line, line
    assert line.endswith("yard 0.0fps d0 p95 - starting"), line
    Up.lag, Up.lag_s = object(), 12.34  # an RTSP source whose frames come late
    lanes[0].stats.capture = Up()
    assert "door 0.0fps d0 p95 - LATE 12.3s" in live_line(lanes, 0.0)


def test_several_sources_out_of_memory_print_the_summary_then_one_error_line(tmp_path: Path, tiny_checkpoint) -> None:
    """As one source's stream: under a real address-space limit, frames too large for the memory left
    end the run with its summary and --json-summary (stopped_by out-of-memory), then one error line
    (several sources gave the error line alone)."""
    import json

    from tests.conftest import assert_one_error_line, run_srx_with_room, silent_video

    weights = tiny_checkpoint()
    silent_video(tmp_path / "a.avi", 3, (2000, 2000))
    silent_video(tmp_path / "b.avi", 3, (2000, 2000))
    res = run_srx_with_room(["stream", "--source", "a.avi", "--source", "b.avi", "-w", str(weights), "--threads", "1",
                             "--no-window", "-q", "--no-drop", "--json-summary", "s.json"], 600 << 20, tmp_path)
    assert res.returncode == 1, res.stderr  # room for the threads of two captures, not for two 6000x6000 outputs
    assert "stream summary: 2 sources" in res.stdout and "stopped when the upscale ran out of memory" in res.stdout
    assert_one_error_line(res.stderr, "out of memory upscaling")
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["stopped_by"] == "out-of-memory" and written["run_error"].startswith("out of memory upscaling")


def test_a_run_that_never_starts_says_only_why(tmp_path: Path, make_upscaler, caplog) -> None:
    """One of several files cannot be decoded: the run does not start, and the one error says why;
    each recording let go of its claim without a 'not written: no frame was upscaled' line of its own
    (one per camera came before the error)."""
    from srx.camera.recording import VideoFileOutput
    from tests.conftest import silent_video

    good = silent_video(tmp_path / "gate.avi", 3, (48, 32))
    junk = tmp_path / "door.avi"
    junk.write_text("not a video\n" * 200)
    sources = [NamedSource("gate", parse_source(source=str(good))), NamedSource("door", parse_source(source=str(junk)))]
    out = tmp_path / "out"
    outputs = {s.name: [VideoFileOutput(out / f"{s.name}.mkv")] for s in sources}
    with pytest.raises(SrxError, match="source door: cannot open file"):
        stream_many(sources, make_upscaler(2), outputs, max_frames=3, open_timeout=1)
    assert "not written" not in caplog.text, caplog.text
    assert not out.exists() or not list(out.iterdir())  # no lock file, no partial, no folder made for them


def test_a_source_that_ends_has_its_recording_finished_while_the_others_run(tmp_path: Path, make_upscaler) -> None:
    """A file among live cameras ends: its recording is finished then (renamed into place, its lock
    let go of), not left a hidden partial until the whole process stops, which for a 24/7 recorder
    is never (a monitoring trial found the demo's segment hidden for 3.5 minutes after it ended)."""
    from srx.camera.recording import VideoFileOutput
    from tests.conftest import synthetic_photo

    imgs = [synthetic_photo(24, 32, seed=i) for i in range(4)]
    sources = [NamedSource("short", SourceSpec.from_frames(imgs, fps=20.0)),
               NamedSource("live", SourceSpec.from_frames(imgs, fps=20.0, loop=True))]
    outputs = {s.name: [VideoFileOutput(tmp_path / f"{s.name}.mkv")] for s in sources}
    stop = threading.Event()
    live: dict = {}
    thread, result = in_background(lambda: stream_many(sources, make_upscaler(2), outputs, stop_event=stop, quiet=True,
                                                       stats=live))
    try:
        wait_until(lambda: (tmp_path / "short.mkv").exists() or "error" in result, 60, "short.mkv finished mid-run")
        assert "error" not in result, result
        assert not list(tmp_path.glob(".short*")), sorted(p.name for p in tmp_path.iterdir())  # no partial, no lock
        assert len(read_video(tmp_path / "short.mkv")) == 4
        status = multi_stats(live)()["sources"]
        assert status["short"]["outputs"][0]["state"] == "closed" and status["short"]["state"] == "ended"
        assert status["live"]["outputs"][0]["state"] == "recording" and thread.is_alive()
    finally:
        stop.set()
        thread.join(60)
    assert result["summary"].sources["short"].stopped_by == "end-of-input" and (tmp_path / "live.mkv").exists()


def test_on_a_terminal_log_lines_start_at_the_left_and_the_status_line_fits(tmp_path: Path, tiny_checkpoint) -> None:
    """A real pseudo-terminal 80 columns wide: the live status line of several sources is cut to the
    width (a longer one wraps, and every redraw scrolled), and a warning that comes while it is shown
    erases it first instead of being written after its text (a trial read `... gate 10.0fps d0 p95
    32msreconnect attempt 4 to door ...`)."""
    import os
    import sys
    import time

    from tests.conftest import REPO, on_terminal

    port = free_port()  # a camera that is down: a warning every attempt
    argv = [sys.executable, "-m", "srx", "stream", "--source", f"door-camera-at-the-gate=rtsp://127.0.0.1:{port}/live",
            "--demo", "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch", "--threads", "1",
            "--no-window", "--duration", "5s", "--reconnect-max-wait", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(OMP_NUM_THREADS="1", SRX_CACHE_DIR=str(tmp_path / "cache"))
    proc, terminal = on_terminal(argv, REPO, env, size=(24, 80))
    raw = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the process ended: the terminal's other end is closed
            break
        if not chunk:
            break
        raw += chunk
    os.close(terminal)
    rc = proc.wait(60)
    text = raw.decode(errors="replace")
    assert rc == 0, text[-2000:]
    drawn = re.findall(r"\r([^\r\n]*?)\x1b\[K", text)
    statuses = [d for d in drawn if "total out" in d]
    assert statuses, text[-2000:]
    assert all(len(d) <= 79 for d in statuses), max(statuses, key=len)
    warnings = [m.start() for m in re.finditer(r"reconnect attempt \d+ to door", text)]
    assert warnings, text[-2000:]
    for at in warnings:  # each at the start of a line: after a newline, or after the status line erased
        assert text[:at].endswith(("\n", "\r\x1b[K")), repr(text[max(0, at - 120):at + 40])
