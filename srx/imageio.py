"""Reading and writing images the way every srx stage expects them: 8-bit BGR or grayscale."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from srx.errors import SrxError
from srx.words import counted

log = logging.getLogger("srx")

T = TypeVar("T")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp",
                    ".jpe", ".jfif", ".ppm", ".pgm", ".pbm", ".pnm")  # JPEG's other names (a browser's .jfif), Netpbm
#: the video files every srx command reads (eval, train, tune, compare, upscale), by suffix: containers
#: and raw H.264 streams as an NVR exports them
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".h264",
                  ".264")


def is_video(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_data_path(path: Path, option: str) -> Path:
    """A data option's path (a folder of images or a video) must exist: the one message for a typo."""
    path = Path(path)
    if not path.exists():
        raise SrxError(f"{option} {path} does not exist; expected a folder of images or a video")
    return path


#: cv::utils::logging::LOG_LEVEL_ERROR (SILENT 0, FATAL 1, ERROR 2, WARNING 3, INFO 4, ...)
_CV_LOG_LEVEL_ERROR = 2


def quiet_opencv_logs() -> None:
    """Keep OpenCV's and its FFmpeg's own log lines ("[ WARN:0@2.4] global cap.cpp:215 ...",
    "[mov,mp4,... @ 0x..] moov atom not found", "[tcp @ 0x..] Connection refused") out of srx's
    output, where they would add lines to the one clear message srx gives for a bad file or URL.
    Both libraries read their environment variable once (at import, at the first FFmpeg use), so the
    CLI calls this before anything imports OpenCV; OpenCV's level is also set in a running process.
    A user's own setting of either variable wins."""
    import os
    import sys

    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"] == "ERROR":
        utils_logging = getattr(getattr(cv2, "utils", None), "logging", None)
        if utils_logging is not None:
            utils_logging.setLogLevel(utils_logging.LOG_LEVEL_ERROR)
        elif hasattr(cv2, "setLogLevel"):  # the pip wheels have only this one
            cv2.setLogLevel(_CV_LOG_LEVEL_ERROR)


def cv2_module():
    """Import OpenCV lazily, with a fix-it message instead of an ImportError traceback."""
    try:
        import cv2
    except ImportError as exc:
        raise SrxError(
            f"OpenCV is not importable ({exc}); install it with `pip install opencv-python` "
            "(on a Jetson use JetPack's python3-opencv instead)"
        ) from None
    return cv2


def float_range(img: np.ndarray, name: str = "float image") -> float:
    """The white of a float image *file*, guessed from the whole image: 1.0 for 0..1 data (the
    usual), up to the same overshoot a library frame may have (`UNIT_FLOAT_SLACK`, clipped), 255.0
    for 0..255 data (what a tool that saved 8-bit values as floats writes), said in the log as
    `name`. SrxError for values beyond both, and for an image with no finite value. Only for an
    image read whole from a file: a frame handed to `Upscaler.upscale` is 0..1 by contract
    (`unit_float_to_uint8`), never guessed, so frames of one stream cannot differ; a file the
    library would read as 0..1 is read so here too."""
    finite = np.isfinite(img)
    if not finite.all():  # NaN alone is read as 0 (`float_to_uint8`), if the image has other values
        if np.isinf(img).any():
            raise SrxError(f"{name} holds infinite values; expected 0..1 or 0..255 (HDR images are not supported)")
        if not finite.any():  # said before np.max, which would warn about an all-NaN slice
            raise SrxError(f"{name} holds NaN only; expected 0..1 or 0..255")
    top = float(np.max(img, where=finite, initial=0.0))
    if top <= 1.0 + UNIT_FLOAT_SLACK:  # a 0..1 image that overshoots a little (sharpening) is still 0..1
        log.info("%s with values up to %.4g: read as 0..1%s", name, top, " (clipped)" if top > 1.0 else "")
        return 1.0
    if top <= _TOP_255:
        log.info("%s with values up to %.4g: read as 0..255", name, top)
        return 255.0
    raise SrxError(f"{name} with values up to {beyond(top, _TOP_255)}; expected 0..1 or 0..255 (HDR images are not "
                   "supported)")


#: the most a 0..255 float image may hold: 255 and a hair of float rounding
_TOP_255 = 255.0 + 1e-3


def beyond(value: float, bound: float) -> str:
    """`value`, which lies beyond `bound`, written with the digits it takes to show that it does
    (%.4g alone rounds 1.5001 to 1.5, the bound it broke)."""
    return f"{value:.{_digits(value, bound)}g}"


def _digits(value: float, bound: float) -> int:
    """The significant digits (4 at least) that write `value` on its own side of `bound`."""
    for digits in range(4, 18):
        shown = float(f"{value:.{digits}g}")
        if shown != bound and (shown > bound) == (value > bound):
            return digits
    return 17


#: how far a float frame may stray beyond 0..1 and still be read as 0..1 (clipped): a float
#: pipeline's sharpening or colour conversion overshoots a little; 0..255 data goes far beyond
UNIT_FLOAT_SLACK = 0.5


def unit_float_to_uint8(img: np.ndarray, what: str = "float frame") -> np.ndarray:
    """A float frame in 0..1 (the library contract of `Upscaler.upscale`) to 8 bits, channels kept:
    each value x 255 rounded to the nearest level, values a little below 0 or above 1 clipped.
    SrxError for NaN or infinity, and for values well beyond 0..1 (more than `UNIT_FLOAT_SLACK`:
    0..255 data, which the caller divides by 255 first), saying what was found."""
    if not np.isfinite(img).all():
        bad = "NaN" if np.isnan(img).any() else "infinite values"
        raise SrxError(f"{what} holds {bad}; expected finite 0..1 floats, or uint8/uint16 frames")
    if img.size:
        low, top = float(img.min()), float(img.max())
        if low < -UNIT_FLOAT_SLACK or top > 1.0 + UNIT_FLOAT_SLACK:
            hint = " (0..255 data: divide it by 255 first)" if top <= _TOP_255 and low >= -UNIT_FLOAT_SLACK else ""
            digits = max(_digits(low, -UNIT_FLOAT_SLACK) if low < -UNIT_FLOAT_SLACK else 4,
                         _digits(top, 1.0 + UNIT_FLOAT_SLACK) if top > 1.0 + UNIT_FLOAT_SLACK else 4)  # as many as it takes
            raise SrxError(f"{what} with values from {low:.{digits}g} to {top:.{digits}g}; expected 0..1 floats (a little beyond "
                           f"is clipped), or uint8/uint16 frames{hint}")
    return float_to_uint8(img, 1.0)


def float_to_uint8(img: np.ndarray, white: float) -> np.ndarray:
    """Float pixels in 0..`white` to uint8, rounded to the nearest level and clipped; NaN read as 0;
    channels kept (alpha too)."""
    return np.clip(np.floor(np.nan_to_num(img) * (255.0 / white) + 0.5), 0, 255).astype(np.uint8)


def native_order(img: np.ndarray) -> np.ndarray:
    """`img` in this machine's byte order: a big-endian 16-bit array (FITS, some TIFF readers) is
    still a 16-bit image."""
    return img if img.dtype.isnative else img.astype(img.dtype.newbyteorder("="))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """16-bit and float images to 8 bits; alpha dropped (SR works on colour, not coverage). A float
    image is a file's: its range is guessed from the whole image (`float_range`)."""
    img = native_order(img)
    if img.dtype == np.uint16:
        img = np.floor(img.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = float_to_uint8(img, float_range(img))
    elif img.dtype != np.uint8:
        raise SrxError(f"unsupported pixel type {img.dtype}; expected 8- or 16-bit images")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.ascontiguousarray(img)


def open_video(path: Path):
    """An opened cv2.VideoCapture for a video file, or the one message every srx command gives for a
    file OpenCV cannot decode. The caller releases it."""
    cv2 = cv2_module()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        if Path(path).is_file() and Path(path).stat().st_size == 0:
            raise SrxError(f"video {path} is empty (0 bytes)")
        if sound_only(path):
            raise SrxError(f"{path} holds sound but no video; expected a video")
        raise SrxError(f"video {path} cannot be opened (corrupt, truncated or a codec this OpenCV lacks); "
                       "expected a video OpenCV can decode (e.g. .mp4, .avi, .mkv)")
    return as_played(cap, path)


def probe_video(path: Path | str, read: Callable[[Any], T], default: T) -> T:
    """`read(container)` of `path` opened by FFmpeg (PyAV), what srx asks of a file that OpenCV does
    not say (its rotation, colour tag, stated length, base rate, sound), or `default` where PyAV is
    missing or cannot open or read it (OpenCV's reading then stands)."""
    try:
        from srx.media import pyav_module

        with pyav_module().open(str(path)) as box:
            return read(box)
    except Exception:  # noqa: BLE001  (no PyAV, or a file it cannot read)
        return default


def sound_only(path: Path | str) -> bool:
    """Whether FFmpeg (PyAV) reads `path` as a file with audio streams and no video stream."""
    return probe_video(path, lambda box: bool(box.streams.audio) and not box.streams.video, False)


def as_played(cap, path: Path | str):
    """An opened file capture to read frames as a player shows them: turned by the container's
    rotation (`follow_rotation`), and in the colours the video is tagged with. A BT.709 video, which
    this OpenCV would turn to BGR with BT.601's weights (srx.avfile), is read through PyAV instead,
    and `cap` released."""
    from srx.avfile import AvFileCapture, needs_pyav

    if needs_pyav(path):
        try:
            swapped = AvFileCapture(path)
        except Exception as exc:  # noqa: BLE001  (OpenCV's reading, wrong colours and all, before none)
            log.debug("%s: PyAV cannot read it (%s); OpenCV's BT.601 colours stand", path, exc)
        else:
            log.debug("%s is tagged BT.709, which this OpenCV decodes with BT.601's weights: read through PyAV", path)
            cap.release()
            return swapped
    return follow_rotation(cap, path)


def follow_rotation(cap, path: Path | str | None = None):
    """Have an opened capture turn its frames as the container's rotation says a player shows them:
    a phone records portrait video as landscape frames plus a 90° rotation, and the pip OpenCV
    wheels leave that rotation unapplied (CAP_PROP_ORIENTATION_AUTO off), so srx's output, which
    carries no rotation of its own, would play sideways. A no-op for a backend without it. Returns
    the capture to read from: where OpenCV turns a quarter turn the other way than the video says
    (OpenCV 4.6 with FFmpeg 5, Debian 12's and as JetPack's older builds: a phone's video came out
    upside down), one that turns each frame the half turn it lacks (`path` given: the rotation read
    through PyAV, only for a video OpenCV says is turned a quarter)."""
    cv2 = cv2_module()
    if not hasattr(cv2, "CAP_PROP_ORIENTATION_AUTO"):
        return cap
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    meta = cap.get(cv2.CAP_PROP_ORIENTATION_META) if hasattr(cv2, "CAP_PROP_ORIENTATION_META") else 0
    if path is None or not meta or round(meta) % 180 != 90:
        return cap
    turn = display_turn(path)
    if turn is not None and turn % 180 == 90 and turn != round(meta) % 360:
        return _HalfTurned(cap)
    return cap


def display_turn(path: Path | str) -> int | None:
    """How far clockwise (0, 90, 180, 270 degrees) a player turns a video's frames, as FFmpeg reads
    its container (PyAV), or None where that cannot be read."""
    def rotation(box: Any) -> float | None:
        frame = next(box.decode(box.streams.video[0]), None)
        return getattr(frame, "rotation", None) if frame is not None else None

    turn = probe_video(path, rotation, None)
    return None if turn is None else int(round(-float(turn))) % 360


class _HalfTurned:
    """A capture whose frames are read turned a half turn more; everything else is the capture's."""

    def __init__(self, cap) -> None:
        self._cap = cap

    def read(self, *args):
        ok, frame = self._cap.read(*args)
        if ok and frame is not None:
            frame = np.ascontiguousarray(frame[::-1, ::-1])
        return ok, frame

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


#: elementary streams without a container: their frame rate is in the stream itself (H.264's SPS timing)
RAW_STREAM_SUFFIXES = (".h264", ".264")


def video_rate(path: Path | str, cap) -> float | None:
    """The frame rate of an opened video: its container's, as OpenCV reads it; for a raw H.264 stream
    (an NVR's .h264 export) the rate its own timing information gives, through PyAV, which OpenCV 5
    reads as FFmpeg's default 25 where OpenCV 4 read the stream's (a 10 fps camera played at 25).
    None where neither says."""
    fps = cap.get(cv2_module().CAP_PROP_FPS)
    fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
    if Path(str(path)).suffix.lower() in RAW_STREAM_SUFFIXES:
        own = probe_video(path, lambda box: box.streams.video[0].codec_context.framerate, None)
        if own and 0 < float(own) <= 1000:
            return float(own)
    return fps


def listed_frames(cap) -> int:
    """The frame count an opened video's container states (0 where it states none)."""
    count = cap.get(cv2_module().CAP_PROP_FRAME_COUNT)
    return int(count) if count and np.isfinite(count) and count > 0 else 0


def cut_short(decoded: int, listed: int, path: Path | str | None = None, last_s: float | None = None) -> bool:
    """Whether a video that decoded `decoded` frames to its end, where its container lists `listed`,
    was cut off or damaged: more than a couple of frames (2, or 2 %) missing. A container's count
    is an estimate in some formats, so a frame or two short is normal. Where the container states
    no count (Matroska, WebM: OpenCV's is its length times its mean rate, which a variable-rate
    video's frames do not fill: a whole phone clip was called truncated), `path` and the last
    frame's time `last_s` judge by time instead: its last frame more than half a second (or 2 %)
    before the container's end."""
    if not listed:
        return False
    if path is not None and last_s is not None:
        stated, seconds = stated_length(path)
        if not stated and seconds:
            return last_s + max(0.5, 0.02 * seconds) < seconds
    return decoded < listed - max(2, listed // 50)


def stated_length(path: Path | str) -> tuple[int, float | None]:
    """The frame count a video file's container states for its video (0 where it states none) and
    its length in seconds (None where unknown), as FFmpeg (PyAV) reads them; (0, None) where it
    cannot."""
    def length(box: Any) -> tuple[int, float | None]:
        stream = box.streams.video[0]
        seconds = (float(stream.duration * stream.time_base) if stream.duration
                   else box.duration / 1e6 if box.duration else None)
        return int(stream.frames or 0), seconds

    return probe_video(path, length, (0, None))


@dataclass(frozen=True)
class FrameRange:
    """Frames `start` (inclusive) to `end` (exclusive; None: to the last) of a video, by number
    from 0 as decoded: how a user keeps later footage of their camera out of training to score on it."""

    start: int = 0
    end: int | None = None

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.end is None else self.end}"

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


def parse_frame_range(text: str | None, option: str = "--frames") -> FrameRange:
    """`START:END`, `START:` or `:END` (frame numbers from 0, END excluded); empty or None: every frame."""
    if text is None or not str(text).strip():
        return FrameRange()
    text = str(text).strip()
    expected = f"{option} expects START:END frame numbers from 0, END excluded (e.g. 0:480, 520: or :480), got {text!r}"
    head, sep, tail = text.partition(":")
    if not sep:
        raise SrxError(expected)
    try:
        start = int(head) if head.strip() else 0
        end = int(tail) if tail.strip() else None
    except ValueError:
        raise SrxError(expected) from None
    if start < 0 or (end is not None and end <= start):
        raise SrxError(expected + ": START must be 0 or more and END after it")
    return FrameRange(start, end)


def video_frames(path: Path, every: int = 1, frames: FrameRange = FrameRange(),
                 option: str = "--frames") -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, BGR frame) for frames `frames.start`, `+every`, ... of a video, decoded one at
    a time (an hour of footage never sits in memory). After the last one: SrxError if the video had
    no frame in the range, or no more than `every` there (so only its first would be used); the
    messages name the range as `option` (the command's option that gave it). A warning if it stopped
    decoding well short of the frames its container lists (`cut_short`)."""
    if every < 1:
        raise SrxError(f"--every must be at least 1, got {every}")
    if frames.end is not None and every > 1 and frames.end - frames.start <= every:  # said before decoding
        raise SrxError(f"{option} {frames} is {counted(max(frames.end - frames.start, 0), 'frame')}, not more than --every "
                       f"{every}, so only its first would be used: lower --every (--every 1 takes each of them)")
    cap = open_video(path)
    listed = listed_frames(cap)
    index, last_ms = 0, None
    try:
        while frames.end is None or index < frames.end:
            if index < frames.start:  # skipped frames are decoded but never converted
                if not cap.grab():
                    break
                index += 1
                continue
            ok, frame = cap.read()
            if not ok:
                break
            last_ms = cap.get(cv2_module().CAP_PROP_POS_MSEC)
            if (index - frames.start) % every == 0:
                yield index, frame
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise SrxError(f"{path}: no frame could be decoded")
    last_s = last_ms / 1000.0 if index > frames.start and last_ms and np.isfinite(last_ms) else None
    if (frames.end is None or index < frames.end) and cut_short(index, listed, path, last_s):
        log.warning("%s stopped decoding after %d of the %d frames its container lists (cut off or damaged?); "
                    "using the frames decoded", path, index, listed)
    if index <= frames.start:
        raise SrxError(f"{path} has {counted(index, 'frame')}: {option} {frames} starts after its last")
    in_range = index - frames.start
    if in_range <= every and every > 1:
        where = "" if frames.whole else f" in {option} {frames}"
        lower = "--every 1 takes it" if in_range == 1 else "lower --every to use more of it"
        raise SrxError(f"{path} has {counted(in_range, 'frame')}{where}, not more than --every {every}, so only its "
                       f"first would be used: {lower}")


def count_frames(path: Path) -> int:
    """How many frames a video decodes to, counted by decoding (a container's own count can be
    missing or wrong, as in a recording that was cut off)."""
    cap = open_video(path)
    count = 0
    try:
        while cap.grab():
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise SrxError(f"{path}: no frame could be decoded")
    return count


def _exif_orientation(data: np.ndarray) -> int:
    """The EXIF Orientation tag a file's header records (1, the default: rows as stored), read by
    Pillow, which matplotlib brings along. Phones store a portrait photo sideways with this tag, and
    OpenCV ignores it when it keeps alpha and bit depth (IMREAD_UNCHANGED), except in a TIFF, which
    its decoder turns itself (so 1 for a TIFF)."""
    try:
        from PIL import Image
    except ImportError:  # without Pillow a picture keeps the orientation its pixels are stored in
        return 1
    import io

    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:  # the header only; no pixels are decoded
            if im.format == "TIFF":  # OpenCV's libtiff decoder turns a TIFF by its tag itself
                return 1
            if im.format == "PNG":  # getexif() would decode a PNG whole to look for a late eXIf chunk
                exif = Image.Exif()
                if im.info.get("exif"):
                    exif.load(im.info["exif"])
            else:
                exif = im.getexif()
            value = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:  # a header Pillow cannot parse (OpenCV decoded the pixels): no orientation known
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_EXIF_ORIENTATION = 0x0112


def upright(img: np.ndarray, orientation: int) -> np.ndarray:
    """`img` (H, W[, C]) turned as EXIF `orientation` says a viewer shows it: 2 mirrored, 3 rotated
    180°, 4 flipped, 5 transposed, 6 rotated 90° clockwise, 7 transversed, 8 rotated 90° anticlockwise."""
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    return np.ascontiguousarray(img)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def without_png_profile(data: np.ndarray) -> np.ndarray:
    """A PNG's bytes without its iCCP chunk (the embedded colour profile), else `data` as it is.
    OpenCV decodes pixels and ignores the profile, but libpng checks it and prints a warning for a
    common faulty one ("iCCP: known incorrect sRGB profile") straight to the process's stderr, past
    any logging: photos saved by many tools carry one."""
    raw = data.tobytes()
    if not raw.startswith(PNG_SIGNATURE) or b"iCCP" not in raw:
        return data
    kept, pos = [raw[:8]], 8
    while pos + 8 <= len(raw):
        length = int.from_bytes(raw[pos:pos + 4], "big")
        end = pos + 12 + length  # length, type, data, CRC
        if raw[pos + 4:pos + 8] != b"iCCP":
            kept.append(raw[pos:end])
        pos = end
    if pos != len(raw):  # damaged or truncated: leave it to the decoder to say so
        return data
    return np.frombuffer(b"".join(kept), np.uint8)


def decode_image(data: np.ndarray) -> np.ndarray | None:
    """An encoded image's pixels as stored (8/16-bit, gray, BGR or BGRA), turned upright by its EXIF
    orientation as every viewer does; None when OpenCV cannot decode it."""
    cv2 = cv2_module()
    img = cv2.imdecode(without_png_profile(data), cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        return img
    orientation = _exif_orientation(data)
    return img if orientation == 1 else upright(img, orientation)


def read_image(path: Path) -> np.ndarray:
    """8-bit BGR (H, W, 3) or grayscale (H, W), upright (EXIF orientation); SrxError naming the file
    if it can't be decoded."""
    path = Path(path)
    if not path.is_file():
        raise SrxError(f"image {path} does not exist")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = decode_image(data)
    if img is None:
        if data.size == 0:  # said as srx upscale says it
            raise SrxError(f"image {path} is empty (0 bytes)")
        raise SrxError(f"cannot decode image {path} (corrupt, truncated or not an image)")
    if img.size == 0:
        raise SrxError(f"image {path} is empty (0 pixels)")
    return to_uint8(img)


def write_image(path: Path, img: np.ndarray) -> None:
    cv2 = cv2_module()
    path = Path(path)
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", img)
    except cv2.error:  # no encoder for that extension
        ok = False
    if not ok:
        raise SrxError(f"cannot encode an image as {path.suffix!r}; use .png, .jpg, .bmp or .tiff")
    from srx.fsutil import atomic_write_bytes

    atomic_write_bytes(path, buf.tobytes())


def _is_image(path: Path) -> bool:
    """An image file srx reads: by its extension, and not hidden (`.x.png`, macOS's `._x.png` copies)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


#: folders whose sub-folders' images were said to be left out (said once per folder, not per read)
_TOLD_SUBFOLDERS: set[Path] = set()


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted (hidden ones left out); a clear error for a missing or
    empty folder. Images in its sub-folders are not read: a warning says how many, and a folder
    holding only sub-folders of images is an error that names one."""
    folder = Path(folder)
    if not folder.exists():
        raise SrxError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise SrxError(f"{folder} is a file; expected a folder of images")
    files = sorted(p for p in folder.iterdir() if _is_image(p))
    told = folder.resolve() in _TOLD_SUBFOLDERS
    nested = [] if files and told else sorted(  # walked only while it may still be said
        p for sub in folder.iterdir() if sub.is_dir() and not sub.name.startswith(".")
        for p in sub.rglob("*") if _is_image(p) and not any(q.startswith(".") for q in p.relative_to(sub).parts))
    if not files:
        videos = folder_videos(folder)
        if videos:
            raise SrxError(f"data folder {folder} holds no images but {counted(len(videos), 'video')}; a folder is read "
                           f"for its images: pass each video on its own (e.g. {videos[0]})")
        if nested:
            raise SrxError(f"data folder {folder} holds no images itself, but its sub-folders hold "
                           f"{counted(len(nested), 'image')} (e.g. {nested[0]}); srx reads a folder's own images: pass "
                           f"each sub-folder (e.g. {nested[0].parent}) as a folder of its own")
        raise SrxError(
            f"data folder {folder} holds no images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
        )
    if nested and not told:
        _TOLD_SUBFOLDERS.add(folder.resolve())
        log.warning("%s: %s in its sub-folders left out (e.g. %s); srx reads a folder's own images, so pass a "
                    "sub-folder as a folder of its own to use them", folder, counted(len(nested), "image"), nested[0])
    return files


def folder_videos(folder: Path) -> list[Path]:
    """The video files directly in `folder`, sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def warn_videos_left_out(folder: Path, option: str) -> None:
    """A folder of images that also holds videos is read for its images: say which videos that leaves out."""
    videos = folder_videos(folder)
    if videos:
        log.warning("%s %s: %s in it left out (a folder is read for its images; pass each video with %s, e.g. %s %s)",
                    option, folder, counted(len(videos), "video"), option, option, videos[0])


def pixel_shape(num: float | None, den: float | None) -> Fraction | None:
    """A sample aspect ratio (a pixel's width:height) where it says the pixels are not square, else
    None: 0, 0:1 or 1:1 is square (what a container says where it says nothing), and a ratio beyond
    4 either way is no camera's."""
    try:
        ratio = Fraction(int(num or 0), int(den or 0)) if num and den else None
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return ratio if ratio is not None and ratio != 1 and Fraction(1, 4) <= ratio <= 4 else None


def square_pixels(frame: np.ndarray, sar: Fraction | None) -> np.ndarray:
    """`frame` resampled (bicubic) to square pixels where its source's are not (`sar`, a pixel's width
    to its height: 12:11 for PAL D1), so that a recording, the web page and the window show the
    picture as the camera meant it, whatever the player makes of a container's aspect flag: the
    side that is short is lengthened (a 2112x1728 frame at 12:11 becomes 2304x1728), nothing is
    shrunk. The model itself ran on the pixels as they came."""
    if sar is None or sar == 1:
        return frame
    cv2 = cv2_module()
    return cv2.resize(frame, square_size(frame.shape[1], frame.shape[0], sar), interpolation=cv2.INTER_CUBIC)


def square_size(w: int, h: int, sar: Fraction | None) -> tuple[int, int]:
    """(width, height) of a w x h picture whose pixels are `sar` wide, in square pixels (square_pixels)."""
    if sar is None or sar == 1:
        return w, h
    return (round(w * sar), h) if sar > 1 else (w, round(h / sar))
