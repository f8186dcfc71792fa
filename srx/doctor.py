"""`srx doctor`: what this machine has for each srx stage, and the one-line fix for what it lacks.

Every probe is guarded: a broken package is reported as a row, never a traceback, and camera
probes give up after a second so a wedged device cannot hang the report.
"""
from __future__ import annotations

import glob
import importlib
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
    }
    for module, fix in fixes.items():
        mod, version = _version(module)
        rows.append(Row("opencv" if module == "cv2" else module, OK if mod else MISSING, version, "" if mod else fix))
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
        rows.append(Row("CUDA devices (torch)", OK if n else INFO,
                        "; ".join(names) if names else f"none (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})",
                        "" if n else "GPU inference needs an NVIDIA GPU, its driver and a CUDA build of torch/ORT"))
    trt, version = _version("tensorrt")
    if trt is None:
        rows.append(Row("tensorrt", MISSING, version, GPU_FIX))
    elif version.split(".")[0].isdigit() and int(version.split(".")[0]) < 10:
        rows.append(Row("tensorrt", WARN, f"{version}: srx needs TensorRT >= 10 (named-tensor API)", GPU_FIX))
    else:
        rows.append(Row("tensorrt", OK, version))
    pycuda, version = _version("pycuda")
    rows.append(Row("pycuda", OK if pycuda else MISSING, version, "" if pycuda else GPU_FIX))
    return rows


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
    rows = []
    try:
        from srx.checkpoint import shipped_weights
    except Exception as exc:  # torch missing: already reported above
        return [Row("shipped weights", WARN, f"cannot check ({exc})", "install torch")]
    from srx.errors import SrxError

    for scale in (2, 3, 4):
        try:
            rows.append(Row(f"weights x{scale}", OK, str(shipped_weights(scale))))
        except SrxError:
            rows.append(Row(f"weights x{scale}", MISSING, "not in this installation",
                            f"srx train --data T91 --scale {scale} --out runs/x{scale}, then pass --weights runs/x{scale}/best.pt"))
    return rows


def doctor_report() -> list[Row]:
    """All rows, in the order the screen shows them."""
    rows: list[Row] = []
    probes: list[Callable[[], list[Row]]] = [_package_rows, _ort_rows, _gpu_rows, _opencv_rows, _camera_rows, _weights_rows]
    for probe in probes:
        try:
            rows += probe()
        except Exception as exc:  # a probe must never take the report down
            rows.append(Row(probe.__name__.strip("_").replace("_rows", ""), WARN, f"probe failed: {exc}"))
    return rows


def report_dicts(rows: list[Row]) -> list[dict[str, str]]:
    return [asdict(r) for r in rows]
