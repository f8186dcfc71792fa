"""TensorRT backend (TensorRT 10+ named-tensor API, pycuda for memory and kernels).

A pycuda context belongs to the thread that made it, so every GPU call happens in one worker
thread that owns the context; `infer()` / `infer_frame()` hand work to it and wait (its exceptions
come back to the caller). Buffers grow only when a frame is larger than any seen before.

`infer_frame()` keeps the whole frame on the GPU: only the LR BGR uint8 frame goes up and only the
HR BGR uint8 frame comes back; colour conversion (MATLAB BT.601, as in training) and the chroma
bicubic run as CUDA kernels around the engine.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from srx.errors import SrxError
from srx.runtime.base import Runner

log = logging.getLogger("srx")

_INSTALL_HINT = "install them with `pip install 'srx[gpu]'` (on a Jetson use JetPack's python3-libnvinfer and pycuda)"


def trt_modules() -> tuple[Any, Any]:
    """(tensorrt, pycuda.driver), imported on first use, with the fix in the error."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise SrxError(f"the TensorRT backend needs the tensorrt package ({exc}); {_INSTALL_HINT}") from None
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise SrxError(f"the TensorRT backend needs pycuda ({exc}); {_INSTALL_HINT}") from None
    if int(trt.__version__.split(".")[0]) < 10:
        raise SrxError(f"TensorRT {trt.__version__} is too old: srx uses the TensorRT 10 named-tensor API")
    return trt, cuda


def _kernel_source() -> str:
    """CUDA C for the colour stages; the BT.601 constants come from srx.protocol, so the GPU path
    cannot drift from the CPU one."""
    from srx.protocol import _OFFSET, _T, _T_INV

    inv = 255.0 * _T_INV  # rows R, G, B; columns Y, Cb, Cr, on [0, 255] inputs minus the offset
    src = (
        r"""
extern "C" {
__global__ void bgr_to_ycc(const unsigned char* __restrict__ bgr, float* __restrict__ y,
                           float* __restrict__ cb, float* __restrict__ cr, int h, int w)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || r >= h) return;
    int i = r * w + x;
    float B = bgr[3 * i] / 255.0f, G = bgr[3 * i + 1] / 255.0f, R = bgr[3 * i + 2] / 255.0f;
    y[i]  = (@OY@ + @TYR@ * R + @TYG@ * G + @TYB@ * B) / 255.0f;   /* model units: Y / 255 */
    cb[i] = @OC@ + @TBR@ * R + @TBG@ * G + @TBB@ * B;
    cr[i] = @OC@ + @TRR@ * R + @TRG@ * G + @TRB@ * B;
}

/* OpenCV's INTER_CUBIC kernel (a = -0.75), as the CPU path's cv2.resize uses for chroma. */
__device__ __forceinline__ float cubic_w(float t)
{
    const float A = -0.75f;
    t = fabsf(t);
    if (t <= 1.0f) return ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;
    if (t < 2.0f) return ((A * t - 5.0f * A) * t + 8.0f * A) * t - 4.0f * A;
    return 0.0f;
}

__device__ float bicubic(const float* __restrict__ p, int h, int w, float fy, float fx)
{
    int y0 = (int)floorf(fy), x0 = (int)floorf(fx);
    float ty = fy - y0, tx = fx - x0, acc = 0.0f;
    for (int j = -1; j <= 2; ++j) {
        int yy = min(max(y0 + j, 0), h - 1);   /* replicate border, like cv2.resize */
        float row = 0.0f;
        for (int k = -1; k <= 2; ++k) {
            int xx = min(max(x0 + k, 0), w - 1);
            row += cubic_w(k - tx) * p[yy * w + xx];
        }
        acc += cubic_w(j - ty) * row;
    }
    return acc;
}

__device__ __forceinline__ unsigned char sat_u8(float v)
{
    return (unsigned char)fminf(fmaxf(rintf(v), 0.0f), 255.0f);
}

__global__ void ycc_to_bgr_up(const float* __restrict__ hr_y, const float* __restrict__ cb,
                              const float* __restrict__ cr, unsigned char* __restrict__ out,
                              int h, int w, int s)
{
    int X = blockIdx.x * blockDim.x + threadIdx.x, Y = blockIdx.y * blockDim.y + threadIdx.y;
    int W = w * s, H = h * s;
    if (X >= W || Y >= H) return;
    float fx = (X + 0.5f) / s - 0.5f, fy = (Y + 0.5f) / s - 0.5f;
    float yv = hr_y[Y * W + X] * 255.0f - @OY@;
    float cbv = bicubic(cb, h, w, fy, fx) - @OC@, crv = bicubic(cr, h, w, fy, fx) - @OC@;
    int o = 3 * (Y * W + X);
    out[o]     = sat_u8(@IBY@ * yv + @IBB@ * cbv + @IBR@ * crv);
    out[o + 1] = sat_u8(@IGY@ * yv + @IGB@ * cbv + @IGR@ * crv);
    out[o + 2] = sat_u8(@IRY@ * yv + @IRB@ * cbv + @IRR@ * crv);
}
}
"""
    )
    consts = {"OY": _OFFSET[0], "OC": _OFFSET[1]}
    for r, row in enumerate("YBR"):  # forward: rows Y, Cb, Cr; columns R, G, B
        for c, col in enumerate("RGB"):
            consts[f"T{row}{col}"] = _T[r, c]
    for r, row in enumerate("RGB"):  # inverse: rows R, G, B; columns Y, Cb, Cr
        for c, col in enumerate("YBR"):
            consts[f"I{row}{col}"] = inv[r, c]
    for name, value in consts.items():
        src = src.replace(f"@{name}@", f"{float(value)!r}f")
    return src


def create_context(engine: Any, engine_path: Path, info: dict[str, Any]) -> Any:
    """engine.create_execution_context(), which returns None rather than raising when it fails (most
    often: not enough free GPU memory for the activations of the profile's largest input)."""
    context = engine.create_execution_context()
    if context is not None:
        return context
    from srx.export.tensorrt import FALLBACK_MAX_HW, MAX_HW_LADDER

    need = getattr(engine, "device_memory_size_v2", None) or getattr(engine, "device_memory_size", None)
    largest = [int(v) for v in ((info.get("profile") or {}).get("max") or [])[2:]]
    area = largest[0] * largest[1] if len(largest) == 2 else None
    smaller = FALLBACK_MAX_HW if area is None else next((hw for hw in MAX_HW_LADDER if hw[0] * hw[1] < area),
                                                        MAX_HW_LADDER[-1])
    raise SrxError(
        f"TensorRT could not create an execution context for {Path(engine_path).name}"
        + (f" (it needs {int(need) / 2**30:.1f} GiB of GPU memory" if need else " (usually too little free GPU memory")
        + (f" for its largest input, {largest[0]}x{largest[1]} LR)" if area else ")")
        + f"; free GPU memory, or rebuild the engine for smaller frames: `srx export ... --max-shape "
        f"{smaller[0]}x{smaller[1]} --engine`"
    )


class TensorRTRunner(Runner):
    """A serialized TensorRT engine built by `srx export` (its sidecar JSON is checked first)."""

    backend = "tensorrt"

    def __init__(self, engine_path: Path) -> None:
        super().__init__()
        try:
            from srx.export.tensorrt import check_engine_sidecar
        except ImportError as exc:
            raise SrxError(f"this srx installation lacks srx.export.tensorrt ({exc}); reinstall srx") from None

        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise SrxError(f"TensorRT engine {self.engine_path} does not exist")
        self.info = check_engine_sidecar(self.engine_path)
        self.scale = int(self.info["scale"]) if self.info.get("scale") else None
        cfg = self.info.get("model_config") or {}
        self.config = self.config_from_dict(cfg)
        self.kernel_sizes = [int(k) for k in cfg["kernel_sizes"]] if cfg.get("kernel_sizes") else None
        prof = self.info.get("profile") or {}
        if prof.get("min") and prof.get("max"):
            self.input_hw_range = (tuple(prof["min"][2:]), tuple(prof["max"][2:]))
            self.max_batch = int(prof["max"][0])
        self._pool: ThreadPoolExecutor | None = None
        self._gpu: dict[str, Any] = {}
        #: why the CUDA colour kernels did not compile (then frames_on_device is False), or None
        self.kernel_error: str | None = None

    def describe(self) -> str:
        return f"tensorrt ({self.engine_path.name})"

    # -- the owning thread -------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` in the GPU thread and wait; its exception is raised here."""
        if self._pool is None:
            raise SrxError("TensorRT runner is not active")
        return self._pool.submit(fn, *args).result()

    def activate_impl(self) -> None:
        trt_modules()  # fail fast, in the caller's thread, with the install hint
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srx-tensorrt")
        try:
            self._call(self._setup)
        except BaseException:
            self._pool.shutdown(wait=True)
            self._pool = None
            raise

    def deactivate_impl(self) -> None:
        if self._pool is not None:
            try:
                self._call(self._teardown)
            finally:
                self._pool.shutdown(wait=True)
                self._pool = None

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        return self._call(self._run_y, lr_y)

    @property
    def frames_on_device(self) -> bool:
        """True when infer_frame() can keep a whole frame on the GPU (kernels compiled)."""
        return self.is_active and "k_ycc" in self._gpu

    def infer_frame(self, bgr: np.ndarray) -> np.ndarray:
        """LR BGR uint8 (h, w, 3) -> HR BGR uint8 (s*h, s*w, 3), all stages on the GPU."""
        if not self.is_active:
            self.activate()
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise SrxError(f"infer_frame expects an H x W x 3 uint8 BGR frame, got {bgr.dtype} {bgr.shape}")
        if not self.frames_on_device:
            raise SrxError("the GPU colour kernels are not available (no nvcc); use Upscaler.upscale(), "
                           "which converts colour on the CPU")
        return self._call(self._run_frame, np.ascontiguousarray(bgr))

    # -- everything below runs in the GPU thread ---------------------------------------------------
    def _setup(self) -> None:
        trt, cuda = trt_modules()
        from pycuda.compiler import SourceModule

        cuda.init()
        if cuda.Device.count() == 0:
            raise SrxError("the TensorRT backend needs a CUDA GPU, and none was found")
        g = self._gpu
        g["ctx"] = cuda.Device(0).make_context()
        try:
            g["logger"] = trt.Logger(trt.Logger.WARNING)
            g["runtime"] = trt.Runtime(g["logger"])
            engine = g["runtime"].deserialize_cuda_engine(self.engine_path.read_bytes())
            if engine is None:
                raise SrxError(
                    f"TensorRT could not deserialize {self.engine_path}; an engine only runs on the "
                    "TensorRT version and GPU it was built with: rebuild it with `srx export` here"
                )
            g["engine"] = engine
            g["context"] = create_context(engine, self.engine_path, self.info)
            prof = self.info.get("profile") or {}
            if prof.get("min") and prof.get("max"):
                log.info("TensorRT engine %s: LR input profile %s .. %s (tuned for %s)", self.engine_path.name,
                         "x".join(map(str, prof["min"][2:])), "x".join(map(str, prof["max"][2:])),
                         "x".join(map(str, (prof.get("opt") or prof["max"])[2:])))
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if len(inputs) != 1 or len(outputs) != 1:
                raise SrxError(f"{self.engine_path.name} has inputs {inputs} and outputs {outputs}; expected one each (lr_y, hr_y)")
            for n in inputs + outputs:
                if engine.get_tensor_dtype(n) != trt.float32:
                    raise SrxError(f"{self.engine_path.name}: tensor {n} is {engine.get_tensor_dtype(n)}; srx engines keep float32 I/O")
            g["in"], g["out"] = inputs[0], outputs[0]
            g["stream"] = cuda.Stream()
            g["bufs"] = {}
            try:  # pycuda compiles with nvcc: JetPack has it (off PATH), a pip-only desktop may not
                from srx.doctor import nvcc_path

                module = SourceModule(_kernel_source(), nvcc=nvcc_path() or "nvcc")
                g["module"] = module
                g["k_ycc"] = module.get_function("bgr_to_ycc")
                g["k_bgr"] = module.get_function("ycc_to_bgr_up")
            except Exception as exc:  # pycuda.driver.CompileError, or nvcc missing (OSError)
                self.kernel_error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("cannot compile the GPU colour kernels (%s); colour conversion runs on the CPU. "
                            "Install the CUDA toolkit (nvcc) for the all-GPU frame path", self.kernel_error)
        except BaseException:
            self._teardown()
            raise

    def _teardown(self) -> None:
        g = self._gpu
        ctx = g.get("ctx")
        for _host, dev, _n in g.get("bufs", {}).values():
            dev.free()
        for key in ("bufs", "k_ycc", "k_bgr", "module", "stream", "context", "engine", "runtime", "logger"):
            g.pop(key, None)
        if ctx is not None:
            ctx.pop()
            ctx.detach()
        g.clear()

    def _buf(self, key: str, nbytes: int, host: bool) -> tuple[Any, Any]:
        """(page-locked host bytes or None, device allocation) of at least nbytes; grows only."""
        _, cuda = trt_modules()
        bufs = self._gpu["bufs"]
        have = bufs.get(key)
        if have is None or have[2] < nbytes:
            if have is not None:
                have[1].free()
            bufs[key] = (cuda.pagelocked_empty(nbytes, np.uint8) if host else None, cuda.mem_alloc(nbytes), nbytes)
        return bufs[key][0], bufs[key][1]

    def _set_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        g = self._gpu
        engine, context = g["engine"], g["context"]
        if not context.set_input_shape(g["in"], shape):
            lo, _, hi = engine.get_tensor_profile_shape(g["in"], 0)
            larger = any(int(v) > int(top) for v, top in zip(shape, hi))
            raise SrxError(
                f"input shape {shape} is outside the engine's optimisation profile "
                f"({tuple(lo)} .. {tuple(hi)}); rebuild the engine with `srx export` for "
                + ("larger inputs (--max-shape)" if larger else "smaller inputs (--min-shape)")
            )
        return tuple(context.get_tensor_shape(g["out"]))

    def _execute(self, d_in: Any, d_out: Any) -> None:
        g = self._gpu
        context = g["context"]
        context.set_tensor_address(g["in"], int(d_in))
        context.set_tensor_address(g["out"], int(d_out))
        if not context.execute_async_v3(g["stream"].handle):
            raise SrxError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def _run_y(self, lr_y: np.ndarray) -> np.ndarray:
        _, cuda = trt_modules()
        g = self._gpu
        out_shape = self._set_shape(tuple(lr_y.shape))
        n_in, n_out = lr_y.nbytes, int(np.prod(out_shape)) * 4
        h_in, d_in = self._buf("y_in", n_in, host=True)
        h_out, d_out = self._buf("y_out", n_out, host=True)
        host_in = h_in[:n_in].view(np.float32).reshape(lr_y.shape)
        host_out = h_out[:n_out].view(np.float32).reshape(out_shape)
        host_in[...] = lr_y
        stream = g["stream"]
        cuda.memcpy_htod_async(d_in, host_in, stream)
        self._execute(d_in, d_out)
        cuda.memcpy_dtoh_async(host_out, d_out, stream)
        stream.synchronize()
        return host_out.copy()

    def _run_frame(self, bgr: np.ndarray) -> np.ndarray:
        _, cuda = trt_modules()
        g = self._gpu
        h, w = bgr.shape[:2]
        out_shape = self._set_shape((1, 1, h, w))
        s = out_shape[2] // h
        H, W = out_shape[2], out_shape[3]
        h_bgr, d_bgr = self._buf("bgr_in", h * w * 3, host=True)
        _, d_y = self._buf("y", h * w * 4, host=False)
        _, d_cb = self._buf("cb", h * w * 4, host=False)
        _, d_cr = self._buf("cr", h * w * 4, host=False)
        _, d_hr = self._buf("hr_y", H * W * 4, host=False)
        h_out, d_out = self._buf("bgr_out", H * W * 3, host=True)
        host_in = h_bgr[: h * w * 3].reshape(h, w, 3)
        host_out = h_out[: H * W * 3].reshape(H, W, 3)
        host_in[...] = bgr
        stream = g["stream"]
        block = (32, 8, 1)
        cuda.memcpy_htod_async(d_bgr, host_in, stream)
        g["k_ycc"](d_bgr, d_y, d_cb, d_cr, np.int32(h), np.int32(w), block=block,
                   grid=((w + 31) // 32, (h + 7) // 8), stream=stream)
        self._execute(d_y, d_hr)
        g["k_bgr"](d_hr, d_cb, d_cr, d_out, np.int32(h), np.int32(w), np.int32(s), block=block,
                   grid=((W + 31) // 32, (H + 7) // 8), stream=stream)
        cuda.memcpy_dtoh_async(host_out, d_out, stream)
        stream.synchronize()
        return host_out.copy()
