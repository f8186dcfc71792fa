"""`srx models` and `srx compare`: which shipped weights exist and which one helps on your frames."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import app, model_scale_option, scale_of_models


def _db(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """The shipped models (names for --weights): architecture, scales, Set5 PSNR clean, at JPEG 50 and under the camera preset, size, speed."""
    from srx.catalog import EVALUATIONS, read_speeds, shipped_catalog
    from srx.checkpoint import DEFAULT_SHIPPED

    rows = shipped_catalog()
    if as_json:
        typer.echo(json.dumps({"models": rows, "default": DEFAULT_SHIPPED, "speed_measured_on": read_speeds().get("machine")},
                              indent=2))
        return
    from rich.table import Table

    from srx.cli.runtime import _console

    table = Table(title="srx shipped models (--weights NAME): Set5 PSNR on Y in dB, x2 / x3 / x4, standard "
                  "protocol; cost per 720p-out x3 frame")
    quality_cols = [title for _, title in EVALUATIONS.values()]
    for col in ("name", "architecture", "trained on", *quality_cols, "params", "GMAC", "ms model / e2e"):
        table.add_column(col, justify="left" if col in ("name", "architecture", "trained on") else "right",
                         overflow="fold", no_wrap=col != "trained on")
    for r in rows:
        q = r["quality"]
        scores = [" / ".join(_db(q.get(f"x{s}", {}).get(key)) for s in (2, 3, 4)) for key in EVALUATIONS]
        sp = r["speed_720p_x3"]
        speed = f"{sp['model_ms']:.0f} / {sp['e2e_ms']:.0f}" if sp else "not measured"
        table.add_row(r["name"], r["architecture"], r["degrade"].replace(",", ", "), *scores, f"{r['params']:,}",
                      f"{r['gmac_720p_x3']:.2f}", speed)
    console = _console()
    console.print(table)
    speeds = read_speeds()
    if speeds.get("machine"):
        console.print(f"speed: one `srx bench` run, ONNX Runtime CPU, {speeds['machine']}, float32 GEMM "
                      f"{speeds.get('gemm_gflops', 0):.0f} GFLOP/s in that run (compare within a run only)", markup=False)
    q = rows[0]["quality"] if rows else {}
    bicubic = "; ".join(f"{title} " + " / ".join(_db(q.get(f"x{s}", {}).get(f"{key}_bicubic")) for s in (2, 3, 4))
                        for key, (_, title) in EVALUATIONS.items())
    console.print(f"bicubic on Set5: {bicubic}" + " dB. Bicubic and the model see the same LR (`srx eval --degrade jpeg50` / `camera`; the camera "
                  "preset draws each image's JPEG quality and noise from its ranges, seeded by the image).", markup=False)
    console.print(f"default (a command without --weights): {DEFAULT_SHIPPED}", markup=False)


@app.command()
def compare(
    source: Path = typer.Argument(..., help="An HR image, or a video (one frame of it is the HR image)."),
    scale: Optional[int] = model_scale_option("a checkpoint's"),
    degrade: Optional[list[str]] = typer.Option(None, "--degrade", help="LR degradation: a preset (none, camera, jpeg50) or a spec like jpeg=30,noise=5; one per picture.", show_default="jpeg50"),
    weights: Optional[list[str]] = typer.Option(None, "--weights", "-w", help="Models to show (repeat): shipped names or checkpoints, LABEL=CHECKPOINT to name a panel. Default: every shipped model at --scale."),
    out: Path = typer.Option(Path("compare.png"), "--out", "-o", help="Where to write the picture (.png)."),
    frame: Optional[int] = typer.Option(None, "--frame", help="With a video: the frame to use (default: the middle one)."),
    crop: int = typer.Option(160, "--crop", help="Side of the HR crop shown, in pixels (the most detailed square)."),
    zoom: int = typer.Option(2, "--zoom", help="Nearest-neighbour zoom of each panel."),
) -> None:
    """One picture, HR crop | bicubic | each model on the same degraded LR, labelled with PSNR."""
    from srx.checkpoint import SHIPPED, resolve_weights, shipped_scales
    from srx.compare import compare_image, labelled_weights, read_hr_frame
    from srx.degrade import parse_degradation
    from srx.errors import SrxError
    from srx.fsutil import check_output_file
    from srx.imageio import write_image

    scale = scale_of_models(scale, [labelled_weights(str(w))[1] for w in weights or []])
    if out.suffix.lower() != ".png":
        raise SrxError(f"--out {out}: expected a .png file name")
    check_output_file(out, "--out")  # now, not after every model has run
    if degrade and len(degrade) > 1:
        raise SrxError(f"--degrade given {len(degrade)} times ({', '.join(degrade)}); a picture shows one "
                       "degradation: run srx compare once for each (srx eval scores several in one table)")
    if crop < 8 or zoom < 1:
        raise SrxError(f"--crop must be at least 8 and --zoom at least 1, got {crop} and {zoom}")
    spec = parse_degradation(degrade[0] if degrade else "jpeg50").for_eval
    names = weights or [n for n in SHIPPED if scale in shipped_scales(n)]
    labelled = [labelled_weights(str(n)) for n in names]
    repeated = sorted({lab for lab, _ in labelled if [x for x, _ in labelled].count(lab) > 1})
    if repeated:
        raise SrxError(f"--weights names {', '.join(repeated)} more than once; expected each model once "
                       "(LABEL=WEIGHTS tells two files of one name apart)")
    if source.exists() and out.exists() and out.resolve() == source.resolve():
        raise SrxError(f"--out {out} is the input itself, which would be overwritten; expected another .png name")
    chosen = [(label, resolve_weights(given, scale)) for label, given in labelled]
    hr, label, number = read_hr_frame(source, frame)
    picture, panels = compare_image(hr, scale, chosen, spec, label, crop, zoom, number)
    write_image(out, picture)
    typer.echo(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]}): " + ", ".join(
        f"{p.label} {p.psnr:.2f} dB" for p in panels if p.psnr is not None))
