"""`srx export --triton-repo`: a model repository for a stock Triton server, its config.pbtxt parsed
into Triton's own ModelConfig protobuf (shipped with tritonclient)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srx.cli import app
from srx.errors import SrxError
from srx.export.triton_repo import triton_model_name, triton_repo_from_model
from tests.conftest import skip_or_fail


def _model_config_pb2():
    """Triton's ModelConfig protobuf module; a skip with the reason where tritonclient is absent, a
    failure on CI (SRX_REQUIRE_ALL), which installs the serve extra."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        skip_or_fail("tritonclient is not installed (pip install 'srx[serve]'; CI has it)")
    return model_config_pb2


def parse_config(path: Path):
    model_config_pb2 = _model_config_pb2()
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_names() -> None:
    assert triton_model_name("srcnn-9-1-5-x3", 3) == "srx_srcnn-9-1-5_x3"
    assert triton_model_name("srcnn-9-1-5-x2", 2) == "srx_srcnn-9-1-5_x2"  # FP16 too: srx_precision says which


def test_onnx_repository(tmp_path: Path, tiny_checkpoint) -> None:
    pb = _model_config_pb2()

    repo, weights = tmp_path / "repo", tiny_checkpoint(3)
    res = CliRunner().invoke(app, ["export", "-w", str(weights), "--scale", "3", "--out", str(tmp_path / "x"),
                                   "--no-fp16", "--no-engine", "--triton-repo", str(repo)])
    assert res.exit_code == 0, res.output
    models = sorted(p.name for p in repo.iterdir())
    assert len(models) == 1 and models[0].startswith("srx_") and models[0].endswith("_x3")
    folder = repo / models[0]
    onnx = next((tmp_path / "x").glob("*.onnx"))
    assert (folder / "1" / "model.onnx").read_bytes() == onnx.read_bytes()
    cfg = parse_config(folder / "config.pbtxt")
    assert cfg.name == folder.name and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 8
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [("lr_y", pb.TYPE_FP32, [1, -1, -1])]
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.output] == [("hr_y", pb.TYPE_FP32, [1, -1, -1])]
    assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 2000
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["srx_scale"] == "3" and params["srx_precision"] == "fp32"
    assert json.loads(params["srx_model_config"])["kernel_sizes"] == [5, 1, 3]
    # the weights it came from: a pool of servers is one model only where these agree
    assert params["srx_source_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert params["srx_source_name"] == weights.name
    # exporting again replaces the model folder whole
    again = triton_repo_from_model(onnx, repo, max_batch=4)
    assert again == folder and parse_config(folder / "config.pbtxt").max_batch_size == 4
    assert sorted(p.name for p in repo.iterdir()) == models


def test_a_repository_on_a_full_disk_is_one_error_line_and_keeps_the_model_there(tmp_path: Path, small_disk,
                                                                                 tiny_checkpoint) -> None:
    """Copying the graph into a repository on a full disk was a traceback (OSError from shutil); now
    one line naming the file and the full disk, the model folder that was there kept, no partial left."""
    from tests.conftest import assert_one_error_line, fill_disk

    repo = small_disk(256)
    args = ["export", "-w", str(tiny_checkpoint(3)), "--scale", "3", "--out", str(tmp_path / "x"), "--no-fp16",
            "--no-engine", "--triton-repo", str(repo)]
    assert CliRunner().invoke(app, args).exit_code == 0
    (folder,) = [p for p in repo.iterdir()]
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    fill_disk(repo)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"cannot write {folder / '1' / 'model.onnx'}: no space left on device (the disk is full)")
    assert sorted(p.name for p in repo.iterdir()) == sorted([folder.name, "filler"])
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_link_planted_in_the_repository_is_not_written_through(tmp_path: Path, tiny_checkpoint) -> None:
    """Links at the names the model folder's partial and old copies once had (fixed names): the
    model was copied into whatever folder they pointed at. srx makes its own folders now."""
    from srx.export.onnx import onnx_from_checkpoint

    onnx = onnx_from_checkpoint(tiny_checkpoint(3), tmp_path / "x", scale=3)
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    name = triton_repo_from_model(onnx, repo).name
    for fixed in (f".{name}.partial", f".{name}.old"):
        (repo / fixed).symlink_to(elsewhere, target_is_directory=True)
    again = triton_repo_from_model(onnx, repo)
    assert list(elsewhere.iterdir()) == []
    assert (again / "1" / "model.onnx").read_bytes() == onnx.read_bytes()
    assert sorted(p.name for p in repo.iterdir()) == sorted([name, f".{name}.partial", f".{name}.old"])


def test_engine_repository_uses_the_profile(tmp_path: Path) -> None:
    """An engine goes in as model.plan on the tensorrt_plan platform with the profile's limits (the
    plan's bytes are not read here; the sidecar describes them, as `srx export` writes it)."""
    from srx.export.tensorrt import SIDECAR_FORMAT, gpu_identity, sidecar_path, trt_module
    from srx.errors import SrxError

    def tensorrt_version_here() -> str | None:
        try:
            return str(trt_module().__version__)
        except SrxError:
            return None

    from srx.fsutil import sha256_file

    engine = tmp_path / "srcnn-9-1-5-x2-fp16.engine"
    engine.write_bytes(b"not a real plan")
    # built "here", as `srx export` records it: on a GPU host the repository checks the engine's GPU
    # against the one it runs on (a sidecar without them failed there, first seen on an H200)
    gpu = gpu_identity()
    here = {"gpu_name": gpu[0], "compute_capability": gpu[1]} if gpu else {}
    trt_here = tensorrt_version_here() or "10.9.0.34"  # compared with the running one where there is one
    sidecar_path(engine).write_text(json.dumps({
        "format": SIDECAR_FORMAT, "srx_version": "0", "precision": "fp16", "scale": 2, "name": "srcnn-9-1-5-x2",
        "tensorrt_version": trt_here,
        "model_config": {"scale": 2, "kernel_sizes": [9, 1, 5], "widths": [64, 32]}, "engine_sha256": sha256_file(engine),
        "source_sha256": "ab" * 32, "source_name": "my-camera.pt",
        "profile": {"min": [1, 1, 16, 16], "opt": [1, 1, 360, 640], "max": [1, 1, 1080, 1920]}, **here}))
    folder = triton_repo_from_model(engine, tmp_path / "repo")
    assert folder.name == "srx_srcnn-9-1-5_x2" and (folder / "1" / "model.plan").read_bytes() == engine.read_bytes()
    cfg = parse_config(folder / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 1 and not cfg.HasField("dynamic_batching")
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert (params["srx_min_hw"], params["srx_max_hw"], params["srx_precision"]) == ("16x16", "1080x1920", "fp16")
    # the TensorRT a Triton server must have to load the plan (each tritonserver release ships one)
    assert params["srx_tensorrt_version"] == trt_here
    # the weights the engine was built from, as its sidecar says them
    assert (params["srx_source_sha256"], params["srx_source_name"]) == ("ab" * 32, "my-camera.pt")


def test_bad_repository_targets(tmp_path: Path, tiny_checkpoint) -> None:
    from tests.conftest import foreign_onnx

    with pytest.raises(SrxError, match="not an srx graph"):
        triton_repo_from_model(foreign_onnx(tmp_path / "other.onnx"), tmp_path / "repo")
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(app, ["export", "-w", str(tiny_checkpoint(3)), "--scale", "3", "--out", str(tmp_path / "x"),
                                   "--no-fp16", "--no-engine", "--triton-repo", str(tmp_path / "afile")])
    assert res.exit_code == 1 and "is a file; expected a folder" in res.output and "Traceback" not in res.output
