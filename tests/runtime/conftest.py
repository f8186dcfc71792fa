"""Runtime fixtures: small real checkpoints and their ONNX graphs, made once per session."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def srx_cache_dir(tmp_path_factory) -> Path:
    """Keep the on-demand ONNX cache out of ~/.cache while testing."""
    path = tmp_path_factory.mktemp("srx-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SRX_CACHE_DIR", str(path))
    yield path
    mp.undo()


def _checkpoint(folder: Path, scale: int, kernel_sizes: list[int], widths: list[int]) -> Path:
    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    torch.manual_seed(10 + scale)
    cfg = ModelConfig(scale=scale, kernel_sizes=kernel_sizes, widths=widths)
    model = build_model(cfg)
    with torch.no_grad():
        model.conv3.weight.normal_(0, 0.05)  # a visible residual, so parity checks see the convs
    path = folder / f"{cfg.name}-w{widths[0]}.pt"
    save_checkpoint(path, model, cfg)
    return path


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """ckpt(scale) -> a small SRCNN checkpoint (9-1-5 kernels, narrow layers), cached per scale."""
    folder = tmp_path_factory.mktemp("ckpt")
    made: dict[int, Path] = {}

    def make(scale: int = 3) -> Path:
        if scale not in made:
            made[scale] = _checkpoint(folder, scale, [9, 1, 5], [16, 8])
        return made[scale]

    return make


@pytest.fixture(scope="session")
def onnx_graphs(tmp_path_factory, ckpt):
    """onnx_graphs(scale) -> (fp32 path, fp16 path), exported once with srx.export."""
    from srx.export.onnx import fp16_onnx_from_onnx, onnx_from_checkpoint

    folder = tmp_path_factory.mktemp("onnx")
    made: dict[int, tuple[Path, Path]] = {}

    def make(scale: int = 3) -> tuple[Path, Path]:
        if scale not in made:
            fp32 = onnx_from_checkpoint(ckpt(scale), folder / f"x{scale}")
            made[scale] = (fp32, fp16_onnx_from_onnx(fp32))
        return made[scale]

    return make
