"""Frames in, frames out: colour handling and tiling around any Runner.

Only luma goes through the model (the SR contract); chroma is enlarged bicubic, as in the SRCNN
paper. Colour follows MATLAB's BT.601 `rgb2ycbcr` like training (srx.protocol), but the per-frame
path is float32 and OpenCV (a 3x4 `cv2.transform` on the LR frame, chroma folded into B, G, R on
the LR grid, then one enlarge-and-add per channel at HR; no float64), so at 720p-out the non-model
work costs about 5 ms against 40-150 ms of model.
"""
from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from srx.errors import SrxError
from srx.protocol import _OFFSET, _T, _T_INV
from srx.runtime.base import Runner

log = logging.getLogger("srx")

#: smallest frame side the upscaler accepts (the bicubic kernel spans 4 pixels)
MIN_SIDE = 4


def too_small(h: int, w: int) -> str | None:
    """Why an h x w frame cannot be upscaled, or None: the one wording for every caller."""
    if h < MIN_SIDE or w < MIN_SIDE:
        return f"image is {w}x{h} pixels, too small to upscale; expected at least {MIN_SIDE}x{MIN_SIDE}"
    return None


def frame_bytes(h: int, w: int, scale: int, *, channels: int = 3, sixteen_bit: bool = False) -> int:
    """Bytes the whole-frame planes of one h x w frame take at their peak in `Upscaler.upscale`: what
    tiling does not bound (it bounds the model's activations only). The HR Y plane (float32), one
    channel's enlarged chroma (float32) and the output planes (`bgr_from_planes`), then the merged
    output, or for grayscale the Y plane, its gray plane and the output; and the LR frame in float32
    twice (the frame, its Y, Cb, Cr). About 14 bytes per output pixel of an 8-bit colour frame x3
    (measured: 12.7 at 4K in, besides ONNX Runtime's arena for the tiles)."""
    px = h * w * scale * scale
    d = 2 if sixteen_bit else 1
    if channels == 1:
        return px * (4 + 4 + d) + h * w * 8
    colour = max(px * (4 + 4 + 3 * d), px * (4 + 3 * d + 3 * d))  # the third channel; the merge
    if channels == 4:  # the alpha enlarged, then merged with the colour
        colour = max(colour, px * (3 * d + d + 4 * d))
    return colour + h * w * 24


def out_of_memory(h: int, w: int, scale: int, *, channels: int = 3, sixteen_bit: bool = False,
                  in_model: str | None = None) -> "OutOfMemory":
    """The OutOfMemory of upscaling an h x w frame: what its output needs here (this process's own
    memory now plus `frame_bytes`) and what helps. `in_model`: the model's own message (its call
    failed: a smaller --tile lowers what it takes at once)."""
    from srx.errors import OutOfMemory
    from srx.memory import gb, limit_words, resident_bytes

    here = resident_bytes() or 0
    need = gb(here + frame_bytes(h, w, scale, channels=channels, sixteen_bit=sixteen_bit))
    lower = gb(here + frame_bytes(h, w, 2, channels=channels, sixteen_bit=sixteen_bit))
    fewer = f", or a lower --scale (x2: about {lower})" if scale > 2 and lower != need else ""
    subject = f"a {w}x{h} image"
    where = "; the model's call failed, so a smaller --tile also helps" if in_model else ""
    return OutOfMemory(f"out of memory upscaling {subject} x{scale} (its {w * scale}x{h * scale} output needs about "
                       f"{need} here, {gb(here)} of it srx's own{where}{limit_words()}); free some memory or use a "
                       f"machine with more{fewer}", subject=subject, in_model=bool(in_model))


def _model_words_of_failed_allocation(exc: Exception) -> str | None:
    """In an `except` of the upscale: `exc` again where it is not a failed allocation; else the
    model's own message where its call failed (a smaller --tile helps there), None otherwise."""
    from srx.memory import is_out_of_memory

    if not is_out_of_memory(exc):
        raise exc
    return str(exc) if getattr(exc, "in_model", False) else None


def _colour_matrices() -> tuple[np.ndarray, np.ndarray]:
    """3x4 affine maps for cv2.transform: BGR in [0, 255] -> (Y/255, Cb, Cr), and back to BGR.

    Y is produced directly in model units (Y/255); Cb/Cr stay in [0, 255] units."""
    fwd = np.zeros((3, 4))
    fwd[:, :3] = _T[:, ::-1] / 255.0  # BGR column order
    fwd[:, 3] = _OFFSET
    fwd[0] /= 255.0
    inv = np.zeros((3, 4))
    lin = 255.0 * _T_INV[::-1]  # rows B, G, R; columns Y, Cb, Cr in [0, 255] units
    inv[:, :3] = lin
    inv[:, 0] *= 255.0  # Y arrives in model units
    inv[:, 3] = -lin @ _OFFSET
    return fwd.astype(np.float32), inv.astype(np.float32)


_FWD, _INV = _colour_matrices()
# BT.601's inverse weighs Y equally in B, G and R: BGR = _Y_GAIN * Y + (a chroma-only affine map).
_Y_GAIN = float(_INV[0, 0])
_CHROMA_BGR = np.zeros((3, 4), np.float32)
_CHROMA_BGR[:, 1:] = _INV[:, 1:]


def bgr_from_planes(hr_y: np.ndarray, ycc_lr: np.ndarray, scale: int, *, sixteen_bit: bool = False) -> np.ndarray:
    """uint8 BGR (sH, sW, 3) from the model's HR Y plane (model units) and the frame's LR
    (Y, Cb, Cr) from `_FWD`: the same as enlarging Cb/Cr bicubic and applying `_INV`, since both
    are linear, but cheaper. The chroma's contribution to each of B, G, R is formed on the LR grid
    (3x fewer pixels per side), each is enlarged, and one `addWeighted` per channel adds the HR Y
    and rounds to uint8: at 720p about half the colour time of the merge/transform/convert path
    (no interleaved float HR image is ever made). `sixteen_bit`: uint16 BGR instead, the same
    values x 257 (65535 / 255) rounded once."""
    cv2 = _cv2()
    h, w = ycc_lr.shape[:2]
    size = (w * scale, h * scale)
    hr_y = np.ascontiguousarray(hr_y)
    gain, depth = (257.0, cv2.CV_16U) if sixteen_bit else (1.0, cv2.CV_8U)
    planes = cv2.split(cv2.transform(ycc_lr, _CHROMA_BGR))
    return cv2.merge([cv2.addWeighted(hr_y, _Y_GAIN * gain, cv2.resize(p, size, interpolation=cv2.INTER_CUBIC), gain,
                                      0.0, dtype=depth) for p in planes])


# Grayscale frames are R = G = B: Y = 16 + 219/255 g, and back g = (Y - 16) * 255/219.
_GRAY_GAIN = float(_T[0].sum()) / 255.0


def halo_lr(kernel_sizes: list[int] | None) -> int:
    """LR pixels of context for a model whose architecture this srx does not know (its file names at
    most its kernel sizes; a known one says its own, ModelConfig.lr_halo). Its convolutions may run on
    the LR grid, as `fast`'s do, so each k x k one counts as reaching k // 2 LR pixels, plus 2 for a
    bicubic step: never too little, at most a few pixels more than an HR-grid model needs."""
    return 2 + (sum(int(k) // 2 for k in kernel_sizes) if kernel_sizes else 16)


def check_tile(tile: int) -> None:
    """--tile must be a positive number of pixels: said before a model loads."""
    if tile < 1:
        raise SrxError(f"--tile {tile}: expected a positive number of pixels (the longest side run whole)")


def _tiles(length: int, tile: int) -> list[tuple[int, int]]:
    n = max(1, math.ceil(length / tile))
    cuts = [round(i * length / n) for i in range(n + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


class Upscaler:
    """Upscale BGR / BGRA / grayscale uint8 (or 16-bit) frames with `runner` (activated on first use).

    Float frames (float32 or float64) are 0..1 by contract, whatever a frame holds: each value x 255
    rounded to the nearest 8-bit level, values a little below 0 or above 1 (a float pipeline's
    overshoot) clipped, so every frame of a stream is read alike. A float frame well beyond 0..1
    (below -0.5 or above 1.5: 0..255 data, say) or with NaN or infinity is refused with an SrxError;
    divide 0..255 floats by 255 first. Image files stored as floats are `srx upscale`'s to guess
    (0..1 or 0..255 from the whole image, `srx.imageio.float_range`): `runtime.batch.read_frame`
    hands them over as 8 bits.

    One Upscaler may be shared by several threads (on ONNX Runtime and PyTorch, checked in
    tests/runtime/test_upscaler.py; TensorRT runs the calls one at a time in its owning thread):
    `upscale`, `upscale_batch` and `upscale_y` keep no state between calls, and the runner is
    activated once however many threads ask for it first (`Runner.activate` holds a lock). The
    output is the same, bit for bit, shared, one per thread or single-threaded. ONNX Runtime's
    calls then overlap; so do PyTorch's (the model only reads its weights), but each spreads over
    all of torch's threads, so overlapping ones share the cores and gain no speed: that is what
    `TorchRunner.concurrent_infer = False` says (`workers` > 1 is refused for it), not that sharing
    is unsafe.

    Frames with a side longer than `tile` LR pixels run as overlapping tiles: each tile carries
    `overlap` pixels of real context on its inner sides (at least the model's receptive-field radius),
    so the stitched result equals the untiled one up to float rounding, and the model's replicate
    padding only ever applies at the true image border."""

    def __init__(self, runner: Runner, scale: int, *, tile: int = 512, overlap: int | None = None,
                 workers: int = 1) -> None:
        if runner.scale is not None and runner.scale != scale:
            raise SrxError(f"the model upscales x{runner.scale} but x{scale} was asked for; pass --scale {runner.scale}")
        check_tile(tile)
        self.runner = runner
        self.scale = int(scale)
        self.tile = int(tile)
        need = runner.config.lr_halo if runner.config is not None else halo_lr(runner.kernel_sizes)
        if overlap is not None and overlap < need:
            raise SrxError(
                f"tile overlap {overlap} is below the model's receptive-field radius ({need} LR pixels); "
                f"tiles would show seams. Use an overlap of at least {need}"
            )
        self.overlap = need if overlap is None else int(overlap)
        if workers > 1 and not runner.concurrent_infer:
            raise SrxError(f"the {runner.backend} backend cannot run model calls from several threads at once; "
                           f"expected workers=1, got {workers}")
        self.workers = max(1, int(workers))
        self._pool = None  # concurrent.futures.ThreadPoolExecutor, made on the first batch that uses it
        self._pool_lock = threading.Lock()  # one pool, however many threads share the upscaler

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Upscaler":
        self.runner.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.runner.deactivate()

    # -- planes ------------------------------------------------------------------------------------
    def upscale_y(self, lr_y: np.ndarray) -> np.ndarray:
        """LR Y plane (h, w) -> HR Y plane (s*h, s*w) float32 in model units (Y/255), tiled if large.
        Float input is in model units already; uint8 input is BT.601 Y in [16, 235]."""
        lr_y = np.asarray(lr_y)
        if lr_y.ndim != 2:
            raise SrxError(f"upscale_y expects one Y plane, an H x W array, got an array of shape {lr_y.shape} "
                           "(a colour frame goes to upscale())")
        if lr_y.dtype != np.uint8 and lr_y.dtype.kind != "f":
            raise SrxError(f"upscale_y expects a uint8 Y plane (BT.601 Y in [16, 235]) or a float one in model units "
                           f"(Y/255), got {lr_y.dtype}")
        if not self.runner.is_active:
            self.runner.activate()
        lr_y = lr_y * np.float32(1 / 255) if lr_y.dtype == np.uint8 else lr_y.astype(np.float32, copy=False)
        h, w = lr_y.shape
        s, m = self.scale, self.overlap
        if self._whole(h, w):
            return self.runner.infer(lr_y[None, None])[0, 0]
        tile = self._tile_size()
        out = np.empty((h * s, w * s), dtype=np.float32)
        for y0, y1 in _tiles(h, tile):
            for x0, x1 in _tiles(w, tile):
                iy0, iy1, ix0, ix1 = max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)
                hr = self.runner.infer(lr_y[None, None, iy0:iy1, ix0:ix1])[0, 0]
                out[y0 * s : y1 * s, x0 * s : x1 * s] = hr[
                    (y0 - iy0) * s : (y1 - iy0) * s, (x0 - ix0) * s : (x1 - ix0) * s
                ]
        return out

    def _whole(self, h: int, w: int) -> bool:
        """Run the frame in one piece? Within `tile`, or within a fixed-range backend's maximum
        (a TensorRT engine is built for frames up to its profile: tiling below it only costs)."""
        limits = self.runner.input_hw_range
        if limits is not None:
            (min_h, min_w), (max_h, max_w) = limits
            if (min_h, min_w) == (max_h, max_w) and (h, w) != (max_h, max_w):  # tiles would not fit it either
                raise SrxError(f"frame is {w}x{h} but the model takes {max_w}x{max_h} LR frames only (a --static "
                               f"graph, or an engine built from one); export a dynamic graph (srx export without "
                               f"--static) for frames of other sizes, or a static one with --height {h} --width {w}")
            if h < min_h or w < min_w:
                raise SrxError(f"frame is {w}x{h} but the engine accepts {min_w}x{min_h} .. {max_w}x{max_h}; "
                               "rebuild it with `srx export` for smaller inputs")
            return h <= max_h and w <= max_w
        return h <= self.tile and w <= self.tile

    def _tile_size(self) -> int:
        limits = self.runner.input_hw_range
        if limits is None:
            return self.tile
        biggest = min(limits[1]) - 2 * self.overlap  # a tile plus its context must fit the engine
        if biggest < 1:
            raise SrxError(f"the engine's largest input {limits[1]} leaves no room for tiles with overlap {self.overlap}")
        return biggest

    # -- frames ------------------------------------------------------------------------------------
    def upscale(self, frame: np.ndarray) -> np.ndarray:
        """uint8 BGR (H, W, 3) -> uint8 BGR (sH, sW, 3). Grayscale stays grayscale, BGRA keeps its
        (bicubic-enlarged) alpha, 16-bit input gives 16-bit output (the same arithmetic on values
        / 257, written back x 257, so nothing is rounded to 8 bits on the way), float input (0..1,
        the class docstring says how) is first converted to 8 bits and gives 8-bit output; a
        big-endian array is read in native order. A failed allocation (numpy, OpenCV, the
        model's) is one OutOfMemory saying what the frame needs (`out_of_memory`)."""
        frame = _native(frame)
        try:
            return self._upscale(frame)
        except Exception as exc:
            in_model = _model_words_of_failed_allocation(exc)
        # raised here, not in the handler: the planes the traceback holds are freed first
        channels = frame.shape[2] if frame.ndim == 3 else 1
        raise out_of_memory(*frame.shape[:2], self.scale, channels=channels, sixteen_bit=frame.dtype == np.uint16,
                            in_model=in_model)

    def _upscale(self, frame: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
            raise SrxError(f"expected an H x W grayscale, BGR or BGRA image, got an array of shape {frame.shape}")
        h, w = frame.shape[:2]
        if (why := too_small(h, w)) is not None:
            raise SrxError(why)
        sixteen = frame.dtype == np.uint16
        if frame.dtype not in (np.uint8, np.uint16):
            if frame.dtype not in (np.float32, np.float64):
                raise SrxError(f"unsupported pixel type {frame.dtype}; expected uint8 or uint16 frames, or float32/"
                               "float64 frames in 0..1")
            from srx.imageio import unit_float_to_uint8

            frame = unit_float_to_uint8(frame)  # 0..1 by contract, never guessed per frame; alpha too
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[..., 0]
        s = self.scale
        # pixel values in 8-bit units, as the colour maps expect them (16-bit: a float, not rounded)
        unit = np.float32(1.0 / 257.0) if sixteen else np.float32(1.0)
        if frame.ndim == 2:
            y = frame.astype(np.float32) * (unit * np.float32(_GRAY_GAIN / 255.0)) + np.float32(16.0 / 255.0)
            hr_y = self.upscale_y(y)
            g = (hr_y - np.float32(16.0 / 255.0)) * np.float32(1.0 / _GRAY_GAIN)
            return cv2.multiply(g, 65535.0 if sixteen else 255.0, dtype=cv2.CV_16U if sixteen else cv2.CV_8U)
        alpha = frame[..., 3] if frame.shape[2] == 4 else None
        if hasattr(self.runner, "infer_frame") and alpha is None and not sixteen and self._whole(h, w):
            if not self.runner.is_active:
                self.runner.activate()
            if self.runner.frames_on_device:  # the whole frame stays on the GPU
                return self.runner.infer_frame(np.ascontiguousarray(frame))
        ycc = cv2.transform(frame[..., :3].astype(np.float32) * unit, _FWD)
        out = bgr_from_planes(self.upscale_y(ycc[..., 0]), ycc, s, sixteen_bit=sixteen)
        if alpha is not None:
            a = cv2.resize(alpha, (w * s, h * s), interpolation=cv2.INTER_CUBIC)
            out = cv2.merge([out, a])
        return out


    def upscale_batch(self, frames: Sequence[np.ndarray], timings: list[dict[str, float]] | None = None) -> list[np.ndarray]:
        """Upscale several frames with as few model calls as possible: BGR uint8 frames of the same
        size that run in one piece go through the model together, as one (N, 1, h, w) batch (in
        chunks of the runner's `max_batch`); any other frame (grayscale, alpha, tiled, on-device)
        goes through `upscale()` on its own. Each result equals `upscale()` of that frame.

        With `workers` > 1 (a backend whose calls may overlap: ONNX Runtime on the CPU, each call
        on one thread) a size group is split into up to `workers` batches that run at the same time,
        each with its own colour work, so every core stays busy through the frame work and the
        model calls alike (see README, Many cameras).

        `timings`, when given, receives one dict per frame: `pre` and `post` (this frame's share
        of its batch's colour work, seconds), `infer` (its batch's model call), `batch` (frames in
        that call) and `call` (which call of this batch it was); or only `infer` (the whole
        upscale), `batch` 1 and `call` for a frame that ran on its own."""
        frames = [_native(f) for f in frames]
        try:
            return self._upscale_batch(frames, timings)
        except Exception as exc:
            in_model = _model_words_of_failed_allocation(exc)
        big = max(frames, key=lambda f: f.shape[0] * f.shape[1])
        err = out_of_memory(*big.shape[:2], self.scale, channels=big.shape[2] if big.ndim == 3 else 1,
                            sixteen_bit=big.dtype == np.uint16, in_model=in_model)
        if len(frames) > 1:
            err = err.naming(f"{len(frames)} frames at once, the largest {big.shape[1]}x{big.shape[0]},")
        raise err

    def _upscale_batch(self, frames: list[np.ndarray], timings: list[dict[str, float]] | None) -> list[np.ndarray]:
        import time

        if not self.runner.is_active:
            self.runner.activate()
        outs: list[np.ndarray | None] = [None] * len(frames)
        times: list[dict[str, float]] = [{} for _ in frames]
        on_device = hasattr(self.runner, "infer_frame") and bool(getattr(self.runner, "frames_on_device", False))
        groups: dict[tuple[int, int], list[int]] = {}
        jobs: list[list[int]] = []  # each job: one model call over these frames (or one upscale())
        alone: set[int] = set()
        for i, f in enumerate(frames):
            if (not on_device and f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3
                    and min(f.shape[:2]) >= MIN_SIDE and self._whole(*f.shape[:2])):
                groups.setdefault(f.shape[:2], []).append(i)
            else:
                alone.add(i)
                jobs.append([i])
        for members in groups.values():
            n = len(members)
            lanes = max(1, min(self.workers, int(getattr(self.runner, "lanes", self.workers))))  # a pool's servers up now
            calls = max(math.ceil(n / int(self.runner.max_batch or n)), min(lanes, n))
            cuts = [round(k * n / calls) for k in range(calls + 1)]
            jobs.extend(members[a:b] for a, b in zip(cuts[:-1], cuts[1:]))

        def run(call: int, chunk: list[int]) -> None:
            if chunk[0] in alone:
                t0 = time.monotonic()
                outs[chunk[0]] = self.upscale(frames[chunk[0]])
                times[chunk[0]] = {"infer": time.monotonic() - t0, "batch": 1, "call": call}
                return
            cv2 = _cv2()
            t0 = time.monotonic()
            yccs = [cv2.transform(frames[i].astype(np.float32), _FWD) for i in chunk]
            lr = np.stack([ycc[..., 0] for ycc in yccs])[:, None]
            t1 = time.monotonic()
            hr = self.runner.infer(lr)
            t2 = time.monotonic()
            for j, i in enumerate(chunk):
                outs[i] = bgr_from_planes(hr[j, 0], yccs[j], self.scale)
            t3 = time.monotonic()
            n = len(chunk)
            for i in chunk:
                times[i] = {"pre": (t1 - t0) / n, "infer": t2 - t1, "post": (t3 - t2) / n, "batch": n, "call": call}

        if self.workers > 1 and len(jobs) > 1:
            with self._pool_lock:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="srx-upscale")
            for fut in [self._pool.submit(run, k, chunk) for k, chunk in enumerate(jobs)]:
                fut.result()  # re-raises a call's error here
        else:
            for k, chunk in enumerate(jobs):
                run(k, chunk)
        if timings is not None:
            timings.extend(times)
        return outs  # type: ignore[return-value]


def _cv2():
    from srx.imageio import cv2_module

    return cv2_module()


def _native(frame) -> np.ndarray:
    """A frame as an array in this machine's byte order (a big-endian 16-bit array is a 16-bit frame)."""
    from srx.imageio import native_order

    return native_order(np.asarray(frame))


#: glibc mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_frame_buffers(mmap_below: int = 64 << 20, trim_above: int = 256 << 20) -> bool:
    """Let glibc reuse freed frame-sized buffers instead of returning them to the kernel.

    Every frame allocates several HR planes (chroma, merged YCbCr, BGR, the model's output: ~30 MB at
    720p). Above glibc's mmap threshold each one is a fresh mapping the kernel must fault in and zero,
    then unmap: measured 5 ms per 720p frame on top of 5 ms of real colour work, and a slower model
    run after it. Serving blocks below `mmap_below` from the heap and trimming it only past
    `trim_above` free bytes keeps them resident; RSS then holds the steady-state working set.
    Returns False where the C library is not glibc (the tuning is skipped there).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_below))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_above)))


def single_threaded_opencv() -> int:
    """Run OpenCV's per-frame work on the calling thread; returns the previous thread count.

    The model already uses every core. OpenCV's worker pool gains nothing at these sizes (chroma
    resize to 720p: 2.4 ms with 2 threads, 2.2 ms with 1) and its workers keep spinning after each
    call, which slowed the next ONNX Runtime run by ~10 % (79 vs 72 ms model-only at 720p-out x3).
    """
    cv2 = _cv2()
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    return previous


def create_upscaler(
    scale: int | None = 3,
    weights: Path | None = None,
    model_file: Path | None = None,
    backend: str = "auto",
    threads: int | None = None,
    *,
    tile: int = 512,
    overlap: int | None = None,
    server: "str | Sequence[str] | None" = None,
    parallel: bool = False,
) -> Upscaler:
    """An Upscaler on the best backend for the model asked for (see make_runner). `scale=None` takes
    the model's own scale; a scale the model does not have is an SrxError. `threads`: the model's
    threads (None: one per physical core), at least 1. Sets OpenCV to one thread and lets glibc
    keep frame buffers for the process (see single_threaded_opencv, keep_frame_buffers); where the
    model runs on PyTorch (`torch`, `torch-cuda`, or `auto` picking it), `threads` also sets
    PyTorch's thread count for the whole process (`torch.set_num_threads`, when the runner
    activates). None of these is undone by `close()`.

    `parallel`: the caller upscales several frames at a time (`upscale_batch`, many cameras). On
    ONNX Runtime's CPU provider the model then runs as `threads` (default: the physical cores)
    overlapping single-threaded calls instead of one call spread over the cores: each core carries
    a whole batch and its colour work, with no thread-pool hand-offs inside a call. With several
    Triton servers (a TritonPool) a tick's frames go to every server at once, one call each. Other
    backends are unchanged."""
    from srx.runtime.select import make_runner

    if threads is not None and threads < 1:  # as the CLI's --threads check says it
        raise SrxError(f"threads must be at least 1 (or None: one per physical core), got {threads}")
    single_threaded_opencv()
    keep_frame_buffers()
    runner = make_runner(backend, scale=scale, weights=weights, model_file=model_file, threads=threads, server=server)
    if scale is not None and runner.scale is not None and runner.scale != scale:
        raise SrxError(f"the model upscales x{runner.scale} but x{scale} was asked for; pass --scale {runner.scale}")
    workers = 1
    if parallel and runner.backend == "onnxruntime" and runner.providers[0] == "CPUExecutionProvider":
        from srx.runtime.onnxruntime_runner import physical_cores

        workers = int(threads or physical_cores())
        runner.threads = 1
    elif parallel and len(getattr(runner, "servers", ())) > 1:
        workers = len(runner.servers)  # type: ignore[attr-defined]
    return Upscaler(runner, scale if scale is not None else int(runner.scale or 3), tile=tile, overlap=overlap,
                    workers=workers)
