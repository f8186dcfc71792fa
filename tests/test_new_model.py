"""A new model is one registry entry plus its module: an architecture srx has never seen, registered
here as a user would add it (an `SrxModel` subclass, a `MODELS` entry and a `--model` preset), goes
through every stage in one process with no other code changed — train, eval, export with its
checks, parity, upscale (tiled as untiled), stream and bench. It uses tanh, which srx's own models
do not, so the export's operator check is exercised too. (`srx serve` runs in its own process,
which would not see a registration made in a test; it takes any checkpoint the runners take.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from srx.cli import app
from srx.models import MODELS, PRESETS, ModelConfig, SrxModel

runner = CliRunner()


class TanhESPCN(SrxModel):
    """ESPCN's shape (Shi et al. 2016): 5x5, 3x3, 3x3 on the LR grid with tanh, one pixel shuffle."""

    lr_grid = True

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        if len(config.kernel_sizes) != 3 or len(config.widths) != 2:
            from srx.errors import SrxError

            raise SrxError(f"tanh-espcn needs 3 kernel sizes and 2 widths, got {config.kernel_sizes} and {config.widths}")
        super().check_config(config)

    @classmethod
    def halo(cls, config: ModelConfig) -> int:
        return sum(k // 2 for k in config.kernel_sizes)

    @classmethod
    def macs_per_hr_pixel(cls, config: ModelConfig) -> float:
        s, (k1, k2, k3), (w1, w2) = config.scale, config.kernel_sizes, config.widths
        return (k1 * k1 * w1 + k2 * k2 * w1 * w2 + k3 * k3 * w2 * s * s) / (s * s)

    @classmethod
    def inference_params(cls, config: ModelConfig) -> int:
        widths = [1, *config.widths, config.scale**2]
        return sum(k * k * widths[i] * widths[i + 1] + widths[i + 1] for i, k in enumerate(config.kernel_sizes))

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = [1, *config.widths, config.scale**2]
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2)
                                   for i, k in enumerate(config.kernel_sizes))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.convs[0](lr))
        h = torch.tanh(self.convs[1](h))
        return F.pixel_shuffle(self.convs[2](h), self.config.scale)


@pytest.fixture
def espcn(monkeypatch, tmp_path):
    monkeypatch.setitem(MODELS, "tanh-espcn", TanhESPCN)
    monkeypatch.setitem(PRESETS, "tanh-espcn-16-8",
                        {"arch": "tanh-espcn", "kernel_sizes": [5, 3, 3], "widths": [16, 8]})
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))


def _ok(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_a_new_architecture_goes_through_every_stage_unchanged(espcn, image_folder, tmp_path):
    import cv2

    from tests.conftest import silent_video, synthetic_photo

    run = tmp_path / "run"
    _ok(["train", "--data", str(image_folder), "--model", "tanh-espcn-16-8", "--scale", "3", "--max-steps", "4",
         "--batch-size", "4", "--patch-size", "24", "--stride", "24", "--out", str(run), "--no-progress"])
    ckpt = run / "last.pt"
    stored = torch.load(ckpt, weights_only=True)
    assert stored["model_config"]["arch"] == "tanh-espcn"
    assert json.loads(_ok(["eval", "--data", str(image_folder), "-w", str(ckpt), "--json"]))["model"] == \
        "tanh-espcn-5-3-3-x3"

    out = _ok(["export", "-w", str(ckpt), "-o", str(tmp_path / "exp"), "--check"])
    assert "Tanh" not in out and (tmp_path / "exp" / "tanh-espcn-5-3-3-x3.onnx").is_file()
    parity = json.loads(_ok(["parity", "-w", str(ckpt), "--synthetic", "--json"]))
    assert parity["passed"] and {b["precision"] for b in parity["backends"]} >= {"fp32", "fp16"}

    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), synthetic_photo(40, 52))
    _ok(["upscale", str(image), "-w", str(ckpt), "-o", str(tmp_path / "whole.png"), "--no-progress"])
    _ok(["upscale", str(image), "-w", str(ckpt), "-o", str(tmp_path / "tiled.png"), "--tile", "16", "--no-progress"])
    whole, tiled = (cv2.imread(str(tmp_path / f"{n}.png")) for n in ("whole", "tiled"))
    assert whole.shape == (120, 156, 3) and np.array_equal(whole, tiled)  # its halo is what its convs reach

    video = silent_video(tmp_path / "clip.avi", 3, (32, 24))
    summary = _ok(["stream", "--source", str(video), "-w", str(ckpt), "--no-window", "-q", "--no-drop"])
    assert "3 in, 3 out" in summary
    bench = json.loads(_ok(["bench", "--quick", "-w", str(ckpt), "--backend", "onnxruntime", "--case", "quick x3",
                            "--reps", "1", "--json"]))
    assert [r["backend"] for r in bench["rows"]] == ["onnxruntime"] and not bench["skipped"]
