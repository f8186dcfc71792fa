"""Model definitions and the registry that builds them from a stored config.

Every srx model maps an LR Y plane (N, 1, h, w), float in [0, 1] (Y / 255, so [16, 235] / 255),
to the HR Y plane (N, 1, s*h, s*w). SRCNN is a pre-upsampling network, so the MATLAB-style bicubic
enlargement lives *inside* the model: the exported graph then takes the small LR plane (less
host-to-device traffic per frame) and every backend runs the very same upsampler.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from srx.errors import SrxError
from srx.presets import PRESETS
from srx.protocol import _cubic, check_scale


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored inside every checkpoint."""

    arch: str = "srcnn"
    scale: int = 3
    kernel_sizes: list[int] = field(default_factory=lambda: [9, 1, 5])
    widths: list[int] = field(default_factory=lambda: [64, 32])
    residual: bool = True  # predict the residual over bicubic (modern recipe) or the HR plane
    branches: bool = True  # lrnet: train each conv as k x k + 1 x 1 + identity (RepConv); False: plain convs

    @property
    def name(self) -> str:
        """The architecture's name for this configuration, e.g. srcnn-9-1-5-x3, lrnet-32x4-pw3-x3."""
        return model_class(self.arch).config_name(self)

    @property
    def lr_halo(self) -> int:
        """LR pixels of context one output pixel depends on (tiles overlap by at least this)."""
        return int(model_class(self.arch).halo(self))

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
        model_class(self.arch).check_config(self)


# Named presets for `--model`: srx/presets.py (no torch, so the CLI's --help can list them)


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


class SrxModel(nn.Module):
    """What every registered architecture tells the stages about itself, from a ModelConfig, so
    that train, export, runtime and camera need no case for it (a new model: a subclass in its
    module and one MODELS entry). Subclasses build the network from the config in __init__ (a
    `config` attribute, forward from LR Y (N,1,h,w) in [0,1] to HR Y) and override what differs."""

    #: features on the LR grid with zero padding (lrnet): training's loss border is 0 (patch edges and
    #: frame edges look alike) and a frame's activations are per LR pixel; SRCNN's are on the HR grid
    lr_grid: bool = False
    #: the backward pass on CUDA replays exactly under a seed (replicate padding's does not)
    deterministic_cuda: bool = True

    @classmethod
    def check_config(cls, config: "ModelConfig") -> None:
        """Raise SrxError for kernel sizes and widths the architecture cannot take."""
        if any(k < 1 or k % 2 == 0 for k in config.kernel_sizes):
            raise SrxError(f"{config.arch} kernel sizes must be odd and positive, got {config.kernel_sizes}")
        if any(w < 1 for w in config.widths):
            raise SrxError(f"{config.arch} widths must be positive, got {config.widths}")

    @classmethod
    def config_name(cls, config: "ModelConfig") -> str:
        return f"{config.arch}-{'-'.join(map(str, config.kernel_sizes))}-x{config.scale}"

    @classmethod
    def halo(cls, config: "ModelConfig") -> int:
        """LR pixels of context one output pixel depends on."""
        raise NotImplementedError(f"{cls.__name__} must say its halo (LR pixels of context)")

    @classmethod
    def macs_per_hr_pixel(cls, config: "ModelConfig") -> float:
        raise SrxError(f"no FLOP model for {config.arch!r}")

    @classmethod
    def inference_params(cls, config: "ModelConfig") -> int:
        raise SrxError(f"no parameter count for {config.arch!r}")

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """(hidden, last) parameters, for --optimizer sgd's smaller rate on the last layer: by default
        the last two tensors registered (the last layer's weight and bias) are the last layer."""
        params = list(self.parameters())
        return [params[:-2], params[-2:]]


class SRCNN(SrxModel):
    """Dong et al. 2014/2016: patch extraction, non-linear mapping, reconstruction."""

    deterministic_cuda = False  # replicate padding: atomic adds in the CUDA backward

    @classmethod
    def check_config(cls, config: "ModelConfig") -> None:
        if len(config.kernel_sizes) != 3 or len(config.widths) != 2:
            raise SrxError(f"SRCNN needs 3 kernel sizes and 2 widths, got {config.kernel_sizes} and {config.widths}")
        if any(k < 1 or k % 2 == 0 for k in config.kernel_sizes):
            raise SrxError(f"SRCNN kernel sizes must be odd and positive, got {config.kernel_sizes}")

    @classmethod
    def halo(cls, config: "ModelConfig") -> int:
        # the bicubic phase conv reaches 2 LR pixels, then the HR convs sum(k // 2) HR pixels
        return 2 + -(-sum(int(k) // 2 for k in config.kernel_sizes) // config.scale)

    @classmethod
    def macs_per_hr_pixel(cls, config: "ModelConfig") -> float:
        f1, f2, f3 = config.kernel_sizes
        n1, n2 = config.widths
        return f1 * f1 * n1 + f2 * f2 * n1 * n2 + f3 * f3 * n2 + 25  # + the bicubic phase conv

    @classmethod
    def inference_params(cls, config: "ModelConfig") -> int:
        widths = [1, *config.widths, 1]
        return sum(k * k * widths[i] * widths[i + 1] + widths[i + 1] for i, k in enumerate(config.kernel_sizes))

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


class RepConv(nn.Module):
    """A k x k convolution trained as the sum of three linear branches, k x k + 1 x 1 + identity
    (the identity only where input and output widths match), re-parameterised as in RepVGG/ECBSR.

    The branches are summed into one kernel before every convolution, so training costs one
    convolution and `fused()` hands export a plain `nn.Conv2d` that computes the same function
    exactly (zero padding makes the sum of branches equal the sum of their kernels). What the
    branches buy is optimisation: the identity start and the extra centre path train a deeper
    plain net faster, at no cost at inference."""

    def __init__(self, cin: int, cout: int, k: int, branches: bool = True) -> None:
        super().__init__()
        self.cin, self.cout, self.k = cin, cout, k
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)
        self.point = nn.Conv2d(cin, cout, 1) if k > 1 and branches else None
        if cin == cout and branches:
            eye = torch.zeros(cout, cin, k, k)
            eye[torch.arange(cout), torch.arange(cin), k // 2, k // 2] = 1.0
            self.register_buffer("eye", eye, persistent=False)
        else:
            self.eye = None

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = self.conv.weight, self.conv.bias
        if self.point is not None:
            c = self.k // 2
            w = w + F.pad(self.point.weight, (c, c, c, c))
            b = b + self.point.bias
        if self.eye is not None:
            w = w + self.eye
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.kernel()
        return F.conv2d(x, w, b, padding=self.k // 2)

    def fused(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.cin, self.cout, self.k, padding=self.k // 2)
        w, b = self.kernel()
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        return conv


class LRNet(SrxModel):
    """The `fast` architecture: a plain CNN on the LR grid (ESPCN's layout, deeper and narrower),
    ReLU after every hidden layer, a last layer with one output per output phase (scale^2), and a
    global skip over MATLAB bicubic computed on the LR grid too (the phase kernels of
    BicubicUpsample), added before the single pixel shuffle. Zero padding throughout, so every
    layer is one ONNX Conv and the export is the model layer by layer.

    Chosen for ONNX Runtime's CPU kernels (README, Shipped weights: `fast` and `camera`): 3x3 convolutions over 32 channels
    run near their FLOP floor there, where FSRCNN's 12-channel, PReLU and transposed layers do not."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        s = config.scale
        widths = [1, *config.widths, s * s]
        self.layers = nn.ModuleList(
            RepConv(widths[i], widths[i + 1], k, config.branches) for i, k in enumerate(config.kernel_sizes)
        )
        last = self.layers[-1]
        for conv in (last.conv, last.point):
            if conv is None:
                continue
            nn.init.normal_(conv.weight, std=1e-3)
            nn.init.zeros_(conv.bias)
        self.register_buffer("bicubic", torch.from_numpy(bicubic_phase_kernels(s)).float(), persistent=False)

    lr_grid = True

    @classmethod
    def check_config(cls, config: "ModelConfig") -> None:
        if len(config.kernel_sizes) < 2 or len(config.widths) != len(config.kernel_sizes) - 1:
            raise SrxError(f"lrnet needs at least 2 kernel sizes and one width per hidden layer (one fewer than "
                           f"kernel sizes), got {config.kernel_sizes} and {config.widths}")
        super().check_config(config)

    @classmethod
    def config_name(cls, config: "ModelConfig") -> str:
        # lrnet-<width>x<spatial layers>, then -pw or -pwN for N pointwise (1x1) layers
        pointwise = sum(1 for k in config.kernel_sizes if k == 1)
        spatial = len(config.kernel_sizes) - pointwise
        tag = "" if not pointwise else "-pw" if pointwise == 1 else f"-pw{pointwise}"
        return f"lrnet-{config.widths[0]}x{spatial}{tag}-x{config.scale}"

    @classmethod
    def halo(cls, config: "ModelConfig") -> int:
        # LR-grid convolutions, and the bicubic skip reaching 2 LR pixels
        return max(2, sum(int(k) // 2 for k in config.kernel_sizes))

    @classmethod
    def macs_per_hr_pixel(cls, config: "ModelConfig") -> float:
        # LR-grid layers: per LR pixel, shared by scale^2 output pixels
        s = config.scale
        widths = [1, *config.widths, s * s]
        per_lr = sum(k * k * widths[i] * widths[i + 1] for i, k in enumerate(config.kernel_sizes))
        return (per_lr + 25 * s * s) / (s * s)  # + the bicubic phase conv

    @classmethod
    def inference_params(cls, config: "ModelConfig") -> int:
        widths = [1, *config.widths, config.scale**2]
        return sum(k * k * widths[i] * widths[i + 1] + widths[i + 1] for i, k in enumerate(config.kernel_sizes))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h = lr
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        out = self.layers[-1](h)
        if self.config.residual:
            out = out + F.conv2d(F.pad(lr, (2, 2, 2, 2), mode="replicate"), self.bicubic)
        return F.pixel_shuffle(out, self.config.scale)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [[p for layer in self.layers[:-1] for p in layer.parameters()], list(self.layers[-1].parameters())]


#: the architectures: ModelConfig.arch -> its SrxModel subclass (a new model: one entry here)
MODELS: dict[str, type[SrxModel]] = {"srcnn": SRCNN, "lrnet": LRNet}


def model_class(arch: str) -> type[SrxModel]:
    if arch not in MODELS:
        raise SrxError(f"unknown model {arch!r}: expected one of {', '.join(sorted(MODELS))}")
    return MODELS[arch]


def build_model(config: ModelConfig) -> nn.Module:
    config.validate()
    return MODELS[config.arch](config)


def with_pointwise_layer(config: ModelConfig, state: dict[str, torch.Tensor],
                         position: int | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """An lrnet with one more hidden layer, a pointwise (1x1) convolution inserted before layer
    `position` (default: before the last layer), that computes exactly what `config`/`state`
    computed: the new layer's own weights start at zero, so only its identity branch acts, and its
    input has just been through a ReLU (lrnet-32x4 -> lrnet-32x4-pw, a warm start for
    `srx train --init`). Position 0 would put it before the first ReLU, where the identity start
    is not the same function, so positions run from 1 to the index of the last layer."""
    if config.arch != "lrnet" or not config.branches:
        raise SrxError(f"a pointwise layer can be inserted into an lrnet with branches, not {config.name}")
    last = len(config.kernel_sizes) - 1
    at = last if position is None else int(position)
    if not 1 <= at <= last:
        raise SrxError(f"a pointwise layer goes before one of layers 1..{last} of {config.name} "
                       f"(after a ReLU), got position {position}")
    new_config = dataclasses.replace(config, kernel_sizes=[*config.kernel_sizes[:at], 1, *config.kernel_sizes[at:]],
                                     widths=[*config.widths[:at], config.widths[at - 1], *config.widths[at:]])
    fresh = build_model(new_config).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in fresh.items():
        index, rest = int(key.split(".")[1]), key.split(".", 2)[2]
        if index < at:
            out[key] = state[key]
        elif index == at:
            out[key] = torch.zeros_like(value)
        else:
            out[key] = state[f"layers.{index - 1}.{rest}"]
    return new_config, out


def macs_per_hr_pixel(config: ModelConfig) -> float:
    """Multiply-accumulates per output pixel (for FLOP floors in benchmarks)."""
    return float(model_class(config.arch).macs_per_hr_pixel(config))


def inference_params(config: ModelConfig) -> int:
    """Weights and biases of the network as it runs (re-parameterised branches collapsed)."""
    return int(model_class(config.arch).inference_params(config))
