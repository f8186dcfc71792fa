"""PyTorch backend: the reference every other backend is checked against.

On a CUDA device it also runs whole frames on the GPU (`infer_frame`): colour conversion, model,
chroma enlargement and the return to 8-bit BGR, so only the LR frame goes up and the HR frame comes
down. On the H200 and H100, with that work on one CPU thread, end to end was 2.3-6.3x the model
(lab notes, the GPU runs)."""
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
        self._colour_maps: tuple[Any, Any] | None = None  # infer_frame's _FWD and _CHROMA_BGR on the device
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

    @property
    def frames_on_device(self) -> bool:
        """True on a CUDA device: the Upscaler then hands whole BGR frames to `infer_frame`. On the
        CPU its OpenCV colour path is the faster one."""
        return self.is_active and self.device.startswith("cuda")

    def infer_frame(self, bgr: np.ndarray) -> np.ndarray:
        """LR BGR uint8 (h, w, 3) -> HR BGR uint8 (s*h, s*w, 3) on this runner's device: the same
        arithmetic as the Upscaler's CPU path (`_FWD`, the chroma folded into B, G, R on the LR grid,
        bicubic enlargement with OpenCV's kernel, `_Y_GAIN` times the HR Y added, rounded to
        nearest), within 2 levels of it."""
        import torch
        import torch.nn.functional as F

        from srx.runtime.upscaler import _CHROMA_BGR, _FWD, _Y_GAIN

        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise SrxError(f"infer_frame expects an H x W x 3 uint8 BGR frame, got {bgr.dtype} {bgr.shape}")
        if not self.is_active:
            self.activate()
        h, w = bgr.shape[:2]
        s = int(self.scale)
        if self._colour_maps is None:  # uploaded once, not with every frame
            self._colour_maps = (torch.from_numpy(_FWD).to(self.device), torch.from_numpy(_CHROMA_BGR).to(self.device))
        fwd, chroma_map = self._colour_maps
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(bgr)).to(self.device).float()
            ycc = x @ fwd[:, :3].T + fwd[:, 3]  # Y in model units, Cb and Cr in 0..255
            hr_y = self.model(ycc[..., 0][None, None].contiguous()).float()[0, 0]
            chroma = (ycc @ chroma_map[:, :3].T + chroma_map[:, 3]).permute(2, 0, 1)[None]  # B, G, R parts
            # PyTorch's bicubic is OpenCV's INTER_CUBIC (a = -0.75, half-pixel centres, edge pixels
            # repeated): within 5e-4 of cv2.resize on 8-bit values
            up = F.interpolate(chroma, size=(s * h, s * w), mode="bicubic", align_corners=False)[0]
            out = torch.round(up + _Y_GAIN * hr_y).clamp_(0, 255).to(torch.uint8)
            return out.permute(1, 2, 0).contiguous().cpu().numpy()
