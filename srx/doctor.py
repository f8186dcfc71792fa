"""`srx doctor`: what this machine has for each srx stage, and the one-line fix for what it lacks.

Every probe is guarded: a broken package is reported as a row, never a traceback, and camera
probes give up after a second so a wedged device cannot hang the report.
"""
from __future__ import annotations

import glob
import importlib
import importlib.util
import platform
import threading
from dataclasses import asdict, dataclass
from typing import Any, Callable

OK, MISSING, WARN, INFO = "ok", "missing", "warn", "info"
GPU_FIX = "pip install 'srx[gpu]' (on a Jetson: JetPack's python3-libnvinfer and pycuda)"


@dataclass
class Row:
    item: str
    status: str  # ok | missing | warn | info
    detail: str
    fix: str = ""


def _version(module: str) -> tuple[Any, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken native library (OSError, ...)
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return mod, str(getattr(mod, "__version__", "unknown version"))


def _package_rows() -> list[Row]:
    from srx._version import __version__

    rows = [Row("srx", OK, f"{__version__} (Python {platform.python_version()}, {platform.machine()})")]
    fixes = {
        "torch": "pip install torch (CPU: --index-url https://download.pytorch.org/whl/cpu)",
        "onnxruntime": "pip install onnxruntime (GPU: pip install 'srx[gpu]')",
        "onnx": "pip install onnx",
        "cv2": "pip install opencv-python (Jetson: JetPack's python3-opencv)",
        "av": "pip install av (x264 and x265, for the h264= and h265= degradations: srx eval --degrade h265=28)",
    }
    labels = {"cv2": "opencv", "av": "PyAV"}
    pips = {"cv2": "opencv-python", "av": "av"}
    for module, fix in fixes.items():
        mod, version = _version(module)
        if mod is None and importlib.util.find_spec(module) is not None:  # there, but it does not import
            version = f"installed, but importing it fails ({version})"
            fix = (f"pip install --force-reinstall {pips.get(module, module)} (or the package the error names: "
                   "two packages of versions that do not fit each other)")
        rows.append(Row(labels.get(module, module), OK if mod else MISSING, version, "" if mod else fix))
    return rows


def _serve_rows() -> list[Row]:
    """The serve extra: PyTriton (a Triton Inference Server for `srx serve`) and tritonclient (the
    triton backend of stream, upscale and bench). Optional: INFO where absent."""
    import importlib.metadata as md

    rows = []
    for dist, module, use in (("nvidia-pytriton", "pytriton", "srx serve"),
                              ("tritonclient", "tritonclient.grpc", "--server clients")):
        try:
            version = md.version(dist)
            importlib.import_module(module)
            rows.append(Row(f"{dist} ({use})", OK, version))
        except Exception as exc:  # not installed, or a broken install
            why = "not installed" if isinstance(exc, md.PackageNotFoundError) else _first_line(exc)
            rows.append(Row(f"{dist} ({use})", INFO, why, "pip install 'srx[serve]'"))
    return rows


def _ort_rows() -> list[Row]:
    mod, _ = _version("onnxruntime")
    if mod is None:
        return []
    providers = mod.get_available_providers()
    gpu = "CUDAExecutionProvider" in providers
    return [Row("onnxruntime providers", OK if gpu else INFO, ", ".join(providers),
                "" if gpu else "for CUDA: pip install 'srx[gpu]' && pip uninstall -y onnxruntime && pip install --force-reinstall --no-deps onnxruntime-gpu")]


def _gpu_rows() -> list[Row]:
    rows = []
    torch, _ = _version("torch")
    if torch is not None:
        try:
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            names = [torch.cuda.get_device_name(i) for i in range(n)]
        except Exception as exc:  # a driver/runtime mismatch raises here
            n, names = 0, [f"CUDA error: {exc}"]
        if n:
            detail = "; ".join(names) + " (srx train and --backend auto use the first)"
        else:
            detail = "; ".join(names) or f"none (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})"
        rows.append(Row("CUDA devices (torch)", OK if n else INFO, detail,
                        "" if n else "GPU training and inference need an NVIDIA GPU, its driver and a CUDA build of torch/ORT"))
    trt, version = _version("tensorrt")
    if trt is None:
        rows.append(Row("tensorrt", MISSING, version, GPU_FIX))
    elif version.split(".")[0].isdigit() and int(version.split(".")[0]) < 10:
        rows.append(Row("tensorrt", WARN, f"{version}: srx needs TensorRT >= 10 (named-tensor API)", GPU_FIX))
    else:
        rows.append(Row("tensorrt", OK, version))
    rows += _pycuda_rows()
    return rows


#: pycuda 2025.1.2 fixed context creation under CUDA 13 (cuCtxCreate changed signature)
PYCUDA_FLOOR = (2025, 1, 2)
PYCUDA_FIX = ("pip install 'pycuda>=2025.1.2': it builds from source and needs the CUDA toolkit (cuda.h, nvcc on "
              "PATH or CUDA_ROOT), a C++ compiler and the Python headers (python3-dev); JetPack has them all")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _pycuda_rows() -> list[Row]:
    """pycuda as the TensorRT runner uses it: the driver module imported and initialised, with its
    version, the CUDA it was built for, the driver's CUDA and the devices, or why not."""
    try:
        import pycuda
        import pycuda.driver as cuda
    except Exception as exc:  # ImportError, or libcuda.so missing (ImportError/OSError)
        return [Row("pycuda", MISSING, _first_line(exc), PYCUDA_FIX)]
    version = str(getattr(pycuda, "VERSION_TEXT", None) or getattr(pycuda, "__version__", "unknown version"))
    numbers = tuple(getattr(pycuda, "VERSION", ()) or ())
    try:
        cuda.init()
        count = int(cuda.Device.count())
        built = ".".join(str(v) for v in cuda.get_version())
        driver = int(cuda.get_driver_version())
        devices = [f"{cuda.Device(i).name()} ({cuda.Device(i).total_memory() / 2**30:.1f} GiB)" for i in range(count)]
    except Exception as exc:  # pycuda's LogicError/RuntimeError: no driver, no device, a driver too old
        return [Row("pycuda", WARN, f"{version}: pycuda.driver imports but CUDA does not initialise ({_first_line(exc)})",
                    "check the NVIDIA driver (nvidia-smi) and that this process may use the GPU")]
    detail = (f"{version} (built for CUDA {built}; driver supports CUDA {driver // 1000}.{driver % 1000 // 10}); "
              f"{count} device(s)" + (": " + "; ".join(devices) if devices else ""))
    if numbers and tuple(int(v) for v in numbers[:3]) < PYCUDA_FLOOR:
        return [Row("pycuda", WARN, detail + "; older than 2025.1.2, which cannot create a context under CUDA 13", PYCUDA_FIX)]
    if count == 0:
        return [Row("pycuda", WARN, detail, "no CUDA device is visible: check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")]
    return [Row("pycuda", OK, detail)]


def nvcc_path() -> str | None:
    """The nvcc that compiles srx's CUDA colour kernels: on PATH, else under $CUDA_ROOT, $CUDA_HOME or
    /usr/local/cuda (where JetPack and NVIDIA's packages put it without adding it to PATH). The
    TensorRT runner hands this path to pycuda, which would look on PATH alone."""
    import os
    import shutil

    roots = [os.environ.get("CUDA_ROOT"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    found = shutil.which("nvcc")
    return found or next((p for p in (os.path.join(r, "bin", "nvcc") for r in roots if r) if os.access(p, os.X_OK)), None)


def _nvcc_rows() -> list[Row]:
    """nvcc compiles the CUDA colour kernels (pycuda's SourceModule) and is needed to build pycuda."""
    nvcc = nvcc_path()
    if nvcc is None:
        return [Row("nvcc (CUDA toolkit)", INFO, "not found",
                    "only for GPU hosts: install the CUDA toolkit (JetPack has it) for the all-GPU colour path and to build pycuda")]
    return [Row("nvcc (CUDA toolkit)", OK, nvcc)]


def simd_level(flags: set[str], machine: str) -> str:
    """The widest vector instruction set the CPU reports: it decides which kernels ONNX Runtime's
    MLAS (and oneDNN) run, so it explains CPU timings across machines."""
    machine = machine.lower()
    if machine in ("aarch64", "arm64") or "asimd" in flags:
        level = "SVE" if "sve" in flags else "NEON (ASIMD)" if "asimd" in flags else "no NEON reported"
        return level + (" with dot product" if "asimddp" in flags else "")
    if "avx512f" in flags:
        extra = [name for flag, name in (("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"), ("amx_tile", "AMX"))
                 if flag in flags]
        return "AVX-512" + (f" ({', '.join(extra)})" if extra else "")
    if "avx2" in flags:
        return "AVX2" + (" + FMA" if "fma" in flags else "")
    if "avx" in flags:
        return "AVX"
    if "sse4_2" in flags:
        return "SSE4.2"
    return "SSE2 or less"


def allowed_cpus() -> set[int]:
    """The logical CPUs this process may run on: its affinity mask (taskset, a container's cpuset)
    where the platform has one, else all of them."""
    import os

    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def usable_cpus() -> int:
    """How many logical CPUs this process may run on (allowed_cpus)."""
    return max(1, len(allowed_cpus()))


def cores_text() -> str:
    """'8 logical cores', or '2 logical cores, 1 usable by this process (affinity)' where the
    affinity mask allows fewer than the machine has (srx's threads follow the mask)."""
    import os

    from srx.words import counted

    total, usable = os.cpu_count() or 1, usable_cpus()
    return counted(total, "logical core") + (f", {usable} usable by this process (affinity)" if usable < total else "")


def _cpu_rows() -> list[Row]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware") and model in (platform.machine(), platform.processor(), ""):
                    model = value.strip() or model
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    if not flags:
        return [Row("cpu", INFO, f"{model}, {cores_text()}; SIMD level unknown (no /proc/cpuinfo)")]
    return [Row("cpu", INFO, f"{model}, {cores_text()}; SIMD: {simd_level(flags, platform.machine())} "
                             "(ONNX Runtime picks its CPU kernels from this)")]


def _opencv_rows() -> list[Row]:
    cv2, _ = _version("cv2")
    if cv2 is None:
        return []
    info = cv2.getBuildInformation()

    def flag(name: str) -> str:
        for line in info.splitlines():
            if line.strip().lower().startswith(name.lower() + ":"):
                return line.split(":", 1)[1].strip()
        return "NO"

    rows = []
    for name, why in (("FFMPEG", "reading and writing video files"), ("GStreamer", "CSI cameras and hardware codecs on Jetson"),
                      ("v4l/v4l2", "USB cameras on Linux")):
        value = flag(name)
        yes = value.upper().startswith("YES")
        fix = "" if yes else (
            "build OpenCV with GStreamer, or on a Jetson use JetPack's python3-opencv (pip opencv-python has none)"
            if name == "GStreamer" else f"install an OpenCV build with {name} (needed for {why})")
        rows.append(Row(f"opencv {name}", OK if yes else (INFO if name == "GStreamer" else WARN), value, fix))
    return rows


def _codec_rows() -> list[Row]:
    """What PyAV's bundled FFmpeg brings: the encoders srx writes and degrades with, and the RTSP
    muxer `srx stream --output rtsp://...` publishes through."""
    try:
        import av
    except ImportError:
        return []  # reported with the packages
    have = (("PyAV x264", "libx264" in av.codecs_available, "H.264 videos, recordings and publishing; h264="),
            ("PyAV x265", "libx265" in av.codecs_available, "the h265= degradation"),
            ("PyAV RTSP out", "rtsp" in av.formats_available, "srx stream --output rtsp://..."))
    return [Row(item, OK if ok else WARN, f"{'yes' if ok else 'no'} ({what})",
                "" if ok else "reinstall PyAV from PyPI (pip install --force-reinstall av): its wheels bundle FFmpeg "
                "with these") for item, ok, what in have]


def _probe_camera(index: int, timeout: float = 1.0) -> str:
    """Open /dev/video<index> briefly in a daemon thread; a device that hangs is reported, not waited for."""
    result: dict[str, str] = {}

    def probe() -> None:
        try:
            import cv2

            cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
            if cap.isOpened():
                w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                result["r"] = f"opens ({w}x{h})"
            else:
                result["r"] = "present, cannot be opened (busy, or a metadata node)"
            cap.release()
        except Exception as exc:
            result["r"] = f"error: {exc}"

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return result.get("r", f"no answer within {timeout:.0f} s")


def _camera_rows() -> list[Row]:
    devices = sorted(glob.glob("/dev/video*"), key=lambda p: int("".join(c for c in p if c.isdigit()) or 0))
    if not devices:
        return [Row("cameras", INFO, "no /dev/video* devices", "plug in a USB camera, or use a video file / RTSP URL as the source")]
    rows = []
    for dev in devices[:8]:
        digits = "".join(c for c in dev if c.isdigit())
        state = _probe_camera(int(digits)) if digits else "unrecognised name"
        rows.append(Row(f"camera {dev}", OK if state.startswith("opens") else WARN, state,
                        "" if state.startswith("opens") else "check permissions (group video) and that nothing else holds it"))
    return rows


def _weights_rows() -> list[Row]:
    """One row per shipped model: the scales this installation has weights for, and where."""
    try:
        from srx.checkpoint import SHIPPED, _weights_dir, shipped_scales
    except Exception as exc:  # torch missing: already reported above
        return [Row("shipped weights", WARN, f"cannot check ({exc})", "install torch")]

    rows = []
    for name in SHIPPED:
        have = shipped_scales(name)
        missing = [s for s in (2, 3, 4) if s not in have]
        detail = (f"{', '.join(f'x{s}' for s in have)} in {_weights_dir()}" if have else "not in this installation")
        fix = "" if not missing else (
            f"reinstall srx (its wheel ships every scale), or train one: srx train --data T91 --scale {missing[0]} "
            f"--out runs/x{missing[0]}, then pass --weights runs/x{missing[0]}/best.pt")
        rows.append(Row(f"weights {name}", OK if not missing else (WARN if have else MISSING), detail, fix))
    return rows


def doctor_report() -> list[Row]:
    """All rows, in the order the screen shows them."""
    rows: list[Row] = []
    probes: list[Callable[[], list[Row]]] = [_package_rows, _cpu_rows, _ort_rows, _gpu_rows, _nvcc_rows, _opencv_rows,
                                             _codec_rows, _serve_rows, _camera_rows, _weights_rows]
    for probe in probes:
        try:
            rows += probe()
        except Exception as exc:  # a probe must never take the report down
            rows.append(Row(probe.__name__.strip("_").replace("_rows", ""), WARN, f"probe failed: {exc}"))
    return rows


def report_dicts(rows: list[Row]) -> list[dict[str, str]]:
    return [asdict(r) for r in rows]
