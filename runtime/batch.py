"""Upscaling files: images, folders of images and videos, as `srx upscale` does.

A bad input (unreadable, truncated, too small, not an image or video) fails alone with one clear
message; the rest of the batch goes on and the failures are listed at the end.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from srx.errors import OutOfMemory, SrxError
from srx.fsutil import check_output_dir, check_output_file, ensure_dir, temporary_sibling
from srx.imageio import (IMAGE_EXTENSIONS, VIDEO_SUFFIXES, cut_short, cv2_module, decode_image, listed_frames, open_video,
                         pixel_shape, probe_video, square_pixels, square_size, video_rate)
from srx.memory import is_out_of_memory
from srx.signals import stop_deferred
from srx.runtime.upscaler import Upscaler
from srx.words import counted

log = logging.getLogger("srx")

IMAGE_FORMATS = ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp")
#: containers `srx upscale` writes: H.264 through PyAV, but MJPEG for .avi (VIDEO_FOURCC)
VIDEO_OUT = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
VIDEO_FOURCC = {".avi": "MJPG"}
_NO_ALPHA = (".jpg", ".jpeg", ".bmp")
_SIXTEEN_BIT = (".png", ".tif", ".tiff")  # the formats OpenCV writes 16-bit


@dataclass
class Job:
    src: Path
    dst: Path
    kind: str  # "image" or "video"


@dataclass
class BatchResult:
    done: list[Job] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in VIDEO_SUFFIXES else None


def _video_out_suffix(src: Path) -> str:
    return src.suffix.lower() if src.suffix.lower() in VIDEO_OUT else ".mp4"


def _check_out_name(out: Path, single: tuple[Path, str] | None, count: int) -> None:
    """SrxError when `out`, not an existing folder, names a file that cannot hold what comes out:
    a file of the other kind or of a kind srx does not write for one input, an image or video
    file for several (`single`: the one input and its kind, None for several). A name without an
    extension is a folder."""
    if out.is_dir() or not out.suffix:
        return
    kind = _kind(out)
    if single is None:
        if kind is not None:
            raise SrxError(f"--out {out.name} names {'an image' if kind == 'image' else 'a video'} file, but "
                           f"{count} inputs need a folder; expected a folder name (no extension)")
        return
    src, src_kind = single
    if kind == src_kind:
        return
    if src_kind == "image":
        expected = f"an image file ({', '.join(IMAGE_EXTENSIONS)}) or a folder"
    else:
        expected = f"a video file ({', '.join(VIDEO_OUT)}) or a folder"
    found = f"{'an image' if kind == 'image' else 'a video'} file" if kind else f"a {out.suffix} file"
    raise SrxError(f"--out {out.name}: the input {src.name} is {'an image' if src_kind == 'image' else 'a video'}, "
                   f"so expected {expected}, got {found} (to write into a folder of that name, create it first)")


#: picture formats srx does not read, said where they are left out (a folder's GIF went unsaid)
UNREAD_PICTURES = (".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".svg", ".psd",
                   ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2")  # the last: cameras' RAW


def _unread_text(item: Path) -> str:
    return (f"{item} is a {item.suffix.lstrip('.').upper()} picture, a format srx does not read; convert it to PNG "
            f"or JPEG first (srx reads {', '.join(IMAGE_EXTENSIONS)} and videos)")


def _folder_sources(folder: Path, out: Path, recursive: bool
                    ) -> tuple[list[tuple[Path, str, Path]], str | None, list[Path], int]:
    """(file, kind, its folder relative to `folder`) for the images and videos in `folder`, why
    there are none, the pictures in formats srx does not read (UNREAD_PICTURES), and how many
    images and videos were left out as under `out`. Recursive: every subfolder too, except hidden
    ones (srx's own .partial files) and `out` (a run's output inside its input folder is not input
    for the next)."""
    out = out.resolve()
    under_out = 0
    if recursive:
        files = []
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder)
            if not p.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            if out in p.resolve().parents:
                under_out += bool(_kind(p))
                continue
            files.append((p, rel.parent))
    else:
        files = [(p, Path()) for p in sorted(folder.iterdir()) if p.is_file()]
    found = [(p, _kind(p), under) for p, under in files if _kind(p)]
    unread = [p for p, _ in files if p.suffix.lower() in UNREAD_PICTURES]
    if found:
        return found, None, unread, under_out  # type: ignore[return-value]
    if under_out:
        return [], (f"folder {folder}: its {counted(under_out, 'file')} of images and videos are all under "
                    f"--out {out}, which is never read as input (an earlier run's output); expected an --out outside "
                    f"{folder}"), unread, under_out
    why = f"folder {folder} holds no images or videos"
    if unread:
        why += f" srx reads ({len(unread)} in formats it does not: {', '.join(p.name for p in unread[:3])}; convert them to PNG or JPEG)"
    if not recursive and any(p.is_dir() for p in folder.iterdir()):
        why += " (its subfolders may: add --recursive)"
    return [], why, unread, under_out


def plan_jobs(inputs: list[Path], out: Path, fmt: str | None = None, create: bool = True,
              recursive: bool = False, warn: bool = True) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Where each input goes. One image (or video) with an `out` that names a file of that kind
    writes that file; otherwise `out` is a folder (an existing one, or a name without an
    extension) and each input keeps its stem there. Returns the jobs and the inputs that cannot be
    processed (with the reason). SrxError when `out` cannot be written or names a file that cannot
    hold the output, and when no input can be processed; `create=False` checks all that without
    creating the folder (before the model loads). `recursive`: a folder's subfolders too, their
    layout mirrored under `out`. `warn=False`: the notes on inputs given twice and on renamed
    outputs are left to the run that follows (a check beforehand would say each of them twice)."""
    say = log.warning if warn else log.debug
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in IMAGE_FORMATS:
            raise SrxError(f"--format {fmt!r}: expected one of {', '.join(IMAGE_FORMATS)}")
    out = Path(out)
    failed: list[tuple[Path, str]] = []
    sources: list[tuple[Path, str, Path]] = []  # (input file, kind, its folder under --out)
    seen: set[Path] = set()
    for item in map(Path, inputs):
        why = _unreadable(item)
        if why:
            failed.append((item, why))
            continue
        if item.exists():
            if item.resolve() in seen:
                say("%s is given twice; upscaling it once", item)
                continue
            seen.add(item.resolve())
        if item.is_dir():
            found, why, unread, under_out = _folder_sources(item, out, recursive)
            if why:
                failed.append((item, why))
            if under_out and not why:  # --out inside the folder: an earlier run's output is not input for this one
                say("%s: left out %s of images and videos under --out %s (its output folder is not read as input)",
                    item, counted(under_out, "file"), out)
            if unread and not why:
                say("%s: left out %d picture(s) in a format srx does not read: %s%s (convert them to PNG or JPEG)", item,
                    len(unread), ", ".join(str(p.relative_to(item)) for p in unread[:5]),
                    f" and {len(unread) - 5} more" if len(unread) > 5 else "")
            sources += found
        elif not item.exists():
            failed.append((item, f"{item} does not exist"))
        elif item.suffix.lower() in UNREAD_PICTURES:
            failed.append((item, _unread_text(item)))
        elif _kind(item) is None:
            failed.append((item, f"{item} is not an image or video; expected one of "
                                 f"{', '.join(IMAGE_EXTENSIONS + VIDEO_SUFFIXES)}"))
        else:
            sources.append((item, _kind(item), Path()))  # type: ignore[arg-type]

    if not sources:  # nothing to do: say why now, before a model loads
        if len(failed) == 1:
            raise SrxError(failed[0][1])
        raise SrxError(f"none of the {len(failed)} inputs can be upscaled: " + "; ".join(why for _, why in failed))

    single = len(inputs) == 1 and len(sources) == 1 and not Path(inputs[0]).is_dir()
    _check_out_name(out, sources[0][:2] if single else None, len(sources))
    if single and not out.is_dir() and _kind(out) == sources[0][1]:
        src, kind, _ = sources[0]
        if fmt and kind == "image" and out.suffix.lower().lstrip(".") != fmt:
            raise SrxError(f"--out {out.name} and --format {fmt} disagree; give one of them")
        if kind == "image" and out.suffix.lower().lstrip(".") not in IMAGE_FORMATS:  # .jfif, .ppm: read, not written
            raise SrxError(f"--out {out.name}: srx reads {out.suffix} images but writes "
                           f"{', '.join('.' + f for f in IMAGE_FORMATS)}; expected one of those")
        if kind == "video" and out.suffix.lower() not in VIDEO_OUT:
            raise SrxError(f"--out {out.name}: srx writes videos as {', '.join(VIDEO_OUT)}; "
                           f"expected one of those, got {out.suffix}")
        if out.exists() and out.resolve() == src.resolve():
            raise SrxError(f"--out {out} is the input itself, which would be overwritten; "
                           "expected another file name or a folder")
        check_output_file(out, "--out")  # now, not after the model ran
        return [Job(src, out, kind)], failed

    if sources and create:  # SrxError if `out` is a file or not writable: a folder is needed here
        ensure_dir(out)
    elif sources:
        check_output_dir(out, "--out")
    given = {src.resolve() for src, _, _ in sources}
    suffixes = [f".{fmt or 'png'}" if kind == "image" else _video_out_suffix(src) for src, kind, _ in sources]
    # a name goes first to the input that already has it (a.png before a.jpg takes a.png), in input order
    order = sorted(range(len(sources)), key=lambda i: (sources[i][0].suffix != suffixes[i],  # a.png before a.PNG
                                                       sources[i][0].suffix.lower() != suffixes[i]))
    placed: dict[int, Path] = {}
    taken: dict[Path, Path] = {}  # output -> the input writing it
    clobbered: list[str] = []
    for i in order:
        (src, kind, under), suffix = sources[i], suffixes[i]
        dst = out / under / f"{src.stem}{suffix}"
        if dst in taken:  # a.jpg and a.png in one batch; x/a.png and y/a.png
            first, other = dst, taken[dst]
            tag = src.suffix.lstrip(".").lower() if other.suffix != src.suffix else src.parent.name
            dst = _free_name(out / under, f"{src.stem}-{tag or 'input'}", suffix, taken)
            say("%s goes to %s (%s is the output of %s)", src, dst, first, other)
        if dst.resolve() in given:  # never an input written over, its own or another's (then read again)
            clobbered.append(str(dst) if dst.resolve() == src.resolve() else f"{dst} (as the output of {src.name})")
        taken[dst] = src
        placed[i] = dst
    if clobbered:
        more = f" and {len(clobbered) - 3} more" if len(clobbered) > 3 else ""
        raise SrxError(f"--out {out} would write over {len(clobbered)} of the inputs with their outputs: "
                       f"{', '.join(clobbered[:3])}{more}; expected a folder where no output takes an input's name "
                       f"(e.g. --out {out / 'upscaled'})")
    jobs = [Job(sources[i][0], placed[i], sources[i][1]) for i in range(len(sources))]
    return jobs, failed


def _unreadable(item: Path) -> str | None:
    """Why an input cannot be read (a folder on its way without search rights, a file or folder
    without read rights), or None: one line for the summary, not a traceback."""
    try:
        if item.is_dir():
            os.listdir(item)
        elif item.exists():
            with open(item, "rb"):
                pass
    except OSError as exc:
        return f"{item} cannot be read: {exc.strerror or exc}"
    return None


def _free_name(folder: Path, stem: str, suffix: str, taken: dict[Path, Path]) -> Path:
    """folder/stem+suffix, or stem-2, stem-3, ... when that is taken too."""
    dst, n = folder / f"{stem}{suffix}", 1
    while dst in taken:
        n += 1
        dst = folder / f"{stem}-{n}{suffix}"
    return dst


def read_frame(path: Path) -> np.ndarray:
    """An image as stored (8/16-bit, gray, BGR or BGRA), upright by its EXIF orientation (the
    output carries no such tag): the Upscaler keeps alpha and bit depth handling in one place.
    A float image (a float TIFF, EXR) is 0..1 or 0..255 as the whole image's values say
    (`srx.imageio.float_range`, said in the log) and comes back as 8 bits, alpha kept: the
    Upscaler itself takes float frames as 0..1 only. SrxError naming the file when it cannot be
    decoded."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8)
    img = decode_image(data)
    if img is None:
        what = "is empty (0 bytes)" if data.size == 0 else "cannot be decoded (corrupt, truncated or not an image)"
        raise SrxError(f"image {path} {what}")
    if img.size == 0:
        raise SrxError(f"image {path} has 0 pixels")
    if img.dtype in (np.float32, np.float64):
        from srx.imageio import float_range, float_to_uint8

        img = float_to_uint8(img, float_range(img, f"float image {path.name}"))
    return img


def upscale_image_file(upscaler: Upscaler, src: Path, dst: Path) -> None:
    from srx.imageio import write_image

    img = upscaler.upscale(read_frame(src))
    pages = _pages(src)
    if pages > 1:
        what = "frames (an animation)" if src.suffix.lower() == ".webp" else "pages"
        log.warning("%s holds %d %s; the first is upscaled (one image in, one out)", src.name, pages, what)
    if img.ndim == 3 and img.shape[2] == 4 and dst.suffix.lower() in _NO_ALPHA:
        log.info("%s: %s cannot hold alpha; writing the colour only", src.name, dst.suffix)
        img = np.ascontiguousarray(img[..., :3])
    if img.dtype == np.uint16 and dst.suffix.lower() not in _SIXTEEN_BIT:
        # OpenCV's encoders for these would clip 16-bit values to 8 bits (a white picture)
        from srx.imageio import to_uint8

        log.info("%s: %s holds 8 bits only; writing 16-bit as 8-bit (.png and .tiff keep 16)", src.name, dst.suffix)
        alpha = to_uint8(img[..., 3]) if img.ndim == 3 and img.shape[2] == 4 else None
        img = to_uint8(img) if alpha is None else np.dstack([to_uint8(img), alpha])
    write_image(dst, img)


def _pages(src: Path) -> int:
    """How many pages a multi-page TIFF holds, or frames an animated WebP (1 for any other image, or
    where OpenCV cannot tell)."""
    if src.suffix.lower() not in (".tif", ".tiff", ".webp"):
        return 1
    import cv2

    try:
        return int(cv2.imcount(str(src)))
    except cv2.error:
        return 1


@contextlib.contextmanager
def _atomic_video(dst: Path) -> Iterator[Path]:
    """Like srx.fsutil.atomic_path, but the temporary name keeps the container's extension
    (FFmpeg picks the container from it)."""
    ensure_dir(dst.parent)
    tmp_path: Path | None = None
    try:
        with stop_deferred():  # a stop (a hangup) while the file is made is handled once its name is known here
            tmp_path = temporary_sibling(dst, suffix=f".part{dst.suffix}", prefix=f".{dst.stem}.")
        yield tmp_path
        try:
            os.replace(tmp_path, dst)
        except OSError as exc:
            raise SrxError(f"cannot write {dst}: {exc.strerror or exc}") from None
    except BaseException:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise


def upscale_video_file(upscaler: Upscaler, src: Path, dst: Path, progress=None) -> int:
    """Every frame upscaled and re-encoded at the same fps (`upscaler.workers` frames at a time where
    it has several workers: one per Triton server of a pool), the source's sound carried over
    (srx.media.mux_audio: copied, or re-encoded to AAC where the container needs it; a video whose
    sound cannot be carried over is still written, with a warning). Returns the number of frames
    written; SrxError for an unreadable or truncated video (the frames that could be decoded are
    still written)."""
    from srx.media import audio_codec, interlaced_video

    cv2 = cv2_module()
    cap = open_video(src)
    try:
        fps = video_rate(src, cap) or 25.0
        expected = listed_frames(cap)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise SrxError(f"video {src} has no decodable frames (corrupt or truncated)")
        h, w = frame.shape[:2]
        s = upscaler.scale
        sound = audio_codec(src)
        sar = pixel_shape(cap.get(cv2.CAP_PROP_SAR_NUM), cap.get(cv2.CAP_PROP_SAR_DEN))  # a PAL DVD's, a D1 camera's
        size = square_size(w * s, h * s, sar)
        log.info("%s: %dx%d at %.3g fps -> %dx%d%s%s", src.name, w, h, fps, *size,
                 f" (its pixels are {sar.numerator}:{sar.denominator} wide: resampled to square ones, as a player "
                 "shows it)" if sar else "", f"; its sound ({sound}) is carried over" if sound else "")
        if interlaced_video(src):
            log.warning("%s is interlaced: its fields are upscaled as they are, combed (srx reads videos through "
                        "OpenCV, which does not deinterlace); deinterlace it first, e.g. ffmpeg -i %s -vf yadif OUT",
                        src.name, src.name)
        if progress is not None:
            from rich.markup import escape

            task = progress.add_task(escape(src.name), total=expected or None)
        else:
            task = None
        n, last_ms = 0, None
        step = max(1, int(getattr(upscaler, "workers", 1)))  # several Triton servers: a frame for each at once
        with _atomic_video(dst) as tmp:
            writer = _video_writer(tmp, dst, fps, size, src)
            try:
                while ok:
                    chunk = []  # (frame, its own time: a variable-rate video keeps its pace and its sound in step)
                    while ok and len(chunk) < step:
                        chunk.append((frame, cap.get(cv2.CAP_PROP_POS_MSEC)))
                        ok, frame = cap.read()
                    outs = (upscaler.upscale_batch([f for f, _ in chunk]) if step > 1
                            else [upscaler.upscale(chunk[0][0])])
                    for img, (_, at_ms) in zip(outs, chunk):
                        writer.write(square_pixels(img, sar), at_ms)
                        last_ms = at_ms
                        n += 1
                        if task is not None:
                            progress.advance(task)
            finally:
                writer.close()
            if sound:
                _add_sound(tmp, src, dst)
        if cut_short(n, expected, src, last_ms / 1000.0 if last_ms and np.isfinite(last_ms) else None):
            raise SrxError(f"video {src} is truncated: decoded {n} of {expected} frames "
                           f"({'that one is' if n == 1 else f'those {n} are'} in {dst})")
        return n
    finally:
        cap.release()


def _video_writer(path: Path, dst: Path, fps: float, size: tuple[int, int], src: Path | None = None):
    """H.264 through PyAV (srx.media.H264Writer) for every container but .avi, which gets MJPEG
    (srx.media.MJPEGWriter: AVI and H.264 do not go well together); both say a failed write (a full
    disk) as an SrxError. The .avi's slots come at the source's base rate (`slot_rate`), so each
    frame of a variable-rate video has a slot at its own time."""
    if size[0] % 2 or size[1] % 2:  # MJPEG is 4:2:0 too, and crops as H.264 does
        log.info("%s: %s (4:2:0) needs even sides; the last column/row of %dx%d is left out",
                 dst.name, "MJPEG" if dst.suffix.lower() in VIDEO_FOURCC else "H.264", *size)
    from srx.media import H264Writer, MJPEGWriter

    if dst.suffix.lower() in VIDEO_FOURCC:  # a slot every 1/rate, each frame in the slot of its time
        return MJPEGWriter(path, slot_rate(src, fps) if src is not None else fps, size, label=str(dst))
    return H264Writer(path, fps, size, label=str(dst))  # errors name the user's file, not the hidden one


def slot_rate(src: Path, fps: float) -> float:
    """The rate an .avi of `src`'s frames needs: its mean `fps`, or the base rate its frame times are
    multiples of (FFmpeg's r_frame_rate: 30 for a phone's video that mixes 30 fps bursts with gaps),
    where that is higher and at most 120 frames a second."""
    base = probe_video(src, lambda box: box.streams.video[0].base_rate, None)  # None: the mean rate, as before
    return float(base) if base and fps < float(base) <= 120 else fps


def _add_sound(video: Path, src: Path, dst: Path) -> None:
    """Replace the video-only file `video` by one with `src`'s sound too; on failure keep it as it
    is, with a warning (the upscaled frames matter more than the sound)."""
    from srx.media import mux_audio

    muxed = temporary_sibling(video, suffix=f".sound{dst.suffix}", prefix=f".{dst.stem}.")
    try:
        what = mux_audio(video, src, muxed)
        os.replace(muxed, video)
        log.info("%s: sound %s", dst.name, what)
    except Exception as exc:  # noqa: BLE001 - any failure of the sound leaves the upscaled video as it is
        log.warning("%s: written without sound: %s", dst.name, exc)
    finally:
        muxed.unlink(missing_ok=True)


def upscale_files(
    upscaler: Upscaler, inputs: list[Path], out: Path, *, fmt: str | None = None, show_progress: bool = True,
    recursive: bool = False,
) -> BatchResult:
    """Upscale every input into `out`; failures are collected, never raised (bar a bad `out`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    jobs, failed = plan_jobs(inputs, out, fmt, recursive=recursive)
    result = BatchResult(failed=list(failed))
    if not jobs:
        return result
    images = [j for j in jobs if j.kind == "image"]
    bars = len(images) > 1 or len(images) < len(jobs)  # a bar for several images, one for each video
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), disable=not (show_progress and bars), transient=False)
    with progress:
        task = progress.add_task("images", total=len(images)) if len(images) > 1 else None
        for job in jobs:
            try:
                ensure_dir(job.dst.parent)  # a subfolder mirrored from a --recursive input
                if job.kind == "image":
                    upscale_image_file(upscaler, job.src, job.dst)
                else:
                    upscale_video_file(upscaler, job.src, job.dst, progress)
                result.done.append(job)
            except OutOfMemory as exc:  # the Upscaler's, saying what the frame needs: of this file
                result.failed.append((job.src, str(exc.naming(str(job.src)))))
            except SrxError as exc:  # said once, in the list of failures at the end
                log.debug("failed: %s", exc)
                result.failed.append((job.src, str(exc)))
            except Exception as exc:  # reading or writing it ran out of memory (a decoder's, an encoder's buffers)
                if not is_out_of_memory(exc):
                    raise
                result.failed.append((job.src, f"out of memory reading or writing {job.src}; free some memory or use "
                                               "a machine with more"))
            if task is not None and job.kind == "image":
                progress.advance(task)
    return result
