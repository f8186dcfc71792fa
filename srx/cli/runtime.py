"""`srx upscale`, `srx bench` and `srx doctor` (the runtime stage)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import app, one_server, one_value, threads_option, weights_option
from srx.errors import SrxError
from srx.jsonout import json_text

_BACKEND_HELP = "auto (fastest that works here), torch, torch-cuda, onnxruntime, tensorrt or triton (with --server)."
_SERVER_HELP = ("Triton Inference Server gRPC HOST:PORT (e.g. one `srx serve` runs); implies --backend triton. "
                "--model NAME then picks the model on it. Repeat for several servers serving the same model: "
                "frames go to each in turn, and one that goes away is skipped until it is back.")


def _console():
    """A rich console; wide when not a terminal (logs, CI), where rich would assume 80 columns,
    unless COLUMNS says how wide. A COLUMNS of 0 (a terminal that says no width) is no width to
    keep to: rich drew every table in no columns at all, and `srx models` printed nothing, exit 0."""
    import os
    import shutil

    from rich.console import Console

    console = Console()
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) == 0:
        return Console(width=shutil.get_terminal_size((160, 24)).columns if console.is_terminal else 160)
    if console.is_terminal or columns.isdigit():
        return console
    return Console(width=160)


def _on_terminal() -> bool:
    """Whether stderr, where progress bars go, is a terminal: in a log or a pipe a bar would leave its
    last state behind as a line of box drawing (`srx eval` shows its bar on a terminal only too)."""
    from rich.console import Console

    return Console(stderr=True).is_terminal


@app.command()
def upscale(
    inputs: list[Path] = typer.Argument(..., readable=False, help="Images (png/jpg/bmp/tiff; 16-bit stays 16-bit in png/tiff), folders of them, or videos (.mp4/.avi/.mkv/...)."),
    out_: list[Path] = typer.Option(..., "--out", "-o", help="Output folder (an existing one, or a name without an extension), or the output file for a single input (an image name for an image, .mp4/.mkv/.mov/.m4v/.avi for a video)."),
    scale: Optional[list[int]] = typer.Option(None, "--scale", "-s", help="Upscaling factor 2, 3 or 4 (default: the model's, else 3).",
                                              metavar="<int>"),
    weights: Optional[list[Path]] = weights_option(),
    model_: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="A model file instead of --weights: srx .onnx, TensorRT .engine or .pt checkpoint.", show_default=False),
    backend: str = typer.Option("auto", "--backend", "-b", help=_BACKEND_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Image output format for folders: png (default), jpg, bmp, tiff, webp."),
    threads: Optional[int] = threads_option("CPU threads (default: one per physical core)."),
    tile: int = typer.Option(512, "--tile", help="Frames with a side above this many input pixels run in overlapping tiles."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar for folders and videos on a terminal (none in a log or pipe)."),
    server: Optional[list[str]] = typer.Option(None, "--server", help=_SERVER_HELP),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Folders' subfolders too (an NVR export by day and camera), their layout mirrored under --out; hidden folders and --out itself are left out."),
) -> None:
    """Upscale images, folders and videos (Y through the model, chroma bicubic)."""
    from srx.protocol import check_scale
    from srx.runtime.batch import plan_jobs, upscale_files
    from srx.runtime.upscaler import check_tile, create_upscaler

    weights, scale = one_value(weights, "--weights", "upscale"), one_value(scale, "--scale", "upscale")
    out, model = one_value(out_, "--out", "upscale"), one_value(model_, "--model", "upscale")
    if scale is not None:
        check_scale(scale)
    plan_jobs(inputs, out, fmt, create=False, recursive=recursive, warn=False)  # a bad --out fails now, before the model loads
    check_tile(tile)
    if weights is not None and model is None and weights.suffix.lower() in (".onnx", ".engine", ".plan"):
        model, weights = weights, None  # a model file passed as --weights: take it for what it is
    with create_upscaler(scale, weights=weights, model_file=model, backend=backend, threads=threads, tile=tile,
                         server=list(server or []) or None, parallel=len(server or []) > 1) as up:
        result = upscale_files(up, inputs, out, fmt=fmt, show_progress=progress and _on_terminal(), recursive=recursive)
    total = len(result.done) + len(result.failed)
    if result.done:
        typer.echo(f"upscaled {len(result.done)} of {total} inputs x{up.scale} into {out}")
    if result.failed:  # the others are done; one line names each failure
        whys = "; ".join(why if str(path) in why else f"{path}: {why}" for path, why in result.failed)
        raise SrxError(f"{len(result.failed)} of {total} inputs could not be upscaled: {whys}")


@app.command()
def bench(
    backend: Optional[list[str]] = typer.Option(None, "--backend", "-b", help="torch, torch-cuda, onnxruntime, onnxruntime-fp16, onnxruntime-cuda, tensorrt, triton (repeat; default: all that run here, and triton with --server)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny frames and few repetitions: a smoke test in seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    threads: Optional[int] = threads_option("CPU threads (default: one per physical core)."),
    weights: Optional[list[str]] = typer.Option(None, "--weights", "-w", help="Models to bench (repeat): shipped names (srcnn, fast, camera) or checkpoints. Default: srcnn and fast, one row each per case."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="TensorRT engine for --backend tensorrt."),
    reps: Optional[int] = typer.Option(None, "--reps", help="Timed repetitions per case (default 15, quick 3)."),
    case: Optional[list[str]] = typer.Option(None, "--case", help="Only these cases (repeat): '480p x2', '720p-out x3', '1080p-out x3' (quick: 'quick x2', 'quick x3')."),
    server: Optional[list[str]] = typer.Option(None, "--server", help="Triton server gRPC HOST:PORT for --backend triton (the cases of its model's scale); one at a time."),
    server_model: Optional[str] = typer.Option(None, "--model", help="With --server: the model's name on the server (what `srx serve` prints, e.g. srx_lobby_x3; default: the one srx finds for each case's scale)."),
) -> None:
    """Latency per model and backend (model-only and end to end, p50/p95) against this machine's GEMM floor."""
    from srx.runtime.bench import run_bench

    server = one_server(server, "bench")  # type: ignore[assignment]
    if server_model is not None and server is None:
        raise SrxError("--model names a model on a Triton server; give the server with --server HOST:PORT")
    result = run_bench(backend, quick=quick, threads=threads, weights=weights, engine=engine, reps=reps, cases=case,
                       server=server, server_model=server_model)
    if quick:  # a smoke test: say so where its numbers are read
        result["note"] = QUICK_NOTE + " " + result["note"]
    if as_json:
        typer.echo(json_text(result))
        return
    console = _console()
    console.print(bench_table(result))
    console.print(result["note"], markup=False)  # what was skipped was said once, as it happened


#: what `srx bench --quick` says of its numbers (first in its note: under the table, and in --json)
QUICK_NOTE = ("--quick: tiny frames, few repetitions, a smoke test: its times are rough (on a busy or shared core "
              "the end-to-end p50 can even come out below the model's, which it includes); run srx bench without "
              "--quick for figures to compare.")


def bench_table(result: dict):
    """The rich Table of a `run_bench` result: titled with the models and backends in its rows; the
    model and backend columns are never cut (onnxruntime-fp16 and onnxruntime must stay apart), and
    a narrow terminal folds the other cells rather than hide a number behind an ellipsis."""
    from rich.table import Table

    from srx.runtime.bench import GPU_BACKENDS
    from srx.words import counted

    backends = ", ".join(dict.fromkeys(r["backend"] for r in result["rows"]))
    # each row's floor comes from the GEMM sampled beside its case (the GPU's for a GPU row): the title
    # gives the best of the run, CPU and GPU apart, not one figure that no GPU row used
    gpu = [r["gemm_gflops"] for r in result["rows"] if r["backend"] in GPU_BACKENDS]
    best = f"CPU {result['gemm_gflops']:.0f} GFLOP/s ({result['gemm_library']})" + (f", GPU {max(gpu):.0f}" if gpu else "")
    table = Table(title=f"srx bench: {', '.join(result['models'])} on {backends}, {counted(result['threads'], 'thread')}; "
                        f"floors from the float32 GEMM measured beside each case, best {best}")
    cols = ("model", "backend", "case", "in -> out", "model p50/p95 ms", "e2e p50/p95 ms", "fps", "GFLOP model (graph)",
            "GEMM GFLOP/s", "floor ms", "model/floor", "e2e/model")
    for col in cols:
        whole = col in ("model", "backend")
        width = max([len(col), *(len(str(r[col])) for r in result["rows"])]) if whole else None
        table.add_column(col, justify="left" if col in ("model", "backend", "case", "in -> out") else "right",
                         no_wrap=whole, min_width=width, overflow="fold")
    for r in result["rows"]:
        table.add_row(r["model"], r["backend"], r["case"], f"{r['lr']} -> {r['hr']}",
                      f"{r['model_p50_ms']:.1f} / {r['model_p95_ms']:.1f}", f"{r['e2e_p50_ms']:.1f} / {r['e2e_p95_ms']:.1f}",
                      f"{r['fps']:.1f}", f"{r['model_gflop']:.2f} ({r['graph_gflop']:.2f})", f"{r['gemm_gflops']:.0f}",
                      f"{r['floor_ms']:.1f}", f"{r['model_over_floor']:.2f}", f"{r['e2e_over_model']:.3f}")
    return table


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """What this machine has for each srx stage (packages, GPU, OpenCV, cameras, weights) and how to fix gaps."""
    from srx.doctor import doctor_report, report_dicts

    rows = doctor_report()
    if as_json:
        typer.echo(json_text(report_dicts(rows)))
        return
    from rich.markup import escape
    from rich.table import Table

    marks = {"ok": "[green]ok[/]", "missing": "[red]missing[/]", "warn": "[yellow]warn[/]", "info": "[blue]info[/]"}
    table = Table(title="srx doctor", show_lines=False)
    for col in ("item", "status", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for r in rows:  # escape: "[gpu]" in a fix is text, not rich markup
        table.add_row(escape(r.item), marks.get(r.status, r.status), escape(r.detail), escape(r.fix))
    _console().print(table)
