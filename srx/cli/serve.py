"""`srx serve`: an srx model behind a Triton Inference Server (PyTriton), until Ctrl-C, SIGTERM or SIGHUP."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import app, one_value, scale_of_models, threads_option

log = logging.getLogger("srx")


@app.command("serve")
def serve_cmd(
    scale: Optional[list[int]] = typer.Option(
        None, "--scale", "-s", help="Upscaling factor to serve: 2, 3 or 4 (default: a checkpoint's own, else 3); repeat to serve several in one "
        "server (-s 2 -s 3 -s 4: a client of each scale finds its model)."),
    weights: Optional[list[str]] = typer.Option(
        None, "--weights", "-w", help="A shipped model by name (srcnn, fast, camera; `srx models` lists them) or an srx "
        "checkpoint; default: camera. Repeat to serve several (each at every --scale a shipped model has)."),
    model_: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="A model file instead of --weights: srx .onnx, TensorRT .engine or .pt checkpoint.", show_default=False),
    backend: str = typer.Option("auto", "--backend", "-b", help="What runs the model inside the server: auto, onnxruntime, torch, torch-cuda or tensorrt."),
    threads: Optional[int] = threads_option("CPU threads for the model (default: physical cores)."),
    host: str = typer.Option("127.0.0.1", "--host", help="IPv4 address to listen on (0.0.0.0: every interface, for other hosts)."),
    http_port: int = typer.Option(8000, "--http-port", help="Triton's HTTP/REST port."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="Triton's gRPC port (what --server HOST:PORT points at)."),
    metrics_port: int = typer.Option(8002, "--metrics-port", help="Triton's Prometheus metrics port."),
    max_batch: int = typer.Option(8, "--max-batch", help="Largest batch Triton's dynamic batcher forms."),
    queue_delay_us: int = typer.Option(2000, "--queue-delay-us", help="How long a request may wait for others to batch with, microseconds."),
    name: Optional[str] = typer.Option(
        None, "--name", help="Serve the model as srx_<name>_x<scale> (default: the shipped model's name, e.g. "
        "srx_camera_x3; for a file, the name it carries, e.g. srx_lrnet-32x4-pw3_x3)."),
) -> None:
    """Serve models through a real Triton Inference Server (NVIDIA PyTriton: the serve extra of srx).

    Each model is named srx_<name>_x<scale> (input lr_y, output hr_y, dynamic batching); point
    `srx stream/upscale/parity/bench --server HOST:GRPC_PORT` or any Triton client at it. Repeat
    --scale (and --weights) to serve several models from one server. Runs until Ctrl-C, SIGTERM or SIGHUP (its terminal closed),
    then stops the server it started and prints for each model the frames it ran and the batch sizes
    of its model runs."""
    from srx.checkpoint import shipped_name
    from srx.errors import SrxError
    from srx.protocol import check_scale
    from srx.runtime.select import make_runner
    from srx.runtime.triton_server import check_serve_options, pytriton_status, serve_model

    model = one_value(model_, "--model", "serve", more=" (--weights serves several)")
    given = list(weights or [None])
    # without --scale: a checkpoint at its own scale, a shipped model at 3
    own = {str(w): scale_of_models(None, [w]) for w in given if w is not None} if not scale else {}
    scales = list(scale or sorted(set(own.values())) or [3])
    for s in scales:
        check_scale(s)
    if model is not None and (len(scales) > 1 or weights):
        drop = " and ".join(part for part, given_too in (("--weights", weights), ("the extra --scale", len(scales) > 1))
                            if given_too)
        raise SrxError(f"--model serves one model file at its own scale; drop {drop}, or serve the checkpoints with "
                       "--weights")
    if name is not None:
        if len(scales) * len(given) > 1:
            raise SrxError("--name names one model; serving several, each keeps its own name (srx_camera_x2, ...)")
        from srx.export.onnx import export_stem

        export_stem("", scales[0], name)  # a bad --name fails before any work
    if backend == "triton":
        raise SrxError("--backend triton would serve a model from another Triton server; pick onnxruntime, tensorrt or torch")
    check_serve_options(host, http_port, grpc_port, metrics_port, max_batch, queue_delay_us)  # the user's own first
    ok, why = pytriton_status()
    if not ok:
        raise SrxError(why)
    runners, names = [], []
    if model is not None:  # an explicit --scale must match the file's (one line, as upscale and stream say)
        runners.append(make_runner(backend, scale=scale[0] if scale else None, model_file=model, threads=threads))
        names.append(name)
    else:
        for w in given:
            for s in scales if scale or w is None else [own[str(w)]]:
                runners.append(make_runner(backend, scale=s, weights=w, threads=threads))
                names.append(name or shipped_name(w))

    def ready(info: dict) -> None:
        typer.echo(f"serving {', '.join(info['models'])} ({info['backend']}) on Triton Inference Server "
                   f"{info['version']}: gRPC {info['grpc']}, HTTP {info['http']}, metrics {info['metrics']}; "
                   f"dynamic batching up to {info['max_batch']} with {info['queue_delay_us']} us queue delay")
        typer.echo(f"  clients: srx stream --server {client_address(info['host'], info['grpc_port'])}"
                   f"{client_options(info['scales'])} ...   (Ctrl-C or SIGTERM stops the server)")

    served = serve_model(runners, host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                         max_batch=max_batch, queue_delay_us=queue_delay_us, on_ready=ready,
                         verbose=logging.getLogger("srx").isEnabledFor(logging.DEBUG), name=names, owns_process=True)
    stats = served.get("statistics") or {}
    for model_name in served["models"]:
        typer.echo(stopped_line(model_name, stats.get(model_name)))


def stopped_line(model_name: str, st: Optional[dict]) -> str:
    """What the stop prints for one model: the frames Triton ran and in how many model runs of which
    batch sizes (a client's own batches and those Triton's dynamic batching formed, together), however few."""
    from srx.words import counted

    if st is None:
        return f"stopped {model_name}: no statistics (the server stopped before they could be read)"
    sizes = ", ".join(f"{n} x {b}" for b, n in st["batches"].items()) or "none"
    who = f"; counted by {st['counted_by']}, as Triton had stopped" if st.get("counted_by") else ""
    return (f"stopped {model_name}: {counted(st['inference_count'], 'frame')} in "
            f"{counted(st['execution_count'], 'model run')} (executions x batch size: {sizes}{who})")


def client_address(host: str, port: int) -> str:
    """The gRPC address a client uses: the listening address, or for one that listens on every
    interface (0.0.0.0, ::) this machine's host name (THIS_HOST where it has none)."""
    if host in ("0.0.0.0", "::", "", "[::]"):
        import socket

        name = socket.gethostname().strip()
        host = name if name and name != "localhost" else "THIS_HOST"
    return f"{host}:{port}"


def client_options(scales: dict[str, int]) -> str:
    """What a client must add to find the served models ({Triton name: scale}): --scale where each
    is one a client finds unnamed (one per scale, named as `srx serve` names it without --name),
    else --model NAME (which carries its scale)."""
    from srx.runtime.triton_runner import unnamed_served_models

    models = list(scales)
    found = all(name in unnamed_served_models(s) for name, s in scales.items())
    if found and len(set(scales.values())) == len(scales):
        return f" --scale {'|'.join(str(s) for s in sorted(scales.values()))}"
    return f" --model {'|'.join(models)}"
