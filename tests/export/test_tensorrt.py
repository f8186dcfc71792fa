"""TensorRT export: what can be checked without a GPU (profiles, sidecars, status), and the real
build where tensorrt and a GPU exist (marked, skipped with the reason elsewhere)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from srx.errors import SrxError
from srx.export.tensorrt import (
    ACTIVATION_SHARE,
    FALLBACK_MAX_HW,
    MAX_HW_LADDER,
    TENSORRT_API,
    activation_bytes,
    check_engine_sidecar,
    check_profile,
    default_max_hw,
    engine_from_onnx,
    fmt_hw,
    sidecar_path,
    tensorrt_status,
)
from srx.fsutil import sha256_file

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _fake_engine(tmp_path: Path, **overrides) -> Path:
    """A plan file and the sidecar engine_from_onnx would write for it on 'TensorRT 10.9 / Orin'."""
    engine = tmp_path / "srcnn-9-1-5-x3-fp16.engine"
    engine.write_bytes(b"serialized plan bytes")
    side = {
        "format": "srx-engine", "srx_version": "0.1.0", "tensorrt_version": "10.9.0.34",
        "gpu_name": "Orin", "compute_capability": "8.7", "precision": "fp16", "scale": 3,
        "model_config": {"arch": "srcnn", "scale": 3, "kernel_sizes": [9, 1, 5], "widths": [64, 32], "residual": True},
        "profile": {"min": [1, 1, 16, 16], "opt": [1, 1, 360, 640], "max": [1, 1, 1080, 1920]},
        "weights": "srx/weights/srcnn-915-x3.pt", "engine_sha256": sha256_file(engine),
    }
    side.update(overrides)
    sidecar_path(engine).write_text(json.dumps(side))
    return engine


def test_profile_validation():
    check_profile((16, 16), (360, 640), (1080, 1920))
    check_profile((8, 8), (8, 8), (8, 8))
    with pytest.raises(SrxError, match="heights must satisfy min <= opt <= max.*500 / 360 / 1080"):
        check_profile((500, 16), (360, 640), (1080, 1920))
    with pytest.raises(SrxError, match="widths .*16 / 640 / 600"):
        check_profile((16, 16), (360, 640), (1080, 600))
    with pytest.raises(SrxError, match="positive"):
        check_profile((0, 16), (360, 640), (1080, 1920))


def test_engine_build_validates_before_touching_tensorrt(tiny_checkpoint, tmp_path):
    from srx.export.onnx import onnx_from_checkpoint

    graph = onnx_from_checkpoint(tiny_checkpoint(3), tmp_path)
    with pytest.raises(SrxError, match="min <= opt <= max"):
        engine_from_onnx(graph, min_hw=(720, 1280), opt_hw=(360, 640), max_hw=(1080, 1920))
    with pytest.raises(SrxError, match="workspace"):
        engine_from_onnx(graph, workspace_mib=0)
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not onnx")
    with pytest.raises(SrxError, match="ONNX"):
        engine_from_onnx(foreign)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".onnx", ".onnx", ".pt"]


def test_sidecar_matches_running_machine(tmp_path):
    engine = _fake_engine(tmp_path)
    info = check_engine_sidecar(engine, trt_version="10.9.0.34", gpu_name="Orin", compute_capability="8.7")
    assert info["scale"] == 3 and info["precision"] == "fp16"


@pytest.mark.parametrize(
    "running, what",
    [
        ({"trt_version": "10.13.2.6"}, "TensorRT 10.9.0.34 but this machine has TensorRT 10.13.2.6"),
        ({"gpu_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}, "GPU Orin"),
        ({"compute_capability": "8.9"}, "compute capability 8.7 but this machine has compute capability 8.9"),
    ],
)
def test_sidecar_mismatch_says_rebuild(tmp_path, running, what):
    engine = _fake_engine(tmp_path)
    values = {"trt_version": "10.9.0.34", "gpu_name": "Orin", "compute_capability": "8.7", **running}
    with pytest.raises(SrxError) as err:
        check_engine_sidecar(engine, **values)
    msg = str(err.value)
    assert what in msg and "rebuild it here" in msg
    assert "srx export --scale 3 --weights srx/weights/srcnn-915-x3.pt" in msg
    assert "--fp16" in msg and "--max-shape 1080x1920" in msg and msg.rstrip("`").endswith("--engine")


def test_sidecar_without_the_gpu_it_was_built_for_says_rebuild(tmp_path):
    engine = _fake_engine(tmp_path)
    side = sidecar_path(engine)
    info = json.loads(side.read_text())
    del info["gpu_name"]
    side.write_text(json.dumps(info))
    with pytest.raises(SrxError, match="does not record the GPU .*NVIDIA H200; rebuild it here"):
        check_engine_sidecar(engine, trt_version="10.9.0.34", gpu_name="NVIDIA H200", compute_capability="8.7")


def test_missing_or_bad_sidecar(tmp_path):
    engine = _fake_engine(tmp_path)
    sidecar_path(engine).unlink()
    with pytest.raises(SrxError, match="no sidecar .*rebuild"):
        check_engine_sidecar(engine, trt_version="10.9.0.34")
    sidecar_path(engine).write_text("{ not json")
    with pytest.raises(SrxError, match="unreadable.*rebuild"):
        check_engine_sidecar(engine, trt_version="10.9.0.34")
    with pytest.raises(SrxError, match="does not exist"):
        check_engine_sidecar(tmp_path / "none.engine")


def test_replaced_plan_is_detected(tmp_path):
    engine = _fake_engine(tmp_path)
    engine.write_bytes(b"another plan")
    with pytest.raises(SrxError, match="not the engine its sidecar describes"):
        check_engine_sidecar(engine, trt_version="10.9.0.34", gpu_name="Orin", compute_capability="8.7")


def test_status_explains_itself():
    ok, why = tensorrt_status()
    assert isinstance(ok, bool) and why
    if not HAVE_TRT:
        assert not ok and "tensorrt is not importable" in why and "pip install" in why


@pytest.mark.tensorrt
def test_tensorrt_api_names_exist():
    if not HAVE_TRT:
        pytest.skip("tensorrt is not importable here (install 'srx[gpu]' on a GPU machine)")
    import tensorrt as trt

    missing = []
    for dotted in TENSORRT_API:
        obj = trt
        for part in dotted.split("."):
            if not hasattr(obj, part):
                missing.append(dotted)
                break
            obj = getattr(obj, part)
    assert missing == [], f"TensorRT {trt.__version__} lacks {missing}"


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_engine_build_and_run(tiny_checkpoint, tmp_path, fp16):
    ok, why = tensorrt_status()
    if not ok:
        pytest.skip(why)
    import numpy as np
    import torch

    from srx.checkpoint import model_from_checkpoint
    from srx.export.onnx import fp16_onnx_from_onnx, onnx_from_checkpoint
    from srx.runtime.tensorrt_runner import TensorRTRunner

    weights = tiny_checkpoint(3)
    graph = onnx_from_checkpoint(weights, tmp_path)
    if fp16:
        graph = fp16_onnx_from_onnx(graph)
    cache = tmp_path / "timing.cache"
    lines: list[str] = []
    engine = engine_from_onnx(graph, min_hw=(8, 8), opt_hw=(40, 56), max_hw=(120, 120), timing_cache=cache,
                              log=lines.append)
    assert engine.stat().st_size > 0 and cache.stat().st_size > 0
    assert any("parsing" in ln for ln in lines) and any("written in" in ln for ln in lines)
    info = check_engine_sidecar(engine)
    assert info["precision"] == ("fp16" if fp16 else "fp32") and info["onnx_sha256"] == sha256_file(graph)
    lr = (np.random.default_rng(0).uniform(16, 235, (1, 1, 37, 53)) / 255).astype(np.float32)
    model, _, _ = model_from_checkpoint(weights)
    with torch.no_grad():
        ref = model(torch.from_numpy(lr)).numpy()
    with TensorRTRunner(engine) as runner:
        out = runner.infer(lr)
    mse = float(np.mean((out.astype(np.float64) - ref) ** 2)) * 255.0**2
    assert out.shape == ref.shape and np.isfinite(out).all()
    assert 10 * np.log10(255.0**2 / max(mse, 1e-30)) >= (45.0 if fp16 else 60.0)
    # A second build reuses the timing cache.
    engine_from_onnx(graph, tmp_path / "again.engine", min_hw=(8, 8), opt_hw=(40, 56), max_hw=(120, 120),
                     timing_cache=cache, log=lines.append)
    assert any("timing cache" in ln for ln in lines)


SRCNN_915 = {"arch": "srcnn", "scale": 3, "kernel_sizes": [9, 1, 5], "widths": [64, 32], "residual": True}


def test_activation_size_is_the_reviewed_number():
    """The review's figure: one FP16 activation of 9-1-5 x3 at 1080x1920 LR (64 maps x 9 phases) is
    ~2.2 GiB; the estimate holds the two widest consecutive maps (64 + 32) at once."""
    one_map = 64 * 9 * 2 * 1080 * 1920
    assert one_map / 2**30 == pytest.approx(2.22, abs=0.01)
    assert activation_bytes(SRCNN_915, 3, "fp16", (1080, 1920)) == one_map * 96 // 64
    assert activation_bytes(SRCNN_915, 3, "fp32", (1080, 1920)) == 2 * activation_bytes(SRCNN_915, 3, "fp16", (1080, 1920))
    assert activation_bytes(SRCNN_915, 2, "fp16", (100, 100)) == 96 * 4 * 2 * 100 * 100


LRNET_PW3 = {"arch": "lrnet", "scale": 3, "kernel_sizes": [5, 1, 3, 1, 3, 1, 3], "widths": [32] * 6, "residual": True}


def test_lrnet_activations_are_on_the_lr_grid():
    """`fast` and `camera` keep 32 values per LR pixel in a hidden map (the exported x3 graph's
    widest node, a ReLU, reads 32 and writes 32), plus the skip's and the output's 9 phases: about a
    seventh of 9-1-5's need, so an 8 GB Orin gets the largest rung for them."""
    assert activation_bytes(LRNET_PW3, 3, "fp16", (1080, 1920)) == (32 + 32 + 2 * 9) * 2 * 1080 * 1920
    assert activation_bytes(LRNET_PW3, 4, "fp32", (10, 10)) == (64 + 32) * 4 * 100
    assert default_max_hw(LRNET_PW3, 3, "fp16", 8 * 2**30)[0] == (1080, 1920)


@pytest.mark.parametrize("gib,expected", [
    (4, (540, 960)),      # Jetson Nano 4 GB (shared with the CPU)
    (8, (720, 1280)),     # Orin Nano 8 GB
    (16, (1080, 1920)),   # a desktop GPU: the largest rung
    (0.5, (240, 426)),    # tiny: the smallest rung, whatever it needs
])
def test_default_max_shape_follows_the_gpu_memory(gib, expected):
    hw, why = default_max_hw(SRCNN_915, 3, "fp16", int(gib * 2**30))
    assert hw == expected and fmt_hw(hw) in why and "GiB" in why
    if expected != MAX_HW_LADDER[-1]:
        assert activation_bytes(SRCNN_915, 3, "fp16", hw) <= ACTIVATION_SHARE * gib * 2**30


def test_default_max_shape_without_knowing_the_memory():
    hw, why = default_max_hw(SRCNN_915, 3, "fp16", None)
    assert hw == FALLBACK_MAX_HW == (720, 1280) and "unknown" in why


def test_rebuild_hint_leaves_max_shape_to_the_target_unless_given(tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from srx.cli import app

    if tensorrt_status()[0]:
        pytest.skip("TensorRT and a GPU are here: an engine is built instead of the hint")
    res = CliRunner().invoke(app, ["export", "-w", str(tiny_checkpoint(3)), "--out", str(tmp_path / "e"), "--no-fp16"])
    assert res.exit_code == 0, res.output
    hint = next(ln for ln in res.output.splitlines() if ln.startswith("no TensorRT engine built"))
    assert "--max-shape" not in hint and hint.endswith("--engine")


@pytest.mark.parametrize("options", [
    [],
    ["--name", "lobby", "--opset", "18"],
    ["--static", "--height", "20", "--width", "28", "--layout", "plain"],
])
def test_rebuild_command_writes_the_files_it_rebuilds(tiny_checkpoint, tmp_path, options):
    """The command a stale engine's error prints exports the very graph the engine came from: the same
    file names and graph (the sidecar records the export options), so rebuilding replaces that engine."""
    import shlex

    from typer.testing import CliRunner

    from srx.cli import app
    from srx.export.onnx import check_srx_onnx, read_srx_metadata
    from srx.export.tensorrt import export_command, rebuild_fields

    weights = tiny_checkpoint(3)
    first = tmp_path / "first"
    res = CliRunner().invoke(app, ["export", "-w", str(weights), "--out", str(first), "--no-engine", *options])
    assert res.exit_code == 0, res.output
    graph = next(first.glob("*-fp16.onnx"))
    info = {"scale": 3, "precision": "fp16", "static": "--static" in options,
            "profile": {"min": [1, 1, 16, 16], "opt": [1, 1, 180, 320], "max": [1, 1, 540, 960]},
            **rebuild_fields(check_srx_onnx(graph), weights)}
    again = tmp_path / "again"
    cmd = shlex.split(export_command(info, again / graph.with_suffix(".engine").name))
    assert cmd[:2] == ["srx", "export"] and cmd[-1] == "--engine"
    assert ("--max-shape" in cmd) != ("--static" in options)  # a static graph's engine takes the graph's shape
    res = CliRunner().invoke(app, [*cmd[1:-1], "--no-engine"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in first.iterdir())
    for path in first.iterdir():
        a, b = read_srx_metadata(path), read_srx_metadata(again / path.name)
        assert {k: v for k, v in a.items() if k != "version"} == {k: v for k, v in b.items() if k != "version"}


def test_rebuild_names_a_shipped_model_by_its_name(tmp_path):
    """A shipped model's packaged file lives in the building machine's venv: the sidecar names it."""
    from srx.checkpoint import resolve_weights
    from srx.export.onnx import check_srx_onnx, onnx_from_checkpoint
    from srx.export.tensorrt import rebuild_fields

    path = resolve_weights("camera", 3)
    graph = onnx_from_checkpoint(path, tmp_path, name="camera")
    fields = rebuild_fields(check_srx_onnx(graph), path)
    assert fields == {"weights": "camera", "export_options": ["--name", "camera"]}
    copy = tmp_path / "mine.pt"
    copy.write_bytes(path.read_bytes())
    assert rebuild_fields(check_srx_onnx(graph), copy)["weights"] == str(copy)


def test_a_max_shape_alone_tunes_the_profile_below_it(tiny_checkpoint, tmp_path):
    """`--max-shape 240x426` (what the out-of-memory error suggests) lowers the default opt and min
    shapes to fit, as srx does for a max it picks; an --opt-shape given above it is still refused."""
    from typer.testing import CliRunner

    from srx.cli import app
    from srx.cli.export import profile_shapes

    assert profile_shapes(None, None, "240x426") == ((16, 16), (240, 426), (240, 426))
    assert profile_shapes(None, None, "8x12") == ((8, 12), (8, 12), (8, 12))
    assert profile_shapes(None, None, None) == ((16, 16), (360, 640), None)
    assert profile_shapes("20x20", "100x100", "720x1280") == ((20, 20), (100, 100), (720, 1280))
    runner = CliRunner()
    res = runner.invoke(app, ["export", "-w", str(tiny_checkpoint(3)), "--out", str(tmp_path / "e"), "--max-shape", "240x426"])
    assert res.exit_code == 0, res.output
    if not tensorrt_status()[0]:
        hint = next(ln for ln in res.output.splitlines() if ln.startswith("no TensorRT engine built"))
        assert "--max-shape 240x426" in hint and "--opt-shape" not in hint
    res = runner.invoke(app, ["export", "-w", str(tiny_checkpoint(3)), "--out", str(tmp_path / "f"),
                              "--max-shape", "240x426", "--opt-shape", "360x640"])
    assert res.exit_code == 1 and "min <= opt <= max" in res.output


def test_nvcc_is_found_off_path_as_pycuda_is_given_it(tmp_path, monkeypatch):
    """JetPack and NVIDIA's packages put nvcc under the toolkit folder, not on PATH; pycuda alone would
    look on PATH, so the runner hands it the path srx doctor reports."""
    from srx.doctor import nvcc_path

    toolkit = tmp_path / "cuda"
    (toolkit / "bin").mkdir(parents=True)
    nvcc = toolkit / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\nexit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setenv("CUDA_ROOT", str(toolkit))
    assert nvcc_path() is None or not nvcc_path().startswith(str(toolkit))  # not executable yet
    nvcc.chmod(0o755)
    assert nvcc_path() == str(nvcc)
    monkeypatch.setenv("PATH", str(toolkit / "bin"))
    assert nvcc_path() == str(nvcc)
