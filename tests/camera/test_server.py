"""`--serve`: the MJPEG stream, the stats JSON and the page, checked over real HTTP and in a real
headless Chromium (the page must show the frame at its natural size, not just answer 200)."""
from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from srx import __version__
from srx.camera.server import BOUNDARY, MjpegServer, parse_hostport
from srx.camera.sources import SourceSpec
from srx.camera.stats import StreamStats
from srx.camera.stream import stream
from srx.errors import SrxError
from srx.protocol import psnr
from tests.camera.conftest import wait_until
from tests.conftest import assert_one_error_line, skip_or_fail, synthetic_photo

BACKGROUND = (30, 30, 30)  # the page's #1e1e1e, BGR
BAR_DB = 33.0  # served frame vs the model's output: above for the model's frame, below for bicubic


def test_parse_hostport() -> None:
    assert parse_hostport("8080") == ("127.0.0.1", 8080)
    assert parse_hostport(":8080") == ("127.0.0.1", 8080)
    assert parse_hostport("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_hostport("[::1]:9000") == ("::1", 9000)
    assert parse_hostport("[::]:9000") == ("::", 9000)
    for bad in ("host:99999", "::1:9000", "[::1:9000", "::1]:9000"):  # an IPv6 host without its brackets is ambiguous
        with pytest.raises(SrxError, match="expected HOST:PORT"):
            parse_hostport(bad)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _get(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def _web(kind: str, address: str):
    from srx.camera.multi_server import MultiMjpegServer

    return MjpegServer(address, title="srx test") if kind == "one" else MultiMjpegServer(address, ["a", "b"])


def _clip(tmp_path: Path, frames: int = 3) -> Path:
    """A short MJPEG .avi of photos, 64x48 at 10 fps."""
    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(synthetic_photo(48, 64, seed=i))
    writer.release()
    return clip


@pytest.mark.parametrize("kind", ["one", "several"])
def test_ipv6_addresses_are_served(kind: str) -> None:
    """--serve '[::1]:PORT' and '[::]:PORT' (every interface, IPv4 too) serve, as `srx serve --host ::`
    does: the server was IPv4 only, and both failed with 'Address family for hostname not supported'."""
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    local = _web(kind, "[::1]:0")
    try:
        assert local.url == f"http://[::1]:{local.port}/"
        assert _get(local.url + "stats") is not None
    finally:
        local.close()
    anywhere = _web(kind, "[::]:0")
    try:
        for host in ("[::1]", "127.0.0.1"):
            assert _get(f"http://{host}:{anywhere.port}/stats") is not None
    finally:
        anywhere.close()


@pytest.mark.parametrize("kind", ["one", "several"])
@pytest.mark.parametrize("anywhere", ["0.0.0.0", "::"])
def test_a_server_on_every_interface_says_so(kind: str, anywhere: str, caplog) -> None:
    """The start-up line of a server on 0.0.0.0 (or ::) says it listens on every interface, with a
    URL that works here: it said 'serving the stream at http://127.0.0.1:PORT/', so whoever checked
    the log for what is exposed read that the stream was local only."""
    if anywhere == "::" and not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    with caplog.at_level("INFO", logger="srx"):
        web = _web(kind, f"[{anywhere}]:0" if ":" in anywhere else f"{anywhere}:0")
        assert "serving" not in caplog.text  # said once the run begins, not where it is refused after the bind
        for _ in range(2):
            web.started()
    try:
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving ")]
        assert len(lines) == 1, lines
        listen = f"[{anywhere}]:{web.port}" if ":" in anywhere else f"{anywhere}:{web.port}"
        assert f"on every interface of this machine ({listen}, " in lines[0], lines[0]
        assert f" at {web.url} here " in lines[0] and "from other hosts" in lines[0], lines[0]
        assert _get(web.url + "stats") is not None  # the URL given for here works
        assert listen in web.describe()  # the summary's outputs say it too
    finally:
        web.close()


def test_an_address_that_is_not_one_names_the_option_once() -> None:
    with pytest.raises(SrxError) as err:
        MjpegServer("no-such-host.invalid:0")  # .invalid never resolves (RFC 6761)
    assert str(err.value).startswith("cannot serve on no-such-host.invalid:0: ")
    assert str(err.value).count("--serve HOST:PORT") == 1, err.value  # it said '--serve HOST:PORT or --serve HOST:PORT'


@pytest.mark.parametrize("sources", [1, 2])
@pytest.mark.parametrize("why", ["bad port", "port in use"])
def test_a_serve_it_cannot_serve_on_is_refused_before_a_recording_opens(tmp_path: Path, tiny_checkpoint, caplog,
                                                                       why: str, sources: int) -> None:
    """A --serve that cannot be served is one error line, before the recordings open: the run first
    said 'rec1.mp4 not written: no frame was upscaled for it' for each --output, then the --serve error."""
    from typer.testing import CliRunner

    from srx.cli import app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        serve = "127.0.0.1:1800021" if why == "bad port" else f"127.0.0.1:{busy.getsockname()[1]}"
        src = ["--demo"]
        if sources > 1:  # the multi-source run, with its own web server
            src += ["--source", f"b={_clip(tmp_path)}"]
        out = tmp_path / "out"
        out.mkdir()
        pattern = "-{name}" if sources > 1 else ""
        res = CliRunner().invoke(app, ["stream", *src, "-w", str(tiny_checkpoint(2)), "--backend", "torch",
                                       "--threads", "1", "--no-window", "--max-frames", "2", "--serve", serve,
                                       "-o", str(out / f"rec1{pattern}.mp4"), "-o", str(out / f"rec2{pattern}.mkv")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "expected HOST:PORT" if why == "bad port" else "the port is already in use")
    said = res.output + "\n".join(r.getMessage() for r in caplog.records)
    assert "not written" not in said and "WARNING" not in said, said
    assert not list(out.iterdir())  # no recording was opened, partial files included


@pytest.mark.parametrize("kind", ["one", "several"])
def test_the_serving_line_comes_only_with_a_run_that_begins(kind: str, tmp_path: Path, tiny_checkpoint,
                                                            caplog) -> None:
    """A run refused once the server was bound (a source that does not open; a Triton server that is
    down) said 'serving the stream at http://...' before its error, an address that served nothing
    a moment later (a monitoring trial), and with several sources ended in a traceback (the web
    server had no `discard`); a run that begins says it once."""
    from typer.testing import CliRunner

    from srx.cli import app

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once the socket is closed
    clip = _clip(tmp_path)
    src = ["--source", str(clip)] + (["--source", f"b={clip}"] if kind == "several" else [])
    common = ["--threads", "1", "--no-window", "--max-frames", "2", "--serve", "127.0.0.1:0", "-q"]
    if kind == "one":
        refused = ["--source", f"rtsp://127.0.0.1:{port}/live", "--open-timeout", "1", "-w", str(tiny_checkpoint(2)),
                   "--backend", "torch"]
    else:
        pytest.importorskip("tritonclient", reason="the serve extra (tritonclient) is not installed")
        refused = [*src, "--server", f"127.0.0.1:{port}"]
    with caplog.at_level("INFO", logger="srx"):
        res = CliRunner().invoke(app, ["stream", *refused, *common])
    assert_one_error_line(res.output, "cannot open source rtsp://" if kind == "one" else "no Triton server answers")
    said = res.output + "\n".join(r.getMessage() for r in caplog.records)
    assert "serving" not in said, said
    caplog.clear()
    with caplog.at_level("INFO", logger="srx"):
        res = CliRunner().invoke(app, ["stream", *src, "-w", str(tiny_checkpoint(2)), "--backend", "torch", *common])
    assert res.exit_code == 0, res.output
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving ")]
    assert len(lines) == 1 and lines[0].startswith("serving the stream at http://127.0.0.1:" if kind == "one"
                                                   else "serving 2 cameras at http://127.0.0.1:"), lines


def test_several_cameras_served_with_a_recording_it_cannot_write_is_one_error_line(tmp_path: Path) -> None:
    """`--serve` beside an `--output` refused at the start, with several sources: the refusal let go of
    the bound server through `discard`, which the multi-camera server did not have (a traceback)."""
    from typer.testing import CliRunner

    from srx.cli import app

    clip = _clip(tmp_path, 1)
    (tmp_path / "taken").write_text("a file where the recordings' folder would be")
    res = CliRunner().invoke(app, ["stream", "--source", str(clip), "--source", f"b={clip}", "--no-window",
                                   "--serve", "127.0.0.1:0", "-o", str(tmp_path / "taken" / "{name}.mp4")])
    assert_one_error_line(res.output, "cannot write --output")


def test_port_in_use_is_one_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SrxError, match=f"cannot serve on 127.0.0.1:{port}: the port is already in use"):
            MjpegServer(f"127.0.0.1:{port}")


def test_an_address_not_of_this_machine_is_one_error_about_the_address() -> None:
    with pytest.raises(SrxError, match="cannot serve on 192.0.2.1:8080: 192.0.2.1 is not an address of this "
                                       "machine; pick one of its own"):
        MjpegServer("192.0.2.1:8080")  # TEST-NET-1: documentation only, never a local address


class Served:
    """stream() of a still photo (so the served frame is known) to an MjpegServer on a free port."""

    def __init__(self, make_upscaler, photo: np.ndarray) -> None:
        self.upscaler = make_upscaler(2)
        self.photo = photo
        self.expected = self.upscaler.upscale(photo)
        self.stats = StreamStats()
        self.server = MjpegServer("127.0.0.1:0", stats=self.stats.live, title="srx test")
        self.stop = threading.Event()
        spec = SourceSpec.from_frames(lambda: itertools.repeat(photo), fps=10.0)
        self.thread = threading.Thread(target=stream, args=(spec, self.upscaler, [self.server]),
                                       kwargs={"stop_event": self.stop, "stats": self.stats}, daemon=True)
        self.thread.start()
        wait_until(lambda: self.stats.frames_out >= 2, 30, "the first frames")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def served(make_upscaler):
    s = Served(make_upscaler, synthetic_photo(90, 140, seed=3))
    yield s
    s.close()


def test_mjpeg_stream_stats_and_page(served: Served) -> None:
    import cv2

    base = served.server.url
    page = urllib.request.urlopen(base, timeout=5).read().decode()
    assert '<img id="view" src="/stream.mjpg"' in page and "/stats" in page
    stats = json.loads(urllib.request.urlopen(base + "stats", timeout=5).read())
    assert stats["frames_out"] >= 2 and stats["output_size"] == [280, 180]
    with urllib.request.urlopen(base + "stream.mjpg", timeout=5) as resp:
        assert resp.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        jpegs = []
        for _ in range(2):  # two consecutive parts of the live stream
            assert resp.readline().strip() == f"--{BOUNDARY}".encode()
            headers = {}
            while (line := resp.readline().strip()):
                k, v = line.decode().split(":", 1)
                headers[k.lower()] = v.strip()
            assert headers["content-type"] == "image/jpeg"
            jpegs.append(resp.read(int(headers["content-length"])))
            resp.readline()
    # JPEG q90 of the very frame the model made scores ~35 dB against it; a server sending the
    # bicubic enlargement instead would score ~29.6: the bar sits between them
    bicubic = cv2.resize(served.photo, served.expected.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    assert psnr(served.expected, bicubic) < BAR_DB
    for jpeg in jpegs:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == served.expected.shape
        assert psnr(served.expected, img) > BAR_DB
    one = urllib.request.urlopen(base + "frame.jpg", timeout=5)
    assert one.headers["Content-Type"] == "image/jpeg"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(base + "nope", timeout=5)


def test_head_requests_get_the_headers_of_each_endpoint(served: Served) -> None:
    """Uptime checkers and load balancers ask with HEAD: 200 and GET's headers, no body."""
    import http.client

    host, port = served.server.url.split("//")[1].rstrip("/").split(":")
    for path, ctype in (("/", "text/html"), ("/stats", "application/json"), ("/metrics", "text/plain"),
                        ("/frame.jpg", "image/jpeg"), ("/stream.mjpg", "multipart/x-mixed-replace")):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("HEAD", path)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.headers["Content-Type"].startswith(ctype), (path, resp.status)
        assert resp.read() == b""
        conn.close()


def _metrics(text: str) -> dict[tuple[str, str], float]:
    """Prometheus' text format, checked line by line: {(metric, labels): value}; every sample's family
    (a summary's _sum and _count: its name) typed before it."""
    import re

    got, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{((?:[a-z]+="(?:[^"\\]|\\.)*",?)+)\})? (-?\d+(?:\.\d+)?(?:e[-+]\d+)?)', line)
        assert m is not None, line
        family = re.sub(r"_(sum|count)$", "", m.group(1)) if m.group(1) not in typed else m.group(1)
        assert family in typed, f"{m.group(1)} has no # TYPE line before it"
        got[m.group(1), m.group(2) or ""] = float(m.group(3))
    return got


def test_metrics_for_prometheus_match_the_stats(served: Served) -> None:
    base = served.server.url
    before = json.loads(urllib.request.urlopen(base + "stats", timeout=5).read())
    with urllib.request.urlopen(base + "metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        got = _metrics(resp.read().decode())
    after = json.loads(urllib.request.urlopen(base + "stats", timeout=5).read())
    src = 'source="stream"'
    assert before["frames_out"] <= got["srx_frames_upscaled_total", src] <= after["frames_out"]
    assert before["frames_in"] <= got["srx_frames_read_total", src] <= after["frames_in"]
    assert got["srx_source_up", src] == 1 and got["srx_backend_up", src] == 1
    assert got["srx_source_state", src + ',state="up"'] == 1 and got["srx_source_state", src + ',state="ended"'] == 0
    assert before["dropped"] <= got["srx_frames_dropped_total", src] <= after["dropped"]
    assert got["srx_frames_stale_total", src] == after["stale"] == 0  # a file source has no stale frames
    assert after["sends"].split(", ")[0] == "x".join(map(str, after["input_size"])), after["sends"]  # what it sends
    assert got["srx_frames_bicubic_total", src] == 0 and got["srx_source_reconnects_total", src] == 0
    assert 0 < got["srx_latency_seconds", src + ',quantile="0.5"'] <= got["srx_latency_seconds", src + ',quantile="0.95"']
    count, total = got["srx_inference_seconds_count", src], got["srx_inference_seconds_sum", src]
    assert before["infer_count"] <= count <= after["infer_count"] and 0 < total / count < 10
    assert got["srx_latency_seconds_count", src] >= count
    # one camera's /stats reads as a run of several does, under the name its /metrics labels it with
    assert after["sources"]["stream"]["frames_out"] == after["frames_out"] and after["total"]["sources"] == 1
    assert 0 < time.time() - got["srx_start_time_seconds", ""] < 600
    version = [labels for metric, labels in got if metric == "srx_build_info"]
    assert len(version) == 1 and f'version="{__version__}"' in version[0] and 'scale="2"' in version[0], version
    assert 'backend="torch"' in version[0] and after["run"]["detail"].startswith("torch")  # a label to group a fleet by


def test_a_runs_stats_add_up_the_sources_and_say_the_run_once() -> None:
    """/stats of several sources: every count added up in `total` (a dashboard reads total.reconnects),
    the run's own keys once at the top, not again in each source."""
    from srx.camera.stats import sources_stats

    counts = ("frames_in", "frames_out", "dropped", "skipped", "stale", "damaged", "nosignal_frames", "fallback_frames",
              "reconnects")
    snap = {**{key: i + 1 for i, key in enumerate(counts)}, "fps_in": 2.5, "fps_out": 2.0}
    run = {"version": "0.1.0", "backend": "onnxruntime", "model": "fast-x3", "scale": "3"}
    got = sources_stats({"door": {**snap, "run": run}, "gate": {**snap, "run": run}})
    assert got["total"] == {"sources": 2, **{key: 2 * (i + 1) for i, key in enumerate(counts)}, "fps_out": 4.0,
                            "fps_in": 5.0}
    assert got["run"] == run and not any("run" in source for source in got["sources"].values())


def test_metrics_text_names_each_source_and_leaves_out_what_is_unknown() -> None:
    from srx.camera.stats import prometheus_text

    snap = {"frames_in": 8, "frames_out": 4, "dropped": 1, "stale": 3, "nosignal_frames": 0, "connected": False,
            "fps_out": 2.5, "infer_count": 4, "infer_sum_s": 0.05, "elapsed_s": 3.0, "latency_ms_p50": None,
            "latency_ms_p95": None, "state": "reconnecting"}
    got = _metrics(prometheus_text({"sources": {'gate "north"\\2': snap, "door": {**snap, "connected": True}}}))
    north = 'source="gate \\"north\\"\\\\2"'
    assert got["srx_source_up", north] == 0 and got["srx_source_up", 'source="door"'] == 1
    assert got["srx_inference_seconds_sum", north] == 0.05 and got["srx_inference_seconds_count", north] == 4
    assert got["srx_frames_dropped_total", north] == 1
    assert got["srx_frames_stale_total", north] == 3  # read = upscaled + dropped + stale (+ skipped, queued)
    assert not any(metric.startswith("srx_latency_seconds") for metric, _ in got)  # no frame out yet: no latency
    assert [labels for (metric, labels), v in got.items() if metric == "srx_source_state" and v == 1] == [
        north + ',state="reconnecting"', 'source="door",state="reconnecting"']
    assert not any(metric.startswith(("srx_recording", "srx_publish")) or metric == "srx_build_info" for metric, _ in got)
    assert not any(metric == "srx_source_lag_seconds" for metric, _ in got)  # a camera's lag: RTSP sources only
    got = _metrics(prometheus_text({"sources": {"door": {**snap, "lag_s": 12.5, "fps_in": 3.3}}}))
    assert got["srx_source_lag_seconds", 'source="door"'] == 12.5 and got["srx_input_fps", 'source="door"'] == 3.3
    outputs = [{"kind": "recording", "output": "/rec/door.mkv", "state": "lost", "up": False, "disk_free_bytes": 0,
                "segments": 3, "segments_lost": 2, "segments_deleted": 0},
               {"kind": "publish", "output": "rtsp://cam:***@nvr/door", "state": "away", "up": False, "frames": 40,
                "frames_unsent": 7}]
    got = _metrics(prometheus_text({"sources": {"door": {**snap, "outputs": outputs}}}))
    rec, pub = 'source="door",output="/rec/door.mkv"', 'source="door",output="rtsp://cam:***@nvr/door"'
    assert got["srx_recording_up", rec] == 0 and got["srx_recording_segments_lost_total", rec] == 2
    assert got["srx_publish_up", pub] == 0 and got["srx_publish_frames_unsent_total", pub] == 7
    assert ("srx_publish_up", rec) not in got and ("srx_recording_up", pub) not in got
    # each quantile is the snapshot's own (a p95 series that repeated the p50 passed `p50 <= p95`)
    got = _metrics(prometheus_text({"sources": {"door": {**snap, "latency_ms_p50": 120.0, "latency_ms_p95": 480.0}}}))
    door = 'source="door"'
    assert got["srx_latency_seconds", door + ',quantile="0.5"'] == 0.12
    assert got["srx_latency_seconds", door + ',quantile="0.95"'] == 0.48


def test_page_in_headless_chromium(served: Served, tmp_path: Path) -> None:
    import cv2

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        skip_or_fail("no chromium on this machine (CI installs it via .ci/system-packages.sh)")
    shot = tmp_path / "page.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=640,400",
           "--timeout=4000",  # the MJPEG <img> never finishes loading: stop after 4 s, then shoot
           served.server.url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert shot.exists(), proc.stderr[-2000:]
    page = cv2.imread(str(shot))
    h, w = served.expected.shape[:2]
    assert page.shape[:2] == (400, 640)
    # everything that is not page background in the band above the stats text is the image,
    # laid out at its natural size at the top-left
    band = page[: h + 6]
    ys, xs = np.nonzero(np.abs(band.astype(int) - BACKGROUND).max(axis=2) > 12)
    assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (0, 0, h, w)
    assert psnr(served.expected, page[:h, :w]) > 30  # and it shows the served frame
    # the second stats line (fps, frames, latency) exists only once the page's script read /stats
    assert (np.abs(page[h + 26 : h + 42].astype(int) - BACKGROUND).max(axis=2) > 60).sum() > 100


def test_status_line_overlay_and_page_show_one_snapshot() -> None:
    """The page's /stats and the terminal's status line read the same published numbers, so they
    cannot disagree (they did: 4.7 fps on the page against 8.5 in the terminal)."""
    import time

    stats = StreamStats()
    t = time.monotonic()
    for i in range(5):
        stats.record(t + i * 0.1, t + i * 0.1 + 0.05, {"infer": 0.04}, (10, 20, 3), (20, 40, 3))
    published = stats.publish()
    for i in range(5, 30):  # more frames arrive between two status ticks
        stats.record(t + i * 0.01, t + i * 0.01 + 0.05, {"infer": 0.04}, (10, 20, 3), (20, 40, 3))
    assert stats.live() is published and stats.live()["frames_out"] == 5
    assert f"out {published['fps_out']:5.2f} fps" in stats.live_line() and "frames 5 " in stats.live_line()
    server = MjpegServer("127.0.0.1:0", stats=stats.live)
    try:
        served = json.loads(urllib.request.urlopen(server.url + "stats", timeout=5).read())
    finally:
        server.close()
    assert {k: v for k, v in served.items() if k not in ("total", "sources")} == json.loads(json.dumps(published))
    assert served["sources"]["stream"] == {k: v for k, v in served.items() if k not in ("total", "sources")}
    assert stats.publish()["frames_out"] == 30  # the next tick shows the new frames everywhere at once


def test_page_fits_the_window_and_labels_the_halves() -> None:
    server = MjpegServer("127.0.0.1:0", title="srx <test> 'x3'", halves=("left: bicubic x3", "right: SR x3"))
    try:
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    assert "max-width: 100vw" in page and "max-height: calc(100vh" in page and "object-fit: contain" in page
    assert page.count('class="half"') == 2 and "left: bicubic x3" in page and "right: SR x3" in page
    assert "srx &lt;test&gt;" in page and "<test>" not in page  # the title is text, not markup
    plain = MjpegServer("127.0.0.1:0")
    try:
        assert 'class="half"' not in urllib.request.urlopen(plain.url, timeout=5).read().decode()
    finally:
        plain.close()


def test_wide_compare_frame_fits_the_window_in_headless_chromium(make_upscaler, tmp_path: Path) -> None:
    """A side-by-side frame wider than the window is scaled down to fit, aspect kept, both halves
    labelled by the page (the old page showed it at its natural size and hid the SR half)."""
    import cv2

    from srx.camera.outputs import compare_frame

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        skip_or_fail("no chromium on this machine (CI installs it via .ci/system-packages.sh)")
    photo = synthetic_photo(150, 400, seed=5)
    upscaler = make_upscaler(2)
    frame = compare_frame(photo, upscaler.upscale(photo), 2, "SRCNN")  # 300 x 1602
    server = MjpegServer("127.0.0.1:0", title="srx test", halves=("left: bicubic x2", "right: SR x2"))
    done = threading.Event()

    def feed() -> None:  # a browser shows a multipart part once the next one begins: keep them coming
        while not done.is_set():
            server.publish(frame)
            done.wait(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    shot = tmp_path / "page.png"
    try:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
               "--window-size=800,400", "--timeout=4000", server.url]
        subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    finally:
        done.set()
        feeder.join(5)
        server.close()
    page = cv2.imread(str(shot))
    assert page is not None and page.shape[:2] == (400, 800)
    ink = np.abs(page.astype(int) - BACKGROUND).max(axis=2) > 12
    img_w = np.nonzero(ink.any(axis=0))[0].max() + 1
    assert 780 <= img_w <= 800  # scaled down to the window's width (1602 px at its natural size)
    image_rows = int((ink[:, :img_w].mean(axis=1) > 0.5).sum())  # the stats text below is sparse
    assert abs(image_rows - frame.shape[0] * img_w / frame.shape[1]) <= 3  # aspect kept


def test_a_frame_is_complete_on_the_wire_without_waiting_for_the_next() -> None:
    """Chromium shows a multipart part once the next boundary comes: the boundary follows each frame
    at once (it used to come with the next frame, so every frame showed one frame late), and a
    frame with none after it is sent again each second (a camera that ended or waits to reconnect)."""
    server = MjpegServer("127.0.0.1:0", title="srx test")
    try:
        frame = synthetic_photo(48, 64, seed=1)
        server.write(frame)
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as resp:
            for _ in range(2):  # the frame, then the same frame again: no new one was written
                jpeg = _read_part(resp)
            # the boundary after the second part is on the wire already (a read would time out otherwise)
            assert resp.readline().strip() == f"--{BOUNDARY}".encode()
        import cv2

        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == frame.shape
    finally:
        server.close()


def _read_part(resp) -> bytes:
    """One part of an MJPEG stream, its boundary line first: the JPEG."""
    assert resp.readline().strip() == f"--{BOUNDARY}".encode()
    headers = {}
    while (line := resp.readline().strip()):
        k, v = line.decode().split(":", 1)
        headers[k.lower()] = v.strip()
    jpeg = resp.read(int(headers["content-length"]))
    assert resp.readline() == b"\r\n"
    return jpeg


def test_a_still_frame_is_sent_again_once_a_second_not_as_fast_as_the_socket_takes_it() -> None:
    """A source with no new frame (a still scene, an ended file, a camera reconnecting) has its last
    frame sent again each second: over a few seconds a viewer gets about one part a second, not the
    thousands a wait that returned at once sent (each viewer a busy loop on a core and the network)."""
    import time

    server = MjpegServer("127.0.0.1:0", title="srx test")
    try:
        server.write(synthetic_photo(48, 64, seed=1))
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as resp:
            t0, parts = time.monotonic(), 0
            while time.monotonic() - t0 < 2.0:
                _read_part(resp)
                parts += 1
            elapsed = time.monotonic() - t0
        # the part waiting when the viewer came, then one a second at most (a slow machine sends fewer, never more)
        assert 1 <= parts <= elapsed + 2, (parts, elapsed)
    finally:
        server.close()


def test_a_viewer_who_connects_before_the_first_frame_gets_the_frames_once_they_come() -> None:
    """The page opened while the model loads or the camera connects: the stream waits for the first
    frame (it must not end, which left a broken image that never recovered), then shows it."""
    import cv2
    import time

    server = MjpegServer("127.0.0.1:0", title="srx test")
    try:
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as resp:
            wait_until(lambda: server.clients == 1, 5, "the viewer to be served")
            time.sleep(1.3)  # longer than the stream's one-second wait for a frame: it found none at least once
            frame = synthetic_photo(48, 64, seed=1)
            server.write(frame)
            for _ in range(2):  # the frame, then the same frame again
                jpeg = _read_part(resp)
                assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == frame.shape
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["one", "several"])
def test_a_path_it_does_not_serve_names_every_one_it_does(kind: str) -> None:
    """A mistyped path is a 404 whose text lists what is served (the one-camera page left /frame.jpg
    out); each path it names answers (a frame before the first one: 503 'no frame yet')."""
    import re
    import urllib.error

    web = _web(kind, "127.0.0.1:0")
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(web.url + "stream.mpjg", timeout=5)
        text = missing.value.read().decode()
        assert missing.value.code == 404 and text.startswith("not found: try /"), text
        named = re.findall(r"(/[\w/.]*)", text)
        if kind == "several":
            assert "/cam/a/" in named and "/cam/b/" in named and "stream.mjpg or frame.jpg under it" in text, text
            named += ["/cam/a/stream.mjpg", "/cam/b/frame.jpg"]
        else:
            assert {"/", "/stream.mjpg", "/frame.jpg", "/stats", "/metrics"} <= set(named), text
        for path in named:
            if path.endswith("stream.mjpg"):
                continue  # a stream that waits for its first frame: its page is the same server's
            try:
                code = urllib.request.urlopen(f"http://127.0.0.1:{web.port}{path}", timeout=5).status
            except urllib.error.HTTPError as err:
                code = err.code
            assert code in (200, 503) and not (code == 503 and not path.endswith("frame.jpg")), (path, code)
    finally:
        web.close()
