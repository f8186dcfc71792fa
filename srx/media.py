"""Writing upscaled videos with PyAV (FFmpeg), an srx dependency: H.264 frames (`H264Writer`) and
the source's sound carried over (`mux_audio`).

`H264Writer` codes BGR frames with x264 (CRF 18, preset medium, 4:2:0, BT.601 limited range, tagged
so), the format every player and browser plays; an odd side loses its last pixel, as 4:2:0 needs
even sides.

`mux_audio` takes the video-only file srx wrote and the source, and writes a third file with the
video packets copied as they are and the source's first audio stream: copied too when
the output container takes its codec (AAC into .mp4, anything into .mkv), otherwise re-encoded to
AAC (PCM from an .avi into an .mp4, say). Nothing is decoded or re-encoded on the video side.
"""
from __future__ import annotations

import heapq
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from srx.errors import SrxError

log = logging.getLogger("srx")

#: x264's constant quality: 18 is about visually lossless, so the coding hides little of what SR added
H264_CRF = 18


class H264Writer:
    """BGR uint8 frames of one size into an H.264 video at `fps` (.mp4, .mov, .mkv, ...). Defaults for
    files (`srx upscale`); a live recording takes preset "ultrafast" on one thread, which costs about
    what OpenCV's MPEG-4 Part 2 writer did (6 against 5 ms a 960x540 frame on this CPU)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], *, crf: int = H264_CRF,
                 preset: str = "medium", threads: int = 0) -> None:
        av = _av()
        w, h = size
        self.size = (w - w % 2, h - h % 2)
        if min(self.size) < 2:
            raise SrxError(f"a {w}x{h} frame is too small for an H.264 video")
        self.container = av.open(str(path), "w")
        try:
            stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = self.size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": preset, "threads": str(threads)}  # threads 0: x264 picks
            cc = stream.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 6, 6, 6, 1  # smpte170m, limited (tv)
        except Exception:
            self.container.close()
            raise
        self.stream = stream
        self._av = av

    def write(self, frame: np.ndarray) -> None:
        import cv2

        w, h = self.size
        # OpenCV's BGR -> I420 is BT.601 limited range exactly (the Y plane is srx's Y); swscale's
        # bgr24 -> yuv420p, which PyAV would use, darkens Y by 1.5-3 levels
        i420 = cv2.cvtColor(np.ascontiguousarray(frame[:h, :w]), cv2.COLOR_BGR2YUV_I420)
        image = self._av.VideoFrame.from_ndarray(i420, format="yuv420p")
        for packet in self.stream.encode(image):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()


def _av():
    try:
        import av
    except ImportError:
        raise SrxError("writing videos (H.264, their sound) needs PyAV, an srx dependency: pip install av") from None
    return av


def audio_codec(path: Path) -> str | None:
    """The codec name of the first audio stream of `path`, or None when it has none (or cannot be read)."""
    av = _av()
    try:
        with av.open(str(path)) as src:
            return src.streams.audio[0].codec_context.name if src.streams.audio else None
    except av.error.FFmpegError:
        return None


def mux_audio(video_path: Path, audio_source: Path, out_path: Path) -> str:
    """Write `out_path` (its container from its extension): `video_path`'s first video stream,
    copied, and `audio_source`'s first audio stream, shifted by the source video's start so the two
    stay in sync. Returns what was done with the sound ("aac copied", "aac from pcm_s16le").
    SrxError when `audio_source` has no sound or FFmpeg refuses both ways."""
    av = _av()
    # FFmpeg refuses a codec a container cannot hold as FFmpegError, PyAV (before FFmpeg sees it) as ValueError
    refused = (av.error.FFmpegError, ValueError)
    try:
        return _mux(av, video_path, audio_source, out_path, reencode=False)
    except refused as first:
        log.debug("copying the sound into %s failed (%s); re-encoding it to AAC", out_path.suffix, first)
        try:
            return _mux(av, video_path, audio_source, out_path, reencode=True)
        except refused as exc:
            raise SrxError(f"cannot put the sound of {audio_source.name} into a {out_path.suffix} file: {exc}") from None


def _mux(av: Any, video_path: Path, audio_source: Path, out_path: Path, reencode: bool) -> str:
    with av.open(str(video_path)) as vid, av.open(str(audio_source)) as src, av.open(str(out_path), "w") as out:
        if not vid.streams.video:
            raise SrxError(f"{video_path} holds no video stream")
        if not src.streams.audio:
            raise SrxError(f"{audio_source.name} has no sound to carry over")
        v_in, a_in = vid.streams.video[0], src.streams.audio[0]
        v_out = out.add_stream_from_template(v_in)
        # the upscaled video starts at 0; the sound keeps its distance from the source's first frame
        v_src = src.streams.video[0] if src.streams.video else None
        start = float(v_src.start_time * v_src.time_base) if v_src is not None and v_src.start_time is not None else 0.0
        if reencode:
            a_out = out.add_stream("aac", rate=a_in.codec_context.sample_rate or 48000)
            a_out.layout = a_in.codec_context.layout.name if a_in.codec_context.layout else "stereo"
            what = f"aac from {a_in.codec_context.name}"
        else:
            a_out = out.add_stream_from_template(a_in)
            what = f"{a_in.codec_context.name} copied"
        video = _packets(vid, v_in, v_out, 0.0)
        sound = (_encoded(av, src, a_in, a_out, start) if reencode else _packets(src, a_in, a_out, start))
        for _, _, packet in heapq.merge(video, sound, key=lambda item: (item[0], item[1])):
            out.mux(packet)
        if reencode:
            for packet in a_out.encode(None):
                out.mux(packet)
    return what


def _packets(container: Any, stream_in: Any, stream_out: Any, start_s: float) -> Iterator[tuple[float, int, Any]]:
    """(time in seconds, stream order, packet) of `stream_in`'s packets, retargeted at `stream_out`
    and moved `start_s` seconds earlier (packets that would fall before 0 are dropped)."""
    shift = round(start_s / stream_in.time_base) if start_s else 0
    for packet in container.demux(stream_in):
        if packet.dts is None:  # the demuxer's end-of-stream marker
            continue
        if shift:
            if packet.pts is not None and packet.pts - shift < 0:
                continue
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts -= shift
        packet.stream = stream_out
        yield float(packet.dts * stream_in.time_base), stream_out.index, packet


def _encoded(av: Any, container: Any, stream_in: Any, stream_out: Any, start_s: float) -> Iterator[tuple[float, int, Any]]:
    """The sound decoded, resampled to what the AAC encoder takes, re-encoded; `start_s` as above."""
    rate = stream_out.codec_context.sample_rate
    resampler = av.AudioResampler(format=stream_out.codec_context.format.name,
                                  layout=stream_out.codec_context.layout.name, rate=rate)
    samples = 0
    for frame in container.decode(stream_in):
        t = float(frame.time) if frame.time is not None else samples / rate
        if t < start_s:
            continue
        for out_frame in resampler.resample(frame):
            out_frame.pts, out_frame.time_base = samples, Fraction(1, rate)
            samples += out_frame.samples
            for packet in stream_out.encode(out_frame):
                yield (float(packet.dts * packet.time_base) if packet.dts is not None else samples / rate,
                       stream_out.index, packet)
    for out_frame in resampler.resample(None):
        out_frame.pts, out_frame.time_base = samples, Fraction(1, rate)
        samples += out_frame.samples
        for packet in stream_out.encode(out_frame):
            yield float(packet.dts * packet.time_base), stream_out.index, packet
