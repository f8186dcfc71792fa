"""The one interface every inference backend implements (after Polygraphy's BaseRunner).

A runner maps an LR Y batch (N, 1, h, w) float32 in [0, 1] (Y/255; float64 is converted, any
other dtype or shape, or an empty batch, is one SrxError: `Runner.checked_batch`) to the HR Y
batch (N, 1, s*h, s*w) float32, numpy in and numpy out, whatever runs underneath. Use it as a context manager, or call
activate()/deactivate() around infer() yourself.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from srx.errors import OutOfMemory, SrxError

if TYPE_CHECKING:  # srx.models imports torch; runners that do not need it must not pay for it
    from srx.models import ModelConfig


class RunnerUnavailable(SrxError):
    """The backend exists but cannot answer right now (a Triton server that stopped or restarts);
    a stream may retry it with backoff instead of stopping."""


class Runner(ABC):
    #: short backend name: "torch", "onnxruntime", "tensorrt"
    backend: str = "base"
    #: the upscaling factor of the model, when the runner knows it (every srx runner does)
    scale: int | None = None
    #: the model's architecture, when known (lets the Upscaler size tile overlaps exactly)
    config: "ModelConfig | None" = None
    #: the model's conv kernel sizes (HR side), when known: they set the context a tile needs
    kernel_sizes: list[int] | None = None
    #: (min_hw, max_hw) input sizes the backend accepts (a TensorRT profile); None: any size
    input_hw_range: "tuple[tuple[int, int], tuple[int, int]] | None" = None
    #: the largest batch one infer() call accepts (a TensorRT profile, a Triton model); None: any
    max_batch: int | None = None
    #: infer() may be called from several threads at once (the calls then overlap)
    concurrent_infer: bool = False

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.backend
        self.is_active = False
        # threads sharing a runner (an Upscaler activates it on first use) activate it once
        self._activation = threading.RLock()

    @staticmethod
    def config_from_dict(data: Any) -> "ModelConfig | None":
        """The ModelConfig stored in a graph's or engine's metadata, or None if it is not one."""
        from srx.models import ModelConfig

        try:
            return ModelConfig.from_dict(dict(data)) if data else None
        except (SrxError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        """One line for logs: backend and what it runs on."""
        return self.name

    def activate(self) -> "Runner":
        if not self.is_active:
            with self._activation:
                if not self.is_active:
                    self.activate_impl()
                    self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self.deactivate_impl()
            finally:
                self.is_active = False

    def infer(self, lr_y: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise SrxError(f"runner {self.name} is not active; call activate() or use it as a context manager")
        batch = self.checked_batch(lr_y)
        try:
            return self.infer_impl(batch)
        except SrxError:
            raise
        except Exception as exc:  # an allocation that failed (ONNX Runtime's arena, numpy): one SrxError
            from srx.memory import is_out_of_memory

            if not is_out_of_memory(exc):
                raise
        # raised here, not in the handler, so the failed call's buffers go with its traceback
        n, _, h, w = lr_y.shape
        batch = f"{n} inputs" if n > 1 else "an input"
        raise OutOfMemory(f"out of memory running the model ({self.describe()}) on {batch} of {w}x{h}",
                          subject=f"{batch} of {w}x{h}", in_model=True)

    def checked_batch(self, lr_y: Any) -> np.ndarray:
        """`lr_y` as infer_impl takes it (C-contiguous float32, native byte order), or one SrxError
        saying what the model contract expects and what was found: a float array (float64 is
        converted; an integer one would run 0..255 values through a 0..1 model), four axes with one
        channel, and at least one frame of at least 1x1."""
        expected = f"runner {self.name} expects an (N, 1, H, W) float32 Y batch in model units (Y/255)"
        if not isinstance(lr_y, np.ndarray):
            raise SrxError(f"{expected}, got a {type(lr_y).__name__}, not a numpy array")
        if lr_y.dtype.kind != "f" or lr_y.dtype.itemsize not in (4, 8):
            hint = " (8-bit Y: divide it by 255 first)" if lr_y.dtype == np.uint8 else ""
            raise SrxError(f"{expected}, got {lr_y.dtype} values{hint}")
        if lr_y.ndim != 4 or lr_y.shape[1] != 1:
            raise SrxError(f"{expected}, got shape {lr_y.shape}")
        if lr_y.size == 0:
            raise SrxError(f"{expected} with N, H and W at least 1, got shape {lr_y.shape}")
        return np.ascontiguousarray(lr_y, dtype=np.float32)

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray: ...

    def deactivate_impl(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()
