import numpy as np
import pytest
import torch

from srx.errors import SrxError
from srx.models import BicubicUpsample, bicubic_phase_kernels, ModelConfig, build_model, config_from_preset, macs_per_hr_pixel
from srx.protocol import imresize
from tests.conftest import synthetic_photo


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("hw", [(17, 23), (8, 8), (31, 5)])
def test_srcnn_output_is_scale_times_input(scale, hw):
    model = build_model(ModelConfig(scale=scale, kernel_sizes=[5, 1, 3], widths=[8, 4])).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, *hw))
    assert out.shape == (2, 1, hw[0] * scale, hw[1] * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_internal_upsampler_equals_matlab_bicubic_inside_the_border(scale):
    lr = synthetic_photo(30, 41)[..., 1].astype(np.float64)
    ref = imresize(lr, float(scale))
    up = BicubicUpsample(scale)
    up.weight = torch.from_numpy(bicubic_phase_kernels(scale))  # float64 for an exact comparison
    with torch.no_grad():
        out = up(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    b = 2 * scale  # replicate vs symmetric padding differs only in the outer LR pixel ring
    assert np.abs(out - ref)[b:-b, b:-b].max() < 1e-9


def test_fresh_residual_model_starts_near_bicubic():
    model = build_model(ModelConfig(scale=3)).eval()
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert (model(x) - model.upsample(x)).abs().max() < 0.05


def test_config_round_trip_and_presets():
    cfg = config_from_preset("srcnn-955", 2)
    assert cfg.kernel_sizes == [9, 5, 5] and cfg.name == "srcnn-9-5-5-x2"
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert macs_per_hr_pixel(ModelConfig()) == 81 * 64 + 64 * 32 + 25 * 32 + 25


@pytest.mark.parametrize("bad,match", [
    ({"arch": "edsr"}, "unknown model"),
    ({"scale": 5}, "unsupported scale"),
    ({"kernel_sizes": [9, 1]}, "3 kernel sizes"),
    ({"kernel_sizes": [8, 1, 5]}, "odd"),
])
def test_bad_configs_are_refused(bad, match):
    with pytest.raises(SrxError, match=match):
        ModelConfig.from_dict({**ModelConfig().to_dict(), **bad})
    with pytest.raises(SrxError, match="unknown model"):
        config_from_preset("srcnn-999", 3)
