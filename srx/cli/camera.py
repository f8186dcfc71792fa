"""`srx stream`: upscale a camera, file, network stream or the built-in demo clip live."""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Optional

import typer

from srx.cli.config import Tables, config_option, per_item_values, replaced_together
from srx.cli.app import (DURATION_FORMS, SIZE_FORMS, app, model_scale_option, one_value, parse_size, scale_of_models,
                         threads_option, weights_option)
from srx.errors import SrxError
from srx.jsonout import json_text

log = logging.getLogger("srx")


#: stream's [[source]] tables in a --config file: one camera each, with its own --roi, --max-fps, --rtsp-transport
SOURCE_TABLES = Tables("source", ("source", "camera"), ("roi", "max-fps", "rtsp-transport"),
                       replaced_by=("source", "camera", "demo"))

#: stream's options that take a length of time
DURATION_OPTIONS = ("duration", "reconnect-max-wait", "segment", "keep", "open-timeout")


def _check_file_value(key: str, text: str) -> None:
    """A --config file's value as stream's option would check it (its lengths of time, --max-frames,
    --buffer, --keep-free, --serve, --threads, a [[source]] table's name, address (`check_url`) and own
    roi, max-fps, rtsp-transport), so a bad one is said with the file and the key, not as an option the user
    never typed."""
    from srx.camera.capture import check_buffer
    from srx.camera.multi import check_name, split_name
    from srx.camera.server import parse_hostport
    from srx.camera.sources import check_url, parse_max_fps, parse_roi, parse_rtsp_transport
    from srx.camera.stream import check_bounds
    from srx.cli.app import check_thread_count, parse_duration

    if key in DURATION_OPTIONS:
        seconds = parse_duration(text, f"--{key}")
        if key == "duration":
            check_bounds(None, seconds)
        elif key in ("open-timeout", "reconnect-max-wait"):
            _positive_seconds(**{key.replace("-", "_"): seconds})
        elif key == "segment":
            _check_segment_length(seconds, text)
    checks = {"max-frames": lambda t: check_bounds(int(t), None), "buffer": lambda t: check_buffer(int(t)),
              "name": check_name, "roi": parse_roi, "max-fps": parse_max_fps, "rtsp-transport": parse_rtsp_transport,
              "serve": parse_hostport, "keep-free": lambda t: parse_size(t, "--keep-free"),
              "threads": lambda t: check_thread_count(int(t)), "source": lambda t: check_url(split_name(t)[1])}
    if key in checks:
        checks[key](text)


def _check_segment_length(seconds: float, text: str) -> None:
    from srx.camera.segments import MIN_SEGMENT_S

    if not MIN_SEGMENT_S <= seconds < math.inf:
        raise SrxError(f"--segment {text}: expected at least {MIN_SEGMENT_S:g} second, e.g. 10m or 1h")


def _seconds(text: Optional[str], option: str) -> Optional[float]:
    from srx.cli.app import parse_duration

    return parse_duration(text, option)


def _positive_seconds(**given: float) -> None:
    for key, value in given.items():
        if not 0 < value < math.inf:  # nan and inf too: they would reach socket timeouts as they are
            raise SrxError(f"--{key.replace('_', '-')} must be a positive number of seconds, got {value:g}")


@app.command("stream")
def stream_cmd(
    ctx: typer.Context,
    camera: Optional[list[str]] = typer.Option(
        None, "--camera", help="V4L2 camera index (0 for /dev/video0); repeat for several cameras, NAME=N names one."),
    source: Optional[list[str]] = typer.Option(
        None, "--source", help="Video file, image folder, rtsp:// or http(s):// URL, or a GStreamer pipeline (contains '!'); "
        "repeat for several sources, NAME=SPEC names one (default names: cam0, the file's stem, a URL's host and the last part of its path, e.g. 10.0.0.5-main). "
        "${NAME} in a URL or pipeline is the environment variable NAME (a camera password off the command line; quote it in single quotes)."),
    demo: bool = typer.Option(False, "--demo", help="Stream srx's built-in synthetic street clip (320x180, 100 frames at 10 fps)."),
    config: Optional[list[str]] = config_option("stream", SOURCE_TABLES, _check_file_value),
    loop: bool = typer.Option(False, "--loop", help="Start a file (or the demo) again when it ends."),
    no_drop: bool = typer.Option(False, "--no-drop", help="Process every frame, nothing dropped, instead of always the newest: a file is read as fast as the model takes it (at its own rate where it is published to an rtsp:// output)."),
    buffer: int = typer.Option(
        2, "--buffer", help="Frames held for the model per source; when one more arrives the oldest is dropped. 1: always the "
        "newest alone (lowest latency); 2 (default) rides out a one-off slow inference at one frame of extra latency."),
    scale: Optional[list[int]] = model_scale_option(),
    weights: Optional[list[Path]] = weights_option(),
    model_: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="Model file instead of --weights: .onnx, .engine or .pt.", show_default=False),
    backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime, torch, torch-cuda, tensorrt or triton (with --server)."),
    server: Optional[list[str]] = typer.Option(
        None, "--server", help="Triton Inference Server gRPC HOST:PORT (e.g. one `srx serve` runs); implies --backend triton. "
        "--model NAME then picks the model on it. Repeat for several servers serving the same model: frames go to "
        "each in turn (with several sources, to all at once), and one that goes away is skipped until it is back."),
    threads: Optional[int] = threads_option("CPU threads for the model (default: physical cores)."),
    output: Optional[list[str]] = typer.Option(
        None, "--output", "-o", help="Record: .mp4/.mov/.m4v (H.264, viewing), .mkv (lossless FFV1), .avi (MJPEG), or a folder/ for PNG frames; "
        "or publish: rtsp://HOST:PORT/PATH (H.264 to an RTSP server that takes published streams, e.g. MediaMTX, for "
        "NVRs and players to pull). Repeat it to record and publish at once. With several sources a pattern with "
        "{name}, e.g. out/{name}.mkv or rtsp://HOST:8554/{name}."),
    serve: Optional[str] = typer.Option(
        None, "--serve", help="Serve the stream and a stats page over HTTP at HOST:PORT (host defaults to 127.0.0.1)."),
    compare: bool = typer.Option(False, "--compare", help="Show bicubic | model side by side, labelled."),
    window: Optional[bool] = typer.Option(
        None, "--window/--no-window", help="Show a window (default: when a display is available)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after this many upscaled frames (per source)."),
    duration: Optional[str] = typer.Option(None, "--duration", help=f"Stop after this long: {DURATION_FORMS}.", show_default=False),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet", "-q", help="No live status line on stderr.",
                               show_default=False),
    overlay: bool = typer.Option(False, "--overlay", help="Draw the live numbers onto the frames."),
    json_summary: Optional[str] = typer.Option(  # a str: only "-" itself is stdout, not ./- (a Path prints as -)
        None, "--json-summary", metavar="<path>", help="Also write the summary to this JSON file (several sources: one file with each source "
        "and the totals, or one file per source when the name holds {name}); - for stdout (the text summary then goes "
        "to stderr; ./- for a file named -); a named pipe or device is written to, a link's target replaced."),
    reconnect_max_wait: str = typer.Option(
        "30s", "--reconnect-max-wait", help="Longest wait between reconnect attempts to a lost live source (or to the RTSP "
        f"server an --output rtsp:// publishes to): {DURATION_FORMS}."),
    segment: Optional[str] = typer.Option(
        None, "--segment", help="Cut each video-file recording into files of this length, e.g. 10m or 1h, cut where local "
        "time passes a multiple of it (on the hour for 1h) and named by the local time of their first frame: "
        "out/cam1.mp4 becomes out/cam1-20261206-140000.mp4, out/cam1-20261206-150000.mp4, ... "
        f"A duration: {DURATION_FORMS}."),
    keep: Optional[str] = typer.Option(
        None, "--keep", help="With --segment: delete the recording's own segments (files named as --segment names them) "
        f"that began longer ago than this, e.g. 7d, so a small disk does not fill: {DURATION_FORMS}."),
    keep_free: Optional[str] = typer.Option(
        None, "--keep-free", help="With --segment: while the disk of the recordings has less free space than this, "
        "delete the oldest of their segments, whichever camera's (never one's newest), so the disk never fills: "
        f"{SIZE_FORMS}. Make it more than one segment of every camera takes."),
    open_timeout: str = typer.Option("10s", "--open-timeout", help=f"Give up opening (or reading) a source after this long (an rtsp:// source over TCP that has answered "
        f"gets 5 s more to open: FFmpeg reads the start of its stream first): {DURATION_FORMS}."),
    roi: Optional[list[str]] = typer.Option(
        None, "--roi", help="Upscale only this region of the frames: LEFT,TOP,WIDTH,HEIGHT in source pixels, e.g. "
        "640,360,640,360 (a digital zoom; an HD camera then costs what its region costs). With several sources "
        "NAME=LEFT,TOP,WIDTH,HEIGHT sets one source's (repeat); one without a name applies to the others."),
    max_fps: Optional[list[str]] = typer.Option(
        None, "--max-fps", help="At most this many frames a second go to the model, evenly spaced; the others are "
        "skipped (counted apart from dropped ones), so many cameras share a host's cores by design. With several "
        "sources NAME=N sets one source's (repeat); one without a name applies to the others."),
    rtsp_transport: Optional[list[str]] = typer.Option(
        None, "--rtsp-transport", help="How an rtsp:// source's video comes: tcp (default: inside the RTSP connection, "
        "through NAT, firewalls and 4G routers; a lossy link delays frames rather than damaging them) or udp (RTP "
        "packets apart: a little less delay on a clean local network; a lost packet damages a frame, and a network "
        "that drops UDP leaves the camera silent). With several sources NAME=tcp|udp sets one source's (repeat); one "
        "without a name applies to the others."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check the options (and a --config file) and print each source with its settings, "
        "the model and the outputs, then exit: no source is opened (a camera's address is not tried), nothing is "
        "recorded or served. For a service's file before a restart."),
) -> None:
    """Upscale a live stream frame by frame, keeping to the newest frames, and report fps and latency.

    The source is --camera N, --source FILE|URL|PIPELINE or --demo; the results go to a window,
    --output (a recording, or rtsp://... to publish to an RTSP server) and/or --serve, all at once
    if asked. Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stop cleanly (recordings are
    finalised) and print the summary.

    Several sources (--source and --camera repeated, --demo) run in one process: one capture thread
    each, one model call per tick over the frames that are ready (batched by frame size), outputs
    per source (--output out/{name}.mkv; --serve shows every camera on one page and serves
    /cam/NAME/stream.mjpg each), numbers per source and in total. Name a source with
    --source NAME=SPEC; a source that fails or drops out does not stop the others. --config FILE
    takes the options from a TOML file, with a table of its own for each camera."""
    from srx.signals import StoppedEarly, stopping_signals

    # from the command's start: a stop while srx loads its modules (seconds on a small box), reads its
    # options, loads the model or opens the cameras ends cleanly (it was exit 143 or 130 in the first
    # seconds, with nothing said); the summary after the stream is inside too (_WindDown)
    with stopping_signals():
        try:
            from srx.camera.multi import apply_rates, apply_regions, apply_transports, parse_sources
            from srx.camera.server import parse_hostport

            weights, scale = one_value(weights, "--weights", "stream"), one_value(scale, "--scale", "stream")
            model = one_value(model_, "--model", "stream")
            json_summary = _summary_target(json_summary)
            waits = {"open_timeout": _seconds(open_timeout, "--open-timeout"),
                     "reconnect_max_wait": _seconds(reconnect_max_wait, "--reconnect-max-wait")}
            _positive_seconds(**waits)
            reconnect_max_wait, open_timeout = waits["reconnect_max_wait"], waits["open_timeout"]
            if serve is not None:
                parse_hostport(serve)  # a bad --serve is one line before anything is read or opened
            server = list(server or []) or None
            if weights is not None and model is not None and server is None:
                raise SrxError("pass either --weights (a checkpoint) or --model (a .onnx/.engine/.pt file), not both")
            # with --server, --model names a served model, whose scale the server says (known once it is asked)
            scale = scale_of_models(scale, [weights], None if server is not None else model,
                                    default=None if server is not None else 3)
            # the command line's sources stand for all of a --config file's; each source's own values merge by name
            given, replaced = replaced_together(ctx, {"camera": camera, "source": source, "demo": demo},
                                                empty={"camera": None, "source": None, "demo": False})
            cams, srcs, demo = list(given["camera"] or []), list(given["source"] or []), given["demo"]
            named = parse_sources(cams, srcs, demo, loop) if cams or srcs or demo else []
            present = {item.name for item in named}
            apply_regions(named, per_item_values(ctx, "roi", roi, present, replaced))
            apply_rates(named, per_item_values(ctx, "max_fps", max_fps, present, replaced))
            apply_transports(named, per_item_values(ctx, "rtsp_transport", rtsp_transport, present, replaced))
            if server is not None and backend == "auto":
                backend = "triton"
            if not named and config:
                raise SrxError(f"no source given: --config {config[0]} has no [[source]] table (nor source =, camera = or "
                               "demo = true), and the command line names none (--camera N, --source FILE|URL|PIPELINE, --demo)")
            if not named:  # several of each may be given; none is the mistake
                raise SrxError("no source given; expected --camera N, --source FILE|URL|PIPELINE or --demo (repeat --camera "
                               "and --source for several sources)")
            if dry_run:
                _dry_run(named, weights=weights, scale=scale, model=model, server=server, output=output, serve=serve,
                         buffer=buffer, max_frames=max_frames, duration=duration, segment=segment, keep=keep,
                         keep_free=keep_free, config=config, json_summary=json_summary)
                return
            run = _stream_many if len(named) > 1 else _stream_one
            run(named, scale=scale, weights=weights, model=model, backend=backend, server=server, threads=threads,
                output=output, serve=serve, compare=compare, window=window, max_frames=max_frames,
                duration=duration, quiet=quiet, overlay=overlay, json_summary=json_summary, no_drop=no_drop,
                buffer=buffer, reconnect_max_wait=reconnect_max_wait, open_timeout=open_timeout,
                segment=segment, keep=keep, keep_free=keep_free)
        except StoppedEarly as early:
            _stopped_early(early, json_summary)


def _stopped_early(early: Any, given: Optional[str]) -> None:
    """A stop before the stream began: one line on stderr (it went to stdout, where `--json-summary -`
    puts the JSON) and a --json-summary that says so (none was written: a script reading it after
    exit 0 found nothing, or text where JSON was promised)."""
    typer.echo(f"stopped before the stream began ({early.name}): nothing was upscaled or recorded", err=True)
    target = _summary_target(given)
    if target is None:
        return
    summary = {"stopped_by": "interrupted", "signal": early.name, "began": False, "frames_in": 0, "frames_out": 0}
    if target == STDOUT:
        typer.echo(json_text(summary))
        return
    if "{name}" in str(target):  # one file per source: which sources there were may not be known yet
        return
    from srx.fsutil import write_report

    write_report(Path(target), json_text(summary) + "\n")


#: --json-summary's stdout: the argument "-" itself, kept as this string (a Path never equals it)
STDOUT = "-"


def _summary_target(given: Optional[str]):
    """--json-summary as given: STDOUT for the argument "-" alone, else a Path (./- is a file named -)."""
    return None if given is None else STDOUT if given == STDOUT else Path(given)


def _report(summary, json_summary, named) -> None:
    """The summary, --json-summary, and then an error line (exit 1) for the outputs that failed on
    the way: a full disk stops one recording, not the run or its account. A --json-summary that
    cannot be written (a full disk) is an error line of its own, before that one."""
    to_stdout = json_summary == STDOUT  # the JSON is what stdout carries then
    try:
        typer.echo(summary.format(), err=to_stdout)
    except OSError as exc:  # a terminal that hung up (SIGHUP stopped the run): --json-summary still gets written
        from srx.console import GONE_ERRNOS

        if exc.errno not in GONE_ERRNOS and not to_stdout:  # stdout a file on a full disk, say: one line, as any write that fails
            # (the text on a stderr that fails beside `--json-summary -` is left: the JSON on stdout is what counts)
            from srx.fsutil import WriteError

            raise WriteError(Path("stdout"), exc) from None
        log.debug("the summary could not be printed: %s", exc)
    failed = summary.output_errors
    whys = [summary.source_error] if getattr(summary, "source_error", None) else []  # one source's run
    if getattr(summary, "run_error", None):  # the upscale ran out of memory (stopped_by out-of-memory)
        whys.append(summary.run_error)
    if failed:
        whys.append(f"{len(failed)} output{'s' if len(failed) > 1 else ''} failed: " + "; ".join(failed))
    if to_stdout:
        typer.echo(json_text(summary.to_dict()))
    elif json_summary is not None:
        try:
            summary.write_json(json_summary)
        except SrxError as exc:  # a full disk: said in its own line, and the run's other errors still are
            if not whys:
                raise
            typer.echo(f"error: {exc}", err=True)
        else:
            log.info("summary written to %s", _written(str(json_summary), named))
    if whys:
        raise SrxError("; ".join(whys))


def _stream_one(named, *, scale, weights, model, backend, server, threads, output, serve, compare, window, max_frames,
                duration, quiet, overlay, json_summary, no_drop, buffer, reconnect_max_wait, open_timeout, segment=None,
                keep=None, keep_free=None) -> None:
    """One source: the single-source loop (srx.camera.stream; {name} in --output takes its name)."""
    from srx.camera.capture import check_buffer
    from srx.camera.multi import output_for
    from srx.camera.outputs import WindowOutput, display_available, recording_output
    from srx.camera.server import MjpegServer
    from srx.camera.sources import check_source
    from srx.camera.stats import StreamStats
    from srx.camera.stream import check_bounds, stream
    from srx.runtime.upscaler import create_upscaler

    spec = named[0].spec
    output = [output_for(str(o), named[0].name) if "{name}" in str(o) else o for o in output or []]
    if json_summary is not None and "{name}" in str(json_summary):
        json_summary = Path(output_for(str(json_summary), named[0].name))
    check_source(spec)
    _distinct_outputs(output)
    check_buffer(buffer)
    seconds = _seconds(duration, "--duration")
    check_bounds(max_frames, seconds)
    cut = _segments(segment, keep, keep_free, output, live=spec.live)
    if json_summary is not None and json_summary != STDOUT:  # checked now, not after the whole run
        from srx.fsutil import check_output_file

        check_output_file(json_summary, "--json-summary", in_place=True)  # written as write_report writes it
    show = display_available() if window is None else window
    stats = StreamStats()
    outputs = []
    web = None
    try:  # outputs check their destinations now, before the model loads and the source opens
        if serve is not None:  # first: an address it cannot serve on stops the run before a recording opens
            web = MjpegServer(serve, stats=stats.live, source=named[0].name if named else "stream")
        for target in output or []:
            _not_a_source(str(target), [spec])
            outputs.append(recording_output(target, retry_max_wait=reconnect_max_wait, **cut))
        if web is not None:
            outputs.append(web)
        if show:
            outputs.append(WindowOutput())
        if not outputs:
            log.info("no output asked for (headless, no --output/--serve): frames are upscaled and measured only")
        upscaler = create_upscaler(scale, weights=weights, model_file=model, backend=backend, threads=threads,
                                   server=server)
        if web is not None:  # the page says the model's scale, which a served model gives
            x = upscaler.scale
            web.title = f"srx stream x{x}: {spec.describe()}"
            web.halves = (f"left: bicubic x{x}", f"right: super-resolution x{x}") if compare else None
    except BaseException:
        for o in outputs if web is None or web in outputs else [web, *outputs]:
            o.discard()
        raise
    summary = stream(spec, upscaler, outputs, max_frames=max_frames, duration=seconds, drop=not no_drop,
                     buffer=buffer, compare=compare, overlay=overlay, quiet=quiet, reconnect_max_wait=reconnect_max_wait,
                     open_timeout=open_timeout, stats=stats, name=named[0].name if named[0].given else None)
    _report(summary, json_summary, named)


def _stream_many(named, *, scale, weights, model, backend, server, threads, output, serve, compare, window, max_frames,
                 duration, quiet, overlay, json_summary, no_drop, buffer, reconnect_max_wait, open_timeout, segment=None,
                 keep=None, keep_free=None) -> None:
    """Several sources in one process (srx.camera.multi)."""
    from srx.camera.capture import check_buffer
    from srx.camera.stream import check_bounds
    from srx.camera.multi import check_pattern, output_for, stream_many
    from srx.camera.multi_server import MultiMjpegServer, multi_stats
    from srx.camera.outputs import WindowOutput, display_available, recording_output
    from srx.camera.sources import check_source
    from srx.camera.stats import StreamStats
    from srx.runtime.upscaler import create_upscaler

    for item in named:  # a camera not plugged in (yet) is retried with the others running, as a URL is
        check_source(item.spec, absent_ok=True)
    check_buffer(buffer)
    seconds = _seconds(duration, "--duration")
    check_bounds(max_frames, seconds)
    _distinct_outputs(output)
    room = _free_space(keep_free)  # one for the run: its cameras make room together
    cuts = {item.name: _segments(segment, keep, keep_free, output, live=item.spec.live, room=room) for item in named}  # a clock for each source's recordings
    for pattern in output or []:
        check_pattern(str(pattern), len(named))
    if json_summary not in (None, STDOUT) and "{name}" not in str(json_summary) and json_summary.is_dir():
        raise SrxError(f"--json-summary {json_summary} is a folder; expected a file name")
    show = display_available() if window is None else window
    stats = {item.name: StreamStats() for item in named}
    outputs: dict = {item.name: [] for item in named}
    shared: list = []
    try:  # outputs check their destinations now, before the model loads and the sources open
        if serve is not None:  # first: an address it cannot serve on stops the run before a recording opens
            shared.append(MultiMjpegServer(serve, [item.name for item in named], stats=multi_stats(stats)))
        for pattern in output or []:
            for item in named:
                _not_a_source(output_for(str(pattern), item.name), [n.spec for n in named])
                outputs[item.name].append(recording_output(output_for(str(pattern), item.name),
                                                           retry_max_wait=reconnect_max_wait, **cuts[item.name]))
        if serve is not None:
            web = shared[0]
            for item in named:
                outputs[item.name].append(web.channel(item.name))
        if show:
            for item in named:
                outputs[item.name].append(WindowOutput(f"srx {item.name}"))
        if not any(outputs.values()):
            log.info("no output asked for (headless, no --output/--serve): frames are upscaled and measured only")
        upscaler = create_upscaler(scale, weights=weights, model_file=model, backend=backend, threads=threads,
                                   server=server, parallel=True)
        if shared:  # the page says the model's scale, which a served model gives
            shared[0].title = f"srx stream x{upscaler.scale}: {len(named)} cameras"
    except BaseException:
        for o in [o for outs in outputs.values() for o in outs] + shared:
            o.discard()
        raise
    summary = stream_many(named, upscaler, outputs, shared_outputs=shared, max_frames=max_frames, duration=seconds,
                          drop=not no_drop, buffer=buffer, compare=compare, overlay=overlay, quiet=quiet,
                          reconnect_max_wait=reconnect_max_wait, open_timeout=open_timeout, stats=stats)
    _report(summary, json_summary, named)


def _dry_run(named, *, weights, scale, model, server, output, serve, buffer, max_frames, duration, segment, keep,
             keep_free, config, json_summary=None) -> None:
    """--dry-run: the checks a run makes before it opens anything, then what it would run, one line
    a source: its name, where from (password hidden), transport, rate and region."""
    from srx.camera.capture import check_buffer
    from srx.camera.multi import check_pattern, output_for
    from srx.camera.sources import check_source, redact_url
    from srx.camera.stream import check_bounds
    from srx.checkpoint import DEFAULT_SHIPPED, resolve_weights, shipped_name

    for item in named:
        check_source(item.spec, absent_ok=len(named) > 1)
    check_buffer(buffer)
    check_bounds(max_frames, _seconds(duration, "--duration"))
    _distinct_outputs(output)
    room = _free_space(keep_free)
    for item in named:
        _segments(segment, keep, keep_free, output, live=item.spec.live, room=room)
    for pattern in output or []:
        check_pattern(str(pattern), len(named))
        for item in named:  # where a recording would go can be written (nothing is created)
            _check_output_place(output_for(str(pattern), item.name), room)
    summaries = ([] if json_summary is None else [str(json_summary)] if json_summary == STDOUT or "{name}" not in str(json_summary)
                 else [output_for(str(json_summary), item.name) for item in named])
    for target in summaries:
        if target != STDOUT:
            from srx.fsutil import check_output_file

            check_output_file(Path(target), "--json-summary", in_place=True)
    if server is not None:
        what = f"Triton server{'s' if len(server) > 1 else ''} {', '.join(server)}" + (f", model {model}" if model else "")
    elif model is not None:
        what = f"model file {model}" + (f" (x{scale})" if scale else "")
    else:
        path = resolve_weights(weights, scale or 3)
        what = f"{shipped_name(weights) or (DEFAULT_SHIPPED if weights is None else path)} x{scale or 3} ({path})"
    lines = [f"dry run{' of --config ' + config[0] if config else ''}: {len(named)} source{'s' if len(named) > 1 else ''}, "
             f"upscaled by {what}; nothing was opened"]
    for item in named:
        spec = item.spec
        parts = [spec.describe_whole()]
        if spec.rtsp:
            parts.append(f"rtsp over {spec.rtsp_transport}")
        if spec.max_fps:
            parts.append(f"at most {spec.max_fps:g} fps")
        if spec.roi:
            x, y, w, h = spec.roi
            parts.append(f"region {w}x{h} at {x},{y}")
        lines.append(f"  {item.name}: " + ", ".join(parts))
    for pattern in output or []:
        targets = [redact_url(output_for(str(pattern), item.name)) for item in named]  # a publish URL's password
        cut = f" in {segment} segments" + (f", kept {keep}" if keep else "") + (f", {keep_free} kept free" if keep_free else "")
        lines.append(f"  output: {', '.join(targets)}" + (cut if segment else ""))
    if serve is not None:
        lines.append(f"  served at http://{serve}/")
    if summaries:
        lines.append(f"  summary: {', '.join('stdout' if t == STDOUT else t for t in summaries)} (--json-summary)")
    typer.echo("\n".join(lines))


def _check_output_place(target: str, room=None) -> None:
    """--dry-run's check of an --output: a video file's or a frames folder's place can be written (and
    its disk can give the --keep-free `room`, as a run checks), an rtsp:// address is one srx publishes
    to (the server is not tried)."""
    from srx.camera.outputs import output_kind
    from srx.fsutil import check_output_dir, check_output_file

    kind = output_kind(target)
    if kind == "video":
        check_output_file(Path(target), "--output")
        if room is not None:  # 5000T passed the dry run, and the service it vouched for failed at each restart
            room.check(Path(target))
    elif kind == "rtsp":  # its ${NAME}s set, its password written as a run takes it
        from srx.camera.sources import expand_env

        expand_env(target, "--output")
    elif kind == "frames":
        check_output_dir(Path(target), "--output")


def _segments(segment: Optional[str], keep: Optional[str], keep_free: Optional[str], outputs: Optional[list[str]],
              live: bool = False, room=None) -> dict:
    """--segment, --keep and --keep-free, checked: the recording_output arguments they make for one
    source's recordings (a SegmentClock of their own, shared by them; `room`: the run's FreeSpace,
    shared by every source's recordings, made here where not given)."""
    from srx.camera.outputs import is_video_file_output
    from srx.camera.segments import SegmentClock

    length, older = _seconds(segment, "--segment"), _seconds(keep, "--keep")
    room = room or _free_space(keep_free)
    for option, value in (("--keep", keep), ("--keep-free", keep_free)):
        if value is not None and length is None:
            raise SrxError(f"{option} {value} deletes old segments of a recording; it needs --segment (e.g. "
                           f"--segment 1h {option} {value})")
    if length is None:
        return {}
    _check_segment_length(length, str(segment))
    if not any(is_video_file_output(o) for o in outputs or []):
        raise SrxError(f"--segment {segment} cuts video-file recordings (--output NAME.mp4, .mkv, .avi); "
                       + ("none was given" if not outputs else "none among --output (rtsp:// and folders of frames are not cut)"))
    if older is not None and not length < older < math.inf:
        bare = " (a number alone is seconds)" if re.fullmatch(r"\s*[0-9.]+\s*", str(keep)) else ""
        raise SrxError(f"--keep {keep}{bare} is not longer than --segment {segment}: a segment is finished a segment's "
                       "length after it began, so it would be deleted as it is finished; expected more than the "
                       "segment's length, e.g. --keep 7d")
    return {"segment": length, "keep": older, "keep_free": room, "clock": SegmentClock(live=live)}


def _free_space(keep_free: Optional[str]):
    """--keep-free as a FreeSpace (None without it)."""
    from srx.camera.segments import FreeSpace

    return None if keep_free is None else FreeSpace(keep_free, *parse_size(keep_free, "--keep-free"))


def _distinct_outputs(outputs: Optional[list[str]]) -> None:
    """Several --output each go somewhere of their own (a recording and a publish, two recordings)."""
    seen = [str(o).rstrip("/") for o in outputs or []]
    twice = sorted({o for o in seen if seen.count(o) > 1})
    if twice:
        raise SrxError(f"--output {twice[0]} given more than once; expected each recording or publish address once")


def _written(pattern: str, named) -> str:
    """What --json-summary wrote: the file, or for a {name} pattern the files it became."""
    if "{name}" not in pattern:
        return pattern
    from srx.camera.multi import output_for

    return ", ".join(output_for(pattern, n.name) for n in named) if named else pattern


def _not_a_source(output: str, specs) -> None:
    """--output must not name a file that is being read: the recording would replace the source."""
    target = Path(output)
    if not target.exists():
        return
    for spec in specs:
        if spec.kind in ("file", "folder") and Path(str(spec.target)).resolve() == target.resolve():
            raise SrxError(f"--output {output} is the source {spec.target} itself; expected another name "
                           "(the recording would replace what it reads)")
