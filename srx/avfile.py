"""Video files whose colours OpenCV would get wrong, read through PyAV instead.

A video tagged BT.709 (HD footage: phones, NVR exports, most cameras' H.264 and H.265) stores its
colour with BT.709's weights. OpenCV's FFmpeg reader (4.6 and 4.11 measured; OpenCV 5 follows the
tag) turns every video to BGR with BT.601's, whatever the tag says: saturated red came out 232
instead of 254, green and cyan took on about 20 levels of red, and srx wrote and tagged that as it
was. Correcting the BGR afterwards cannot undo it (the wrong weights pushed saturated colours past
0..255, and the clipping lost them), so such a file is decoded by PyAV, which follows the tag, behind
`AvFileCapture`: the few cv2.VideoCapture calls srx makes of a file (read, grab, get of the time,
rate, frame count, size and pixel shape, release), each as OpenCV answers it. Which OpenCV turns
BT.709 as BT.601 is measured once a process (`opencv_ignores_bt709`), not assumed from its version.
"""
from __future__ import annotations

import functools
import logging
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("srx")

#: FFmpeg's number for BT.709 colour (AVCOL_SPC_BT709), as a stream's colour space says it
BT709 = 1


def colour_space(path: Path | str) -> int | None:
    """The colour space a video file's first video stream is tagged with (FFmpeg's number: 1 BT.709,
    5/6 BT.601, 2 unspecified), or None where PyAV cannot say (no PyAV, a file it cannot open)."""
    from srx.imageio import probe_video

    return probe_video(path, lambda box: int(box.streams.video[0].codec_context.colorspace) if box.streams.video
                       else None, None)


@functools.lru_cache(maxsize=1)
def opencv_ignores_bt709() -> bool:
    """Whether this OpenCV decodes a BT.709 video with BT.601's weights: a one-frame clip of pure red,
    coded BT.709 and tagged so, read back. False where that cannot be found out (OpenCV's reading
    is then left as it is)."""
    try:
        import av

        from srx.imageio import cv2_module

        cv2 = cv2_module()
        with tempfile.TemporaryDirectory(prefix="srx-bt709-") as tmp:
            clip = Path(tmp) / "red.mp4"
            with av.open(str(clip), "w") as box:
                stream = box.add_stream("libx264", rate=1, options={"crf": "0"})
                stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
                cc = stream.codec_context
                cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = BT709, BT709, BT709, 1
                red = np.zeros((64, 64, 3), np.uint8)
                red[..., 0] = 255
                frame = av.VideoFrame.from_ndarray(red, format="rgb24").reformat(
                    format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
                frame.pts = 0
                for packet in (*stream.encode(frame), *stream.encode()):
                    box.mux(packet)
            cap = cv2.VideoCapture(str(clip))
            ok, got = cap.read()
            cap.release()
    except Exception as exc:  # noqa: BLE001  (no PyAV, no x264: nothing measured, nothing changed)
        log.debug("could not measure how OpenCV decodes BT.709: %s", exc)
        return False
    if not ok or got is None:
        return False
    red_level = float(np.median(got[16:48, 16:48, 2]))
    log.debug("OpenCV decodes BT.709 pure red as %.0f (BT.601's weights give about 232)", red_level)
    return red_level < 244


def needs_pyav(path: Path | str) -> bool:
    """Whether `path` is a BT.709 video this OpenCV would decode with the wrong colours."""
    return colour_space(path) == BT709 and opencv_ignores_bt709()


_TURNS = {90: "ROTATE_90_CLOCKWISE", 180: "ROTATE_180", 270: "ROTATE_90_COUNTERCLOCKWISE"}


class AvFileCapture:
    """A video file through PyAV, answering the cv2.VideoCapture calls srx makes of one: read() and
    grab() give the next frame (BGR, in the colours the file is tagged with, turned as its container's
    rotation says, as OpenCV's CAP_PROP_ORIENTATION_AUTO turns it); get() the time of the frame last
    read (CAP_PROP_POS_MSEC, from the stream's start, as OpenCV counts it), the rate, the frame count
    the container states, the size as shown and the pixels' shape. A packet that does not decode is
    passed over (OpenCV's reader does the same); a file that ends early ends the frames."""

    def __init__(self, path: Path | str) -> None:
        from srx.imageio import cv2_module
        from srx.media import pyav_module

        self._cv2 = cv2_module()
        self._av = pyav_module("reading a BT.709 video in its own colours")
        self._box = self._av.open(str(path))
        if not self._box.streams.video:
            self._box.close()
            raise ValueError(f"{path} has no video stream")
        self._stream = self._box.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._frames = self._decoded()
        self._frame: Any = None
        self._index = -1
        self._ms = 0.0
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self._faulty_pts = self._faulty_dts = 0
        # an AVI holds no picture times, only the packets' order: with B-frames those are not the pictures'
        self._by_index = "avi" in self._box.format.name.split(",") and bool(self._stream.codec_context.has_b_frames)
        start = self._stream.start_time
        self._start = start if start is not None else 0
        try:  # the first frame says how the frames are turned, which the size answers before a read
            self._pending = next(self._frames, None)
        except self._av.error.FFmpegError:
            self._pending = None
        rotation = getattr(self._pending, "rotation", 0) or 0
        self._turn = int(round(-float(rotation))) % 360

    def _decoded(self):
        for packet in self._box.demux(self._stream):
            try:
                yield from packet.decode()
            except self._av.error.EOFError:
                return
            except (self._av.error.InvalidDataError, self._av.error.FFmpegError) as exc:
                log.debug("a packet of %s did not decode: %s", self._box.name, exc)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._box is not None

    def grab(self) -> bool:
        if self._box is None:
            return False
        try:
            frame, self._pending = (self._pending, None) if self._pending is not None else (next(self._frames), None)
        except (StopIteration, self._av.error.FFmpegError):
            self._frame = None
            return False
        self._frame, self._index = frame, self._index + 1
        stamp = None if self._by_index else self._stamp(frame.pts, frame.dts)
        if stamp is not None:
            self._ms = float((stamp - self._start) * self._stream.time_base) * 1000.0
        else:  # a raw stream without times, an AVI's reordered pictures: the frame's place at the stated rate
            self._ms = self._index * 1000.0 / (self.get(self._cv2.CAP_PROP_FPS) or 25.0)
        return True

    def _stamp(self, pts: int | None, dts: int | None) -> int | None:
        """A frame's time as FFmpeg's best-effort timestamp guesses it (what OpenCV reports): its pts,
        unless the pts have gone backwards more often than the dts (an AVI's B-frames carry the
        packets' order, not the pictures'), then its dts."""
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            self._faulty_pts += 1
        if dts is not None and self._last_dts is not None and dts <= self._last_dts:
            self._faulty_dts += 1
        self._last_pts = pts if pts is not None else self._last_pts
        self._last_dts = dts if dts is not None else self._last_dts
        if pts is not None and (self._faulty_pts <= self._faulty_dts or dts is None):
            return pts
        return dts

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self._frame is None:
            return False, None
        img = self._frame.to_ndarray(format="bgr24")
        if self._turn in _TURNS:
            img = self._cv2.rotate(img, getattr(self._cv2, _TURNS[self._turn]))
        return True, np.ascontiguousarray(img)

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self.retrieve() if self.grab() else (False, None)

    def _rate(self) -> float:
        for rate in (self._stream.average_rate, self._stream.guessed_rate, self._stream.base_rate):
            if rate and 0 < float(rate) <= 1000:
                return float(rate)
        return 0.0

    def get(self, prop: int) -> float:
        cv2 = self._cv2
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self._ms
        if prop == cv2.CAP_PROP_FPS:
            return self._rate()
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            if self._stream.frames:
                return float(self._stream.frames)
            seconds = (float(self._stream.duration * self._stream.time_base) if self._stream.duration
                       else (self._box.duration or 0) / 1e6)
            return float(int(seconds * self._rate() + 0.5))
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            w, h = self._stream.codec_context.width, self._stream.codec_context.height
            if self._turn % 180 == 90:
                w, h = h, w
            return float(w if prop == cv2.CAP_PROP_FRAME_WIDTH else h)
        if prop in (cv2.CAP_PROP_SAR_NUM, cv2.CAP_PROP_SAR_DEN):
            sar = self._stream.sample_aspect_ratio or self._stream.codec_context.sample_aspect_ratio
            sar = Fraction(sar) if sar else Fraction(0, 1)
            return float(sar.numerator if prop == cv2.CAP_PROP_SAR_NUM else sar.denominator or 1)
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None
