"""ONNX Runtime backend: runs an srx ONNX graph (FP32 or FP16) on the CPU, or on CUDA/TensorRT
execution providers when they are asked for and installed."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from srx.errors import SrxError
from srx.runtime.base import Runner

log = logging.getLogger("srx")

#: short names accepted for providers (OnnxRuntimeRunner(providers=["cuda"])), besides ORT's own names
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


def physical_cores() -> int:
    """Physical cores this process may run on: extra SMT threads only slow a conv down."""
    from srx.doctor import allowed_cpus

    cores = set()
    for cpu in allowed_cpus():
        sib = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_cpus_list")
        if not sib.exists():
            sib = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(sib.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def ort_module():
    try:
        import onnxruntime
    except ImportError as exc:
        raise SrxError(
            f"onnxruntime is not importable ({exc}); install it with `pip install onnxruntime` "
            "(or `pip install 'srx[gpu]'` for CUDA)"
        ) from None
    return onnxruntime


def resolve_providers(requested: list[str] | None) -> list[str]:
    """ORT provider names for `requested` (aliases allowed), CPU appended as the fallback for nodes
    a GPU provider cannot take; SrxError listing what is installed if one is missing."""
    ort = ort_module()
    available = ort.get_available_providers()
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in (requested or ["cpu"])]
    missing = [n for n in names if n not in available]
    if missing:
        raise SrxError(
            f"ONNX Runtime provider {', '.join(missing)} is not available in this installation; "
            f"available: {', '.join(available)} (CUDA/TensorRT need `pip install 'srx[gpu]'` and a GPU)"
        )
    if "CPUExecutionProvider" not in names:
        names.append("CPUExecutionProvider")
    return names


def session_options(threads: int | None = None):
    """Options measured fastest for SRCNN 9-1-5 at 720p output on a 2-core CPU: one thread per
    physical core (SMT siblings only contend for the FMA units), every graph optimisation (ALL
    adds the NCHWc conv layout; EXTENDED was ~10% slower), sequential execution (the graph is a
    chain: nothing to run in parallel), intra-op spinning left on (turning it off was slower)."""
    ort = ort_module()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads or physical_cores())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # fatal only: an error is in the exception srx words (a failed run's own line besides it was noise)
    return opts


class OnnxRuntimeRunner(Runner):
    """An srx ONNX graph (checked: input `lr_y`, output `hr_y`, srx metadata) in an ORT session."""

    backend = "onnxruntime"
    concurrent_infer = True  # InferenceSession.run is thread-safe and releases the GIL

    def __init__(self, onnx_path: Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        super().__init__()
        from srx.export.onnx import check_srx_onnx

        self.onnx_path = Path(onnx_path)
        self.info = check_srx_onnx(self.onnx_path)
        self.providers = resolve_providers(providers)
        self.threads = threads
        self.scale = int(self.info["scale"]) if self.info.get("scale") else None
        self.config = self.config_from_dict(self.info.get("model_config"))
        self.kernel_sizes = _kernel_sizes(self.info)
        shape = self.info.get("input_shape") or []
        self.fixed_hw = tuple(shape[2:]) if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]) else None
        if self.fixed_hw is not None:  # a static graph: whole frames of its size, never tiles of it
            self.input_hw_range = (self.fixed_hw, self.fixed_hw)
        self.session = None
        self._in_name = "lr_y"
        self._out_name = "hr_y"
        self._in_dtype = np.float32

    def describe(self) -> str:
        kind = str(self.info.get("precision", "fp32")).upper()
        return f"onnxruntime ({self.providers[0]}, {kind}, {self.onnx_path.name})"

    def session_options(self):
        return session_options(self.threads)

    def activate_impl(self) -> None:
        ort = ort_module()
        try:
            self.session = ort.InferenceSession(
                str(self.onnx_path), sess_options=self.session_options(), providers=self.providers
            )
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise SrxError(f"ONNX Runtime cannot load {self.onnx_path}: {str(exc).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self._in_name = inp.name
        self._out_name = self.session.get_outputs()[0].name
        self._in_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        used = self.session.get_providers()
        if used[0] != self.providers[0]:
            log.warning("ONNX Runtime fell back to %s (asked for %s)", used[0], self.providers[0])
        self.providers = used

    def deactivate_impl(self) -> None:
        self.session = None

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        if self.fixed_hw is not None and tuple(lr_y.shape[2:]) != self.fixed_hw:
            raise SrxError(
                f"{self.onnx_path.name} was exported for {self.fixed_hw[1]}x{self.fixed_hw[0]} inputs only, got "
                f"{lr_y.shape[3]}x{lr_y.shape[2]}; use a dynamic export (the `srx export` default)"
            )
        x = lr_y if self._in_dtype == np.float32 else lr_y.astype(self._in_dtype)
        out = self.session.run([self._out_name], {self._in_name: x})[0]
        return out if out.dtype == np.float32 else out.astype(np.float32)


def _kernel_sizes(info: dict) -> list[int] | None:
    cfg = info.get("model_config") or info.get("config") or {}
    ks = cfg.get("kernel_sizes") if isinstance(cfg, dict) else None
    if not isinstance(ks, list) or not all(isinstance(k, int) and k > 0 for k in ks):
        return None  # missing or unreadable: the Upscaler then takes its widest overlap
    return [int(k) for k in ks] or None
