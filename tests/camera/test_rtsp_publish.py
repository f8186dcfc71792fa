"""Publishing upscaled streams to a real RTSP server (`srx stream --output rtsp://...`): GStreamer's
gst-rtsp-server on loopback in record mode, the way MediaMTX or an NVR takes a published stream,
writing what arrives to a file. What the server received is decoded and compared, frame by
frame, with a lossless recording of the same upscaled frames; the server is killed mid-stream and
restarted, and publishing resumes; the server hangs (stopped) and nothing else waits for it."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from srx.camera.demo import DEMO_FPS
from srx.camera.outputs import recording_output
from srx.camera.publish import RtspOutput
from srx.camera.sources import SourceSpec
from srx.camera.stream import stream
from srx.cli import app
from srx.errors import SrxError
from srx.protocol import psnr
from tests.camera.conftest import ThumbnailSink, free_port, in_background, wait_until
from tests.camera.test_rtsp import RtspServer, _gst_rtsp_available
from tests.conftest import assert_one_error_line, silent_video, skip_or_fail, stored_frames

runner = CliRunner()


@pytest.fixture
def record_server(tmp_path: Path):
    """Start a recording RTSP server: record_server(mounts, folder) -> (url prefix, folder)."""
    why = _gst_rtsp_available()
    if why:
        skip_or_fail(why)
    started: list[RtspServer] = []

    def start(mounts: list[str], folder: Path, port: int | None = None) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        started.append(RtspServer(None, port, record=(folder, mounts)))
        return f"rtsp://127.0.0.1:{port}"

    start.servers = started  # type: ignore[attr-defined]
    yield start
    for server in started:
        server.kill()


def received(path: Path, settle: float = 10.0) -> list[np.ndarray]:
    """The frames a recording server wrote to `path`, once the file stops growing."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size != last:
            last, since = size, time.monotonic()
        elif size > 0 and time.monotonic() - since > 1.0:
            break
        time.sleep(0.1)
    return stored_frames(path)


def _y_psnr(a: np.ndarray, b: np.ndarray) -> float:
    from srx.protocol import bgr2ycbcr

    return psnr(bgr2ycbcr(a)[..., 0], bgr2ycbcr(b)[..., 0])


def test_a_published_stream_arrives_whole_and_as_upscaled(tmp_path: Path, record_server, caplog) -> None:
    """The demo through the shipped model, 20 frames: recorded losslessly, then published. The
    server gets all 20, in order, each the upscaled frame as x264 codes it (over 30 dB on Y)."""
    url = record_server(["up"], tmp_path / "got")
    args = ["stream", "--demo", "--max-frames", "20", "--no-drop", "--no-window", "-q", "--threads", "1"]
    res = runner.invoke(app, args + ["--output", str(tmp_path / "ref.mkv")])
    assert res.exit_code == 0, res.output
    caplog.set_level(logging.INFO, logger="srx")
    res = runner.invoke(app, args + ["--output", f"{url}/up"])
    assert res.exit_code == 0, res.output
    assert f"published 20 frames to {url}/up" in [r.getMessage() for r in caplog.records]
    got, ref = received(tmp_path / "got" / "up.ts"), stored_frames(tmp_path / "ref.mkv")
    assert len(ref) == 20 and len(got) == 20
    assert {g.shape for g in got} == {(540, 960, 3)}
    scores = [_y_psnr(g, r) for g, r in zip(got, ref)]
    assert min(scores) > 30, scores
    # in order: each received frame is nearer its own reference than the neighbouring one
    assert all(_y_psnr(got[i], ref[i]) > _y_psnr(got[i], ref[i + 1]) for i in range(19))
    # in real time although --no-drop reads a file as fast as the model takes it: the demo's frames
    # went out at its own rate, so the stream does not play fast (and the last ones were not cut off)
    import av

    with av.open(str(tmp_path / "got" / "up.ts")) as box:
        stamps = [float(p.pts * p.time_base) for p in box.demux(video=0) if p.pts is not None]
    assert len(stamps) == 20 and stamps[-1] - stamps[0] >= 0.9 * 19 / DEMO_FPS


def test_several_cameras_publish_each_to_its_own_path(tmp_path: Path, record_server) -> None:
    clip = silent_video(tmp_path / "gate.avi", 12, (64, 48), fps=10)
    url = record_server(["demo", "gate"], tmp_path / "got")
    res = runner.invoke(app, ["stream", "--demo", "--source", str(clip), "--max-frames", "12", "--no-drop",
                              "--no-window", "-q", "--threads", "1", "-s", "2", "--output", f"{url}/{{name}}"])
    assert res.exit_code == 0, res.output
    demo, gate = received(tmp_path / "got" / "demo.ts"), received(tmp_path / "got" / "gate.ts")
    assert len(demo) == 12 and {f.shape for f in demo} == {(360, 640, 3)}
    assert len(gate) == 12 and {f.shape for f in gate} == {(96, 128, 3)}


def test_publishing_resumes_after_the_server_restarts(tmp_path: Path, record_server, make_upscaler, caplog) -> None:
    """The server dies mid-stream: the stream goes on (its other outputs would too), the frames while
    it is away are counted unsent, and once a server answers again at the address, publishing
    starts a new session there."""
    port = free_port()
    record_server(["up"], tmp_path / "first", port)
    out = RtspOutput(f"rtsp://cam:secret@127.0.0.1:{port}/up", fps=10.0, retry_max_wait=1.0)
    url = f"rtsp://cam:***@127.0.0.1:{port}/up"  # as logs name it
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="srx")
    thread, result = in_background(lambda: stream(SourceSpec("demo", None, loop=True, fps=DEMO_FPS), make_upscaler(2),
                                                  [out], stop_event=stop, quiet=True))
    try:
        wait_until(lambda: out.frames >= 10 or "error" in result, 30, "frames published to the first server")
        assert out.status()["state"] == "publishing" and out.status()["up"] and out.status()["output"] == url
        record_server.servers[0].kill()
        wait_until(lambda: out.unsent >= 5 or "error" in result, 30, "frames upscaled while the server is away")
        status = out.status()  # what /stats and /metrics (srx_publish_up) say of it meanwhile
        assert (status["state"], status["up"]) == ("away", False) and status["frames_unsent"] >= 5, status
        # away for several retries: the next attempt is never further off than retry_max_wait (1 s; the
        # backoff doubled without a cap: 2, 4, 8 s ... after a long outage, minutes)
        away, retry_in = time.monotonic(), []
        while time.monotonic() - away < 3.5:
            retry_in.append(out._retry_at - time.monotonic())
            time.sleep(0.05)
        assert max(retry_in) <= out.retry_max_wait, max(retry_in)
        before = out.frames
        record_server(["up"], tmp_path / "second", port)
        wait_until(lambda: out.frames >= before + 10 or "error" in result, 40, "frames published after the restart")
    finally:
        stop.set()
        thread.join(15)
    assert "error" not in result, result.get("error")
    assert out.sessions == 2 and out.unsent >= 5 and out.status()["state"] == "closed"
    assert len(received(tmp_path / "first" / "up.ts")) >= 1  # killed: what sat in its write buffer is lost
    assert len(received(tmp_path / "second" / "up.ts")) >= 10
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"lost the RTSP server at {url}") for m in logged), logged
    assert any(m.startswith(f"publishing to {url} again") for m in logged), logged
    assert any(m.startswith("published ") and "in 2 sessions" in m for m in logged), logged
    assert not any("secret" in m for m in logged), logged


def test_a_hung_server_holds_up_nothing_else(tmp_path: Path, record_server, make_upscaler, caplog) -> None:
    """The server hangs (SIGSTOP: a frozen NVR, its connection open and nothing read, so FFmpeg's
    send blocks with no timeout): the stream and its other output go on, the stuck send is logged,
    the frames meanwhile are unsent; once the server moves again publishing goes on, and the run
    stops in good time."""
    url = record_server(["up"], tmp_path / "got")
    server = record_server.servers[0].proc
    out, sink, stop = RtspOutput(f"{url}/up", fps=DEMO_FPS, retry_max_wait=1.0), ThumbnailSink(), threading.Event()
    caplog.set_level(logging.INFO, logger="srx")
    hung = f"the RTSP server at {url}/up has taken no data for"
    logged = lambda start: any(r.getMessage().startswith(start) for r in caplog.records)  # noqa: E731
    thread, result = in_background(lambda: stream(SourceSpec("demo", None, loop=True, fps=DEMO_FPS), make_upscaler(2),
                                                  [out, sink], stop_event=stop, quiet=True))
    try:
        wait_until(lambda: out.frames >= 10 or "error" in result, 30, "frames published before the server hangs")
        os.kill(server.pid, signal.SIGSTOP)
        try:
            shown = len(sink.thumbs)
            # the socket buffers fill first (a few seconds of this stream), then a send blocks for STALL_S;
            # meanwhile the frames handed over and not yet sent or counted unsent stay within the queue's
            # bound (+ the one in the stuck send): the oldest gives way, they do not pile up
            held: list[int] = []

            def hung_yet() -> bool:
                shown_now = len(sink.thumbs)  # first: each frame reaches `out` before the sink
                held.append(shown_now - out.frames - out.unsent)
                return logged(hung) or "error" in result

            wait_until(hung_yet, 60, "the warning that the server takes no data")
            assert max(held) <= RtspOutput.QUEUE + 1, max(held)
            wait_until(lambda: len(sink.thumbs) >= shown + 20 or "error" in result, 30,
                       "frames to the other output while the server hangs")
            published, unsent = out.frames, out.unsent
            time.sleep(1.0)
            assert out.frames == published and out.unsent > unsent  # nothing goes out, every frame counted
            assert (out.status()["state"], out.status()["up"]) == ("stalled", False)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        wait_until(lambda: out.frames >= published + 10 or "error" in result, 30, "frames published once it moves again")
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the stream did not stop"
    assert "error" not in result, result.get("error")
    assert out.unsent >= 20
    assert logged(f"the RTSP server at {url}/up takes data again after"), [r.getMessage() for r in caplog.records]
    assert sum(r.getMessage().startswith(hung) for r in caplog.records) == 1


def test_a_server_that_refuses_the_stream_is_one_error_line(tmp_path: Path, record_server) -> None:
    url = record_server(["up"], tmp_path / "got")
    res = runner.invoke(app, ["stream", "--demo", "--max-frames", "5", "--no-window", "-q", "--output", f"{url}/nope"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"RTSP publish {url}/nope: the RTSP server did not take the stream: "
                                      "Server returned 404 Not Found")
    error = next(ln for ln in res.output.splitlines() if ln.startswith("error:"))
    assert error.count(f"{url}/nope") == 1, error  # named once, not by the output and again by its error


def test_publishing_where_nothing_listens_or_to_another_scheme_is_one_error_line(tmp_path: Path) -> None:
    port = free_port()
    for output, match in ((f"rtsp://127.0.0.1:{port}/up", f"nothing takes connections at 127.0.0.1:{port}"),
                          ("rtsp://127.0.0.1:8554", "expected rtsp://HOST[:PORT]/PATH"),
                          ("rtsp://127.0.0.1:port/up", "expected rtsp://HOST[:PORT]/PATH"),
                          ("udp://127.0.0.1:5000", "srx publishes to rtsp:// only"),
                          ("rtsp://srx:${SRX_UNSET_TEST_PW}@127.0.0.1:8554/up", "names ${SRX_UNSET_TEST_PW}, which is not set")):
        res = runner.invoke(app, ["stream", "--demo", "--max-frames", "2", "--no-window", "--output", output])
        assert res.exit_code == 1
        assert_one_error_line(res.output, match)
        assert "backend:" not in res.output  # refused before the model loaded
    with pytest.raises(SrxError, match=r"rtsp://cam:\*\*\*@127.0.0.1"):  # a password never reaches the output
        recording_output(f"rtsp://cam:secret@127.0.0.1:{port}/up")


def test_a_server_that_takes_the_connection_and_never_answers_is_refused_in_seconds(tmp_path: Path) -> None:
    """A hung server (stopped, or wedged with its port open) accepts the TCP connection and never
    answers. FFmpeg's handshake waits for it for good, holding Python's lock: srx froze whole, its
    web page and Ctrl-C included. An OPTIONS request with a timeout comes first: at the start that is
    one error line before the model loads; for a later session, an outage that is retried."""
    import socket

    from srx.camera.publish import _answers

    with socket.socket() as listener:  # accepts (the kernel's backlog) and never reads or writes
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        started = time.monotonic()
        res = runner.invoke(app, ["stream", "--demo", "--max-frames", "2", "--no-window",
                                  "--output", f"rtsp://cam:secret@127.0.0.1:{port}/up"])
        assert res.exit_code == 1 and time.monotonic() - started < 30
        assert_one_error_line(res.output, f"the RTSP server at 127.0.0.1:{port} does not answer: it takes "
                                          "connections but sent no answer in 3 s (hung?)")
        assert "backend:" not in res.output and "secret" not in res.output
        assert _answers(f"rtsp://127.0.0.1:{port}/up", timeout=0.5).startswith("it takes connections")


def test_an_rtsp_output_is_one_whatever_the_case_of_its_scheme() -> None:
    """`RTSP://HOST/PATH` (as a camera's manual may write it) is published to like rtsp://, not refused
    as a scheme srx does not publish to: here, told that nothing takes connections there."""
    import socket

    from srx.camera.outputs import recording_output
    from srx.errors import SrxError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(SrxError, match=f"nothing takes connections at 127.0.0.1:{port}"):
        recording_output(f"RTSP://127.0.0.1:{port}/door")
