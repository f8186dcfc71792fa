"""Recordings' files: the partial file is srx's own (a new name each run, never a link someone put
there, never what an earlier run left), and the finished recording keeps the mode of the one it
replaces, as `srx upscale` does."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from srx.camera.outputs import recording_output
from srx.camera.recording import VideoFileOutput
from tests.camera.conftest import frames
from tests.conftest import mode, stored_frames, umask



def record(target: str, pictures: list[np.ndarray]):
    """The real recorder for `target` (a video file, or a folder for a trailing '/'), given each picture."""
    out = recording_output(target)
    for i, f in enumerate(pictures):
        assert out.write(f, i / 10) if isinstance(out, VideoFileOutput) else out.write(f)
    return out


def recorded(path: Path) -> list[np.ndarray]:
    import cv2

    if path.is_dir():
        return [cv2.imread(str(p)) for p in sorted(path.glob("frame_*.png"))]
    return stored_frames(path)


KINDS = [".mp4", ".mkv", ".avi", "/"]


def output_of(base: Path, kind: str) -> str:
    """The --output for `base` as a recording of `kind`: a video suffix, or '/' for PNG frames."""
    return f"{base}/" if kind == "/" else f"{base}{kind}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_link_planted_at_the_partial_name_is_not_written_through(tmp_path: Path, kind: str) -> None:
    """Whoever may write to the recording folder put a link where srx once wrote its partial file
    (`.cam.partial.mp4`, `.cam.partial` for frames): srx followed it and overwrote the file it points
    to (any file srx's user may write). The partial file is now srx's own, made new."""
    victim = tmp_path / "secret" / ("victim" if kind == "/" else "victim.txt")
    if kind == "/":
        victim.mkdir(parents=True)
        (victim / "keep.txt").write_text("ORIGINAL")
        (tmp_path / ".cam.partial").symlink_to(victim)
        (tmp_path / ".cam.old").symlink_to(victim)  # where the folder it replaces went
        (tmp_path / "cam").mkdir()
        (tmp_path / "cam" / "frame_000000.png").write_bytes(b"an earlier run's frame")
    else:
        victim.parent.mkdir()
        victim.write_text("ORIGINAL")
        (tmp_path / f".cam.partial{kind}").symlink_to(victim)
    target = Path(output_of(tmp_path / "cam", kind))
    record(output_of(tmp_path / "cam", kind), frames(3, 24, 32)).close()
    if kind == "/":
        assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
        assert (victim / "keep.txt").read_text() == "ORIGINAL"
    else:
        assert victim.read_bytes() == b"ORIGINAL"
    assert not target.is_symlink() and len(recorded(target)) == 3


@pytest.mark.parametrize("kind", [".mp4", "/"])
def test_what_an_earlier_run_left_is_kept_and_named(tmp_path: Path, kind: str, caplog) -> None:
    """A run killed mid-recording (SIGKILL, a crash, a power cut) leaves its partial file, which plays
    up to where it stopped; the next run with the same --output wrote over it with no word. Now it is
    kept and named once, at the start; the new recording is whole beside it."""
    caplog.set_level(logging.INFO, logger="srx")
    target = Path(output_of(tmp_path / "cam", kind))
    killed = record(output_of(tmp_path / "cam", kind), frames(25, 240, 320))  # never closed: a kill,
    killed.claim.release(remove=False)  # which lets go of its claim on the target (the kernel's) and leaves the rest
    assert killed.tmp is not None and killed.tmp.name.startswith(".cam.partial")
    left = sorted(p.name for p in killed.tmp.iterdir()) if kind == "/" else killed.tmp.read_bytes()
    legacy = tmp_path / f".cam.partial{kind}"  # what srx before this change left, at its fixed name
    if kind != "/":
        legacy.write_bytes(killed.tmp.read_bytes())
    again = record(output_of(tmp_path / "cam", kind), frames(3, 24, 32, seed=7))
    again.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(killed.tmp) in warnings[0], warnings
    assert "up to where that run stopped" in warnings[0]
    assert kind == "/" or (str(legacy) in warnings[0] and legacy.read_bytes() == killed.tmp.read_bytes())
    assert left == (sorted(p.name for p in killed.tmp.iterdir()) if kind == "/" else killed.tmp.read_bytes())
    assert len(recorded(killed.tmp)) >= 10  # it plays up to its last whole second (25 frames at 10 fps)
    assert len(recorded(target)) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_a_recording_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path, kind: str) -> None:
    """An operator locked a recording down (0640 here, a frames folder 0750): the one that replaced it
    got the umask's mode (0644, 0755), unlike `srx upscale`, `srx export` and --json-summary. A new
    one still gets the umask's (not mkstemp's 0600, mkdtemp's 0700)."""
    target = Path(output_of(tmp_path / "cam", kind))
    if kind == "/":
        target.mkdir()
        target.chmod(0o750)
    else:
        target.write_bytes(b"")
        target.chmod(0o640)
    group = os.getgid() if os.getuid() != 0 else 2  # root may give any group: 'bin', not its own
    os.chown(target, -1, group)
    locked = mode(target)
    with umask(0o022):
        out = record(output_of(tmp_path / "cam", kind), frames(2, 24, 32))
        assert mode(out.tmp) == locked  # also the partial file a kill would leave
        out.close()
        record(output_of(tmp_path / "new", kind), frames(2, 24, 32)).close()
    assert mode(target) == locked and len(recorded(target)) == 2
    assert target.stat().st_gid == group  # and its group, for whom the mode is
    assert mode(Path(output_of(tmp_path / "new", kind))) == (0o755 if kind == "/" else 0o644)


def test_frames_for_a_linked_folder_go_where_the_link_points(tmp_path: Path) -> None:
    """--output frames/ where frames is a link to a folder on a larger disk: the frames land there and
    the link stays (it failed: the old folder's new name was made as a folder, and a link cannot be
    renamed onto one)."""
    elsewhere = tmp_path / "disk" / "frames"
    elsewhere.mkdir(parents=True)
    (tmp_path / "frames").symlink_to(elsewhere, target_is_directory=True)
    pictures = frames(3, 16, 20)
    record(f"{tmp_path / 'frames'}/", pictures).close()
    assert (tmp_path / "frames").is_symlink()
    assert [p.name for p in sorted(elsewhere.iterdir())] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    assert all(np.array_equal(a, b) for a, b in zip(recorded(elsewhere), pictures))
    record(f"{tmp_path / 'frames'}/", pictures[:2]).close()  # again: the earlier frames replaced, the link kept
    assert len(list(elsewhere.iterdir())) == 2 and (tmp_path / "frames").is_symlink()
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["frames"]  # nothing left beside it


@pytest.mark.parametrize("kind", [".mp4", "/"])
def test_a_recording_claims_its_target_while_it_runs(tmp_path: Path, kind: str) -> None:
    """A recording holds a lock beside its target (`.cam.mp4.lock`, `.cam.lock` for frames) from when it
    is made to its close: a second recorder to the same place is refused in one line (in this process:
    another output of the run; another process's is test_stream's), the lock file goes at close, one
    a kill left (unlocked) is taken over, and a link planted at its name is not followed."""
    from srx.errors import SrxError

    target = output_of(tmp_path / "cam", kind)
    lock = tmp_path / (".cam.lock" if kind == "/" else f".cam{kind}.lock")
    first = recording_output(target)
    assert lock.read_text() == f"{os.getpid()}\n"
    with pytest.raises(SrxError, match=r"another --output of this run records there too"):
        recording_output(f"{tmp_path}/./cam{'/' if kind == '/' else kind}")
    for f in frames(2, 24, 32):
        assert first.write(f, 0.1) if isinstance(first, VideoFileOutput) else first.write(f)
    first.close()
    assert not lock.exists() and len(recorded(Path(target))) == 2
    killed = recording_output(target)
    killed.claim.release(remove=False)  # a kill: the file stays, unlocked
    assert lock.exists()
    recording_output(target).close()
    assert not lock.exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("ORIGINAL")
    lock.symlink_to(victim)
    with pytest.raises(SrxError, match="cannot make its lock file .*: a link is there"):
        recording_output(target)
    assert victim.read_text() == "ORIGINAL"


_KILLED_AT_45 = """
import os, sys
import numpy as np
from pathlib import Path
from srx.camera.recording import VideoFileOutput
out = VideoFileOutput(Path(sys.argv[1]), fps=10)
base = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
for i in range(45):
    f = base.copy()
    f[i % 48] = 255  # a line moves: a quiet scene's low bitrate
    out.write(f, i / 10) if out.timed else out.write(f)
os._exit(0)  # as a kill or a power cut: nothing closed or flushed
"""


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_a_recording_killed_mid_way_holds_all_but_about_its_last_second(tmp_path: Path, suffix: str) -> None:
    """A process that dies 4.5 s into a quiet scene's recording (10 fps, small frames): its partial
    file plays all but about the last second. FFmpeg's 256 KiB output buffer held the rest back: the
    .mp4 was 28 bytes that did not open, the .avi empty, the .mkv 25 of 45 frames (a trial's kill
    of a camera recording found the .mp4 so)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", _KILLED_AT_45, str(tmp_path / f"rec{suffix}")], check=True, timeout=120)
    [partial] = tmp_path.glob(f".rec.partial.*{suffix}")
    assert len(stored_frames(partial)) >= 45 - 11, partial.stat().st_size


def test_a_recording_that_failed_for_good_says_so_to_stats_and_metrics(tmp_path: Path, small_disk, make_upscaler) -> None:
    """An unsegmented recording that fills its disk is closed when it fails: /stats said `closed, up:
    true` and srx_recording_up stayed 1, so the recording alert never fired (a monitoring re-check)."""
    from srx.camera.sources import SourceSpec
    from srx.camera.stats import StreamStats, prometheus_text
    from srx.camera.stream import stream
    from tests.conftest import fill_disk, synthetic_photo

    card = small_disk(1024, "card")
    fill_disk(card, leave_kib=200)
    out = VideoFileOutput(card / "rec.mkv")
    live = StreamStats()
    pictures = [synthetic_photo(120, 160, seed=i) for i in range(60)]  # lossless 240x320: far over 200 KiB
    stream(SourceSpec.from_frames(pictures, fps=10.0), make_upscaler(2), [out], drop=False, stats=live)
    assert out.failed is not None and out.status()["state"] == "failed" and out.status()["up"] is False
    assert f'srx_recording_up{{source="cam",output="{card / "rec.mkv"}"}} 0' in prometheus_text(
        {"sources": {"cam": live.snapshot()}})
