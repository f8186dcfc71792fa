"""srx.doctor: pycuda is reported as the TensorRT runner uses it (driver imported and initialised), and
the CPU's SIMD level is shown. pycuda is faked here so every branch runs on a machine without a GPU."""
from __future__ import annotations

import platform
import sys
import types
from pathlib import Path

import pytest

from srx.doctor import _pycuda_rows, doctor_report, simd_level


def _fake_pycuda(monkeypatch, version=(2025, 1, 2), init_error=None, devices=(("NVIDIA Orin", 8 * 2**30),)):
    pkg = types.ModuleType("pycuda")
    pkg.VERSION = version
    pkg.VERSION_TEXT = ".".join(map(str, version))
    drv = types.ModuleType("pycuda.driver")

    def init():
        if init_error is not None:
            raise init_error

    class Device:
        def __init__(self, i):
            self.i = i

        @staticmethod
        def count():
            return len(devices)

        def name(self):
            return devices[self.i][0]

        def total_memory(self):
            return devices[self.i][1]

    drv.init, drv.Device = init, Device
    drv.get_version = lambda: (13, 0, 0)
    drv.get_driver_version = lambda: 13000
    pkg.driver = drv
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)


def test_pycuda_row_shows_version_cuda_and_devices(monkeypatch):
    _fake_pycuda(monkeypatch)
    (row,) = _pycuda_rows()
    assert row.status == "ok"
    assert row.detail.startswith("2025.1.2 (built for CUDA 13.0.0; driver supports CUDA 13.0); 1 device(s)")
    assert "NVIDIA Orin (8.0 GiB)" in row.detail


def test_pycuda_row_reports_an_init_failure(monkeypatch):
    _fake_pycuda(monkeypatch, init_error=RuntimeError("cuInit failed: no CUDA-capable device is detected"))
    (row,) = _pycuda_rows()
    assert row.status == "warn" and "does not initialise" in row.detail and "cuInit failed" in row.detail
    assert "nvidia-smi" in row.fix


def test_pycuda_row_flags_versions_that_break_under_cuda_13(monkeypatch):
    _fake_pycuda(monkeypatch, version=(2024, 1, 2))
    (row,) = _pycuda_rows()
    assert row.status == "warn" and "older than 2025.1.2" in row.detail and "pycuda>=2025.1.2" in row.fix


def test_pycuda_row_with_no_device_or_no_pycuda(monkeypatch):
    _fake_pycuda(monkeypatch, devices=())
    (row,) = _pycuda_rows()
    assert row.status == "warn" and "0 device(s)" in row.detail
    monkeypatch.setitem(sys.modules, "pycuda", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    (row,) = _pycuda_rows()
    assert row.status == "missing" and "CUDA toolkit" in row.fix and "python3-dev" in row.fix


@pytest.mark.parametrize("flags,machine,level", [
    ({"sse4_2", "avx", "avx2", "fma"}, "x86_64", "AVX2 + FMA"),  # this project's EPYC: no avx512f
    ({"avx2", "fma", "avx512f", "avx512_vnni"}, "x86_64", "AVX-512 (VNNI)"),
    ({"sse4_2", "avx"}, "x86_64", "AVX"),
    ({"sse2"}, "x86_64", "SSE2 or less"),
    ({"fp", "asimd", "asimddp"}, "aarch64", "NEON (ASIMD) with dot product"),
    ({"fp", "asimd", "sve"}, "aarch64", "SVE"),
])
def test_simd_level(flags, machine, level):
    assert simd_level(flags, machine) == level


def test_doctor_has_a_cpu_row_with_the_simd_level():
    rows = {r.item: r for r in doctor_report()}
    assert "cpu" in rows and rows["cpu"].status == "info"
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text(errors="replace").splitlines() if cpuinfo.exists() else []
    flags = next((set(v.split()) for k, _, v in (ln.partition(":") for ln in lines)
                  if k.strip().lower() in ("flags", "features")), set())
    if not flags:  # the row says the level is unknown, and why
        assert "SIMD level unknown" in rows["cpu"].detail
    else:  # the level of the flags this CPU reports (AVX2 here), named in the row
        assert f"SIMD: {simd_level(flags, platform.machine())} " in rows["cpu"].detail, rows["cpu"].detail


def test_the_cpu_row_says_the_cores_this_process_may_use_where_fewer(tmp_path):
    """`taskset -c N srx doctor` on a pinned or containerised box: the machine's logical cores and the
    ones the affinity mask leaves this process (the ones srx's threads follow); it said the machine's
    alone (2 logical cores where srx would use 1)."""
    import json
    import os
    import subprocess

    allowed = sorted(os.sched_getaffinity(0))
    total = os.cpu_count()
    if total < 2:
        pytest.skip("one logical core: no narrower affinity mask to run under")
    env = {**os.environ, "SRX_CACHE_DIR": str(tmp_path / "cache")}

    def cpu_row(cpus: set[int]) -> str:
        res = subprocess.run([sys.executable, "-m", "srx", "doctor", "--json"], capture_output=True, text=True,
                             timeout=300, env=env, cwd=Path(__file__).resolve().parents[1],
                             preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        assert res.returncode == 0, res.stderr
        return next(r["detail"] for r in json.loads(res.stdout) if r["item"] == "cpu")

    assert f", {total} logical cores, 1 usable by this process (affinity); SIMD" in cpu_row({allowed[-1]})
    if len(allowed) == total:  # all of them: the machine's count alone
        everything = cpu_row(set(allowed))
        assert f", {total} logical cores; SIMD" in everything and "usable" not in everything


def test_doctor_lists_pyav_which_the_h264_degradation_needs(monkeypatch):
    rows = {r.item: r for r in doctor_report()}
    assert rows["PyAV"].status == "ok"  # a base dependency: `--degrade h264=...` codes with x264
    monkeypatch.setitem(sys.modules, "av", None)  # as if it were missing: the row says how to get it
    rows = {r.item: r for r in doctor_report()}
    assert rows["PyAV"].status != "ok" and "pip install av" in rows["PyAV"].fix


def test_doctor_says_what_pyavs_ffmpeg_brings(monkeypatch):
    """x264, x265 and the RTSP muxer come inside PyAV's wheels; a PyAV built against an FFmpeg
    without them gets a warning row with the fix."""
    import av

    rows = {r.item: r for r in doctor_report()}
    for item in ("PyAV x264", "PyAV x265", "PyAV RTSP out"):
        assert rows[item].status == "ok" and rows[item].detail.startswith("yes ("), rows[item]
    monkeypatch.setattr(av, "formats_available", set(av.formats_available) - {"rtsp"})
    row = {r.item: r for r in doctor_report()}["PyAV RTSP out"]
    assert row.status == "warn" and row.detail.startswith("no (") and "pip install --force-reinstall av" in row.fix


def test_a_package_that_is_there_but_does_not_import_is_not_called_missing(tmp_path):
    """onnx installed beside an ml-dtypes it does not fit (pip's pick on Python 3.13 with PyTriton's
    NumPy < 2) fails on import: doctor says so and suggests a reinstall, not `pip install onnx`."""
    import json
    import os
    import subprocess

    broken = tmp_path / "onnx"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise AttributeError(\"module 'ml_dtypes' has no attribute 'float4_e2m1fn'\")\n")
    code = ("import json; from srx.doctor import _package_rows; "
            "print(json.dumps([[r.item, r.status, r.detail, r.fix] for r in _package_rows()]))")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {name: (status, detail, fix) for name, status, detail, fix in json.loads(proc.stdout)}
    status, detail, fix = rows["onnx"]
    assert detail.startswith("installed, but importing it fails (AttributeError: module 'ml_dtypes'")
    assert fix.startswith("pip install --force-reinstall onnx") and rows["torch"][0] == "ok"
