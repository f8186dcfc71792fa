"""The `fast` architecture (LRNet): registry round trip, re-parameterisation, export, tiling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srx.checkpoint import model_from_checkpoint, save_checkpoint
from srx.errors import SrxError
from srx.models import (LRNet, ModelConfig, RepConv, build_model, config_from_preset, inference_params,
                        macs_per_hr_pixel, with_pointwise_layer)

SIZES = [(1, 1), (1, 6), (2, 3), (5, 4), (9, 12), (13, 11), (31, 40)]


def lrnet(scale: int, preset: str = "lrnet-32x4", seed: int = 0) -> LRNet:
    """A model whose every branch matters (a fresh one starts within a few grey levels of bicubic)."""
    torch.manual_seed(seed)
    model = build_model(config_from_preset(preset, scale))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model.eval()


def test_preset_shape_name_and_cost():
    cfg = config_from_preset("lrnet-32x4", 3)
    assert cfg.name == "lrnet-32x4-x3" and cfg.kernel_sizes == [5, 3, 3, 3] and cfg.widths == [32, 32, 32]
    # per LR pixel: 5x5 1->32, two 3x3 32->32, 3x3 32->9, the bicubic 5x5 1->9
    per_lr = 25 * 32 + 2 * 9 * 32 * 32 + 9 * 32 * 9 + 25 * 9
    assert macs_per_hr_pixel(cfg) * 9 == pytest.approx(per_lr)
    assert inference_params(cfg) == (25 * 32 + 32) + 2 * (9 * 32 * 32 + 32) + (9 * 32 * 9 + 9)
    assert cfg.lr_halo == 2 + 1 + 1 + 1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_size_and_fresh_model_is_bicubic(scale):
    torch.manual_seed(0)
    model = build_model(config_from_preset("lrnet-32x4", scale)).eval()
    x = torch.rand(2, 1, 7, 11)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 1, 7 * scale, 11 * scale)
    from srx.models import BicubicUpsample

    with torch.no_grad():
        assert (y - BicubicUpsample(scale)(x)).abs().max() < 0.06  # last layer starts near zero (seen: 0.031-0.042)


def test_registry_round_trip_through_a_checkpoint(tmp_path):
    model = lrnet(3)
    save_checkpoint(tmp_path / "f.pt", model, model.config)
    loaded, cfg, _ = model_from_checkpoint(tmp_path / "f.pt", 3)
    assert isinstance(loaded, LRNet) and cfg == model.config
    x = torch.rand(1, 1, 9, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_repconv_fused_is_the_sum_of_its_branches():
    torch.manual_seed(1)
    for cin, cout, k in [(4, 4, 3), (1, 6, 5), (5, 3, 3)]:
        conv = RepConv(cin, cout, k)
        with torch.no_grad():
            for p in conv.parameters():
                p.normal_(0, 0.3)
        x = torch.rand(2, cin, 8, 9)
        branches = conv.conv(x) + conv.point(x) + (x if cin == cout else 0)
        with torch.no_grad():
            assert (conv.fused()(x) - branches).abs().max() < 1e-5
            assert (conv(x) - branches).abs().max() < 1e-5


@pytest.mark.parametrize("bad,match", [
    ({"kernel_sizes": [3, 3, 3], "widths": [8]}, "one width per hidden layer"),
    ({"kernel_sizes": [3, 4], "widths": [8]}, "odd"),
    ({"kernel_sizes": [3, 3], "widths": [0]}, "positive"),
])
def test_bad_lrnet_configs_are_refused(bad, match):
    with pytest.raises(SrxError, match=match):
        ModelConfig.from_dict({**ModelConfig(arch="lrnet", kernel_sizes=[3, 3], widths=[8]).to_dict(), **bad})


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_exported_graph_equals_the_model_down_to_1x1(tmp_path, scale):
    """The ONNX graph itself (through ONNX Runtime), not an eager copy."""
    import onnxruntime as ort  # a base dependency of srx
    from srx.export.onnx import onnx_from_checkpoint

    model = lrnet(scale, seed=scale)
    save_checkpoint(tmp_path / "f.pt", model, model.config)
    path = onnx_from_checkpoint(tmp_path / "f.pt", tmp_path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in SIZES:
        x = torch.rand(2, 1, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"lr_y": x.numpy()})[0]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-5, (h, w)


def test_tiles_equal_the_whole_frame(photo):
    from srx.runtime.torch_runner import TorchRunner
    from srx.runtime.upscaler import Upscaler

    model = lrnet(3, seed=7)
    whole = Upscaler(TorchRunner(model=model), 3, tile=1000)
    tiled = Upscaler(TorchRunner(model=model), 3, tile=16)
    assert tiled.overlap == model.config.lr_halo
    with whole, tiled:
        a, b = whole.upscale_y(photo[..., 1]), tiled.upscale_y(photo[..., 1])
    assert a.shape == (photo.shape[0] * 3, photo.shape[1] * 3)
    assert np.abs(a - b).max() < 1e-5
    # and a too-small overlap shows seams, which is why the halo is what it is
    seamy = Upscaler(TorchRunner(model=model), 3, tile=16, overlap=model.config.lr_halo)
    seamy.overlap = 1
    with seamy:
        assert np.abs(seamy.upscale_y(photo[..., 1]) - a).max() > 1e-3


def test_pointwise_preset_name_and_cost():
    cfg = config_from_preset("lrnet-32x4-pw", 3)
    assert cfg.name == "lrnet-32x4-pw-x3" and cfg.kernel_sizes == [5, 3, 3, 1, 3]
    assert config_from_preset("lrnet-32x5", 3).name == "lrnet-32x5-x3"  # not confused with it
    base = config_from_preset("lrnet-32x4", 3)
    assert (macs_per_hr_pixel(cfg) - macs_per_hr_pixel(base)) * 9 == pytest.approx(32 * 32)
    assert cfg.lr_halo == base.lr_halo  # a 1x1 layer adds no context
    pw3 = config_from_preset("lrnet-32x4-pw3", 3)
    assert pw3.name == "lrnet-32x4-pw3-x3" and config_from_preset("lrnet-32x4-pw2", 3).name == "lrnet-32x4-pw2-x3"
    assert (macs_per_hr_pixel(pw3) - macs_per_hr_pixel(base)) * 9 == pytest.approx(3 * 32 * 32)
    assert pw3.lr_halo == base.lr_halo


def grown_computing_the_same(base, config, state, x):
    """The model built from a grown config/state, checked to compute what `base` does on `x`."""
    grown = build_model(config)
    grown.load_state_dict(state)
    grown.eval()
    with torch.no_grad():
        torch.testing.assert_close(grown(x), base(x), rtol=0, atol=1e-6)
    return grown


@pytest.mark.parametrize("scale", [2, 3])
def test_inserted_pointwise_layer_keeps_the_function_then_trains(scale):
    base = lrnet(scale)
    config, state = with_pointwise_layer(base.config, base.state_dict())
    assert config.kernel_sizes == [5, 3, 3, 1, 3] and config.name == f"lrnet-32x4-pw-x{scale}"
    x = torch.rand(2, 1, 13, 11)
    grown = grown_computing_the_same(base, config, state, x)
    # the new layer is not frozen at the identity: its weights get gradients
    grown.train()
    grown(x).square().mean().backward()
    assert grown.layers[3].conv.weight.grad.abs().sum() > 0


def test_pointwise_layers_inserted_further_up_give_the_pw3_preset_with_the_same_function():
    base = lrnet(3)
    config, state = with_pointwise_layer(base.config, base.state_dict())  # lrnet-32x4-pw
    for position in (2, 1):  # before the second and then the first 3x3 layer
        config, state = with_pointwise_layer(config, state, position)
    preset = config_from_preset("lrnet-32x4-pw3", 3)
    assert config == preset and config.name == "lrnet-32x4-pw3-x3"
    grown_computing_the_same(base, config, state, torch.rand(2, 1, 10, 15))
    assert config.lr_halo == base.config.lr_halo


@pytest.mark.parametrize("position", [0, 5, -1])
def test_pointwise_position_must_follow_a_relu(position):
    base = lrnet(3)
    with pytest.raises(SrxError, match=r"before one of layers 1\.\.3 .* got position " + str(position)):
        with_pointwise_layer(base.config, base.state_dict(), position)


def test_pointwise_needs_an_lrnet_with_branches():
    with pytest.raises(SrxError, match="lrnet with branches"):
        with_pointwise_layer(config_from_preset("srcnn-915", 3), {})
    with pytest.raises(SrxError, match="lrnet with branches"):
        with_pointwise_layer(config_from_preset("lrnet-32x4-plain", 3), {})


def test_add_pointwise_script(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    base = lrnet(3)
    src = tmp_path / "base.pt"
    save_checkpoint(src, base, base.config)
    out = tmp_path / "sub" / "pw.pt"
    script = Path(__file__).resolve().parents[1] / "scripts" / "add_pointwise.py"
    res = subprocess.run([sys.executable, str(script), str(src), str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    grown, config, _ = model_from_checkpoint(out, 3)
    assert config.name == "lrnet-32x4-pw-x3"
    x = torch.rand(1, 1, 9, 12)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), base(x), rtol=0, atol=1e-6)
    more = tmp_path / "pw3.pt"
    res = subprocess.run([sys.executable, str(script), str(out), str(more), "--at", "2", "--at", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    grown, config, _ = model_from_checkpoint(more, 3)
    assert config.name == "lrnet-32x4-pw3-x3" and config.kernel_sizes == [5, 1, 3, 1, 3, 1, 3]
    with torch.no_grad():
        torch.testing.assert_close(grown(x), base(x), rtol=0, atol=1e-6)
    wrong = subprocess.run([sys.executable, str(script), str(out), str(tmp_path / "y.pt"), "--at", "0"],
                           capture_output=True, text=True)
    assert wrong.returncode == 1 and "got position 0" in wrong.stderr and not (tmp_path / "y.pt").exists()
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
