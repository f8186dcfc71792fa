"""Parity report: every backend against PyTorch under the gates, on Set5 or synthetic photos."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from srx.errors import SrxError
from srx.export.onnx import onnx_from_checkpoint
from srx.runtime.parity import GATES, format_parity_table, parity_report, report_to_json

#: the README's gates, pinned here: a test that read them from the module under test would pass
#: whatever the module's numbers became
README_GATES = {"fp32": (60.0, 0.01), "fp16": (45.0, 0.05)}  # (min dB vs PyTorch, max |ΔPSNR| dB)
from srx.samples import sample_image, sample_images
from tests.conftest import SET5, need_shared


def _rows(report):
    return {(r["backend"], r["precision"]): r for r in report["backends"]}


def _check_gates(report):
    rows = _rows(report)
    for precision in ("fp32", "fp16"):
        row = rows[("onnxruntime", precision)]
        min_db, max_delta = README_GATES[precision]
        assert row["status"] == "ok" and row["passed"] is True, row
        assert row["psnr_vs_torch_db"] >= min_db
        assert abs(row["delta_psnr_db"]) <= max_delta
        assert row["nonfinite"] == 0
    assert rows[("torch", "fp32-reference")]["status"] == "reference"
    assert report["passed"] is True


def test_parity_on_set5(tiny_checkpoint):
    need_shared(SET5)
    report = parity_report(tiny_checkpoint(3), 3, set5=SET5)
    assert report["data"].startswith("Set5")
    _check_gates(report)
    names = [i["name"] for i in report["inputs"]]
    assert len(names) == 5 + 3 and "random 37x53" in names and "random 101x67" in names
    torch_gt = _rows(report)[("torch", "fp32-reference")]["psnr_gt_db"]
    assert 15.0 < torch_gt < 40.0


def test_parity_on_synthetic_photos(tiny_checkpoint):
    report = parity_report(tiny_checkpoint(2), 2, synthetic=True)
    assert report["data"].startswith("synthetic")
    _check_gates(report)
    trt = [r for r in report["backends"] if r["backend"] == "tensorrt"]
    assert trt and all(r["status"] in ("skipped", "ok") for r in trt)
    if trt[0]["status"] == "skipped":
        assert trt[0]["reason"]
    text = report_to_json(report)
    # PyTorch vs itself is identical: its PSNR is null, as every srx JSON writes a number that is not finite
    # (it was the string "inf", in a field that is a number in the other rows)
    reference = json.loads(text)["backends"][0]
    assert "Infinity" not in text and '"inf"' not in text and reference["psnr_vs_torch_db"] is None, reference
    table = format_parity_table(report)
    assert table.row_count == len(report["backends"])


def test_reuses_fresh_graphs_and_catches_a_wrong_one(tiny_checkpoint, tmp_path):
    a = tiny_checkpoint(3, "a.pt")
    folder = tmp_path / "exports"
    onnx_from_checkpoint(a, folder)
    before = sorted(p.name for p in folder.iterdir())
    assert parity_report(a, 3, onnx_dir=folder, synthetic=True)["passed"]
    assert sorted(p.name for p in folder.iterdir()) == before  # the FP16 graph went to a scratch folder

    # A graph that claims to come from `a` but holds other weights must fail the gates.
    import torch
    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    torch.manual_seed(99)
    cfg = ModelConfig(scale=3, kernel_sizes=[5, 1, 3], widths=[8, 4])
    other = build_model(cfg)
    with torch.no_grad():
        other.conv3.weight.normal_(0, 0.05)
    save_checkpoint(tmp_path / "other.pt", other, cfg)
    stale = onnx_from_checkpoint(tmp_path / "other.pt", tmp_path / "stale")
    model = onnx.load(str(stale))
    source = {p.key: p.value for p in onnx.load(str(folder / stale.name)).metadata_props}["srx.source_sha256"]
    for p in model.metadata_props:
        if p.key == "srx.source_sha256":
            p.value = source
    onnx.save(model, str(folder / stale.name))
    report = parity_report(a, 3, onnx_dir=folder, synthetic=True)
    row = _rows(report)[("onnxruntime", "fp32")]
    assert report["passed"] is False and row["passed"] is False and "PSNR vs PyTorch" in row["reason"]


def test_the_module_gates_are_the_readme_gates():
    for precision, (min_db, max_delta) in README_GATES.items():
        assert GATES[precision] == {"min_psnr_vs_torch_db": min_db, "max_abs_delta_psnr_db": max_delta}


def test_bad_arguments(tiny_checkpoint, tmp_path):
    with pytest.raises(SrxError, match="x3 model but x2"):
        parity_report(tiny_checkpoint(3), 2, synthetic=True)
    with pytest.raises(SrxError, match="does not exist"):
        parity_report(tiny_checkpoint(3), 3, set5=tmp_path / "nowhere")
    with pytest.raises(SrxError, match="unsupported scale"):
        parity_report(tiny_checkpoint(3), 5)


def test_sample_images_are_deterministic_and_textured():
    a, b = sample_image(61, 83, seed=4), sample_image(61, 83, seed=4)
    assert a.shape == (61, 83, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, sample_image(61, 83, seed=5))
    grad = np.abs(np.diff(a.astype(np.int16), axis=1)).mean()
    assert grad > 2.0 and a.std() > 20.0  # edges and texture, not a flat field
    names = [n for n, _ in sample_images(3)]
    assert names == ["sample0", "sample1", "sample2"]
    with pytest.raises(SrxError):
        sample_image(0, 5)


def test_each_gate_fails_a_backend_on_its_own():
    """A graph that returns one NaN in a 512x512 frame (in the border the HR score shaves), or whose every pixel is 0.6 of a level off,
    still scores over the FP16 gate against PyTorch (60 / 52.6 dB): the NaN/Inf count and the
    |ΔPSNR| against the HR image are what fail it, each alone."""
    from srx.runtime.parity import _psnr_gt, _score

    rng = np.random.default_rng(0)
    hr = rng.integers(30, 220, (512, 512)).astype(np.uint8)
    ref = ((hr + rng.normal(0, 2, hr.shape)) / 255.0).astype(np.float32)[None, None]
    inputs = [{"name": "frame", "hr_y": hr, "lr": None}]
    ref_gt = _psnr_gt(hr, ref, 3)
    assert _score("onnxruntime", "fp16", [ref.copy()], [ref], inputs, 3, ref_gt)["passed"] is True

    one_nan = ref.copy()
    one_nan[0, 0, 1, 1] = np.nan  # in the shaved border: the score against HR does not see it
    row = _score("onnxruntime", "fp16", [one_nan], [ref], inputs, 3, ref_gt)
    assert row["psnr_vs_torch_db"] > README_GATES["fp16"][0] and row["nonfinite"] == 1
    assert row["passed"] is False and row["reason"] == "1 NaN/Inf values"

    off = ref + np.float32(0.6 / 255)
    row = _score("onnxruntime", "fp16", [off], [ref], inputs, 3, ref_gt)
    assert row["psnr_vs_torch_db"] > README_GATES["fp16"][0] and abs(row["delta_psnr_db"]) > README_GATES["fp16"][1]
    assert row["passed"] is False and row["reason"].startswith("|ΔPSNR|")
