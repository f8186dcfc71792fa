"""srx.fsutil: atomic writes leave files with the mode any other tool would give them, and output
paths that cannot be written are named before any work starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from srx.errors import SrxError
from srx.fsutil import (WriteError, atomic_path, atomic_write_bytes, atomic_write_text, check_output_dir, check_output_file,
                        ensure_dir, new_file_mode)
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

