"""Every backend runs the same model: parity with the PyTorch reference, and backend selection."""
from __future__ import annotations

import numpy as np
import pytest

from srx.checkpoint import model_from_checkpoint
from srx.errors import SrxError
from srx.export.onnx import check_srx_onnx
from srx.protocol import psnr
from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner, physical_cores
from srx.runtime.select import cache_root, cached_onnx, make_runner, model_kind
from srx.runtime.torch_runner import TorchRunner


def _lr_batch(h: int, w: int, seed: int = 0) -> np.ndarray:
    from tests.conftest import synthetic_photo
    from srx.protocol import y_channel

    return (y_channel(synthetic_photo(h, w, seed)).astype(np.float32) / 255.0)[None, None]


def _cuda_provider_reason() -> str | None:
    import onnxruntime

    from srx.runtime.select import _gpu_present

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return ("ONNX Runtime has no CUDAExecutionProvider here (a GPU host needs onnxruntime-gpu as the "
                "onnxruntime left installed: see the README's Install)")
    if not _gpu_present():
        return "no CUDA GPU device node (/dev/nvidia0) here"
    return None


@pytest.mark.gpu
@pytest.mark.parametrize("scale,h,w", [(3, 37, 53), (2, 29, 41)])
def test_onnxruntime_cuda_provider_matches_torch(ckpt, onnx_graphs, scale, h, w):
    """The CUDA execution provider runs the same graphs under the same gates as the CPU one."""
    why = _cuda_provider_reason()
    if why:
        pytest.skip(why)
    x = _lr_batch(h, w, seed=scale)
    with TorchRunner(ckpt(scale)) as ref:
        expected = ref.infer(x)
    fp32, fp16 = onnx_graphs(scale)
    for path, gate in ((fp32, 60.0), (fp16, 45.0)):
        with OnnxRuntimeRunner(path, providers=["cuda"]) as runner:
            assert runner.providers[0] == "CUDAExecutionProvider", runner.providers  # no silent CPU fallback
            got = runner.infer(x)
        db = psnr(expected, got, data_range=1.0)
        assert got.shape == expected.shape and db >= gate, f"{path.name} on CUDA: {db:.1f} dB vs torch, gate {gate} dB"


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["srcnn", "fast", "camera"])
def test_torch_on_cuda_matches_torch_on_the_cpu(name):
    """The shipped models on the GPU through PyTorch (cuDNN, TF32 off) against the CPU reference,
    at every shipped scale and an odd size: the same numbers to FP32 rounding."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA GPU here (a CPU build, or no driver)")
    from srx.checkpoint import shipped_scales

    for scale in shipped_scales(name):
        x = _lr_batch(41, 67, seed=scale)
        with TorchRunner(name, scale=scale) as cpu, TorchRunner(name, scale=scale, device="cuda") as gpu:
            expected, got = cpu.infer(x), gpu.infer(x)
        db = psnr(expected, got, data_range=1.0)
        assert got.shape == expected.shape and db >= 60.0, f"{name} x{scale} on CUDA: {db:.1f} dB vs the CPU, gate 60 dB"


@pytest.mark.gpu
def test_torch_on_cuda_runs_whole_frames_on_the_gpu_as_the_cpu_path_does():
    """On CUDA the Upscaler hands whole BGR frames to TorchRunner.infer_frame (colour, model, chroma
    and 8-bit BGR on the GPU); the result is the CPU colour path's within 2 levels, as for TensorRT."""
    import torch

    from srx.runtime.upscaler import Upscaler
    from tests.conftest import synthetic_photo

    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA GPU here (a CPU build, or no driver)")
    frame = synthetic_photo(75, 113, seed=7)
    with Upscaler(TorchRunner("camera", scale=3), 3) as cpu, Upscaler(TorchRunner("camera", scale=3, device="cuda"), 3) as gpu:
        expected = cpu.upscale(frame)
        assert gpu.runner.frames_on_device and not cpu.runner.frames_on_device
        got = gpu.upscale(frame)
    assert got.shape == expected.shape == (225, 339, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 2


def test_torch_frame_path_computes_what_the_cpu_colour_path_does(ckpt):
    """infer_frame's arithmetic (run here on the CPU, where the Upscaler itself keeps its OpenCV path)
    against the Upscaler's: measured at most 1 level apart on 2e-5 of the values, from float rounding."""
    from srx.runtime.upscaler import Upscaler
    from tests.conftest import synthetic_photo

    for scale, (h, w) in ((3, (61, 83)), (2, (40, 27))):
        frame = synthetic_photo(h, w, seed=scale)
        with Upscaler(TorchRunner(ckpt(scale)), scale) as up:
            assert not up.runner.frames_on_device  # on the CPU the OpenCV path runs
            expected = up.upscale(frame)
            got = up.runner.infer_frame(frame)
        assert got.shape == expected.shape == (h * scale, w * scale, 3) and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - expected)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    with TorchRunner(ckpt(3)) as runner, pytest.raises(SrxError, match="expects an H x W x 3 uint8 BGR frame"):
        runner.infer_frame(frame[..., 0])


@pytest.mark.parametrize("scale,h,w", [(3, 37, 53), (2, 29, 41)])
def test_onnxruntime_fp32_and_fp16_match_torch_on_odd_sizes(ckpt, onnx_graphs, scale, h, w):
    x = _lr_batch(h, w, seed=scale)
    with TorchRunner(ckpt(scale)) as ref:
        expected = ref.infer(x)
    assert expected.shape == (1, 1, h * scale, w * scale)
    fp32, fp16 = onnx_graphs(scale)
    for path, gate in ((fp32, 60.0), (fp16, 45.0)):
        with OnnxRuntimeRunner(path) as runner:
            got = runner.infer(x)
        assert got.shape == expected.shape and got.dtype == np.float32
        db = psnr(expected, got, data_range=1.0)
        assert db >= gate, f"{path.name}: {db:.1f} dB vs torch, gate {gate} dB"
    # the gate is meaningful: bicubic alone (no convs) is far below it
    from srx.models import BicubicUpsample
    import torch

    bicubic = BicubicUpsample(scale)(torch.from_numpy(x)).numpy()
    assert psnr(expected, bicubic, data_range=1.0) < 45.0


def test_batches_and_runner_contract(ckpt, onnx_graphs):
    x = np.concatenate([_lr_batch(12, 15, 1), _lr_batch(12, 15, 2)])
    with OnnxRuntimeRunner(onnx_graphs(3)[0]) as runner:
        out = runner.infer(x)
        assert out.shape == (2, 1, 36, 45)
        single = runner.infer(x[1:])
        assert np.allclose(out[1:], single, atol=1e-6)
        with pytest.raises(SrxError, match=r"expects an \(N, 1, H, W\)"):
            runner.infer(x[:, 0])
    with pytest.raises(SrxError, match="not active"):
        runner.infer(x)
    r = TorchRunner(ckpt(3))
    assert r.scale == 3 and r.kernel_sizes == [9, 1, 5] and not r.is_active


def _cores_from_cpuinfo() -> int | None:
    """The physical cores among the CPUs this process may use, counted from /proc/cpuinfo's
    (physical id, core id) pairs, else from `lscpu -p`'s (socket, core); None where neither says."""
    import os
    import re
    import shutil
    import subprocess

    allowed = os.sched_getaffinity(0)
    pairs: dict[int, tuple[str, str]] = {}
    try:
        for block in open("/proc/cpuinfo").read().split("\n\n"):
            fields = dict(re.findall(r"^(processor|physical id|core id)\s*:\s*(\S+)", block, re.M))
            if "processor" in fields and "core id" in fields:
                pairs[int(fields["processor"])] = (fields.get("physical id", "0"), fields["core id"])
    except OSError:
        pass
    if not pairs and shutil.which("lscpu"):
        for line in subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True).stdout.splitlines():
            if line and not line.startswith("#"):
                cpu, core, socket = line.split(",")
                pairs[int(cpu)] = (socket, core)
    if not allowed <= set(pairs):
        return None
    return len({pairs[cpu] for cpu in allowed})


def test_session_uses_one_thread_per_physical_core(onnx_graphs):
    counted = _cores_from_cpuinfo()
    if counted is None:
        pytest.skip("neither /proc/cpuinfo nor lscpu gives core ids here")
    assert physical_cores() == counted >= 1
    runner = OnnxRuntimeRunner(onnx_graphs(3)[0])
    assert runner.session_options().intra_op_num_threads == counted
    assert OnnxRuntimeRunner(onnx_graphs(3)[0], threads=1).session_options().intra_op_num_threads == 1


def test_physical_cores_counts_smt_siblings_once(tmp_path, monkeypatch):
    """On an SMT host (two logical CPUs a core) the model gets one thread a core, not one a logical CPU."""
    import os
    from pathlib import Path

    from srx.runtime import onnxruntime_runner

    for cpu, siblings in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "core_cpus_list").write_text(siblings + "\n")
    sys_cpu = "/sys/devices/system/cpu"
    monkeypatch.setattr(onnxruntime_runner, "Path", lambda p: Path(str(p).replace(sys_cpu, str(tmp_path))))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert physical_cores() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2})  # taskset to one core's two threads
    assert physical_cores() == 1


@pytest.mark.parametrize("model", ["checkpoint", "onnx"])
def test_threads_reach_the_onnxruntime_session_that_auto_picks(ckpt, onnx_graphs, model):
    """`--threads N` under the default `--backend auto` is the session's intra-op thread count
    (N = one more than the physical cores, so the default could not pass for it on any host)."""
    threads = physical_cores() + 1
    source = {"weights": ckpt(3)} if model == "checkpoint" else {"model_file": onnx_graphs(3)[0]}
    runner = make_runner("auto", scale=3, threads=threads, **source)
    if not isinstance(runner, OnnxRuntimeRunner):
        pytest.skip(f"auto picked {runner.describe()} here, not ONNX Runtime")
    with runner:
        assert runner.session.get_session_options().intra_op_num_threads == threads


def test_missing_provider_names_the_available_ones(onnx_graphs):
    import onnxruntime

    available = onnxruntime.get_available_providers()
    wanted = "TensorrtExecutionProvider"
    if wanted in available:
        pytest.skip("this ONNX Runtime has every provider the test asks for")
    with pytest.raises(SrxError) as err:
        OnnxRuntimeRunner(onnx_graphs(3)[0], providers=["tensorrt"])
    msg = str(err.value)
    assert wanted in msg and "CPUExecutionProvider" in msg and "srx[gpu]" in msg


def test_foreign_onnx_is_refused(tmp_path):
    from tests.conftest import foreign_onnx

    path = foreign_onnx(tmp_path / "foreign.onnx", op="Identity")
    with pytest.raises(SrxError, match="not an srx graph"):
        make_runner("auto", scale=3, model_file=path)


def test_checkpoint_is_exported_once_into_the_cache(ckpt, srx_cache_dir):
    from srx.fsutil import sha256_file

    first = cached_onnx(ckpt(3))
    assert first.parent == cache_root() / "onnx" / sha256_file(ckpt(3)) / "checkpoint"
    assert str(first).startswith(str(srx_cache_dir))
    stamp = first.stat().st_mtime_ns
    again = cached_onnx(ckpt(3))
    assert again == first and again.stat().st_mtime_ns == stamp  # reused, not re-exported
    first.write_bytes(b"damaged")  # a broken cache entry is replaced, not trusted
    fixed = cached_onnx(ckpt(3))
    check_srx_onnx(fixed)  # a whole srx graph again (it raises on anything else)


def test_threads_that_make_upscalers_at_once_share_one_export(ckpt, tmp_path, monkeypatch, recwarn):
    """A host application that makes an upscaler in each of its camera threads while the cache is
    empty: torch's exporter keeps its state in globals, so three of four threads failed ("torch
    could not export ... GLOBALS.in_onnx_export must be True") and its warnings reached the host.
    One export now, which every thread gets, also for two checkpoints at once."""
    import threading

    from srx.runtime.upscaler import create_upscaler

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))  # empty: every thread wants an export
    weights = {2: ckpt(2), 3: ckpt(3)}
    results: dict[int, object] = {}
    start = threading.Barrier(4)

    def make(i: int) -> None:
        start.wait()
        try:
            up = create_upscaler(3 if i % 2 else 2, weights=weights[3 if i % 2 else 2], threads=1)
            results[i] = up.upscale(np.full((12, 16, 3), 90, np.uint8)).shape
        except Exception as exc:  # noqa: BLE001  (reported by the test's thread)
            results[i] = exc

    threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {0: (24, 32, 3), 1: (36, 48, 3), 2: (24, 32, 3), 3: (36, 48, 3)}
    assert len(list((tmp_path / "cache" / "onnx").glob("*/*/*.onnx"))) == 2
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("where", ["under a file", "a full disk"])
def test_a_cache_that_cannot_be_written_still_runs_the_checkpoint(ckpt, tmp_path, small_disk, monkeypatch, caplog,
                                                                  where):
    """A read-only home (a locked-down box, a container) costs the cache, not the run: the graph
    is exported to a temporary folder for this process, with one warning naming SRX_CACHE_DIR. A
    full cache disk failed every upscale and stream of a checkpoint not cached yet ("cannot write
    .../onnx/<sha>/checkpoint/x.onnx: No space left on device"): the same fallback, and the empty
    cache folders the failed export made are removed."""
    from tests.conftest import fill_disk

    if where == "a full disk":
        cache = small_disk(64)
        fill_disk(cache)
        said = "no space left on device (the disk is full)); exporting it for this run only"
    else:
        (tmp_path / "afile").write_text("x")
        cache = tmp_path / "afile" / "cache"  # under a file: never writable
        said = "exporting it for this run only (set SRX_CACHE_DIR to a writable folder"
    monkeypatch.setenv("SRX_CACHE_DIR", str(cache))
    with caplog.at_level("INFO", logger="srx"):
        graph = cached_onnx(ckpt(3))
        check_srx_onnx(graph)
        with make_runner("auto", scale=3, weights=ckpt(3)) as runner:
            assert runner.infer(np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 1, 24, 24)
    assert not str(graph).startswith(str(tmp_path))
    assert said in caplog.text
    assert "ONNX once (cached in" not in caplog.text  # it was said before the export failed to keep it
    if where == "a full disk":
        assert sorted(p.name for p in cache.iterdir()) == ["filler"]  # no empty onnx/<sha>/checkpoint/ left


def test_a_shipped_model_is_cached_under_its_own_name(ckpt, tmp_path, monkeypatch, caplog):
    """So the backend line a command logs names the weights it runs (`camera-x3.onnx`), as `srx
    export` names them; any other checkpoint's graph keeps its architecture's name."""
    from srx.checkpoint import shipped_weights

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))  # empty: the export happens here, and is said

    assert cached_onnx(shipped_weights(3, "camera")).name == "camera-x3.onnx"
    with caplog.at_level("INFO", logger="srx"):
        graph = cached_onnx(ckpt(3))
    assert graph.name == f"{model_from_checkpoint(ckpt(3))[1].name}.onnx"
    assert f"exported {ckpt(3).name} to ONNX once (cached in {graph.parent})" in caplog.text  # once it is


def test_a_copy_of_a_shipped_file_is_named_as_export_names_it(tmp_path, srx_cache_dir):
    """A copy of camera-x3.pt elsewhere (a camera's folder) has the shipped file's bytes; its graph
    is named for its architecture, as `srx export -w copy.pt` names it, not after the shipped file
    the cache saw first (serve and export once named the same file two ways)."""
    import shutil

    from srx.checkpoint import shipped_weights

    copy = tmp_path / "door.pt"
    shutil.copy(shipped_weights(3, "camera"), copy)
    assert cached_onnx(shipped_weights(3, "camera")).name == "camera-x3.onnx"
    assert cached_onnx(copy).name == "lrnet-32x4-pw3-x3.onnx"


def test_cache_never_hands_out_the_fp16_graph_or_an_old_revision(ckpt, srx_cache_dir):
    import onnx

    from srx.export.onnx import GRAPH_REVISION, check_srx_onnx, fp16_onnx_from_onnx

    graph = cached_onnx(ckpt(3))
    fp16_onnx_from_onnx(graph)  # `-fp16.onnx` sorts before `.onnx`: it must still not be picked
    assert check_srx_onnx(cached_onnx(ckpt(3)))["precision"] == "fp32"
    old = onnx.load(str(graph))  # an export from an earlier srx: same checkpoint, older graph
    for prop in old.metadata_props:
        if prop.key == "srx.graph_revision":
            prop.value = str(GRAPH_REVISION - 1)
    onnx.save(old, str(graph))
    fresh = cached_onnx(ckpt(3))
    assert check_srx_onnx(fresh)["graph_revision"] == str(GRAPH_REVISION)


def test_make_runner_picks_by_file_kind(ckpt, onnx_graphs, caplog):
    import logging

    from srx.runtime.select import _ort_has_cuda, _torch_sees_gpu

    # a checkpoint on a GPU host without onnxruntime-gpu (as on the lent H200) runs on PyTorch CUDA
    torch_gpu = _torch_sees_gpu() and not _ort_has_cuda()
    with caplog.at_level(logging.INFO, logger="srx"):
        auto = make_runner("auto", scale=3, weights=ckpt(3))
    assert auto.scale == 3 and "auto" in caplog.text  # says which and why
    if torch_gpu:
        assert (auto.backend, auto.device) == ("torch", "cuda") and "no CUDA provider" in caplog.text
    else:
        assert auto.backend == "onnxruntime" and ("CPU" in caplog.text or "CUDA provider" in caplog.text)
    assert make_runner("torch", scale=3, weights=ckpt(3)).backend == "torch"
    assert make_runner("torch-cuda", scale=3, weights=ckpt(3)).device == "cuda"  # fails at activate without a GPU
    assert make_runner("onnxruntime", scale=None, model_file=onnx_graphs(2)[0]).scale == 2
    assert make_runner("auto", scale=3, model_file=ckpt(3)).backend == ("torch" if torch_gpu else "onnxruntime")


def test_auto_takes_torch_on_the_gpu_when_onnxruntime_has_no_cuda(ckpt, onnx_graphs, monkeypatch, caplog):
    """The choice alone, on any machine: a GPU that PyTorch sees and an ONNX Runtime without its CUDA
    provider (the image of the lent H200) make `auto` run a checkpoint on PyTorch CUDA, which was 5.8x
    ONNX Runtime's 16 CPU threads there; an ONNX graph still goes to ONNX Runtime."""
    import logging

    import torch

    import srx.runtime.select as select

    monkeypatch.setattr(select, "_gpu_present", lambda: True)
    monkeypatch.setattr(select, "_ort_has_cuda", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.INFO, logger="srx"):
        runner = make_runner("auto", scale=3, weights=ckpt(3))
    assert (runner.backend, runner.device) == ("torch", "cuda") and "no CUDA provider" in caplog.text
    assert make_runner("auto", scale=3, model_file=onnx_graphs(3)[0]).backend == "onnxruntime"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU build of torch on a GPU box
    assert make_runner("auto", scale=3, weights=ckpt(3)).backend == "onnxruntime"


@pytest.mark.gpu
def test_auto_on_a_gpu_runs_what_the_cpu_runs(ckpt):
    """Whatever `auto` picks on a GPU host computes what the CPU reference does."""
    from srx.runtime.select import _torch_sees_gpu

    if not _torch_sees_gpu():
        pytest.skip("PyTorch sees no CUDA GPU here (a CPU build, or no driver)")
    x = _lr_batch(33, 47, seed=5)
    with make_runner("auto", scale=3, weights=ckpt(3)) as auto, TorchRunner(ckpt(3)) as ref:
        db = psnr(ref.infer(x), auto.infer(x), data_range=1.0)
    assert db >= 60.0, f"{auto.describe()}: {db:.1f} dB vs the CPU"


@pytest.mark.parametrize("case,match", [
    ("onnx-on-torch", "needs an srx checkpoint"),
    ("onnx-on-torch-cuda", "torch-cuda needs an srx checkpoint"),
    ("pt-on-tensorrt", "needs a TensorRT engine"),
    ("engine-on-onnxruntime", "is a TensorRT engine"),
    ("png-model", "unknown kind"),
    ("scale-mismatch-onnx", "holds a x2 model but x3"),
    ("scale-mismatch-pt", "holds a x2 model but x3"),
    ("not-a-checkpoint", "not a readable srx checkpoint"),
    ("unknown-backend", "unknown backend"),
    ("missing", "does not exist"),
])
def test_wrong_model_files_get_a_clear_error(tmp_path, ckpt, onnx_graphs, case, match):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    png = tmp_path / "m.png"
    png.write_bytes(b"x")
    calls = {
        "onnx-on-torch": lambda: make_runner("torch", scale=3, model_file=onnx_graphs(3)[0]),
        "onnx-on-torch-cuda": lambda: make_runner("torch-cuda", scale=3, model_file=onnx_graphs(3)[0]),
        "pt-on-tensorrt": lambda: make_runner("tensorrt", scale=3, weights=ckpt(3)),
        "engine-on-onnxruntime": lambda: make_runner("onnxruntime", scale=3, model_file=engine),
        "png-model": lambda: make_runner("auto", scale=3, model_file=png),
        "scale-mismatch-onnx": lambda: make_runner("auto", scale=3, model_file=onnx_graphs(2)[0]),
        "scale-mismatch-pt": lambda: make_runner("torch", scale=3, weights=ckpt(2)),
        "not-a-checkpoint": lambda: make_runner("auto", scale=3, weights=junk),
        "unknown-backend": lambda: make_runner("cuda-magic", scale=3, weights=ckpt(3)),
        "missing": lambda: make_runner("auto", scale=3, model_file=tmp_path / "nope.onnx"),
    }
    with pytest.raises(SrxError, match=match):
        calls[case]()


def test_model_kind_refuses_folders(tmp_path):
    with pytest.raises(SrxError, match="is a folder"):
        model_kind(tmp_path)


def test_a_static_graph_takes_its_own_size_whole_and_says_so_for_others(ckpt, tmp_path):
    """A --static graph (or an engine built from one) runs frames of its size only: another size gets
    one message saying so, not a tile-by-tile failure with tiles it could never take."""
    from srx.export.onnx import onnx_from_checkpoint
    from srx.runtime.upscaler import Upscaler

    graph = onnx_from_checkpoint(ckpt(3), tmp_path, dynamic=False, height=20, width=28)
    runner = OnnxRuntimeRunner(graph, threads=1)
    assert runner.input_hw_range == ((20, 28), (20, 28))
    rng = np.random.default_rng(0)
    with Upscaler(runner, 3, tile=16) as up:  # below the graph's size: it still runs whole
        assert up.upscale(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).shape == (60, 84, 3)
        for h, w in ((40, 56), (10, 14)):
            with pytest.raises(SrxError, match=f"frame is {w}x{h} but the model takes 28x20 LR frames only.*--height {h} --width {w}"):
                up.upscale(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_infer_takes_the_model_contract_only(ckpt, onnx_graphs, backend):
    """Runner.infer takes what the model contract says, (N, 1, H, W) Y/255 in floats, on every
    backend (checked in the base class): uint8 would run 0..255 values through a 0..1 model (it
    gave outputs up to 144), and a list, a wrong rank or an empty plane reached the backend's own
    exceptions. float64 is converted, as before."""
    x = _lr_batch(12, 15)
    runner = TorchRunner(ckpt(3)) if backend == "torch" else OnnxRuntimeRunner(onnx_graphs(3)[0])
    expected = r"expects an \(N, 1, H, W\) float32 Y batch in model units \(Y/255\)"
    with runner:
        want = runner.infer(x)
        assert np.array_equal(runner.infer(x.astype(np.float64)), want)
        assert np.array_equal(runner.infer(x.astype(">f4")), want)
        for bad, found in [((x * 255).astype(np.uint8), r", got uint8 values \(8-bit Y: divide it by 255 first\)"),
                           (x.astype(np.float16), ", got float16 values"),
                           (x.astype(np.int32), ", got int32 values"),
                           (x.tolist(), ", got a list, not a numpy array"),
                           (x[0], r", got shape \(1, 12, 15\)"),
                           (np.zeros((1, 1, 0, 5), np.float32), r" with N, H and W at least 1, got shape \(1, 1, 0,"),
                           (np.zeros((0, 1, 4, 4), np.float32), r" with N, H and W at least 1, got shape \(0, 1, 4,")]:
            with pytest.raises(SrxError, match=expected + found):
                runner.infer(bad)


def test_threads_that_share_a_runner_activate_it_once(ckpt):
    """An Upscaler activates its runner on first use, so threads sharing one reach activate() at
    once: the runner is activated once, not once per thread (a second ONNX Runtime session or
    TensorRT context, a model moved to the GPU twice)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    class Slow(TorchRunner):  # a real runner whose activation takes long enough for the threads to meet there
        activations = 0

        def activate_impl(self) -> None:
            Slow.activations += 1
            time.sleep(0.2)
            super().activate_impl()

    runner = Slow(ckpt(3))
    start = threading.Barrier(6)

    def use(_: int) -> tuple[int, ...]:
        start.wait()
        return runner.activate().infer(_lr_batch(8, 8)).shape

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(use, range(6))) == [(1, 1, 24, 24)] * 6
    assert Slow.activations == 1 and runner.is_active
    runner.deactivate()
