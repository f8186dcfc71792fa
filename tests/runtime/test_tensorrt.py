"""The TensorRT backend. The engine tests need a CUDA GPU with tensorrt and pycuda and skip with the
reason elsewhere; the colour kernels' arithmetic is also checked on the CPU by compiling their CUDA C
as plain C++ (each GPU thread becomes one loop iteration)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from srx.errors import SrxError
from srx.runtime.upscaler import bgr_from_planes
from tests.conftest import skip_or_fail, synthetic_photo


def _gpu_stack_reason() -> str | None:
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'srx[gpu]' on a CUDA machine)"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA GPU"
    except Exception as exc:  # no driver
        return f"CUDA is not usable here: {exc}"
    return None


_SKIP = _gpu_stack_reason()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, onnx_graphs):
    if _SKIP:
        pytest.skip(_SKIP)
    from srx.export.tensorrt import engine_from_onnx  # srx's own stage: never a reason to skip

    return engine_from_onnx(onnx_graphs(3)[0], tmp_path_factory.mktemp("engine") / "x3.engine", log=lambda msg: None)


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_matches_torch_and_the_cpu_frame_path(engine, ckpt):
    from srx.protocol import psnr, y_channel
    from srx.runtime.tensorrt_runner import TensorRTRunner
    from srx.runtime.torch_runner import TorchRunner
    from srx.runtime.upscaler import Upscaler

    small, large = synthetic_photo(37, 53, seed=1), synthetic_photo(61, 83, seed=2)
    with TorchRunner(ckpt(3)) as ref, TensorRTRunner(engine) as trt_runner:
        for img in (small, large, small):  # grow the buffers, then reuse them for a smaller frame
            x = (y_channel(img).astype(np.float32) / 255.0)[None, None]
            assert psnr(ref.infer(x), trt_runner.infer(x), data_range=1.0) >= 60.0  # FP32 engine, TF32 off
            cpu = Upscaler(ref, 3).upscale(img)
            through_upscaler = Upscaler(trt_runner, 3).upscale(img)  # GPU frame path when nvcc built the kernels
            assert np.abs(through_upscaler.astype(int) - cpu).max() <= 2


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_all_gpu_frame_path_matches_the_cpu_path(engine, ckpt):
    """infer_frame: colour kernels + engine on the GPU. Skips with the reason when pycuda could not
    compile the kernels (no nvcc), instead of passing without checking them."""
    from srx.runtime.tensorrt_runner import TensorRTRunner
    from srx.runtime.torch_runner import TorchRunner
    from srx.runtime.upscaler import Upscaler

    with TorchRunner(ckpt(3)) as ref, TensorRTRunner(engine) as trt_runner:
        if not trt_runner.frames_on_device:
            pytest.skip(f"the CUDA colour kernels did not compile here ({trt_runner.kernel_error}); "
                        f"nvcc {'is at ' + shutil.which('nvcc') if shutil.which('nvcc') else 'is not on PATH'}: "
                        "install the CUDA toolkit for the all-GPU frame path")
        for img in (synthetic_photo(37, 53, seed=1), synthetic_photo(61, 83, seed=2)):
            cpu = Upscaler(ref, 3).upscale(img)
            gpu = trt_runner.infer_frame(img)
            assert gpu.shape == cpu.shape and gpu.dtype == np.uint8
            assert np.abs(gpu.astype(int) - cpu).max() <= 2


def test_a_failed_execution_context_names_max_shape(tmp_path):
    """create_execution_context() returns None (e.g. out of GPU memory) instead of raising: that must
    be one clear error naming --max-shape and a smaller size, not an AttributeError later."""
    from srx.runtime.tensorrt_runner import create_context

    class Engine:
        device_memory_size_v2 = int(3.3 * 2**30)

        def create_execution_context(self):
            return None

    info = {"profile": {"min": [1, 1, 16, 16], "opt": [1, 1, 360, 640], "max": [1, 1, 1080, 1920]}}
    with pytest.raises(SrxError) as err:
        create_context(Engine(), tmp_path / "x3.engine", info)
    msg = str(err.value)
    assert "x3.engine" in msg and "3.3 GiB" in msg and "1080x1920 LR" in msg and "--max-shape 720x1280" in msg
    with pytest.raises(SrxError, match="too little free GPU memory.*--max-shape 720x1280"):
        create_context(type("Old", (), {"create_execution_context": lambda self: None})(), tmp_path / "e", {})

    class Fine(Engine):
        def create_execution_context(self):
            return "context"

    assert create_context(Fine(), tmp_path / "x3.engine", info) == "context"


def _nvcc_reason() -> str | None:
    from srx.doctor import nvcc_path

    if nvcc_path() is None:
        return "no nvcc on PATH, under $CUDA_ROOT, $CUDA_HOME or /usr/local/cuda (the CUDA toolkit is not installed here)"
    return None


def test_cuda_colour_kernels_compile_with_nvcc(tmp_path):
    """What pycuda's SourceModule does first (nvcc on the kernel source), without a GPU: nvcc -ptx."""
    why = _nvcc_reason()
    if why:
        pytest.skip(why)
    from srx.runtime.tensorrt_runner import _kernel_source

    src = tmp_path / "kernels.cu"
    src.write_text(_kernel_source())
    from srx.doctor import nvcc_path

    proc = subprocess.run([nvcc_path(), "-ptx", "-o", str(tmp_path / "kernels.ptx"), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ptx = (tmp_path / "kernels.ptx").read_text()
    assert ".entry bgr_to_ycc" in ptx and ".entry ycc_to_bgr_up" in ptx  # extern "C": unmangled names


def _pycuda_reason() -> str | None:
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed (pip install 'pycuda>=2025.1.2' on a CUDA machine)"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA GPU"
    except Exception as exc:
        return f"CUDA is not usable here: {exc}"
    return _nvcc_reason()


@pytest.mark.gpu
def test_cuda_colour_kernels_on_the_gpu_compute_what_the_cpu_path_does():
    """The kernels compiled by pycuda and run on the GPU (no TensorRT needed), against the CPU path."""
    why = _pycuda_reason()
    if why:
        pytest.skip(why)
    import pycuda.driver as cuda
    from pycuda.compiler import SourceModule

    from srx.runtime.tensorrt_runner import _kernel_source
    from srx.runtime.upscaler import _FWD

    h, w, s = 37, 53, 3
    bgr = synthetic_photo(h, w, seed=3)
    ycc = cv2.transform(bgr.astype(np.float32), _FWD)
    hr_y = cv2.resize(ycc[..., 0], (w * s, h * s), interpolation=cv2.INTER_LINEAR)
    ctx = cuda.Device(0).make_context()
    try:
        from srx.doctor import nvcc_path

        module = SourceModule(_kernel_source(), nvcc=nvcc_path())  # as the runner compiles them
        to_ycc, to_bgr = module.get_function("bgr_to_ycc"), module.get_function("ycc_to_bgr_up")
        y, cb, cr = (np.empty((h, w), np.float32) for _ in range(3))
        out = np.empty((h * s, w * s, 3), np.uint8)
        d_bgr, d_y, d_cb, d_cr = cuda.to_device(bgr), cuda.mem_alloc(y.nbytes), cuda.mem_alloc(y.nbytes), cuda.mem_alloc(y.nbytes)
        d_hr, d_out = cuda.to_device(np.ascontiguousarray(hr_y)), cuda.mem_alloc(out.nbytes)
        to_ycc(d_bgr, d_y, d_cb, d_cr, np.int32(h), np.int32(w), block=(32, 8, 1), grid=((w + 31) // 32, (h + 7) // 8))
        to_bgr(d_hr, d_cb, d_cr, d_out, np.int32(h), np.int32(w), np.int32(s), block=(32, 8, 1),
               grid=((w * s + 31) // 32, (h * s + 7) // 8))
        for host, dev in ((y, d_y), (cb, d_cb), (cr, d_cr), (out, d_out)):
            cuda.memcpy_dtoh(host, dev)
        for dev in (d_bgr, d_y, d_cb, d_cr, d_hr, d_out):
            dev.free()
    finally:
        ctx.pop()
        ctx.detach()
    assert np.abs(y - ycc[..., 0]).max() < 1e-5
    assert np.abs(cb - ycc[..., 1]).max() < 1e-3 and np.abs(cr - ycc[..., 2]).max() < 1e-3
    cpu = bgr_from_planes(hr_y, ycc, s)  # what Upscaler runs on the CPU for the same planes
    assert np.abs(out.astype(int) - cpu).max() <= 1


def test_missing_tensorrt_names_the_fix():
    if importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("pycuda") is not None:
        pytest.skip("tensorrt and pycuda are installed here")
    from srx.runtime.tensorrt_runner import trt_modules

    with pytest.raises(SrxError, match=r"pip install 'srx\[gpu\]'.*Jetson"):
        trt_modules()


_HARNESS = r"""
#include <cmath>
#include <algorithm>
#include <cstdio>
using std::min; using std::max;
struct Dim { int x, y, z; };
static Dim blockIdx, threadIdx, blockDim = {32, 8, 1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
%s
int main(int argc, char** argv) {
    int h = 13, w = 17, s = 3, H = h * s, W = w * s;
    static unsigned char bgr[13 * 17 * 3], out[39 * 51 * 3];
    static float hr[39 * 51], y[13 * 17], cb[13 * 17], cr[13 * 17];
    FILE* f = fopen(argv[1], "rb");
    if (fread(bgr, 1, sizeof bgr, f) != sizeof bgr || fread(hr, 4, H * W, f) != (size_t)(H * W)) return 2;
    fclose(f);
    for (int by = 0; by < (h + 7) / 8; ++by) for (int bx = 0; bx < (w + 31) / 32; ++bx)
        for (int ty = 0; ty < 8; ++ty) for (int tx = 0; tx < 32; ++tx) {
            blockIdx = {bx, by, 0}; threadIdx = {tx, ty, 0}; bgr_to_ycc(bgr, y, cb, cr, h, w);
        }
    for (int by = 0; by < (H + 7) / 8; ++by) for (int bx = 0; bx < (W + 31) / 32; ++bx)
        for (int ty = 0; ty < 8; ++ty) for (int tx = 0; tx < 32; ++tx) {
            blockIdx = {bx, by, 0}; threadIdx = {tx, ty, 0}; ycc_to_bgr_up(hr, cb, cr, out, h, w, s);
        }
    f = fopen(argv[2], "wb");
    fwrite(y, 4, h * w, f); fwrite(cb, 4, h * w, f); fwrite(cr, 4, h * w, f); fwrite(out, 1, sizeof out, f);
    fclose(f);
    return 0;
}
"""


def test_cuda_colour_kernels_compute_what_the_cpu_path_does(tmp_path):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:  # CI installs one (.ci/system-packages.sh): there this must run
        skip_or_fail("no C++ compiler to run the CUDA kernels' arithmetic on the CPU")
    from srx.runtime.tensorrt_runner import _kernel_source
    from srx.runtime.upscaler import _FWD

    body = _kernel_source().replace('extern "C" {', "", 1)
    body = body[: body.rstrip().rfind("}")]  # drop the extern block's closing brace
    (tmp_path / "k.cpp").write_text(_HARNESS % body)
    exe = tmp_path / "k"
    build = subprocess.run([compiler, "-O1", "-o", str(exe), str(tmp_path / "k.cpp")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr

    h, w, s = 13, 17, 3
    bgr = synthetic_photo(h, w, seed=3)
    ycc = cv2.transform(bgr.astype(np.float32), _FWD)
    hr_y = cv2.resize(ycc[..., 0], (w * s, h * s), interpolation=cv2.INTER_LINEAR)  # any HR luma will do
    (tmp_path / "in.bin").write_bytes(bgr.tobytes() + hr_y.astype(np.float32).tobytes())
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True)
    raw = np.fromfile(tmp_path / "out.bin", dtype=np.uint8)
    planes = raw[: 3 * h * w * 4].view(np.float32).reshape(3, h, w)
    gpu_bgr = raw[3 * h * w * 4 :].reshape(h * s, w * s, 3)

    assert np.abs(planes[0] - ycc[..., 0]).max() < 1e-5
    assert np.abs(planes[1] - ycc[..., 1]).max() < 1e-3 and np.abs(planes[2] - ycc[..., 2]).max() < 1e-3
    cpu_bgr = bgr_from_planes(hr_y, ycc, s)  # what Upscaler runs on the CPU for the same planes
    assert np.abs(gpu_bgr.astype(int) - cpu_bgr).max() <= 1
