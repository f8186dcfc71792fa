"""The `fast` architecture (LRNet): registry round trip, re-parameterisation, export, tiling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srx.checkpoint import model_from_checkpoint, save_checkpoint
from srx.errors import SrxError
from srx.models import LRNet, ModelConfig, RepConv, build_model, config_from_preset, inference_params, macs_per_hr_pixel

SIZES = [(1, 1), (1, 6), (2, 3), (5, 4), (9, 12), (13, 11), (31, 40)]


def lrnet(scale: int, preset: str = "lrnet-32x4", seed: int = 0) -> LRNet:
    """A model whose every branch matters (a fresh one starts at bicubic exactly)."""
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
        assert (y - BicubicUpsample(scale)(x)).abs().max() < 0.1  # last layer starts near zero (seen: 0.05 at most)


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
    ort = pytest.importorskip("onnxruntime")
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
