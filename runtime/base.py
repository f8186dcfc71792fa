"""The one interface every inference backend implements (after Polygraphy's BaseRunner).

A runner maps an LR Y batch (N, 1, h, w) float32 in [0, 1] to the HR Y batch (N, 1, s*h, s*w)
float32, numpy in and numpy out, whatever runs underneath. Use it as a context manager, or call
activate()/deactivate() around infer() yourself.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from srx.errors import SrxError


class Runner(ABC):
    #: short backend name: "torch", "onnxruntime", "tensorrt"
    backend: str = "base"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.backend
        self.is_active = False

    def activate(self) -> "Runner":
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
        if lr_y.ndim != 4 or lr_y.shape[1] != 1:
            raise SrxError(f"runner {self.name} expects an (N, 1, H, W) Y batch, got shape {lr_y.shape}")
        return self.infer_impl(np.ascontiguousarray(lr_y, dtype=np.float32))

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
