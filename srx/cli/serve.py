"""`srx serve`: an srx model behind a Triton Inference Server (PyTriton), until Ctrl-C or SIGTERM."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import app, threads_option, weights_option

log = logging.getLogger("srx")


@app.command("serve")
def serve_cmd(
    scale: int = typer.Option(3, "--scale", "-s", help="Upscaling factor of the shipped weights to serve: 2, 3 or 4."),
    weights: Optional[Path] = weights_option(),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A model file instead of --weights: srx .onnx, TensorRT .engine or .pt checkpoint."),
    backend: str = typer.Option("auto", "--backend", "-b", help="What runs the model inside the server: auto, onnxruntime, torch, torch-cuda or tensorrt."),
    threads: Optional[int] = threads_option("CPU threads for the model (default: physical cores)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface, for other hosts)."),
    http_port: int = typer.Option(8000, "--http-port", help="Triton's HTTP/REST port."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="Triton's gRPC port (what --server HOST:PORT points at)."),
    metrics_port: int = typer.Option(8002, "--metrics-port", help="Triton's Prometheus metrics port."),
    max_batch: int = typer.Option(8, "--max-batch", help="Largest batch Triton's dynamic batcher forms."),
    queue_delay_us: int = typer.Option(2000, "--queue-delay-us", help="How long a request may wait for others to batch with, microseconds."),
    name: Optional[str] = typer.Option(
        None, "--name", help="Serve the model as srx_<name>_x<scale> (default: the shipped model's name, e.g. "
        "srx_camera_x3; for a file, the name it carries, e.g. srx_lrnet-32x4-pw3_x3)."),
) -> None:
    """Serve a model through a real Triton Inference Server (NVIDIA PyTriton: the serve extra of srx).

    The model is named srx_<name>_x<scale> (input lr_y, output hr_y, dynamic batching); point
    `srx stream/upscale/parity/bench --server HOST:GRPC_PORT` or any Triton client at it. Runs until
    Ctrl-C or SIGTERM, then stops the server it started and prints the batch sizes Triton formed."""
    from srx.checkpoint import shipped_name
    from srx.protocol import check_scale
    from srx.runtime.select import make_runner
    from srx.runtime.triton_server import pytriton_status, serve_model

    if model is None:
        check_scale(scale)
    if name is not None:
        from srx.export.onnx import export_stem

        export_stem("", scale, name)  # a bad --name fails before any work
    ok, why = pytriton_status()
    if not ok:
        from srx.errors import SrxError

        raise SrxError(why)
    if backend == "triton":
        from srx.errors import SrxError

        raise SrxError("--backend triton would serve a model from another Triton server; pick onnxruntime, tensorrt or torch")
    runner = make_runner(backend, scale=None if model is not None else scale, weights=weights, model_file=model,
                         threads=threads)

    def ready(info: dict) -> None:
        typer.echo(f"serving {info['model']} ({info['backend']}) on Triton Inference Server {info['version']}: "
                   f"gRPC {info['grpc']}, HTTP {info['http']}, metrics {info['metrics']}; "
                   f"dynamic batching up to {info['max_batch']} with {info['queue_delay_us']} us queue delay")
        typer.echo(f"  clients: srx stream --server {info['grpc']} ...   (Ctrl-C or SIGTERM stops the server)")

    served = serve_model(runner, host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                         max_batch=max_batch, queue_delay_us=queue_delay_us, on_ready=ready,
                         verbose=logging.getLogger("srx").isEnabledFor(logging.DEBUG),
                         name=name or (shipped_name(weights) if model is None else None))
    st = served.get("statistics")
    if st:
        sizes = ", ".join(f"{n} x {b}" for b, n in st["batches"].items()) or "none"
        typer.echo(f"stopped: {st['inference_count']} requests in {st['execution_count']} model runs "
                   f"(executions x batch size: {sizes})")
    else:
        typer.echo("stopped")
