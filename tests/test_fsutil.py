"""srx.fsutil: atomic writes leave files with the mode any other tool would give them, and output
paths that cannot be written are named before any work starts."""
from __future__ import annotations

import json
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


_CHECK_AS_NOBODY = """
import json, os, sys
from pathlib import Path
from srx.errors import SrxError
from srx.fsutil import check_output_file  # imported first: the interpreter may be in root's home
if os.geteuid() == 0:  # a user the folder's permissions apply to (root passes every one of them)
    os.setgroups([])
    os.setgid(int(sys.argv[2]))
    os.setuid(int(sys.argv[1]))
said = {}
for name in sys.argv[3:]:
    try:
        check_output_file(Path(name), "--json-summary", in_place=True)
        said[name] = "ok"
    except SrxError as exc:
        said[name] = str(exc)
print(json.dumps(said))
"""


@pytest.fixture
def shared_tmp(tmp_path):
    """A folder another user may look into (pytest's tmp_path under /tmp/pytest-of-root is 0700)."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="srx-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_pipe_or_link_in_a_folder_srx_may_not_write_is_checked_as_it_is_written(shared_tmp):
    """--json-summary's up-front check created a test file in the folder that holds the path, so a
    FIFO or device (/dev/stdout: /dev is root's, 0755) or a link in a folder a user may not write was
    refused before the run, though write_report writes to the FIFO itself and a link's target where
    it lies. Checked as a user the permissions apply to: nobody when root, else the user, with a
    0555 folder. A new file there is still refused, and so is a pipe that user may not open."""
    import pwd

    try:
        user = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    except KeyError:
        pytest.skip("no user nobody to check as (root passes every permission)")
    locked, open_to_all = shared_tmp / "locked", shared_tmp / "open"
    locked.mkdir()
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    os.mkfifo(locked / "mon.fifo", 0o666)
    (locked / "mon.fifo").chmod(0o666)  # past the umask
    os.mkfifo(locked / "private.fifo", 0o600 if os.geteuid() == 0 else 0o400)  # root's; or not writable
    (locked / "link.json").symlink_to(open_to_all / "target.json")  # not there yet: write_report makes it
    (locked / "to-fifo").symlink_to(locked / "mon.fifo")
    (shared_tmp / "link-into-locked.json").symlink_to(locked / "new.json")
    locked.chmod(0o555)
    names = ["mon.fifo", "link.json", "to-fifo", "new.json", "private.fifo"]
    try:
        proc = subprocess.run([sys.executable, "-c", _CHECK_AS_NOBODY, str(user.pw_uid), str(user.pw_gid),
                               *[str(locked / n) for n in names], str(shared_tmp / "link-into-locked.json")],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    said = json.loads(proc.stdout)
    assert [said[str(locked / n)] for n in names[:3]] == ["ok"] * 3, said
    assert said[str(locked / "new.json")].startswith(f"cannot write --json-summary {locked / 'new.json'}: folder "
                                                    f"{locked} is not writable"), said
    assert said[str(locked / "private.fifo")] == (f"cannot write --json-summary {locked / 'private.fifo'}: it cannot "
                                                  "be opened for writing (permission denied)"), said
    # a link is checked where its target lies, not in its own folder
    assert said[str(shared_tmp / "link-into-locked.json")].startswith(
        f"cannot write --json-summary {shared_tmp / 'link-into-locked.json'}: folder {locked} is not writable"), said


def test_a_pipe_no_one_reads_is_one_error_and_a_slow_reader_gets_all_of_it(tmp_path):
    """write_report opened a FIFO with no reader and waited for one for ever (the end of `srx stream`
    hung, and SIGTERM only said "already stopping"): now one WriteError at once. Once open it writes
    blocking: 1 MiB through a 64 KiB pipe reaches a reader that drains it as it comes."""
    import select
    import threading

    from srx.fsutil import write_report

    fifo = tmp_path / "mon.fifo"
    os.mkfifo(fifo)
    done: dict = {}

    def write(text: str) -> None:
        try:
            done["path"] = write_report(fifo, text)
        except Exception as exc:  # noqa: BLE001  (looked at by the test)
            done["error"] = exc

    lone = threading.Thread(target=write, args=("{}",), daemon=True)
    lone.start()
    lone.join(60)
    if lone.is_alive():  # the old open, waiting for a reader: give it one so the thread ends
        with open(fifo, "rb") as unblock:
            unblock.read()
        pytest.fail("write_report waited for a reader of a FIFO no one reads")
    assert isinstance(done.get("error"), WriteError), done
    assert str(done["error"]) == (f"cannot write {fifo}: nothing reads the pipe (start its reader before the run "
                                  "ends, or name a file)")
    assert fifo.is_fifo()
    done.clear()
    text = "x" * (1 << 20) + "\n"
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader there before the write starts
    writer = threading.Thread(target=write, args=(text,), daemon=True)
    writer.start()
    got = bytearray()
    try:
        while True:
            select.select([reader], [], [], 1.0)
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:  # the writer is there, nothing in the pipe this moment
                continue
            got += chunk
            if not chunk and not writer.is_alive():  # no writer, and it ended
                break
    finally:
        os.close(reader)
    writer.join()
    assert done == {"path": fifo} and got.decode() == text


def test_a_claim_whose_lock_file_was_removed_takes_it_again(tmp_path, caplog):
    """A clean-up (or a user) removed a training folder's lock file mid-run: a second run could claim
    the folder and the two mixed their checkpoints and metrics.csv. `keep` (at each checkpoint) takes
    it again, with a warning, so the second run is refused; where another run already took it, the
    warning names it."""
    import logging

    caplog.set_level(logging.WARNING, logger="srx")
    folder = tmp_path / "run"
    claim = claim_folder(folder, ".lock", "srx train", "wait")
    claim.keep()  # its own: nothing to do, nothing said
    assert not caplog.records
    (folder / ".lock").unlink()
    claim.keep()
    assert "its lock file .lock was removed while this run used the folder; it holds it again" in caplog.text
    with pytest.raises(FolderInUse, match=rf"in use by srx train \(pid {os.getpid()}\)"):
        claim_folder(folder, ".lock", "srx tune", "wait")
    (folder / ".lock").unlink()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another run took the folder meanwhile
        claim.keep()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert f"and srx train (pid {holder.pid}) holds it now: the two runs write into one folder" in caplog.text
    claim.release()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_that_comes_as_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch, signum):
    """A video upscale stopped by a hangup left its hidden `.part.mp4` once in about ten runs: the
    stop came after the temporary file was made and before its name reached the cleanup that removes
    it. A stop there is now held for those few statements and handled at their end, as srx's own
    handler (SIGTERM, SIGHUP) and Python's (Ctrl-C) would have: the command ends as it would, nothing left."""
    import os

    import importlib

    from srx import fsutil
    from srx.runtime import batch

    cli_app = importlib.import_module("srx.cli.app")  # the module (srx.cli's `app` is the Typer app)

    made = fsutil.temporary_sibling

    def made_then_stopped(*args, **kwargs):
        path = made(*args, **kwargs)
        os.kill(os.getpid(), signum)  # handled here at once, unless it is held
        return path

    monkeypatch.setattr(fsutil, "temporary_sibling", made_then_stopped)
    monkeypatch.setattr(batch, "temporary_sibling", made_then_stopped)
    monkeypatch.setattr(cli_app, "_terminated_at", [])
    handler = signal.default_int_handler if signum == signal.SIGINT else cli_app._terminated
    old = signal.signal(signum, handler)
    try:
        with pytest.raises(KeyboardInterrupt if signum == signal.SIGINT else SystemExit):
            fsutil.atomic_write_bytes(tmp_path / "model.pt", b"weights")
        cli_app._terminated_at.clear()  # a second command's stop, not the first's delivered again
        with pytest.raises(KeyboardInterrupt if signum == signal.SIGINT else SystemExit):
            with batch._atomic_video(tmp_path / "clip_x3.mp4") as tmp:
                tmp.write_bytes(b"video")
    finally:
        signal.signal(signum, old)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a temporary file was left"
