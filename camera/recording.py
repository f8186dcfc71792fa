"""Recordings: a video file (`VideoFileOutput`) or a folder of PNG frames (`PngSequenceOutput`).

A recording is written under a temporary name beside the target and renamed into place on close,
so Ctrl-C, SIGTERM or the end of input leave a complete file with the mode of the one it replaces;
a crash leaves the temporary one, never a truncated file under the real name, and that one plays up
to about its last second (an .mp4 is written a fragment a second; .mkv and .avi as they go). The
temporary name is new each run, `.NAME.partial.XXXXXXXX.mp4`, made by srx itself (never written
through a link put there, never over what an earlier run left, which is kept and named in a warning
at the start). A failed recording (`Output.failed`) never replaces the file or folder it was to
replace: what it holds stays under its partial name, named in a warning (removed where it holds
nothing). A segmented recording loses only the segment that failed and tries again at the next
(VideoFileOutput).

A recording claims its target for the run when it is made (`RecordingClaim`: an exclusive lock on
a hidden `.NAME.lock` beside it, holding the process id, removed at close; a segmented recording
claims its base name, `.cam.mp4.lock`), so a second srx process recording to the same place is
refused at its start rather than one recording silently renaming over the other's; the partial
files a live run is writing are never taken for what an earlier run left.

  *.mp4 .mov .m4v       H.264 (x264 through PyAV, preset ultrafast, one thread), for viewing in any
                        player or browser: each upscaled frame once, at its time (a file's own frame
                        time, a live source's clock), so it plays in real time across dropped frames
  *.mkv                 FFV1 through PyAV, lossless, each upscaled frame once at its time: read back,
                        they equal the upscaled ones exactly (for measuring), and it plays in real time
  *.avi                 Motion JPEG through PyAV (srx.media.MJPEGWriter) at a fixed rate, for viewing:
                        a frame is held on screen until the next one is due (source frames dropped or
                        skipped, time that passed)
  folder/ or no suffix  a PNG sequence frame_000000.png, ... (lossless, any frame size)
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from srx.camera.outputs import Output, _fit
from srx.camera.segments import (CLOCK_SET_AFTER, FreeSpace, SegmentClock, recorded_segments, segment_key,
                                 segment_path, untaken)
from srx.errors import SrxError
from srx.fsutil import check_nearest_folder, holds_lock, nearest_existing, temporary_sibling
from srx.words import bytes_text, counted, duration_text, seconds_text

log = logging.getLogger("srx")

VIDEO_FOURCC = {".mp4": "h264", ".mov": "h264", ".m4v": "h264", ".mkv": "FFV1", ".avi": "MJPG"}  # all through PyAV (srx.media)


class RecordingClaim:
    """A recording's hold on its target for the run: an exclusive `flock` on `.NAME.lock` beside it
    (NAME: the file's or the folder's name; a segmented recording's base name), taken when the output
    is made, before the source opens. Another srx process that records to the target (or another
    output of this run given the same place under another spelling) is refused in one line naming
    it, with the process id the lock file holds. The lock goes with the process (a kill, a crash:
    the file stays, unlocked, and the next run takes it); `release` at close removes the file where
    it is still this run's. Opened without following a link; the process id is written only into a
    plain file of this user with one name. `keep`, once a second while the recording runs: a lock
    file that went (the folder deleted, an age-based clean-up) is taken again, and its time is
    renewed every TOUCH_S so such a clean-up passes it by."""

    #: how often a held lock file's modification time is renewed, seconds
    TOUCH_S = 3600.0

    def __init__(self, target: Path, shown: str) -> None:
        self.path, self.shown = target.parent / f".{target.name}.lock", shown
        self.fd: int | None = None
        self.made: list[Path] = []  # folders made for the lock file: removed again where nothing came into them
        folder = target.parent
        while not folder.exists() and folder != folder.parent:
            self.made.append(folder)
            folder = folder.parent
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SrxError(f"cannot write --output {shown}: cannot make its folder: {exc.strerror or exc}") from None
        self._take()
        self._touched = time.monotonic()
        self._lost_said = False  # a lock file that cannot be taken again: said once

    def _take(self) -> None:
        from srx.fsutil import LockHeld, lock_file

        shown = self.shown
        try:
            fd = lock_file(self.path)
        except LockHeld as held:
            first = held.text.split()[0] if held.text.split() else ""
            pid = int(first) if first.isdigit() else None
            if pid == os.getpid():
                raise SrxError(f"--output {shown}: another --output of this run records there too; expected "
                               "each recording once") from None
            raise SrxError(f"--output {shown}: another srx process{f' (pid {pid})' if pid else ''} records to "
                           f"it ({self.path} is locked); stop that one first, or record to another name") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a disk too full for an empty file takes no frame
                log.debug("%s: no room for its lock file %s; its first write fails as the disk is", shown, self.path)
                return  # either: the recording fails then, alone, as the README says of a full disk
            why = "a link is there" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
            self._unmake()
            raise SrxError(f"cannot write --output {shown}: cannot make its lock file {self.path}: {why}") from None
        self.fd = fd
        held = os.fstat(fd)
        if stat.S_ISREG(held.st_mode) and held.st_nlink == 1 and held.st_uid == os.geteuid():
            with contextlib.suppress(OSError):  # a full disk: the lock holds without it, the refusal names no pid
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def _mine(self) -> bool:
        """Whether the lock file at its name is still the one this run holds."""
        return self.fd is not None and holds_lock(self.fd, self.path)

    def keep(self) -> None:
        """The lock file still this run's: where it went, taken again (a warning says so, and names
        the process that took it meanwhile, if one did); renewed every TOUCH_S."""
        if self._mine():
            if time.monotonic() - self._touched > self.TOUCH_S:
                self._touched = time.monotonic()
                with contextlib.suppress(OSError):
                    os.utime(self.fd)
            return
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._take()
        except (SrxError, OSError) as exc:
            if not self._lost_said:  # once, not at each second's look while the folder refuses
                self._lost_said = True
                log.warning("%s: its lock file %s was removed while it recorded, and it cannot hold it again: %s "
                            "(tried again each second)", self.shown, self.path, getattr(exc, "strerror", None) or exc)
            return
        if self.fd is None:  # no room for it on a full disk: the recording's own write says the rest
            return
        self._touched = time.monotonic()
        self._lost_said = False
        log.warning("%s: its lock file %s was removed while it recorded (a clean-up, the folder deleted); it holds "
                    "it again", self.shown, self.path)

    def release(self, remove: bool = True) -> None:
        """Let go of the target; `remove` (a close): the lock file goes too, where it is still this
        run's, and the folders made for it where they stayed empty. Without (what a kill does), the
        file stays, unlocked."""
        if self.fd is None:
            return
        if remove and self._mine():
            with contextlib.suppress(OSError):
                self.path.unlink()  # while locked: whoever opened it before sees it gone (samestat) and retries
        os.close(self.fd)
        self.fd = None
        if remove:
            self._unmake()

    def _unmake(self) -> None:
        for folder in self.made:  # innermost first
            try:
                folder.rmdir()
            except OSError:  # not empty (the recording is there), or not ours to remove
                break


def partial_pattern(name: str, suffix: str) -> re.Pattern[str]:
    """The partial files srx names for the recording NAME (a file's stem, a folder's name), and only
    those: `.NAME[-SEGMENT].partial.XXXXXXXX.mp4` (`temporary_sibling`: mkstemp's 8), and
    `.NAME.partial.mp4` (what srx wrote before it)."""
    return re.compile(rf"\.{re.escape(name)}(-\d{{8}}-\d{{6}}(-[1-9]\d*)?)?\.partial(\.[a-z0-9_]{{8}})?"
                      + re.escape(suffix))


def _plays_nothing(path: Path) -> bool:
    """A partial video that holds no frame: empty, gone, or one whose first frame does not decode (a
    header that reached the disk, and a cut-off first cluster or fragment after it)."""
    try:
        size = path.stat().st_size
    except OSError:
        return True
    if size == 0:
        return True
    try:  # the first frame only: the start of the file is read, however long it is
        from srx.media import pyav_module

        with pyav_module().open(str(path)) as box:
            return next(box.decode(video=0), None) is None
    except Exception:  # noqa: BLE001  (PyAV's errors for a file cut off before its first frame)
        return True


def _warn_left_partials(target: Path, suffix: str, folder: bool, plays: str) -> None:
    """Name, once, what earlier runs recording to `target` left (killed, a crash, a power cut):
    their partial files are kept, never written over. A segment's is named for it
    (`.cam-20261206-140000.partial.XXXXXXXX.mp4`) and, where it plays, put in place as that segment
    (`cam-20261206-140000.mp4`, `-1` where the name is taken), up to where its run stopped; a whole
    recording's stays for the user (its target may hold the run before's). Called with the target
    claimed (RecordingClaim): no live run records there, so every partial file of it is a run's that
    stopped."""
    name = partial_pattern(target.stem if not folder else target.name, suffix)
    try:
        left = sorted(str(p) for p in target.parent.iterdir()
                      if name.fullmatch(p.name) and p.is_dir() == folder
                      and not p.is_symlink())  # srx makes none: a link there is not its file
    except OSError:  # no folder yet: nothing left there
        return
    plays_not = [p for p in left if _plays_nothing(Path(p))] if not folder else []  # each looked at once
    for dud in list(plays_not):  # one stopped before its first frame reached the disk holds nothing to keep
        size = Path(dud).stat().st_size if Path(dud).exists() else 0
        if size > NOTHING_TO_KEEP:  # the start cut off or damaged, more after it: not for srx to delete
            continue
        with contextlib.suppress(OSError):
            Path(dud).unlink()
            log.info("%s: removed %s, which an earlier run left %s", target, dud,
                     "empty" if size == 0 else f"holding no frame ({counted(size, 'byte')})")
            left.remove(dud)
            plays_not.remove(dud)
    for part in [p for p in left if p not in plays_not and not folder]:  # a segment's: put in the series
        m = name.fullmatch(Path(part).name)
        if m is None or m.group(1) is None:  # a whole recording's: its target may be the run before's file
            continue
        place = untaken(target.with_name(f"{target.stem}{m.group(1)}{suffix}"))
        try:
            _sync(Path(part))
            os.replace(part, place)
        except OSError:
            continue
        left.remove(part)
        log.warning("%s: an earlier run did not finish its segment %s; what it recorded (it plays up to where that "
                    "run stopped) is put in place as %s", target, Path(part).name, place.name)
    if left:
        log.warning("%s%s: an earlier run did not finish it; what that run recorded is kept in %s (%s up "
                    "to where that run stopped%s), for you to move or delete", target, "/" if folder else "",
                    ", ".join(left), plays, f"; {', '.join(Path(p).name for p in plays_not)} does not play"
                    if plays_not else "")


#: an earlier run's partial file that plays nothing and is at most this long (bytes) is removed: a
#: header cut off before its first frame, nothing to keep
NOTHING_TO_KEEP = 64 * 1024


class VideoFileOutput(Output):
    """A video file; fixed frame size (later sizes are fitted into the first, aspect ratio kept).
    A recording whose file was deleted while it ran (a clean-up job, a user freeing space) starts
    again under its name once a second's check sees it gone, rather than filling the disk with a
    file no one can see.

    `segment` (seconds): one file per segment (`segment_key`, `segment_path`), each finished when a
    frame of the next comes and opened at that frame's size; a frame is at the run's start on
    `clock` (a SegmentClock, shared by one source's recordings) plus its time in the recording (a
    live source's clock, a file's own times, an .avi's slots), and each segment's video starts at 0.
    `keep` (seconds): after each segment, the recording's own segments that began longer ago than
    that are deleted (`recorded_segments`). `keep_free` (FreeSpace): after each segment and at each
    second's check, while its disk has less room than that, the recording's own oldest segments are
    deleted, never the newest this run finished (`_make_room`).

    A segmented recording outlives a failure: a segment that cannot be written or finished (a full
    disk, a folder that takes no new name) is lost alone, what it holds kept as when a recording fails
    (`_abandon`), and the recording starts again with the first frame of the next segment, trying
    once per segment until a file opens and takes frames; what was lost is said when it records
    again and at the end (`lost`: the run exits 1). Unsegmented, a failure ends the recording
    (`Output.failed`): there is no next file to go on in."""

    fixed_size = True
    #: how often a recording checks that its file is still there, in seconds
    CHECK_S = 1.0

    def __init__(self, path: Path, fps: float = 10.0, segment: float | None = None, keep: float | None = None,
                 clock: SegmentClock | None = None, keep_free: FreeSpace | None = None) -> None:
        self.path = Path(path)
        self.name = f"recording {self.path}"
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCC:
            raise SrxError(f"--output {self.path}: unsupported video type {suffix!r}; expected "
                           ".mp4/.mov/.m4v (H.264), .mkv (lossless FFV1), .avi (MJPEG) or a folder for PNG frames")
        if self.path.is_dir():
            raise SrxError(f"--output {self.path} is a folder; expected a video file name")
        check_nearest_folder(self.path.parent, self.path, "--output", "write")
        if keep_free is not None:  # before the claim: a refusal leaves nothing behind
            keep_free.check(self.path)
        self.fourcc = VIDEO_FOURCC[suffix]
        self.realtime = self.fourcc != "FFV1"  # without frame times: .avi repeats; lossless .mkv never repeats
        self.timed = self.fourcc != "MJPG"  # each frame at its own time: no repeats, a variable rate kept
        self._span: tuple[float, float] | None = None  # first and last frame time of a timed recording
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.claim = RecordingClaim(self.path, str(self.path))  # a segmented one's base name: all its segments
        _warn_left_partials(self.path, self.path.suffix, folder=False, plays="it plays")
        self.tmp: Path | None = None  # `.NAME.partial.XXXXXXXX.mp4`, made anew at each open
        self.writer: Any = None
        self.size: tuple[int, int] | None = None
        self.frames = 0  # in the recording (all its segments)
        self.distinct = 0  # upscaled frames among them (the rest repeat one to keep the source's timing)
        self._file = [0, 0]  # frames and distinct ones in the file open now
        self._last: np.ndarray | None = None
        self._warned = False
        self._closed = False
        self._check_at = 0.0
        self._on_disk = False  # its file was seen: gone after that, it was deleted
        self.segment, self.keep, self.keep_free = segment, keep, keep_free
        if keep_free is not None:
            keep_free.join(self)
        self._left: list[tuple[Path, Path]] = []  # whole segments the folder refused to rename: (partial, name)
        self._delete_said = False  # a file --keep or --keep-free cannot delete: said once, until one goes
        self._unknown_said = False  # earlier files whose age --keep cannot tell: said once
        self._undated: list[str] = []  # their names, at the last --keep: said again where the disk fills
        self.clock = clock or SegmentClock()  # shared by a source's recordings: cut at the same frames
        self.target = self.path  # where the open recording goes on close: the path, or its segment's file
        self.segments: deque[Path] = deque(maxlen=1000)  # the newest finished segments, in order (a run of months: bounded)
        self.segment_count = 0  # segments finished in this run
        self.first_segment: Path | None = None
        self._key: int | None = None  # the open segment's
        self._t0 = 0.0  # the recording time its first frame is at: its video starts there
        self._t_last: float | None = None
        self._t_first: float | None = None  # the recording time of its first frame: the segment clock counts from it
        self._slots = 0  # frames written through the run (an .avi's clock)
        self._began: dict[Path, float] = {}  # this run's segments: when each began, on the monotonic clock
        self.pruned = 0  # this run's segments that --keep or --keep-free deleted
        self._frame_key: int | None = None  # the segment the frame being written is in
        self._paused: int | None = None  # the segment that failed: the next frame of a later one tries again
        self.lost_segments = 0  # segments that failed and went unfinished
        self._lost_now = 0  # of them, since the recording last took a frame
        self.lost: str | None = None  # why segments were lost, for the end of the run (it exits 1)
        self._why = ""

    def _open(self, frame: np.ndarray) -> None:
        from srx.media import FFV1Writer, H264Writer, MJPEGWriter

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # deleted while the run went on
        except OSError as exc:
            raise SrxError(f"cannot write {self.target}: cannot make its folder: {exc.strerror or exc}") from None
        self.claim.keep()  # the folder may have gone with its lock file
        self.tmp = temporary_sibling(self.target, suffix=self.path.suffix, prefix=f".{self.target.stem}.partial.")
        w, h = int(frame.shape[1]), int(frame.shape[0])
        try:
            if self.fourcc == "h264":
                self.writer = H264Writer(self.tmp, self.fps, (w, h), crf=20, preset="ultrafast", threads=1,
                                         fragmented=True)
            elif self.fourcc == "FFV1":
                self.writer = FFV1Writer(self.tmp, self.fps, (w, h), fragmented=True)
            else:
                self.writer = MJPEGWriter(self.tmp, self.fps, (w, h), fragmented=True)
        except SrxError:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None
            raise
        self.size = self.writer.size  # 4:2:0 needs even sides: a 1-pixel crop of an odd-sized H.264 or MJPEG output
        if self.size != (w, h):
            log.info("%s: %s (4:2:0) needs even sides; the last column/row of %dx%d is left out",
                     self.path.name, "MJPEG" if self.fourcc == "MJPG" else "H.264", w, h)

    def describe(self) -> str:
        if self.segment is None:
            return self.name
        done = f": {counted(self.segment_count, 'file')}{self._files_text()}" if self.segments else ""
        return f"{self.name} in {duration_text(self.segment)} segments{done}{self._pruned_text()}"

    def _pruned_text(self) -> str:
        """' (7 of them deleted since by --keep)' where --keep or --keep-free deleted this run's segments."""
        why = " or ".join(o for o, v in (("--keep", self.keep), ("--keep-free", self.keep_free)) if v is not None)
        return f" ({self.pruned} of them deleted since by {why})" if self.pruned else ""

    def status(self) -> dict[str, Any]:
        """/stats' and /metrics' view of it: `state` recording (a file open), waiting (for its first
        frame, or a segmented one's next after a finished file), lost (segments failed, and none has been
        finished since: an H.264 segment opened on a full disk only fails at its fragment), failed (for
        good: an unsegmented recording, closed when it failed), closed; `up` is false while lost or
        failed. Segment counts are this run's; the free space is its disk's."""
        if self.failed is not None:
            state = "failed"
        elif self._closed:
            state = "closed"
        elif self._lost_now:
            state = "lost"
        else:
            state = "recording" if self.writer is not None else "waiting"
        try:
            free: int | None = shutil.disk_usage(nearest_existing(self.path.parent)).free
        except OSError:
            free = None
        out: dict[str, Any] = {"kind": "recording", "output": str(self.path), "state": state,
                               "up": state not in ("lost", "failed"), "disk_free_bytes": free}
        if self.segment is not None:
            out.update(segments=self.segment_count, segments_lost=self.lost_segments, segments_deleted=self.pruned)
        return out

    def _files_text(self) -> str:
        """', FIRST to LAST': the oldest of the run's finished segments still on disk (the first may have
        gone to --keep, --keep-free or a user) and the newest."""
        if not self.segments:
            return ""
        first = self.first_segment if self.first_segment is not None and self.first_segment.exists() else \
            next((p for p in self.segments if p.exists()), self.segments[-1])
        return f", {first.name}" + (f" to {self.segments[-1].name}" if self.segments[-1] != first else "")

    def _segment_for(self, at_s: float | None) -> float:
        """The frame's time in the recording; with segments, the one before is finished where this
        frame begins the next, and the next one's file is chosen."""
        if self.timed:
            t = at_s if at_s is not None else (self._t_last + 1.0 / self.fps if self._t_last is not None else 0.0)
        else:
            t = self._slots / self.fps
        self._t_last = t
        if self.segment is None:
            return t
        if self._t_first is None:
            self._t_first = t
        wall = self.clock.wall(t - self._t_first)
        key = self._frame_key = segment_key(wall, self.segment)
        if self.writer is not None and key != self._key:
            try:
                self._finish()
            except SrxError as exc:  # that segment is lost; this frame's opens the next all the same
                self._lose(exc)
                self._paused = None
        if self.writer is None and key != self._paused:
            self._key, self._t0 = key, t
            self.target = segment_path(self.path, wall)
            if self.keep is not None or self.keep_free is not None:  # this run's own judged by the monotonic clock
                self._began[self.target] = time.monotonic()
        return t

    def write(self, frame: np.ndarray, at_s: float | None = None) -> bool:
        if self.segment is None:
            return self._write(frame, at_s)
        try:
            return self._write(frame, at_s)
        except SrxError as exc:  # this segment is lost; the next one tries again
            self._lose(exc)
            if not self.timed:
                self._slots += 1  # the frame's slot passed all the same (an .avi's clock)
            return True

    def _write(self, frame: np.ndarray, at_s: float | None) -> bool:
        if self.writer is not None and time.monotonic() >= self._check_at:  # first: a new file takes a new name
            self._check_at = time.monotonic() + self.CHECK_S
            there = self.tmp is not None and self.tmp.exists()
            if self._on_disk and not there:
                self._start_again()
            self._on_disk = there
            self.claim.keep()
            if self.keep_free is not None:  # a disk that fills mid-segment, from this recording or others
                self._make_room()
        t = self._segment_for(at_s)
        if self.segment is not None and self._frame_key == self._paused:
            self._slots += 1  # an .avi's clock goes on, or it never reached the next segment
            return True  # in the segment that failed: the recording starts again with the next
        if self.writer is None:
            if self.keep_free is not None:  # room first (a disk that filled while no file was open)
                self._make_room()
            self._open(frame)
        assert self.size is not None
        if (abs(frame.shape[1] - self.size[0]) > 1 or abs(frame.shape[0] - self.size[1]) > 1) and not self._warned:
            log.warning("frame size changed to %dx%d; %s keeps %dx%d (frames fitted into it, aspect ratio kept)",
                        frame.shape[1], frame.shape[0], self.path.name, *self.size)
            self._warned = True
        if self.timed:  # H264Writer crops an odd side itself
            self.writer.write(_fit(frame, self.size), None if at_s is None else 1000.0 * (t - self._t0))
            if at_s is not None:
                self._span = (self._span[0] if self._span else at_s, at_s)
        else:
            self.writer.write(_fit(frame, self.size))
        self._slots += 1
        self.frames += 1
        self._file[0] += 1
        if frame is not self._last:
            self.distinct += 1
            self._file[1] += 1
            self._last = frame
        return True

    def _start_again(self) -> None:
        """The file was deleted under the recording: let go of it (its space comes back) and open a
        new one with the next frame."""
        log.warning("%s was deleted while recording (the %s in it went with it); recording again from "
                    "the next frame", self.target, counted(self._file[0], "frame"))
        try:
            self.writer.close()
        except SrxError:
            pass
        self.writer, self.size, self._span, self._last = None, None, None, None
        self.frames, self.distinct = self.frames - self._file[0], self.distinct - self._file[1]
        self._file = [0, 0]
        self._on_disk = False
        self._warned = False
        self.tmp.unlink(missing_ok=True)  # what closing it wrote again
        self.tmp = None

    def _lose(self, exc: SrxError) -> None:
        """The open segment failed (its write, its open or its finish): given up as a failed
        recording is (`_abandon`: what it holds kept under its partial name where it plays), and no
        file more until the next segment begins. The first failure since a segment was last finished
        is an error line; the ones after it, while the cause lasts, are counted in the warning that
        the next finished segment gives (`_finish`)."""
        self.frames, self.distinct = self.frames - self._file[0], self.distinct - self._file[1]
        if self.tmp is not None:
            self._abandon()
        else:  # its writer did not open: nothing of it is on disk
            self.writer, self.size, self._span = None, None, None
            self._file = [0, 0]
        self._began.pop(self.target, None)
        self._on_disk = self._warned = False
        self._paused = self._frame_key
        self.lost_segments += 1
        self._lost_now += 1
        why = self._why = str(exc)
        if self._lost_now == 1:
            undated = ""
            if self.keep is not None and self.keep_free is None:
                self._prune()  # what is old goes now; what it cannot date is said (a box that never got NTP)
            if self._undated and self.keep_free is None:
                undated = (f" ({counted(len(self._undated), 'earlier file')} of it that --keep cannot date "
                           f"stay{'' if len(self._undated) > 1 else 's'} on the disk, {_names(self._undated)}: "
                           "--keep-free SIZE deletes the oldest when the disk needs room)")
            log.error("%s: segment %s lost: %s; recording again from the next segment%s", self.name,
                      self.target.name, why, undated)
        else:
            log.debug("%s: segment %s lost too: %s", self.name, self.target.name, why)
        self.lost = f"{counted(self.lost_segments, 'segment')} lost (the last: {why})"
        if self.keep_free is not None:  # room for the next one, where the disk was full
            self._make_room()

    def hold(self, times: int) -> None:
        if self.writer is None and self._paused is not None and not self.timed:
            self._slots += times  # the slots pass in the segment that failed, as they would on screen
            return
        for _ in range(times if self._last is not None and self.writer is not None else 0):
            self.write(self._last)

    def close(self) -> None:
        try:
            if self.failed is not None and self.tmp is not None:
                self._abandon()
            elif self.writer is None:
                if not self._closed and not self.segments and self.lost is None:  # frames came where it failed (Output.failed): its writer did not open
                    log.warning("%s not written: %s", self.path, f"its writer could not be opened: {self.failed}"
                                if self.failed is not None else "no frame was upscaled for it")
            else:
                try:
                    self._finish()
                except SrxError as exc:
                    if self.segment is None:
                        self._abandon()  # what its partial file holds, said (or it is removed where it holds nothing)
                        raise
                    self._lose(exc)  # the segment open at the stop: counted with the others the run lost
            if self.segment is not None:
                self._place_left(last=True)
                if self.segment_count > 1:
                    log.info("%s: %s%s%s", self.path, counted(self.segment_count, "segment"), self._files_text(),
                             self._pruned_text())
        finally:
            self._closed = True
            self._last = None
            self.claim.release()

    def discard(self) -> None:
        """The run did not start (another output was refused): let go of the target, say nothing."""
        self._closed = True
        self.close()

    def _abandon(self) -> None:
        """Close the recording that failed (Output.failed) without finishing it: the file it was to
        replace stays as it was, and what it holds stays under its partial name, named in a warning
        (it plays up to where the disk took no more), or is removed where it holds nothing."""
        writer, self.writer = self.writer, None
        frames = self._file[0]
        if writer is not None:  # else it failed being finished (_finish), or opened (_open: nothing there)
            try:
                writer.close()  # after a failed write: no packet more, the trailer only where the header went out
            except SrxError as exc:
                log.debug("closing %s: %s", self.tmp, exc)
            frames = min(frames, writer.muxed)  # x264 holds a few back
        if frames == 0 or _plays_nothing(self.tmp):
            self.tmp.unlink(missing_ok=True)
        else:
            log.warning("what %s recorded until then is in %s (%s went to it; it plays up to the last that "
                        "reached the disk), for you to move or delete%s", self.name, self.tmp,
                        counted(frames, "frame"), f"; {self.target} is as it was" if self.target.exists() else "")
        self.size, self._span, self.tmp = None, None, None
        self._file = [0, 0]

    def _finish(self) -> None:
        """Finish the open recording (a segment, or the whole of it): its file renamed into place."""
        writer, self.writer = self.writer, None  # the frame written last stays: an .avi's next segment holds it until the next is due
        try:
            writer.close()
        except SrxError:  # what its partial file holds is said once, by _abandon (close, or _retire's close)
            self._file[0] = min(self._file[0], writer.muxed)
            raise
        frames, distinct = self._file
        if frames and not self.tmp.exists():  # deleted since the last check
            log.warning("%s was deleted while recording (the %s in it went with it)", self.target,
                        counted(frames, "frame"))
            self.frames, self.distinct = self.frames - frames, self.distinct - distinct
            self._began.pop(self.target, None)
            frames = 0
        elif frames:
            try:
                _sync(self.tmp)  # on the card before its name is: a power cut after the rename loses none of it
                os.replace(self.tmp, self.target)
            except OSError as exc:  # the folder made read-only, a file system gone read-only
                if self.segment is None:  # this output fails alone
                    raise SrxError(f"cannot finish {self.target}: {exc.strerror or exc}") from None
                self._left.append((self.tmp, self.target))  # whole: put in place once the folder takes it
                log.warning("%s: cannot put %s in place (%s); it stays whole in %s (%s) and is put in place "
                            "once the folder takes it", self.name, self.target.name, exc.strerror or exc,
                            self.tmp.name, counted(frames, "frame"))
                self.size, self._span, self.tmp = None, None, None
                self._file = [0, 0]
                self._on_disk = self._warned = False
                return
            with contextlib.suppress(OSError):  # the new name on the card too
                _sync(self.target.parent)
            self._place_left()
            if self.segment is not None:
                self.segments.append(self.target)
                self.segment_count += 1
                self.first_segment = self.first_segment or self.target
                if self._lost_now:  # the first finished since segments were lost (a write may only fail at the finish)
                    log.warning("%s records again: %s is finished (%s lost before it; the last: %s)", self.name,
                                self.target.name, counted(self._lost_now, "segment"), self._why)
                    self._lost_now = 0
            if self._span is not None:  # each frame at its time: until the last one's is over
                seconds = self._span[1] - self._span[0] + 1.0 / self.fps
                length = f"{counted(frames, 'frame')}, {seconds_text(seconds)}, each at its time"
            else:
                length = f"{counted(frames, 'frame')}, {seconds_text(frames / self.fps)} at {self.fps:g} fps"
            if distinct < frames:
                log.info("recorded %s to %s: %d distinct, the rest repeats of the one before where the stream "
                         "showed no new frame (frames dropped or skipped, no signal), so the video keeps the "
                         "source's timing", length, self.target, distinct)
            else:
                log.info("recorded %s to %s", length, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
            self._began.pop(self.target, None)
        self.size, self._span, self.tmp = None, None, None
        self._file = [0, 0]
        self._on_disk = self._warned = False
        if self.keep is not None:
            self._prune()
        if self.keep_free is not None:
            self._make_room()

    def _place_left(self, last: bool = False) -> None:
        """Whole segments the folder refused to rename at their cut (`_left`): put in place now that a
        segment was (a free name where theirs was taken since). `last` (the end of the run): those that
        still cannot be are named for the user to move, and said at the end (`lost`)."""
        still, why = [], ""
        for tmp, target in self._left:
            if not tmp.exists():  # deleted meanwhile (a user, a clean-up)
                continue
            place = untaken(target)
            try:
                os.replace(tmp, place)
            except OSError as exc:
                still.append((tmp, target))
                why = str(exc.strerror or exc)
                continue
            self.segments.append(place)
            self.segment_count += 1
            self.first_segment = self.first_segment or place
            log.info("%s: put %s in place, which the folder had refused", self.name, place.name)
        self._left = still
        if last and still:
            for tmp, target in still:
                log.warning("%s: %s is whole in %s, which the folder would not rename (%s), for you to move",
                            self.name, target.name, tmp, why)
            note = f"{counted(len(still), 'segment')} left under a partial name (the folder refused the rename: {why})"
            self.lost = f"{self.lost}; {note}" if self.lost else note

    def _prune(self) -> None:
        """Delete the recording's own segments that began more than `keep` seconds ago: this run's by
        the monotonic clock, an earlier run's where both its name and its modification time say so
        (a clock that was set after they were named, say from 1970 by NTP, does not make this run's
        segments old, nor an earlier run's from minutes ago); and the partial files killed runs left
        of it, unchanged for longer than that."""
        now, wall = time.monotonic(), self.clock.clock()
        cutoff = wall - self.keep
        old, unknown = [], []
        for start, p in recorded_segments(self.path):
            if p in self._began:
                if now - self._began[p] > self.keep:
                    old.append(p)
                continue
            try:
                times = _times_of(start, p.stat().st_mtime, wall)
            except OSError:
                continue
            if not times:
                unknown.append(p.name)
            elif max(times) < cutoff:
                old.append(p)
        self._undated = unknown
        if unknown and not self._unknown_said:
            self._unknown_said = True
            log.warning("--keep %s: %s of %s cannot be judged and stay%s (%s): %s", duration_text(self.keep),
                        counted(len(unknown), "earlier file"), self.path, "" if len(unknown) > 1 else "s",
                        _names(unknown), UNKNOWN_AGE)
        partial = partial_pattern(self.path.stem, self.path.suffix)
        try:  # what runs that were killed left, unchanged for longer than --keep (a live run's changes each second)
            for p in self.path.parent.iterdir():
                if (partial.fullmatch(p.name) and p != self.tmp and all(p != t for t, _ in self._left)
                        and not p.is_symlink() and p.is_file()
                        and p.stat().st_mtime < cutoff):
                    old.append(p)
        except OSError:
            pass
        gone = [p.name for p in old if self._delete(p, "--keep") is None]
        if gone:
            log.info("--keep %s: deleted %s of %s (%s)", duration_text(self.keep), counted(len(gone), "old file"),
                     self.path, _names(gone))

    def _delete(self, p: Path, option: str) -> str | None:
        """Delete one of the recording's own files for `option`: None where it went, else why not
        ("" where it had gone already). A file that cannot be deleted (a folder made read-only) is
        said once, until one is deleted again: at each segment it would say so for every file."""
        try:
            p.unlink()
        except FileNotFoundError:  # deleted by someone else meanwhile
            return ""
        except OSError as exc:
            why = str(exc.strerror or exc)
            if not self._delete_said:
                self._delete_said = True
                log.warning("%s: cannot delete %s: %s (said once; tried again at each segment)", option, p, why)
            return why
        self._delete_said = False
        if p in self._began:  # this run's (each segment's beginning is kept where --keep or --keep-free is set)
            self.pruned += 1
            del self._began[p]
        return None

    def _make_room(self) -> None:
        """--keep-free: while the recording's disk has less room than that, delete the oldest
        segments of the recordings that share the setting on that disk (this run's recordings of
        every source: so one camera's footage does not eat another's history; an earlier run's
        segments of them too, files named as srx names them), never the one a recording finished
        last. An earlier run's go before this run's, which came after them: first those dated ahead
        (a clock that ran ahead), then by their time (`_times_of`), then those dated before 2026 (no
        clock yet) by modification time; this run's by the monotonic clock. A disk that stays short
        (other files fill it) is said once, until it has room."""
        assert self.keep_free is not None
        try:
            short, free = self.keep_free.short_by(self.path.parent)
            disk = os.stat(self.path.parent).st_dev
        except OSError:  # the folder deleted meanwhile: the next open makes it again
            return
        if not short:
            return
        candidates, now, mono = [], self.clock.clock(), time.monotonic()  # the wall clock (a test's own)
        for rec in self.keep_free.recordings(disk):
            newest = rec.segments[-1] if rec.segments else None
            for start, p in recorded_segments(rec.path):
                if p == newest:
                    continue
                if p in rec._began:  # this run's: after every earlier run's, by the monotonic clock among them
                    candidates.append((2, now - (mono - rec._began[p]), str(p), p, rec))
                    continue
                try:
                    mtime = p.stat().st_mtime
                except OSError:
                    continue
                times = _times_of(start, mtime, now)
                if times:
                    candidates.append((0, min(times), str(p), p, rec))
                elif max(start, mtime) > now + 60:  # from the future: a clock that ran ahead, long since set: first
                    candidates.append((-1, min(start, mtime), str(p), p, rec))
                else:  # written while the clock was not set, maybe just before this run: after those with a date
                    candidates.append((1, mtime, str(p), p, rec))
        gone, refused = [], None
        for *_, p, rec in sorted(candidates, key=lambda c: c[:3]):
            why = rec._delete(p, "--keep-free")
            if why:  # the folder takes no deletion now: the others would fail the same way
                refused = why
                break
            if why is None:
                gone.append(p.name)
                try:
                    short, free = self.keep_free.short_by(self.path.parent)
                except OSError:
                    break
                if not short:
                    break
        if gone:
            log.info("--keep-free %s: deleted the %s on the disk of %s (%s); %s free", self.keep_free.text,
                     f"{len(gone)} oldest segments" if len(gone) > 1 else "oldest segment", self.path.parent, _names(gone),
                     bytes_text(free))
        if short and disk not in self.keep_free.short_said and not refused:
            self.keep_free.short_said.add(disk)  # once for the disk, not for each recording on it
            log.warning("--keep-free %s: the disk of %s has %s free and no segment is left to delete but the newest "
                        "of each recording (other files take the rest, or the setting asks for more room than the "
                        "disk has beside them); it records on while the disk has room", self.keep_free.text,
                        self.path, bytes_text(free))


#: what --keep says of an earlier run's file whose age cannot be told
UNKNOWN_AGE = ("named and written while the clock was not set (before 2026) or ahead of it (in the future), so "
               "how old they are is not known; --keep-free deletes them when the disk needs room (those written "
               "ahead first, those before 2026 last), or delete them yourself")


def _times_of(start: float, mtime: float, now: float) -> list[float]:
    """Of an earlier run's segment, its name's time and its modification time where each can be right:
    neither before 2026 (a box without a clock, before NTP set it) nor in the future. --keep deletes
    where all of them are old (a clock set after a file was named does not make it old), --keep-free
    goes by the earlier (a time zone moves the name, a copy the modification time); none: age unknown."""
    return [t for t in (start, mtime) if CLOCK_SET_AFTER <= t <= now + 60]


def _sync(path: Path) -> None:
    """fsync a file or a folder (the OS writes back within about 30 s otherwise: what a power cut
    takes). A file system that cannot sync a folder says EINVAL, which is no loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS):
            raise
    finally:
        os.close(fd)


def _names(names: list[str]) -> str:
    """A few file names, or the first three of many and how many more ('A ... B' read as a range that
    took in files a line before had said were kept)."""
    return ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])} and {len(names) - 3} more"


class PngSequenceOutput(Output):
    """Lossless frames frame_000000.png ... in a folder, written into a new `.<folder>.partial.XXXXXXXX`
    and renamed into place on close, with the mode of the folder it replaces. An existing folder is
    replaced only if it holds nothing but such frames, and never by a run whose writing failed
    (Output.failed): its frames stay in the partial folder, named in a warning (the folder is
    removed where it holds none). Each frame is coded in memory and written by srx, so a failed write
    is said with the system's own reason (libpng's "Write Error" never reaches stderr)."""

    #: a recording: it starts at a source's first real frame, never with the no-signal placeholders of a
    #: source whose size is not known yet (each frame keeps its own size)
    fixed_size = True

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = f"PNG frames {self.folder}/"
        if self.folder.is_symlink() and self.folder.is_dir():  # a link to a folder elsewhere (a larger disk):
            self.folder = self.folder.resolve()  # the frames go there, the link stays
        if self.folder.exists():
            if not self.folder.is_dir():
                raise SrxError(f"--output {self.folder}/ exists as a file; expected a folder for PNG frames")
            strangers = [p.name for p in self.folder.iterdir() if not (p.name.startswith("frame_") and p.suffix == ".png")]
            if strangers:
                raise SrxError(f"--output {self.folder}/ already holds other files ({', '.join(sorted(strangers)[:3])}); "
                               "expected a new or empty folder, or one of earlier srx frames")
        check_nearest_folder(self.folder.parent, f"{self.folder}/", "--output", "write")
        self.claim = RecordingClaim(self.folder, f"{self.folder}/")
        _warn_left_partials(self.folder, "", folder=True, plays="its frames")
        self.tmp: Path | None = None
        self.frames = 0
        self._started = False
        self._check_at = 0.0  # when the lock file is looked at next (RecordingClaim.keep)

    def write(self, frame: np.ndarray) -> bool:
        import cv2

        if not self._started:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = temporary_sibling(self.folder, suffix="", prefix=f".{self.folder.name}.partial.", folder=True)
            self._started = True
        if time.monotonic() >= self._check_at:
            self._check_at = time.monotonic() + VideoFileOutput.CHECK_S
            self.claim.keep()
        path = self.tmp / f"frame_{self.frames:06d}.png"
        ok, png = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise SrxError(f"cannot code frame {self.frames} of {self.name} as PNG")
        try:
            with open(path, "xb") as fh:  # x: never through a link or over a file put there meanwhile
                fh.write(png.data)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                with contextlib.suppress(OSError):
                    path.unlink()  # a cut-off frame is no frame
            raise SrxError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.frames += 1
        return True

    def close(self) -> None:
        try:
            self._close()
        finally:
            self.claim.release()

    def _close(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.failed is not None:  # the folder it was to replace stays as it was
            if self.frames == 0:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                log.warning("what %s recorded until then is in %s/ (%s went to it), for you to move or delete%s",
                            self.name, self.tmp, counted(self.frames, "frame"),
                            f"; {self.folder}/ is as it was" if self.folder.exists() else "")
            return
        old = None
        if self.folder.exists():
            old = temporary_sibling(self.folder, suffix="", prefix=f".{self.folder.name}.old.", folder=True)
            os.replace(self.folder, old)
        os.replace(self.tmp, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        log.info("wrote %s as PNG to %s/", counted(self.frames, "frame"), self.folder)


