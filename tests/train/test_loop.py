import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srx.checkpoint import load_checkpoint
from srx.errors import SrxError
from srx.train.loop import TrainConfig, train, training_device

REPO = Path(__file__).resolve().parents[2]


def _cfg(folder, **kw) -> TrainConfig:
    base = dict(data=[str(folder)], val=str(folder), scale=3, model="srcnn-915", batch_size=8,
                patch_size=24, stride=12, lr=1e-3, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def test_smoke_run_writes_checkpoints_metrics_and_plot(image_folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (out / ".training.png.tmp.png").symlink_to(victim)  # the plot's temporary file had this fixed name
    result = train(_cfg(image_folder, epochs=2), out, show_progress=False, cache_dir=tmp_path / "c")
    assert result.steps > 0 and result.epochs_done == 2
    for name in ("best.pt", "last.pt", "metrics.csv", "training.png", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    assert victim.read_text() == "mine" and not (out / "training.png").is_symlink()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    val = [r for r in rows if r["val_psnr"]]
    assert [r["epoch"] for r in val] == ["1.000", "2.000"]
    # bicubic scores ~35.9 dB on these images and the model is a residual over it: a model that does
    # not beat its own starting point (or a broken protocol scoring ~20 dB) must fail here
    bicubic = float(val[0]["bicubic_psnr"])
    assert 30.0 < bicubic and all(r["bicubic_psnr"] == val[0]["bicubic_psnr"] for r in val)
    assert all(float(r["val_psnr"]) > bicubic - 0.05 for r in val)
    assert float(val[-1]["val_psnr"]) > bicubic
    # the training loss is logged every few steps, not only at validations (a short run's chart has points)
    losses = [r for r in rows if not r["val_psnr"]]
    assert len(losses) >= result.steps // 2 and all(float(r["train_loss"]) > 0 for r in losses)
    assert [int(r["step"]) for r in losses] == sorted(int(r["step"]) for r in losses)
    # one row a step: the epoch's last step is its validation row, whose loss is the mean since the row
    # before, like every other row's (not a second row with the epoch's mean)
    steps = [int(r["step"]) for r in rows]
    assert len(steps) == len(set(steps)) and all(float(r["train_loss"]) > 0 for r in rows)
    last = load_checkpoint(out / "last.pt")
    assert last["train_config"]["seed"] == 7 and last["step"] == result.steps


def test_fixed_seed_is_deterministic_and_resume_replays_exactly(image_folder, tmp_path):
    """On the CPU (also on a GPU host: SRCNN's CUDA backward does not replay bit for bit)."""
    cache = tmp_path / "c"
    straight = train(_cfg(image_folder, max_steps=6, val=None), tmp_path / "a", show_progress=False, cache_dir=cache,
                     device="cpu")
    again = train(_cfg(image_folder, max_steps=6, val=None), tmp_path / "b", show_progress=False, cache_dir=cache,
                  device="cpu")
    paused = train(_cfg(image_folder, max_steps=6, val=None), tmp_path / "c1", show_progress=False, cache_dir=cache,
                   stop_after=3, device="cpu")
    assert paused.stopped_by == "interrupted"
    assert load_checkpoint(tmp_path / "c1" / "last.pt")["step"] == 3
    resumed = train(_cfg(image_folder, val=None), tmp_path / "c1", resume=tmp_path / "c1" / "last.pt",
                    show_progress=False, cache_dir=cache, device="cpu")
    assert straight.steps == again.steps == resumed.steps == 6
    sa = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    sb = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    sc = load_checkpoint(tmp_path / "c1" / "last.pt")["state_dict"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
        assert torch.equal(sa[k], sc[k]), k


def test_training_device_is_the_gpu_where_one_is_seen_else_the_cpu(monkeypatch):
    assert training_device("cpu") == "cpu"
    with pytest.raises(SrxError, match="expected auto, cpu, cuda or cuda:N"):
        training_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device("auto") == "cpu"
    with pytest.raises(SrxError, match="sees no CUDA GPU .a CPU build, or no driver.; train with --device cpu"):
        training_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert training_device("auto") == "cuda:0" == training_device("CUDA")
    assert torch.backends.cudnn.allow_tf32 is False  # FP32 convolutions, as the CPU trains
    with pytest.raises(SrxError, match="this machine has 1 CUDA GPU"):
        training_device("cuda:1")
    assert training_device("auto", world=2) == "cpu"  # torchrun's processes share gloo on the CPU
    with pytest.raises(SrxError, match="2 torchrun processes runs on the CPU"):
        training_device("cuda", world=2)


@pytest.mark.gpu
def test_training_on_cuda_checkpoints_what_the_cpu_scores_and_resumes_anywhere(image_folder, tmp_path):
    """A run on the GPU (the default where one is seen): its checkpoints hold CPU tensors, the
    validation PSNR it recorded is what `srx eval`'s CPU path measures of best.pt, it replays
    exactly on resume (an lrnet model: SRCNN's replicate padding has no deterministic CUDA
    backward), and a GPU run's last.pt resumes on the CPU."""
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA GPU here (a CPU build, or no driver)")
    from srx.checkpoint import model_from_checkpoint
    from srx.evaluate import evaluate, load_eval_set, torch_predictor

    cache = tmp_path / "c"
    lrnet = dict(model="lrnet-32x4-pw3")
    straight = train(_cfg(image_folder, max_steps=6, **lrnet), tmp_path / "a", show_progress=False, cache_dir=cache)
    paused = train(_cfg(image_folder, max_steps=6, **lrnet), tmp_path / "b", show_progress=False, cache_dir=cache,
                   stop_after=3, device="cuda")
    resumed = train(_cfg(image_folder, **lrnet), tmp_path / "b", resume=tmp_path / "b" / "last.pt", show_progress=False,
                    cache_dir=cache, device="cuda")
    assert straight.steps == resumed.steps == 6 and paused.steps == 3
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("a", "b"))
    for k, v in a["state_dict"].items():
        assert v.device.type == "cpu" and torch.equal(v, b["state_dict"][k]), k
    model = model_from_checkpoint(tmp_path / "a" / "best.pt")[0]
    cpu_psnr = evaluate(load_eval_set(image_folder, 3), 3, torch_predictor(model))["mean"]["model_psnr"]
    assert abs(cpu_psnr - straight.best_psnr) < 1e-3
    # the GPU run's optimiser state travels too: go on two more steps on the CPU
    more = train(_cfg(image_folder, max_steps=8, **lrnet), tmp_path / "a", resume=tmp_path / "a" / "last.pt",
                 show_progress=False, cache_dir=cache, device="cpu")
    assert more.steps == 8


def test_divergence_stops_with_a_clear_message(image_folder, tmp_path):
    with pytest.raises(SrxError, match="training diverged"):
        train(_cfg(image_folder, optimizer="sgd", lr=1e8, epochs=3, val=None), tmp_path / "nan",
              show_progress=False, cache_dir=tmp_path / "c")


def test_ctrl_c_during_a_validation_stops_there(image_folder, tmp_path, monkeypatch):
    """Ctrl-C while the epoch's validation runs: the run saves and stops after it, with no step more and
    no second validation; Ctrl-C mid-epoch saves at once, without a validation first."""
    import os
    import signal

    import srx.train.loop as loop

    real, calls = loop.evaluate, []

    def evaluate_then_ctrl_c(pairs, scale, predictor, **kwargs):  # the real evaluation, Ctrl-C arriving during it
        if predictor is not None:  # a validation of the model, not the bicubic baseline before training
            calls.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        return real(pairs, scale, predictor, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_ctrl_c)
    result = train(_cfg(image_folder, epochs=3), tmp_path / "r", show_progress=False, cache_dir=tmp_path / "c")
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    per_epoch = int(rows[-1]["step"])
    assert result.stopped_by == "interrupted" and len(calls) == 1 and result.epochs_done == 1
    assert result.steps == per_epoch and load_checkpoint(tmp_path / "r" / "last.pt")["step"] == per_epoch
    assert [r["epoch"] for r in rows if r["val_psnr"]] == ["1.000"]
    calls.clear()
    stopped = train(_cfg(image_folder, epochs=3), tmp_path / "s", show_progress=False, cache_dir=tmp_path / "c",
                    stop_after=2)
    assert stopped.stopped_by == "interrupted" and stopped.steps == 2 and calls == []
    last = list(csv.DictReader(open(tmp_path / "s" / "metrics.csv")))[-1]
    assert last["step"] == "2" and last["val_psnr"] == "" and float(last["train_loss"]) > 0


def test_a_hangup_saves_and_stops_as_ctrl_c_does(image_folder, tmp_path, monkeypatch):
    """SIGHUP (the terminal `srx train` ran in closed) during a validation: saved after it, stopped."""
    import os
    import signal

    import srx.train.loop as loop

    real = loop.evaluate
    def evaluate_then_hangup(pairs, scale, predictor, **kwargs):
        if predictor is not None:
            os.kill(os.getpid(), signal.SIGHUP)
        return real(pairs, scale, predictor, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_hangup)
    # a SIGHUP the run does not take must fail this test, not end pytest (SIGHUP's default action)
    before = signal.signal(signal.SIGHUP, lambda *_: pytest.fail("srx train did not take SIGHUP"))
    try:
        result = train(_cfg(image_folder, epochs=3), tmp_path / "r", show_progress=False, cache_dir=tmp_path / "c")
    finally:
        signal.signal(signal.SIGHUP, before)
    assert result.stopped_by == "interrupted" and result.epochs_done == 1
    assert load_checkpoint(tmp_path / "r" / "last.pt")["step"] == result.steps


@pytest.mark.parametrize("signals, pause, saves", [
    (("SIGHUP", "SIGHUP"), 1.2, True),  # a login shell's hangup: from the kernel and from the shell
    (("SIGTERM", "SIGTERM"), 0.0, True),  # `timeout`: the child, then its group, at once
    (("SIGINT", "SIGINT"), 1.2, False),  # Ctrl-C, and again a second later: the user means it
])
def test_a_stop_that_comes_twice_saves_unless_asked_again(image_folder, tmp_path, monkeypatch, signals, pause, saves):
    """A job run from a login shell (an SSH session) gets SIGHUP twice when the terminal closes: from
    the kernel and forwarded by the shell; `timeout` signals its child and then the child's group.
    Those repeats are the same stop, not "give up at once": the run saves and stops (before, about half
    of such hangups lost the last steps and the summary). A Ctrl-C a second after the first still
    gives up at once."""
    import os
    import signal

    import srx.train.loop as loop

    real = loop.evaluate
    sent: list[str] = []

    def evaluate(pairs, scale, predictor, **kwargs):
        if predictor is not None and not sent:
            for i, name in enumerate(signals):
                if i:
                    time.sleep(pause)
                sent.append(name)
                os.kill(os.getpid(), getattr(signal, name))
        return real(pairs, scale, predictor, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate)
    # a signal the run does not take must fail this test, not end pytest (SIGHUP's and SIGTERM's default action)
    before = {sig: signal.signal(sig, lambda *_: pytest.fail("srx train did not take the signal"))
              for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        if not saves:
            with pytest.raises(KeyboardInterrupt):
                train(_cfg(image_folder, epochs=3), tmp_path / "r", show_progress=False, cache_dir=tmp_path / "c")
            assert sent == list(signals)
            return
        try:
            result = train(_cfg(image_folder, epochs=3), tmp_path / "r", show_progress=False, cache_dir=tmp_path / "c")
        except KeyboardInterrupt:  # a failure of this test, not pytest's own interrupt
            pytest.fail(f"srx train gave up at the repeated {signals[1]} instead of saving")
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    assert sent == list(signals)
    assert result.stopped_by == "interrupted" and result.epochs_done == 1
    assert load_checkpoint(tmp_path / "r" / "last.pt")["step"] == result.steps
    assert (tmp_path / "r" / "summary.txt").is_file()


def test_a_resume_whose_validation_scores_differently_rescores_its_best(image_folder, tmp_path, caplog):
    """A run saved by an srx that drew its degraded validation images another way (or whose --val
    data changed): bicubic scores those images differently now, so the kept best is of another
    measure. It was kept as it was: best.pt never replaced again (an unreachable best) or replaced
    at once by a worse model. best.pt is scored again on the validation as it is now."""
    import logging

    run = tmp_path / "r"
    train(_cfg(image_folder, max_steps=4), run, show_progress=False, cache_dir=tmp_path / "c")
    state = torch.load(run / "last.pt", weights_only=True)
    rescored = state["best_psnr"]
    state["bicubic_psnr"] += 0.4  # the older measure: 0.4 dB easier, and a best no epoch reaches on this one
    state["best_psnr"] += 5.0
    torch.save(state, run / "last.pt")
    caplog.set_level(logging.WARNING, logger="srx")
    train(_cfg(image_folder, max_steps=6), run, resume=run / "last.pt", show_progress=False,
          cache_dir=tmp_path / "c")
    said = [r.getMessage() for r in caplog.records if "scores differently" in r.getMessage()]
    assert len(said) == 1 and f"best.pt scores {rescored:.3f} dB now" in said[0], said
    after = torch.load(run / "last.pt", weights_only=True)
    assert after["best_psnr"] < rescored + 1.0  # the older best (+5 dB) is gone: best.pt can be replaced again
    caplog.clear()  # the same measure: nothing to say
    train(_cfg(image_folder, max_steps=8), run, resume=run / "last.pt", show_progress=False, cache_dir=tmp_path / "c")
    assert not [r for r in caplog.records if "scores differently" in r.getMessage()]
    # without a best.pt to score again, the next epoch's score is the best (it was a TypeError traceback)
    from typer.testing import CliRunner

    from srx.cli import app

    state = torch.load(run / "last.pt", weights_only=True)
    state["bicubic_psnr"] += 0.4
    torch.save(state, run / "last.pt")
    (run / "best.pt").unlink()
    res = CliRunner().invoke(app, ["train", "--resume", str(run / "last.pt"), "--max-steps", "10", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (run / "best.pt").is_file()


def test_resume_needs_a_training_state(image_folder, tmp_path, tiny_checkpoint):
    with pytest.raises(SrxError, match="weights only"):
        train(_cfg(image_folder, epochs=1), tmp_path / "r", resume=tiny_checkpoint(3), show_progress=False)


def test_resume_of_a_recipe_from_another_srx_is_one_line(image_folder, tmp_path):
    """A last.pt whose recipe has a field this srx does not know (a newer srx wrote it), or no recipe
    mapping at all: one error line naming them, from the CLI as from train(), never a TypeError."""
    from typer.testing import CliRunner

    from srx.cli import app

    train(_cfg(image_folder, max_steps=2, val=None), tmp_path / "r", show_progress=False, cache_dir=tmp_path / "c")
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    state["train_config"]["warmup"] = 5
    torch.save(state, tmp_path / "future.pt")
    state["train_config"] = ["not", "a", "mapping"]
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(SrxError, match=r"another srx version.*\(warmup\).*--init"):
        train(_cfg(image_folder, max_steps=4), tmp_path / "r2", resume=tmp_path / "future.pt", show_progress=False)
    for extra in ([], ["--data", str(image_folder)]):  # --data beside --resume reads the recipe in the CLI first
        res = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "future.pt"), "--max-steps", "4",
                                       "--no-progress", *extra])
        assert res.exit_code == 1 and "warmup" in res.output and "Traceback" not in res.output, res.output
    res = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "odd.pt"), "--max-steps", "4", "--no-progress"])
    assert res.exit_code == 1 and "no readable training recipe (train_config is list)" in res.output, res.output


@pytest.mark.slow
def test_torchrun_two_processes_data_parallel(image_folder, tmp_path):
    """DDP over gloo with 2 processes on this CPU; both ranks step together, rank 0 writes."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    import socket

    with socket.socket() as sock:  # a free port: other test runs on this machine may hold a fixed one
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port,
           "-m", "srx", "train", "--data", str(image_folder), "--scale", "3", "--patch-size", "24", "--stride", "12",
           "--batch-size", "8", "--max-steps", "5", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 5
    assert "over 2 process(es)" in proc.stderr
    # one report, from the first process; no raw TrainResult(...) from the second, no DDP deprecation noise
    assert proc.stdout.count("model srcnn-9-1-5-x3: 5 steps") == 1 and "TrainResult(" not in proc.stdout
    assert "FutureWarning" not in proc.stderr and "broadcast_buffers" not in proc.stderr


def _val_rows(out):
    return [r for r in csv.DictReader(open(out / "metrics.csv")) if r["val_psnr"]]


def test_resuming_a_finished_run_says_so(image_folder, tmp_path):
    out = tmp_path / "done"
    train(_cfg(image_folder, max_steps=3, val=None), out, show_progress=False, cache_dir=tmp_path / "c")
    before = load_checkpoint(out / "last.pt")
    # the message names the one option that extends the limit that ended it (a --time-budget would not)
    with pytest.raises(SrxError, match=r"is a finished run \(it reached --max-steps 3, step 3\).*pass a --max-steps "
                                       r"above 3 \(a total for the run\); to start a new schedule.*--init"):
        train(_cfg(image_folder, val=None), out, resume=out / "last.pt", show_progress=False, cache_dir=tmp_path / "c")
    with pytest.raises(SrxError, match=r"pass a --max-steps above 3"):
        train(_cfg(image_folder, val=None, time_budget=5.0), out, resume=out / "last.pt", show_progress=False,
              cache_dir=tmp_path / "c")
    # a limit the run has reached is said as the user's, not as the run's own (it read 'it reached
    # --max-steps 2' of a run that took 3, and advised above 2, which was refused again)
    for lower in (2, 3):
        with pytest.raises(SrxError, match=rf"has trained 3 step\(s\) \(step 3\); its own limit was 3 step\(s\); "
                                           rf"--max-steps {lower} on a resume is a total for the run, which it has "
                                           r"reached: pass --max-steps above 3 to train"):
            train(_cfg(image_folder, val=None, max_steps=lower), out, resume=out / "last.pt", show_progress=False,
                  cache_dir=tmp_path / "c")
    # a limit of the other kind: the advice names the run's own limit too (for an --epochs run given
    # --max-steps it advised only a --max-steps above its step, which was then refused by its epochs)
    ep = tmp_path / "epochs"
    train(_cfg(image_folder, epochs=1, val=None), ep, show_progress=False, cache_dir=tmp_path / "c")
    steps = int(load_checkpoint(ep / "last.pt")["step"])
    with pytest.raises(SrxError, match=rf"has trained {steps} step\(s\) \(step {steps}\); --max-steps 1 on a resume "
                                       rf".*: pass --epochs above 1 and --max-steps above {steps} to train"):
        train(_cfg(image_folder, val=None, max_steps=1), ep, resume=ep / "last.pt", show_progress=False,
              cache_dir=tmp_path / "c")
    assert torch.equal(load_checkpoint(out / "last.pt")["state_dict"]["conv3.weight"], before["state_dict"]["conv3.weight"])


def test_a_lower_limit_on_resume_cuts_the_run_short_and_says_so(image_folder, tmp_path, caplog):
    """An unfinished run resumed with a limit below its own but ahead of it ends there, its rate
    falling to the end by then, and a warning says so (it was silent)."""
    out = tmp_path / "r"
    train(_cfg(image_folder, max_steps=8, val=None), out, show_progress=False, cache_dir=tmp_path / "c", stop_after=2)
    with caplog.at_level("WARNING", logger="srx"):
        result = train(_cfg(image_folder, val=None, max_steps=5), out, resume=out / "last.pt", show_progress=False,
                       cache_dir=tmp_path / "c")
    assert result.steps == 5
    assert "--max-steps 5 cuts the run short (it was to train 8 step(s))" in caplog.text


def test_a_new_run_never_overwrites_an_earlier_one(image_folder, tmp_path, monkeypatch):
    """A folder holding a run is refused to a new run and to a run resumed into it from elsewhere;
    the default --out moves on to runs/train-2 (the first run's files are untouched)."""
    from typer.testing import CliRunner

    from srx.cli import app

    out = tmp_path / "x3"
    train(_cfg(image_folder, max_steps=2, val=None), out, show_progress=False, cache_dir=tmp_path / "c")
    before = (out / "last.pt").read_bytes()
    with pytest.raises(SrxError, match=r"x3 already holds a training run \(last.pt, best.pt\).*--resume .*last.pt"):
        train(_cfg(image_folder, max_steps=1, val=None), out, show_progress=False, cache_dir=tmp_path / "c")
    other = tmp_path / "other"
    train(_cfg(image_folder, max_steps=1, val=None), other, show_progress=False, cache_dir=tmp_path / "c")
    with pytest.raises(SrxError, match="already holds a training run"):
        train(_cfg(image_folder, max_steps=3, val=None), out, resume=other / "last.pt", show_progress=False,
              cache_dir=tmp_path / "c")
    assert (out / "last.pt").read_bytes() == before
    (other / "tune.json").write_text("{}")  # srx tune's folder: called what it is, and not resumed by train
    with pytest.raises(SrxError, match=r"other already holds a tuning run \(tune.json, last.pt, best.pt\); expected a new "
                                       r"folder for a new run: pass another --out"):
        train(_cfg(image_folder, max_steps=1, val=None), other, show_progress=False, cache_dir=tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "c"))
    args = ["train", "--data", str(image_folder), "--patch-size", "24", "--stride", "12", "--max-steps", "1",
            "--no-progress", "--batch-size", "4"]
    for folder in ("train", "train-2"):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert (tmp_path / "runs" / folder / "last.pt").is_file()
    assert not (tmp_path / "runs" / "train-3").exists()
    res = CliRunner().invoke(app, args + ["--out", "runs/train"])
    assert res.exit_code == 1 and res.output.startswith("error: runs/train already holds a training run")


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 180) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def test_a_folder_a_live_run_trains_into_is_refused_to_a_second_run_and_a_resume(image_folder, tmp_path):
    """Two `srx train --out X` (or two --resume X/last.pt, a cron job firing while the last one runs)
    both ran for a whole epoch before either saved, then mixed their metrics.csv rows and replaced
    each other's checkpoints. The folder is the run's from its start (an flock, held until it ends):
    another run is refused before any work, naming the live one's pid; its rows and files stay its own."""
    import signal

    out = tmp_path / "cc"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    live = subprocess.Popen([sys.executable, "-m", "srx", "train", "--data", str(image_folder), "--patch-size", "24",
                             "--stride", "12", "--batch-size", "4", "--max-steps", "1000000", "--threads", "1",
                             "--out", str(out), "--no-progress"], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(out / "last.pt", live)
        busy = rf"^{out} is in use by srx train \(pid {live.pid}\), still running; "
        with pytest.raises(SrxError, match=busy + r"wait for it to end, or pass another --out \(two runs in one "
                                                  r"folder would mix their metrics.csv and replace each other's checkpoints\)$"):
            train(_cfg(image_folder, max_steps=2, val=None), out, show_progress=False, cache_dir=tmp_path / "c")
        with pytest.raises(SrxError, match=busy + rf"wait for it to end before resuming {out / 'last.pt'}"):
            train(_cfg(image_folder, max_steps=10 ** 7, val=None), out, resume=out / "last.pt", show_progress=False,
                  cache_dir=tmp_path / "c")
        assert not (tmp_path / "c").exists()  # refused before any work: no patches cut
    finally:
        live.send_signal(signal.SIGKILL)  # the OS lets go of a killed run's folder
        live.wait()
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert steps and steps == sorted(set(steps))  # one run's rows, in order
    step = load_checkpoint(out / "last.pt")["step"]
    res = train(_cfg(image_folder, max_steps=step + 2, val=None), out, resume=out / "last.pt", show_progress=False,
                cache_dir=tmp_path / "c")
    assert res.steps == step + 2 and not (out / ".srx-train.lock").exists()


_HOLD_RUN_DIR = """
import sys, time
from srx.train.loop import claim_run_dir
claim = claim_run_dir(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def test_the_default_out_passes_a_folder_a_live_run_holds_before_its_first_save(image_folder, tmp_path, monkeypatch):
    """Both runs without --out chose runs/train (the folder held no last.pt yet: that comes at the
    first save). The default takes the next folder no live run holds; --out that folder is refused."""
    from typer.testing import CliRunner

    from srx.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "c"))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_RUN_DIR, "runs/train"], cwd=tmp_path, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["train", "--data", str(image_folder), "--patch-size", "24", "--stride", "12", "--max-steps", "1",
                "--no-progress", "--batch-size", "4"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "outputs in runs/train-2:" in res.output and (tmp_path / "runs" / "train-2" / "last.pt").is_file()
        assert sorted(p.name for p in (tmp_path / "runs" / "train").iterdir()) == [".srx-train.lock"]
        res = CliRunner().invoke(app, args + ["--out", "runs/train"])
        assert res.exit_code == 1
        assert res.output.startswith(f"error: runs/train is in use by srx train (pid {holder.pid}), still running;")
    finally:
        holder.kill()
        holder.wait()


def test_a_disk_that_fills_during_training_is_one_error_line_naming_the_file(image_folder, tmp_path, small_disk, caplog):
    """torch.save onto a full disk gave a double traceback ("[enforce fail at inline_container.cc:672]
    unexpected pos") that never said "disk"; and a patch cache that could not be written was then
    logged as "cache written"."""
    import logging

    from typer.testing import CliRunner

    from srx.cli import app
    from tests.conftest import assert_one_error_line, fill_disk

    disk = small_disk(512)
    fill_disk(disk, leave_kib=48)  # room for metrics.csv, not for the patches or a checkpoint (105 KB)
    out = disk / "run"
    with caplog.at_level(logging.INFO, logger="srx"):
        res = CliRunner().invoke(app, ["train", "--data", str(image_folder), "--patch-size", "24", "--stride", "12",
                                       "--batch-size", "8", "--max-steps", "200", "--out", str(out), "--no-progress",
                                       "--cache-dir", str(disk / "cache")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"error: cannot write {out / 'last.pt'}: no space left on device (the disk is full)")
    assert f"patch cache not kept (cannot write {disk / 'cache'}" in caplog.text and "the disk is full" in caplog.text
    assert "cache not written)" in caplog.text and "cache written)" not in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv"]  # no temporary file left, nor the lock


def test_time_budget_on_resume_is_this_invocations_time(image_folder, tmp_path):
    """A run stopped by its time budget is finished; `--resume --time-budget T` then trains T more
    seconds (not T minus what the run already used) and keeps the rate where it ended (no re-decay);
    an interrupted run resumed with a budget finishes its schedule within that budget."""
    cache = tmp_path / "c"
    out = tmp_path / "timed"
    first = train(_cfg(image_folder, time_budget=0.6, val=None), out, show_progress=False, cache_dir=cache)
    assert first.stopped_by == "time_budget"
    state = load_checkpoint(out / "last.pt")
    floor = 1e-3 * 0.01
    with pytest.raises(SrxError, match="finished run.*time budget.*pass --time-budget \\(how long to train now"):
        train(_cfg(image_folder, val=None), out, resume=out / "last.pt", show_progress=False, cache_dir=cache)

    more = train(_cfg(image_folder, time_budget=0.4, val=None), out, resume=out / "last.pt", show_progress=False,
                 cache_dir=cache)
    after = load_checkpoint(out / "last.pt")
    assert more.stopped_by == "time_budget" and more.steps > first.steps
    assert after["elapsed_s"] - state["elapsed_s"] >= 0.4  # the whole 0.4 s went to this invocation
    assert after["train_config"]["time_budget"] == pytest.approx(state["elapsed_s"] + 0.4)
    assert after["time_anchor"]["fraction"] == pytest.approx(1.0)
    for group in after["optimizer"]["param_groups"]:  # the schedule had ended: the rate stays at its floor
        assert group["lr"] == pytest.approx(floor * group["lr_mult"], rel=1e-6)

    out2 = tmp_path / "paused"
    train(_cfg(image_folder, time_budget=600, val=None), out2, show_progress=False, cache_dir=cache, stop_after=2)
    paused = load_checkpoint(out2 / "last.pt")
    lr_then = paused["optimizer"]["param_groups"][0]["lr"]
    resumed = train(_cfg(image_folder, time_budget=0.4, val=None), out2, resume=out2 / "last.pt",
                    show_progress=False, cache_dir=cache)
    end = load_checkpoint(out2 / "last.pt")
    assert resumed.stopped_by == "time_budget"  # 0.4 s, not the 600 s the run started with
    assert 0.0 < end["time_anchor"]["fraction"] < 0.01  # it resumed near the schedule's start...
    assert floor <= end["optimizer"]["param_groups"][0]["lr"] < lr_then  # ...and decayed from there, not jumped


def _cosine(fraction: float, lr: float = 1e-3, floor_ratio: float = 0.01) -> float:
    """The documented schedule, written out here: lr decays along half a cosine to lr * floor_ratio."""
    floor = lr * floor_ratio
    fraction = min(max(fraction, 0.0), 1.0)
    return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * fraction))


def test_the_rate_is_a_cosine_over_the_steps_when_the_steps_are_further_along_than_the_time(image_folder, tmp_path):
    """--max-steps 8 with a --time-budget of 10 minutes: the schedule follows whichever limit is
    further along (the steps here), so step k trains at the cosine's value at (k-1)/8 (metrics.csv
    logs each step's rate; .3e rounding), not at a straight line's (0.75 of the way down at 1/4, not
    0.86), and not held near --lr by the time budget barely begun."""
    out = tmp_path / "steps"
    result = train(_cfg(image_folder, max_steps=8, time_budget=600, val=None), out, show_progress=False,
                   cache_dir=tmp_path / "c", loss_every=1, device="cpu")
    assert result.stopped_by == "max_steps" and result.steps == 8
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    for r in rows:
        k = int(r["step"])
        assert float(r["lr"]) == pytest.approx(_cosine((k - 1) / 8), rel=1e-3), (k, r["lr"])
    assert float(rows[4]["lr"]) == pytest.approx(0.505e-3, rel=1e-3)  # the middle: halfway to the floor


def test_a_time_budget_ends_the_run_at_the_step_that_crosses_it_on_a_cosine_of_the_time(image_folder, tmp_path):
    """--time-budget 1.5 s (with a --max-steps no run reaches): every step but the last ends within the
    budget, so the run stops at most one step past it, that step's time as this run measured it (a
    bound from the run itself, not from this machine's speed); and the rate follows the cosine of
    elapsed / budget, the time being further along than the steps. Each
    step's rate was set when the step began, between the previous row's time and its own (.1f)."""
    budget = 1.5  # several steps, even where the first one is slow (on the CPU: a GPU's first step can take seconds)
    out = tmp_path / "timed"
    result = train(_cfg(image_folder, time_budget=budget, max_steps=10**6, val=None), out, show_progress=False,
                   cache_dir=tmp_path / "c", loss_every=1, device="cpu")
    assert result.stopped_by == "time_budget"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, result.steps + 1)) and len(rows) >= 2
    times = [float(r["elapsed_s"]) for r in rows]
    assert times[-2] <= budget + 0.05 and times[-1] >= budget - 0.05  # the last step is the one that crossed it
    last_step = times[-1] - times[-2] + 0.1  # with the rounding of both rows
    stopped_at = load_checkpoint(out / "last.pt")["elapsed_s"]
    # (0.2 s more: the last row and the checkpoint are written between its stamp and the stamp checked)
    assert budget <= stopped_at <= budget + last_step + 0.2, (stopped_at, last_step)
    for k, r in enumerate(rows):
        began_after, ended = (times[k - 1] - 0.05 if k else 0.0), times[k] + 0.05
        lr = float(r["lr"])
        assert _cosine(ended / budget) * (1 - 1e-3) <= lr <= _cosine(began_after / budget) * (1 + 1e-3), (k, r)


def test_metrics_keep_the_whole_history_across_resumes(image_folder, tmp_path):
    cache = tmp_path / "c"
    first = tmp_path / "a"
    train(_cfg(image_folder, max_steps=8, val=None), first, show_progress=False, cache_dir=cache, stop_after=4,
          loss_every=2)
    second = tmp_path / "b"  # resumed into another folder: the history comes along, logged as it was (every 2)
    train(_cfg(image_folder, val=None), second, resume=first / "last.pt", show_progress=False, cache_dir=cache)
    steps = [int(r["step"]) for r in csv.DictReader(open(second / "metrics.csv"))]
    # loss rows every 2 steps (plus each stop's row): steps 2 and 4 were trained before the resume
    assert sorted(set(steps)) == [2, 4, 6, 8] and steps == sorted(steps)
    assert (second / "training.png").stat().st_size > 0


def test_init_warm_starts_another_scale(image_folder, tmp_path):
    """`srx train --init` (how every shipped weight was made): x2 starts from x3's weights; an
    architecture that does not fit is refused."""
    cache = tmp_path / "c"
    train(_cfg(image_folder, max_steps=3, val=None), tmp_path / "x3", show_progress=False, cache_dir=cache)
    source = load_checkpoint(tmp_path / "x3" / "best.pt")["state_dict"]
    warm = train(_cfg(image_folder, scale=2, max_steps=1, lr=1e-9, val=None, init=str(tmp_path / "x3" / "best.pt")),
                 tmp_path / "x2", show_progress=False, cache_dir=cache)
    got = load_checkpoint(tmp_path / "x2" / "last.pt")
    assert warm.steps == 1 and got["model_config"]["scale"] == 2
    for k, v in source.items():  # one step at lr 1e-9 moves nothing visible: these are x3's weights
        assert torch.allclose(got["state_dict"][k], v, atol=1e-6), k
    fresh = train(_cfg(image_folder, scale=2, max_steps=1, lr=1e-9, val=None), tmp_path / "cold",
                  show_progress=False, cache_dir=cache)
    cold = load_checkpoint(tmp_path / "cold" / "last.pt")["state_dict"]
    assert fresh.steps == 1 and not torch.allclose(cold["conv1.weight"], source["conv1.weight"])
    with pytest.raises(SrxError, match="does not fit"):
        train(_cfg(image_folder, model="srcnn-955", max_steps=1, val=None, init=str(tmp_path / "x3" / "best.pt")),
              tmp_path / "wide", show_progress=False, cache_dir=cache)


def test_a_fine_tune_scores_its_starting_weights_first(image_folder, tmp_path):
    """With --init and --val, the starting weights' score is the first row (step 0, no training loss),
    what `srx eval` says of them; best.pt holds them until an epoch does better (here a learning rate
    that wrecks the weights: no epoch does, so best.pt stays the weights the run began from)."""
    from srx.checkpoint import model_from_checkpoint
    from srx.evaluate import evaluate, load_eval_set, torch_predictor

    cache = tmp_path / "c"
    train(_cfg(image_folder, max_steps=20), tmp_path / "start", show_progress=False, cache_dir=cache)
    start = tmp_path / "start" / "last.pt"
    wrecked = train(_cfg(image_folder, epochs=1, lr=5.0, init=str(start)), tmp_path / "ft", show_progress=False,
                    cache_dir=cache)
    rows = list(csv.DictReader(open(tmp_path / "ft" / "metrics.csv")))
    first = rows[0]
    assert (first["step"], first["epoch"], first["train_loss"]) == ("0", "0.000", "")
    pairs = load_eval_set(image_folder, 3)
    scored = evaluate(pairs, 3, torch_predictor(model_from_checkpoint(start, 3)[0]))["mean"]["model_psnr"]
    assert float(first["val_psnr"]) == pytest.approx(scored, abs=1e-4)
    assert wrecked.last_psnr < scored and wrecked.best_psnr == pytest.approx(scored, abs=1e-4)
    best = load_checkpoint(tmp_path / "ft" / "best.pt")["state_dict"]
    assert all(torch.equal(v, load_checkpoint(start)["state_dict"][k]) for k, v in best.items())


def test_best_pt_is_the_best_validation_epoch(image_folder, tmp_path):
    from srx.evaluate import evaluate, load_eval_set, torch_predictor
    from srx.checkpoint import model_from_checkpoint

    out = tmp_path / "best"
    train(_cfg(image_folder, epochs=3, lr=5e-3), out, show_progress=False, cache_dir=tmp_path / "c")
    rows = _val_rows(out)
    top = max(rows, key=lambda r: float(r["val_psnr"]))
    best = load_checkpoint(out / "best.pt")
    assert best["step"] == int(top["step"]) and best["best_psnr"] == pytest.approx(float(top["val_psnr"]), abs=1e-4)
    model, _, _ = model_from_checkpoint(out / "best.pt")
    again = evaluate(load_eval_set(image_folder, 3), 3, torch_predictor(model))["mean"]["model_psnr"]
    assert again == pytest.approx(float(top["val_psnr"]), abs=1e-3)  # best.pt holds those very weights
    assert load_checkpoint(out / "last.pt")["step"] == int(rows[-1]["step"])


def test_sgd_uses_the_papers_per_layer_rates(image_folder, tmp_path):
    out = tmp_path / "sgd"
    train(_cfg(image_folder, optimizer="sgd", lr=1e-4, max_steps=2, val=None), out, show_progress=False,
          cache_dir=tmp_path / "c")
    state = load_checkpoint(out / "last.pt")
    hidden, last = state["optimizer"]["param_groups"]
    assert hidden["momentum"] == last["momentum"] == 0.9
    assert last["lr"] == pytest.approx(0.1 * hidden["lr"]) and hidden["lr"] > 0
    assert len(hidden["params"]) == 4 and len(last["params"]) == 2  # conv1 + conv2 (w, b); conv3 (w, b)


def test_fine_tune_a_shipped_model_on_a_cameras_footage(tmp_path, monkeypatch):
    """How a user adapts `camera` to their own camera: `--init camera` (a shipped name, resolved for
    --scale; its architecture is the model when --model is left out), the earlier frames of a video to train on and the later ones to validate on. The
    checkpoint records the frame choice, so --resume trains on the same frames."""
    from typer.testing import CliRunner

    from srx.checkpoint import shipped_weights
    from srx.cli import app
    from tests.conftest import silent_video

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))
    video = silent_video(tmp_path / "cam.avi", 16, (96, 72))
    out = tmp_path / "ft"
    args = ["train", "--data", str(video), "--every", "2", "--frames", ":10", "--val", str(video), "--val-frames",
            "12:", "--init", "camera", "--scale", "3", "--patch-size", "24",
            "--stride", "24", "--batch-size", "4", "--lr", "1e-12", "--max-steps", "2", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    got = load_checkpoint(out / "last.pt")
    cfg = got["train_config"]
    assert (cfg["init"], cfg["every"], cfg["frames"], cfg["val_frames"]) == ("camera", 2, ":10", "12:")
    assert cfg["model"] == "lrnet-32x4-pw3"  # --model left out: the architecture of --init
    shipped = load_checkpoint(shipped_weights(3, "camera"))["state_dict"]
    for k, v in shipped.items():  # two steps at lr 1e-12: these are the shipped camera weights
        assert torch.allclose(got["state_dict"][k], v, atol=1e-6), k
    # frames 0, 2, 4, 6, 8 at 96x72 give 3 x 4 patches of 24 pixels each; validation scored frames 12 and 14
    from srx.train.data import extract_patches
    from srx.imageio import FrameRange

    patches = extract_patches([video], 3, 24, 24, tmp_path / "cache" / "patches", every=2, frames=FrameRange(0, 10))
    assert patches.from_cache and patches.images_used == 5 and len(patches.lr) == 5 * 3 * 4
    rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["val_psnr"]]
    from srx.evaluate import evaluate, load_eval_data

    later = load_eval_data(video, 3, 2, FrameRange(12))
    assert [p.name for p in later] == ["frame_00012", "frame_00014"]
    assert rows and float(rows[-1]["bicubic_psnr"]) == pytest.approx(evaluate(later, 3, None, with_ssim=False)["mean"]["bicubic_psnr"], abs=1e-3)


def test_init_picks_the_preset_of_its_whole_configuration(image_folder, tmp_path, caplog):
    """--model left out: --init's own preset, branches and all (lrnet-32x4-plain is not lrnet-32x4,
    whose layers it shares); a preset that differs only in those is refused, not half loaded."""
    cache = tmp_path / "c"
    train(_cfg(image_folder, model="lrnet-32x4-plain", max_steps=1, val=None), tmp_path / "plain",
          show_progress=False, cache_dir=cache)
    warm = tmp_path / "plain" / "last.pt"
    train(_cfg(image_folder, model=None, init=str(warm), max_steps=1, val=None), tmp_path / "again",
          show_progress=False, cache_dir=cache)
    assert load_checkpoint(tmp_path / "again" / "last.pt")["train_config"]["model"] == "lrnet-32x4-plain"
    with pytest.raises(SrxError, match="holds lrnet-32x4-plain x3, which does not fit --model lrnet-32x4; train it with --model lrnet-32x4-plain"):
        train(_cfg(image_folder, model="lrnet-32x4", init=str(warm), max_steps=1, val=None), tmp_path / "branched",
              show_progress=False, cache_dir=cache)


def test_validating_on_the_frames_it_trains_on_is_warned_about(tmp_path, caplog):
    import logging

    from tests.conftest import silent_video

    caplog.set_level(logging.WARNING, logger="srx")
    video = silent_video(tmp_path / "cam.avi", 16, (96, 72))
    base = dict(data=[str(video)], val=str(video), scale=3, model="lrnet-24x5", batch_size=4, patch_size=24,
                stride=24, max_steps=1, every=2)
    train(TrainConfig(**base, frames=":10", val_frames="8:"), tmp_path / "a", show_progress=False, cache_dir=tmp_path / "c")
    assert "overlap the training frames 0:10: validation scores frames the model trains on" in caplog.text
    caplog.clear()
    train(TrainConfig(**base, frames=":10", val_frames="12:"), tmp_path / "b", show_progress=False, cache_dir=tmp_path / "c")
    assert "overlap" not in caplog.text


def test_extending_a_finished_run_goes_on_from_its_schedule_and_its_epoch(image_folder, tmp_path):
    """--epochs raised on resume: the learning rate goes on from where the run stopped (its final
    rate, for a finished run), never back up the cosine; the epoch it ended on is not validated
    again (no second row for its step, with no training loss); and a best.pt that the run went on
    from is refused as a resume point, since it would write over the later last.pt."""
    import shutil

    cache, out = tmp_path / "c", tmp_path / "run"
    first = train(_cfg(image_folder, epochs=1), out, show_progress=False, cache_dir=cache, loss_every=1)
    per_epoch = first.steps
    shutil.copy(out / "last.pt", tmp_path / "epoch1.pt")
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    lr_end = float(rows[-1]["lr"])
    train(_cfg(image_folder, epochs=2), out, resume=out / "last.pt", show_progress=False, cache_dir=cache, loss_every=1)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    later = [float(r["lr"]) for r in rows if int(r["step"]) > per_epoch]
    # the first run's last step was one short of the end of its cosine; the run ended there, so the
    # added epoch trains at the final rate (1 % of --lr), not back up at the middle of a new cosine
    assert later and all(lr == pytest.approx(1e-5, rel=1e-3) and lr < lr_end for lr in later), (lr_end, later)
    validated = [int(r["step"]) for r in rows if r["val_psnr"]]
    assert validated == [per_epoch, 2 * per_epoch]
    assert all(float(r["train_loss"]) > 0 for r in rows)
    early = out / "best-early.pt"
    shutil.copy(tmp_path / "epoch1.pt", early)
    with pytest.raises(SrxError, match=rf"is step {per_epoch} of a run that went on to step {2 * per_epoch}"):
        train(_cfg(image_folder, epochs=3), out, resume=early, show_progress=False, cache_dir=cache)


def test_the_run_keeps_its_folder_claim_at_each_checkpoint(image_folder, tmp_path, monkeypatch):
    """A clean-up that removed the lock file mid-run let a second run into the folder: each checkpoint
    the run saves first takes its lock file again where it went (FolderClaim.keep, tested in
    test_fsutil), so here: the run asks before its checkpoints, and one removed before the end of the
    first epoch is back by the run's end, then removed with the claim."""
    from srx.fsutil import FolderClaim
    from srx.train.loop import RUN_LOCK

    kept = []
    real_keep = FolderClaim.keep

    def keep(self):
        if not kept:
            (self.path / RUN_LOCK).unlink()  # a clean-up, just before the first checkpoint
        kept.append(self.lock.exists())
        real_keep(self)
        kept.append(self.lock.exists())

    monkeypatch.setattr(FolderClaim, "keep", keep)
    out = tmp_path / "run"
    train(_cfg(image_folder, max_steps=3, val=None), out, show_progress=False, cache_dir=tmp_path / "c")
    assert kept[:2] == [False, True] and (out / "last.pt").exists() and not (out / RUN_LOCK).exists()


@pytest.mark.parametrize("login_shell", [False, True], ids=["alone", "job-of-bash"])
def test_a_terminal_that_hangs_up_saves_the_run(image_folder, tmp_path, login_shell):
    """`srx train` in an SSH session that closes: a real pseudo-terminal hung up mid-run, srx alone on
    it or a job of the interactive bash an SSH login runs (then SIGHUP comes twice). The run saves,
    writes its summary and ends without a traceback (the progress bar's last line went to a terminal
    that takes no more output: EIO), and it resumes from what it saved."""
    import os

    from tests.conftest import REPO, srx_until_hangup

    out = tmp_path / "run"
    status, seen = srx_until_hangup(
        ["train", "--data", str(image_folder), "--val", str(image_folder), "--model", "srcnn-915", "--epochs", "500",
         "--batch-size", "4", "--patch-size", "24", "--stride", "24", "--out", str(out), "--threads", "1"],
        ready=b"dB (best", cwd=REPO, env={"OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")},
        login_shell=login_shell)
    # 130 as after Ctrl-C (a script's `srx train ... && deploy` does not go on); not 129, killed by SIGHUP
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130, (status, seen[-2000:])
    assert b"Traceback" not in seen
    state = load_checkpoint(out / "last.pt")
    assert state["step"] > 0 and (out / "summary.txt").is_file()
