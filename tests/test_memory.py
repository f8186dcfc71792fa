"""srx.memory: what this process may still take (an address-space limit counts), and the CLI's last
resort for an allocation that fails where no stage words it."""
from __future__ import annotations

import subprocess
import sys

import cv2

from tests.conftest import assert_one_error_line, run_srx_with_room, synthetic_photo


def test_available_memory_counts_an_address_space_limit():
    """Under `prlimit --as` the room left under the limit, not the machine's MemAvailable, is what a
    process can take (srx tune's patch budget and the training patch check go by it)."""
    code = """
import resource
from srx.memory import available_memory, address_space_limit
size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + (200 << 20), resource.RLIM_INFINITY))
print(available_memory(), address_space_limit() - size)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    room, limit_room = map(int, res.stdout.split())
    assert limit_room == 200 << 20 and 150 << 20 < room <= 200 << 20, res.stdout + res.stderr


def test_an_allocation_failing_outside_the_stages_is_one_error_line(tmp_path, tiny_checkpoint):
    """`srx eval` on an image too large for the memory left (a real limit: 250 MB beyond the
    libraries; its float64 YCbCr planes alone are some 380 MB) fails in numpy or OpenCV, where no
    stage words it: the CLI's last resort says it in one line (it was a traceback)."""
    weights = tiny_checkpoint()
    data = tmp_path / "data"
    data.mkdir()
    cv2.imwrite(str(data / "big.png"), cv2.resize(synthetic_photo(100, 100), (4000, 4000)))
    res = run_srx_with_room(["eval", "--data", "data", "-w", str(weights), "--scale", "3"], 250 << 20, tmp_path)
    assert res.returncode == 1, res.stderr
    assert_one_error_line(res.stderr, "error: out of memory (")
    assert "free some memory or use a machine with more" in res.stderr
