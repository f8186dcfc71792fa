"""`srx tune`: fine-tune weights on a camera's own footage and score them on a later stretch of it.

The footage is split in time: training frames first, then a gap, then the held-out frames that
validation and the before/after report use, so the report says what the tuned weights do on
footage they never saw. Every frame is an HR image, shrunk and degraded as in training (no
higher-resolution ground truth is needed)."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from srx.checkpoint import model_from_checkpoint, resolve_weights
from srx.degrade import parse_degradation
from srx.errors import SrxError
from srx.evaluate import degraded, evaluate, load_eval_data, torch_predictor
from srx.fsutil import FolderClaim, atomic_write_text
from srx.imageio import FrameRange, count_frames, is_video
from srx.jsonout import json_text
from srx.train.data import PATCH_BUDGET_BYTES, patch_budget, patch_bytes_per_frame
from srx.train.loop import TrainConfig, claim_run_dir, train, training_device

log = logging.getLogger("srx")


#: what `srx tune` lets its training patches take in memory when it picks --every itself
#: the fewest frames apart `srx tune` takes its images (neighbouring frames are near copies)
MIN_EVERY = 8


def choose_every(frames: int, size: tuple[int, int], scale: int, holdout: float, patch: int, stride: int,
                 budget: int = PATCH_BUDGET_BYTES) -> int:
    """One frame in how many `srx tune` trains on when the user does not say: every MIN_EVERY-th, or
    sparser where the footage is long or large enough that its patches would pass `budget` (an hour
    of 1080p at 25 fps would otherwise take some 68 GB)."""
    per_frame = patch_bytes_per_frame(size[0], size[1], scale, patch, stride)
    if per_frame == 0:
        return MIN_EVERY
    most = max(1, budget // per_frame)  # training images that fit
    train_frames = frames * (1.0 - holdout)
    return max(MIN_EVERY, -(-int(train_frames) // most))


@dataclass
class FootageSplit:
    frames: int  # in the video
    train: FrameRange
    held_out: FrameRange


def check_holdout(holdout: float) -> None:
    if not 0.0 < holdout < 1.0:
        raise SrxError(f"--holdout is the fraction of the footage kept out of training, between 0 and 1; got {holdout}")


def split_footage(video: Path, holdout: float, every: int, frames: int | None = None) -> FootageSplit:
    """The first (1 - holdout) of the frames to train on, the rest held out, `2 * every` frames
    apart (so no held-out frame is a neighbour of a training frame)."""
    check_holdout(holdout)
    if every < 1:
        raise SrxError(f"--every must be at least 1, got {every}")

    def parts(n: int) -> tuple[int, int] | None:  # (end of training, start of held out) if both have 2+ images
        cut = round(n * (1.0 - holdout))
        return (cut - 2 * every, cut) if cut - 2 * every > every and n - cut > every else None

    n = count_frames(video) if frames is None else frames  # counted by decoding: an hour of footage takes a while
    if parts(n) is None:
        # each side needs more than `every` frames (training also the gap): about this many in all
        guess = max((3 * every + 1) / (1.0 - holdout), (every + 1) / holdout)
        need = next(m for m in range(max(n + 1, int(guess) - 2), int(guess) + 4 + n) if parts(m) is not None)
        raise SrxError(f"{video} has {n} frames: too few to train on one frame in {every} of the first {1 - holdout:.0%} "
                       f"and score on one in {every} of the rest; expected at least {need} frames, or a lower --every")
    train_end, cut = parts(n)
    return FootageSplit(n, FrameRange(0, train_end), FrameRange(cut, None))


@dataclass
class TuneReport:
    video: str
    scale: int
    init: str
    split: dict
    train: dict
    # per LR degradation scored on the held-out frames: bicubic, before and after PSNR (dB)
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)
    better: bool = False  # worth using: see `verdict`
    verdict: str = ""  # why (or why not), in a sentence
    interrupted: bool = False  # stopped by Ctrl-C/SIGTERM/SIGHUP: the weights so far, not scored

    def to_dict(self) -> dict:
        return asdict(self)


def _frame_size(video: Path) -> tuple[int, int]:
    """(width, height) of a video's frames as srx reads them (upright), from its first frame."""
    from srx.imageio import open_video

    cap = open_video(video)
    try:
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        raise SrxError(f"{video}: no frame could be decoded")
    return int(frame.shape[1]), int(frame.shape[0])


def tune_on_footage(video: Path, scale: int, out: Path, *, init: str = "camera", degrade: str = "camera",
                    every: int | None = None, holdout: float = 0.3, time_budget: float | None = None,
                    max_steps: int | None = None, threads: int | None = None, show_progress: bool = True,
                    cache_dir: Path | None = None, seed: int = 0, batch_size: int = 32, device: str = "auto",
                    claim: FolderClaim | None = None) -> TuneReport:
    """Fine-tune `init` (a shipped name or a checkpoint) on `video`'s earlier frames with the recipe
    srx's own camera weights were trained with, then score it and `init` on the held-out frames:
    clean, under `degrade`, and at JPEG 50. Writes `out/tune.json` besides the training outputs.
    `every` None: chosen by `choose_every`, so the training patches fit in `patch_budget()`
    (PATCH_BUDGET_BYTES, or a third of the memory free here where that is less). `out` is held
    (`claim`, else one taken here: `claim_run_dir`) until tune.json is written."""
    if claim is None:
        with claim_run_dir(Path(out), "srx tune") as claim:
            return tune_on_footage(video, scale, out, init=init, degrade=degrade, every=every, holdout=holdout,
                                   time_budget=time_budget, max_steps=max_steps, threads=threads,
                                   show_progress=show_progress, cache_dir=cache_dir, seed=seed,
                                   batch_size=batch_size, device=device, claim=claim)
    video = Path(video)
    if not video.exists():
        raise SrxError(f"{video} does not exist; srx tune expects a recording of your camera")
    if not is_video(video):
        raise SrxError(f"{video} is not a video file srx reads; srx tune expects a recording of your camera")
    if time_budget is None and max_steps is None:
        raise SrxError("say how long to tune: --time-budget (e.g. 20m) or --max-steps")
    spec = parse_degradation(degrade)
    training_device(device)  # a bad --device is said before the footage is read
    start = resolve_weights(init, scale, "--init")
    before = torch_predictor(model_from_checkpoint(start, scale)[0])  # a bad --init fails here, before any work
    patch, stride = 24 * scale, 12 * scale
    frames = None
    if every is None:
        check_holdout(holdout)
        size, frames = _frame_size(video), count_frames(video)
        budget, words = patch_budget()
        every = choose_every(frames, size, scale, holdout, patch, stride, budget)
        if every > MIN_EVERY:
            say = log.warning if budget < PATCH_BUDGET_BYTES else log.info  # a small box: worth knowing without -v
            say("%s: %d frames of %dx%d; training on one frame in %d, so the patches fit in %s of memory "
                "(--every sets it)", video.name, frames, size[0], size[1], every, words)
    split = split_footage(video, holdout, every, frames)
    cfg = TrainConfig(
        data=[str(video)], val=str(video), scale=scale, init=str(init), time_budget=time_budget, max_steps=max_steps,
        batch_size=batch_size, lr=2e-4, loss="l1", patch_size=patch, stride=stride, degrade=spec.spec, seed=seed,
        every=every, frames=str(split.train), val_frames=str(split.held_out),
    )
    result = train(cfg, out, threads=threads, show_progress=show_progress, cache_dir=cache_dir, device=device,
                   claim=claim)
    split_info = {"frames": split.frames, "every": every, "train_frames": str(split.train),
                  "held_out_frames": str(split.held_out), "train_images": len(range(0, split.train.end, every))}
    trained = {"steps": result.steps, "elapsed_s": round(result.elapsed_s, 1), "stopped_by": result.stopped_by,
               "degrade": str(spec), "weights": str(Path(out) / "last.pt")}
    if result.stopped_by == "interrupted":  # not scored: the caller says where the weights are
        return TuneReport(video=str(video), scale=scale, init=str(init), split=split_info, train=trained,
                          interrupted=True, verdict="interrupted before it was scored")
    pairs = load_eval_data(video, scale, every, split.held_out)
    after = torch_predictor(model_from_checkpoint(Path(out) / "last.pt", scale)[0])
    held_out: dict[str, dict[str, float]] = {}
    trained_on = str(spec.for_eval)  # named as `srx eval --degrade` names it (a preset's clean share dropped)
    for name in dict.fromkeys(["none", trained_on, "jpeg=50"]):
        scored = degraded(pairs, parse_degradation(name), scale)
        b = evaluate(scored, scale, before, with_ssim=False)["mean"]
        a = evaluate(scored, scale, after, with_ssim=False)["mean"]
        held_out[name] = {"bicubic": b["bicubic_psnr"], "before": b["model_psnr"], "after": a["model_psnr"]}  # rounded where printed
    better, verdict = judge(held_out, trained_on, len(pairs))
    report = TuneReport(video=str(video), scale=scale, init=str(init), split={**split_info, "held_out_images": len(pairs)},
                        train=trained, held_out=held_out, better=better, verdict=verdict)
    atomic_write_text(Path(out) / "tune.json", json_text(report.to_dict()) + "\n")
    return report


#: the least gain on held-out frames that counts as one: below it, a change is within what another
#: stretch of footage or another seed moves a score by
MIN_GAIN_DB = 0.05


def judge(held_out: dict[str, dict[str, float]], trained_on: str, images: int) -> tuple[bool, str]:
    """Whether the tuned weights are worth using, and why: they must gain at least MIN_GAIN_DB on the
    held-out frames under the degradation they trained for, and lose no more than that gain under
    any other row (clean frames, JPEG 50)."""
    gain = held_out[trained_on]["after"] - held_out[trained_on]["before"]
    label = lambda name: "on clean frames" if name == "none" else f"under {name}"  # noqa: E731
    if gain < MIN_GAIN_DB:
        return False, (f"they gain {gain:+.2f} dB {label(trained_on)} on {images} held-out frames, less than the "
                       f"{MIN_GAIN_DB} dB that counts")
    losses = {name: r["after"] - r["before"] for name, r in held_out.items() if name != trained_on}
    worst = min(losses, key=losses.get, default=None)
    if worst is not None and losses[worst] < -gain:
        return False, (f"they gain {gain:+.2f} dB {label(trained_on)} but lose {-losses[worst]:.2f} dB "
                       f"{label(worst)} on {images} held-out frames")
    return True, f"they gain {gain:+.2f} dB {label(trained_on)} on {images} held-out frames"
