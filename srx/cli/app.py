"""The Typer app shared by every command module, and the conventions they follow."""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Callable

import typer
from typer.core import TyperGroup

from srx._version import __version__
from srx.console import clear_status
from srx.errors import SrxError
from srx.signals import hung_up, note_terminal, second_request, stop_signals, terminating


def _flags_read_as_flags(command, ctx) -> None:  # type: ignore[no-untyped-def]
    """Plain on/off flags take no value, so `--help` must not show them as `--check <bool>`, and an
    option given again for each value is one value, repeatable (`--server <str>…`), not a
    `<list[str]>`. Typer's rich help prints an option's metavar when it has one: an empty one prints
    nothing. An argument of several values reads the same way (`inputs... <path>…`)."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif getattr(param, "multiple", False) and param.metavar is None:  # not `<list[str]>`: one value, repeatable
            param.metavar = f"<{_element_name(param)}>…"
        elif getattr(param, "param_type_name", "") == "argument" and getattr(param, "nargs", 1) == -1:
            # an argument of several values (upscale's inputs): Typer labels its type from the annotation
            # whatever its metavar, `<list[Path]>`
            label = f"<{_element_name(param)}>…"
            param.display_type_rich = lambda ctx, label=label: label


def _element_name(param) -> str:  # type: ignore[no-untyped-def]
    """'str' or 'path': what one value of a repeatable option is (Typer versions keep it in different places)."""
    name = str(getattr(getattr(param, "type", None), "name", "") or "")
    if not name:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        args = getattr(annotation, "__args__", ()) or ()
        name = getattr(args[0], "__name__", "") if args else ""
    name = name.lower()
    return "path" if "path" in name else ("int" if name.startswith("int") else (name if name in ("str", "text") else "str"))


def _reflowed(help_text: str | None) -> str | None:
    """A command's docstring with its paragraphs' hard line breaks taken out: Typer keeps them, so
    a paragraph wrapped at 100 columns in the source comes out ragged in an 80-column terminal."""
    if not help_text:
        return help_text
    paragraphs = help_text.split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else p.replace("\n", " ") for p in paragraphs)


#: srx's own dependencies (module: what to install), whose absence is one error line, not a traceback
_NEEDED = {"torch": "PyTorch (torch)", "numpy": "NumPy", "cv2": "OpenCV (opencv-python)", "onnx": "onnx",
           "onnxruntime": "ONNX Runtime (onnxruntime)", "av": "PyAV (av)", "rich": "rich", "PIL": "Pillow",
           "matplotlib": "matplotlib"}


def _out_of_memory(exc: BaseException) -> str:
    """One line for an allocation that failed outside the stages' own wording: what failed, in the
    library's first line (numpy's says the size), and what helps."""
    from srx.memory import library_words

    return f"out of memory ({library_words(exc)}); free some memory or use a machine with more"


class _SrxGroup(TyperGroup):
    """Turns SrxError into one line on stderr and exit status 1, also under CliRunner."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except SrxError as exc:
            typer.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:  # the commands that stop gracefully (stream, serve, train) catch it themselves
            typer.echo("interrupted (Ctrl-C): what was finished is kept, a half-written file is not", err=True)
            ctx.exit(130)
        except ModuleNotFoundError as exc:  # a dependency srx needs, gone (a broken or partial install)
            if (exc.name or "").split(".")[0] not in _NEEDED:
                raise
            package = _NEEDED[exc.name.split(".")[0]]
            typer.echo(f"error: srx needs {package}, and it is not installed here ({exc}); install srx's "
                       f"dependencies (scripts/setup.sh, or pip install -e .) and see `srx doctor`", err=True)
            ctx.exit(1)
        except OSError as exc:
            from srx.fsutil import WriteError, disk_full_errno

            if exc.filename is not None or not disk_full_errno(exc.errno):
                raise
            # a write without a file name: standard output's (`srx eval --json > results.json` on a full disk
            # was a 48-line traceback; a file srx writes itself is said by its stage)
            typer.echo(f"error: {WriteError(Path('standard output'), exc)}", err=True)
            ctx.exit(1)
        except Exception as exc:  # the last resort for an allocation that failed where no stage words it
            from srx.memory import is_out_of_memory

            if not is_out_of_memory(exc):
                raise
            typer.echo(f"error: {_out_of_memory(exc)}", err=True)
            ctx.exit(1)

    def get_command(self, ctx, cmd_name):  # type: ignore[no-untyped-def]
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_read_as_flags(command, ctx)
            command.help = _reflowed(command.help)
        return command

    def format_help(self, ctx, formatter):  # type: ignore[no-untyped-def]
        _flags_read_as_flags(self, ctx)
        return super().format_help(ctx, formatter)


app = typer.Typer(
    cls=_SrxGroup,
    name="srx",
    help="Image super-resolution from training to the edge: train and score models (SRCNN, the fast "
    "LR-grid net, camera-robust weights), export ONNX/TensorRT, upscale images, videos and camera streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("srx")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the message (CliRunner swaps it per call)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass

    def emit(self, record: logging.LogRecord) -> None:
        clear_status()  # a live status line on the terminal is erased first, not written after
        super().emit(record)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"srx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more detail."),
) -> None:
    logging.basicConfig(  # other libraries say their warnings only (torch's exit-time cache stats are INFO)
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(message)s" if verbose else "%(message)s",
        handlers=[_StderrHandler()],
    )
    logging.getLogger("srx").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        from srx.imageio import quiet_opencv_logs

        quiet_opencv_logs()


#: what every duration option takes (--time-budget, --duration, --open-timeout, ...), said in its help
DURATION_FORMS = "seconds (90, 2.5) or with units d, h, m, s, combinable (30s, 5m, 1.5h, 1h30m, 7d)"


def parse_duration(text: str | None, option: str = "--time-budget") -> float | None:
    """'90', '90s', '20m', '1.5h', '1h30m', '2m30s', '7d' -> seconds: the one grammar of every duration
    option (`option` names it in the error)."""
    if text is None:
        return None
    plain = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*", text)
    if plain:
        return float(plain.group(1))
    parts = re.fullmatch(r"\s*(?:([0-9]*\.?[0-9]+)\s*d)?\s*(?:([0-9]*\.?[0-9]+)\s*h)?\s*(?:([0-9]*\.?[0-9]+)\s*m)?"
                         r"\s*(?:([0-9]*\.?[0-9]+)\s*s)?\s*", text)
    if not parts or not any(parts.groups()):
        raise SrxError(f"{option} {text!r}: expected a duration like 90, 30s, 20m, 1.5h, 1h30m or 7d (seconds, or "
                       "units d, h, m, s in that order)")
    return sum(float(v) * k for v, k in zip(parts.groups(), (86400, 3600, 60, 1)) if v)


#: what --keep-free takes, said in its help and its error
SIZE_FORMS = "a size with K, M, G or T, capitals (powers of 1024, as df -h shows them: 500M, 2G, 1.5T), or a share of the disk (10%)"


def parse_size(text: str, option: str) -> tuple[int, float]:
    """'500M', '2G', '2GiB', '1.5T', '10%' -> (bytes, 0.0) or (0, share of the disk): `option` names it
    in the error. Units in capitals only: `5m` is five minutes to every duration option."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:([KMGT])(?:i?B)?|(%))\s*", text)  # capitals: 5m is 5 minutes elsewhere
    if not m:
        raise SrxError(f"{option} {text!r}: expected {SIZE_FORMS}")
    value = float(m.group(1))
    if m.group(3):
        if not 0 < value < 100:
            raise SrxError(f"{option} {text!r}: expected a share of the disk above 0% and under 100%")
        return 0, value / 100
    size = int(value * 1024 ** ("KMGT".index(m.group(2).upper()) + 1))
    if size <= 0:
        raise SrxError(f"{option} {text!r}: expected a size above 0, e.g. 2G")
    return size, 0.0


def check_thread_count(value: int) -> int:
    """--threads' rule: at least 1 (an SrxError otherwise)."""
    if value < 1:
        raise SrxError(f"--threads must be at least 1, got {value}")
    return value


def _check_threads(value: int | None) -> int | None:
    if value is not None:
        check_thread_count(value)
        from srx.doctor import usable_cpus
        from srx.words import counted

        usable = usable_cpus()
        if value > usable:  # taken (a user may mean it), but more threads than cores only share them
            log.warning("--threads %d is more than the %s this process may run on (its affinity mask): the threads "
                        "share %s and run no faster; at most --threads %d, or leave it out",
                        value, counted(usable, "core"), "it" if usable == 1 else "them", usable)
    return value


def threads_option(help: str):  # noqa: A002 - Typer's own name for it
    """--threads N (None: the command's default), checked before anything runs."""
    return typer.Option(None, "--threads", help=help, callback=_check_threads)


def model_scale_option(what: str = "the checkpoint's or model file's"):
    """--scale for commands that take a model: None until resolved by `scale_of_models`. Declared as
    `Optional[list[int]]` so that a repeat is seen, and taken with `one_value` (Typer would keep the
    last of several silently)."""
    return typer.Option(None, "--scale", "-s", help=f"Upscaling factor: 2, 3 or 4 (default: {what} own, else 3).",
                        show_default=False, metavar="<int>")


def scale_of_models(scale: int | None, weights: list | tuple = (), model: Path | None = None,
                    default: int | None = 3) -> int | None:
    """--scale as given; else the scale of the checkpoints among --weights (shipped names have every
    scale) and of a --model file, which must agree; else `default` (3; None where a served model
    will say its own)."""
    from srx.checkpoint import checkpoint_scale, shipped_name
    from srx.protocol import check_scale

    if scale is not None:
        check_scale(scale)
        return scale
    found: dict[int, str] = {}
    for given in [*weights, model]:
        if given is None or shipped_name(given) is not None or not Path(given).is_file():
            continue
        path = Path(given)
        if path.suffix.lower() == ".onnx":
            from srx.export.onnx import check_srx_onnx

            try:
                s = check_srx_onnx(path).get("scale")
            except SrxError:
                s = None  # the stage that opens it says why
        else:
            s = checkpoint_scale(path)
        if s:
            found.setdefault(int(s), str(given))
    if len(found) > 1:
        raise SrxError("the models given are of different scales (" + ", ".join(f"{n}: x{s}" for s, n in found.items())
                       + "); expected models of one scale in one command")
    return next(iter(found), default)


_terminated_at: list[float] = []  # when _terminated first ended the command (time.monotonic())


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a service manager, `docker stop`, `kill`) ends srx as Ctrl-C does, through the
    cleanup on the way out: a half-written output is removed, never left under a hidden name. The
    commands that stop gracefully (stream, serve, train) put their own handler in its place. SIGHUP
    (the terminal closed) likewise, its output then going nowhere (`srx.signals.hung_up`). The same
    stop delivered again (a login shell's job gets a hangup twice; `srx.signals.second_request`) is
    ignored, so it cannot cut that cleanup short."""
    import time

    hung_up(signum)
    if _terminated_at and not second_request(signum, _terminated_at[0]):
        return
    _terminated_at[:1] = [time.monotonic()]
    raise SystemExit(128 + signum)


def _exit_now(status: int | None) -> Callable[[int, object], None]:
    """The handler for a signal once the command is over (its outputs finalised, its status known),
    while the interpreter tears down (torch's exit-time cleanup can take a while): exit at once,
    without a traceback from teardown, with the command's own status (None: killed by the signal
    before the command had one)."""

    def handler(signum: int, frame: object) -> None:
        import os
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(128 + signum if status is None else status)

    return handler


def main() -> None:
    """Console entry point."""
    import signal

    import srx.cli  # noqa: F401  (registers every command)

    import atexit

    note_terminal()
    for sig in terminating():  # SIGTERM, and SIGHUP unless started under nohup
        signal.signal(sig, _terminated)
    # registered before any command's own (torch's), so it runs after them: the interpreter's last
    # step puts the default action back on every handled signal, and one landing then killed a
    # finished command (status -15); ignored that late, it ends as it was
    atexit.register(lambda: [signal.signal(s, signal.SIG_IGN) for s in stop_signals()])
    status: int | None = None
    try:
        app()
    except SystemExit as done:  # how Typer ends every command
        code = done.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        raise
    finally:
        for sig in stop_signals():
            signal.signal(sig, _exit_now(status))
        if status is not None and _reader_left():
            _exit_now(status)(0, None)


def _reader_left() -> bool:
    """A thread that reads a source is still alive once the command is over (its outputs finalised):
    it may be inside OpenCV's C++ (an open that does not heed the stop, up to --open-timeout). The
    interpreter's exit would tear it down there, and a C++ frame unwound so aborts the process
    ("terminate called without an active exception", SIGABRT after a clean summary): the process
    ends at once instead, with the command's status."""
    import sys
    import threading

    capture = sys.modules.get("srx.camera.capture")  # not imported: the command read no source
    return capture is not None and any(t.is_alive() and t.name.startswith(capture.READER_THREADS)
                                       for t in threading.enumerate())


def one_server(servers: list[str] | None, command: str) -> str | None:
    """The one --server of a command that checks a single Triton server (parity, bench): Typer would
    keep the last of several silently."""
    servers = list(servers or [])
    if len(servers) > 1:
        raise SrxError(f"srx {command} checks one Triton server at a time; got {len(servers)} --server "
                       f"({', '.join(servers)}): run it once for each")
    return servers[0] if servers else None


def one_value(values: list | None, option: str, command: str, more: str = ""):
    """The one value of a single-valued option that is declared as a list so that a repeat is seen
    (-w and -s of the commands that run one model, -o/--out, -m/--model): Typer would keep the last of
    several silently.
    `more`: where several are taken instead. The same value given twice is that one value.
    """
    values = list(dict.fromkeys(values or []))
    if len(values) > 1:
        raise SrxError(f"srx {command} takes one {option}; got {len(values)} ({', '.join(map(str, values))}): run it "
                       f"once for each{more}")
    return values[0] if values else None


def weights_option():
    """-w of the commands that run one model: declared as a list, taken with `one_value`."""
    return typer.Option(None, "--weights", "-w", help="A shipped model by name (srcnn, fast, camera; `srx models` lists them) or an srx checkpoint; default: camera for --scale.",
                        metavar="<path>")
