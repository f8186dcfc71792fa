"""ONNX export: round trip, graph hygiene, metadata, FP16 graph, dynamic/static shapes, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from srx.checkpoint import model_from_checkpoint
from srx.errors import SrxError
from srx.export.onnx import check_srx_onnx, fp16_onnx_from_onnx, onnx_from_checkpoint, read_srx_metadata
from srx.fsutil import sha256_file

REPO = Path(__file__).resolve().parents[2]


def _ort(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _torch_hr(weights: Path, lr: np.ndarray) -> np.ndarray:
    model, _, _ = model_from_checkpoint(weights)
    with torch.no_grad():
        return model(torch.from_numpy(lr)).numpy()


def _lr(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(16, 235, shape) / 255.0).astype(np.float32)


def _psnr_8bit(ref: np.ndarray, out: np.ndarray) -> float:
    mse = float(np.mean((ref.astype(np.float64) * 255 - out.astype(np.float64) * 255) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_round_trip_matches_torch(tiny_checkpoint, tmp_path, scale):
    weights = tiny_checkpoint(scale)
    path = onnx_from_checkpoint(weights, tmp_path / "out", scale=scale)
    assert path == tmp_path / "out" / f"srcnn-5-1-3-x{scale}.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    # Nothing but the contract's arithmetic (edge Pad, Conv, DepthToSpace, Relu, Add, ReduceSum)
    # and the shape arithmetic that stitches the edge bands onto the interior (SRCNNBandedExport):
    # one DepthToSpace for the interior and one per band (bands run as two batches of two).
    ops = [n.op_type for n in model.graph.node]
    assert set(ops) == {"Pad", "Conv", "DepthToSpace", "Relu", "Add", "ReduceSum", "Slice", "Concat", "Shape", "Gather",
                        "Unsqueeze", "Min", "Max", "Sub"}
    assert ops.count("DepthToSpace") == 5 and ops.count("Concat") == 4  # two band batches, two stitches
    assert all(a.s == b"edge" for n in model.graph.node if n.op_type == "Pad" for a in n.attribute if a.name == "mode")
    lr = _lr((1, 1, 23, 31), seed=scale)
    out = _ort(path).run(["hr_y"], {"lr_y": lr})[0]
    assert out.shape == (1, 1, 23 * scale, 31 * scale) and out.dtype == np.float32
    assert _psnr_8bit(_torch_hr(weights, lr), out) >= 60.0


def test_metadata_and_io(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    path = onnx_from_checkpoint(weights, tmp_path)
    meta = read_srx_metadata(path)
    assert meta["format"] == "srx-onnx" and meta["precision"] == "fp32"
    assert meta["scale"] == "3" and meta["input"] == "lr_y" and meta["output"] == "hr_y"
    assert meta["source_sha256"] == sha256_file(weights)
    assert "BT.601" in meta["colour"] and "Y/255" in meta["colour"]
    assert json.loads(meta["model_config"]) == {
        "arch": "srcnn", "scale": 3, "kernel_sizes": [5, 1, 3], "widths": [8, 4], "residual": True, "branches": True,
    }
    info = check_srx_onnx(path, scale=3)
    assert info["scale"] == 3 and info["model_config"]["kernel_sizes"] == [5, 1, 3]
    assert info["input_shape"] == ["n", 1, "h", "w"]
    g = onnx.load(str(path)).graph
    assert [i.name for i in g.input] == ["lr_y"] and [o.name for o in g.output] == ["hr_y"]
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_one_dynamic_graph_runs_odd_sizes_and_batches(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    session = _ort(onnx_from_checkpoint(weights, tmp_path))
    shapes = [(1, 1, 37, 53), (1, 1, 101, 67), (3, 1, 9, 5), (1, 1, 1, 1), (1, 1, 2, 3), (2, 1, 6, 8), (1, 1, 12, 4)]
    for i, shape in enumerate(shapes):
        lr = _lr(shape, seed=i)
        out = session.run(["hr_y"], {"lr_y": lr})[0]
        assert out.shape == (shape[0], 1, 3 * shape[2], 3 * shape[3])
        ref = _torch_hr(weights, lr)
        # every pixel, the stitched edge bands included (a few ulps of float32 apart)
        assert np.abs(ref - out).max() < 1e-4 and _psnr_8bit(ref, out) >= 60.0


def test_static_export_fixes_the_size(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(2)
    path = onnx_from_checkpoint(weights, tmp_path, dynamic=False, height=20, width=30)
    assert check_srx_onnx(path)["input_shape"] == [1, 1, 20, 30]
    assert read_srx_metadata(path)["dynamic"] == "false"
    session = _ort(path)
    out = session.run(["hr_y"], {"lr_y": _lr((1, 1, 20, 30))})[0]
    assert out.shape == (1, 1, 40, 60)
    # A static graph runs its own size only; ONNX Runtime says which dimension is wrong.
    with pytest.raises(Exception, match="(?i)dimension"):
        session.run(["hr_y"], {"lr_y": _lr((1, 1, 21, 30))})
    with pytest.raises(SrxError, match="needs both height and width"):
        onnx_from_checkpoint(weights, tmp_path, dynamic=False, height=20)
    with pytest.raises(SrxError, match="static"):
        onnx_from_checkpoint(weights, tmp_path, height=20, width=30)


def test_fp16_graph(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    fp32 = onnx_from_checkpoint(weights, tmp_path)
    fp16 = fp16_onnx_from_onnx(fp32)
    assert fp16 == tmp_path / "srcnn-5-1-3-x3-fp16.onnx"
    model = onnx.load(str(fp16))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = model.graph
    # FP32 I/O, casts at the boundary, every weight in FP16.
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert g.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert g.node[0].op_type == "Cast" and g.node[-1].op_type == "Cast"
    assert [n.op_type for n in g.node].count("Cast") == 2
    floats = [t for t in g.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats)
    info = check_srx_onnx(fp16, 3)
    assert info["precision"] == "fp16" and info["fp32_sha256"] == sha256_file(fp32)
    assert info["source_sha256"] == sha256_file(weights)
    lr = _lr((2, 1, 37, 53))
    out = _ort(fp16).run(["hr_y"], {"lr_y": lr})[0]
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert _psnr_8bit(_torch_hr(weights, lr), out) >= 45.0
    with pytest.raises(SrxError, match="already an fp16 graph"):
        fp16_onnx_from_onnx(fp16)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_export(tmp_path, scale):
    weights = REPO / "srx" / "weights" / f"srcnn-915-x{scale}.pt"
    path = onnx_from_checkpoint(weights, tmp_path, scale=scale)
    assert path.name == f"srcnn-9-1-5-x{scale}.onnx"
    lr = _lr((1, 1, 29, 35))
    assert _psnr_8bit(_torch_hr(weights, lr), _ort(path).run(["hr_y"], {"lr_y": lr})[0]) >= 60.0
    lr16 = _ort(fp16_onnx_from_onnx(path)).run(["hr_y"], {"lr_y": lr})[0]
    assert _psnr_8bit(_torch_hr(weights, lr), lr16) >= 45.0


# -- bad input ---------------------------------------------------------------------------------------

def test_corrupt_and_foreign_checkpoints_leave_nothing(tmp_path):
    out = tmp_path / "out"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    with pytest.raises(SrxError, match="not a readable srx checkpoint"):
        onnx_from_checkpoint(corrupt, out)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(SrxError, match="not an srx checkpoint"):
        onnx_from_checkpoint(foreign, out)
    with pytest.raises(SrxError, match="does not exist"):
        onnx_from_checkpoint(tmp_path / "missing.pt", out)
    assert not out.exists() or list(out.iterdir()) == []


def test_scale_mismatch_and_bad_opset(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(2)
    with pytest.raises(SrxError, match="x2 model but x3 was asked for"):
        onnx_from_checkpoint(weights, tmp_path / "out", scale=3)
    with pytest.raises(SrxError, match="opset 7"):
        onnx_from_checkpoint(weights, tmp_path / "out", opset=7)
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(SrxError, match="exists as a file"):
        onnx_from_checkpoint(weights, blocker)
    with pytest.raises(SrxError, match="cannot create output folder"):
        onnx_from_checkpoint(weights, blocker / "sub")
    # The target name is taken by a folder: the rename fails after the graph was written in full,
    # and neither the target nor a temporary file is left behind.
    out = tmp_path / "out"
    (out / "srcnn-5-1-3-x3.onnx").mkdir(parents=True)
    with pytest.raises(SrxError, match="cannot write"):
        onnx_from_checkpoint(weights, out)
    assert sorted(p.name for p in out.iterdir()) == ["srcnn-5-1-3-x3.onnx"]
    assert (out / "srcnn-5-1-3-x3.onnx").is_dir()


def test_overwrite_keeps_a_valid_file(tiny_checkpoint, tmp_path):
    path = onnx_from_checkpoint(tiny_checkpoint(3, "a.pt"), tmp_path)
    again = onnx_from_checkpoint(tiny_checkpoint(3, "b.pt"), tmp_path)
    assert again == path and [p.name for p in tmp_path.glob(".*tmp")] == []
    assert check_srx_onnx(path)["source_name"] == "b.pt"


def test_an_fp16_graph_of_other_weights_goes_before_the_fp32_graph_is_replaced(tiny_checkpoint, tmp_path, caplog):
    """An export stopped between its two files left the new weights' FP32 graph beside the old
    weights' FP16 one under one name (upscaling 63 levels off, said nowhere): that FP16 graph is
    removed before the FP32 one is written. Re-exporting the same weights keeps it."""
    import torch

    a = tiny_checkpoint(3, "a.pt")
    fp16 = fp16_onnx_from_onnx(onnx_from_checkpoint(a, tmp_path, name="cam"))
    onnx_from_checkpoint(a, tmp_path, name="cam")
    assert fp16.is_file()
    state = torch.load(a, weights_only=True)
    state["state_dict"]["conv3.bias"] += 0.25
    torch.save(state, tmp_path / "b.pt")
    with caplog.at_level("INFO", logger="srx"):
        fp32 = onnx_from_checkpoint(tmp_path / "b.pt", tmp_path, name="cam")
    assert not fp16.exists() and check_srx_onnx(fp32)["source_name"] == "b.pt"
    assert f"removed {fp16}, the FP16 graph of the weights exported before" in caplog.text


def test_foreign_and_broken_onnx_files(tiny_checkpoint, tmp_path):
    from tests.conftest import foreign_onnx

    foreign = foreign_onnx(tmp_path / "foreign.onnx")
    with pytest.raises(SrxError, match="not an srx graph.*'lr_y'.*\\['x'\\]"):
        check_srx_onnx(foreign)
    assert read_srx_metadata(foreign) == {}

    # Our names but no metadata (e.g. someone's own export of SRCNN).
    named = foreign_onnx(tmp_path / "named.onnx", inp="lr_y", out="hr_y")
    with pytest.raises(SrxError, match="no srx metadata"):
        check_srx_onnx(named)
    with pytest.raises(SrxError, match="no srx metadata"):
        fp16_onnx_from_onnx(named)

    text = tmp_path / "notes.onnx"
    text.write_bytes(b"\xff\xfe this is not protobuf \x00\x01\x02")
    with pytest.raises(SrxError, match="not a readable ONNX model|not an ONNX model"):
        check_srx_onnx(text)
    with pytest.raises(SrxError, match="does not exist"):
        check_srx_onnx(tmp_path / "missing.onnx")

    ours = onnx_from_checkpoint(tiny_checkpoint(4), tmp_path)
    with pytest.raises(SrxError, match="x4 graph but x2 was asked for"):
        check_srx_onnx(ours, scale=2)


def test_plain_layout_is_the_model_layer_by_layer(tiny_checkpoint, tmp_path):
    """`--layout plain` writes the model as written (no shape arithmetic) with the same output."""
    weights = tiny_checkpoint(3)
    fast = onnx_from_checkpoint(weights, tmp_path / "fast")
    plain = onnx_from_checkpoint(weights, tmp_path / "plain", layout="plain")
    assert {n.op_type for n in onnx.load(str(plain)).graph.node} == {"Pad", "Conv", "DepthToSpace", "Relu", "Add"}
    assert read_srx_metadata(plain)["layout"] == "SRCNN" and read_srx_metadata(fast)["layout"] == "SRCNNBandedExport"
    lr = _lr((1, 1, 19, 26), seed=5)
    ref = _torch_hr(weights, lr)
    for path in (fast, plain):
        assert np.abs(_ort(path).run(["hr_y"], {"lr_y": lr})[0] - ref).max() < 1e-4
    with pytest.raises(SrxError, match="unknown export layout 'tiled'.*fast, plain"):
        onnx_from_checkpoint(weights, tmp_path / "bad", layout="tiled")


BAND_KERNELS = {"9-1-5": ([9, 1, 5], [16, 8]), "5-1-3": ([5, 1, 3], [8, 4])}
#: LR sizes down to 1x1: below, at and above the edge bands' widths, odd and even
BAND_SIZES = [(1, 1), (1, 9), (7, 1), (2, 3), (4, 4), (5, 8), (13, 17), (31, 40)]


@pytest.mark.parametrize("kernels", sorted(BAND_KERNELS))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_exported_graph_stitches_its_bands_exactly_at_every_size(tmp_path, scale, kernels):
    """The ONNX graph itself (its Slice/Concat band stitching built in export/onnx.py, run by ONNX
    Runtime), not an eager copy of the arrangement: equal to the model at every size, 1x1 included."""
    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    sizes, widths = BAND_KERNELS[kernels]
    torch.manual_seed(scale * 10 + sizes[0])
    cfg = ModelConfig(scale=scale, kernel_sizes=sizes, widths=widths)
    model = build_model(cfg)
    with torch.no_grad():
        model.conv3.weight.normal_(0, 0.05)  # a real residual, not bicubic alone
    weights = tmp_path / "m.pt"
    save_checkpoint(weights, model, cfg)
    session = _ort(onnx_from_checkpoint(weights, tmp_path / "out", scale=scale))
    assert check_srx_onnx(tmp_path / "out" / f"{cfg.name}.onnx")["precision"] == "fp32"
    for h, w in BAND_SIZES:
        lr = _lr((1, 1, h, w), seed=h * 100 + w)
        out = session.run(["hr_y"], {"lr_y": lr})[0]
        ref = _torch_hr(weights, lr)
        assert out.shape == ref.shape == (1, 1, h * scale, w * scale), (h, w)
        assert np.abs(out - ref).max() < 1e-4, (h, w, float(np.abs(out - ref).max()))
