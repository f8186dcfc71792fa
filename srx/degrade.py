"""Camera-like degradations of the LR side, as data: parsed from a short spec, stored in checkpoints.

The lab protocol shrinks a clean HR image with MATLAB's antialiased bicubic. Camera frames also went
through optics, a sensor-side shrink with weak filtering, sensor noise and a lossy codec. A
`Degradation` names which of those to simulate and over what ranges:

    jpeg=30..95,noise=0..8,blur=0.2..1.5,shrink=aa|aliased,clean=0.1        (or h264=23..40, h265=23..40)

applied in the order a camera applies them: blur the HR Y plane (Gaussian, sigma in HR pixels),
shrink it (`aa`: MATLAB bicubic with antialiasing, the standard protocol; `aliased`: bicubic
without it, like a sensor's cheap decimation), round to 8 bits, add Gaussian noise (sigma in 8-bit
Y levels) and round again, then code the Y plane: JPEG through OpenCV (libjpeg's luma table, as a
camera's MJPEG or a JPEG snapshot) or a real video encoder at the given CRF, x264 for H.264
(`h264=23..40`; about 2 ms per training patch) or x265 for H.265/HEVC (`h265=23..40`), what most IP
cameras stream now; both from PyAV's bundled FFmpeg, one intra frame each, coded as a frame of a
25 fps stream (`fps=10` for another rate: their CRF spends more bits a frame at a lower rate, so a
10 fps camera's CRF 30 is a milder coding than a 25 fps one's) and with x264 on two threads on every
host (one thread codes a little differently).
A spec that names several codes each sample with one of them, drawn at even odds. A
range `a..b` is drawn uniformly per sample; a single value is fixed. `clean=p` leaves a fraction p
of training samples as the standard protocol makes them, so the model keeps its clean skill.

Training draws each sample's parameters from a generator seeded by (seed, step), so `--seed`
reproduces a run; evaluation uses `degrade_for_eval`, seeded by the image's own pixels (a video
frame: by its number), so the same spec scores the same LR for a picture every time, whatever is
scored beside it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from srx.errors import SrxError

#: tuned presets (README, Camera-robust weights). `camera` is what the shipped camera weights saw.
PRESETS: dict[str, str] = {
    "none": "",
    "camera": "jpeg=30..95,noise=0..2,clean=0.5",
    "jpeg50": "jpeg=50",
}

_LIMITS: dict[str, tuple[float, float]] = {"jpeg": (1, 100), "h264": (0, 51), "h265": (0, 51), "noise": (0, 50),
                                           "blur": (0, 5), "clean": (0, 1), "fps": (1, 240)}
#: the frame rate the video codecs' CRF assumes where a spec names none
DEFAULT_FPS = 25.0
#: the codecs a spec may name, in the order a spec string lists them
CODECS = ("jpeg", "h264", "h265")
_LEVEL_NAMES = {"jpeg": "JPEG quality", "h264": "x264's CRF", "h265": "x265's CRF"}
_LEVEL_EXAMPLES = {"jpeg": "50 or jpeg=30..95", "h264": "23 or h264=23..34", "h265": "28 or h265=28..35"}
SHRINKS = ("aa", "aliased")
_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"  # a sign (and 1e9) parses: out of range is said as such


@dataclass(frozen=True)
class Degradation:
    jpeg: tuple[float, float] | None = None  # JPEG quality range
    h264: tuple[float, float] | None = None  # x264 CRF range (higher: more compression)
    h265: tuple[float, float] | None = None  # x265 CRF range (higher: more compression)
    noise: tuple[float, float] | None = None  # Gaussian sigma, 8-bit Y levels
    blur: tuple[float, float] | None = None  # Gaussian sigma before the shrink, HR pixels
    shrink: tuple[str, ...] = ("aa",)
    clean: float = 0.0  # fraction of training samples left clean
    fps: float = DEFAULT_FPS  # the stream's frame rate for h264/h265 (their CRF's rate control depends on it)

    @property
    def is_clean(self) -> bool:
        return (not self.codecs and self.noise is None and self.blur is None and self.shrink == ("aa",))

    @property
    def spec(self) -> str:
        """The canonical spec string (parses back to an equal Degradation)."""
        parts = []
        for key in (*CODECS, "noise", "blur"):
            rng = getattr(self, key)
            if rng is not None:
                parts.append(f"{key}={_fmt(rng[0])}" if rng[0] == rng[1] else f"{key}={_fmt(rng[0])}..{_fmt(rng[1])}")
        if self.shrink != ("aa",):
            parts.append("shrink=" + "|".join(self.shrink))
        if self.fps != DEFAULT_FPS:
            parts.append(f"fps={_fmt(self.fps)}")
        if self.clean:
            parts.append(f"clean={_fmt(self.clean)}")
        return ",".join(parts)

    def __str__(self) -> str:
        return self.spec or "none"

    @property
    def for_eval(self) -> "Degradation":
        """What an evaluation applies: every image degraded (`clean`, the share of training samples
        left clean, means nothing there), so it is named without it."""
        return replace(self, clean=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec}

    # -- applying ---------------------------------------------------------------------------------
    def lr_from_hr(self, hr_y: np.ndarray, scale: int, rng: np.random.Generator,
                   clean_lr: np.ndarray | None = None, grid_phase: bool = False) -> np.ndarray:
        """One degraded uint8 LR Y plane from a uint8 HR Y plane (whose sides are multiples of
        `scale`). `clean_lr`, the standard-protocol LR of the same plane, saves the shrink when no
        blur or aliasing is drawn (training passes the cached one).

        `grid_phase` (training patches): the codec's block grid starts at a random offset inside
        the patch instead of at its corner. In a camera frame the grid is fixed to the frame, so a
        model never knows where block edges fall; coded at its corner, a small patch would tell the
        model (through its zero padding) exactly where they are, and it would learn deblocking
        that works only near borders."""
        from srx.protocol import imresize

        if self.clean and rng.random() < self.clean:
            return clean_lr if clean_lr is not None else imresize(hr_y, 1.0 / scale)
        shrink = self.shrink[int(rng.integers(len(self.shrink)))] if len(self.shrink) > 1 else self.shrink[0]
        sigma = _draw(self.blur, rng)
        if sigma > 0.05 or shrink != "aa" or clean_lr is None:
            x = hr_y.astype(np.float64)
            if sigma > 0.05:
                x = _gaussian(x, sigma)
            lr = imresize(x, 1.0 / scale, antialias=shrink == "aa")
            lr = np.clip(np.floor(lr + 0.5), 0, 255).astype(np.uint8)
        else:
            lr = clean_lr
        noise = _draw(self.noise, rng)
        if noise > 0:
            lr = np.clip(np.floor(lr + rng.normal(0.0, noise, lr.shape) + 0.5), 0, 255).astype(np.uint8)
        codecs = self.codecs
        if len(codecs) > 1:  # drawn only then, so a one-codec spec draws exactly what it always drew
            codecs = [codecs[int(rng.integers(len(codecs)))]]
        if codecs:  # the grid: JPEG's 8x8 blocks, H.264's 16x16 macroblocks, x265's 64x64 coding tree units
            coder, block = {"jpeg": (jpeg_y, 8), "h264": (h264_y, 16), "h265": (h265_y, 64)}[codecs[0]]
            if codecs[0] != "jpeg":
                coder = functools.partial(coder, fps=self.fps)
            lr = _coded(coder, lr, int(round(_draw(getattr(self, codecs[0]), rng))), block, rng if grid_phase else None)
        return lr

    @property
    def codecs(self) -> list[str]:
        """The codecs the spec names. A camera codes its frames once, so a sample is coded by one
        of them (at even odds when the spec names several), never by two in turn."""
        return [name for name in CODECS if getattr(self, name) is not None]


def given_spec(text: str, option: str = "--degrade") -> str:
    """A spec as a user gave it on the command line, where an empty one (an unset $SPEC in a script)
    is refused rather than read as clean input."""
    if not str(text).strip():
        raise SrxError(f"{option} is empty; expected a preset ({', '.join(PRESETS)}; none for clean input) or "
                       "key=value items such as jpeg=30..95,noise=0..2")
    return text


def parse_degradation(text: str | None) -> Degradation:
    """A Degradation from a spec string or a preset name ('camera', 'none', ...)."""
    if text is None:
        return Degradation()
    text = text.strip()
    if text.lower() in PRESETS:
        text = PRESETS[text.lower()]
    if not text:
        return Degradation()
    fields: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = (p.strip() for p in item.partition("="))
        key = key.lower()  # JPEG=50 as jpeg=50
        if not sep and key.lower() in PRESETS:
            raise SrxError(f"degradation {text!r}: a preset stands alone; '{key.lower()}' is "
                           f"{PRESETS[key.lower()] or 'no degradation'!r}: write its keys out with your change instead")
        if not sep or not value:
            raise SrxError(f"degradation {item!r}: expected key=value (e.g. jpeg=30..95) or a preset "
                           f"({', '.join(PRESETS)}), in {text!r}")
        if key in fields:
            raise SrxError(f"degradation key {key!r} given twice in {text!r}")
        if key == "shrink":
            kinds = tuple(dict.fromkeys(v.strip() for v in value.split("|")))
            bad = [k for k in kinds if k not in SHRINKS]
            if bad:
                raise SrxError(f"degradation shrink={value}: expected {' or '.join(SHRINKS)} (or both, aa|aliased), got {bad[0]!r}")
            fields["shrink"] = kinds
        elif key in _LIMITS:
            lo, hi = _LIMITS[key]
            m = re.fullmatch(rf"({_NUMBER})(?:\.\.({_NUMBER}))?", value)
            if not m or "..." in value:  # 30...95 would read as 30..0.95
                apart = ("; keys are separated by commas, e.g. jpeg=30..95,noise=0..2"
                         if any(c in value for c in ";= ") else "")
                raise SrxError(f"degradation {key}={value}: expected a number or a range a..b with a <= b{apart}")
            a = float(m.group(1))
            b = float(m.group(2)) if m.group(2) is not None else a
            if a > b:
                raise SrxError(f"degradation {key}={value}: the range is reversed; expected a..b with a <= b")
            if a < lo or b > hi:
                raise SrxError(f"degradation {key}={value}: out of range, expected values in {_fmt(lo)}..{_fmt(hi)}")
            if key in CODECS and not (a.is_integer() and b.is_integer()):
                raise SrxError(f"degradation {key}={value}: {_LEVEL_NAMES[key]} is a whole number; "
                               f"expected whole numbers, e.g. {key}={_LEVEL_EXAMPLES[key]}")
            if key == "fps" and a != b:
                raise SrxError(f"degradation fps={value}: expected one frame rate, e.g. fps=10 (the rate of the camera's stream)")
            fields[key] = b if key in ("clean", "fps") else (a, b)
        else:
            raise SrxError(f"unknown degradation key {key!r} in {text!r}: expected jpeg, h264, h265, noise, blur, shrink, "
                           f"fps or clean, separated by commas (or a preset: {', '.join(PRESETS)})")
    if "fps" in fields and not ("h264" in fields or "h265" in fields):
        raise SrxError(f"degradation {text!r}: fps= is the frame rate the h264/h265 coding assumes; "
                       "expected it beside h264= or h265= (JPEG codes each frame alone)")
    if "h264" in fields or "h265" in fields:
        _pyav()
    return Degradation(**fields)


def jpeg_y(y: np.ndarray, quality: int) -> np.ndarray:
    """A uint8 Y plane through a JPEG encode/decode at `quality` (OpenCV's libjpeg)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", y, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise SrxError(f"OpenCV could not JPEG-encode a {y.shape[1]}x{y.shape[0]} plane")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _coded(codec, lr: np.ndarray, level: int, block: int, rng: np.random.Generator | None) -> np.ndarray:
    """`codec(lr, level)`, with the block grid shifted by a random (dy, dx) in [0, block) when `rng`
    is given: the plane is mirror-padded on the top and left, coded, and cropped back."""
    if rng is None:
        return codec(lr, level)
    dy, dx = (int(v) for v in rng.integers(0, block, 2))
    if dy == 0 and dx == 0:
        return codec(lr, level)
    padded = np.pad(lr, ((dy, 0), (dx, 0)), mode="symmetric")
    return np.ascontiguousarray(codec(padded, level)[dy:, dx:])


def _pyav():
    from srx.media import pyav_module

    return pyav_module("the h264 and h265 degradations")


def h264_y(y: np.ndarray, crf: int, fps: float = DEFAULT_FPS) -> np.ndarray:
    """A uint8 Y plane through x264 (one intra frame of an `fps` stream, CRF `crf`, preset medium, two
    threads: x264's output depends on its thread count, one codes differently from two or more, so a
    fixed count codes alike on every host) and FFmpeg's decoder."""
    return _video_coded_y(y, "libx264", "h264", {"crf": str(int(crf)), "preset": "medium", "threads": "2"}, fps)


def h265_y(y: np.ndarray, crf: int, fps: float = DEFAULT_FPS) -> np.ndarray:
    """A uint8 Y plane through x265 (one intra frame of an `fps` stream, CRF `crf`, preset medium, its
    log silenced) and FFmpeg's HEVC decoder."""
    return _video_coded_y(y, "libx265", "hevc", {"crf": str(int(crf)), "preset": "medium",
                                                  "x265-params": "log-level=none"}, fps)


MIN_CODED_SIDE = 16  # the smallest frame side coded (x265 opens no encoder below it; x264 does)


def _video_coded_y(y: np.ndarray, encoder: str, decoder: str, options: dict[str, str],
                   fps: float = DEFAULT_FPS) -> np.ndarray:
    """`y` coded as one frame by `encoder` and decoded by `decoder`. The plane goes in as the luma
    of a 4:2:0 frame (edge-padded to even sides of at least MIN_CODED_SIDE, neutral chroma), so no
    range conversion touches it."""
    from fractions import Fraction

    av = _pyav()
    h, w = y.shape
    H, W = max(h + h % 2, MIN_CODED_SIDE), max(w + w % 2, MIN_CODED_SIDE)  # x265 refuses a side under 16
    padded = np.pad(y, ((0, H - h), (0, W - w)), mode="edge")
    frame = av.VideoFrame.from_ndarray(np.concatenate([padded, np.full((H // 2, W), 128, np.uint8)]), format="yuv420p")
    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = 1 / Fraction(fps).limit_denominator(1001)  # 29.97 as 30000/1001
    enc.options = options
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    dec = av.CodecContext.create(decoder, "r")
    frames = [f for p in packets for f in dec.decode(p)] + list(dec.decode(None))
    if not frames:
        raise SrxError(f"{encoder} produced no decodable frame for a {w}x{h} plane")
    return np.ascontiguousarray(frames[0].to_ndarray(format="yuv420p")[:h, :w])


def degrade_for_eval(deg: Degradation, hr_y: np.ndarray, clean_lr: np.ndarray, scale: int,
                     frame: int | None = None) -> np.ndarray:
    """The evaluation LR of an image: deterministic for a given spec and image (and never left
    clean). Ranged draws (the `camera` preset's quality and noise) are seeded by the image's own
    pixels, or for a video's frame by its number (`frame`), so a picture or a frame gets the same LR
    whatever else is scored beside it (a folder, another --every or --frames, `srx compare`). A
    frame's pixels depend on the decoder (OpenCV 4 and 5 turn the CCTV clip's colours into RGB
    about 1.8 levels apart), its number does not: its draw is the same on every install."""
    if deg.is_clean:
        return clean_lr
    seed = image_seed(hr_y) if frame is None else frame_seed(frame, hr_y.shape)
    rng = np.random.default_rng([20261123, seed])
    return dataclasses.replace(deg, clean=0.0).lr_from_hr(hr_y, scale, rng, clean_lr)


def image_seed(image: np.ndarray) -> int:
    """A 64-bit number from an image's size and pixels: the same image, the same number."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=8,
                             person=str(image.shape).encode()[:16])
    return int.from_bytes(digest.digest(), "little")


def frame_seed(frame: int, shape: tuple[int, ...]) -> int:
    """A 64-bit number from a video frame's number and size (as image_seed, without the pixels)."""
    digest = hashlib.blake2b(f"frame {int(frame)}".encode(), digest_size=8, person=str(tuple(shape)).encode()[:16])
    return int.from_bytes(digest.digest(), "little")


def degrade_batch(deg: Degradation, hr: np.ndarray, lr: np.ndarray, scale: int, seed: int, step: int) -> np.ndarray:
    """Training: degraded copies of a batch of clean uint8 LR patches (N, h, w), each drawn from a
    generator seeded by (seed, step, sample)."""
    out = np.empty_like(lr)
    for i in range(lr.shape[0]):
        rng = np.random.default_rng([seed, step, i])
        out[i] = deg.lr_from_hr(hr[i], scale, rng, lr[i], grid_phase=True)
    return out


def _draw(rng_range: tuple[float, float] | None, rng: np.random.Generator) -> float:
    if rng_range is None:
        return 0.0
    a, b = rng_range
    return a if a == b else float(rng.uniform(a, b))


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _fmt(v: float) -> str:
    return f"{v + 0.0:g}"  # + 0.0: -0 reads 0
