"""scripts/average_weights.py through its command line: the mean of one model's weights from several runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from srx.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from tests.test_fast_model import lrnet

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "average_weights.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_mean_of_two_runs_keeps_the_last_runs_record(tmp_path):
    a, b = lrnet(3, seed=1), lrnet(3, seed=2)
    save_checkpoint(tmp_path / "a.pt", a, a.config, step=10, train_config={"loss": "l1"})
    save_checkpoint(tmp_path / "b.pt", b, b.config, step=20, train_config={"loss": "mse"},
                    optimizer={"state": {}})
    out = tmp_path / "soup" / "last.pt"
    res = _run(tmp_path / "a.pt", tmp_path / "b.pt", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "the mean of 2 checkpoints" in res.stdout
    soup, config, payload = model_from_checkpoint(out, 3)
    assert config == a.config
    for name, value in soup.state_dict().items():
        torch.testing.assert_close(value, (a.state_dict()[name] + b.state_dict()[name]) / 2, rtol=0, atol=1e-7)
    assert payload["step"] == 20 and payload["train_config"] == {"loss": "mse"}
    assert "optimizer" not in load_checkpoint(out)  # a soup is a starting point (--init), not a run to resume


def test_different_models_or_a_single_file_are_one_line(tmp_path):
    x3, x4 = lrnet(3), lrnet(4)
    save_checkpoint(tmp_path / "x3.pt", x3, x3.config)
    save_checkpoint(tmp_path / "x4.pt", x4, x4.config)
    mixed = _run(tmp_path / "x3.pt", tmp_path / "x4.pt", "--out", tmp_path / "m.pt")
    assert mixed.returncode == 1 and mixed.stderr.strip().startswith("error:") and "one architecture and scale" in mixed.stderr
    assert "Traceback" not in mixed.stderr and not (tmp_path / "m.pt").exists()
    alone = _run(tmp_path / "x3.pt", "--out", tmp_path / "m.pt")
    assert alone.returncode == 1 and "at least two checkpoints, got 1" in alone.stderr
    missing = _run(tmp_path / "x3.pt", tmp_path / "nope.pt", "--out", tmp_path / "m.pt")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_shares_weight_the_mean(tmp_path):
    a, b = lrnet(3, seed=1), lrnet(3, seed=2)
    save_checkpoint(tmp_path / "a.pt", a, a.config)
    save_checkpoint(tmp_path / "b.pt", b, b.config)
    out = tmp_path / "mix.pt"
    res = _run(tmp_path / "a.pt", tmp_path / "b.pt", "--shares", "9", "1", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "in shares 9:1" in res.stdout
    mix, _, _ = model_from_checkpoint(out, 3)
    for name, value in mix.state_dict().items():
        torch.testing.assert_close(value, 0.9 * a.state_dict()[name] + 0.1 * b.state_dict()[name], rtol=0, atol=1e-6)
    for shares, why in [(["1"], "gives 1 number(s) for 2 checkpoints"), (["1", "-1"], "numbers of 0 or more"),
                        (["0", "0"], "not all 0")]:
        bad = _run(tmp_path / "a.pt", tmp_path / "b.pt", "--shares", *shares, "--out", tmp_path / "bad.pt")
        assert bad.returncode == 1 and why in bad.stderr and "Traceback" not in bad.stderr
        assert not (tmp_path / "bad.pt").exists()
