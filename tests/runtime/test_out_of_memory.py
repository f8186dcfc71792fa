"""Running out of memory while upscaling, under a real address-space limit (RLIMIT_AS, what `prlimit
--as` sets) in a subprocess: one `error:` line saying what the image needs and what helps, never a
traceback; in a folder the other images are still done. The limit leaves `ROOM` bytes beyond what
srx's libraries take (tests.conftest.run_srx_with_room): a 64x64 image x3 needs under 120 MB of it
(measured), a 2000x2000 one about 0.5 GB of whole-frame planes alone (runtime.upscaler.frame_bytes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import assert_one_error_line, run_srx_with_room, silent_video, synthetic_photo

ROOM = 300 << 20


def test_a_folder_goes_on_past_an_image_too_large_for_the_memory(tmp_path, tiny_checkpoint):
    """The large image comes first: it fails alone, named, with what it needs; the small one after it
    is still upscaled (it was a cv2.error traceback in the colour stage, or ONNX Runtime's arena's,
    and the batch stopped there)."""
    from srx.runtime.upscaler import frame_bytes

    weights = tiny_checkpoint()
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_big.png"), cv2.resize(synthetic_photo(100, 100), (2000, 2000)))
    cv2.imwrite(str(folder / "b_small.png"), synthetic_photo(64, 64))
    assert frame_bytes(2000, 2000, 3) > ROOM
    res = run_srx_with_room(["upscale", "in", "-o", "out", "-w", str(weights), "--threads", "1", "--no-progress"],
                            ROOM, tmp_path)
    assert res.returncode == 1, res.stderr
    assert_one_error_line(res.stderr, "1 of 2 inputs could not be upscaled: out of memory upscaling in/a_big.png x3 "
                                      "(its 6000x6000 output needs about")
    assert "free some memory or use a machine with more" in res.stderr
    assert "use a smaller --tile" not in res.stderr  # the advice it had, which does not help with the planes
    assert "address-space limit" in res.stderr  # why a box with more free memory than that still failed
    assert cv2.imread(str(tmp_path / "out" / "b_small.png")).shape == (192, 192, 3)
    assert not (tmp_path / "out" / "a_big.png").exists()


def test_the_model_running_out_of_memory_is_one_srx_error(tmp_path, tiny_checkpoint, monkeypatch):
    """ONNX Runtime's arena failing an allocation (its Fail exception) comes out of Runner.infer as
    OutOfMemory, marked as the model's (a smaller tile helps there)."""
    from srx.runtime.select import cached_onnx

    import os

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))  # undone after the test (a del left none)
    env = dict(os.environ)
    onnx = cached_onnx(tiny_checkpoint(), 3)
    code = f"""
import resource, numpy as np
from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner
from srx.errors import OutOfMemory
runner = OnnxRuntimeRunner({str(onnx)!r}, threads=1).activate()
runner.infer(np.zeros((1, 1, 64, 64), np.float32))
x = np.zeros((1, 1, 2000, 2000), np.float32)
size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + {ROOM}, resource.RLIM_INFINITY))
try:
    runner.infer(x)
except OutOfMemory as exc:
    print("OutOfMemory", exc.in_model, exc)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OutOfMemory True out of memory running the model (onnxruntime"), res.stdout
    assert "an input of 2000x2000" in res.stdout


def test_a_video_that_cannot_be_finished_names_the_output_not_its_hidden_temporary(tmp_path, tiny_checkpoint):
    """A write that fails under the video (here a file-size limit, RLIMIT_FSIZE; on the edge box x264's
    malloc) is said of the --out file, not of the hidden .part file that is deleted with it."""
    import os
    import resource
    import signal

    weights = tiny_checkpoint()
    silent_video(tmp_path / "v.avi", 8, (96, 64))

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))

    env = {**os.environ, "SRX_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-m", "srx", "upscale", "v.avi", "-o", "warm.mp4", "-w", str(weights)],
                   cwd=tmp_path, env=env, capture_output=True)  # the ONNX cache, written without the limit
    res = subprocess.run([sys.executable, "-m", "srx", "upscale", "v.avi", "-o", "up/v.mp4", "-w", str(weights),
                          "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                         preexec_fn=small_files)
    assert res.returncode == 1, res.stderr
    assert_one_error_line(res.stderr, "the video up/v.mp4: ")
    assert ".part" not in res.stderr
    assert not [p for p in (tmp_path / "up").iterdir()]  # nothing left behind, the hidden file included
