"""Where frames come from: a V4L2 camera, a video file, an RTSP/HTTP URL, a GStreamer pipeline, a
folder of images, the built-in demo scene, or any Python iterable of frames.

`parse_source` turns the CLI's --camera/--source/--demo into a `SourceSpec`; `open_reader` opens it
with a deadline (FFmpeg's open/read timeouts, plus a thread with a deadline around the open), so a
source that never answers is one clear SrxError, never a hang. Network streams are read through
PyAV (`AvReader`), files, cameras and GStreamer pipelines through OpenCV. A reader returns frames until the source ends or fails (None); what that means, end of file
or a lost connection, is the capture thread's business.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from srx.errors import SrxError
from srx.imageio import IMAGE_EXTENSIONS, as_played, pixel_shape

log = logging.getLogger("srx")

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
KINDS = ("camera", "file", "url", "gstreamer", "folder", "demo", "frames")


@dataclass
class SourceSpec:
    """What to open. `target`: camera index, path, URL, pipeline, or (frames) an iterable or a
    zero-argument callable returning an iterator (called again for each loop)."""

    kind: str
    target: Any
    loop: bool = False
    fps: float | None = None  # frames/demo sources: their nominal rate (None: as fast as read)
    roi: tuple[int, int, int, int] | None = None  # (left, top, width, height): upscale only this region
    max_fps: float | None = None  # at most this many frames a second go to the model (--max-fps); the rest are skipped
    rtsp_transport: str = "tcp"  # how an rtsp:// source's video comes (--rtsp-transport): tcp or udp
    env_names: tuple[str, ...] = ()  # the environment variables its ${NAME} took (a password): said if a login fails

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SrxError(f"unknown source kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        parse_rtsp_transport(self.rtsp_transport)

    @property
    def rtsp(self) -> bool:
        """An rtsp:// or rtsps:// URL: its video comes over `rtsp_transport`."""
        return self.kind == "url" and str(self.target).lower().startswith(("rtsp://", "rtsps://"))

    @property
    def live(self) -> bool:
        """A live source runs at its own pace; a recorded one is paced at its fps by the capture."""
        return self.kind in ("camera", "url") or (self.kind == "gstreamer" and not plays_file(str(self.target)))

    @property
    def reconnects(self) -> bool:
        """Live sources that stop are retried (a restarted server, a replugged camera)."""
        return self.live

    def describe(self) -> str:
        if self.roi is None:
            return self.describe_whole()
        x, y, w, h = self.roi
        return f"{self.describe_whole()}, region {w}x{h} at {x},{y}"

    def describe_whole(self) -> str:
        if self.kind == "camera":
            return f"camera {self.target}"
        if self.kind == "demo":
            return "demo scene (built in)"
        if self.kind == "frames":
            return "frames (in-process)"
        if self.kind == "url":
            return redact_url(str(self.target))
        if self.kind == "gstreamer":  # rtspsrc location=rtsp://user:pw@... user-pw=...
            return f"{self.kind} {redact_text(str(self.target))}"
        return f"{self.kind} {self.target}"

    @classmethod
    def from_frames(cls, frames: Iterable[np.ndarray] | Callable[[], Iterator[np.ndarray]],
                    fps: float | None = None, loop: bool = False,
                    roi: tuple[int, int, int, int] | None = None) -> "SourceSpec":
        return cls("frames", frames, loop=loop, fps=fps, roi=roi)


#: the start of a URL: scheme://
_URL_START = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_pipeline(text: str) -> bool:
    """A --source with '!' in it is a GStreamer pipeline, unless it is a URL (a '!' in its password:
    'Passw0rd!' made an RTSP camera a pipeline, refused without GStreamer, its password printed with)."""
    return "!" in text and not _URL_START.match(text.strip())


#: a GStreamer pipeline's first elements that read a file, and those that read a URI (a file: one too)
FILE_ELEMENTS = ("filesrc", "multifilesrc", "splitmuxsrc")
URI_ELEMENTS = ("uridecodebin", "uridecodebin3", "urisourcebin", "playbin", "playbin3")


@functools.lru_cache(maxsize=64)  # SourceSpec.live asks it several times a frame
def plays_file(pipeline: str) -> bool:
    """Whether a GStreamer pipeline ends as a file does: its first element reads a file (filesrc
    location=..., uridecodebin uri=file://...; a Jetson decodes a file in hardware that way) or stops
    after `num-buffers`. Its end is then the end of the source, not a lost camera to reconnect, and
    --loop, --no-drop and the file's pace apply as to a file."""
    first = pipeline.split("!", 1)[0].split()
    if not first:
        return False
    props = dict(p.split("=", 1) for p in first[1:] if "=" in p)
    uri = props.get("uri", "").strip("'\"").lower()
    buffers = props.get("num-buffers", "-1").strip("'\"")
    return (first[0] in FILE_ELEMENTS or (first[0] in URI_ELEMENTS and uri.startswith("file:"))
            or (buffers.lstrip("-").isdigit() and int(buffers) > 0))


def parse_max_fps(text: str) -> float:
    """--max-fps N: a positive number of frames a second."""
    try:
        value = float(str(text).strip())
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise SrxError(f"--max-fps {text!r}: expected a positive number of frames a second, e.g. 5")
    return value


#: the smallest region --roi takes, in source pixels
MIN_ROI = 8


#: what a source that cannot be opened is told to check (left out of a reconnect's lines: it worked before)
CHECK_ADDRESS = "check the address and that the camera or server is running"

#: --rtsp-transport's values: the video interleaved in the RTSP connection, or RTP over UDP
RTSP_TRANSPORTS = ("tcp", "udp")


def parse_rtsp_transport(text: str) -> str:
    """--rtsp-transport tcp|udp."""
    value = str(text).strip().lower()
    if value not in RTSP_TRANSPORTS:
        raise SrxError(f"--rtsp-transport {text!r}: expected tcp (the video inside the RTSP connection: through NAT, "
                       "firewalls and 4G routers, and no frame damaged by a lost packet) or udp (RTP packets apart: "
                       "a little less delay on a clean local network)")
    return value


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    """--roi 'LEFT,TOP,WIDTH,HEIGHT' in the source's pixels -> a tuple (None stays None)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", str(text))
    if not m or min(int(m.group(3)), int(m.group(4))) < MIN_ROI:
        raise SrxError(f"--roi {text!r}: expected LEFT,TOP,WIDTH,HEIGHT in the source's pixels, width and height "
                       f"at least {MIN_ROI}, e.g. 640,360,640,360 for the centre of a 1920x1080 camera")
    x, y, w, h = (int(g) for g in m.groups())
    return x, y, w, h


#: parameters whose values are secrets, in a query or in a path (`?user=admin&password=...`, `&token=...`,
#: `/user=admin&password=...&channel=1.sdp` as some DVRs take it; `loginpas=`, SRT's `passphrase=`)
_SECRET_PARAM = re.compile(r"(?i)^(.*(pas|pwd|token|secret|cred).*|pw|auth|authorization|key|apikey|api_key|"
                           r"signature|sig)$")
_PARAM = re.compile(r"(^|[/?&;])([^/?&;=#]+)=([^/?&;#]*)")
#: GStreamer element properties that hold a password (rtspsrc user-pw=..., souphttpsrc user-pw=...)
_SECRET_PROPERTY = re.compile(r"""(?i)\b((?:user|proxy)-pw|password|passwd)(\s*=\s*)("[^"]*"|'[^']*'|[^\s!]+)""")
_URL_IN_TEXT = re.compile(r"""(?<=")[A-Za-z][A-Za-z0-9+.-]*://[^"]+(?=")|(?<=')[A-Za-z][A-Za-z0-9+.-]*://[^']+(?=')|"""
                          r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s"'!]+""")


def redact_url(url: str) -> str:
    """A URL with its secrets hidden, for logs, summaries and pages: rtsp://user:secret@host/... ->
    rtsp://user:***@host/..., and the values of secret query parameters (password=, token= ...).
    The login ends at the last '@' before the path, as FFmpeg reads it, so a password with an
    unencoded '@' is hidden whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    user, colon, after = authority.partition(":")
    at = rest.rfind("@")
    if (colon and at > cut and not authority.startswith("[") and ("@" in authority or not after.isdigit())):
        # a '/', '?' or '#' in the password (not a port after the ':'): the login ends at the last '@'
        # (before it, 'admin:p@ss' of 'admin:p@ss/w#1@host' looked like a login and a host)
        end = min((i for i in (rest.find(c, at) for c in "/?#") if i >= 0), default=len(rest))
        authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        login, host = authority.rsplit("@", 1)
        user, colon, _ = login.partition(":")
        authority = f"{user}:***@{host}" if colon else authority
    tail = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}=***" if m.group(3) and _SECRET_PARAM.match(m.group(2))
                      else m.group(0), tail)
    return f"{scheme}://{authority}{tail}"


def redact_text(text: str) -> str:
    """Every URL in `text` (a GStreamer pipeline's location=..., a message) redacted as redact_url
    does, and password properties (user-pw=...) hidden."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text))
    return _SECRET_PROPERTY.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, option: str) -> str:
    """`${NAME}` in a camera URL or pipeline replaced by the environment variable NAME, so a camera's
    password need not be on the command line, where every user of the host sees it (`ps`), nor in
    a systemd unit's ExecStart: rtsp://admin:${CAM1_PASSWORD}@10.0.0.5/live, with the variable
    from an EnvironmentFile only root reads."""
    def value(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise SrxError(f"{option} {redact_text(text)} names ${{{name}}}, which is not set; expected an environment "
                           f"variable {name} holding it (e.g. from systemd's EnvironmentFile=)")
        if not os.environ[name]:
            log.warning("%s %s names ${%s}, which is set but empty", option, redact_text(text), name)
        return os.environ[name]

    expanded = _ENV_REF.sub(value, text)
    login = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@", text)  # as written, ${NAME}s unexpanded
    for name in _ENV_REF.findall(login.group(1)) if login else []:
        char = next((c for c in "/?#" if c in os.environ.get(name, "")), None)
        if char:  # the variable is the password, whatever it looks like ('1234/ab' read as a port and a path)
            raise SrxError(f"{option} {redact_text(text)}: the password in ${{{name}}} holds an unencoded {char!r}, "
                           f"where a URL's address ends; {_ENCODE_ADVICE}")
    if _URL_START.match(expanded):
        check_login(expanded, option)
    return expanded


#: what a password's characters that end a URL's address are written as in one (and '%' itself)
PERCENT_ENCODED = {"/": "%2F", "?": "%3F", "#": "%23", "%": "%25"}


_ENCODE_ADVICE = ("write it percent-encoded (" + ", ".join(f"{c} as {code}" for c, code in PERCENT_ENCODED.items())
                  + "), in the URL or in the environment variable that holds it")


def check_login(url: str, option: str) -> None:
    """A URL whose password holds an unencoded '/', '?' or '#' is an SrxError saying how to write it:
    FFmpeg ends the address there, takes the rest of the password for a host or a port and says so
    in an error that shows part of it ('Port could not be cast to integer value as 'wr''). Only where
    that reading is the one left: the address up to its first '/', '?' or '#' holds no '@' (as FFmpeg
    splits it: 'admin:pw@host/live@main' is a login and a path with an '@') and a ':' after the user
    that no port follows ('host:554/a@b' is a port and a path); a password from ${NAME} is checked
    whatever it looks like, in expand_env."""
    scheme, sep, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:cut]
    user, colon, after = authority.partition(":")
    if not sep or "@" in authority or authority.startswith("[") or "@" not in rest[cut:] or not colon or after.isdigit():
        return
    raise SrxError(f"{option} {redact_url(url)}: the password holds an unencoded {rest[cut]!r}, where a URL's "
                   f"address ends; {_ENCODE_ADVICE}")


def _escape_hint(url: Any) -> str:
    """Why a login with a '%' and two hex digits in its password may be refused: FFmpeg decodes the
    login before it sends it ('Zq%41v' goes as 'ZqAv'), so a '%' in the password itself is %25. What
    the '%' stood for is not known, so this is said where the camera refused the login, not before;
    which characters they were is not said (they are part of the password)."""
    rest = str(url).partition("://")[2]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if not re.search(r"%[0-9A-Fa-f]{2}", rest[:cut].rpartition("@")[0].partition(":")[2]):
        return ""
    return ("; a '%' followed by two hex digits in the password is read as one encoded character (%41 as 'A'): "
            "a '%' that is part of the password is written %25")


def parse_source(camera: int | None = None, source: str | None = None, demo: bool = False,
                 loop: bool = False) -> SourceSpec:
    """Exactly one of --camera N / --source SPEC / --demo, checked here so mistakes are one line."""
    given = [name for name, value in (("--camera", camera), ("--source", source), ("--demo", demo or None))
             if value is not None]
    if len(given) != 1:
        found = " and ".join(given) if given else "none"
        raise SrxError(f"expected exactly one of --camera N, --source FILE|URL|PIPELINE or --demo; got {found}")
    if demo:
        from srx.camera.demo import DEMO_FPS

        return SourceSpec("demo", None, loop=loop, fps=DEMO_FPS)
    if camera is not None:
        if camera < 0:
            raise SrxError(f"--camera expects a device index (0 for /dev/video0), got {camera}")
        return SourceSpec("camera", int(camera))
    text = str(source).strip()
    if not text:
        raise SrxError("--source is empty; expected a video file, an rtsp:// or http(s):// URL, or a GStreamer pipeline")
    login = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)@", text)  # a URL's user:password (a pipeline's: all of it)
    names = tuple(dict.fromkeys(_ENV_REF.findall(login.group(1) if login else text if is_pipeline(text) else "")))
    if is_pipeline(text):
        return SourceSpec("gstreamer", expand_env(text, "--source"), loop=loop, env_names=names)
    check_url(text)
    if "://" in text:
        text = expand_env(text, "--source")
        scheme = text.split("://", 1)[0].lower()
        if scheme == "file":
            text = text.split("://", 1)[1]
        else:  # check_url took any other scheme
            return SourceSpec("url", text, env_names=names)
    if text.isdigit():
        raise SrxError(f"--source {text} looks like a camera index; use --camera {text}")
    path = Path(text).expanduser()
    if not path.exists():
        raise SrxError(f"source {path} does not exist; expected a video file, an image folder or a URL")
    if path.is_dir():
        from srx.imageio import list_images

        list_images(path)  # a clear error for a folder with no images
        return SourceSpec("folder", path, loop=loop)
    return SourceSpec("file", path, loop=loop)


#: the URL schemes whose address needs a host (and, if given, a port from 1 to 65535)
_HOSTED = ("rtsp", "rtsps", "http", "https", "rtmp")


def check_url(text: str, option: str = "--source") -> None:
    """A camera address's mistakes said at once, as bad input (before, they were retried for as long
    as srx ran): a scheme without its colon (`rtsp//host/...`), no host (`rtsp:///live`), a port that
    is not a number from 1 to 65535 (`:86o3`, `:99999`). Anything else is left to the open."""
    from urllib.parse import urlsplit

    if _URL_START.match(text):
        check_login(text, option)  # before the port: of 'admin:Wq/Zx@host', 'Wq' is no port, and no word to print
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)(:?)//", text)
    if scheme and not scheme.group(2) and scheme.group(1).lower() in URL_SCHEMES:
        raise SrxError(f"{option} '{redact_url(text)}': a URL needs '://' after {scheme.group(1)}; expected "
                       f"{scheme.group(1)}://HOST[:PORT]/PATH")
    if scheme and scheme.group(2) and scheme.group(1).lower() not in (*URL_SCHEMES, "file") and not is_pipeline(text):
        raise SrxError(f"{option} '{redact_url(text)}': unsupported URL scheme {scheme.group(1).lower()!r}; expected "
                       f"{', '.join(s + '://' for s in URL_SCHEMES)}, a file path or a GStreamer pipeline")
    if not scheme or scheme.group(1).lower() not in _HOSTED:
        return
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError as exc:  # an unclosed IPv6 bracket (rtsp://[::1/live), a port that is not a number
        if "IPv6" in str(exc):
            raise SrxError(f"{option} '{redact_url(text)}': the host's '[' has no closing ']'; expected an IPv6 "
                           f"host in brackets, {scheme.group(1)}://[fe80::1]:554/PATH") from None
        parts = urlsplit(text)
    hostport = parts.netloc.rsplit("@", 1)[-1]
    if not parts.hostname:
        raise SrxError(f"{option} '{redact_url(text)}': no host; expected {scheme.group(1)}://HOST[:PORT]/PATH")
    port = hostport.rsplit("]", 1)[-1].partition(":")[2]
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise SrxError(f"{option} '{redact_url(text)}': port {port!r} is not a number from 1 to 65535")


# -- OpenCV helpers -------------------------------------------------------------------------------
def _cv2():
    """OpenCV, with its own log lines (and FFmpeg's: "[tcp @ 0x..] Connection refused") kept out of
    our one clear message for a source that fails; --verbose keeps them."""
    from srx.imageio import cv2_module, quiet_opencv_logs

    if not log.isEnabledFor(logging.DEBUG):
        quiet_opencv_logs()
    return cv2_module()


def has_gstreamer() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (JetPack's can, the pip wheel can't)."""
    cv2 = _cv2()
    try:
        from cv2 import videoio_registry

        return bool(videoio_registry.hasBackend(cv2.CAP_GSTREAMER))
    except (ImportError, AttributeError):
        return "GStreamer:                   YES" in cv2.getBuildInformation()


def has_highgui() -> bool:
    """Whether this OpenCV build can open windows (the -headless wheels can't)."""
    import re

    info = _cv2().getBuildInformation()
    m = re.search(r"^\s*GUI:\s*(\S+)", info, re.M)
    return bool(m) and m.group(1).upper() not in ("NONE", "NO")


class FrameReader:
    """read() -> the next BGR uint8 frame, or None when the source ended or failed."""

    fps: float | None = None
    frame_count: int | None = None
    time_s: float | None = None  # the container's (a file's) or stream's time of the frame read() last gave, None if unknown
    damaged = 0  # frames the decoder flagged as decoded with errors, or could not decode at all, since the open
    sar: Fraction | None = None  # the shape of its pixels (width:height) where they are not square: 12:11 for PAL D1
    interlaced = False  # its frames came as fields (interlaced) and were deinterlaced before read() gave them
    fields = False  # its frames are interlaced and read() gives them as they are, combed (a file through OpenCV)
    codec: str | None = None  # the video codec's name (h264, hevc, mjpeg), where the reader knows it
    audio: str | None = None  # the codec of an audio track beside the video, which srx stream does not record

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def release(self) -> None:
        pass


class CvReader(FrameReader):
    """A cv2.VideoCapture whose first frame was already read (to prove it decodes)."""

    def __init__(self, cap: Any, first: np.ndarray, fps: float | None, frame_count: int | None,
                 timed: bool = False) -> None:
        self.cap, self._pending, self.fps, self.frame_count = cap, first, fps, frame_count
        self.timed = timed  # each frame's time from the container or stream (CAP_PROP_POS_MSEC)
        self._first_time = self._pos() if timed else None
        self.sar = pixel_shape(cap.get(_cv2().CAP_PROP_SAR_NUM), cap.get(_cv2().CAP_PROP_SAR_DEN))

    def _pos(self) -> float | None:
        ms = self.cap.get(_cv2().CAP_PROP_POS_MSEC)
        return ms / 1000.0 if ms is not None and np.isfinite(ms) and ms >= 0 else None

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self.time_s = self._first_time
            return frame
        ok, frame = self.cap.read()
        if not (ok and frame is not None and frame.size):
            return None
        self.time_s = self._pos() if self.timed else None
        return frame

    def release(self) -> None:
        self.cap.release()


class AvReader(FrameReader):
    """A network stream (rtsp://, http://, ...) read through PyAV, FFmpeg as OpenCV's own backend
    uses it but without OpenCV's lock around every open: OpenCV's FFmpeg opens run one at a time in
    a process, so one camera's open held up every other (cameras came up one after another, a
    keyframe's wait each, and those at the back of a long queue timed out; one whose RTSP stack
    wedged after the handshake held them all for its whole timeout). Frames are BGR, each with the
    stream's own time (`time_s`: an RTSP camera's RTP clock, for LinkLag); a packet FFmpeg cannot
    decode at all is skipped (what it can, it conceals, as OpenCV's capture did); a read that fails or
    passes the read timeout ends the source (None), which the capture reconnects. Both kinds of
    damage are counted (`damaged`): a frame FFmpeg flags as decoded with errors (parts of it missing,
    filled in from the frame before) and a packet it could not decode. Interlaced frames (an analogue
    camera behind an encoder, PAL or NTSC) are deinterlaced by FFmpeg's yadif, a frame for a frame at
    the stream's rate (`interlaced`; one frame more is held for it); the pixels' shape is `sar`."""

    def __init__(self, container: Any, stream: Any) -> None:
        """Reads the stream's first frame (`first`: None where none came in the read timeout)."""
        self.container, self.stream, self.fps = container, stream, _stream_rate(stream, container.format.name)
        self.damaged = 0
        self.codec = stream.codec_context.name
        self.audio = next((a.codec_context.name for a in container.streams.audio), None)
        self._yadif: tuple[Any, tuple[int, int, str]] | None = None  # the filter graph, and the frames it takes
        stream.codec_context.thread_count = 1  # FFmpeg's frame threads hold a frame each, seconds at a low rate
        self._frames = self._decoded()
        self.first = self.next_frame()  # given by the first read()

    def _decoded(self) -> Iterator[Any]:
        import av

        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:  # a packet a lossy link spoilt: the next may decode
                self.damaged += 1
                continue
            for frame in frames:
                self.damaged += bool(frame.is_corrupt)  # lost or broken packets, concealed by the decoder
                yield from self._progressive(frame)
        yield from self._progressive(None)  # the frame the deinterlacer still holds

    def _progressive(self, frame: Any) -> Iterator[Any]:
        """`frame` as it is, or through yadif once a frame came interlaced (None: the end, flushed)."""
        import av

        if frame is not None:
            if self._yadif is None and not frame.interlaced_frame:  # progressive, as most cameras send
                yield frame
                return
            shape = (frame.width, frame.height, frame.format.name)
            if self._yadif is not None and self._yadif[1] != shape:  # the camera changed its size
                yield from self._progressive(None)
            if self._yadif is None and frame.interlaced_frame:
                graph = av.filter.Graph()
                source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                          time_base=frame.time_base or self.stream.time_base)
                yadif = graph.add("yadif", "mode=send_frame:parity=auto:deint=interlaced")
                source.link_to(yadif)
                yadif.link_to(graph.add("buffersink"))
                graph.configure()
                self._yadif, self.interlaced = (graph, shape), True
            if self._yadif is None:  # a progressive frame after the deinterlacer was flushed for a new size
                yield frame
                return
        elif self._yadif is None:
            return
        graph = self._yadif[0]
        graph.push(frame)
        if frame is None:
            self._yadif = None
        while True:
            try:
                yield graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    def next_frame(self) -> Any:
        """The next decoded frame (PyAV's), or None where the stream ended or failed."""
        import av

        try:
            return next(self._frames)
        except (StopIteration, av.error.FFmpegError, OSError):
            return None

    def read(self) -> np.ndarray | None:
        frame, self.first = (self.first, None) if self.first is not None else (self.next_frame(), None)
        if frame is None:
            return None
        self.time_s = frame.time
        self.sar = pixel_shape(*_ratio(self.stream.codec_context.sample_aspect_ratio))  # an SPS may change it
        return frame.to_ndarray(format="bgr24")

    def release(self) -> None:
        with contextlib.suppress(Exception):  # a broken stream's close must not hide the real outcome
            self.container.close()


class IterReader(FrameReader):
    """Frames from a Python iterator (the demo scene, a generator in a test)."""

    def __init__(self, it: Iterator[np.ndarray], fps: float | None, frame_count: int | None = None) -> None:
        self._it, self.fps, self.frame_count = it, fps, frame_count

    def read(self) -> np.ndarray | None:
        try:
            frame = next(self._it)
        except StopIteration:
            return None
        if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
            raise SrxError(f"frame source yielded {type(frame).__name__} "
                           f"{getattr(frame, 'shape', '')}; expected an H x W (x 3) uint8 image")
        return frame


def _from_inner(name: str) -> property:
    """A wrapping reader's attribute that is its inner reader's, read at each use."""
    return property(lambda self: getattr(self.inner, name))


class RegionReader(FrameReader):
    """Only the source's region of interest (`SourceSpec.roi`) of each frame: a digital zoom on what
    matters, and the model's work cut to it. The region must lie inside the first frame; a later
    frame that no longer holds it (the camera changed resolution) ends the source, and a live one
    is reopened and checked again."""

    def __init__(self, inner: FrameReader, spec: SourceSpec) -> None:
        self.inner, self.fps, self.frame_count = inner, inner.fps, inner.frame_count
        self.codec, self.audio, self.fields = inner.codec, inner.audio, inner.fields  # the rest from it, below
        self.cut_off = False
        x, y, w, h = spec.roi
        self.box, self.what = (x, y, w, h), spec.describe_whole()
        first = inner.read()
        if first is not None and not self._holds(first):
            inner.release()
            raise SrxError(f"--roi {x},{y},{w},{h} does not fit the {first.shape[1]}x{first.shape[0]} frames of "
                           f"{self.what}: expected LEFT + WIDTH <= {first.shape[1]} and TOP + HEIGHT <= {first.shape[0]}")
        self._pending = None if first is None else self._cut(first)

    def _holds(self, frame: np.ndarray) -> bool:
        x, y, w, h = self.box
        return x + w <= frame.shape[1] and y + h <= frame.shape[0]

    def _cut(self, frame: np.ndarray) -> np.ndarray:
        x, y, w, h = self.box
        return np.ascontiguousarray(frame[y:y + h, x:x + w])

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        frame = self.inner.read()
        if frame is None:
            return None
        if not self._holds(frame):
            log.warning("%s: a %dx%d frame no longer holds --roi %s; ending the source", self.what, frame.shape[1],
                        frame.shape[0], ",".join(map(str, self.box)))
            self.cut_off = True  # ended here, not by the source
            return None
        return self._cut(frame)

    # what the source itself says of the frame read last, and of its stream
    time_s = _from_inner("time_s")
    damaged = _from_inner("damaged")
    sar = _from_inner("sar")
    interlaced = _from_inner("interlaced")

    def release(self) -> None:
        self.inner.release()


def _folder_frames(folder: Path) -> Iterator[np.ndarray]:
    """The folder's images in name order; one that cannot be read, or is too small to upscale, is
    skipped with a warning that names it (not the end of the run at its turn)."""
    from srx.imageio import list_images, read_image
    from srx.runtime.upscaler import too_small

    for path in list_images(folder):
        try:
            image = read_image(path)
        except SrxError as exc:
            log.warning("skipping %s", exc)
            continue
        if (why := too_small(*image.shape[:2])) is not None:
            log.warning("skipping %s: %s", path, why)
            continue
        yield image


def open_reader(spec: SourceSpec, timeout: float = 10.0) -> FrameReader:
    """Open `spec` and read its first frame within `timeout` seconds, or raise one clear SrxError;
    with a region of interest, a reader of that region."""
    reader = _open_whole(spec, timeout)
    return RegionReader(reader, spec) if spec.roi is not None else reader


def _open_whole(spec: SourceSpec, timeout: float) -> FrameReader:
    if spec.kind == "demo":
        from srx.camera.demo import DemoScene

        scene = DemoScene(fps=spec.fps or 10.0)
        return IterReader(iter(scene), scene.fps, len(scene))
    if spec.kind == "frames":
        target = spec.target
        it = target() if callable(target) else iter(target)
        return IterReader(iter(it), spec.fps, len(target) if hasattr(target, "__len__") else None)
    if spec.kind == "folder":
        from srx.imageio import list_images

        n = len(list_images(Path(spec.target)))
        return IterReader(_folder_frames(Path(spec.target)), spec.fps or 25.0, n)
    if spec.kind == "camera":
        return _open_camera(int(spec.target), timeout)
    if spec.kind == "file" and not Path(str(spec.target)).exists():
        # gone since parse_source saw it (moved or deleted): not a video FFmpeg "cannot decode"
        raise SrxError(f"source {spec.target} does not exist; expected a video file, an image folder or a URL")
    if spec.kind == "file" and Path(str(spec.target)).suffix.lower() in IMAGE_EXTENSIONS:
        from srx.imageio import read_image

        # one picture: read as upscale and a folder source read it (upright by its EXIF orientation),
        # not through FFmpeg's image demuxer, which ignores the tag
        return IterReader(iter([read_image(Path(str(spec.target)))]), spec.fps or 25.0, 1)
    if spec.kind == "url":
        return _open_av(spec, timeout)
    return _open_cv(spec, timeout)


def check_source(spec: SourceSpec, *, absent_ok: bool = False) -> str | None:
    """The cheap checks, before a model is loaded: the camera device exists, this OpenCV can open
    a GStreamer pipeline. Opening proper (with timeouts) is open_reader's. `absent_ok` (one of
    several sources, retried in the background like a URL that does not answer): a camera device
    that does not exist (yet: a USB camera plugged in later) is returned as a warning, not raised."""
    if spec.kind == "camera":
        return _check_camera_device(int(spec.target), absent_ok)
    if spec.kind == "gstreamer":
        _check_gstreamer()
    if spec.kind == "file":
        _check_video_file(Path(spec.target))
    return None


def _check_video_file(path: Path) -> None:
    """A file that cannot be a video at all, said before the model loads (--dry-run too): an empty
    one, one of sound alone (it was 'cannot decode it', as a damaged video is)."""
    from srx.imageio import sound_only

    if path.is_file() and path.stat().st_size == 0:
        raise SrxError(f"{path} is an empty file; expected a video")
    if path.is_file() and sound_only(path):
        raise SrxError(f"{path} holds sound but no video; expected a video")


def _check_camera_device(index: int, absent_ok: bool = False) -> str | None:
    if sys.platform.startswith("linux"):
        dev = Path(f"/dev/video{index}")
        if not dev.exists():
            found = sorted(p.name for p in Path("/dev").glob("video*"))
            have = f"this machine has {', '.join(found)}" if found else "this machine has no V4L2 video devices"
            if absent_ok:
                return f"no camera at index {index}: {dev} does not exist ({have})"
            raise SrxError(f"no camera at index {index}: {dev} does not exist ({have}); "
                           "use --source FILE|URL or --demo")
        if not os.access(dev, os.R_OK | os.W_OK):
            raise SrxError(f"camera {dev} is not accessible to this user; add the user to the 'video' group")


def _check_gstreamer() -> None:
    if not has_gstreamer():
        raise SrxError(
            "--source looks like a GStreamer pipeline (it contains '!'), but this OpenCV was built "
            "without GStreamer (the pip opencv-python wheel never has it). On a Jetson use JetPack's "
            "python3-opencv (`pip uninstall opencv-python`); elsewhere build OpenCV with GStreamer, "
            "or pass a file or rtsp:// URL instead"
        )


def _open_camera(index: int, timeout: float) -> FrameReader:
    cv2 = _cv2()
    _check_camera_device(index)
    api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY

    def make() -> Any:
        cap = cv2.VideoCapture(index, api)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    return _finish_open(make, f"camera {index}", timeout, live=True)


#: seconds an RTSP source over TCP is given to open on top of --open-timeout: FFmpeg reads up to
#: about 3 s of the stream first (to learn its frame rate) before the first frame comes, and an open
#: interrupted inside that read leaves the session's interleaved stream cut mid-packet (over UDP a
#: lost datagram): the frames it had come, then nothing, again at every reconnect (measured with
#: gst-rtsp-server and --open-timeout 2s)
RTSP_PROBE_S = 5.0


def _open_cv(spec: SourceSpec, timeout: float) -> FrameReader:
    """A file or a GStreamer pipeline, through OpenCV (network streams: `_open_av`)."""
    cv2 = _cv2()
    name = spec.describe()
    if spec.kind == "gstreamer":
        _check_gstreamer()
        return _finish_open(lambda: cv2.VideoCapture(str(spec.target), cv2.CAP_GSTREAMER), name, timeout,
                            live=spec.live, pipeline=True)
    ms = int(max(timeout, 0.1) * 1000)
    target = str(spec.target)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]

    def make() -> Any:
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            cap = as_played(cap, target)  # a phone's recording turned, a BT.709 one in its own colours
        return cap

    _check_video_file(Path(target))
    reader = _finish_open(make, name, timeout, live=False, is_file=True, path=target)
    from srx.media import interlaced_video

    reader.fields = interlaced_video(Path(target))
    return reader


def capture_options() -> dict[str, str]:
    """FFmpeg options the user set for OpenCV's captures (OPENCV_FFMPEG_CAPTURE_OPTIONS,
    `key;value|key;value`), which srx's network streams take too."""
    pairs = (kv.split(";", 1) for kv in os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "").split("|") if ";" in kv)
    return {k.strip(): v.strip() for k, v in pairs if k.strip()}


def _open_av(spec: SourceSpec, timeout: float) -> FrameReader:
    """A network stream through PyAV (AvReader): opened and its first frame read within `timeout`
    seconds (an RTSP camera over TCP first answers an OPTIONS request within it, then gets
    RTSP_PROBE_S more for the start of its stream), each later read within `timeout`; every failure
    one SrxError in FFmpeg's own words where it has them (a refused login says which password)."""
    import time

    from srx.media import pyav_module

    av = pyav_module("reading a network stream")
    name, target = spec.describe(), str(spec.target)
    within, silent_what = f"{timeout:g} s", "no answer"
    read_timeout = max(timeout, 0.1)
    if spec.rtsp and spec.rtsp_transport == "tcp":  # an open cut short inside the stream breaks a TCP session:
        why = rtsp_answers(target, timeout)  # so the camera is asked first, within --open-timeout,
        if why == NO_ANSWER:
            raise SrxError(f"source {name} did not open within {timeout:g} s (no answer); {CHECK_ADDRESS}")
        if why:
            raise SrxError(f"cannot open source {name}: {why}; {CHECK_ADDRESS}")
        within += f", and {RTSP_PROBE_S:g} s more for the start of its stream"  # and its stream given the time
        silent_what = "it answered, but sent no frame"
        timeout += RTSP_PROBE_S
    options = capture_options()
    if spec.rtsp:
        options["rtsp_transport"] = spec.rtsp_transport
    result: dict[str, Any] = {}
    lock = threading.Lock()

    def work() -> None:
        container = None
        try:
            container = av.open(target, options=options, timeout=(max(timeout, 0.1), read_timeout))
            if not container.streams.video:
                raise SrxError(f"source {name} has no video stream")
            got = {"reader": AvReader(container, container.streams.video[0])}
        except Exception as exc:  # noqa: BLE001  (PyAV's errors and friends: reported below as one line)
            got = {"error": exc}
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
        with lock:
            result.update(got)
            late = result.get("gave_up")
        if late and "reader" in got:  # the caller gave up waiting: nobody takes it
            got["reader"].release()

    started = time.monotonic()
    worker = threading.Thread(target=work, name="srx-open", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    with lock:
        result["gave_up"] = worker.is_alive()
    reader = result.get("reader")
    slow = time.monotonic() - started >= 0.9 * timeout
    if worker.is_alive() or ((reader is None or reader.first is None) and slow):
        if reader is not None:
            reader.release()
        advice = (CHECK_ADDRESS if silent_what == "no answer" else
                  "check that it sends video (a camera that sends a keyframe seldom, at a low rate, needs a longer "
                  "--open-timeout; one whose stream hangs after it answered, a restart)")
        silent = (f"; over --rtsp-transport udp a camera that answers but whose video a firewall, NAT or 4G router "
                  f"drops looks the same: try --rtsp-transport tcp" if spec.rtsp and spec.rtsp_transport == "udp" else "")
        raise SrxError(f"source {name} did not open within {within} ({silent_what}); {advice}{silent}")
    error = result.get("error")
    if isinstance(error, SrxError):
        raise error
    if error is not None:
        said = redact_text(str(getattr(error, "strerror", None) or error).strip().splitlines()[-1]) or type(error).__name__
        if re.search(r"\b(401|403)\b|[Uu]nauthori[sz]ed|[Ff]orbidden", said):
            names = spec.env_names
            where = (f"the user in the URL and the password in the environment variable{'s' if len(names) > 1 else ''} "
                     f"{', '.join(names)} (e.g. systemd's EnvironmentFile=)" if names
                     else "the user and password in the URL")
            raise SrxError(f"cannot open source {name}: the camera refused the login ({said}); check {where}"
                           f"{_escape_hint(spec.target)}")
        raise SrxError(f"cannot open source {name}: {said}; {CHECK_ADDRESS}")
    if reader is None or reader.first is None:
        if reader is not None:
            reader.release()
        raise SrxError(f"source {name} opened but sent no frame")
    log.debug("opened %s: %dx%d at %s fps", name, reader.first.width, reader.first.height,
              f"{reader.fps:g}" if reader.fps else "?")
    return reader


def _ratio(value: Any) -> tuple[int, int]:
    """A PyAV Fraction (or None) as (numerator, denominator)."""
    return (value.numerator, value.denominator) if value else (0, 0)


#: the formats of network streams that state no frame rate (FFmpeg then guesses 25 fps, and times the
#: frames by that guess): MJPEG over HTTP, as cheap IP cameras send it
UNTIMED_FORMATS = ("mpjpeg", "mjpeg")


def _stream_rate(stream: Any, format_name: str = "") -> float | None:
    """A network stream's frame rate as its container states it, None where it states none usable
    (a stream of a format in UNTIMED_FORMATS states none: 25 is FFmpeg's guess, not the camera's)."""
    guesses = () if set(format_name.split(",")) & set(UNTIMED_FORMATS) else (stream.guessed_rate, stream.base_rate)
    for rate in (stream.average_rate, *guesses):
        try:
            fps = float(rate) if rate else 0.0
        except (TypeError, ZeroDivisionError):
            continue
        if 0.5 <= fps <= 1000:
            return fps
    return None


#: what `rtsp_answers` says of a server that takes the connection and sends nothing back in time
NO_ANSWER = "no answer"


def rtsp_answers(url: str, timeout: float) -> str | None:
    """None if the RTSP server of `url` (rtsp://, not rtsps://) answers an OPTIONS request within
    `timeout` (any RTSP reply: a camera that wants a login answers 401), else why not (NO_ANSWER where
    it took the connection and said nothing). The login in the URL is not sent."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        return None
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()
    try:
        with socket.create_connection((parts.hostname, parts.port or 554), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(f"OPTIONS {bare} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: srx\r\n\r\n".encode())
            reply = conn.recv(64)
    except socket.timeout:
        return NO_ANSWER
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    if not reply.startswith(b"RTSP/"):
        return "what answers there is not an RTSP server" if reply else "it closed the connection without an answer"
    return None


#: what to do about a GStreamer pipeline that does not play: OpenCV says nothing of why (its own log
#: lines are off), gst-launch-1.0 says it in GStreamer's words
PIPELINE_ADVICE = ("an element missing or misspelt, caps that do not fit each other, a format appsink does not "
                   "take, or a camera or server that refused; run it with gst-launch-1.0 -v, fakesink in place of "
                   "appsink, to see GStreamer's reason")

#: the end of a pipeline that hands srx frames it takes (BGR); on a Jetson nvvidconv first, to BGRx in
#: system memory
BGR_APPSINK = "videoconvert ! video/x-raw,format=BGR ! appsink"


def _check_pipeline_frame(frame: np.ndarray, height: float, name: str) -> None:
    """A pipeline's appsink in a raw YUV format comes through OpenCV as bytes, not a picture: packed
    4:2:2 (YUY2, UYVY: a USB camera's own) as two channels, planar 4:2:0 (I420, NV12: a Jetson's
    nvvidconv's) as one plane half again as tall as the picture, which would be upscaled as a grey
    picture with the colour planes under it. Either is an SrxError saying how to end the pipeline."""
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    tall = frame.ndim == 2 and height and 0 < height < frame.shape[0] and frame.shape[0] == int(height) * 3 // 2
    if channels not in (1, 3, 4) or tall:
        what = (f"packed YUV 4:2:2 (YUY2, UYVY: {channels} bytes a pixel)" if channels == 2 else
                f"planar YUV 4:2:0 (I420, NV12: a {frame.shape[1]}x{int(height)} picture as one "
                f"{frame.shape[1]}x{frame.shape[0]} plane)" if tall else f"{channels} channels a pixel")
        raise SrxError(f"pipeline {name} hands srx {what}, not a picture it takes (BGR, BGRx or GRAY8); end it "
                       f"with '{BGR_APPSINK}' (on a Jetson: 'nvvidconv ! video/x-raw,format=BGRx ! {BGR_APPSINK}')")


def _finish_open(make: Callable[[], Any], name: str, timeout: float, live: bool, is_file: bool = False,
                 path: str | None = None, pipeline: bool = False) -> FrameReader:
    """Open an OpenCV capture and read the first frame in a helper thread; give up after `timeout`
    seconds. `path`: a file's, for its frame rate (srx.imageio.video_rate). `pipeline`: a GStreamer
    pipeline, whose failures OpenCV does not explain (`PIPELINE_ADVICE`) and whose appsink may hand
    over a pixel format srx does not take (`_check_pipeline_frame`)."""
    from srx.imageio import listed_frames, video_rate

    cv2 = _cv2()
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            cap = make()
            result["cap"] = cap
            if cap.isOpened():
                ok, frame = cap.read()
                result["frame"] = frame if ok and frame is not None and frame.size else None
        except Exception as exc:  # cv2.error and friends: reported below as one line
            result["error"] = exc

    import time

    started = time.monotonic()
    worker = threading.Thread(target=work, name="srx-open", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    if worker.is_alive() or (not is_file and time.monotonic() - started >= 0.9 * timeout
                             and not ("cap" in result and result["cap"].isOpened() and result.get("frame") is not None)):
        if not worker.is_alive() and result.get("cap") is not None:
            result["cap"].release()
        if pipeline:
            raise SrxError(f"pipeline {name} gave no frame within {timeout:g} s; {PIPELINE_ADVICE}")
        raise SrxError(f"source {name} did not open within {timeout:g} s (no answer); {CHECK_ADDRESS}")
    if "error" in result:
        first = str(result["error"]).strip().splitlines()[-1] if str(result["error"]).strip() else type(result["error"]).__name__
        raise SrxError(f"cannot open source {name}: {first}")
    cap = result.get("cap")
    if cap is None or not cap.isOpened():
        if is_file:
            raise SrxError(f"cannot open {name} as a video: OpenCV's FFmpeg cannot decode it "
                           "(not a video, corrupt, or an unsupported codec)")
        if pipeline:
            raise SrxError(f"cannot start pipeline {name}: OpenCV's GStreamer could not play it; {PIPELINE_ADVICE}")
        raise SrxError(f"cannot open source {name} (refused, not found or not a stream); {CHECK_ADDRESS}")
    frame = result.get("frame")
    if frame is None:
        cap.release()
        what = "is not a video or holds no frames" if is_file else "opened but sent no frame"
        raise SrxError(f"source {name} {what}")
    if pipeline:
        try:
            _check_pipeline_frame(frame, cap.get(cv2.CAP_PROP_FRAME_HEIGHT), name)
        except SrxError:
            cap.release()
            raise
    fps = video_rate(path, cap) if path is not None else cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if fps and 0.5 <= fps <= 1000 else None
    count = listed_frames(cap) if is_file else 0
    log.debug("opened %s: %dx%d at %s fps", name, frame.shape[1], frame.shape[0], f"{fps:g}" if fps else "?")
    return CvReader(cap, frame, fps, count or None, timed=is_file or live)  # live: a camera's own times, where it gives them
