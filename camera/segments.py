"""Segments (`--segment 1h`): a video-file recording is cut where the clock passes a multiple of the
segment's length in local time (on the hour, for 1h), each piece a file of its own named by the
local time of its first frame, `cam-20261206-140000.mp4`, finished (renamed into place) as the next
begins, so a box that records for weeks has files to copy, play and delete, and at most one segment
is partial at any time. `--keep 7d` deletes the recording's own segments older than that, and
`--keep-free 2G` its oldest while the disk has less room (`FreeSpace`); both only files named
exactly as srx names them (`recorded_segments`). The deleting itself is VideoFileOutput's
(camera/recording.py).
"""
from __future__ import annotations

import logging
import math
import os
import re
import time
import weakref
from pathlib import Path
from typing import Any

from srx.errors import SrxError
from srx.fsutil import nearest_existing
from srx.words import bytes_text, span_text

log = logging.getLogger("srx")

#: a segment's start in its file name: local time to the second (`cam-20261206-140000.mp4`)
SEGMENT_TIME = "%Y%m%d-%H%M%S"
#: the shortest `--segment`, seconds
MIN_SEGMENT_S = 1.0


#: a recording named and written before this (2026-01-01 UTC, before srx's first release) was made
#: while the clock was not set (a box without a clock, before NTP): how old it is, nobody knows
CLOCK_SET_AFTER = 1767225600.0


def segment_key(wall: float, length: float) -> tuple[int, int]:
    """The segment a frame at `wall` (seconds since the epoch) is in: segments are `length` long and
    begin where local time is a multiple of it (a length that divides a day: on the hour for 1h, at
    midnight for 1d, at :00, :10, ... for 10m), and a change of the UTC offset (daylight saving time)
    begins one too where segments are shorter than a day: at the autumn change local time repeats an
    hour, which would otherwise have made one 1h segment two hours long (a day's file keeps the day,
    of 25 hours then, or 23 in spring)."""
    offset = time.localtime(wall).tm_gmtoff
    return math.floor((wall + offset) / length), offset if length < 86400 else 0


class SegmentClock:
    """Where a source's recordings are on the wall clock, shared by them so all of one source's
    recordings (an .mp4 and an .mkv, say) are cut at the same frames: the first frame written to any
    of them is now, each later one its recording time after it (each recording counts from its own
    first frame). A `live` source's frames come in real time, so where that reckoning and the clock
    part by more than JUMP_S the clock was set (NTP after a boot without a clock): the reckoning
    starts again from now, and later segments are named by the right time."""

    #: a gap between a live source's reckoned time and the clock that only a clock being set explains
    JUMP_S = 5.0

    def __init__(self, clock: Any = time.time, live: bool = False) -> None:
        self.clock, self.live = clock, live
        self.wall0: float | None = None  # the clock at the recordings' time 0
        self.on_jump: Any = None  # called with the seconds the clock moved (the source's events)
        self.source = ""  # the source's name among several, for the warning

    def wall(self, t: float) -> float:
        """The wall-clock time of recording time `t` (seconds from the recording's first frame)."""
        now = self.clock() if self.wall0 is None or self.live else None
        if self.wall0 is None or (now is not None and abs(now - (self.wall0 + t)) > self.JUMP_S):
            if self.wall0 is not None:
                moved = now - (self.wall0 + t)
                log.warning("the clock was set %s by %s, to %s; %srecording segments are named by the new time",
                            "forward" if moved > 0 else "back", span_text(abs(moved)),
                            time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now)),
                            f"{self.source}'s " if self.source else "")
                if self.on_jump is not None:
                    self.on_jump(round(moved, 3))
            self.wall0 = now - t
        return self.wall0 + t


def _segment_pattern(base: Path) -> re.Pattern[str]:
    return re.compile(re.escape(base.stem) + r"-(\d{8}-\d{6})(?:-([1-9]\d*))?" + re.escape(base.suffix))


def segment_path(base: Path, wall: float) -> Path:
    """Where the segment of the recording `base` whose first frame is at `wall` goes: the local time in
    its name, and `-1`, `-2`, ... after it where that file exists (a run started again within the
    second, a clock set back), so a finished segment is never written over."""
    stamp = time.strftime(SEGMENT_TIME, time.localtime(wall))
    return untaken(base.with_name(f"{base.stem}-{stamp}{base.suffix}"))


def untaken(path: Path) -> Path:
    """`path`, or where a file (or a link) is there, the first of `STEM-1SUFFIX`, `STEM-2SUFFIX`, ...
    that is free: a segment never replaces a file."""
    n, free = 0, path
    while free.exists() or free.is_symlink():
        n += 1
        free = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return free


def recorded_segments(base: Path) -> list[tuple[float, Path]]:
    """The finished segments of the recording `base` in its folder, oldest first, each with the time its
    name gives: only plain files named exactly as srx names them (`STEM-YYYYmmdd-HHMMSS[-N]SUFFIX`)."""
    pattern = _segment_pattern(base)
    try:
        entries = list(base.parent.iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        m = pattern.fullmatch(p.name)
        if m is None or p.is_symlink() or not p.is_file():
            continue
        try:
            found.append((name_time(m.group(1), later=m.group(2) is not None), int(m.group(2) or 0), p))
        except (ValueError, OverflowError, OSError):  # 8 and 6 digits that are no time: not srx's
            continue
    return [(start, p) for start, _, p in sorted(found)]


def name_time(stamp: str, later: bool = False) -> float:
    """The time (seconds since the epoch) of a segment name's local `YYYYmmdd-HHMMSS`. Where local time
    names two moments (the hour repeated when daylight saving time ends), the first; `later` (a name
    with `-1`, `-2`, ...: the repeated hour's second segment took the first one's name with a number),
    the second."""
    from datetime import datetime

    local = datetime.strptime(stamp, SEGMENT_TIME)
    first, second = (local.replace(fold=f).timestamp() for f in (0, 1))
    if datetime.fromtimestamp(second) != local:  # in the spring gap no moment has that name
        return first
    return max(first, second) if later else min(first, second)


class FreeSpace:
    """`--keep-free`: the room segmented recordings keep on their disk, `size` bytes or `share` of the
    disk (0..1); `text` as the user gave it. One for a run: the recordings that `join` it make room
    together, the oldest segment of any of them on the disk going first."""

    def __init__(self, text: str, size: int = 0, share: float = 0.0) -> None:
        self.text, self.size, self.share = text, int(size), float(share)
        self._members: weakref.WeakSet[Any] = weakref.WeakSet()
        self.short_said: set[int] = set()  # disks (st_dev) said to stay short: once each in the run

    def join(self, recording: Any) -> None:
        """A recording (VideoFileOutput) that keeps this room."""
        self._members.add(recording)

    def recordings(self, disk: int) -> list[Any]:
        """The recordings that keep this room on the file system `disk` (st_dev), open or closed."""
        found = []
        for rec in list(self._members):
            try:
                if os.stat(rec.path.parent).st_dev == disk:
                    found.append(rec)
            except OSError:  # its folder gone for now
                continue
        return found

    def check(self, target: Path) -> None:
        """SrxError where the room asked for is the whole disk of `target` (its nearest folder there)."""
        try:
            st = os.statvfs(nearest_existing(target.parent))
        except OSError:
            return
        total = st.f_blocks * st.f_frsize
        if self.size and self.size >= total:
            raise SrxError(f"--keep-free {self.text}: the disk of {target} holds {bytes_text(total)} in all; "
                           "expected less than that, room for the recordings beside it (e.g. 10%)")

    def short_by(self, folder: Path) -> tuple[int, int]:
        """(bytes the disk of `folder` lacks, 0 where it has the room; bytes free there)."""
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
        want = self.size or int(self.share * st.f_blocks * st.f_frsize)
        return max(0, want - free), free


