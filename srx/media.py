"""Writing upscaled videos with PyAV (FFmpeg), an srx dependency: H.264 frames (`H264Writer`),
lossless FFV1 frames (`FFV1Writer`), each at its own time, and the source's sound carried over
(`mux_audio`).

`H264Writer` codes BGR frames with x264 (CRF 18, preset medium, 4:2:0, BT.601 limited range, tagged
so), the format every player and browser plays; an odd side loses its last pixel, as 4:2:0 needs
even sides. `MJPEGWriter` writes Motion JPEG into an .avi at a fixed rate (what OpenCV's writer did,
which says nothing of a write that fails).

A writer whose write failed (a full disk) is closed without feeding its muxer again: where the
failed write was the container's header, FFmpeg's muxer is torn down, and a second header (PyAV
writes one at the next packet) crashes the process (a segmentation fault in
`avformat_init_output`, PyAV 18.1 / FFmpeg 8).

`mux_audio` takes the video-only file srx wrote and the source, and writes a third file with the
video packets copied as they are and the source's first audio stream: copied too when
the output container takes its codec (AAC into .mp4, anything into .mkv), otherwise re-encoded to
AAC (PCM from an .avi into an .mp4, say). Nothing is decoded or re-encoded on the video side.
"""
from __future__ import annotations

import contextlib
import heapq
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from srx.errors import SrxError

log = logging.getLogger("srx")

#: x264's constant quality: 18 is about visually lossless, so the coding hides little of what SR added
H264_CRF = 18


@dataclass(frozen=True)
class LiveTarget:
    """Where H264Writer publishes instead of a file: an FFmpeg muxer (`format`, e.g. "rtsp") and its
    options, a (open, read) timeout in seconds, and the `label` errors name it by (a URL without its
    password). PyAV applies no timeout to a send: one to a server that hangs (its connection open,
    nothing read) blocks until it reads again, so a caller that must not wait sends from a thread
    of its own (camera/publish.py RtspOutput)."""

    format: str
    label: str
    options: tuple[tuple[str, str], ...] = ()
    timeout: tuple[float, float] = (5.0, 5.0)


#: the time base of the frames H264Writer stamps (MPEG's 90 kHz clock: 29.97 fps is 3003 ticks a frame)
PTS_RATE = 90000


class _TimedWriter:
    """BGR uint8 frames of one size into a video through PyAV, each at its own time: write(frame,
    at_ms) keeps a source frame's time, so a variable-rate video (a phone's, an NVR's export with
    the night's frames thinned out) plays at its own pace and stays in step with its sound. Without
    `at_ms`, or where a time does not advance past the last one (a backend that gives none), a frame
    comes 1/fps after the one before it. Subclasses open their stream with _open and say how a frame
    is coded (_picture)."""

    path: Path | str
    label: str
    size: tuple[int, int]

    #: why a write failed (FFmpeg's words): nothing more goes to the muxer (the module's docstring)
    _failed: str | None = None
    #: the frames the muxer took, for what a failed recording's partial file holds at most
    muxed = 0
    #: the bytes of coded video the muxer took: a file that holds fewer lost some (`_check_landed`)
    coded_bytes = 0
    #: the clock frames are stamped on: PTS_RATE ticks, or one tick a frame for a fixed rate
    _time_base = Fraction(1, PTS_RATE)

    def _open(self, fps: float, codec: str, pix_fmt: str, setup: Any = None, **open_args: Any) -> None:
        """Open the container (`av.open(path, "w", **open_args)`) with one `codec` stream of
        `self.size` and `pix_fmt` on the `_time_base` clock; `setup(stream)` sets the codec's own options.
        The container is closed again where the stream cannot be made."""
        self.codec = codec
        with self._errors("open"):
            self.container = self._av.open(str(self.path), "w", **open_args)
            try:
                stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = self.size
                stream.pix_fmt = pix_fmt
                stream.codec_context.time_base = self._time_base
                if setup is not None:
                    setup(stream)
            except BaseException:
                self.container.close()
                raise
        self.stream = stream
        self._step = max(1, round(PTS_RATE / fps)) if fps > 0 else PTS_RATE // 25
        self._last_pts: int | None = None

    def _pts(self, at_ms: float | None) -> int:
        """The frame's time in ticks: its own where it is later than the last frame's, else one frame on."""
        last = self._last_pts
        pts = 0 if last is None else last + self._step
        if at_ms is not None and np.isfinite(at_ms) and at_ms >= 0:
            tb = self._time_base
            own = round(at_ms * tb.denominator / (1000 * tb.numerator))
            if last is None or own > last:
                pts = own
        self._last_pts = pts
        return pts

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """FFmpeg's failures (a full disk, a folder gone) as one SrxError naming the file (`label`:
        the user's, where srx writes a temporary file first). x264 fails every allocation as a
        "Generic error in an external library" (its own "malloc ... failed" goes to stderr only),
        which is said as what it most likely is."""
        try:
            yield
        except (self._av.error.FFmpegError, OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)  # FFmpeg's own words, without "[Errno N]" and the name
            why = str(why).replace(str(self.path), self.label)  # a URL's password never reaches a message
            if isinstance(exc, self._av.error.MemoryError):
                why = f"out of memory ({why}); free some memory or use a machine with more"
            elif isinstance(exc, self._av.error.ExternalError) and getattr(self, "codec", "") == "libx264":
                why = (f"the H.264 encoder (x264) failed: {why}; it fails so when it runs out of memory (then its "
                       "own 'malloc ... failed' line is above): free some memory or use a machine with more")
            err = SrxError(f"cannot {doing} the video {self.label}: {why}")
            err.reason = why  # for a caller that names the target itself (the RTSP output)
            raise err from None

    def _picture(self, frame: np.ndarray) -> Any:
        raise NotImplementedError

    def write(self, frame: np.ndarray, at_ms: float | None = None) -> None:
        if self._failed is not None:
            raise SrxError(f"cannot write the video {self.label}: an earlier write failed ({self._failed})")
        image = self._picture(frame)
        image.pts, image.time_base = self._pts(at_ms), self._time_base
        try:
            with self._errors("write"):
                for packet in self.stream.encode(image):
                    self.coded_bytes += packet.size
                    self.container.mux(packet)
                    self.muxed += 1
        except SrxError as exc:
            self._failed = exc.reason
            raise

    def close(self) -> None:
        """Flush the encoder and write the trailer; after a failed write, only the trailer where the
        header went out (the container's own close), never another packet (the module's docstring)."""
        with self._errors("finish"):
            try:
                if self._failed is None:
                    for packet in self.stream.encode(None):
                        self.coded_bytes += packet.size
                        self.container.mux(packet)
                        self.muxed += 1
            except BaseException:
                self._failed = "the last frames could not be written"
                raise
            finally:
                self.container.close()
        if self._failed is None:
            self._check_landed()

    def _check_landed(self) -> None:
        """FFmpeg's file writes are buffered, and a buffer that a full disk refused is not always said
        by the mux call that filled it: a fragmented .mp4 cut off so was called finished (10 frames
        recorded, none in the file). A file that holds fewer bytes than the video coded into it
        lost some; SrxError then, with the disk's state. (A stream to a URL is not checked.)"""
        try:
            size = os.stat(self.path).st_size
        except (OSError, TypeError, ValueError):  # not a file (a URL, a LiveTarget)
            return
        if size >= self.coded_bytes:
            return
        try:
            room = os.statvfs(os.path.dirname(os.path.abspath(self.path)) or ".")
            full = room.f_bavail * room.f_frsize < 1 << 20
        except OSError:
            full = False
        why = "No space left on device" if full else "a write to it failed"
        self._failed = why
        err = SrxError(f"cannot finish the video {self.label}: {why} (the file holds {size} of the "
                       f"{self.coded_bytes} bytes of video coded)")
        err.reason = why
        raise err


#: a recording's muxer options, so what a kill or a power cut leaves holds what was muxed: FFmpeg's
#: output buffer (256 KiB) flushed after each packet the muxer writes (a fragment, a cluster, an AVI
#: chunk); without it, at a camera's bitrate, a partial file held nothing for its first seconds
ON_DISK_AS_IT_GOES = {"flush_packets": "1"}


class H264Writer(_TimedWriter):
    """BGR uint8 frames of one size into an H.264 video at `fps` (.mp4, .mov, .mkv, ...), each at its
    time (_TimedWriter). Defaults for files (`srx upscale`); a live recording takes preset
    "ultrafast" on one thread, which costs about what OpenCV's MPEG-4 Part 2 writer did (6 against
    5 ms a 960x540 frame on this CPU). `fragmented` (a recording that runs for hours): an MP4/MOV
    written as a fragment a second, each with its own index, so a file cut off by a crash, a kill
    or a power cut plays up to its last second (a plain MP4's index is written at the end: without
    it nothing plays), each fragment on disk as it is made (`ON_DISK_AS_IT_GOES`); players and
    OpenCV read it as any MP4, frame count and rate included."""

    def __init__(self, path: Path | str, fps: float, size: tuple[int, int], *, crf: int = H264_CRF,
                 preset: str = "medium", threads: int = 0, live: LiveTarget | None = None,
                 fragmented: bool = False, label: str | None = None) -> None:
        av = pyav_module()
        w, h = size
        self.path = path if live is not None else Path(path)
        # what errors name: a URL without its password, or `label` (the user's file, where `path` is a temporary one)
        self.label = live.label if live is not None else str(label or path)
        self.size = (w - w % 2, h - h % 2)
        if min(self.size) < 2:
            raise SrxError(f"a {w}x{h} frame is too small for an H.264 video")
        from srx.imageio import cv2_module

        self._av, self._cv2 = av, cv2_module()

        def setup(stream: Any) -> None:
            options = {"crf": str(crf), "preset": preset, "threads": str(threads)}  # 0: x264 picks
            if live is not None:  # no B-frames or look-ahead, and a keyframe a second for viewers who join
                options.update(tune="zerolatency", g=str(max(1, round(fps))))
            stream.options = options
            cc = stream.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 6, 6, 6, 1  # smpte170m, limited

        target = {} if live is None else {"format": live.format, "options": dict(live.options), "timeout": live.timeout}
        if fragmented and live is None:
            target["options"] = dict(ON_DISK_AS_IT_GOES)
            if Path(path).suffix.lower() in (".mp4", ".mov", ".m4v"):
                target["options"].update(movflags="frag_keyframe+empty_moov+default_base_moof", frag_duration="1000000")
        self._open(fps, "libx264", "yuv420p", setup, **target)

    def _picture(self, frame: np.ndarray) -> Any:
        w, h = self.size
        # OpenCV's BGR -> I420 is BT.601 limited range exactly (the Y plane is srx's Y); swscale's
        # bgr24 -> yuv420p, which PyAV would use, darkens Y by 1.5-3 levels
        i420 = self._cv2.cvtColor(np.ascontiguousarray(frame[:h, :w]), self._cv2.COLOR_BGR2YUV_I420)
        return self._av.VideoFrame.from_ndarray(i420, format="yuv420p")


class MJPEGWriter(_TimedWriter):
    """BGR uint8 frames of one size into a Motion JPEG .avi at a fixed `fps`: AVI numbers its frames,
    so a write without a time is the next slot, 1/fps after the one before (a caller that keeps a
    source's pace repeats a frame for the slots it stays on screen), and one with a time goes to the
    slot of that time, FFmpeg's AVI muxer filling the slots between with empty chunks, which players
    show as the frame before: a variable-rate video keeps its pace and its sound in step, to the
    nearest slot (it played every frame 1/fps after the one before, seconds away from its sound). Each frame is a JPEG of
    its own, full-range BT.601 4:2:0 (an odd side loses its last pixel) at a fixed quantiser of 3:
    about what OpenCV's MJPEG writer, which this replaces, stored (40.4 against 40.3 dB on CCTV frames
    upscaled to 960x720, 4 % more bytes). Unlike that writer, a write that fails (a full disk) is an
    SrxError, not a file cut short and called a success."""

    _time_base = Fraction(1, 1)

    def __init__(self, path: Path | str, fps: float, size: tuple[int, int], *, label: str | None = None,
                 fragmented: bool = False) -> None:
        av = pyav_module("writing MJPEG videos (.avi)")
        w, h = size
        self.path, self.label, self.size = Path(path), str(label or path), (w - w % 2, h - h % 2)
        if min(self.size) < 2:
            raise SrxError(f"a {w}x{h} frame is too small for an MJPEG video")
        rate = Fraction(fps if fps > 0 else 25).limit_denominator(1001)
        self._av, self._time_base = av, 1 / rate

        def setup(stream: Any) -> None:
            stream.options = {"qmin": "3", "qmax": "3"}  # a fixed quantiser: the same quality every frame
            stream.codec_context.color_range = 2  # JPEG's full range, as the yuvj pixel format says

        self._open(float(rate), "mjpeg", "yuvj420p", setup, **({"options": dict(ON_DISK_AS_IT_GOES)} if fragmented else {}))
        self._step = 1  # a slot a frame

    def _picture(self, frame: np.ndarray) -> Any:
        w, h = self.size
        bgr = frame[:h, :w] if frame.ndim == 3 else np.repeat(frame[:h, :w, None], 3, axis=2)
        return self._av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")


class FFV1Writer(_TimedWriter):
    """BGR uint8 frames of one size into a lossless FFV1 video (.mkv), each at its time
    (_TimedWriter): every pixel as written, for measuring, and a variable rate kept, for watching.
    `fragmented` (a recording): a Matroska cluster a second, on disk as it is made."""

    def __init__(self, path: Path | str, fps: float, size: tuple[int, int], *, fragmented: bool = False) -> None:
        av = pyav_module("writing lossless FFV1 videos")
        self.path, self.label, self.size = Path(path), str(path), (int(size[0]), int(size[1]))
        self._av = av
        options = {"options": {**ON_DISK_AS_IT_GOES, "cluster_time_limit": "1000"}} if fragmented else {}
        self._open(fps, "ffv1", "bgr0", **options)  # bgr0: the BGR bytes as they are (what OpenCV's FFV1 writer stores)

    def _picture(self, frame: np.ndarray) -> Any:
        w, h = self.size
        bgr = frame[:h, :w] if frame.ndim == 3 else np.repeat(frame[:h, :w, None], 3, axis=2)
        # bgr24 -> bgr0 is a repacking of the same bytes (swscale, when PyAV hands it to the encoder)
        return self._av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")


def pyav_module(purpose: str = "writing videos (H.264, their sound)"):
    """Import PyAV lazily, with a fix-it message naming what needed it instead of an ImportError."""
    try:
        import av
    except ModuleNotFoundError:
        raise SrxError(f"{purpose} needs PyAV, an srx dependency whose wheels bundle FFmpeg with x264; "
                       "it is missing: pip install av") from None
    except ImportError as exc:  # there, but its libraries do not load (short of memory, a broken install)
        why = (str(exc).strip().splitlines() or ["ImportError"])[0]
        short = " (most likely too little memory)" if "failed to map segment" in why or "cannot allocate memory" in why.lower() else ""
        raise SrxError(f"{purpose} needs PyAV, which is installed but failed to load: {why}{short}") from None
    return av


def codec_name(stream: Any) -> str:
    """A stream's codec as users know it ('mp3'), not FFmpeg's decoder for it ('mp3float')."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def audio_codec(path: Path) -> str | None:
    """The codec name of the first audio stream of `path`, or None when it has none (or cannot be read)."""
    av = pyav_module()
    try:
        with av.open(str(path)) as src:
            return codec_name(src.streams.audio[0]) if src.streams.audio else None
    except av.error.FFmpegError:
        return None


def interlaced_video(path: Path) -> bool:
    """Whether the first frame of `path`'s video is coded as fields (interlaced: an analogue camera's
    recording, a DVD, broadcast TV), which OpenCV's reading passes on as they are, combed; False
    where it cannot be read."""
    av = pyav_module()
    try:
        with av.open(str(path)) as src:
            return bool(next(src.decode(video=0)).interlaced_frame) if src.streams.video else False
    except (av.error.FFmpegError, StopIteration):
        return False


#: FFmpeg's AVFMT_TS_NEGATIVE: the container stores times before 0 (MP4 and MOV do, through an edit list)
_AVFMT_TS_NEGATIVE = 0x40000
#: sample rates the AAC encoder takes; others are resampled to 48 kHz
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
#: what an unnamed layout ("2 channels": PCM in AVI or MKV) becomes for the AAC encoder
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def mux_audio(video_path: Path, audio_source: Path, out_path: Path, *, aac: bool = False) -> str:
    """Write `out_path` (its container from its extension): `video_path`'s first video stream,
    copied, and `audio_source`'s first audio stream, placed against the video as it was against the
    source's video (the upscaled video starts at 0 where the source's started). The sound is copied
    where the container takes its codec, else (or with `aac`) re-encoded to AAC. Returns what was
    done with it ("aac copied", "pcm_s16le re-encoded to aac"). SrxError when `audio_source` has no sound or
    FFmpeg refuses both ways."""
    av = pyav_module()
    # FFmpeg refuses a codec a container cannot hold as FFmpegError, PyAV (before FFmpeg sees it) as ValueError
    refused = (av.error.FFmpegError, ValueError)
    if not aac:
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
        rate = v_in.average_rate or v_in.guessed_rate
        if rate:  # without it Matroska's muxer stores a rate from its clock (30000 fps, 91260 frames for 30)
            v_out.codec_context.framerate = rate
        # the video OpenCV decoded (its best stream, not a cover picture) started here in the source
        v_src = src.streams.best("video")
        start = float(v_src.start_time * v_src.time_base) if v_src is not None and v_src.start_time is not None else 0.0
        if reencode:
            cc = a_in.codec_context
            rate = cc.sample_rate if cc.sample_rate in _AAC_RATES else 48000
            a_out = out.add_stream("aac", rate=rate)
            named = cc.layout is not None and not cc.layout.name.endswith("channels")
            a_out.layout = cc.layout.name if named else _DEFAULT_LAYOUTS.get(cc.channels, "stereo")
            what = f"{codec_name(a_in)} re-encoded to aac"
        else:
            a_out = out.add_stream_from_template(a_in)
            what = f"{codec_name(a_in)} copied"
        video = _packets(vid, v_in, v_out, 0.0)
        # a container that cannot store a time before 0 (AVI) would have FFmpeg move every stream later
        # by the sound's lead-in (AAC's priming packet, -1024 samples): in AVI's frame-numbered video that
        # put every frame after the first a slot late. Such a container gets no packet before 0.
        negative_ok = bool(out.format.flags & _AVFMT_TS_NEGATIVE)
        sound = (_encoded(av, src, a_in, a_out, start, clip=not negative_ok) if reencode
                 else _packets(src, a_in, a_out, start, clip=not negative_ok))
        for _, _, packet in heapq.merge(video, sound, key=lambda item: (item[0], item[1])):
            out.mux(packet)
    return what


def _packets(container: Any, stream_in: Any, stream_out: Any, start_s: float,
             clip: bool = False) -> Iterator[tuple[float, int, Any]]:
    """(time in seconds, stream order, packet) of `stream_in`'s packets, retargeted at `stream_out`
    and moved `start_s` seconds earlier, in the order they are stored. Timestamps are on dts, or pts
    where the container keeps no dts (Matroska); the key never goes back, as the merge needs. A
    packet that ends before the new 0 is dropped, one that straddles it starts at 0 (`clip`: so even
    when nothing is moved)."""
    tb = stream_in.time_base
    shift = round(start_s / tb) if start_s else 0
    key = float("-inf")
    for packet in container.demux(stream_in):
        if packet.size == 0:  # the demuxer's end-of-stream marker
            continue
        if shift or clip:
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None and stamp - shift + (packet.duration or 0) <= 0:
                continue
            if packet.pts is not None:
                packet.pts = max(0, packet.pts - shift)
            if packet.dts is not None:
                packet.dts = max(0, packet.dts - shift) if packet.pts is not None else packet.dts - shift
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None:
            key = max(key, float(stamp * tb))
        packet.stream = stream_out
        yield key, stream_out.index, packet


def _encoded(av: Any, container: Any, stream_in: Any, stream_out: Any, start_s: float,
             clip: bool = False) -> Iterator[tuple[float, int, Any]]:
    """The sound decoded, resampled to what the AAC encoder takes and re-encoded, its first sample
    at its time in the source less `start_s` (a frame straddling that moves to 0), then
    continuous; the encoder is flushed at the end. `clip`: for a container that cannot store a time
    before 0 (AVI), the encoder's lead-in packet, which AAC stamps before 0, is left out (FFmpeg moved
    every stream later by it: in an .avi every frame after the first a slot late, as for copied sound)."""
    cc = stream_out.codec_context
    rate = cc.sample_rate
    resampler = av.AudioResampler(format=cc.format.name, layout=cc.layout.name, rate=rate)
    samples: int | None = None  # the next output sample's pts, set by the first frame kept
    key = float("-inf")

    def encoded(frame: Any) -> Iterator[tuple[float, int, Any]]:
        nonlocal key
        for packet in stream_out.encode(frame):
            if clip and packet.pts is not None and packet.pts < 0:
                if packet.pts + (packet.duration or 0) <= 0:
                    continue
                packet.pts = packet.dts = 0
            if packet.dts is not None:
                key = max(key, float(packet.dts * packet.time_base))
            yield key, stream_out.index, packet

    for frame in container.decode(stream_in):
        t = float(frame.time) if frame.time is not None else None
        if t is not None and t + frame.samples / frame.sample_rate <= start_s:
            continue
        if samples is None:
            samples = max(0, round(((t if t is not None else start_s) - start_s) * rate))
        for out_frame in resampler.resample(frame):
            out_frame.pts, out_frame.time_base = samples, Fraction(1, rate)
            samples += out_frame.samples
            yield from encoded(out_frame)
    for out_frame in resampler.resample(None):
        out_frame.pts, out_frame.time_base = samples or 0, Fraction(1, rate)
        samples = (samples or 0) + out_frame.samples
        yield from encoded(out_frame)
    yield from encoded(None)
