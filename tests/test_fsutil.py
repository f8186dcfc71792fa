"""srx.fsutil: atomic writes leave files with the mode any other tool would give them, and output
paths that cannot be written are named before any work starts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from srx.errors import SrxError
from srx.fsutil import (FolderInUse, WriteError, atomic_path, atomic_write_bytes, atomic_write_text, check_output_dir,
                        check_output_file, claim_folder, ensure_dir, new_file_mode)
from tests.conftest import fill_disk, mode, umask



@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, mask, expected):
    with umask(mask):
        assert new_file_mode(tmp_path / "new.txt") == expected
        atomic_write_text(tmp_path / "new.txt", "hello")
        plain = tmp_path / "plain.txt"
        plain.write_text("hello")  # what `open(..., "w")` gives, for comparison
    assert mode(tmp_path / "new.txt") == mode(plain) == expected


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "kept.txt"
    path.write_text("old")
    path.chmod(0o640)
    with umask(0o022):
        atomic_write_text(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o640


def test_checkpoints_and_upscaled_images_are_readable_by_others(tmp_path, tiny_checkpoint):
    """The files users noticed at 0600: a checkpoint (best.pt), an `srx upscale` output."""
    import cv2
    from typer.testing import CliRunner

    from srx.cli import app
    from tests.conftest import synthetic_photo

    with umask(0o022):
        ckpt = tiny_checkpoint(2)
        src = tmp_path / "in.png"
        cv2.imwrite(str(src), synthetic_photo(12, 16))
        res = CliRunner().invoke(app, ["upscale", str(src), "--out", str(tmp_path / "big.png"), "--weights", str(ckpt),
                                       "--backend", "torch", "--scale", "2"])
        assert res.exit_code == 0, res.output
    assert mode(ckpt) == 0o644 and mode(tmp_path / "big.png") == 0o644


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_output_checks_name_the_problem_and_create_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SrxError, match="is a folder; expected a file name"):
        check_output_file(tmp_path, "--json-summary")
    with pytest.raises(SrxError, match="afile is a file, expected a folder"):
        check_output_file(afile / "deeper" / "x.json", "--json-summary")
    with pytest.raises(SrxError, match="exists as a file"):
        check_output_dir(afile, "--out")
    check_output_file(tmp_path / "new" / "deeper" / "x.json", "--json-summary")
    check_output_dir(tmp_path / "new" / "folder", "--out")
    assert not (tmp_path / "new").exists()  # checks create nothing
    if Path("/proc/self").is_dir():  # no one can create files here, root included
        with pytest.raises(SrxError, match="cannot write --out /proc/x.png"):
            check_output_file(Path("/proc/x.png"), "--out")
        with pytest.raises(SrxError, match="not writable"):
            ensure_dir(Path("/proc"))
        with pytest.raises(SrxError, match="/proc is not writable"):
            with atomic_path(Path("/proc/x.png")) as tmp:
                tmp.write_bytes(b"never")


def test_a_write_onto_a_full_disk_is_one_error_naming_the_file(small_disk):
    """ENOSPC while the temporary file is written (it was a raw OSError, a traceback): a WriteError
    naming the file and saying the disk is full; the earlier file intact, the temporary removed."""
    disk = small_disk(64)
    target = disk / "sum.json"
    atomic_write_text(target, "earlier")
    fill_disk(disk, leave_kib=8)
    with pytest.raises(WriteError, match=rf"^cannot write {target}: no space left on device \(the disk is full\)$") as got:
        atomic_write_bytes(target, bytes(64 * 1024))
    assert got.value.disk_full and got.value.path == target
    assert target.read_text() == "earlier" and sorted(p.name for p in disk.iterdir()) == ["filler", "sum.json"]


_HOLDER = """
import sys, time
from srx.fsutil import claim_folder
claim = claim_folder(sys.argv[1], ".lock", "srx train", "wait")
print("held", flush=True)
time.sleep(600)
"""


def test_a_claimed_folder_is_refused_to_another_process_until_the_holder_dies(tmp_path):
    """The claim is an flock: a second claim (from another process, or this one) is refused naming the
    holder's pid and command; the OS lets go of a killed holder's, and the lock file it left is taken
    over; release removes the lock file, and the folders the claim made when nothing was written."""
    folder = tmp_path / "runs" / "train"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match=rf"^{folder} is in use by srx train \(pid {holder.pid}\), still running; "
                                              r"pass another --out$") as got:
            claim_folder(folder, ".lock", "srx tune", "pass another --out")
        assert got.value.pid == holder.pid
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (folder / ".lock").exists()  # a killed holder's file, taken over
    claim = claim_folder(folder, ".lock", "srx tune", "wait")
    with pytest.raises(FolderInUse, match=rf"in use by srx tune \(pid {os.getpid()}\)"):
        claim_folder(folder, ".lock", "srx train", "wait")
    claim.release()
    assert sorted(p.name for p in folder.iterdir()) == []  # the lock file goes; the folder was there before
    fresh = tmp_path / "new" / "deeper"
    with claim_folder(fresh, ".lock", "srx train", "wait"):
        assert fresh.is_dir()
    assert not (tmp_path / "new").exists()  # made for the claim, nothing written: removed
    with claim_folder(fresh, ".lock", "srx train", "wait"):
        (fresh / "metrics.csv").write_text("step\n")
    assert sorted(p.name for p in fresh.iterdir()) == ["metrics.csv"]
