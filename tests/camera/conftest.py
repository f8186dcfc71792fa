"""Fixtures for the camera tests: a real Upscaler on a tiny checkpoint, small frames, free ports."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from srx.camera.outputs import Output
from tests.conftest import synthetic_photo


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any ONNX export a backend makes on first use goes to the test's tmp, not ~/.cache."""
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "srx-cache"))


@pytest.fixture
def make_upscaler(tiny_checkpoint) -> Callable:
    """create_upscaler on a tiny real SRCNN checkpoint (torch backend: the reference)."""
    from srx.runtime.upscaler import create_upscaler

    def make(scale: int = 3, backend: str = "torch"):
        return create_upscaler(scale, weights=tiny_checkpoint(scale, name=f"tiny-x{scale}.pt"), backend=backend, threads=1)

    return make


def frames(n: int, h: int = 36, w: int = 48, seed: int = 0) -> list[np.ndarray]:
    return [synthetic_photo(h, w, seed=seed + i) for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_background(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """call() (a stream, say) started in a daemon thread; its dict holds "summary" (what it returned)
    or "error" (what it raised), for the test's own thread to check and report."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["summary"] = call()
        except BaseException as exc:  # reported by the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `cond`; fail the test (not hang) if it does not hold within `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


class ThumbnailSink(Output):
    """A real, minimal Output: keeps a 64x48 thumbnail of every frame it is given (memory-light, so a
    test can inspect what a viewer saw without recording 1440x1080 video)."""

    name = "thumbnails"

    def __init__(self) -> None:
        self.thumbs: list[np.ndarray] = []
        self.sizes: list[tuple[int, int]] = []
        self.closed = False

    def write(self, frame: np.ndarray) -> bool:
        import cv2

        self.sizes.append((frame.shape[1], frame.shape[0]))
        self.thumbs.append(cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA))
        return True

    def close(self) -> None:
        self.closed = True


def camera_ts(path: Path, broken: tuple[int, ...] = (), parts: tuple[tuple[int, int, int], ...] = ((48, 36, 30),),
              sar: tuple[int, int] | None = None, interlaced: bool = False, audio: bool = False) -> None:
    """An H.264 MPEG-TS stream as a camera sends it (10 fps, a keyframe every 10 frames, its
    parameters in the stream): `parts` (width, height, frames) one after another (a camera whose size
    an installer changed), pixels of shape `sar` (width:height, PAL D1's 12:11), coded as `interlaced`
    fields, with an MP2 sound track beside it (`audio`); the video packets numbered in `broken` are
    cut to half their bytes, as a lossy link leaves them. Written by FFmpeg's own encoders through PyAV."""
    from fractions import Fraction

    import av

    out = av.open(str(path), "w", format="mpegts")
    video = out.add_stream("libx264", rate=10)
    video.width, video.height, video.pix_fmt = parts[0][0], parts[0][1], "yuv420p"
    sound = out.add_stream("mp2", rate=48000) if audio else None
    packets, pts = [], 0
    for width, height, n in parts:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base, encoder.framerate = Fraction(1, 10), Fraction(10)
        if sar is not None:
            encoder.sample_aspect_ratio = Fraction(*sar)
        encoder.options = {"g": "10", "bf": "0", **({"x264-params": "interlaced=1:tff=1"} if interlaced else {})}
        for i, img in enumerate(frames(n, height, width, seed=pts)):
            if interlaced:  # the two fields of a moving picture: every other row from the moment after
                img[1::2] = np.roll(img, 3, axis=1)[1::2]
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = pts + i, Fraction(1, 10)
            packets += encoder.encode(frame)
        packets += encoder.encode()
        pts += n
    for k, packet in enumerate(packets):
        if k in broken:
            data = bytes(packet)
            cut = av.Packet(data[:len(data) // 2])
            cut.pts, cut.dts, cut.time_base = packet.pts, packet.dts, packet.time_base
            packet = cut
        packet.stream = video
        out.mux(packet)
        if sound is not None:  # a tenth of a second of silence beside each frame
            tone = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.int16), format="s16", layout="mono")
            tone.sample_rate, tone.pts = 48000, 4800 * k
            for p in sound.encode(tone):
                out.mux(p)
    out.close()


def serve_folder(folder: Path, seconds: float | None = None):
    """A real HTTP server (the standard library's) for the files in `folder`: each sent at once, or
    spread over `seconds` (a camera's stream comes as it is filmed), to a network source that reads
    it; the caller shuts it down."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def copyfile(self, source, outputfile) -> None:
            if seconds is None:
                return super().copyfile(source, outputfile)
            data = source.read()
            chunk = max(188, len(data) // int(20 * seconds))  # twenty pieces a second
            start = time.monotonic()
            for at in range(0, len(data), chunk):
                time.sleep(max(0.0, start + seconds * at / len(data) - time.monotonic()))
                outputfile.write(data[at:at + chunk])
                outputfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

