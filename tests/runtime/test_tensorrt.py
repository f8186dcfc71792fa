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
from tests.conftest import synthetic_photo


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
    if importlib.util.find_spec("srx.export.tensorrt") is None:
        return "srx.export.tensorrt is not available"
    return None


_SKIP = _gpu_stack_reason()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, onnx_graphs):
    if _SKIP:
        pytest.skip(_SKIP)
    from srx.export import tensorrt as export_trt

    build = getattr(export_trt, "engine_from_onnx", None)
    if build is None:
        pytest.skip("srx.export.tensorrt has no engine_from_onnx")
    return build(onnx_graphs(3)[0], tmp_path_factory.mktemp("engine") / "x3.engine", log=lambda msg: None)


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
            if trt_runner.frames_on_device:
                gpu = trt_runner.infer_frame(img)
                assert gpu.shape == cpu.shape and gpu.dtype == np.uint8
                assert np.abs(gpu.astype(int) - cpu).max() <= 2


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
    if compiler is None:
        pytest.skip("no C++ compiler to run the CUDA kernels' arithmetic on the CPU")
    from srx.runtime.tensorrt_runner import _kernel_source
    from srx.runtime.upscaler import _FWD, _INV

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
    cbcr = cv2.resize(np.ascontiguousarray(ycc[..., 1:]), (w * s, h * s), interpolation=cv2.INTER_CUBIC)
    cpu_bgr = cv2.add(cv2.transform(cv2.merge([hr_y, cbcr]), _INV), 0.0, dtype=cv2.CV_8U)
    assert np.abs(gpu_bgr.astype(int) - cpu_bgr).max() <= 1
