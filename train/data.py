"""Training patches under the standard protocol, extracted once and cached on disk.

Each HR image becomes a modcropped Y plane; its LR partner is MATLAB bicubic of that whole plane
(so patch borders see real neighbours), and aligned LR/HR patches are cut on a regular grid. A
source is a folder of images or a video, whose every Nth frame (within a frame range) is an image:
a user's own camera footage to fine-tune on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srx.errors import OutOfMemory, SrxError
from srx.fsutil import atomic_path, ensure_dir
from srx.imageio import (VIDEO_SUFFIXES, FrameRange, check_data_path, is_video, list_images, read_image, video_frames,
                         warn_videos_left_out)
from srx.protocol import make_pair

log = logging.getLogger("srx")

CACHE_VERSION = 1
#: training patches past this size get a warning (and `srx tune` chooses its --every to stay under it)
PATCH_BUDGET_BYTES = 1 << 30


@dataclass
class PatchSet:
    lr: np.ndarray  # (N, p, p) uint8
    hr: np.ndarray  # (N, p*s, p*s) uint8
    images_used: int
    skipped_small: int
    skipped_corrupt: list[str]
    from_cache: bool
    cache_written: bool = False  # extracted now and kept in the cache (False: the cache could not be written)


def default_cache_dir() -> Path:
    base = os.environ.get("SRX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "srx"
    )
    return Path(base) / "patches"


def _cache_key(files: list[Path], scale: int, patch: int, stride: int, every: int, frames: FrameRange) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "scale": scale, "patch": patch, "stride": stride}).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        if is_video(f):  # which of its frames
            h.update(f"every {every} frames {frames}\n".encode())
    return h.hexdigest()[:24]


def _sources(paths: list[Path]) -> list[Path]:
    """The image files of each folder and each video file, in order."""
    files: list[Path] = []
    for path in paths:
        path = check_data_path(path, "--data")
        if is_video(path):
            files.append(path)
        elif path.is_file():
            raise SrxError(f"--data {path} is a file but not a video srx reads; expected a folder of images or a video "
                           f"({', '.join(VIDEO_SUFFIXES)})")
        else:
            files.extend(list_images(path))
            warn_videos_left_out(path, "--data")
    return files


def patch_grid(length: int, size: int, stride: int) -> list[int]:
    """Where patches of `size` start along a side of `length`, `stride` apart, the last flush with the far edge."""
    if length < size:
        return []
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)  # cover the far edge too
    return starts


def patch_bytes_per_frame(width: int, height: int, scale: int, patch: int, stride: int) -> int:
    """What one frame's training patches take in memory (uint8 HR and LR Y, as extract_patches
    cuts them: patch/stride in HR pixels, the grid on the LR plane)."""
    p_lr, st_lr = patch // scale, stride // scale
    count = len(patch_grid(height // scale, p_lr, st_lr)) * len(patch_grid(width // scale, p_lr, st_lr))
    return count * (patch * patch + p_lr * p_lr)


def _available_memory() -> int | None:
    """Bytes this process can still take (srx.memory.available_memory: the machine's MemAvailable,
    or less under an address-space limit), or None where unknown."""
    from srx.memory import available_memory

    return available_memory()


def patch_budget(available: int | None = None) -> tuple[int, str]:
    """What `srx tune` lets its training patches take when it picks --every itself, and how that was
    decided, in words: PATCH_BUDGET_BYTES, or a third of the memory this process can still take
    where that is less (a small box, a memory limit): gathering holds the patches and their frames,
    then training its model and batches besides them."""
    from srx.memory import gb

    available = _available_memory() if available is None else available
    if available is None or available // 3 >= PATCH_BUDGET_BYTES:
        return PATCH_BUDGET_BYTES, f"{gb(PATCH_BUDGET_BYTES)}"
    budget = max(1, available // 3)
    return budget, f"{gb(budget)}, a third of the {gb(available)} of memory free here"


def check_video_patches(files: list[Path], scale: int, patch: int, stride: int, every: int, frames: FrameRange,
                        available: int | None = None) -> None:
    """Before hours of decoding: the patches of the videos among `files` must fit in memory (twice
    over: the list of patches, then the array made of it). SrxError saying which --every fits where
    they would not; a warning past PATCH_BUDGET_BYTES. Folders of images are not estimated."""
    from srx.imageio import cv2_module, listed_frames, open_video

    cv2 = cv2_module()
    total, per_video = 0, []
    for path in (f for f in files if is_video(f)):
        cap = open_video(path)
        try:
            listed = listed_frames(cap)
            size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        finally:
            cap.release()
        end = listed if frames.end is None else min(frames.end, listed)
        taken = max(0, -(-(end - frames.start) // every))
        per_frame = patch_bytes_per_frame(*size, scale, patch, stride)
        total += taken * per_frame
        per_video.append((path, end - frames.start, per_frame))
    gb = total / 2**30
    available = _available_memory() if available is None else available
    if available is not None and 2 * total > available:  # also under the budget: a small box
        # the --every at which the patches take at most a third of what is available
        spans = sum(max(0, span) * per for _, span, per in per_video)
        fits = max(every + 1, -(-spans // max(1, available // 3)))
        names = ", ".join(p.name for p, _, _ in per_video)
        raise SrxError(f"--data {names}: one frame in {every} makes {gb:.1f} GB of training patches, more than the "
                       f"{available / 2**30:.1f} GB of memory free here can hold while they are gathered; expected "
                       f"--every {fits} or more (or --frames START:END for a stretch of the footage)")
    if total > PATCH_BUDGET_BYTES:
        log.warning("the videos' training patches will take %.1f GB of memory (one frame in %d); --every higher takes "
                    "less", gb, every)


def _images(files: list[Path], every: int, frames: FrameRange):
    """(name, BGR image or None when unreadable) for each image file and each chosen video frame."""
    for path in files:
        if is_video(path):
            for index, frame in video_frames(path, every, frames):
                yield f"{path.name}#{index}", frame
            continue
        try:
            yield path.name, read_image(path)
        except SrxError as exc:
            log.warning("skipping %s", exc)
            yield path.name, None


def extract_patches(
    sources: list[Path], scale: int, patch: int, stride: int, cache_dir: Path | None = None, *,
    every: int = 10, frames: FrameRange = FrameRange(),
) -> PatchSet:
    """Aligned (LR, HR) Y patches from folders of images and videos (every `every`-th frame within
    `frames`); `patch`/`stride` are in HR pixels and multiples of `scale`."""
    if patch % scale or stride % scale:
        raise SrxError(f"--patch-size {patch} and stride {stride} must be multiples of the scale {scale}")
    files = _sources(sources)
    if not frames.whole and not any(is_video(f) for f in files):
        raise SrxError(f"--frames {frames} applies to videos, and no --data is one")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = _cache_key(files, scale, patch, stride, every, frames)
    cache_file = cache_dir / f"x{scale}-p{patch}-s{stride}-{key}.npz"
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                cached = PatchSet(z["lr"], z["hr"], meta["images_used"], meta["skipped_small"],
                                  meta["skipped_corrupt"], True)
            if cached.skipped_corrupt:  # the same files as when the cache was made, said again each run
                log.warning("skipping %d unreadable file(s), as when the patch cache was made: %s",
                            len(cached.skipped_corrupt), ", ".join(cached.skipped_corrupt))
            if cached.skipped_small:
                _warn_small(cached.skipped_small, meta.get("small_names", []), patch)
            return cached
        except (OSError, ValueError, KeyError) as exc:
            log.warning("patch cache %s unreadable (%s); rebuilding", cache_file, exc)

    check_video_patches(files, scale, patch, stride, every, frames)
    lr_list: list[np.ndarray] = []
    hr_list: list[np.ndarray] = []
    counts = [0]  # images used so far
    try:
        lr, hr, small, corrupt, used = _gather(files, scale, patch, stride, every, frames, lr_list, hr_list, counts)
    except Exception as exc:
        from srx.memory import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
    else:
        meta = {"images_used": used, "skipped_small": len(small), "small_names": small, "skipped_corrupt": corrupt}
        written = _write_cache(cache_dir, cache_file, lr, hr, meta)
        return PatchSet(lr, hr, used, len(small), corrupt, False, written)
    # raised here, not in the handler: what was gathered is let go first
    n, held = len(hr_list), sum(a.nbytes for a in hr_list) + sum(a.nbytes for a in lr_list)
    lr_list.clear()
    hr_list.clear()
    from srx.memory import gb

    videos = any(is_video(f) for f in files)
    raise OutOfMemory(f"out of memory cutting training patches: {n} patches ({gb(held)}) of {counts[0]} images so far; "
                      f"free some memory or use a machine with more, or train on less (fewer --data images"
                      f"{', a higher --every or a --frames START:END stretch of the videos' if videos else ''})")


def _gather(files: list[Path], scale: int, patch: int, stride: int, every: int, frames: FrameRange,
            lr_list: list[np.ndarray], hr_list: list[np.ndarray], counts: list[int]):
    """The patches of every image into `lr_list` / `hr_list`, then stacked: (lr, hr, names of those
    skipped as too small, unreadable names, images used). `counts[0]` follows the images used as it goes."""
    small: list[str] = []
    corrupt, used = [], 0
    p_lr, st_lr = patch // scale, stride // scale
    for name, img in _images(files, every, frames):
        if img is None:
            corrupt.append(name)
            continue
        if min(img.shape[:2]) < patch:
            small.append(name)
            continue
        hr_y, lr_y = make_pair(img, scale)
        ys, xs = patch_grid(lr_y.shape[0], p_lr, st_lr), patch_grid(lr_y.shape[1], p_lr, st_lr)
        for y in ys:
            for x in xs:
                lr_list.append(lr_y[y : y + p_lr, x : x + p_lr])
                hr_list.append(hr_y[y * scale : (y + p_lr) * scale, x * scale : (x + p_lr) * scale])
        used += 1
        counts[0] = used
    skipped_small = len(small)
    if skipped_small:
        _warn_small(skipped_small, small, patch)
    if not lr_list:
        raise SrxError(
            f"no training patches: {used + skipped_small + len(corrupt)} image(s) found, {skipped_small} smaller than the "
            f"{patch}-pixel patch, {len(corrupt)} unreadable; expected images of at least {patch}x{patch}"
        )
    lr = np.stack(lr_list)
    hr = np.stack(hr_list)
    return lr, hr, small, corrupt, used


def _warn_small(count: int, names: list[str], patch: int) -> None:
    """The warning for images too small for a patch, naming the first few (it named none: which of a
    user's pictures was it?); a patch cache of an older srx holds the count only."""
    shown = f": {', '.join(names[:5])}{f' and {count - 5} more' if count > 5 else ''}" if names else ""
    log.warning("skipped %d image(s) smaller than the %d-pixel patch%s", count, patch, shown)


def _savez(path: Path, **arrays: np.ndarray) -> None:
    """What np.savez writes (an uncompressed zip of .npy files, np.load reads it), with the archive
    closed even where a write fails: NumPy 1.x's savez leaves it open on a full disk, and the garbage
    collector later tried to finish it on a closed file (an 'Exception ignored' in another test)."""
    import zipfile

    with open(path, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def _write_cache(cache_dir: Path, cache_file: Path, lr: np.ndarray, hr: np.ndarray, meta: dict) -> bool:
    """Whether the patches went into the cache: a full or read-only cache is a warning, not the run's end."""
    try:
        ensure_dir(cache_dir)
        with atomic_path(cache_file) as tmp:
            _savez(tmp, lr=lr, hr=hr, meta=np.array(json.dumps(meta)))
    except (SrxError, OSError) as exc:
        log.warning("patch cache not kept (%s); training goes on, the patches are cut again next time", str(exc))
        return False
    return True
