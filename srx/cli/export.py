"""`srx export` (checkpoint → ONNX FP32/FP16 → TensorRT engine) and `srx parity`."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import app, model_scale_option, one_server, one_value, scale_of_models, weights_option
from srx.errors import SrxError


def parse_hw(text: str, option: str) -> tuple[int, int]:
    """'360x640' -> (360, 640): LR height x width."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise SrxError(f"{option} {text!r}: expected HEIGHTxWIDTH of the LR input, e.g. 360x640")
    return int(m.group(1)), int(m.group(2))


def profile_shapes(min_shape: Optional[str], opt_shape: Optional[str],
                   max_shape: Optional[str]) -> tuple[tuple[int, int], tuple[int, int], Optional[tuple[int, int]]]:
    """The engine profile's min / opt / max LR shapes from the options; max None: the build picks it.
    A shape not given defaults to 16x16 / 360x640, lowered to the next one given where that is
    smaller (`--max-shape 240x426` alone tunes for 240x426), as srx lowers them to a max it picks."""
    from srx.export.tensorrt import DEFAULT_MIN_HW, DEFAULT_OPT_HW

    hi = parse_hw(max_shape, "--max-shape") if max_shape is not None else None
    opt = parse_hw(opt_shape, "--opt-shape") if opt_shape is not None else DEFAULT_OPT_HW
    if opt_shape is None and hi is not None:
        opt = (min(opt[0], hi[0]), min(opt[1], hi[1]))
    lo = parse_hw(min_shape, "--min-shape") if min_shape is not None else DEFAULT_MIN_HW
    if min_shape is None:
        lo = (min(lo[0], opt[0]), min(lo[1], opt[1]))
    return lo, opt, hi


#: --workspace's default, MiB (a rebuild command leaves it out where it is this)
DEFAULT_WORKSPACE_MIB = 1024


def _rebuild_command(weights: Optional[str], scale: int, out: Path, fp16: bool,
                     shapes: Optional[tuple[Optional[str], Optional[str], Optional[str]]], extra: list[str],
                     workspace: int = DEFAULT_WORKSPACE_MIB, timing_cache: Optional[Path] = None) -> str:
    """The command that builds the engine on another machine: a shipped model by its name (its
    file's path here means nothing there), a checkpoint by the path given. `shapes`: the dynamic
    graph's profile as given (a shape not given is left to the same defaults there); None for a static
    graph, whose engine takes the graph's own shape. Every option that shapes the engine is carried:
    the graph's (`extra`), the profile, --workspace and --timing-cache."""
    profile = [] if shapes is None else [part for option, shape in zip(("--min-shape", "--opt-shape", "--max-shape"), shapes)
                                         if shape is not None for part in (option, shape)]
    builder = [*(["--workspace", str(workspace)] if workspace != DEFAULT_WORKSPACE_MIB else []),
               *(["--timing-cache", str(timing_cache)] if timing_cache is not None else [])]
    parts = ["srx", "export", "--scale", str(scale), *(["--weights", weights] if weights else []), "--out", str(out),
             "--fp16" if fp16 else "--no-fp16", *extra, *profile, *builder, "--engine"]
    return " ".join(shlex.quote(p) for p in parts)


@app.command("export")
def export_cmd(
    weights: Optional[list[Path]] = weights_option(),
    scale: Optional[list[int]] = model_scale_option("a checkpoint's"),
    out_: Optional[list[Path]] = typer.Option(None, "--out", "-o", help="Output folder for the .onnx graphs and the engine (default: exports).", show_default=False),
    fp16: bool = typer.Option(True, "--fp16/--no-fp16", help="Also write the FP16 graph (FP32 I/O) and build the engine from it."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (13..21)."),
    dynamic: bool = typer.Option(True, "--dynamic/--static", help="Free batch/height/width axes, or a fixed input size (--height/--width)."),
    height: Optional[int] = typer.Option(None, "--height", help="LR input height of a --static graph."),
    width: Optional[int] = typer.Option(None, "--width", help="LR input width of a --static graph."),
    engine: Optional[bool] = typer.Option(None, "--engine/--no-engine", help="Build a TensorRT engine (default: when TensorRT and a GPU are here)."),
    min_shape: Optional[str] = typer.Option(None, "--min-shape", help="Smallest LR input HxW of the engine profile (default 16x16, or --opt-shape where that is smaller).", show_default=False),
    opt_shape: Optional[str] = typer.Option(None, "--opt-shape", help="LR input HxW the engine is tuned for (default 360x640, or --max-shape where that is smaller).", show_default=False),
    max_shape: Optional[str] = typer.Option(
        None, "--max-shape", help="Largest LR input HxW of the engine profile (default: the largest of 1080x1920, "
        "720x1280, 540x960, ... whose activations fit a quarter of the GPU's memory; 720x1280 if unknown)."),
    workspace: int = typer.Option(DEFAULT_WORKSPACE_MIB, "--workspace", help="TensorRT builder workspace in MiB."),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="TensorRT timing cache file (read if present, written after the build)."),
    check: bool = typer.Option(False, "--check", help="Run the parity check on the exported files; exit 1 on a failed gate."),
    layout: str = typer.Option("fast", "--layout", help="fast: the model regrouped for fast CPU kernels (default); plain: layer by layer, no shape arithmetic."),
    triton_repo: Optional[Path] = typer.Option(
        None, "--triton-repo", help="Also write a Triton Inference Server model repository here: "
        "srx_<name>_x<scale>/config.pbtxt and 1/model.onnx (1/model.plan when an engine was built)."),
    name: Optional[str] = typer.Option(
        None, "--name", help="Name of the exported model: files <name>-x<scale>.onnx, -fp16.onnx and .engine, Triton "
        "model srx_<name>_x<scale> (default: the shipped model's name, e.g. camera; for a checkpoint, its "
        "architecture's, e.g. lrnet-32x4-pw3)."),
) -> None:
    """Export a checkpoint to ONNX (FP32, FP16) and, where TensorRT and a GPU are present, an engine."""
    from srx.checkpoint import resolve_weights, shipped_name
    from srx.export.onnx import check_srx_onnx, export_options, export_stem, fp16_onnx_from_onnx, onnx_from_checkpoint
    from srx.export.tensorrt import check_profile, engine_from_onnx, tensorrt_status
    from srx.fsutil import check_output_dir, check_output_file

    weights, out = one_value(weights, "--weights", "export"), one_value(out_, "--out", "export") or Path("exports")
    scale = scale_of_models(one_value(scale, "--scale", "export"), [weights])
    hw = profile_shapes(min_shape, opt_shape, max_shape)
    check_output_dir(out, "--out")  # output paths are checked before any work
    if name is not None:
        export_stem("", scale, name)  # a bad --name fails before any work too
    if timing_cache is not None and engine is not False:
        check_output_file(timing_cache, "--timing-cache")
    if triton_repo is not None:
        from srx.export.triton_repo import check_triton_repo

        check_triton_repo(triton_repo)
    if engine is not False:
        check_profile(hw[0], hw[1], hw[2] or tuple(map(max, hw[0], hw[1])))  # fail before minutes of work
    trt_ok, why = tensorrt_status() if engine is not False else (False, "")
    if engine and not trt_ok:
        raise SrxError(f"cannot build a TensorRT engine here: {why}")
    path = resolve_weights(weights, scale)
    fp32 = onnx_from_checkpoint(path, out, scale=scale, opset=opset, dynamic=dynamic, height=height, width=width,
                                layout=layout, name=name or shipped_name(weights))
    typer.echo(f"wrote {fp32}")
    graph = fp32
    if fp16:
        graph = fp16_onnx_from_onnx(fp32)
        typer.echo(f"wrote {graph}")
    built = None
    if engine is not False:
        if trt_ok:
            built = engine_from_onnx(
                graph, min_hw=hw[0], opt_hw=hw[1], max_hw=hw[2], workspace_mib=workspace,
                timing_cache=timing_cache, log=typer.echo, weights=path,
            )
        else:
            extra = export_options(check_srx_onnx(fp32))  # what wrote these very files
            given = None if weights is None else str(weights)  # as typed: a shipped name stays a name
            shapes = (min_shape, opt_shape, max_shape) if dynamic else None  # a static graph's engine takes its shape
            cmd = _rebuild_command(given, scale, out, fp16, shapes, extra, workspace, timing_cache)
            typer.echo(f"no TensorRT engine built: {why.rstrip('.')}; on the target GPU run: {cmd}")
    if triton_repo is not None:
        from srx.export.triton_repo import triton_repo_from_model

        folder = triton_repo_from_model(built or fp32, triton_repo)
        typer.echo(f"wrote Triton model {folder.name} into {triton_repo} ({folder / 'config.pbtxt'})")
        if built is not None:
            import json

            from srx.export.tensorrt import sidecar_path

            built_with = json.loads(sidecar_path(built).read_text()).get("tensorrt_version")  # written just now
            typer.echo(f"note: the plan loads only in a Triton server whose TensorRT is "
                       f"{built_with} (the tritonserver release that ships it), "
                       f"on a GPU like this one; --no-engine writes an ONNX model that any Triton with ONNX Runtime loads")
    if check:
        _print_parity(path, scale, graphs=(fp32, graph if fp16 else None), engine=built, data=None, synthetic=False,
                      as_json=False)  # the very files written: their names, their layout, a static graph's size


@app.command("parity")
def parity_cmd(
    scale: Optional[list[int]] = model_scale_option("a checkpoint's"),
    weights: Optional[list[Path]] = weights_option(),
    engine: Optional[Path] = typer.Option(None, "--engine", help="A TensorRT engine to check too (default: build one when TensorRT and a GPU are here)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of HR images (default ../shared/datasets/Set5 when present, else synthetic photos)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use srx's synthetic photos even where Set5 exists."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    server: Optional[list[str]] = typer.Option(
        None, "--server", help="Also check the srx model for --scale on this Triton server (gRPC HOST:PORT) under the FP32 gate; one at a time."),
    model_: Optional[list[str]] = typer.Option(None, "--model", "-m", help="With --server: the model's name on the server (default: the name `srx serve -w` gives these weights, else the one srx finds for --scale).", show_default=False),
) -> None:
    """PyTorch vs ONNX Runtime FP32/FP16 (and TensorRT) on Set5 and odd-sized frames; exit 1 on a failed gate."""
    server = one_server(server, "parity")  # type: ignore[assignment]
    weights, model = one_value(weights, "--weights", "parity"), one_value(model_, "--model", "parity")
    scale = one_value(scale, "--scale", "parity")
    if model is not None and server is None:  # else another model's pass would read as this file's
        raise SrxError(f"--model {model} names a model on a Triton server and applies with --server; to check "
                       "exported graphs, export them with --check (srx export -w WEIGHTS --check), or give "
                       "the checkpoint they came from as -w")
    scale = scale_of_models(scale, [weights])
    _print_parity(weights, scale, graphs=None, engine=engine, data=data, synthetic=synthetic, as_json=as_json,
                  server=server, model=model)


def _print_parity(weights: Optional[Path], scale: int, *, graphs: Optional[tuple[Path, Optional[Path]]],
                  engine: Optional[Path], data: Optional[Path], synthetic: bool, as_json: bool,
                  server: Optional[str] = None, model: Optional[str] = None) -> None:
    from srx.runtime.parity import format_parity_table, parity_report, report_to_json

    extra = []
    if server is not None:
        from srx.runtime.triton_runner import TritonRunner

        from srx.runtime.parity import check_served_model, served_name

        probe = TritonRunner(server, model=model, scale=scale,  # a missing server is one clear error, now
                             expect=served_name(weights, scale))
        check_served_model(probe, weights, scale)
        extra.append(("triton", probe.precision, lambda: TritonRunner(server, model=probe.model, scale=scale)))
    report = parity_report(weights, scale, graphs=graphs, engine=engine, set5=data, synthetic=synthetic,
                           log=None if as_json else typer.echo, extra=extra)
    if as_json:
        typer.echo(report_to_json(report))
    else:
        from rich.console import Console

        Console(width=160).print(format_parity_table(report))
        typer.echo("parity: all gates passed" if report["passed"] else "parity: FAILED (see the table)")
    if report["skipped"]:  # after the images that were checked: the ones that could not be, exit 1
        skipped = report["skipped"]
        raise SrxError(f"{len(skipped)} of the {len(skipped) + report['images']} images in {data} could not be "
                       f"read and were not checked: " + "; ".join(s["reason"] for s in skipped))
    if not report["passed"]:
        raise typer.Exit(1)
