import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srx.checkpoint import load_checkpoint
from srx.errors import SrxError
from srx.train.loop import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]


def _cfg(folder, **kw) -> TrainConfig:
    base = dict(data=[str(folder)], val=str(folder), scale=3, model="srcnn-915", batch_size=8,
                patch_size=24, stride=12, lr=1e-3, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def test_smoke_run_writes_checkpoints_metrics_and_plot(image_folder, tmp_path):
    out = tmp_path / "run"
    result = train(_cfg(image_folder, epochs=2), out, show_progress=False, cache_dir=tmp_path / "c")
    assert result.steps > 0 and result.epochs_done == 2
    for name in ("best.pt", "last.pt", "metrics.csv", "training.png", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and all(float(r["val_psnr"]) > 20 for r in rows)
    last = load_checkpoint(out / "last.pt")
    assert last["train_config"]["seed"] == 7 and last["step"] == result.steps


def test_fixed_seed_is_deterministic_and_resume_replays_exactly(image_folder, tmp_path):
    cache = tmp_path / "c"
    straight = train(_cfg(image_folder, max_steps=6, val=None), tmp_path / "a", show_progress=False, cache_dir=cache)
    again = train(_cfg(image_folder, max_steps=6, val=None), tmp_path / "b", show_progress=False, cache_dir=cache)
    paused = train(_cfg(image_folder, max_steps=6, val=None), tmp_path / "c1", show_progress=False, cache_dir=cache,
                   stop_after=3)
    assert paused.stopped_by == "interrupted"
    assert load_checkpoint(tmp_path / "c1" / "last.pt")["step"] == 3
    resumed = train(_cfg(image_folder, val=None), tmp_path / "c1", resume=tmp_path / "c1" / "last.pt",
                    show_progress=False, cache_dir=cache)
    assert straight.steps == again.steps == resumed.steps == 6
    sa = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    sb = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    sc = load_checkpoint(tmp_path / "c1" / "last.pt")["state_dict"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
        assert torch.equal(sa[k], sc[k]), k


def test_divergence_stops_with_a_clear_message(image_folder, tmp_path):
    with pytest.raises(SrxError, match="training diverged"):
        train(_cfg(image_folder, optimizer="sgd", lr=1e8, epochs=3, val=None), tmp_path / "nan",
              show_progress=False, cache_dir=tmp_path / "c")


def test_resume_needs_a_training_state(image_folder, tmp_path, tiny_checkpoint):
    with pytest.raises(SrxError, match="weights only"):
        train(_cfg(image_folder, epochs=1), tmp_path / "r", resume=tiny_checkpoint(3), show_progress=False)


@pytest.mark.slow
def test_torchrun_two_processes_data_parallel(image_folder, tmp_path):
    """DDP over gloo with 2 processes on this CPU; both ranks step together, rank 0 writes."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "srx", "train", "--data", str(image_folder), "--scale", "3", "--patch-size", "24", "--stride", "12",
           "--batch-size", "8", "--max-steps", "5", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 5
    assert "over 2 process(es)" in proc.stderr
