"""Upscaler.upscale_batch: one model call per frame size (in chunks of the runner's max_batch), each
result equal to upscale() of that frame; other frames (grayscale, alpha, tiled) go one by one."""
from __future__ import annotations

import numpy as np

from srx.runtime.base import Runner
from srx.runtime.upscaler import Upscaler
from tests.conftest import synthetic_photo


class Recording(Runner):
    """The real ONNX Runtime runner, recording the batch shapes it is given."""

    backend = "recording"

    def __init__(self, inner: Runner, max_batch: int | None = None) -> None:
        super().__init__("recording " + inner.name)
        self.inner, self.scale, self.config, self.kernel_sizes = inner, inner.scale, inner.config, inner.kernel_sizes
        self.max_batch = max_batch
        self.shapes: list[tuple[int, ...]] = []

    def activate_impl(self) -> None:
        self.inner.activate()

    def deactivate_impl(self) -> None:
        self.inner.deactivate()

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        self.shapes.append(lr_y.shape)
        return self.inner.infer(lr_y)


def test_batches_by_size_and_equals_upscale(onnx_graphs) -> None:
    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner

    runner = Recording(OnnxRuntimeRunner(onnx_graphs(2)[0], threads=1), max_batch=2)
    up = Upscaler(runner, 2, tile=64)
    gray = synthetic_photo(20, 24, seed=7)[..., 0]
    big = synthetic_photo(70, 40, seed=8)  # 70 > tile: tiled, on its own
    frames = [synthetic_photo(20, 24, seed=i) for i in range(3)] + [synthetic_photo(16, 30, seed=5), gray, big]
    timings: list[dict] = []
    with up:
        outs = up.upscale_batch(frames, timings)
        runner.shapes.clear()
        up.upscale_batch(frames[:4])
        batched_calls = list(runner.shapes)
        singles = [up.upscale(f) for f in frames]
    # 20x24 frames: a batch of 2 then 1 (max_batch 2); 16x30: 1
    assert sorted(batched_calls) == sorted([(2, 1, 20, 24), (1, 1, 20, 24), (1, 1, 16, 30)])
    for got, want in zip(outs, singles):
        assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    assert outs[4].ndim == 2 and outs[5].shape == (140, 80, 3)
    assert set(timings[0]) == {"pre", "infer", "post"} and set(timings[5]) == {"infer"}
