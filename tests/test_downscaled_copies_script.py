"""scripts/downscaled_copies.py through its command line: shrunk copies of a training folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2

from srx.protocol import imresize
from tests.conftest import synthetic_photo

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "downscaled_copies.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_writes_each_factor_and_leaves_out_small_copies(tmp_path):
    src, out = tmp_path / "hr", tmp_path / "down"
    src.mkdir()
    big, small = synthetic_photo(120, 100, seed=1), synthetic_photo(80, 90, seed=2)
    cv2.imwrite(str(src / "big.png"), big)
    cv2.imwrite(str(src / "small.png"), small)
    res = _run(str(src), str(out), "--factors", "0.9", "0.75", "0.6", "--min-side", "60")
    assert res.returncode == 0, res.stderr
    # 80 x 0.6 = 48 < 60: that copy is left out; each factor names its own file (0.75 is not 0.8)
    assert sorted(p.name for p in out.iterdir()) == [
        "big_s6.png", "big_s75.png", "big_s9.png", "small_s75.png", "small_s9.png"]
    got = cv2.imread(str(out / "big_s6.png"))
    assert got.shape == (72, 60, 3)
    assert (got == imresize(big, 0.6)).all()  # MATLAB bicubic with antialiasing, stored losslessly
    assert "wrote 5 copies" in res.stdout


def test_a_factor_that_does_not_shrink_is_one_line(tmp_path):
    (tmp_path / "hr").mkdir()
    res = _run(str(tmp_path / "hr"), str(tmp_path / "down"), "--factors", "1.5")
    assert res.returncode == 1 and res.stderr.strip() == (
        "error: --factors 1.5: expected factors between 0 and 1 (a copy is smaller than the original)")
    assert not (tmp_path / "down").exists()
