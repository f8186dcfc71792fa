"""Segmented recordings (`srx stream --segment`, `--keep`): a recording cut into files where the
clock passes each multiple of the segment's length, named by their first frame's local time, every
frame in exactly one of them, and old segments deleted, never any other file."""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from srx.camera.recording import VideoFileOutput
from srx.camera.segments import SegmentClock, name_time, recorded_segments, segment_key
from srx.cli import app
from tests.camera.conftest import frames
from tests.camera.test_stream import write_ffv1
from tests.conftest import assert_one_error_line, stored_frames

#: 2026-11-14 22:13:21 UTC: one second past a multiple of 2 s
T0 = 1_794_694_401.0  # 2026-11-14 22:13:21 UTC: after CLOCK_SET_AFTER, so names and times are ones a set clock gives


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Local time is UTC for the test, so the names it expects hold on any host."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def video_times(path: Path) -> list[float]:
    """Each frame's time in a video, in seconds, as PyAV reads it."""
    import av

    with av.open(str(path)) as c:
        return [round(float(f.time), 3) for f in c.decode(video=0)]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".avi"])
def test_a_recording_is_cut_where_the_clock_passes_each_multiple(tmp_path: Path, utc, suffix: str) -> None:
    """Frames 0.1 s apart from 22:13:21.0 in 2 s segments: cuts at :22 and :24, so 10, 20 and 20
    frames; each file named by its first frame, each video starting at 0, none left partial, and
    (lossless) each frame exactly once, in order."""
    pictures = frames(50, 24, 32)
    out = VideoFileOutput(tmp_path / f"rec{suffix}", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(pictures):
        assert out.write(f, i / 10) if out.timed else out.write(f)
    out.close()
    names = [f"rec-20261114-2213{s}{suffix}" for s in ("21", "22", "24")]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert [p.name for p in out.segments] == names
    got = [stored_frames(tmp_path / n) for n in names]
    assert [len(g) for g in got] == [10, 20, 20]
    if suffix == ".mkv":
        assert all(np.array_equal(a, b) for a, b in zip([f for g in got for f in g], pictures))
    if suffix != ".avi":
        assert [video_times(tmp_path / n)[:2] for n in names] == [[0.0, 0.1]] * 3


def test_a_segment_opens_at_the_size_of_its_first_frame(tmp_path: Path, utc) -> None:
    """A camera that comes back in another resolution: the segment open then keeps its size (the
    frames fitted in), the next one is made at the new size."""
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(5, 24, 32) + frames(15, 36, 48)):
        out.write(f, i / 10)
    out.close()
    shapes = [stored_frames(p)[0].shape for p in out.segments]
    assert shapes == [(24, 32, 3), (36, 48, 3)]


def test_the_recordings_of_one_source_are_cut_at_the_same_frames(tmp_path: Path, utc) -> None:
    """An .mkv and an .avi of one source share its clock: the .avi's writer opened later (the first
    frame took the .mkv a while) cut it elsewhere before."""
    now = [T0]
    clock = SegmentClock(lambda: now[0])
    mkv = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, clock=clock)
    avi = VideoFileOutput(tmp_path / "rec.avi", fps=10, segment=2.0, clock=clock)
    for i, f in enumerate(frames(30, 24, 32)):
        mkv.write(f, i / 10)
        now[0] += 0.45  # the wall clock runs on while the first recording takes its frame
        avi.write(f)
    mkv.close()
    avi.close()
    assert [len(stored_frames(p)) for p in mkv.segments] == [len(stored_frames(p)) for p in avi.segments] == [10, 20]


def test_a_segment_name_never_replaces_a_file(tmp_path: Path, utc) -> None:
    """A run started again within the second (or a clock set back) finds its segment's name taken:
    the new segment gets -1 after it, the file there is left as it was."""
    earlier = tmp_path / "rec-20261114-221321.mkv"
    earlier.write_bytes(b"an earlier run's segment")
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(3, 24, 32)):
        out.write(f, i / 10)
    out.close()
    assert earlier.read_bytes() == b"an earlier run's segment"
    assert [p.name for p in out.segments] == ["rec-20261114-221321-1.mkv"]
    assert [p.name for _, p in recorded_segments(tmp_path / "rec.mkv")] == [earlier.name, "rec-20261114-221321-1.mkv"]


def test_keep_deletes_the_recordings_own_old_segments_and_nothing_else(tmp_path: Path, utc, caplog) -> None:
    """--keep 1h: segments of this recording that began over an hour ago go, and the partial files of it
    that killed runs left, untouched for longer; one 59 minutes old, one
    named old but written since (a clock set after it was named), the run's own, another recording's,
    other files, a link, names srx never gives (-0, -01, a newline at the end) and a name that is no
    time stay."""
    import os

    caplog.set_level(logging.INFO, logger="srx")
    target = tmp_path / "outside.mkv"
    target.write_bytes(b"not srx's")
    old = ["rec-20261101-000000.mkv", "rec-20261114-211320-1.mkv", ".rec-20261101-000000.partial.k2j4h5g6.mkv",
           ".rec.partial.a1b2c3d4.mkv"]  # and what killed runs left
    kept = ["rec-20261114-211421.mkv",  # 59 minutes before the run
            "rec-20261101-000000.mp4", "cam2-20261101-000000.mkv", "rec-notes.mkv", "rec-20261101-000000.mkv.txt",
            "rec-20261399-000000.mkv", "xrec-20261101-000000.mkv", "rec-20261101-000000-0.mkv",
            "rec-20261101-000000-01.mkv", "rec-20261101-000000.mkv\n", ".rec-20261101-000000.partial.k2j4h5g6.mp4",
            ".cam.partial.a1b2c3d4.mkv"]
    for name in old + kept:  # a killed run's partial as long as one that holds frames (a short one plays nothing:
        (tmp_path / name).write_bytes(os.urandom(70_000) if ".partial." in name else b"x")  # removed at the start)
        os.utime(tmp_path / name, (T0 - 30 * 86400, T0 - 30 * 86400))  # written a month before the run
    (tmp_path / "rec-20261102-000000.mkv").write_bytes(b"x")  # named old, written now: a clock set since
    os.utime(tmp_path / "rec-20261102-000000.mkv", (T0, T0))
    kept.append("rec-20261102-000000.mkv")
    (tmp_path / "rec-20261103-000000.mkv").symlink_to(target)
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, keep=3600.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(25, 24, 32)):
        out.write(f, i / 10)
    out.close()
    left = {p.name for p in tmp_path.iterdir()}
    assert not left & set(old)
    assert left == set(kept) | {"outside.mkv", "rec-20261103-000000.mkv"} | {p.name for p in out.segments}
    assert len(out.segments) == 2 and target.read_bytes() == b"not srx's"
    assert "--keep 1h: deleted 4 old files of" in caplog.text


def test_segment_key_follows_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """1h segments begin on the local hour, also where local time is not a whole hour off UTC."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+5:30
    time.tzset()
    try:
        on_the_hour = time.mktime((2026, 12, 6, 14, 0, 0, 0, 0, -1))
        assert segment_key(on_the_hour - 0.001, 3600)[0] + 1 == segment_key(on_the_hour, 3600)[0]
        assert segment_key(on_the_hour, 3600) == segment_key(on_the_hour + 3599.9, 3600)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_hourly_recording_is_cut_where_daylight_saving_time_ends(tmp_path: Path, monkeypatch) -> None:
    """At the autumn change local time goes from 02:59:59 CEST back to 02:00:00 CET: the 1h segment
    begun at 02:00 CEST went on to 03:00 CET, two hours in one file (a clock trial), since the local
    hour was the same. Now the change of offset cuts it, and the new segment's name, which the earlier
    hour may have taken, gets -1 rather than replacing it; spring's change cuts as it did."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        change = 1_792_890_000.0  # 2026-10-25 01:00:00 UTC: 03:00 CEST becomes 02:00 CET
        (tmp_path / "rec-20261025-020000.mkv").write_bytes(b"the hour from 02:00 CEST")
        now = [change - 2.0]
        out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=3600.0, clock=SegmentClock(lambda: now[0], live=True))
        for i, f in enumerate(frames(40, 24, 32)):
            out.write(f, i / 10)
            now[0] += 0.1
        out.close()
        assert [p.name for p in out.segments] == ["rec-20261025-025958.mkv", "rec-20261025-020000-1.mkv"]
        assert [len(stored_frames(p)) for p in out.segments] == [20, 20]
        assert (tmp_path / "rec-20261025-020000.mkv").read_bytes() == b"the hour from 02:00 CEST"
        spring = 1_774_746_000.0  # 2026-03-29 01:00:00 UTC: 02:00 CET becomes 03:00 CEST
        assert segment_key(spring - 0.1, 3600) != segment_key(spring, 3600)
        assert time.strftime("%H%M", time.localtime(spring)) == "0300"
        assert segment_key(change - 0.1, 86400) == segment_key(change, 86400)  # a day's file keeps its day (25 h)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_repeated_autumn_hours_second_file_is_dated_by_the_hour_it_holds(tmp_path: Path, monkeypatch) -> None:
    """The two files of the hour that repeats when daylight saving time ends, `-020000` (CEST) and
    `-020000-1` (CET, an hour later): --keep and --keep-free date the second an hour after the first,
    not at the same moment (it was the older of the two by its name, and went first); a name in the
    spring gap, which no moment has, and an unambiguous one, as before."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        change = 1_792_890_000.0  # 2026-10-25 01:00:00 UTC: 03:00 CEST becomes 02:00 CET
        for name in ("rec-20261025-020000-1.mkv", "rec-20261025-020000.mkv", "rec-20261025-025958.mkv",
                     "rec-20261025-010000.mkv"):
            (tmp_path / name).write_bytes(b"x")
        got = recorded_segments(tmp_path / "rec.mkv")
        assert [(t, p.name) for t, p in got] == [
            (change - 7200, "rec-20261025-010000.mkv"), (change - 3600, "rec-20261025-020000.mkv"),
            (change - 2, "rec-20261025-025958.mkv"), (change, "rec-20261025-020000-1.mkv")]
        assert name_time("20261025-020000") == change - 3600
        assert name_time("20260329-023000", later=True) == 1_774_747_800.0  # in the gap: read with CET's offset
        assert name_time("20261206-140000", later=True) == 1_796_562_000.0  # 13:00 UTC, one moment
    finally:
        monkeypatch.undo()
        time.tzset()


def _segments_of(folder: Path, stem: str, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if re.fullmatch(rf"{stem}-\d{{8}}-\d{{6}}(-\d+)?{suffix}", p.name))


def test_cli_segments_each_sources_recordings(tmp_path: Path, tiny_checkpoint) -> None:
    """`srx stream --segment 1s` on a 3 s clip, one source with two recordings and two sources with
    {name}: every frame is in exactly one segment, and the .mkv and .mp4 of a source are cut alike."""
    clip = tmp_path / "clip.mkv"
    write_ffv1(clip, frames(30, 24, 32), fps=10)
    w = str(tiny_checkpoint(2))
    common = ["-w", w, "--backend", "torch", "--threads", "1", "--no-drop", "--no-window", "-q", "--segment", "1s"]
    one = CliRunner().invoke(app, ["stream", "--source", str(clip), "--output", str(tmp_path / "one" / "rec.mkv"),
                                   "--output", str(tmp_path / "one" / "rec.mp4"), *common,
                                   "--json-summary", str(tmp_path / "one.json")])
    assert one.exit_code == 0, one.output
    mkv, mp4 = _segments_of(tmp_path / "one", "rec", ".mkv"), _segments_of(tmp_path / "one", "rec", ".mp4")
    listed = json.loads((tmp_path / "one.json").read_text())["outputs"]
    assert listed[0] == f"recording {tmp_path / 'one' / 'rec.mkv'} in 1s segments: {len(mkv)} files, {mkv[0].name} to {mkv[-1].name}"
    assert len(mkv) >= 3 and [p.stem for p in mkv] == [p.stem for p in mp4]
    counts = [len(stored_frames(p)) for p in mkv]
    assert sum(counts) == 30 and max(counts) <= 10 and counts == [len(stored_frames(p)) for p in mp4]
    many = CliRunner().invoke(app, ["stream", "--source", f"a={clip}", "--source", f"b={clip}",
                                    "--output", str(tmp_path / "many" / "{name}.mkv"), *common])
    assert many.exit_code == 0, many.output
    for name in ("a", "b"):
        got = _segments_of(tmp_path / "many", name, ".mkv")
        assert len(got) >= 3 and sum(len(stored_frames(p)) for p in got) == 30
    assert not list(tmp_path.rglob(".*partial*"))


@pytest.mark.parametrize("args,match", [
    (["--keep", "1h"], "--keep 1h deletes old segments of a recording; it needs --segment"),
    (["--segment", "0.5s"], "--segment 0.5s: expected at least 1 second"),
    (["--segment", "soon"], "--segment 'soon': expected a duration"),
    (["--segment", "1h", "--keep", "30m"], "--keep 30m is not longer than --segment 1h"),
    (["--segment", "1h", "--keep", "1h"], "--keep 1h is not longer than --segment 1h"),
    (["--segment", "1h", "--keep", "a week"], "--keep 'a week': expected a duration like 90, 30s, 20m, 1.5h, 1h30m or 7d"),
    (["--segment", "1h", "--output", "FOLDER/"], "none among --output (rtsp:// and folders of frames are not cut)"),
    (["--segment", "1h"], "--segment 1h cuts video-file recordings (--output NAME.mp4, .mkv, .avi); none was given"),
    (["--keep-free", "2G"], "--keep-free 2G deletes old segments of a recording; it needs --segment"),
    (["--segment", "1h", "--keep-free", "2 gigs"], "--keep-free '2 gigs': expected a size with K, M, G or T"),
    (["--segment", "1h", "--keep-free", "0G"], "--keep-free '0G': expected a size above 0"),
    (["--segment", "1h", "--keep-free", "100%"], "--keep-free '100%': expected a share of the disk above 0% and under 100%"),
    (["--segment", "1h", "--keep-free", "5m"], "--keep-free '5m': expected a size with K, M, G or T, capitals"),
    (["--segment", "1h", "--keep-free", "900T"], "in all; expected less than that, room for the recordings beside it"),
])
def test_bad_segment_options_are_one_line_before_the_run(tmp_path: Path, args: list[str], match: str) -> None:
    args = [a.replace("FOLDER", str(tmp_path / "frames")) for a in args]
    if "--output" not in args and ("--keep" in args or "--keep-free" in args):
        args += ["--output", str(tmp_path / "rec.mkv")]
    result = CliRunner().invoke(app, ["stream", "--demo", "--no-window", *args])
    assert result.exit_code == 1
    assert_one_error_line(result.output, match)
    assert not list(tmp_path.iterdir())


def test_a_live_source_is_cut_on_the_clocks_seconds(tmp_path: Path, tiny_checkpoint) -> None:
    """A real RTSP camera (GStreamer's server) recorded in 1 s segments: after the first, each segment
    begins on a whole second of the clock, one second after the one before; none is longer than 1 s."""
    from tests.camera.test_rtsp import serving_clip

    server, _, port = serving_clip(tmp_path, 100)
    out = tmp_path / "cam.mp4"
    try:
        result = CliRunner().invoke(app, [
            "stream", "--source", f"rtsp://127.0.0.1:{port}/clip", "-w", str(tiny_checkpoint(2)), "--backend", "torch",
            "--threads", "1", "--output", str(out), "--segment", "1s", "--duration", "4s", "--no-window", "-q"])
    finally:
        server.kill()
    assert result.exit_code == 0, result.output
    got = _segments_of(tmp_path, "cam", ".mp4")
    assert len(got) >= 3, result.output
    starts = [time.mktime(time.strptime(p.stem[4:19], "%Y%m%d-%H%M%S")) for p in got]
    assert all(b - a == 1 for a, b in zip(starts[1:], starts[2:])), [p.name for p in got]
    assert all(video_times(p)[-1] < 1.0 for p in got)


def test_a_killed_segments_partial_file_is_put_in_place_at_the_next_start(tmp_path: Path, utc, caplog) -> None:
    """A power cut mid-segment leaves its partial file under the segment's own name (that it plays up
    to its last second is test_recording's kill test), the finished segments before it whole; the
    next run puts it in place as that segment, up to where it stopped, and says so (it was left
    hidden, "for you to move or delete", a gap in the recorder's series until someone did)."""
    caplog.set_level(logging.WARNING, logger="srx")
    killed = VideoFileOutput(tmp_path / "rec.mp4", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(25, 240, 320)):  # an .mp4 goes out a fragment a second: one of :22's is out
        killed.write(f, i / 10)  # never closed: the process died,
    killed.claim.release(remove=False)  # and the kernel let go of its claim on rec.mp4
    assert [p.name for p in killed.segments] == ["rec-20261114-221321.mp4"]
    left = killed.tmp
    assert left is not None and left.name.startswith(".rec-20261114-221322.partial.") and left.suffix == ".mp4"
    assert left.stat().st_size and len(stored_frames(tmp_path / "rec-20261114-221321.mp4")) == 10
    empty = tmp_path / ".rec-20261114-221320.partial.abcdefgh.mp4"  # one killed before a byte reached the disk
    empty.write_bytes(b"")
    header = tmp_path / ".rec-20261114-221318.partial.abcdefgh.mp4"  # one killed before its first fragment:
    header.write_bytes(left.read_bytes()[:600])  # the header alone, which does not play (it was said to)
    alike = tmp_path / ".rec-20261114-221316.partialXmmmmmmmm.mp4"  # not a name srx gives: not its to remove
    alike.write_bytes(b"")
    caplog.set_level(logging.INFO, logger="srx")
    VideoFileOutput(tmp_path / "rec.mp4", fps=10, segment=2.0).close()
    assert alike.exists() and str(alike) not in caplog.text
    placed = tmp_path / "rec-20261114-221322.mp4"
    assert not left.exists() and 10 <= len(stored_frames(placed)) <= 15
    assert (f"an earlier run did not finish its segment {left.name}; what it recorded (it plays up to where that "
            "run stopped) is put in place as rec-20261114-221322.mp4") in caplog.text
    assert not empty.exists() and not header.exists()  # they held nothing: removed, said in an info line
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert str(empty) not in warned and str(header) not in warned
    assert f"removed {header}, which an earlier run left holding no frame (600 bytes)" in caplog.text


def test_a_recording_that_opens_later_is_cut_as_the_others_of_its_source(tmp_path: Path, utc) -> None:
    """A camera down at the start: the timed recordings' first frame is at 7 s of the stream (after its
    no-signal frames, which recordings are not given), the .avi's at its slot 0; both are cut at the
    same frames and named alike (they were 7 s apart)."""
    clock = SegmentClock(lambda: T0)
    mkv = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, clock=clock)
    avi = VideoFileOutput(tmp_path / "rec.avi", fps=10, segment=2.0, clock=clock)
    for i, f in enumerate(frames(30, 24, 32)):
        mkv.write(f, 7.0 + i / 10)
        avi.write(f)
    mkv.close()
    avi.close()
    assert [p.stem for p in mkv.segments] == [p.stem for p in avi.segments] == ["rec-20261114-221321", "rec-20261114-221322"]
    assert [len(stored_frames(p)) for p in mkv.segments] == [len(stored_frames(p)) for p in avi.segments] == [10, 20]


def test_a_live_sources_segments_follow_a_clock_that_is_set_mid_run(tmp_path: Path, utc) -> None:
    """A box that booted without a clock (2020) and is set by NTP mid-run: later segments are named by
    the right time, and --keep 1d does not take this run's earlier segments, named years ago, for old."""
    now = [T0 - 6 * 365 * 86400.0]
    clock = SegmentClock(lambda: now[0], live=True)
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, keep=86400.0, clock=clock)
    for i, f in enumerate(frames(40, 24, 32)):
        if i == 25:
            now[0] = T0 + 0.05  # NTP
        out.write(f, i / 10)
        now[0] += 0.1
    out.close()
    names = [p.name for p in out.segments]
    assert all(p.exists() for p in out.segments) and out.pruned == 0
    assert names[0].startswith("rec-2020") and names[-1] == "rec-20261114-221322.mkv"
    assert sum(len(stored_frames(p)) for p in out.segments) == 40


def test_a_segment_deleted_before_it_is_finished_is_said_and_the_next_is_new(tmp_path: Path, utc, caplog,
                                                                           monkeypatch) -> None:
    """The partial file (or the folder) deleted just before a cut: a warning, no traceback (the rename
    failed); deleted mid-segment and seen by the check: the file started again is named by its own
    first frame, and its video starts at 0 (it began at the deleted one's time)."""
    caplog.set_level(logging.WARNING, logger="srx")
    monkeypatch.setattr(VideoFileOutput, "CHECK_S", 3600.0)  # no check before the cut
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    pictures = frames(30, 24, 32)
    for i, f in enumerate(pictures[:5]):
        out.write(f, i / 10)
    out.tmp.unlink()
    for i, f in enumerate(pictures[5:], 5):
        out.write(f, i / 10)
    out.close()
    assert "rec-20261114-221321.mkv was deleted while recording (the 10 frames in it went with it)" in caplog.text
    assert [p.name for p in out.segments] == ["rec-20261114-221322.mkv"] and out.frames == 20
    monkeypatch.setattr(VideoFileOutput, "CHECK_S", 0.0)  # a check at every frame
    again = VideoFileOutput(tmp_path / "again.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0 + 10))
    for i, f in enumerate(pictures[:15]):
        if i == 5:
            again.tmp.unlink()
        again.write(f, i / 10)
    again.close()
    assert [p.name for p in again.segments] == ["again-20261114-221331.mkv", "again-20261114-221332.mkv"]
    assert [video_times(p) for p in again.segments] == [[0.0, 0.1, 0.2, 0.3, 0.4]] * 2  # started again at 0


@pytest.mark.parametrize("suffix,room", [(".mp4", 500), (".mkv", 6000), (".avi", 900)])  # about 25 frames each
def test_a_segmented_recording_that_fills_the_disk_fails_alone(tmp_path: Path, tiny_checkpoint, small_disk,
                                                               suffix: str, room: int) -> None:
    """The card fills mid-run while segments are being cut: the finished segments stay whole, the ones
    lost are said after the summary (exit 1), the run ends normally. It was a segmentation fault
    (exit 139, no summary): the writer whose finish failed at a cut was closed a second time."""
    from tests.camera.test_stream import _stream_child
    from tests.conftest import fill_disk

    card = small_disk(8192, "card")
    fill_disk(card, leave_kib=room)
    res = _stream_child(tmp_path, tiny_checkpoint(2), "--max-frames", "100", "--output", str(card / f"rec{suffix}"),
                        "--output", str(tmp_path / "whole.mkv"), "--segment", "1s")
    assert res.returncode == 1, (res.returncode, res.stderr[-3000:])
    assert "stream summary" in res.stdout and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], res.stderr[-3000:]
    done = _segments_of(card, "rec", suffix)
    assert done and all(stored_frames(p) for p in done)  # each finished segment plays
    assert sum(len(stored_frames(p)) for p in _segments_of(tmp_path, "whole", ".mkv")) == 100
    # what the failed segment holds is said once, in a plain sentence, and kept only where it plays
    said = [line for line in res.stderr.splitlines() if "recorded until then is in" in line or "recorded is in" in line]
    assert len(said) <= 1 and not any("segments:" in line.split(" is in ")[0] for line in said), said
    kept = list(card.glob(".rec-*.partial.*"))
    assert len(kept) == len(said) and all(stored_frames(p) for p in kept), (kept, said)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_a_segmented_recording_records_again_once_the_disk_has_room(tmp_path: Path, utc, small_disk, caplog,
                                                                     suffix: str) -> None:
    """A real disk fills (another program's file) while 2 s segments are recorded, and is freed again:
    the segments that could not be written are lost, one error line when the first is; the first
    segment that begins after the space came back is recorded whole and plays, with a warning that
    says how many were lost. Before, the recording was retired at the first failure for the rest of
    the run."""
    from tests.conftest import fill_disk

    caplog.set_level(logging.INFO, logger="srx")
    card = small_disk(4096, "card")
    out = VideoFileOutput(card / f"rec{suffix}", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    pictures = [np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8) for i in range(150)]

    def write(first: int, last: int) -> None:
        for i in range(first, last):
            assert out.write(pictures[i], i / 10) if out.timed else out.write(pictures[i])

    write(0, 11)  # :21, finished at the cut to :22
    filler = fill_disk(card)  # full: :22 and :24 are lost (and :26, unless a writer still held it all at its cut)
    write(11, 70)
    filler.unlink()  # room again: :28 (frames 70-89) is recorded
    write(70, 91)  # frame 90 finishes :28 ("records again") and begins :30
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "lost: " in errors[0] and "no space left on device" in errors[0].lower(), errors
    filler = fill_disk(card)  # full again: the first segment lost this time is an error line of its own
    write(91, 130)
    filler.unlink()
    write(130, 150)  # :34 is recorded
    out.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all("no space left on device" in e.lower() for e in errors), errors
    assert re.search(r"records again: rec-20261114-2213(26|28)\S* is finished \(\d segments? lost before it", caplog.text)
    names = [p.name for p in out.segments]
    assert names[0] == f"rec-20261114-221321{suffix}" and f"rec-20261114-221328{suffix}" in names, names
    assert names[-1] == f"rec-20261114-221334{suffix}", names
    assert not {f"rec-20261114-22132{s}{suffix}" for s in (2, 4)} & set(names), names
    assert len(stored_frames(out.segments[-1])) == 20 and len(stored_frames(out.segments[0])) == 10
    assert out.lost_segments >= 4 and out.lost is not None


def test_a_folder_that_refuses_a_cut_keeps_that_segment_whole_and_the_recording_goes_on(tmp_path: Path, utc,
                                                                                     caplog) -> None:
    """The recording folder refuses the rename at a cut (made immutable for 2.5 s, a file system
    remounted read-only): the segment being finished stays whole under its partial name (a warning)
    and is put in place at the next cut that works; the segments that begin while the folder refuses
    are lost (each tried once, at its first frame: one error line), and the first one after it is
    recorded, whole: a 20 s hiccup no longer ends a months-long recording. `lost` says it for the end
    of the run (exit 1). Before, the plain OSError ended the process with a traceback, and then the
    output was retired for good; then the whole segment was left hidden, "for you to move"."""
    import shutil
    import subprocess

    if shutil.which("chattr") is None:
        pytest.skip("an immutable folder needs chattr (e2fsprogs)")
    caplog.set_level(logging.INFO, logger="srx")
    folder = tmp_path / "rec"
    out = VideoFileOutput(folder / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    pictures = frames(80, 24, 32)
    for i, f in enumerate(pictures[:9]):
        assert out.write(f, i / 10)
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"chattr +i refused here: {made.stderr.strip()}")
    assert out.status()["state"] == "recording" and out.status()["up"]
    try:
        for i, f in enumerate(pictures[9:35], 9):  # the cut at :22, the start of :24
            assert out.write(f, i / 10)
        status = out.status()  # what /stats and /metrics say while it waits for the next segment
        assert (status["state"], status["up"], status["segments_lost"]) == ("lost", False, 2), status
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    for i, f in enumerate(pictures[35:], 35):  # the rest of :24 is skipped; :26 records again
        assert out.write(f, i / 10)
    status = out.status()
    assert (status["state"], status["up"], status["segments_lost"], status["segments"]) == ("recording", True, 2, 2)
    assert status["output"] == str(folder / "rec.mkv") and status["disk_free_bytes"] > 0
    out.close()
    assert out.status()["state"] == "closed"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "segment rec-20261114-221322.mkv lost: cannot write" in errors[0], errors
    assert "cannot put rec-20261114-221321.mkv in place (Operation not permitted)" in caplog.text
    assert "put rec-20261114-221321.mkv in place, which the folder had refused" in caplog.text
    assert "records again: rec-20261114-221326.mkv is finished (2 segments lost before it; the last: " in caplog.text
    names = ["rec-20261114-221321.mkv", "rec-20261114-221326.mkv", "rec-20261114-221328.mkv"]
    assert [p.name for p in out.segments] == names
    assert [len(stored_frames(folder / n)) for n in names] == [10, 20, 10]
    assert all(np.array_equal(a, b) for a, b in zip(stored_frames(folder / names[0]), pictures[:10]))
    assert out.frames == 40 and out.lost_segments == 2 and out.lost.startswith("2 segments lost (the last: ")
    assert not list(folder.glob(".rec-*.partial.*"))  # nothing left hidden


def test_a_recording_folder_deleted_where_no_new_one_can_be_made_loses_segments_not_the_run(tmp_path: Path, utc,
                                                                                           monkeypatch) -> None:
    """The recording's folder deleted mid-run (a clean-up) while its parent takes no new folder
    (immutable, a file system remounted read-only): making it again was a plain OSError, a traceback
    that ended the run; now the segment is lost and a later one records into the folder made again."""
    import shutil
    import subprocess

    if shutil.which("chattr") is None:
        pytest.skip("an immutable folder needs chattr (e2fsprogs)")
    monkeypatch.setattr(VideoFileOutput, "CHECK_S", 0.0)  # the deleted file seen at the next frame
    parent = tmp_path / "disk"
    out = VideoFileOutput(parent / "rec" / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    pictures = frames(50, 24, 32)
    for i, f in enumerate(pictures[:5]):
        out.write(f, i / 10)
    shutil.rmtree(parent / "rec")
    made = subprocess.run(["chattr", "+i", str(parent)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"chattr +i refused here: {made.stderr.strip()}")
    try:
        for i, f in enumerate(pictures[5:20], 5):
            assert out.write(f, i / 10)
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=True)
    for i, f in enumerate(pictures[20:], 20):
        assert out.write(f, i / 10)
    out.close()
    assert [p.name for p in out.segments] == ["rec-20261114-221324.mkv"]  # :21 and :22 lost
    assert len(stored_frames(out.segments[0])) == 20 and out.lost_segments == 2 and "cannot make its folder" in out.lost


def test_keep_free_deletes_the_recordings_own_oldest_segments_while_its_disk_is_short(tmp_path: Path, utc, small_disk,
                                                                                      caplog, monkeypatch) -> None:
    """--keep-free 2M on a real 4 MiB disk: the oldest segment (an earlier run's) goes as soon as the disk
    has less than 2 MiB free, and only as many as make the room (the next oldest stays); another
    recording's file and other files never go. Another program's file then fills the disk: the
    recording deletes its own segments down to the newest it finished, says once that the rest is
    other files, and records on."""
    import os

    from srx.camera.segments import FreeSpace
    from tests.conftest import fill_disk

    caplog.set_level(logging.INFO, logger="srx")
    monkeypatch.setattr(VideoFileOutput, "CHECK_S", 0.0)  # the disk looked at each frame
    card = small_disk(4096, "card")
    first, second = card / "rec-20261114-210000.mkv", card / "rec-20261114-211000.mkv"
    first.write_bytes(os.urandom(800 << 10))
    second.write_bytes(os.urandom(800 << 10))
    others = [card / "other-20261114-200000.mkv", card / "notes.txt"]
    others[0].write_bytes(os.urandom(1200 << 10))
    others[1].write_text("not srx's")
    assert FreeSpace("30%", share=0.3).short_by(card)[0] == 0 < FreeSpace("40%", share=0.4).short_by(card)[0]  # 31.5 % free
    out = VideoFileOutput(card / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0),
                          keep_free=FreeSpace("2M", 2 << 20))
    pictures = frames(60, 24, 32)
    for i, f in enumerate(pictures[:30]):
        out.write(f, i / 10)
    assert not first.exists() and second.exists() and all(p.exists() for p in others)
    assert "--keep-free 2M: deleted the oldest segment on the disk of" in caplog.text and "rec-20261114-210000.mkv" in caplog.text
    fill_disk(card, leave_kib=256)  # another program's file: 256 KiB free
    for i, f in enumerate(pictures[30:], 30):
        out.write(f, i / 10)
    out.close()
    assert not second.exists() and all(p.exists() for p in others)
    kept = [p.name for _, p in recorded_segments(card / "rec.mkv")]
    assert kept == ["rec-20261114-221326.mkv"], kept  # each finished one, once a newer is: the disk stays short
    warned = [r.getMessage() for r in caplog.records if "no segment is left to delete but the newest" in r.getMessage()]
    assert len(warned) == 1 and "(other files take the rest" in warned[0], warned
    assert out.lost is None and out.pruned >= 1 and out.status()["segments_deleted"] == out.pruned
    assert f"({out.pruned} of them deleted since by --keep-free)" in caplog.text


def test_keep_free_makes_room_from_the_oldest_segments_of_every_camera_on_the_disk(tmp_path: Path, utc,
                                                                                  small_disk) -> None:
    """Two cameras of one run on one card under one --keep-free: the oldest segments on the card go
    first, whichever camera's they are, so a busy camera does not eat the other's history alone (each
    deleted only its own: the one that looked first lost all of its). Each camera's newest stays."""
    import os

    from srx.camera.segments import FreeSpace

    card = small_disk(4096, "card")
    old = {name: [card / f"{name}-20261114-{hhmm}00.mkv" for hhmm in hhmms]
           for name, hhmms in (("a", ("2000", "2040")), ("b", ("2020", "2100")))}
    for path in [p for paths in old.values() for p in paths]:
        path.write_bytes(os.urandom(700 << 10))  # 2.8 MiB of 4: 1.2 MiB free
        at = time.mktime(time.strptime(path.stem.split("-", 1)[1], "%Y%m%d-%H%M%S"))
        os.utime(path, (at, at))  # written when its name says
    # b's last was named 21:00 by an earlier run in a time zone an hour ahead, and written at 20:00 this
    # zone's time: it goes first, where the name alone would keep it longest
    at = time.mktime(time.strptime("20261114-195000", "%Y%m%d-%H%M%S"))
    os.utime(old["b"][1], (at, at))
    room = FreeSpace("2.3M", int(2.3 * (1 << 20)))
    a = VideoFileOutput(card / "a.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0), keep_free=room)
    b = VideoFileOutput(card / "b.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0), keep_free=room)
    for i, f in enumerate(frames(15, 24, 32)):
        a.write(f, i / 10)  # a looks first: the card's two oldest go, b's written at 19:50 and a's 20:00
        b.write(f, i / 10)
    a.close()
    b.close()
    left = sorted(p.name for paths in old.values() for p in paths if p.exists())
    assert left == ["a-20261114-204000.mkv", "b-20261114-202000.mkv"], left
    assert a.segments and b.segments and all(p.exists() for p in [*a.segments, *b.segments])


def test_keep_free_where_nothing_can_be_deleted_says_so_once(tmp_path: Path, utc, caplog, monkeypatch) -> None:
    """--keep-free on a disk that stays short while the folder takes no deletion (made immutable, a
    file system remounted read-only): one warning, not one for every file at every check (a trial
    counted 118 lines in 35 s), and not the "other files take the rest" one, which is not why."""
    import shutil
    import subprocess

    from srx.camera.segments import FreeSpace

    if shutil.which("chattr") is None:
        pytest.skip("an immutable folder needs chattr (e2fsprogs)")
    caplog.set_level(logging.INFO, logger="srx")
    monkeypatch.setattr(VideoFileOutput, "CHECK_S", 0.0)  # the disk looked at each frame
    folder = tmp_path / "rec"
    out = VideoFileOutput(folder / "rec.mkv", fps=10, segment=60.0, clock=SegmentClock(lambda: T0),
                          keep_free=FreeSpace("99.9%", share=0.999))  # never met here
    out.write(frames(1, 24, 32)[0], 0.0)
    for hh in ("19", "20", "21"):
        (folder / f"rec-20261114-{hh}0000.mkv").write_bytes(b"an earlier run's segment")
    caplog.clear()
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"chattr +i refused here: {made.stderr.strip()}")
    try:
        for i, f in enumerate(frames(20, 24, 32), 1):
            out.write(f, i / 10)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    out.close()
    said = [r.getMessage() for r in caplog.records if "cannot delete" in r.getMessage()]
    assert len(said) == 1 and "rec-20261114-190000.mkv: Operation not permitted (said once" in said[0], said
    assert "other files take the rest" not in caplog.text


def test_a_segment_that_cannot_be_finished_at_the_stop_is_counted_once(tmp_path: Path, utc, small_disk) -> None:
    """The stop (SIGTERM) comes while the disk is full: the open segment, which cannot be finished, is
    one more lost segment, said in the recording's one line at the end, not a second line of its own
    (a trial counted "5 outputs failed" of 3)."""
    from srx.camera.stream import close_outputs
    from tests.conftest import fill_disk

    card = small_disk(2048, "card")
    out = VideoFileOutput(card / "rec.mp4", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    pictures = [np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8) for i in range(15)]
    for i, f in enumerate(pictures):  # :21 finished, :22 open half a second: in memory, no fragment yet
        out.write(f, i / 10)
    fill_disk(card)
    errors = close_outputs([out])
    assert len(errors) == 1 and errors[0].endswith(f"{out.lost}") and out.lost_segments == 1, errors
    assert [p.name for p in out.segments] == ["rec-20261114-221321.mp4"]


def _record_beside(card: Path, dated: dict[Path, float]) -> VideoFileOutput:
    """Files of 900 KiB each with those modification times on a 4 MiB card (2.7 MiB of it for three),
    then 2.5 s of 2 s segments recorded there under --keep-free 2.1M (room after one of them goes)."""
    import os

    from srx.camera.segments import FreeSpace

    for path, when in dated.items():
        path.write_bytes(os.urandom(900 << 10))
        os.utime(path, (when, when))
    out = VideoFileOutput(card / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0),
                          keep_free=FreeSpace("2.1M", int(2.1 * (1 << 20))))
    for i, f in enumerate(frames(25, 24, 32)):
        out.write(f, i / 10)
    out.close()
    return out


def test_keep_free_takes_a_segment_from_the_future_first_and_a_touched_one_by_its_name(tmp_path: Path, utc,
                                                                                       small_disk) -> None:
    """Ages for --keep-free: the earlier of the name's time and the write's. A segment touched a day
    ahead (copied, a `touch`) is as old as its name says: it took every segment this run recorded
    first. One named and written a day ahead (a box whose clock ran ahead then) has no age to trust:
    it goes first."""
    card = small_disk(4096, "card")
    touched, ahead, older = (card / f"rec-20261114-{t}.mkv" for t in ("220000", "221300", "210000"))
    ahead = card / "rec-20261115-221300.mkv"
    out = _record_beside(card, {touched: T0 + 86400, ahead: T0 + 86400, older: T0 - 3600})
    assert not ahead.exists() and touched.exists() and older.exists()  # 1.3 MiB free + 0.9: room after one
    assert [p.name for p in out.segments] == ["rec-20261114-221321.mkv", "rec-20261114-221322.mkv"]


def test_a_refused_keep_free_is_one_line_with_nothing_said_of_the_other_outputs(tmp_path: Path, small_disk) -> None:
    """--keep-free 2M with a second recording on a 1 MiB card: the refusal was preceded by 'a.mkv not
    written: no frame was upscaled for it' of the first, which the run never started for."""
    card = small_disk(1024, "card")
    result = CliRunner().invoke(app, ["stream", "--demo", "--no-window", "--output", str(tmp_path / "a.mkv"),
                                      "--output", str(card / "b.mkv"), "--segment", "1h", "--keep-free", "2M"])
    assert result.exit_code == 1
    assert_one_error_line(result.output, f"--keep-free 2M: the disk of {card / 'b.mkv'} holds 1 MiB in all")
    assert "not written" not in result.output and not list(tmp_path.glob("*.mkv")) and not list(card.iterdir())


def test_keep_free_takes_earlier_runs_first_the_dated_before_the_undated_and_this_runs_last(
        tmp_path: Path, utc, small_disk, caplog) -> None:
    """A box that booted in 2000 records, NTP sets the clock, the disk runs short: --keep-free deleted
    this run's segments of a minute ago first (named 2000) and then an earlier run's, also from before
    NTP, ahead of week-old footage (a clock trial). Now an earlier run's go first, those with a date
    before one named and written before 2026, and this run's, which came after them all, last."""
    import os
    import shutil

    from srx.camera.segments import FreeSpace

    caplog.set_level(logging.INFO, logger="srx")
    card = small_disk(4096, "card")
    week_old, clockless = card / "rec-20261107-221321.mkv", card / "rec-20000101-000000.mkv"
    for path, when in ((week_old, T0 - 7 * 86400), (clockless, 946_684_800.0)):
        path.write_bytes(os.urandom(900 << 10))
        os.utime(path, (when, when))
    now = [946_685_400.0]  # 2000-01-01 00:10:00 UTC
    out = VideoFileOutput(card / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: now[0], live=True),
                          keep_free=FreeSpace("1M", 1 << 20))
    for i, f in enumerate(frames(40, 24, 32)):
        if i == 25:  # NTP, and then the disk runs short
            now[0] = T0
            room = shutil.disk_usage(card).free
            (card / "other").write_bytes(b"\0" * (room - (100 << 10)))  # room after two earlier files go
        out.write(f, i / 10)
        now[0] += 0.1
    out.close()
    assert not week_old.exists() and not clockless.exists(), sorted(p.name for p in card.iterdir())
    assert all(p.exists() for p in out.segments) and out.segments[0].name.startswith("rec-20000101-0010")
    assert "the clock was set forward by 26.9 years, to 2026-11-14 22:13:21 UTC" in caplog.text
    assert (f"deleted the 2 oldest segments on the disk of {card} ({week_old.name}, {clockless.name})"
            in caplog.text), caplog.text


def test_keep_leaves_an_earlier_runs_files_it_cannot_date_and_says_so_once(tmp_path: Path, utc, caplog) -> None:
    """--keep 1h after a restart: an earlier run's segments named and written before NTP (2000), minutes
    ago for all anyone knows, were deleted at the first cut, and one named and written in 2038 was kept
    for good without a word (a clock trial). Now both stay, named in one warning; a month-old one goes."""
    import os

    caplog.set_level(logging.INFO, logger="srx")
    clockless, ahead, old = (tmp_path / f"rec-{t}.mkv" for t in ("20000101-000010", "20380101-000000", "20261014-221321"))
    for path, when in ((clockless, 946_684_810.0), (ahead, 2_145_916_800.0), (old, T0 - 31 * 86400)):
        path.write_bytes(b"x")
        os.utime(path, (when, when))
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, keep=3600.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(45, 24, 32)):
        out.write(f, i / 10)
    out.close()
    assert clockless.exists() and ahead.exists() and not old.exists()
    said = [r.getMessage() for r in caplog.records if "cannot be judged" in r.getMessage()]
    assert len(said) == 1 and f"2 earlier files of {tmp_path / 'rec.mkv'} cannot be judged and stay" in said[0], said
    assert clockless.name in said[0] and ahead.name in said[0] and "before 2026" in said[0]


def test_the_closing_line_says_how_many_of_the_runs_segments_keep_deleted(tmp_path: Path, utc, caplog,
                                                                         monkeypatch) -> None:
    """'rec.mkv: 4 segments, A to B' when --keep had deleted two of them (the JSON's outputs said it)."""
    import srx.camera.recording as recording

    caplog.set_level(logging.INFO, logger="srx")
    mono = [1000.0]

    class Clock:  # the recording's monotonic clock, a tenth of a second a frame
        def __getattr__(self, name: str):
            return getattr(time, name)

        def monotonic(self) -> float:
            return mono[0]

    monkeypatch.setattr(recording, "time", Clock())
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, keep=3.0, clock=SegmentClock(lambda: T0 + mono[0]))
    for i, f in enumerate(frames(80, 24, 32)):
        out.write(f, i / 10)
        mono[0] += 0.1
    out.close()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{tmp_path / 'rec.mkv'}: ")]
    assert out.pruned >= 1 and len(said) == 1, said
    assert said[0].endswith(f"({out.pruned} of them deleted since by --keep)") and out.describe().endswith(said[0][-30:])
    first = re.search(r"segments, (\S+)", said[0]).group(1)  # the oldest still there (here also the newest)
    assert (tmp_path / first).exists() and not out.first_segment.exists(), said  # not the first, which --keep took
    caplog.clear()
    two = VideoFileOutput(tmp_path / "two.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(20, 24, 32)):  # :21 and :22
        two.write(f, i / 10)
    two.close()
    assert f"{tmp_path / 'two.mkv'}: 2 segments, two-20261114-221321.mkv to two-20261114-221322.mkv" in caplog.text


def test_a_clock_set_mid_run_is_an_event_of_its_source(tmp_path: Path, utc, make_upscaler) -> None:
    """The clock set mid-run was one log line ('the clock moved by 849938009.5 s'), and --json-summary's
    events said nothing of it: now a `clock-set` event of the source, with the seconds it moved."""
    from srx.camera.sources import SourceSpec
    from srx.camera.stream import stream

    calls = [0]

    def wall() -> float:  # 2000 until NTP sets the clock, after the first ten looks at it
        calls[0] += 1
        return (T0 if calls[0] > 10 else 946_684_800.0) + calls[0] * 0.05

    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=60.0, clock=SegmentClock(wall, live=True))
    summary = stream(SourceSpec.from_frames(frames(20, 24, 32), fps=10.0), make_upscaler(2), [out])
    moved = [e for e in summary.events if e["event"] == "clock-set"]
    assert len(moved) == 1 and abs(moved[0]["moved_s"] - (T0 - 946_684_800.0)) < 5, summary.events
    assert [p.name[:13] for p in out.segments] == ["rec-20000101-", "rec-20261114-"]


def test_a_clock_set_mid_run_is_an_event_of_its_source_among_several(tmp_path: Path, utc, make_upscaler,
                                                                      caplog) -> None:
    """The same with several sources: the `clock-set` event is the recording source's, and the warning
    names it."""
    from srx.camera.multi import NamedSource, stream_many
    from srx.camera.sources import SourceSpec

    caplog.set_level(logging.WARNING, logger="srx")
    calls = [0]

    def wall() -> float:
        calls[0] += 1
        return (T0 if calls[0] > 10 else 946_684_800.0) + calls[0] * 0.05

    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=60.0, clock=SegmentClock(wall, live=True))
    sources = [NamedSource(n, SourceSpec.from_frames(frames(20, 24, 32), fps=10.0)) for n in ("door", "gate")]
    summary = stream_many(sources, make_upscaler(2), {"door": [out]})
    moved = [e for e in summary.sources["door"].events if e["event"] == "clock-set"]
    assert len(moved) == 1 and not [e for e in summary.sources["gate"].events if e["event"] == "clock-set"]
    assert "door's recording segments are named by the new time" in caplog.text, caplog.text


def test_a_disk_filled_by_files_keep_cannot_date_says_so_where_segments_are_lost(tmp_path: Path, utc, small_disk,
                                                                                 caplog) -> None:
    """A box that never gets NTP, with --keep alone: each run's files are dated 2000, --keep leaves them
    (it cannot tell their age), and the disk fills; the lost segments said only 'No space left on
    device' (a clock re-check). Now the first loss names the files --keep left and what deletes them."""
    import os

    card = small_disk(1024, "card")
    undated = card / "rec-20000101-000010.mkv"
    undated.write_bytes(os.urandom(1000 << 10))
    os.utime(undated, (946_684_810.0, 946_684_810.0))
    from tests.conftest import fill_disk

    fill_disk(card)
    out = VideoFileOutput(card / "rec.mkv", fps=10, segment=2.0, keep=3600.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(25, 120, 160)):
        out.write(f, i / 10)
    out.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert out.lost_segments >= 1 and errors, errors
    assert (f"(1 earlier file of it that --keep cannot date stays on the disk, {undated.name}: --keep-free SIZE "
            "deletes the oldest when the disk needs room)") in errors[0], errors


def test_keep_free_takes_files_dated_ahead_by_their_dates_not_their_names(tmp_path: Path, utc, small_disk) -> None:
    """Two files dated ahead of the clock: the one dated earlier goes first (they went in name order,
    across cameras too, while the line called them the oldest)."""
    card = small_disk(4096, "card")
    a, b, older = (card / f"rec-{t}.mkv" for t in ("20261116-120000", "20261115-230000", "20261114-210000"))
    _record_beside(card, {a: T0 + 86400, b: T0 + 1.5 * 86400, older: T0 - 3600})
    assert not a.exists() and b.exists() and older.exists()  # a's modification time is the earlier of the two


def test_cli_keep_deletes_an_earlier_runs_old_segments_and_not_a_fresh_partial(tmp_path: Path, tiny_checkpoint,
                                                                              caplog) -> None:
    """`srx stream --segment 1s --keep 1h` end to end: an earlier run's segment of a month ago goes, the
    partial file a run killed a moment ago leaves stays (the start-up warning says it is kept for the
    user). Every other --keep test built its VideoFileOutput itself, so the option could have reached
    no recording (a mutation audit)."""
    import os

    clip = tmp_path / "clip.mkv"
    write_ffv1(clip, frames(25, 24, 32), fps=10)
    rec = tmp_path / "rec"
    rec.mkdir()
    month_ago = time.time() - 30 * 86400
    old = rec / f"rec-{time.strftime('%Y%m%d-%H%M%S', time.localtime(month_ago))}.mkv"
    old.write_bytes(b"x")
    os.utime(old, (month_ago, month_ago))
    fresh = rec / ".rec.partial.a1b2c3d4.mkv"  # as long as one that holds frames: not removed at the start
    fresh.write_bytes(os.urandom(70_000))
    caplog.set_level(logging.INFO, logger="srx")
    res = CliRunner().invoke(app, ["stream", "--source", str(clip), "--output", str(rec / "rec.mkv"), "--segment", "1s",
                                   "--keep", "1h", "-w", str(tiny_checkpoint(2)), "--backend", "torch", "--threads", "1",
                                   "--no-drop", "--no-window", "-q"])
    assert res.exit_code == 0, res.output
    assert not old.exists() and fresh.exists()
    assert "--keep 1h: deleted 1 old file of" in caplog.text, caplog.text


def test_the_cli_gives_a_sources_recordings_one_clock_that_follows_a_live_source() -> None:
    """What `srx stream --segment` hands each recording of a source: one SegmentClock, shared (its .mp4
    and .mkv cut at the same frames), that reads the clock again for a live source (NTP setting it mid-run
    names later segments by the right time). A recording given none makes its own, which does neither."""
    from srx.camera.outputs import recording_output
    from srx.cli.camera import _segments

    for live in (True, False):
        cut = _segments("1h", None, None, ["a.mkv", "b.mp4"], live=live)
        a, b = (recording_output(f"/tmp/srx-never-written/{n}", **cut) for n in ("a.mkv", "b.mp4"))
        try:
            assert a.clock is b.clock and a.clock.live is live
        finally:
            a.discard()
            b.discard()


def test_keep_free_counts_only_the_room_this_user_may_fill(monkeypatch) -> None:
    """The blocks a file system keeps for root (5 % of an ext4 disk) are not room for srx, which the
    shipped unit runs as its own user: counting them, --keep-free 2G deleted nothing until the disk
    said ENOSPC."""
    import os

    from srx.camera.segments import FreeSpace

    class Disk:  # 1000 blocks of 1 MiB, 100 free of which 50 are root's
        f_frsize, f_blocks, f_bfree, f_bavail = 1 << 20, 1000, 100, 50

    monkeypatch.setattr(os, "statvfs", lambda _: Disk())
    assert FreeSpace("80M", size=80 << 20).short_by(Path("/rec")) == (30 << 20, 50 << 20)
    assert FreeSpace("10%", share=0.1).short_by(Path("/rec")) == (50 << 20, 50 << 20)


@pytest.mark.parametrize("moved, jump", [(2.0, False), (-2.0, False), (10.0, True), (-10.0, True), (-86400.0, True)])
def test_a_live_clock_is_followed_when_it_is_set_either_way(moved: float, jump: bool, caplog) -> None:
    """A live source's segment clock follows the wall clock when it is set by more than JUMP_S (5 s),
    back as well as forward (a clock that ran ahead, set right by NTP), and not for a second or two of
    jitter; the warning says which way."""
    caplog.set_level(logging.WARNING, logger="srx")
    now, seen = [T0], []
    clock = SegmentClock(lambda: now[0], live=True)
    clock.on_jump = seen.append
    assert clock.wall(0.0) == T0
    now[0] = T0 + 1.0 + moved
    assert clock.wall(1.0) == (T0 + 1.0 + moved if jump else T0 + 1.0)
    assert bool(seen) is jump and (not jump or abs(seen[0] - moved) < 1e-6), seen
    assert ("the clock was set back" in caplog.text) is (jump and moved < 0), caplog.text
    assert ("the clock was set forward" in caplog.text) is (jump and moved > 0), caplog.text


def test_keep_leaves_this_runs_segments_when_the_clock_is_set_forward_by_days(tmp_path: Path, utc) -> None:
    """A box whose clock ran three days slow (after 2026, so names and times look real) is set right
    mid-run: --keep 1d must not delete the segments this run recorded a moment ago, though their
    names and modification times are three days old; an earlier run's file of then goes."""
    import os

    now = [T0 - 3 * 86400.0]
    earlier = tmp_path / f"rec-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now[0] - 3600))}.mkv"
    earlier.write_bytes(b"x")
    os.utime(earlier, (now[0] - 3600, now[0] - 3600))
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, keep=86400.0,
                          clock=SegmentClock(lambda: now[0], live=True))
    pictures = frames(50, 24, 32)
    for i, f in enumerate(pictures[:25]):
        out.write(f, i / 10)
        now[0] += 0.1
    for p in out.segments:  # finished then: named and written three days before the clock is set
        os.utime(p, (T0 - 3 * 86400.0, T0 - 3 * 86400.0))
    now[0] = T0
    for i, f in enumerate(pictures[25:], start=25):
        out.write(f, i / 10)
        now[0] += 0.1
    out.close()
    assert all(p.exists() for p in out.segments) and out.pruned == 0, [p.name for p in out.segments]
    assert out.segments[0].name.startswith("rec-20261111-") and out.segments[-1].name.startswith("rec-20261114-")
    assert not earlier.exists()


def test_a_segment_name_never_replaces_a_link_that_points_nowhere(tmp_path: Path, utc) -> None:
    (tmp_path / "rec-20261114-221321.mkv").symlink_to(tmp_path / "gone")
    out = VideoFileOutput(tmp_path / "rec.mkv", fps=10, segment=2.0, clock=SegmentClock(lambda: T0))
    for i, f in enumerate(frames(3, 24, 32)):
        out.write(f, i / 10)
    out.close()
    assert (tmp_path / "rec-20261114-221321.mkv").is_symlink()
    assert [p.name for p in out.segments] == ["rec-20261114-221321-1.mkv"]
