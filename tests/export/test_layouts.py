"""The export arrangements compute the model's function: every size, scale, kernel set, both
residual modes; and the banded one really needs its bands (the interior alone is wrong there)."""
from __future__ import annotations

import pytest
import torch

from srx.export.layouts import PhaseSRCNN, SRCNNBandedExport, SRCNNForExport, band_width, export_module
from srx.models import ModelConfig, build_model, config_from_preset

SIZES = [(1, 1), (1, 6), (2, 3), (4, 9), (7, 7), (9, 12), (13, 11), (20, 17), (31, 40)]


def _model(scale: int, kernel_sizes: list[int], residual: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(scale=scale, kernel_sizes=kernel_sizes, residual=residual)).eval()
    torch.nn.init.normal_(model.conv3.weight, std=0.05)  # make the last layer matter
    return model


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kernel_sizes", [[9, 1, 5], [5, 1, 3], [3, 1, 9]])
@pytest.mark.parametrize("residual", [True, False])
def test_banded_equals_the_model_at_every_size(scale, kernel_sizes, residual):
    model = _model(scale, kernel_sizes, residual)
    banded = export_module(model)
    assert isinstance(banded, SRCNNBandedExport)
    for h, w in SIZES:
        lr = torch.rand(2, 1, h, w)
        with torch.no_grad():
            ref, out = model(lr), banded.stitch(banded(lr))
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() < 1e-5, (h, w)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_interior_is_exact_inside_the_band_and_wrong_on_it(scale):
    model = _model(scale, [9, 1, 5])
    phase = PhaseSRCNN(model).eval()
    b = band_width(model)
    lr = torch.rand(1, 1, 30, 37)
    with torch.no_grad():
        err = (phase(lr) - model(lr)).abs()[0, 0]
    assert err[b:-b, b:-b].max().item() < 1e-5
    # Without the bands the border would be visibly off: the stitching is doing real work.
    assert err[:3].max().item() > 1e-3 and err[:, -3:].max().item() > 1e-3


def test_phase_layer_one_is_smaller_than_the_hr_one():
    """Folding the bicubic into layer 1 shrinks 9x9 on the HR grid to 7x7 on the LR grid at x3."""
    phase = PhaseSRCNN(_model(3, [9, 1, 5]))
    assert tuple(phase.w1.shape) == (9 * 64, 1, 7, 7)


def test_non_pointwise_middle_layer_uses_the_plain_arrangement():
    model = build_model(config_from_preset("srcnn-955", 3)).eval()
    torch.nn.init.normal_(model.conv3.weight, std=0.05)
    fast = export_module(model)
    assert isinstance(fast, SRCNNForExport)
    lr = torch.rand(2, 1, 13, 17)
    with torch.no_grad():
        assert torch.allclose(fast(lr), model(lr), atol=1e-5)
