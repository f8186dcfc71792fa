"""scripts/library_photos.py through its command line: the held-out photos that install with srx."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from srx.imageio import read_image
from srx.samples import library_photos

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "library_photos.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_copies_every_photo_unchanged(tmp_path):
    res = _run(str(tmp_path / "photos"))
    assert res.returncode == 0, res.stderr
    sources = library_photos()
    copies = sorted((tmp_path / "photos").iterdir())
    assert [p.name for p in copies] == [p.name for p in sources] and len(copies) >= 10
    assert all(c.read_bytes() == s.read_bytes() for c, s in zip(copies, sources))
    assert min(min(read_image(c).shape[:2]) for c in copies) >= 160  # each one big enough to score at x4
    assert res.stdout.startswith(f"{len(copies)} photos in {tmp_path / 'photos'}: astronaut, ")


def test_an_output_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("x")
    res = _run(str(tmp_path / "taken"))
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: output folder {tmp_path / 'taken'} exists as a file; expected a folder"
