"""`srx train` and `srx eval`."""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import DURATION_FORMS, app, model_scale_option, one_value, parse_duration, scale_of_models, threads_option
from srx.errors import SrxError
from srx.jsonout import json_text
from srx.presets import PRESET_ALIASES, PRESET_NOTES, PRESETS, preset_name
from srx.words import counted

log = logging.getLogger("srx")


MODEL_HELP = ("Model preset (default: the architecture of --init, else srcnn-915): "
              + ", ".join(f"{name} ({PRESET_NOTES[name]})" if name in PRESET_NOTES else name for name in PRESETS)
              + ". Also taken as `srx models` and export file names print them: "
              + ", ".join(f"{alias} ({name})" for alias, name in PRESET_ALIASES.items()) + ".")

DEVICE_HELP = ("Where to train: auto (a CUDA GPU where PyTorch sees one, else the CPU), cpu, cuda or cuda:N. "
               "Several torchrun processes train on the CPU.")


@app.command()
def train(
    ctx: typer.Context,
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Folder of HR training images, or a video whose every Nth frame is one (repeat for several, e.g. T91 and BSD200, or your camera's footage); not needed with --resume, unless the run's data has moved: then its new place."),
    scale: Optional[list[int]] = model_scale_option("--init's"),
    val: Optional[Path] = typer.Option(None, "--val", help="Folder of HR validation images (e.g. Set5) or a video; validated every epoch."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs to train (passes over all patches)."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help=f"Stop after this long, e.g. 25m ({DURATION_FORMS}); the learning rate decays over it. With --max-steps or --epochs too, whichever limit comes first. With --resume: how long this invocation may train (the rate goes on from where the run stopped and reaches its end then)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
    batch_size: int = typer.Option(16, "--batch-size", help="Patches per step (split over torchrun processes); small batches, more steps: faster on a CPU."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (cosine-decayed to 1% of it)."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam (default) or sgd (the paper's: momentum 0.9, last layer at lr/10)."),
    loss: str = typer.Option("mse", "--loss", help="mse or l1."),
    patch_size: int = typer.Option(48, "--patch-size", help="HR patch size in pixels (multiple of the scale)."),
    stride: int = typer.Option(24, "--stride", help="HR stride between patches (multiple of the scale)."),
    loss_border: Optional[int] = typer.Option(None, "--loss-border", help="HR pixels left out of the loss at each patch edge (default: 2 x scale for srcnn, 0 for lrnet, whose zero padding must be learnt)."),
    degrade: Optional[list[str]] = typer.Option(None, "--degrade", help="Train on camera-like LR: a preset (camera, jpeg50) or a spec, key=value items joined by commas: jpeg=30..95, noise=0..8, blur=0.2..1.5, shrink=aa|aliased, clean=0.1, h264=20..40, h265=20..40, fps=25 (the stream rate the h264/h265 CRF assumes) (one spec; several codecs in it are mixed). Validation scores the same spec."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random flips and 90-degree rotations."),
    seed: int = typer.Option(0, "--seed", help="Seed; a fixed seed gives identical results on one machine with --epochs or --max-steps (a --time-budget run sets its rate and stops by the clock)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights: a checkpoint or a shipped model by name (e.g. camera, to fine-tune it on your footage; or x2/x4 from x3 weights)."),
    every: Optional[int] = typer.Option(None, "--every", help="Videos in --data and --val: every Nth frame is an image (default 10).", show_default=False),
    frames: Optional[str] = typer.Option(None, "--frames", help="Videos in --data: only frames START:END (from 0, END excluded; e.g. :480), so later footage can be kept for --val."),
    val_frames: Optional[str] = typer.Option(None, "--val-frames", help="A video --val: only frames START:END (e.g. 520:)."),
    out_: Optional[list[Path]] = typer.Option(None, "--out", "-o", show_default=False, help="Output folder: best.pt, last.pt, metrics.csv, training.png, summary.txt (default runs/train, runs/train-2, ... whichever holds no run yet, or the folder of --resume). A folder holding another run is refused."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a last.pt written by an earlier run; its recipe is kept, only --epochs, --time-budget or --max-steps may extend it."),
    threads: Optional[int] = threads_option("CPU threads for PyTorch (default: all cores)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Where extracted patches are cached (default $SRX_CACHE_DIR/patches, else ~/.cache/srx/patches)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (without one, a progress line is logged now and then)."),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="Write the mean training loss to metrics.csv every N steps (default: about 20 rows per epoch, at most 50 steps apart; a resumed run keeps its own)."),
) -> None:
    """Train a super-resolution model on folders of HR images or videos' frames (standard SR protocol)."""
    from srx.degrade import parse_degradation
    from srx.train.loop import TrainConfig, claim_new_run_dir, new_run_dir, train as run_train

    scale, out = one_value(scale, "--scale", "train"), one_value(out_, "--out", "train")
    repeated = sorted({str(d) for d in data or [] if [Path(x).resolve() for x in data].count(Path(d).resolve()) > 1})
    if repeated and resume is None:  # beside --resume, --data names the run's moved data: its own check
        raise SrxError(f"--data {', '.join(repeated)} given more than once; expected each folder or video once "
                       "(twice would train on its patches twice as often)")
    if resume is not None:
        _say_ignored(ctx, resume)
        scale = scale or 3  # the run's own, from its checkpoint
    else:
        scale = scale_of_models(scale, [init] if init is not None else [])
        if every is not None and every >= 1:  # a bad count is the stage's own error
            _every_needs_a_video(every, [*(data or []), *([val] if val else [])])
    cfg = TrainConfig(
        data=[str(d) for d in data or []], val=str(val) if val else None, scale=scale, model=preset_name(model), epochs=epochs,
        time_budget=parse_duration(time_budget), max_steps=max_steps, batch_size=batch_size, lr=lr,
        optimizer=optimizer, loss=loss, patch_size=patch_size, stride=stride, augment=augment, seed=seed, loss_border=loss_border,
        init=str(init) if init else None, degrade=parse_degradation(one_degradation(degrade)).spec if degrade else "",
        every=10 if every is None else every, frames=frames or "", val_frames=val_frames or "",
    )
    from srx.memory import memory_errors

    claim = None
    if out is None and resume is not None:
        out = resume.parent
    elif out is None:  # a new run never lands on an earlier one, nor on a live one: runs/train, runs/train-2, ...
        if os.environ.get("RANK", "0") == "0":
            claim = claim_new_run_dir(Path("runs/train"))
            out = claim.path
        else:  # torchrun's other processes train into the folder the first one claimed (train() says which)
            out = new_run_dir(Path("runs/train"))
    with claim or contextlib.nullcontext():
        with memory_errors("training", "ask for less at once (a smaller --batch-size, fewer --data or --val images)"):
            result = run_train(cfg, out, resume=resume, threads=threads, show_progress=progress, cache_dir=cache_dir,
                               loss_every=log_every, device=device, claim=claim)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun the first process reports for all
    if (out / "summary.txt").exists():
        typer.echo((out / "summary.txt").read_text().strip())
    typer.echo(f"outputs in {out}: {', '.join(n for n in _OUTPUTS if (out / n).exists())}")
    if result.stopped_by == "interrupted":
        typer.echo(f"interrupted; continue with: srx train --resume {out / 'last.pt'} --out {out}")
        raise typer.Exit(130)  # a script's `srx train ... && deploy` does not go on after Ctrl-C


#: what a run leaves in its folder, in the order the closing line names them
_OUTPUTS = ("best.pt", "last.pt", "metrics.csv", "training.png", "summary.txt")


def _refuse_tuning_run(out: Path) -> None:
    held = [n for n in ("last.pt", "best.pt", "tune.json") if (out / n).is_file()]
    if held:  # not `srx train --resume`'s folder rule: that would leave tune.json scoring older weights
        go_on = f", go on from its weights with --init {out / 'last.pt'} (and another --out)" if "last.pt" in held else ""
        what = "a tuning run" if "tune.json" in held else "a training run"  # srx train's, or a tuning cut short
        raise SrxError(f"{out} already holds {what} ({', '.join(held)}); pass another --out (or leave it out "
                       f"for the next free runs/tune-N){go_on}, or delete {out} to start over")


def _every_needs_a_video(every: int, paths: list[Path]) -> None:
    """--every picks frames of videos: with no video among --data and --val it would be ignored unsaid
    (refused as --frames and --val-frames are, and as `srx eval --every` is). A path that does not
    exist is left to the data's own check, which says so."""
    from srx.imageio import is_video

    if paths and all(Path(p).exists() for p in paths) and not any(is_video(Path(p)) for p in paths):
        raise SrxError(f"--every {every} applies to videos, and no --data or --val is one (images are used whole, "
                       "each of them)")


def one_degradation(given: list[str]) -> str:
    """The one --degrade a training run takes; several are refused (the last would win unsaid)."""
    if len(given) > 1:
        raise SrxError(f"--degrade given {len(given)} times ({', '.join(given)}); training takes one spec. Several "
                       "codecs in one spec are mixed, each sample coded with one of them, e.g. "
                       "--degrade jpeg=30..95,h264=23..34,noise=0..2")
    from srx.degrade import given_spec

    return given_spec(given[0])


#: train options a resumed run takes from its checkpoint instead (the recipe is the run's)
_RECIPE = ("data", "scale", "val", "model", "batch_size", "lr", "optimizer", "loss", "patch_size", "stride",
           "loss_border", "degrade", "augment", "seed", "init", "every", "frames", "val_frames")


def _say_ignored(ctx: typer.Context, resume: Path) -> None:
    """A warning naming the recipe options given beside --resume: the run keeps its own."""
    def typed(name: str) -> bool:  # on the command line, not a default (Typer's ParameterSource, by name)
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    taken: set[str] = set()  # --data / --val beside --resume give the new place of data that has moved
    if typed("data") or typed("val"):
        from srx.checkpoint import load_checkpoint
        from srx.train.loop import TrainConfig, data_moved

        state = load_checkpoint(resume)
        if "train_config" in state:
            data_gone, val_gone = data_moved(TrainConfig.from_checkpoint(state, resume))
            taken = {name for name, gone in (("data", data_gone), ("val", val_gone)) if gone}
    given = [p.opts[0] for p in ctx.command.params if p.name in _RECIPE and typed(p.name) and p.name not in taken]
    if given:
        log.warning("--resume continues the run with its own recipe; %s ignored (a new run from these weights "
                    "with other settings: srx train --init %s --out NEW ...)", ", ".join(given), resume)


@app.command("eval")
def eval_cmd(
    data: Path = typer.Option(..., "--data", help="Folder of HR images (e.g. Set5), one image, or a video file (every Nth frame is an HR image)."),
    scale: Optional[list[int]] = model_scale_option("a checkpoint's"),
    degrade: Optional[list[str]] = typer.Option(None, "--degrade", help="Degrade the LR the same way for bicubic and the model: a preset (camera, jpeg50) or a spec like jpeg=50,noise=5 (deterministic). Repeat for a table, one row each (none: clean)."),
    every: Optional[int] = typer.Option(None, "--every", help="With a video: score every Nth frame (default 10).", show_default=False),
    frames: Optional[str] = typer.Option(None, "--frames", help="With a video: only frames START:END (from 0, END excluded; e.g. 520: for footage kept out of training)."),
    weights: Optional[list[str]] = typer.Option(None, "--weights", "-w", help="A shipped model by name (srcnn, fast, camera) or a checkpoint; default: camera for --scale. Repeat for a table, one column each (LABEL=CHECKPOINT names one)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on a terminal (the frames of long footage are scored as they are decoded)."),
) -> None:
    """PSNR/SSIM of bicubic and the model on the standard protocol (Y, border shaved).

    With several --degrade or --weights: one table of mean PSNR, a row per degradation and a column
    per model, each with its gain over bicubic on the same LR (which weights help on your footage,
    under which codec)."""
    from srx.checkpoint import model_from_checkpoint, resolve_weights
    from srx.compare import labelled_weights
    from srx.degrade import given_spec, parse_degradation
    from srx.evaluate import degrade_each, eval_items, evaluate, torch_predictor
    from srx.imageio import is_video, parse_frame_range

    scale = one_value(scale, "--scale", "eval")
    if every is not None and data.exists() and not is_video(data):
        raise SrxError(f"--every {every} applies to a video; {data} is not one (images are scored whole, each of them)")
    every = 10 if every is None else every
    scale = scale_of_models(scale, [labelled_weights(w)[1] for w in weights or []])
    # each once, as evaluated (a preset's training-only clean share dropped; key order does not matter)
    specs = list({str(s.for_eval): s.for_eval for s in (parse_degradation(given_spec(d)) for d in degrade or ["none"])}.values())
    frame_range = parse_frame_range(frames)
    if len(specs) > 1 or len(weights or []) > 1:
        _eval_table(data, scale, specs, weights or [], every, frame_range, as_json, progress)
        return
    spec = specs[0]
    label, given = labelled_weights(weights[0]) if weights else (None, None)  # LABEL=CHECKPOINT names one too
    path = resolve_weights(given, scale)
    model, config, _ = model_from_checkpoint(path, scale)
    skipped: list[dict[str, str]] = []
    with _scoring(data, every, frame_range, progress) as track:
        pairs = degrade_each(track(eval_items(data, scale, every, frame_range, skipped=skipped)), spec, scale)
        result = evaluate(pairs, scale, torch_predictor(model))  # one frame at a time
    result["weights"] = str(path)
    result["model"] = config.name
    result["degrade"] = str(spec)
    result["skipped"] = skipped
    if as_json:
        typer.echo(json_text(result))
        _fail_on_skipped(skipped, result["count"], data)
        return
    from rich.table import Table

    from srx.cli.runtime import _console

    label = label or path.stem  # `fast` and `camera` share an architecture
    table = Table(title=f"{label} ({config.name}) on {data} (x{scale}, LR degradation: {spec}; Y, {scale}-px border shaved)")
    rows = result["images"] + [{"name": "mean", **result["mean"]}]
    longest = min(40, max(len(r["name"]) for r in rows))  # names stay whole (frame_000120), the numbers wrap
    for col in ("image", "size", "bicubic\nPSNR", "model\nPSNR", "gain", "bicubic\nSSIM", "model\nSSIM"):
        table.add_column(col, justify="left" if col == "image" else "right",
                         min_width=longest if col == "image" else None)
    for r in rows:
        size = f"{r['width']}x{r['height']}" if "width" in r else ""
        table.add_row(r["name"], size, f"{r['bicubic_psnr']:.2f}", f"{r['model_psnr']:.2f}",
                      f"{r['model_psnr'] - r['bicubic_psnr']:+.2f}", f"{r['bicubic_ssim']:.4f}", f"{r['model_ssim']:.4f}")
    _console().print(table)
    _fail_on_skipped(skipped, result["count"], data)


def _fail_on_skipped(skipped: list[dict[str, str]], count: int, data: Path) -> None:
    """After the scores of the images that could be read: the ones that could not, in one `error:`
    line, and exit status 1 (the means above leave them out; `srx upscale` fails the same way)."""
    if skipped:
        names = "; ".join(s["reason"] for s in skipped)
        raise SrxError(f"{len(skipped)} of the {len(skipped) + count} images in {data} could not be scored and are "
                       f"not in the means: {names}")


@contextlib.contextmanager
def _scoring(data: Path, every: int, frame_range, show: bool):
    """A progress bar on stderr, on a terminal only, over the pairs `srx eval` scores:
    `track(items)` passes them through, counting."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from srx.evaluate import eval_count

    console = Console(stderr=True)
    if not (show and console.is_terminal):
        yield lambda items: items
        return
    bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                   transient=True)
    task = bar.add_task("scoring", total=eval_count(data, every, frame_range))

    def track(items):
        for item in items:
            yield item
            bar.advance(task)

    with bar:
        yield track


def _eval_table(data: Path, scale: int, specs: list, weights: list[str], every: int, frame_range, as_json: bool,
                progress: bool = False) -> None:
    """`srx eval` with several --degrade or --weights: mean PSNR per degradation and model."""
    from srx.checkpoint import DEFAULT_SHIPPED, model_from_checkpoint, resolve_weights
    from srx.compare import labelled_weights
    from srx.evaluate import eval_items, robustness_rows, torch_predictor

    chosen: dict[str, Path] = {}
    for label, given in map(labelled_weights, weights or [DEFAULT_SHIPPED]):
        if label in chosen:
            raise SrxError(f"two --weights are labelled {label!r}; name each with LABEL=CHECKPOINT, e.g. -w mine={given}")
        chosen[label] = resolve_weights(given, scale)
    models = {label: model_from_checkpoint(path, scale)[0] for label, path in chosen.items()}
    skipped: list[dict[str, str]] = []
    with _scoring(data, every, frame_range, progress) as track:
        rows = robustness_rows(track(eval_items(data, scale, every, frame_range, skipped=skipped)), scale, specs,
                               {label: torch_predictor(m) for label, m in models.items()})
    count = rows[0]["count"]
    if as_json:
        typer.echo(json_text({"scale": scale, "data": str(data), "count": count,
                              "weights": {label: str(p) for label, p in chosen.items()}, "rows": rows,
                              "skipped": skipped}))
        _fail_on_skipped(skipped, count, data)
        return
    from rich.table import Table

    from srx.cli.runtime import _console

    table = Table(title=f"mean PSNR on Y ({scale}-px border shaved) of {count} HR "
                        f"{'frame' if data.is_file() and count > 1 else 'image'}{'s' if count != 1 else ''} from {data}, x{scale}, dB "
                        "(in brackets: the gain over bicubic on the same LR)")
    for col in ("LR degradation", "bicubic", *chosen):
        if col == "LR degradation":  # a long spec wraps rather than losing its end to an ellipsis
            table.add_column(col, justify="left", overflow="fold")
        else:
            table.add_column(col, justify="right")
    for r in rows:
        bic = r["bicubic_psnr"]
        table.add_row(r["degrade"], f"{bic:.2f}", *(f"{v:.2f} ({v - bic:+.2f})" for v in r["model_psnr"].values()))
    _console().print(table)
    _fail_on_skipped(skipped, count, data)


#: srx tune's --time-budget where neither it nor --max-steps is given
TUNE_TIME_BUDGET_S = 20 * 60


@app.command()
def tune(
    video: Path = typer.Argument(..., help="A recording of your camera (any video OpenCV decodes)."),
    scale: Optional[list[int]] = model_scale_option("a checkpoint's"),
    init: str = typer.Option("camera", "--init", help="The weights to start from: a shipped model by name or a checkpoint."),
    degrade: Optional[list[str]] = typer.Option(None, "--degrade", help="How the training LR is degraded: a preset (camera, jpeg50) or a spec such as jpeg=40..60,noise=0..2 (your camera's codec and noise); one spec (default: camera).", show_default=False),
    time_budget: Optional[str] = typer.Option(
        None, "--time-budget", help=f"How long to train, e.g. 20m ({DURATION_FORMS}; default 20m, none with --max-steps).",
        show_default=False),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps instead of 20 minutes (with --time-budget too: whichever limit comes first)."),
    every: Optional[int] = typer.Option(None, "--every", help="Every Nth frame is an image (neighbouring frames are near copies; default: 8, or sparser for long or large footage, so the training patches fit in 1 GB of memory)."),
    holdout: float = typer.Option(0.3, "--holdout", help="Fraction of the footage, at its end, kept out of training and scored."),
    batch_size: int = typer.Option(32, "--batch-size", help="Patches per step."),
    out_: Optional[list[Path]] = typer.Option(None, "--out", "-o", show_default=False, help="Output folder (default runs/tune, runs/tune-2, ... whichever holds no run yet): last.pt (the tuned weights, which the report scores), best.pt (the epoch best on the held-out frames themselves, so its score there flatters it), metrics.csv, training.png, tune.json."),
    threads: Optional[int] = threads_option("CPU threads for PyTorch (default: all cores)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (without one, a progress line is logged now and then)."),
) -> None:
    """Fine-tune a model on your camera's own footage and score it on later footage it never saw.

    The score is against the weights it started from, on a later stretch of the same footage."""
    from srx.fsutil import check_output_dir
    from srx.train.tune import tune_on_footage

    from srx.train.loop import claim_new_run_dir, claim_run_dir

    out = one_value(out_, "--out", "tune")
    scale = scale_of_models(one_value(scale, "--scale", "tune"), [init])
    budget = parse_duration(time_budget)  # checked whether or not --max-steps is given; both: the first limit stops
    if budget is None and max_steps is None:
        budget = TUNE_TIME_BUDGET_S
    degrade = one_degradation(degrade) if degrade else "camera"
    if out is not None:
        check_output_dir(out, "--out")
        _refuse_tuning_run(out)
    from srx.memory import memory_errors

    # held until tune.json is written: a second srx tune or train into the folder is refused meanwhile
    claim = claim_new_run_dir(Path("runs/tune"), "srx tune") if out is None else claim_run_dir(out, "srx tune")
    with claim:
        out = claim.path  # a new tuning never lands on an earlier one: runs/tune, runs/tune-2, ...
        _refuse_tuning_run(out)  # one that ended while this one looked
        with memory_errors(f"tuning on {video.name}", "ask for less at once (a higher --every, a smaller --batch-size)"):
            report = tune_on_footage(video, scale, out, init=init, degrade=degrade, every=every, holdout=holdout,
                                     batch_size=batch_size, time_budget=budget, max_steps=max_steps, threads=threads,
                                     show_progress=progress, device=device, claim=claim)
    split = report.split
    if report.interrupted:
        typer.echo(f"interrupted after {counted(report.train['steps'], 'step')}; the weights so far are in "
                   f"{report.train['weights']}, not scored (score them on the held-out frames: srx eval --data {video} "
                   f"--frames {split['held_out_frames']} --every {split['every']} -w {init} -w {report.train['weights']} "
                   + " ".join(f"--degrade {d}" for d in dict.fromkeys(["none", report.train["degrade"], "jpeg50"]))
                   + ", the rows of its report)")
        raise typer.Exit(130)
    typer.echo(f"tuned {init} x{scale} on {split['train_images']} frames of {video} (one in {split['every']} of frames "
               f"{split['train_frames']}) in {report.train['steps']} steps; scored on {split['held_out_images']} held-out "
               f"frames ({split['held_out_frames']}), PSNR on Y:")
    from srx.compare import labelled_weights

    start = labelled_weights(str(init))[0]  # a shipped name, or a checkpoint's short name (runs/x4/best.pt: x4/best)
    width = max(12, len(start))
    typer.echo(f"  {'LR degradation':34s} {'bicubic':>8s} {start:>{width}s} {'tuned':>8s} {'change':>8s}")
    for name, r in report.held_out.items():
        label = "clean" if name == "none" else name
        typer.echo(f"  {label[:34]:34s} {r['bicubic']:8.2f} {r['before']:{width}.2f} {r['after']:8.2f} "
                   f"{r['after'] - r['before']:+8.2f}")
    weights = report.train["weights"]
    if report.better:
        typer.echo(f"use it ({report.verdict}): srx stream --camera 0 --scale {scale} -w {weights}   "
                   f"(report: {out / 'tune.json'})")
    else:
        typer.echo(f"keep {init}: {report.verdict} (report: {out / 'tune.json'})")
