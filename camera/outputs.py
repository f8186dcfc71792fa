"""Where upscaled frames go: the `Output` interface every destination implements, a window, and
`recording_output`, which makes the one an `--output` names: a recording (camera/recording.py: a
video file, cut into files by camera/segments.py where asked, or a folder of PNG frames) or a
stream published to an RTSP server (camera/publish.py). The MJPEG web server is camera/server.py.
Also the decorations the stream draws on frames (`compare_frame`, `overlay_text`, `nosignal_frame`).

Every output checks its destination when it is made (before the source opens), so an unwritable
path is one clear error up front, opens lazily on the first frame (when the size is known), and is
finalised by close(). An output whose write fails mid-run (a full disk) is closed and left out
(`Output.failed`); the stream goes on.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srx.errors import SrxError

if TYPE_CHECKING:
    from srx.camera.segments import FreeSpace, SegmentClock

log = logging.getLogger("srx")


class Output:
    """write(frame) for each output frame; close() once. write() returns False to ask to stop.

    A `realtime` output (a recording for viewing) holds the frame before (hold) for each source frame
    the latest-frames policy dropped before the next, so it plays at the source's pace, not faster. A `timed`
    one (H.264 or FFV1 through PyAV, whose frames carry their own times) is instead given each frame once with its time,
    `write(frame, at_s)`: seconds from the stream's start, on the source's clock."""

    name = "output"
    realtime = False
    timed = False
    #: keeps the size of its first frame (a video file, a published stream): it is not given the
    #: no-signal placeholder of a source whose size is not known yet, only real frames open it
    fixed_size = False
    #: why the output stopped mid-run (a full disk, a folder gone): the stream goes on without it
    failed: str | None = None
    #: a live feed that must not run ahead of real time (a published stream: its receivers play and
    #: record it by its arrival): a recorded source is read at its own rate even with --no-drop
    paced = False

    def write(self, frame: np.ndarray) -> bool:
        raise NotImplementedError

    def hold(self, times: int) -> None:
        """A `realtime` output: show the frame written last `times` more slots (the gap before the
        next one is due), so no frame is on screen before its time."""

    def close(self) -> None:
        pass

    def started(self) -> None:
        """The run has begun (its source opened, its model loaded): what the output has to tell the
        user now, not before (a web server's address: a run refused at its start serves nothing)."""

    def discard(self) -> None:
        """Close an output the run never used (its start was refused): what it holds let go of, and
        nothing said of frames it did not get."""
        self.close()

    def describe(self) -> str:
        return self.name

    def status(self) -> dict[str, Any] | None:
        """What /stats and /metrics say of this output while the run goes on (a recording's), or None."""
        return None


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame in the recording's (width, height) when the stream changes size mid-way: scaled
    to fit with its aspect ratio kept, centred on black (a frame at most one pixel larger is
    cropped instead), so a camera that comes back in another resolution is not stretched."""
    import cv2

    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    w, h = size
    if 0 <= frame.shape[1] - w <= 1 and 0 <= frame.shape[0] - h <= 1:
        frame = frame[:h, :w]
    fh, fw = frame.shape[:2]
    if (fw, fh) == size:
        return frame
    k = min(w / fw, h / fh)
    nw, nh = max(1, min(w, round(fw * k))), max(1, min(h, round(fh * k)))
    inner = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    out = np.zeros((h, w, 3), dtype=frame.dtype)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[top:top + nh, left:left + nw] = inner
    return out


def display_available() -> bool:
    """A window can open: a display server is set and this OpenCV has a GUI backend."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    from srx.camera.sources import has_highgui

    return has_highgui()


class WindowOutput(Output):
    """cv2.imshow; q or Esc, or closing the window, stops the stream."""

    def __init__(self, title: str = "srx stream") -> None:
        if not display_available():
            why = ("no display (DISPLAY/WAYLAND_DISPLAY unset)" if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
                   else "this OpenCV has no GUI support (a -headless build)")
            raise SrxError(f"--window asked for but {why}; use --no-window with --output or --serve")
        self.title = title
        self.name = "window"
        self._opened = False

    def write(self, frame: np.ndarray) -> bool:
        import cv2

        cv2.imshow(self.title, frame)
        self._opened = True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        if self._opened:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)


def is_video_file_output(path: Path | str) -> bool:
    """Whether an --output is a video file (what `--segment` cuts), not rtsp:// or a folder of frames."""
    text = str(path)
    p = Path(text)
    return "://" not in text and not text.endswith(("/", os.sep)) and bool(p.suffix) and not p.is_dir()


def recording_output(path: Path | str, fps: float = 10.0, retry_max_wait: float = 30.0,
                     segment: float | None = None, keep: float | None = None, clock: SegmentClock | None = None,
                     keep_free: FreeSpace | None = None) -> Output:
    """An rtsp:// URL is published to (RtspOutput); a folder-like path (no suffix or a trailing '/')
    gets a PNG sequence, any other path a video file (cut into `segment`-second files where given,
    those older than `keep` seconds deleted, the oldest deleted while the disk has less room than
    `keep_free`; `clock`: the source's, shared by its recordings)."""
    text = str(path)
    kind = output_kind(text)
    if kind == "rtsp":
        from srx.camera.sources import expand_env

        from srx.camera.publish import RtspOutput

        return RtspOutput(expand_env(text, "--output"), fps=fps, retry_max_wait=retry_max_wait)
    from srx.camera.recording import PngSequenceOutput, VideoFileOutput

    if kind == "frames":
        return PngSequenceOutput(Path(path))
    return VideoFileOutput(Path(path), fps=fps, segment=segment, keep=keep, clock=clock, keep_free=keep_free)


def output_kind(target: Path | str) -> str:
    """What an --output is: "rtsp" (published to an RTSP server), "frames" (a folder-like path: no
    suffix or a trailing '/'; PNG frames) or "video" (a video file); another URL scheme is an SrxError."""
    text = str(target)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() == "rtsp":
        return "rtsp"
    if sep and scheme.isalpha():
        from srx.camera.sources import redact_url

        raise SrxError(f"--output {redact_url(text)}: srx publishes to rtsp:// only; expected rtsp://HOST[:PORT]/PATH, "
                       "a video file or a folder/")
    p = Path(text)
    return "frames" if text.endswith(("/", os.sep)) or not p.suffix or p.is_dir() else "video"


# -- frame decoration ------------------------------------------------------------------------------
def _label(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    import cv2

    thick = max(1, int(round(2 * scale)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = org
    cv2.rectangle(img, (x - 4, y - h - 6), (x + w + 4, y + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def compare_frame(lr: np.ndarray, sr: np.ndarray, scale: int, model_label: str = "SRCNN") -> np.ndarray:
    """Side by side: bicubic enlargement | model output, each labelled, same size."""
    import cv2

    h, w = sr.shape[:2]
    if lr.ndim == 2:
        lr = cv2.cvtColor(lr, cv2.COLOR_GRAY2BGR)
    if sr.ndim == 2:
        sr = cv2.cvtColor(sr, cv2.COLOR_GRAY2BGR)
    bicubic = cv2.resize(lr[..., :3], (w, h), interpolation=cv2.INTER_CUBIC)
    sr = np.ascontiguousarray(sr[..., :3])
    fs = max(0.5, h / 700)
    for img, text in ((bicubic, f"bicubic x{scale}"), (sr, f"{model_label} x{scale}")):
        tw = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, max(1, int(round(2 * fs))))[0][0]
        _label(img, text, (max(4, w - tw - 12), int(30 * fs) + 6), fs)  # top right of each half
    divider = np.full((h, 2, 3), 255, np.uint8)
    return np.hstack([bicubic, divider, sr])


def overlay_text(frame: np.ndarray, text: str) -> np.ndarray:
    """Draw the live stats line in the bottom-left corner (on a copy)."""
    import cv2

    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    fs = max(0.45, out.shape[0] / 900)
    _label(out, text, (8, out.shape[0] - 10), fs)
    return out


def nosignal_frame(size: tuple[int, int], source: str, status: str, now: float | None = None) -> np.ndarray:
    """A generated "no signal" frame of (width, height): colour bars, the source and the time, so a
    viewer sees the stream is alive while the source reconnects (not frozen, not black)."""
    w, h = max(int(size[0]), 64), max(int(size[1]), 48)
    bars = np.array([[192, 192, 192], [0, 192, 192], [192, 192, 0], [0, 192, 0],
                     [192, 0, 192], [0, 0, 192], [192, 0, 0]], np.uint8)
    cols = np.minimum((np.arange(w) * len(bars)) // w, len(bars) - 1)
    img = np.ascontiguousarray(np.broadcast_to(bars[cols][None], (h, w, 3)))
    img[int(h * 0.7):] //= 3
    fs = max(0.5, h / 360)
    clock = time.strftime("%H:%M:%S", time.localtime(time.time() if now is None else now))
    _label(img, "NO SIGNAL", (int(w * 0.05), int(h * 0.25)), 1.6 * fs)
    room = int(w * 0.9)  # from the left margin to as far from the right edge
    for text, y in ((source, int(h * 0.25) + int(50 * fs)), (f"{clock}  {status}", int(h * 0.85))):
        fitted, scale = fit_text(text, 0.7 * fs, room)
        _label(img, fitted, (int(w * 0.05), y), scale)
    return img


def fit_text(text: str, scale: float, width: int) -> tuple[str, float]:
    """`text` and a font scale at which it fits `width` pixels on a frame (_label's font): smaller, to
    0.35 at least, then cut with "..." (a no-signal frame of a small camera cut its address and the
    reconnect's state off at the right edge)."""
    import cv2

    def wide(t: str, sc: float) -> int:
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, sc, max(1, int(round(2 * sc))))[0][0] + 8

    need = wide(text, scale)
    if need > width:
        scale = max(0.35, scale * width / need)
    if wide(text, scale) > width:
        while len(text) > 1 and wide(text + "...", scale) > width:
            text = text[:-1]
        text = text.rstrip() + "..."
    return text, scale
