"""PyTorch backend: the reference every other backend is checked against."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srx.errors import SrxError
from srx.runtime.base import Runner


class TorchRunner(Runner):
    """Runs an srx model in PyTorch (inference_mode). Either `model` (an nn.Module with a `config`)
    or a checkpoint (`weights`, default: the shipped weights for `scale`)."""

    backend = "torch"

    def __init__(
        self,
        weights: Path | None = None,
        scale: int = 3,
        model: Any = None,
        threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        self.weights = Path(weights) if weights is not None else None
        self.threads = threads
        self.device = device
        self.model = model
        self.scale = scale
        if model is not None:
            self.config = getattr(model, "config", None)
            if self.config is not None:
                self.scale = self.config.scale
        else:
            from srx.checkpoint import model_from_checkpoint, resolve_weights

            self.weights = resolve_weights(weights, scale)
            self.model, self.config, _ = model_from_checkpoint(self.weights)
            self.scale = self.config.scale
        if self.config is not None:
            self.kernel_sizes = list(self.config.kernel_sizes)

    def describe(self) -> str:
        return f"torch ({self.device}, {self.config.name if self.config else 'model'})"

    def activate_impl(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise SrxError(f"torch device {self.device!r} was asked for, but this PyTorch sees no CUDA GPU (a "
                               "CPU build, or no driver); run on the CPU instead (--backend torch)")
            # the reference computes in full FP32: cuDNN would otherwise run the convolutions in TF32
            # on Ampere and later (10-bit mantissa), which other backends' parity would inherit
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.model = self.model.to(self.device).eval()

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(lr_y).to(self.device))
        return out.float().cpu().numpy()
