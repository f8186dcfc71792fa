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
    assert set(timings[0]) == {"pre", "infer", "post", "batch", "call"} and set(timings[5]) == {"infer", "batch", "call"}
    assert [t["batch"] for t in timings] == [2, 2, 1, 1, 1, 1]


def test_workers_overlap_calls_and_equal_one_worker(onnx_graphs) -> None:
    """Two workers split a size group into two calls that run on two threads at once; the frames
    are the same as with one worker."""
    import threading
    import time

    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner

    class Threads(Recording):
        concurrent_infer = True

        def __init__(self, inner: Runner) -> None:
            super().__init__(inner)
            self.threads_seen: set[str] = set()

        def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
            self.threads_seen.add(threading.current_thread().name)
            time.sleep(0.05)  # long enough that the first call is still running when the next is handed out
            return super().infer_impl(lr_y)

    frames = [synthetic_photo(20, 24, seed=i) for i in range(5)] + [synthetic_photo(16, 30, seed=9)]
    one = Upscaler(OnnxRuntimeRunner(onnx_graphs(2)[0], threads=1), 2)
    runner = Threads(OnnxRuntimeRunner(onnx_graphs(2)[0], threads=1))
    two = Upscaler(runner, 2, workers=2)
    timings: list[dict] = []
    with one, two:
        want = one.upscale_batch(frames)
        got = two.upscale_batch(frames, timings)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    # 5 frames of one size: calls of 3 and 2; the other size: one call of 1
    assert sorted(runner.shapes) == sorted([(3, 1, 20, 24), (2, 1, 20, 24), (1, 1, 16, 30)])
    assert len({t["call"] for t in timings}) == 3 and len(runner.threads_seen) == 2
    assert two._pool is None  # closed with the upscaler


def test_workers_need_a_backend_whose_calls_may_overlap(ckpt) -> None:
    import pytest

    from srx.errors import SrxError
    from srx.runtime.torch_runner import TorchRunner

    with pytest.raises(SrxError, match="several threads"):
        Upscaler(TorchRunner(ckpt(2)), 2, workers=2)


def test_parallel_upscaler_runs_single_threaded_calls_on_every_thread(onnx_graphs) -> None:
    """create_upscaler(parallel=True) (several cameras) turns ONNX Runtime's CPU threads into that
    many overlapping one-thread calls; without it (one camera, one frame at a time) the model keeps
    its threads inside each call."""
    from srx.runtime.onnxruntime_runner import physical_cores
    from srx.runtime.upscaler import create_upscaler

    # --threads other than the core count, so a --threads the parallel path ignored for the core
    # count fails on any host (2 passed on a 2-core one)
    threads = physical_cores() + 1
    many = create_upscaler(2, model_file=onnx_graphs(2)[0], backend="onnxruntime", threads=threads, parallel=True)
    one = create_upscaler(2, model_file=onnx_graphs(2)[0], backend="onnxruntime", threads=threads)
    with many, one:
        assert (many.workers, many.runner.threads) == (threads, 1)
        assert (one.workers, one.runner.threads) == (1, threads)
        frames = [synthetic_photo(20, 24, seed=i) for i in range(4)]
        assert all(np.array_equal(a, b) for a, b in zip(many.upscale_batch(frames), one.upscale_batch(frames)))
