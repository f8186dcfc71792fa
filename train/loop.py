"""`srx train`: the training loop, single-process or data-parallel under `torchrun`.

Deterministic for a fixed seed on one machine: the data order of epoch e comes from
(seed, e) and the augmentation of step k from (seed, k), so a resumed run replays exactly what an
uninterrupted one would have done. Runs bounded by `time_budget` alone schedule the learning rate
by elapsed time and therefore depend on the machine's speed.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DistributedSampler, RandomSampler

from srx.checkpoint import load_checkpoint, resolve_weights, save_checkpoint
from srx.degrade import degrade_batch, parse_degradation
from srx.errors import SrxError
from srx.signals import hung_up, second_request, stop_signals
from srx.evaluate import EvalImage, degraded, evaluate, load_eval_data, torch_predictor
from srx.fsutil import (FolderClaim, FolderInUse, WriteError, atomic_path, atomic_write_text, check_output_dir,
                        claim_folder, ensure_dir)
from srx.imageio import FrameRange, check_data_path, is_video, parse_frame_range
from srx.models import PRESETS, ModelConfig, build_model, config_from_preset, model_class
from srx.protocol import check_scale
from srx.train.data import extract_patches
from srx.words import counted

log = logging.getLogger("srx")

METRIC_FIELDS = ["epoch", "step", "elapsed_s", "lr", "train_loss", "val_psnr", "val_ssim", "bicubic_psnr"]


@dataclass
class TrainConfig:
    """Everything that shapes a run; stored in each checkpoint so `--resume` needs nothing else."""

    data: list[str] = field(default_factory=list)
    val: str | None = None
    scale: int = 3
    model: str | None = None  # a preset; None: the architecture of `init`, else srcnn-915 (resolved by train())
    epochs: int | None = None
    time_budget: float | None = None  # seconds
    max_steps: int | None = None
    batch_size: int = 16  # measured: at equal wall time on 2 cores, 16 beat 64 by ~0.2 dB (Set5 x2)
    lr: float = 1e-3
    lr_final_ratio: float = 0.01  # cosine decay to lr * this
    optimizer: str = "adam"  # or "sgd": the paper's recipe (momentum 0.9, last layer at lr/10)
    loss: str = "mse"
    patch_size: int = 48  # HR pixels
    stride: int = 24
    augment: bool = True
    seed: int = 0
    save_every: float = 60.0  # seconds between mid-epoch `last.pt` writes
    init: str | None = None  # warm start: a checkpoint or a shipped name (e.g. x2/x4 fine-tuned from x3 weights)
    # HR pixels left out of the loss at each patch edge: there the padded bicubic base and the padded
    # convolutions see made-up neighbours that full frames do not have. None: 2 x scale.
    loss_border: int | None = None
    # camera-like degradation of the LR side (srx.degrade spec or preset; "" = the clean protocol),
    # drawn per sample and step; validation scores the same spec, deterministically
    degrade: str = ""
    # videos among `data` and a video `val`: every Nth frame is an image, training frames within
    # `frames` and validation frames within `val_frames` (START:END; "" = all), so a later stretch
    # of a camera's footage can be kept out of training and scored
    every: int = 10
    frames: str = ""
    val_frames: str = ""

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], path: Path) -> "TrainConfig":
        """The run's recipe as its checkpoint `state` stores it; SrxError when it is not one this srx
        reads (fields of a newer srx, or not a mapping) rather than a TypeError."""
        data = state.get("train_config")
        if not isinstance(data, dict):
            raise SrxError(f"{path} holds no readable training recipe (train_config is {type(data).__name__}); "
                           "resume from a last.pt written by srx train")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SrxError(f"{path} was written by another srx version: its training recipe has fields this one "
                           f"does not know ({', '.join(unknown)}); resume it with the srx that wrote it, or start a "
                           f"new run from its weights: srx train --init {path} ...")
        return cls(**data)

    @property
    def border(self) -> int:
        if self.loss_border is not None:
            return self.loss_border
        # SRCNN pads HR maps by replication, so patch edges see made-up neighbours that full frames do
        # not: leave 2 x scale pixels out. LRNet pads with zeros, which patch edges and frame edges
        # see alike, so it must learn them: measured on Set5 x3, a border of 6 left the outer HR
        # pixels 0.2 dB worse than SRCNN's (PSNR shaving 9 px instead of 3 rose 0.27 vs 0.07 dB).
        arch = PRESETS.get(self.model, {}).get("arch", "srcnn")
        return 0 if model_class(arch).lr_grid else 2 * self.scale

    def validate(self) -> None:
        check_scale(self.scale)
        if self.epochs is None and self.time_budget is None and self.max_steps is None:
            raise SrxError("say how long to train: --epochs N, --time-budget (e.g. 20m) and/or --max-steps N")
        for name in ("epochs", "max_steps", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SrxError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise SrxError(f"--time-budget must be positive, got {self.time_budget}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise SrxError(f"--lr must be a positive number, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise SrxError(f"--optimizer must be adam or sgd, got {self.optimizer!r}")
        if self.loss not in ("mse", "l1"):
            raise SrxError(f"--loss must be mse or l1, got {self.loss!r}")
        for flag, value in (("--patch-size", self.patch_size), ("--stride", self.stride)):
            if value < self.scale or value % self.scale:
                raise SrxError(f"{flag} must be a positive multiple of the scale {self.scale} (HR pixels), got {value}")
        if self.loss_border is None and 2 * self.border >= self.patch_size:
            least = -(-(2 * self.border + 1) // self.scale) * self.scale
            raise SrxError(f"--patch-size {self.patch_size} leaves no pixels for the loss inside the {self.border}-pixel "
                           f"border {self.model} leaves out at each edge; expected at least {least}")
        if self.border < 0 or 2 * self.border >= self.patch_size:
            raise SrxError(f"--loss-border must be between 0 and {(self.patch_size - 1) // 2} for "
                           f"{self.patch_size}-pixel patches, got {self.border}")
        if not self.data:
            raise SrxError("--data is required: a folder of HR training images or a video")
        if self.every < 1:
            raise SrxError(f"--every must be at least 1, got {self.every}")
        parse_frame_range(self.frames, "--frames")
        if self.val:
            check_data_path(Path(self.val), "--val")
        if parse_frame_range(self.val_frames, "--val-frames") != FrameRange() and not (self.val and is_video(Path(self.val))):
            raise SrxError(f"--val-frames {self.val_frames} applies to a video --val; "
                           f"{self.val + ' is not one' if self.val else 'there is no --val'}")
        parse_degradation(self.degrade)
        if self.model not in PRESETS:
            raise SrxError(f"unknown model {self.model!r}: expected one of {', '.join(PRESETS)}")


@dataclass
class TrainResult:
    best_psnr: float | None
    last_psnr: float | None
    bicubic_psnr: float | None
    steps: int
    epochs_done: float
    elapsed_s: float
    out_dir: Path
    stopped_by: str


class _Dist:
    """Process-group facts, trivial when not launched by torchrun."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            # srx trains on the CPU, and NCCL carries CUDA tensors only: with NCCL picked because a GPU
            # is present, DDP failed at its first collective on a GPU host (seen on an H200)
            dist.init_process_group(backend="gloo")
        self.rank = dist.get_rank() if self.enabled else 0
        self.is_main = self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any_flag(self, flag: bool) -> bool:
        """True on every rank if it is true on any (so all ranks stop together)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def first_process_path(self, path: Path) -> Path:
        """`path` as the first process has it: every process trains into the folder it claimed."""
        if not self.enabled:
            return path
        held = [str(path)]
        dist.broadcast_object_list(held, src=0)
        return Path(held[0])

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def training_device(requested: str = "auto", world: int = 1) -> str:
    """The torch device a run trains on: `auto` is the first CUDA GPU where this PyTorch sees one and
    the run is a single process, else the CPU; `cpu`, `cuda` or `cuda:N` as asked. Several torchrun
    processes train on the CPU (gloo): SrxError if one asks for a GPU there, and for a GPU this
    PyTorch cannot see."""
    name = (requested or "auto").strip().lower()
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise SrxError(f"--device {requested!r}: expected auto, cpu, cuda or cuda:N")
    if name == "cpu" or (name == "auto" and (world > 1 or not torch.cuda.is_available())):
        return "cpu"
    if world > 1:
        raise SrxError(f"--device {requested}: training over {world} torchrun processes runs on the CPU (gloo); on a GPU "
                       "run one process (srx train without torchrun)")
    if not torch.cuda.is_available():
        raise SrxError(f"--device {requested}: this PyTorch sees no CUDA GPU (a CPU build, or no driver); "
                       "train with --device cpu")
    index = int(name[5:]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise SrxError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                       f"numbered from 0")
    # reproducible and full FP32, as on the CPU: deterministic cuDNN and cuBLAS (which needs this
    # set before its first use; SRCNN's replicate padding stays the exception, see train()), and no
    # TF32, which Ampere and later would otherwise use for convs
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return f"cuda:{index}"


def _augment(lr: torch.Tensor, hr: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the 8 flips/rotations per sample, drawn from `gen`."""
    ops = torch.randint(0, 8, (lr.shape[0],), generator=gen)
    out_lr, out_hr = lr.clone(), hr.clone()
    for k in range(8):
        sel = (ops == k).nonzero(as_tuple=True)[0]
        if sel.numel() == 0 or k == 0:
            continue
        a, b = lr[sel], hr[sel]
        if k & 4:
            a, b = a.transpose(-1, -2), b.transpose(-1, -2)
        if k & 1:
            a, b = a.flip(-1), b.flip(-1)
        if k & 2:
            a, b = a.flip(-2), b.flip(-2)
        out_lr[sel], out_hr[sel] = a, b
    return out_lr, out_hr


def _no_buffer_sync() -> dict[str, bool]:
    """DDP without a buffer broadcast before every forward: the only buffers are the fixed bicubic
    kernels, equal on every rank. Newer PyTorch deprecates `broadcast_buffers` (a FutureWarning per
    process) for `forward_sync_buffers`; use whichever this PyTorch has."""
    import inspect

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def _lr_at(cfg: TrainConfig, fraction: float) -> float:
    fraction = min(max(fraction, 0.0), 1.0)
    floor = cfg.lr * cfg.lr_final_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * fraction))


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        hidden, last = model.layer_groups()
        return torch.optim.SGD(
            [{"params": hidden, "lr_mult": 1.0}, {"params": last, "lr_mult": 0.1}], lr=cfg.lr, momentum=0.9
        )
    return torch.optim.Adam([{"params": list(model.parameters()), "lr_mult": 1.0}], lr=cfg.lr)


def _write_plot(csv_path: Path, png_path: Path, bicubic: float | None) -> None:
    """Training curve (loss and validation PSNR against step) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    # every row's training loss is the mean since the row before (one row a step; a validation row
    # of a run before 2026-12-06 repeated its epoch's mean, and a second row at its step is left
    # out); metrics.csv holds the run's whole history, resumes included
    loss_rows = [r for k, r in enumerate(rows) if r["train_loss"] and r["train_loss"] != "nan"
                 and not (r["val_psnr"] and k and rows[k - 1]["step"] == r["step"])]
    steps = [int(r["step"]) for r in loss_rows]
    loss = [float(r["train_loss"]) for r in loss_rows]
    val = [(int(r["step"]), float(r["val_psnr"])) for r in rows if r["val_psnr"]]
    fig, ax1 = plt.subplots(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax1.plot(steps, loss, ".-" if len(steps) < 40 else "-", color="tab:blue", label="train loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax1.set_yscale("log")
    if val:
        ax2 = ax1.twinx()
        ax2.plot([v[0] for v in val], [v[1] for v in val], "o-", color="tab:red", label="val PSNR")
        if bicubic is not None:
            ax2.axhline(bicubic, color="gray", linestyle="--", label=f"bicubic {bicubic:.2f} dB")
        ax2.set_ylabel("validation PSNR (dB, Y)", color="tab:red")
    # below the plot, not on it: inside, it covered the end of the loss curve
    fig.legend(loc="outside lower center", ncol=3, frameon=False)
    ax1.set_title(png_path.parent.name + ": training curve")
    try:
        with atomic_path(png_path) as tmp:  # a file of srx's own, never through a link at a fixed name
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def _comparable_best(best_path: Path, state: dict, bicubic_now: float, best: float, val_pairs: list[EvalImage],
                     scale: int) -> float | None:
    """A resumed run's best validation score, measured as its epochs will be. Where bicubic scores
    the --val images differently from when the run was saved (an srx that draws the degraded
    validation images another way, or --val's data changed), the kept best is of another measure:
    one a new epoch could never reach, or one it beats at once. best.pt is then scored again on the
    validation as it is now (None where there is no best.pt: the next epoch's becomes the best)."""
    then = state.get("bicubic_psnr")
    if then is None or abs(float(then) - bicubic_now) < 0.005:
        return best
    from srx.checkpoint import model_from_checkpoint

    again = None
    if best_path.is_file():
        model, _, _ = model_from_checkpoint(best_path, scale)
        again = evaluate(val_pairs, scale, torch_predictor(model), with_ssim=False)["mean"]["model_psnr"]
    log.warning("--val scores differently from when this run was saved (bicubic %.3f dB then, %.3f now: another srx "
                "or other --val data), so its best of %.3f dB is of another measure; %s", float(then), bicubic_now,
                best, f"best.pt scores {again:.3f} dB now, which an epoch must beat" if again is not None
                else "the next epoch's score is the best")
    return again


class _StopSignal:
    """Turn SIGINT/SIGTERM/SIGHUP (`srx.signals.STOP_SIGNALS`) into a flag so the loop can save
    `last.pt` and exit cleanly."""

    def __init__(self) -> None:
        self.raised = False
        self.first_at: float | None = None  # when the first came (time.monotonic())
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignal":
        for sig in stop_signals():
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        hung_up(signum)
        if self.raised:
            if second_request(signum, self.first_at):  # Ctrl-C again: give up at once
                raise KeyboardInterrupt
            return  # the same stop delivered twice (a login shell's hangup): the run saves as asked
        self.raised, self.first_at = True, time.monotonic()

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _warn_if_validating_on_training_frames(cfg: TrainConfig, val_range: FrameRange) -> None:
    """A video that is both --data and --val with overlapping frame ranges scores frames it trains on."""
    if not is_video(Path(cfg.val)) or not any(Path(d).resolve() == Path(cfg.val).resolve() for d in cfg.data):
        return
    train_range = parse_frame_range(cfg.frames)
    ends = [r.end if r.end is not None else math.inf for r in (train_range, val_range)]
    if max(train_range.start, val_range.start) < min(ends):
        log.warning("--val %s is also --data and its frames %s overlap the training frames %s: validation scores "
                    "frames the model trains on (keep them apart with --frames and --val-frames)",
                    cfg.val, val_range, train_range)


def _total_steps(epochs: int | None, max_steps: int | None, steps_per_epoch: int) -> int | None:
    """The steps a run's schedule spans: --epochs' worth, capped by --max-steps (None: by time alone)."""
    total = epochs * steps_per_epoch if epochs is not None else None
    if max_steps is not None:
        total = min(total or max_steps, max_steps)
    return total


def data_moved(saved: TrainConfig) -> tuple[bool, bool]:
    """Whether a run's training data and its validation data are gone from where it read them."""
    return (bool(saved.data) and not all(Path(d).exists() for d in saved.data),
            bool(saved.val) and not Path(str(saved.val)).exists())


def _relocate_data(saved: TrainConfig, given: TrainConfig) -> None:
    """On resume, --data (and --val) name the new place of a run's data that has moved (the run's
    recipe is otherwise its own): taken only where the data is gone from the old place, one path
    for each it had."""
    data_gone, val_gone = data_moved(saved)
    if data_gone and not given.data:
        raise SrxError(f"the run's training data ({', '.join(saved.data)}) is not there any more; if it has moved, "
                       "give its new place with --data beside --resume")
    if data_gone and list(given.data) != list(saved.data):
        if len(given.data) != len(saved.data):
            raise SrxError(f"the run's training data ({', '.join(saved.data)}) is not there any more; with --resume, "
                           f"--data gives its new place, one path for each of the {len(saved.data)} it had, got "
                           f"{len(given.data)}")
        log.warning("the run's training data %s is not there; reading it from %s (--data)", ", ".join(saved.data),
                    ", ".join(given.data))
        saved.data = list(given.data)
    if val_gone and given.val and given.val != saved.val:
        log.warning("the run's validation data %s is not there; reading it from %s (--val)", saved.val, given.val)
        saved.val = given.val


def _refuse_rewind(resume: Path, state: dict[str, Any]) -> None:
    """Resuming from a best.pt whose run went on (its last.pt is later) would train from that point
    again and write over last.pt and the metrics after it: SrxError saying what to do instead."""
    last = resume.with_name("last.pt")
    if resume.name == "last.pt" or not last.is_file():
        return
    try:
        later = int(load_checkpoint(last).get("step", 0))
    except SrxError:
        return
    if later > int(state.get("step", 0)):
        raise SrxError(f"{resume} is step {state.get('step')} of a run that went on to step {later} ({last}); resuming "
                       f"from it would write over that: continue the run with --resume {last}, or start a new run "
                       f"from these weights with --init {resume} --out NEW")


def _preset_of(config: ModelConfig) -> str | None:
    """The `--model` preset whose configuration is this one's (all of it but the scale), if any."""
    for name in PRESETS:
        if config_from_preset(name, config.scale).to_dict() == config.to_dict():
            return name
    return None


#: the lock file a run holds in its folder (claim_run_dir)
RUN_LOCK = ".srx-train.lock"


def claim_run_dir(out_dir: Path, owner: str = "srx train", resume: Path | None = None) -> FolderClaim:
    """Claim `out_dir` for this run (made if need be): an exclusive lock on its RUN_LOCK, held until
    the run ends (the OS lets go of a killed one's). A folder another live run holds is refused,
    naming its pid: two runs in one folder would interleave their metrics.csv and replace each
    other's checkpoints."""
    check_output_dir(Path(out_dir), "--out")
    busy = (f"wait for it to end before resuming {resume}" if resume is not None else
            "wait for it to end, or pass another --out")
    return claim_folder(Path(out_dir), RUN_LOCK, owner, busy + " (two runs in one folder would mix their "
                        "metrics.csv and replace each other's checkpoints)")


def holds_run(folder: Path) -> bool:
    return (Path(folder) / "last.pt").exists() or (Path(folder) / "best.pt").exists()


def claim_new_run_dir(base: Path, owner: str = "srx train") -> FolderClaim:
    """The default --out, claimed: `base` if it holds no run and no live run holds it, else the first
    of base-2, base-3, ... of which that is true (a run started at the same moment takes the next)."""
    n = 1
    while True:
        candidate = Path(base) if n == 1 else Path(base).with_name(f"{Path(base).name}-{n}")
        n += 1
        if holds_run(candidate):
            continue
        try:
            claim = claim_run_dir(candidate, owner)
        except FolderInUse:
            continue
        if not holds_run(candidate):  # a run that ended between the look and the claim
            return claim
        claim.release()


def _rank() -> int:
    """This process's rank under torchrun (0 without it), known before the process group starts."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def train(cfg: TrainConfig, out_dir: Path, resume: Path | None = None, threads: int | None = None,
          show_progress: bool = True, cache_dir: Path | None = None,
          stop_after: int | None = None, loss_every: int | None = None, device: str = "auto",
          claim: FolderClaim | None = None) -> TrainResult:
    """Train a model; writes best.pt, last.pt, metrics.csv and training.png into `out_dir`.

    The run holds `out_dir` (`claim_run_dir`) from before any work until it ends: `claim`, one the
    caller took (the default --out, or `srx tune`, whose claim spans its report too), else one taken
    here. Under torchrun the first process claims it (the only one that writes) and the others take
    its folder.

    `device` (`training_device`): where the model and each batch live; patches are cut, degraded and
    augmented on the CPU either way, and checkpoints hold CPU tensors, so a run resumes on either.

    `stop_after` stops this invocation after that many steps as if interrupted, leaving the
    schedule untouched, so a job can be run in chunks (and resume can be tested exactly).
    `loss_every`: a metrics.csv row with the mean training loss every that many steps (default:
    about 20 per epoch, at most 50 steps apart), besides the row of each validation.
    """
    own = claim_run_dir(Path(out_dir), resume=resume) if claim is None and _rank() == 0 else None
    try:
        return _train(cfg, Path(out_dir), resume, threads, show_progress, cache_dir, stop_after, loss_every, device,
                      own or claim)
    finally:
        if own is not None:
            own.release()


def _train(cfg: TrainConfig, out_dir: Path, resume: Path | None, threads: int | None, show_progress: bool,
           cache_dir: Path | None, stop_after: int | None, loss_every: int | None, device: str,
           claim: FolderClaim | None = None) -> TrainResult:
    if loss_every is not None and loss_every < 1:  # before patches are cut and a folder is made
        raise SrxError(f"--log-every must be at least 1 step, got {loss_every}")
    state: dict[str, Any] | None = None
    more_time: float | None = None  # on resume, --time-budget: how long this invocation may train
    old_limits: tuple[int | None, int | None] = (None, None)  # on resume, the run's --epochs and --max-steps before
    if resume is not None:
        report = Path(resume).parent / "tune.json"
        if report.is_file() and Path(resume).resolve().parent == out_dir.resolve():
            # its report scores these weights: trained on in place, they would be gone and the report would not say so
            raise SrxError(f"{Path(resume).parent} holds a finished tuning ({report.name} scores {Path(resume).name}'s "
                           f"weights); expected a new folder to train them further: srx train --init {resume} --out "
                           "NEW_FOLDER (with --data as for a new run)")
        state = load_checkpoint(Path(resume))
        if "train_config" not in state or "optimizer" not in state:
            raise SrxError(f"{resume} holds weights only, not a training state; resume from a last.pt")
        saved = TrainConfig.from_checkpoint(state, Path(resume))
        _refuse_rewind(Path(resume), state)
        # Keep the run's recipe; only the stopping rules may be extended on resume. --epochs and
        # --max-steps are totals for the run; --time-budget is this invocation's time (below).
        old_limits = (saved.epochs, saved.max_steps)
        _check_new_limits(Path(resume), state, cfg, old_limits)
        _relocate_data(saved, cfg)
        saved.epochs = cfg.epochs if cfg.epochs is not None else saved.epochs
        saved.max_steps = cfg.max_steps if cfg.max_steps is not None else saved.max_steps
        if cfg.time_budget is not None and cfg.time_budget <= 0:
            raise SrxError(f"--time-budget must be positive, got {cfg.time_budget}")
        more_time = cfg.time_budget
        cfg = saved
        _refuse_finished(Path(resume), cfg, state, more_time)
    # --init's weights (a file or a shipped name), read once: they also name the model when --model is left out
    init = load_checkpoint(resolve_weights(cfg.init, cfg.scale, "--init")) if cfg.init and state is None else None
    init_cfg = ModelConfig.from_dict(dict(init["model_config"])) if init is not None else None
    init_preset = _preset_of(init_cfg) if init_cfg is not None else None
    if cfg.model is None:  # --model left out: the architecture of --init, else the reference
        if init_cfg is not None and init_preset is None:
            raise SrxError(f"--init {cfg.init} holds {init_cfg.name}, which is none of the --model presets "
                           f"({', '.join(PRESETS)}); name the one to train with --model")
        cfg = dataclasses.replace(cfg, model=init_preset or "srcnn-915")
    cfg.validate()
    _refuse_overwrite(Path(out_dir), resume)
    # made by the claim; one released with nothing written is removed: a run refused over its data leaves no empty folder
    out_dir = check_output_dir(Path(out_dir), "--out")
    device = training_device(device, int(os.environ.get("WORLD_SIZE", "1")))
    ddp = _Dist()
    out_dir = ddp.first_process_path(out_dir)  # the folder the first process claimed (a default --out may differ)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    # Model and optional warm start.
    if state is not None:
        mcfg = ModelConfig.from_dict(dict(state["model_config"]))
    else:
        mcfg = config_from_preset(cfg.model, cfg.scale)
    model = build_model(mcfg)
    if state is not None:
        model.load_state_dict(state["state_dict"])
    elif init is not None:
        if init_preset != cfg.model:  # the same configuration but the scale, or it does not fit
            hint = f"; train it with --model {init_preset} (or leave --model out)" if init_preset else ""
            raise SrxError(f"--init {cfg.init} holds {init_preset or init_cfg.name} x{init_cfg.scale}, which does not "
                           f"fit --model {cfg.model}{hint}")
        own = model.state_dict()
        fits = {k: v for k, v in init["state_dict"].items() if k in own and own[k].shape == v.shape}
        if len(fits) < len(own):  # another scale: an LR-space net's last layer has scale^2 outputs
            log.info("--init %s: %d of %d tensors fit x%d; the rest start fresh", cfg.init, len(fits), len(own), mcfg.scale)
        model.load_state_dict(fits, strict=False)
    # channels_last is ~2.5x faster for these convolutions on CPU (oneDNN).
    model = model.to(device=device, memory_format=torch.channels_last)
    net: nn.Module = DistributedDataParallel(model, **_no_buffer_sync()) if ddp.enabled else model
    optimizer = _make_optimizer(cfg, model)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])

    # Data: rank 0 builds the cache, the others read it.
    def load_patches():
        return extract_patches([Path(d) for d in cfg.data], cfg.scale, cfg.patch_size, cfg.stride, cache_dir,
                               every=cfg.every, frames=parse_frame_range(cfg.frames))

    if ddp.is_main:
        patches = load_patches()
    ddp.barrier()
    if not ddp.is_main:
        patches = load_patches()
    lr_all = torch.from_numpy(patches.lr).unsqueeze(1)
    hr_all = torch.from_numpy(patches.hr).unsqueeze(1)
    n = lr_all.shape[0]
    if cfg.batch_size % ddp.world:
        raise SrxError(f"--batch-size {cfg.batch_size} must divide evenly over {ddp.world} processes")
    per_rank = cfg.batch_size // ddp.world
    if ddp.enabled:
        sampler: Any = DistributedSampler(range(n), num_replicas=ddp.world, rank=ddp.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=True)
    else:
        sampler = None
    steps_per_epoch = (n // ddp.world) // per_rank
    if steps_per_epoch < 1:
        raise SrxError(f"only {n} patches: fewer than one batch of {cfg.batch_size}; lower --batch-size")
    total_steps = _total_steps(cfg.epochs, cfg.max_steps, steps_per_epoch)

    degradation = parse_degradation(cfg.degrade)
    val_pairs: list[EvalImage] = []
    if ddp.is_main and cfg.val:
        val_range = parse_frame_range(cfg.val_frames, "--val-frames")
        _warn_if_validating_on_training_frames(cfg, val_range)
        try:
            val_pairs = load_eval_data(Path(cfg.val), cfg.scale, cfg.every, val_range, "--val-frames")
        except SrxError as exc:
            if str(exc).startswith("--val"):
                raise
            raise SrxError(f"--val: {exc}") from None
        val_pairs = degraded(val_pairs, degradation, cfg.scale)
    bicubic_psnr = evaluate(val_pairs, cfg.scale, None, with_ssim=False)["mean"]["bicubic_psnr"] if val_pairs else None

    step = int(state["step"]) if state else 0
    start_step = step
    epoch = int(state["epoch"]) if state else 0
    batch_in_epoch = int(state["batch_in_epoch"]) if state else 0
    elapsed_before = float(state["elapsed_s"]) if state else 0.0
    best_psnr = state.get("best_psnr") if state else None
    last_psnr = state.get("last_psnr") if state else None
    # The time part of the schedule runs from `anchor` (elapsed seconds, schedule fraction there) to
    # the time budget: (0, 0) for a fresh run. A resume given --time-budget continues the schedule
    # from where it stands and ends it with this invocation's time, so the rate never jumps back up.
    anchor = dict(state.get("time_anchor") or {}) if state else {}
    anchor = {"elapsed_s": float(anchor.get("elapsed_s", 0.0)), "fraction": float(anchor.get("fraction", 0.0))}
    # Likewise in steps: a resume that moves --max-steps or --epochs goes on from the schedule's
    # fraction at the old total to its end at the new one, rather than back up the cosine.
    step_anchor = dict(state.get("step_anchor") or {}) if state else {}
    step_anchor = {"step": int(step_anchor.get("step", 0)), "fraction": float(step_anchor.get("fraction", 0.0))}

    def step_fraction(at: int, total: int) -> float:
        span = max(total - step_anchor["step"], 1)
        return step_anchor["fraction"] + (1.0 - step_anchor["fraction"]) * (at - step_anchor["step"]) / span

    old_total = _total_steps(*old_limits, steps_per_epoch) if state else None
    if state and old_total and total_steps and old_total != total_steps:
        step_anchor = {"step": step, "fraction": min(step_fraction(step, old_total), 1.0)}
    out_dir = ensure_dir(out_dir)
    metrics_path = out_dir / "metrics.csv"
    if ddp.is_main:
        _prepare_metrics(metrics_path, step if state else 0,
                         Path(resume).parent / "metrics.csv" if resume is not None else None)
        log.info("%s %s: %d patches (%d images, cache %s); %d steps/epoch, batch %d over %d process(es), on %s; %s",
                 "resuming in" if state else "training into", out_dir,
                 n, patches.images_used, "hit" if patches.from_cache else "written" if patches.cache_written else "not written", steps_per_epoch,
                 cfg.batch_size, ddp.world,
                 f"{device} ({torch.cuda.get_device_name(device)})" if device != "cpu" else "the CPU",
                 f"the LR degraded by {degradation}" if cfg.degrade else "clean LR (no --degrade)")

    loss_fn = nn.MSELoss() if cfg.loss == "mse" else nn.L1Loss()
    border = cfg.border
    t0 = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - t0

    def fraction() -> float:
        parts = []
        if total_steps:
            parts.append(step_fraction(step, total_steps))
        if cfg.time_budget:
            span = max(cfg.time_budget - anchor["elapsed_s"], 1e-9)
            parts.append(anchor["fraction"] + (1.0 - anchor["fraction"]) * (elapsed() - anchor["elapsed_s"]) / span)
        return max(parts) if parts else 0.0

    if more_time is not None:
        anchor = {"elapsed_s": elapsed_before, "fraction": min(fraction(), 1.0)}
        cfg.time_budget = elapsed_before + more_time
        log.info("resuming at %.0f%% of the schedule; this run may train %.0f s more", 100 * anchor["fraction"], more_time)
    elif state is not None:
        log.info("resuming at step %d (epoch %d) from %s", step, epoch, resume)

    def checkpoint_extra() -> dict[str, Any]:
        return {
            "train_config": dataclasses.asdict(cfg),
            "optimizer": optimizer.state_dict(),
            "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "elapsed_s": elapsed(),
            "best_psnr": best_psnr, "last_psnr": last_psnr, "bicubic_psnr": bicubic_psnr,
            "val_set": cfg.val, "time_anchor": dict(anchor), "step_anchor": dict(step_anchor), "log_every": loss_every,
        }

    def validate_and_save(loss_value: float | None, validate: bool = True) -> None:
        """A metrics.csv row (`loss_value` None: before any training step), a validation where there is
        --val (unless `validate` is False: a Ctrl-C saves at once), last.pt, and best.pt when it improved."""
        nonlocal best_psnr, last_psnr
        row = {"epoch": f"{epoch + batch_in_epoch / steps_per_epoch:.3f}", "step": step,
               "elapsed_s": f"{elapsed():.1f}", "lr": f"{optimizer.param_groups[0]['lr']:.3e}",
               "train_loss": "" if loss_value is None else f"{loss_value:.6e}", "val_psnr": "", "val_ssim": "",
               "bicubic_psnr": f"{bicubic_psnr:.4f}" if bicubic_psnr else ""}
        improved = False
        if val_pairs and validate:
            model.eval()
            res = evaluate(val_pairs, cfg.scale, torch_predictor(model))
            model.train()
            last_psnr = res["mean"]["model_psnr"]
            row["val_psnr"] = f"{last_psnr:.4f}"
            row["val_ssim"] = f"{res['mean']['model_ssim']:.5f}"
            improved = best_psnr is None or last_psnr > best_psnr
            if improved:
                best_psnr = last_psnr
        _append_metrics(metrics_path, row)
        if claim is not None:  # a clean-up that removed the lock file would let a second run in
            claim.keep()
        save_checkpoint(out_dir / "last.pt", model, mcfg, **checkpoint_extra())
        if improved or (not val_pairs and validate):
            save_checkpoint(out_dir / "best.pt", model, mcfg, **checkpoint_extra())
        try:
            _write_plot(metrics_path, out_dir / "training.png", bicubic_psnr)
        except Exception as exc:  # a plot must never kill a training run
            log.warning("could not draw training.png: %s", exc)

    if state and val_pairs and ddp.is_main and best_psnr is not None:
        rescored = _comparable_best(out_dir / "best.pt", state, bicubic_psnr, best_psnr, val_pairs, cfg.scale)
        if rescored != best_psnr:  # of another measure: the last score too, until this run's first validation
            best_psnr, last_psnr = rescored, None
    if loss_every is None and state and state.get("log_every"):  # a resumed run logs as it did
        loss_every = int(state["log_every"])
    loss_every = loss_every or max(1, min(50, steps_per_epoch // 20))
    if state is None and cfg.init and val_pairs and ddp.is_main:
        # where a fine-tune starts: the --init weights on --val, a row at step 0 (no training loss yet),
        # and best.pt until an epoch beats them (a fine-tune that only loses keeps the weights it began from)
        log.info("scoring the --init weights on --val (%s) before training", counted(len(val_pairs), "image"))
        validate_and_save(None)
        log.info("the --init weights score %.3f dB on --val (bicubic %.3f dB) before training", best_psnr, bicubic_psnr)
    if state is None and cfg.init and val_pairs:
        ddp.barrier()  # every process starts its clock together after that scoring: one schedule for all
        t0 = time.monotonic()  # the time budget is for training
    progress = _Progress(ddp.is_main, show_progress, cfg, bicubic_psnr)
    # SRCNN's replicate-padded convolutions have no deterministic CUDA backward (atomic adds): said
    # once here instead of PyTorch's warning, which names use_deterministic_algorithms, not the model
    replays = device == "cpu" or model_class(mcfg.arch).deterministic_cuda
    if not replays and ddp.is_main:
        log.info("%s on %s: its replicate padding has no deterministic CUDA backward, so a run with the same "
                 "--seed differs in the last bits there (the lrnet models, and --device cpu, replay exactly)",
                 mcfg.name, device)
    stopped_by = "epochs"
    running_loss, loss_count = 0.0, 0
    window_loss, window_count = 0.0, 0  # the training loss since the last metrics.csv row
    logged_loss = float("nan")  # that row's
    last_save = time.monotonic()
    model.train()
    try:
        with _StopSignal() as stop, progress, warnings.catch_warnings():
            if not replays:
                warnings.filterwarnings("ignore", message="replication_pad2d_backward_cuda does not have a deterministic")
            done = False
            while not done:
                if cfg.epochs is not None and epoch >= cfg.epochs:
                    break
                if ddp.enabled:
                    sampler.set_epoch(epoch)
                    order = list(sampler)
                else:
                    order = list(RandomSampler(range(n), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch)))
                batches = list(BatchSampler(order, per_rank, drop_last=True))
                if batch_in_epoch >= len(batches):  # resumed where an epoch ended: validated then already
                    epoch, batch_in_epoch = epoch + 1, 0
                    continue
                for b in range(batch_in_epoch, len(batches)):
                    idx = torch.tensor(batches[b])
                    lr_u8 = lr_all[idx]
                    if not degradation.is_clean:
                        lr_u8 = torch.from_numpy(degrade_batch(
                            degradation, hr_all[idx, 0].numpy(), lr_u8[:, 0].numpy(), cfg.scale,
                            cfg.seed * 1009 + ddp.rank, step)).unsqueeze(1)
                    lr_b = lr_u8.float().div_(255.0)
                    hr_b = hr_all[idx].float().div_(255.0)
                    if cfg.augment:
                        gen = torch.Generator().manual_seed(cfg.seed * 1000003 + step * 7919 + ddp.rank)
                        lr_b, hr_b = _augment(lr_b, hr_b, gen)
                    lr_b = lr_b.to(device).contiguous(memory_format=torch.channels_last)
                    hr_b = hr_b.to(device).contiguous(memory_format=torch.channels_last)
                    lr_now = _lr_at(cfg, fraction())
                    for group in optimizer.param_groups:
                        group["lr"] = lr_now * group.get("lr_mult", 1.0)
                    pred = net(lr_b)
                    if border:
                        pred = pred[..., border:-border, border:-border]
                        hr_b = hr_b[..., border:-border, border:-border]
                    loss = loss_fn(pred, hr_b)
                    if not torch.isfinite(loss):
                        raise SrxError(
                            f"training diverged: loss is {loss.item()} at step {step} (lr {lr_now:.2e}); "
                            f"lower --lr and resume from {out_dir / 'last.pt'} or start again"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    batch_in_epoch = b + 1
                    running_loss += loss.item()
                    loss_count += 1
                    window_loss += loss.item()
                    window_count += 1
                    reason = None
                    if cfg.max_steps is not None and step >= cfg.max_steps:
                        reason = "max_steps"
                    elif cfg.time_budget is not None and elapsed() >= cfg.time_budget:
                        reason = "time_budget"
                    elif stop.raised or (stop_after is not None and step - start_step >= stop_after):
                        reason = "interrupted"
                    # a step that ends the epoch or the run gets its row from validate_and_save: one row a step
                    if ddp.is_main and step % loss_every == 0 and reason is None and b < len(batches) - 1:
                        _append_metrics(metrics_path, {
                            "epoch": f"{epoch + batch_in_epoch / steps_per_epoch:.3f}", "step": step,
                            "elapsed_s": f"{elapsed():.1f}", "lr": f"{optimizer.param_groups[0]['lr']:.3e}",
                            "train_loss": f"{window_loss / window_count:.6e}"})
                        logged_loss, window_loss, window_count = window_loss / window_count, 0.0, 0
                    progress.update(fraction(), step, epoch, running_loss / loss_count, last_psnr, best_psnr)
                    if ddp.any_flag(reason is not None):
                        stopped_by = reason or "peer"
                        done = True
                        break
                    if ddp.is_main and time.monotonic() - last_save > cfg.save_every:
                        if claim is not None:
                            claim.keep()
                        save_checkpoint(out_dir / "last.pt", model, mcfg, **checkpoint_extra())
                        last_save = time.monotonic()
                else:
                    epoch += 1
                    batch_in_epoch = 0
                if ddp.is_main:  # Ctrl-C: saved at once, not after a whole validation (BSD200: half a minute)
                    # this row's loss: the steps since the last row's, as every row's (none since: that row's)
                    row_loss = window_loss / window_count if window_count else logged_loss
                    window_loss, window_count = 0.0, 0
                    validate_and_save(row_loss, validate=stopped_by != "interrupted")
                    progress.update(fraction(), step, epoch, running_loss / max(loss_count, 1), last_psnr, best_psnr)
                    running_loss, loss_count = 0.0, 0
                    last_save = time.monotonic()
                ddp.barrier()
                if not done and ddp.any_flag(stop.raised):  # Ctrl-C during the epoch's validation: stop there
                    stopped_by, done = "interrupted", True
    finally:
        # DDP's reducer holds the process group: release it while the group is alive, then destroy
        # the group. With the group destroyed first, a rank aborted at exit ("terminate called without
        # an active exception") in about one test run in 30; whether this order cures it is not known
        net = None  # noqa: F841
        ddp.close()
    result = TrainResult(best_psnr, last_psnr, bicubic_psnr, step, epoch + batch_in_epoch / steps_per_epoch,
                         elapsed(), out_dir, stopped_by)
    if ddp.is_main:
        atomic_write_text(out_dir / "summary.txt", _summary(result, mcfg))
    return result


def _refuse_overwrite(out_dir: Path, resume: Path | None) -> None:
    """A run's folder is its record: a new run, or one resumed into another folder, must not
    overwrite the run already there. SrxError saying how to continue that one or where to go."""
    held = [name for name in ("last.pt", "best.pt") if (out_dir / name).is_file()]
    if not held or (resume is not None and Path(resume).resolve().parent == out_dir.resolve()):
        return
    if (out_dir / "tune.json").is_file():  # srx tune's: its report scores these weights, so no resume here either
        raise SrxError(f"{out_dir} already holds a tuning run (tune.json, {', '.join(held)}); expected a new folder "
                       f"for a new run: pass another --out (or delete {out_dir} to start over)")
    raise SrxError(f"{out_dir} already holds a training run ({', '.join(held)}); expected a new folder for a new run: "
                   f"continue that run with srx train --resume {out_dir / 'last.pt'}, or pass another --out "
                   f"(or delete {out_dir} to start over)")


def new_run_dir(base: Path) -> Path:
    """`base` if it holds no run yet, else the first of base-2, base-3, ... that does not (what
    claim_new_run_dir claims, but for folders live runs hold: torchrun's other processes, which
    train into the folder the first one claimed)."""
    candidate, n = Path(base), 1
    while holds_run(candidate):
        n += 1
        candidate = Path(base).with_name(f"{Path(base).name}-{n}")
    return candidate


def _check_new_limits(resume: Path, state: dict[str, Any], cfg: TrainConfig,
                      old: tuple[int | None, int | None]) -> None:
    """A resume's --epochs / --max-steps are totals for the run: one the run has already reached
    would train nothing (it was said as the run's own limit, 'it trained its 2 epochs' of a run that
    trained 4, with advice that did not work); the advice names every limit that would still stop
    it (an --epochs run given --max-steps needs --epochs raised too). One below the run's own but
    ahead of it cuts the run short, which is said (its rate's schedule now ends there)."""
    step, epoch = int(state.get("step", 0)), int(state.get("epoch", 0))
    kinds = (("--epochs", cfg.epochs, old[0], epoch, "full epoch(s)"),
             ("--max-steps", cfg.max_steps, old[1], step, "step(s)"))
    reached = [(option, now) for option, new, before, now, _ in kinds
               if (new if new is not None else before) is not None and now >= (new if new is not None else before)]
    for option, new, before, now, unit in kinds:
        if new is None:
            continue
        own = f"; its own limit was {before} {unit.replace('full ', '')}" if before is not None else ""
        if new <= now:
            fix = " and ".join(f"{o} above {n}" for o, n in reached)
            raise SrxError(f"{resume} has trained {now} {unit} (step {step}){own}; {option} {new} on a resume is a "
                           f"total for the run, which it has reached: pass {fix} to train it further, or --init to "
                           "start a new schedule from its weights")
        if before is not None and new < before:
            log.warning("%s %d cuts the run short (it was to train %d %s); its learning rate now falls to the end "
                        "by %s %d", option, new, before, unit.replace("full ", ""), option, new)


def _refuse_finished(resume: Path, cfg: TrainConfig, state: dict[str, Any], more_time: float | None) -> None:
    """Resuming a run that already met its stopping rule would take a step past it: say so instead."""
    step, epoch, elapsed = int(state.get("step", 0)), int(state.get("epoch", 0)), float(state.get("elapsed_s", 0.0))
    why = fix = None  # the limit that ended it, and the one option that extends that limit
    if cfg.max_steps is not None and step >= cfg.max_steps:
        why, fix = f"it reached --max-steps {cfg.max_steps}", f"a --max-steps above {cfg.max_steps} (a total for the run)"
    elif cfg.epochs is not None and epoch >= cfg.epochs:
        why, fix = f"it trained its {cfg.epochs} epoch(s)", f"an --epochs above {cfg.epochs} (a total for the run)"
    elif more_time is None and cfg.time_budget is not None and elapsed >= cfg.time_budget:
        why = f"it used its {cfg.time_budget:.0f} s time budget"
        fix = "--time-budget (how long to train now; the rate goes on from where it ended)"
    if why:
        raise SrxError(
            f"{resume} is a finished run ({why}, step {step}); nothing to resume. To train it further pass {fix}; "
            "to start a new schedule from its weights use --init"
        )


def _summary(r: TrainResult, mcfg: ModelConfig) -> str:
    fmt = lambda v: f"{v:.3f} dB" if v is not None else "n/a"  # noqa: E731
    stop = "interrupted" if r.stopped_by == "interrupted" else f"stopped by {r.stopped_by}"
    return (f"model {mcfg.name}: {r.steps} steps, {r.epochs_done:.2f} epochs, {r.elapsed_s:.0f} s, "
            f"{stop}; val PSNR best {fmt(r.best_psnr)}, last {fmt(r.last_psnr)}, "
            f"bicubic {fmt(r.bicubic_psnr)}\n")


def _prepare_metrics(path: Path, keep_until_step: int, history: Path | None = None) -> None:
    """Start metrics.csv, or on resume keep the run's history up to the checkpoint's step (from the
    resumed run's folder when training into another one) and drop rows written after it."""
    rows = []
    source = path if path.exists() else history
    if keep_until_step and source is not None and source.exists():
        with open(source, newline="") as fh:
            rows = [{k: r.get(k, "") for k in METRIC_FIELDS} for r in csv.DictReader(fh)
                    if r.get("step", "").isdigit() and int(r["step"]) <= keep_until_step]
    try:
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:  # a full disk: one line naming the file
        raise WriteError(path, exc) from None


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    try:
        with open(path, "a", newline="") as fh:
            csv.DictWriter(fh, METRIC_FIELDS, restval="").writerow(row)
    except OSError as exc:
        raise WriteError(path, exc) from None


class _Progress:
    """A rich progress bar on a terminal; a log line every few percent elsewhere (CI, files)."""

    def __init__(self, enabled: bool, bar: bool, cfg: TrainConfig, bicubic: float | None) -> None:
        self.enabled = enabled
        self.want_bar = bar
        self.cfg = cfg
        self.bicubic = bicubic
        self._bar = None
        self._last_logged = -1.0
        self._logged_val: float | None = None
        self._t_first: float | None = None  # when (and at what fraction) this process started logging
        self._f_first = 0.0

    def __enter__(self) -> "_Progress":
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        if self.want_bar and console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]train x{task.fields[scale]}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("step {task.fields[step]} ep {task.fields[epoch]}"),
                TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[val]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=1000, scale=self.cfg.scale, step=0, epoch=0,
                                            loss="-", val="-")
        return self

    def update(self, fraction: float, step: int, epoch: int, loss: float, val: float | None,
               best: float | None) -> None:
        if not self.enabled:
            return
        val_s = (f"{val:.2f} dB" + (f" (best {best:.2f})" if best is not None else "")) if val is not None else "-"
        fraction = min(fraction, 1.0)  # the last step of a time budget ends a little past it
        if self._bar is not None:
            self._bar.update(self._task, completed=fraction * 1000, step=step, epoch=epoch,
                             loss=f"{loss:.3e}", val=val_s)
        elif (fraction - self._last_logged >= 0.05 or (fraction >= 1.0 > self._last_logged)
              or (fraction >= 1.0 and val != self._logged_val)):  # the end's line again, with its validation
            self._last_logged, self._logged_val = fraction, val
            now = time.monotonic()
            if self._t_first is None:
                self._t_first, self._f_first = now, fraction
            done = fraction - self._f_first
            eta = max(0.0, (now - self._t_first) * (1.0 - fraction) / done) if done > 0 else None
            eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "-"
            log.info("train x%d %5.1f%% step %d epoch %d loss %.3e val %s ETA %s", self.cfg.scale, 100 * fraction,
                     step, epoch, loss, val_s, eta_s)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
