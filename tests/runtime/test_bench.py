"""Bench pieces that must be right for the figures to mean anything (timings are never asserted)."""
from __future__ import annotations

from pathlib import Path

import pytest

from srx.models import ModelConfig, macs_per_hr_pixel
from srx.runtime.bench import GemmProbe, frame_flops

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
