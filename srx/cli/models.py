"""`srx models` and `srx compare`: which shipped weights exist and which one helps on your frames."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from srx.cli.app import app, model_scale_option, one_value, scale_of_models
from srx.jsonout import json_text


def _db(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """The shipped models (names for --weights): architecture, scales, Set5 PSNR clean, at JPEG 50 and under the camera preset, size, speed."""
    from srx.catalog import EVALUATIONS, read_speeds, shipped_catalog
    from srx.checkpoint import DEFAULT_SHIPPED

    rows = shipped_catalog()
    if as_json:
        typer.echo(json_text({"models": rows, "default": DEFAULT_SHIPPED,
                              "speed_measured_on": read_speeds().get("machine")}))
        return
    from srx.cli.runtime import _console

    console = _console()
    for table in _model_tables(rows, console):
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


def _cell_width(text: str) -> int:
    return max((len(line) for line in str(text).splitlines()), default=0)


def _column(table, title: str, cells: list[str], *, left: bool = False, wrap: bool = False) -> None:
    """A column of `srx models`: whole (never cut: a name is what --weights takes, a number is read),
    or with `wrap` one whose long text wraps at spaces (its words stay whole)."""
    widest = max([_cell_width(c) for c in cells] or [1])
    table.add_column(title, justify="left" if left else "right", no_wrap=not wrap, overflow="fold",
                     min_width=None if wrap else max(widest, *(len(w) for w in title.split())))


def _fits(table, console) -> bool:
    """Whether `table` fits the console's width with every whole column whole (Rich would cut them, last)."""
    unbounded = console.options.update_width(10_000)  # measured within the width, it would always fit
    return console.measure(table, options=unbounded).minimum <= console.width


def _model_tables(rows: list[dict], console) -> list:
    """What `srx models` prints: one table where it fits (about 140 columns; a log or pipe is 160 wide),
    else the Set5 scores one scale a row and the model's cost in a second table, with what it was
    trained on in that table or, narrower still, in lines below it. Names and numbers are never cut."""
    from rich.table import Table

    from srx.catalog import EVALUATIONS

    titles = [title for _, title in EVALUATIONS.values()]
    names = [r["name"] for r in rows]
    trained = [r["degrade"].replace(",", ", ") for r in rows]
    scores = [[" / ".join(_db(r["quality"].get(f"x{s}", {}).get(key)) for s in (2, 3, 4)) for key in EVALUATIONS]
              for r in rows]
    params = [f"{r['params']:,}" for r in rows]
    gmac = [f"{r['gmac_720p_x3']:.2f}" for r in rows]
    speeds = [f"{sp['model_ms']:.0f} / {sp['e2e_ms']:.0f}" if (sp := r["speed_720p_x3"]) else "not measured" for r in rows]
    archs = [r["architecture"] for r in rows]

    wide = Table(title="srx shipped models (--weights NAME): Set5 PSNR on Y in dB, x2 / x3 / x4, standard "
                 "protocol; cost per 720p-out x3 frame")
    _column(wide, "name", names, left=True)
    _column(wide, "architecture", archs, left=True)
    _column(wide, "trained on", trained, left=True, wrap=True)
    for i, title in enumerate(titles):
        _column(wide, title, [sc[i] for sc in scores])
    _column(wide, "params", params)
    _column(wide, "GMAC", gmac)
    _column(wide, "ms model / e2e", speeds)
    for i in range(len(rows)):
        wide.add_row(names[i], archs[i], trained[i], *scores[i], params[i], gmac[i], speeds[i])
    if _fits(wide, console):
        return [wide]

    quality = Table(title="srx shipped models (--weights NAME): Set5 PSNR on Y in dB, standard protocol")
    per_scale = [[(f"x{s}", [_db(r["quality"].get(f"x{s}", {}).get(key)) for key in EVALUATIONS]) for s in (2, 3, 4)]
                 for r in rows]
    _column(quality, "name", names, left=True)
    _column(quality, "scale", ["x2"])
    for i, title in enumerate(titles):
        _column(quality, title, [v[i] for model in per_scale for _, v in model])
    for name, model in zip(names, per_scale):
        for j, (x, values) in enumerate(model):
            quality.add_row(name if j == 0 else "", x, *values, end_section=j == len(model) - 1)

    def cost_table(with_training: bool):
        cost = Table(title="cost per 720p-out x3 frame" + (", and what each was trained on" if with_training else ""))
        _column(cost, "name", names, left=True)
        _column(cost, "architecture", archs, left=True)
        if with_training:
            _column(cost, "trained on", trained, left=True, wrap=True)
        _column(cost, "params", params)
        _column(cost, "GMAC", gmac)
        _column(cost, "ms model\n/ e2e", speeds)
        for i in range(len(rows)):
            cost.add_row(names[i], archs[i], *([trained[i]] if with_training else []), params[i], gmac[i], speeds[i])
        return cost

    cost = cost_table(with_training=True)
    if _fits(cost, console):
        return [quality, cost]
    from rich.text import Text

    return [quality, cost_table(with_training=False),
            Text("trained on: " + "; ".join(f"{n}: {t}" for n, t in zip(names, trained)))]


@app.command()
def compare(
    source: Path = typer.Argument(..., help="An HR image, or a video (one frame of it is the HR image)."),
    scale: Optional[list[int]] = model_scale_option("a checkpoint's"),
    degrade: Optional[list[str]] = typer.Option(None, "--degrade", help="LR degradation: a preset (none, camera, jpeg50) or a spec like jpeg=30,noise=5; one per picture (default: jpeg50).", show_default=False),
    weights: Optional[list[str]] = typer.Option(None, "--weights", "-w", help="Models to show (repeat): shipped names or checkpoints, LABEL=CHECKPOINT to name a panel. Default: every shipped model at --scale."),
    out_: Optional[list[Path]] = typer.Option(None, "--out", "-o", help="Where to write the picture (.png; default: compare.png).", show_default=False),
    frame: Optional[int] = typer.Option(None, "--frame", help="With a video: the frame to use (default: the middle one)."),
    crop: int = typer.Option(160, "--crop", help="Side of the HR crop shown, in pixels (the most detailed square)."),
    zoom: int = typer.Option(2, "--zoom", help="Nearest-neighbour zoom of each panel."),
) -> None:
    """One picture, HR crop | bicubic | each model on the same degraded LR, labelled with PSNR."""
    from srx.checkpoint import SHIPPED, resolve_weights, shipped_scales
    from srx.compare import compare_image, labelled_weights, read_hr_frame
    from srx.degrade import given_spec, parse_degradation
    from srx.errors import SrxError
    from srx.fsutil import check_output_file
    from srx.imageio import write_image

    out = one_value(out_, "--out", "compare") or Path("compare.png")
    scale = scale_of_models(one_value(scale, "--scale", "compare"), [labelled_weights(str(w))[1] for w in weights or []])
    if out.suffix.lower() != ".png":
        raise SrxError(f"--out {out}: expected a .png file name")
    check_output_file(out, "--out")  # now, not after every model has run
    if degrade and len(degrade) > 1:
        raise SrxError(f"--degrade given {len(degrade)} times ({', '.join(degrade)}); a picture shows one "
                       "degradation: run srx compare once for each (srx eval scores several in one table)")
    if crop < 8 or zoom < 1:
        raise SrxError(f"--crop must be at least 8 and --zoom at least 1, got {crop} and {zoom}")
    spec = parse_degradation(given_spec(degrade[0]) if degrade else "jpeg50").for_eval
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
