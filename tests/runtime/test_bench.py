"""Bench pieces that must be right for the figures to mean anything (timings are never asserted)."""
from __future__ import annotations

from pathlib import Path

import pytest

from srx.models import ModelConfig, macs_per_hr_pixel
from srx.errors import SrxError
from srx.runtime.bench import GemmProbe, _label, frame_flops, run_bench

REPO = Path(__file__).resolve().parents[2]


def test_frame_flops_model_and_exported_graph():
    """The model's count is the textbook SRCNN count; at 720p-out x3 the exported arrangement does
    fewer multiply-adds (bicubic folded into layer 1), bands included."""
    model, graph = frame_flops(REPO / "srx/weights/srcnn-915-x3.pt", 240, 426)
    assert model == 2 * macs_per_hr_pixel(ModelConfig(scale=3)) * 720 * 1278
    assert 0.85 * model < graph < 0.97 * model


def test_gemm_probe_reports_every_library_it_timed():
    probe = GemmProbe(threads=1, quick=True)
    for _ in range(3):
        probe.sample()
    rates = probe.rates()
    assert {"torch", "numpy", "onnxruntime"} <= set(rates) and all(r > 0 for r in rates.values())
    name, best = probe.best()
    assert best == max(rates.values()) and rates[name] == best
    assert probe.count() == 3 and probe.rates(since=3) == {}


def test_gemm_rates_count_two_flops_per_multiply_add():
    """An n x n by n x n matmul is n^3 multiply-adds, 2 n^3 FLOPs: the rate is that over the median
    sample, counted here from the probe's own timings and from timings set by hand (a rate half as
    high would make every floor twice as slow and every model look twice as close to it)."""
    import statistics

    probe = GemmProbe(threads=1, quick=True)
    for _ in range(3):
        probe.sample()
    assert set(probe.sizes.values()) == {384}
    for name, rate in probe.rates().items():
        assert rate == pytest.approx(2 * 384**3 / statistics.median(probe.times[name]) / 1e9, rel=1e-12), name
    probe.times = {"torch": [9.0, 0.5, 0.25, 1.0], "numpy": [9.0, 0.125, 0.125, 4.0]}
    assert probe.rates(since=1) == {"torch": pytest.approx(2 * 384**3 / 0.5 / 1e9, rel=1e-12),
                                    "numpy": pytest.approx(2 * 384**3 / 0.125 / 1e9, rel=1e-12)}
    assert probe.best(since=1) == ("numpy", pytest.approx(0.905969664, rel=1e-9))  # GFLOP/s: 2 * 384**3 in 0.125 s


def _cuda_reason() -> str | None:
    import torch

    return None if torch.cuda.is_available() else "PyTorch sees no CUDA GPU here (a CPU build, or no driver)"


def test_a_cpu_probe_has_no_gpu_floor_to_give():
    """A GPU row must never be measured against the CPU's GEMM rate: without a GPU sample, asking for
    the GPU floor is an error, not the CPU's number."""
    probe = GemmProbe(threads=1, quick=True)
    probe.sample()
    with pytest.raises(SrxError, match="no GPU GEMM rate"):
        probe.best(gpu=True)


def test_bench_labels_a_torch_runner_by_its_device(ckpt):
    from srx.runtime.torch_runner import TorchRunner

    assert _label(TorchRunner(ckpt(3))) == "torch"
    assert _label(TorchRunner(ckpt(3), device="cuda")) == "torch-cuda"  # labelled before it activates


@pytest.mark.gpu
def test_torch_cuda_bench_row_takes_the_gpu_floor(ckpt):
    """On a GPU: the torch-cuda backend runs, and its floor is the GPU's GEMM rate, the CPU rows' the CPU's."""
    why = _cuda_reason()
    if why:
        pytest.skip(why)
    result = run_bench(["torch", "torch-cuda"], quick=True, weights=ckpt(3), cases=["quick x3"])
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torch", "torch-cuda"}
    assert rows["torch-cuda"]["gemm_library"] == "torch-cuda" and rows["torch"]["gemm_library"] != "torch-cuda"
    assert rows["torch-cuda"]["gemm_gflops"] > rows["torch"]["gemm_gflops"]


def test_rows_of_a_case_take_turns_and_a_failing_runner_leaves(ckpt):
    """Two models measured in turns, block by block with the order rotating, between GEMM samples; a
    runner that starts failing mid-case is dropped from the turns and reported, the others finish."""
    from srx.runtime.bench import BLOCK, BenchEntry, bench_case
    from srx.runtime.torch_runner import TorchRunner

    calls: list[str] = []

    class Logged(TorchRunner):
        def __init__(self, name: str, fail_after: int | None = None, **kw) -> None:
            super().__init__(**kw)
            self.name, self.fail_after, self.n = name, fail_after, 0

        def infer_impl(self, lr_y):
            self.n += 1
            calls.append(self.name)
            if self.fail_after is not None and self.n > self.fail_after:
                raise SrxError("the server went away")
            return super().infer_impl(lr_y)

    case, flops = ("quick x3", 40, 32, 3), frame_flops(ckpt(3), 32, 40)
    probe = GemmProbe(threads=1, quick=True)
    with Logged("a", weights=ckpt(3)) as a, Logged("b", weights=ckpt(3)) as b:
        rows, failed = bench_case([BenchEntry(a, "a", flops), BenchEntry(b, "b", flops)], case,
                                  reps=2 * BLOCK, warmup=1, probe=probe)
    runs = [name for k, name in enumerate(calls) if k == 0 or calls[k - 1] != name]
    assert runs == ["a", "b", "a"]  # block 1: a then b; block 2: b then a (b's two turns meet)
    assert [r.model for r in rows] == ["a", "b"] and failed == [] and probe.count() == 3
    assert all(r.reps == 2 * BLOCK and r.model_p50_ms > 0 for r in rows)
    # frames per second end to end, colour work included: from the end-to-end p50, not the model's
    assert all(r.fps == pytest.approx(1e3 / r.e2e_p50_ms, rel=1e-9) and r.e2e_p50_ms != r.model_p50_ms for r in rows)

    calls.clear()
    with Logged("ok", weights=ckpt(3)) as ok, Logged("dies", fail_after=BLOCK, weights=ckpt(3)) as dies:
        rows, failed = bench_case([BenchEntry(ok, "ok", flops), BenchEntry(dies, "dies", flops)], case,
                                  reps=3 * BLOCK, warmup=1, probe=probe)
    assert [r.model for r in rows] == ["ok"] and [(e.label, str(x)) for e, x in failed] == [("dies", "the server went away")]


def test_an_engine_is_timed_only_under_the_weights_it_was_built_from(tmp_path):
    """`srx bench --backend tensorrt --engine E -w srcnn -w fast`: E holds one model, so the other
    row is refused with the reason (bench reports it as skipped) instead of timing E under its name.
    The sidecar is what `srx export` writes beside an engine; no TensorRT is needed to read it."""
    import json

    from srx.checkpoint import shipped_weights
    from srx.export.tensorrt import sidecar_path
    from srx.fsutil import sha256_file
    from srx.runtime.bench import _check_engine_weights

    engine = tmp_path / "srcnn-x3-fp16.engine"
    engine.write_bytes(b"not opened here")
    srcnn, fast = shipped_weights(3, "srcnn"), shipped_weights(3, "fast")
    sidecar_path(engine).write_text(json.dumps({"source_sha256": sha256_file(srcnn), "name": "srcnn-x3",
                                                "weights": str(srcnn)}))
    _check_engine_weights(engine, srcnn)
    with pytest.raises(SrxError, match=r"--engine srcnn-x3-fp16.engine was built from other weights "
                                        r"\(srcnn-x3, srcnn-915-x3.pt\), not these"):
        _check_engine_weights(engine, fast)
    sidecar_path(engine).unlink()
    _check_engine_weights(engine, fast)  # no sidecar: nothing to compare (the runner reports that itself)
    # through the command: the one row asked for is refused, so nothing runs and the reason is the error
    from typer.testing import CliRunner

    from srx.cli import app
    from tests.conftest import assert_one_error_line

    sidecar_path(engine).write_text(json.dumps({"source_sha256": sha256_file(srcnn), "name": "srcnn-x3"}))
    res = CliRunner().invoke(app, ["bench", "--quick", "--case", "quick x3", "--backend", "tensorrt", "--engine", str(engine),
                                   "-w", "fast", "--threads", "1"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "was built from other weights (srcnn-x3, ?), not these")
