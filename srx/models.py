"""Model definitions and the registry that builds them from a stored config.

Every srx model maps an LR Y plane (N, 1, h, w), float in [0, 1] (Y / 255, so [16, 235] / 255),
to the HR Y plane (N, 1, s*h, s*w). SRCNN is a pre-upsampling network, so the MATLAB-style bicubic
enlargement lives *inside* the model: the exported graph then takes the small LR plane (less
host-to-device traffic per frame) and every backend runs the very same upsampler.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from srx.errors import SrxError
from srx.protocol import _cubic, check_scale


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored inside every checkpoint."""

    arch: str = "srcnn"
    scale: int = 3
    kernel_sizes: list[int] = field(default_factory=lambda: [9, 1, 5])
    widths: list[int] = field(default_factory=lambda: [64, 32])
    residual: bool = True  # predict the residual over bicubic (modern recipe) or the HR plane

    @property
    def name(self) -> str:
        return f"{self.arch}-{'-'.join(map(str, self.kernel_sizes))}-x{self.scale}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SrxError(f"model config has unknown fields {sorted(unknown)}; expected {sorted(known)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        check_scale(self.scale)
        if self.arch not in MODELS:
            raise SrxError(f"unknown model {self.arch!r}: expected one of {', '.join(sorted(MODELS))}")
        if self.arch == "srcnn":
            if len(self.kernel_sizes) != 3 or len(self.widths) != 2:
                raise SrxError(
                    f"SRCNN needs 3 kernel sizes and 2 widths, got {self.kernel_sizes} and {self.widths}"
                )
            if any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
                raise SrxError(f"SRCNN kernel sizes must be odd and positive, got {self.kernel_sizes}")


# Named presets for `--model`.
PRESETS: dict[str, dict[str, Any]] = {
    "srcnn-915": {"arch": "srcnn", "kernel_sizes": [9, 1, 5], "widths": [64, 32]},
    "srcnn-955": {"arch": "srcnn", "kernel_sizes": [9, 5, 5], "widths": [64, 32]},
}


def config_from_preset(preset: str, scale: int, **overrides: Any) -> ModelConfig:
    if preset not in PRESETS:
        raise SrxError(f"unknown model {preset!r}: expected one of {', '.join(PRESETS)}")
    cfg = ModelConfig(scale=scale, **{**PRESETS[preset], **overrides})
    cfg.validate()
    return cfg


def bicubic_phases_1d(scale: int, a: float = -0.5) -> np.ndarray:
    """(scale, 5) 1-D MATLAB bicubic kernels: row p gives output phase p from input offsets -2..2.

    Output pixel s*i + p samples input coordinate i + d_p with d_p = (p + 0.5)/s - 0.5 (MATLAB's
    half-pixel mapping), so each phase is a fixed kernel.
    """
    offsets = np.arange(-2, 3, dtype=np.float64)
    phases = np.stack([_cubic((p + 0.5) / scale - 0.5 - offsets, a) for p in range(scale)])
    return phases / phases.sum(axis=1, keepdims=True)


def bicubic_phase_kernels(scale: int, a: float = -0.5) -> np.ndarray:
    """(scale*scale, 1, 5, 5) kernels whose pixel-shuffled outputs equal MATLAB bicubic enlargement
    (channel py*scale + px: row phase py, column phase px)."""
    phases = bicubic_phases_1d(scale, a)
    k2d = phases[:, None, :, None] * phases[None, :, None, :]  # (s, s, 5, 5): row phase, col phase
    return k2d.reshape(scale * scale, 1, 5, 5)


class BicubicUpsample(nn.Module):
    """MATLAB-style bicubic enlargement as Pad(edge) + Conv + DepthToSpace: exportable to ONNX and
    TensorRT with dynamic shapes. Borders replicate rather than mirror; that differs from MATLAB
    only in the outermost LR pixel ring, inside the protocol's shaved border."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        kernel = torch.from_numpy(bicubic_phase_kernels(scale)).float()
        self.register_buffer("weight", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.pixel_shuffle(F.conv2d(x, self.weight), self.scale)


class SRCNN(nn.Module):
    """Dong et al. 2014/2016: patch extraction, non-linear mapping, reconstruction."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        f1, f2, f3 = config.kernel_sizes
        n1, n2 = config.widths
        self.upsample = BicubicUpsample(config.scale)
        # Replicate padding keeps the output the input's size without a dark frame at the borders.
        self.conv1 = nn.Conv2d(1, n1, f1, padding=f1 // 2, padding_mode="replicate")
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2, padding_mode="replicate")
        self.conv3 = nn.Conv2d(n2, 1, f3, padding=f3 // 2, padding_mode="replicate")
        nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        up = self.upsample(lr)
        out = self.conv3(F.relu(self.conv2(F.relu(self.conv1(up)))))
        return up + out if self.config.residual else out

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters grouped as the paper's per-layer learning rates expect (hidden, last)."""
        return [
            [*self.conv1.parameters(), *self.conv2.parameters()],
            list(self.conv3.parameters()),
        ]


MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {"srcnn": SRCNN}


def build_model(config: ModelConfig) -> nn.Module:
    config.validate()
    return MODELS[config.arch](config)


def macs_per_hr_pixel(config: ModelConfig) -> int:
    """Multiply-accumulates per output pixel (for FLOP floors in benchmarks)."""
    if config.arch != "srcnn":
        raise SrxError(f"no FLOP model for {config.arch!r}")
    f1, f2, f3 = config.kernel_sizes
    n1, n2 = config.widths
    return f1 * f1 * n1 + f2 * f2 * n1 * n2 + f3 * f3 * n2 + 25  # + the bicubic phase conv
