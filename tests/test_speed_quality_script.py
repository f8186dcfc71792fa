"""scripts/speed_quality.py end to end at one repetition: the classic networks as their papers
describe them, every graph exported and run by ONNX Runtime, the table and the picture."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "speed_quality.py"


def _script():
    spec = importlib.util.spec_from_file_location("speed_quality", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


def test_fsrcnn_and_espcn_are_the_papers_networks():
    sq = _script()
    x = torch.zeros(1, 1, 17, 23)
    # FSRCNN's paper counts 12,464 weights for (56, 12, 4); ESPCN 5x5x64 + 3x3x64x32 + 3x3x32x9 at x3
    for net, params in ((sq.fsrcnn(3), 12_464), (sq.espcn(3), 5 * 5 * 64 + 9 * 64 * 32 + 9 * 32 * 9)):
        assert net(x).shape == (1, 1, 51, 69)
        weights = sum(p.numel() for name, p in net.named_parameters() if "bias" not in name
                      and p.dim() > 1)  # conv weights only, as the papers count (PReLU slopes and biases aside)
        assert weights == params, weights


def test_the_shipped_candidates_carry_what_their_weights_score():
    """The picture's dB for a shipped model is the figure its file records (Set5 x3), so shipping new
    weights without redrawing it fails here."""
    from srx.checkpoint import load_checkpoint, shipped_weights

    shipped = {"srcnn-915": "srcnn", "lrnet-32x4-pw3": "fast"}
    candidates = {c.preset: c for c in _script().CANDIDATES if c.preset in shipped}
    assert set(candidates) == set(shipped)
    for preset, name in shipped.items():
        recorded = load_checkpoint(shipped_weights(3, name))["eval"]["set5"]["model_psnr"]
        assert candidates[preset].psnr == round(recorded, 2), (preset, recorded)


def test_the_script_times_every_graph_and_draws(tmp_path):
    out_json, png = tmp_path / "sq.json", tmp_path / "sq.png"
    res = subprocess.run([sys.executable, str(SCRIPT), "--reps", "1", "--runs", "1", "--json", str(out_json),
                          "--png", str(png)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    saved = json.loads(out_json.read_text())
    sq = _script()
    assert set(saved["model_ms"]) == {c.label for c in sq.CANDIDATES}
    assert all(np.isfinite(v) and v > 0 for v in saved["model_ms"].values())
    table = [ln for ln in res.stdout.splitlines() if ln.startswith("| ") and "network" not in ln]
    assert len(table) == len(sq.CANDIDATES)
    assert "| srcnn (SRCNN 9-1-5) | 32.41 |" in res.stdout and "| 1.000 |" in res.stdout
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 400 and img.shape[1] > 700
    redraw = subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(out_json), "--png", str(tmp_path / "b.png")],
                            capture_output=True, text=True, timeout=120)
    assert redraw.returncode == 0, redraw.stderr
    assert (tmp_path / "b.png").is_file()
