import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srx import __version__
from srx.cli import app
from tests.conftest import assert_one_error_line

runner = CliRunner()


def test_version_and_help_on_every_command():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert {"train", "eval"} <= set(names)
    for name in names:
        res = runner.invoke(app, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert "Usage" in res.output
        assert "<bool>" not in res.output, name  # plain flags read as flags, not `--check <bool>`
        assert "<list[" not in res.output, name  # a repeatable option: `--server <str>…`; upscale's inputs `<path>…`
        assert "[default: (" not in res.output, name  # a default reads as a value, not as a tuple `(camera)`
    root = runner.invoke(app, ["--help"])
    assert "--verbose" in root.output and "<bool>" not in root.output
    export = runner.invoke(app, ["export", "--help"])
    assert "<int>" in export.output  # options that take a value still show its type
    stream = runner.invoke(app, ["stream", "--help"], env={"COLUMNS": "200"})
    assert re.search(r"--server +<str>… ", stream.output), stream.output
    upscale = runner.invoke(app, ["upscale", "--help"], env={"COLUMNS": "200"})
    assert re.search(r"inputs\.\.\. +<path>… ", upscale.output), upscale.output
    train = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    out_help = next(ln for ln in train.output.splitlines() if "--out" in ln)
    from srx.cli.train import _OUTPUTS

    assert all(name in out_help for name in _OUTPUTS), out_help  # what the run's closing line names


def test_help_paragraphs_fill_an_80_column_terminal():
    # the docstrings wrap at 100 columns in the source; Typer keeps single line breaks, so a
    # paragraph would come out as long lines alternating with stubs like " to a window,"
    res = runner.invoke(app, ["stream", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert res.exit_code == 0, res.output
    paragraphs, lines = [], []
    for line in res.output.split("Options")[0].splitlines() + [""]:
        if line.strip():
            lines.append(line.strip())
        elif lines:
            paragraphs, lines = paragraphs + [lines], []
    paragraphs = [p for p in paragraphs if not p[0].startswith(("Usage", "╭"))]
    assert len(paragraphs) == 3, res.output
    for lines in paragraphs:
        assert all(len(ln) >= 60 for ln in lines[:-1]), lines


def test_eval_json_has_the_documented_shape(image_folder, tiny_checkpoint):
    res = runner.invoke(app, ["eval", "--data", str(image_folder), "--scale", "3", "--weights",
                              str(tiny_checkpoint(3)), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["scale"] == 3 and len(data["images"]) == 4 and data["degrade"] == "none" and data["skipped"] == []
    assert set(data["mean"]) >= {"bicubic_psnr", "model_psnr", "bicubic_ssim", "model_ssim"}
    for key in ("bicubic_psnr", "model_psnr", "bicubic_ssim", "model_ssim"):  # the mean of the images' own
        assert data["mean"][key] == pytest.approx(sum(i[key] for i in data["images"]) / 4)
    # each image's bicubic score is the standard protocol's, computed here from the picture itself
    import cv2

    from srx.protocol import bicubic_upscale_y, make_pair, psnr

    first = data["images"][0]
    hr_y, lr_y = make_pair(cv2.imread(str(next(image_folder.glob(first["name"] + ".*")))), 3)
    assert first["bicubic_psnr"] == pytest.approx(psnr(hr_y, bicubic_upscale_y(lr_y, 3), 3), abs=1e-6)
    table = runner.invoke(app, ["eval", "--data", str(image_folder), "--scale", "3", "--weights",
                                str(tiny_checkpoint(3))])
    mean_row = next(ln for ln in table.output.splitlines() if "mean" in ln)
    assert table.exit_code == 0 and f"{data['mean']['model_psnr']:.2f}" in mean_row


def test_eval_with_several_degradations_and_models_is_one_table_of_the_single_runs(image_folder, tiny_checkpoint):
    """Rows per --degrade, columns per --weights: each cell is what `srx eval` alone says of that
    model under that degradation."""
    ckpt = str(tiny_checkpoint(3))
    args = ["eval", "--data", str(image_folder), "-w", "fast", "-w", f"mine={ckpt}", "--degrade", "none",
            "--degrade", "jpeg=40,noise=2"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    table = json.loads(res.stdout)
    assert table["count"] == 4 and list(table["weights"]) == ["fast", "mine"]
    assert [r["degrade"] for r in table["rows"]] == ["none", "jpeg=40,noise=2"]
    for row in table["rows"]:
        for label, given in (("fast", "fast"), ("mine", ckpt)):
            one = json.loads(runner.invoke(app, ["eval", "--data", str(image_folder), "-w", given, "--degrade",
                                                 row["degrade"], "--json"]).stdout)["mean"]
            assert row["model_psnr"][label] == pytest.approx(one["model_psnr"], abs=1e-9)
            assert row["bicubic_psnr"] == pytest.approx(one["bicubic_psnr"], abs=1e-9)
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0 and "jpeg=40,noise=2" in shown.output and "mine" in shown.output
    only_degrades = json.loads(runner.invoke(app, ["eval", "--data", str(image_folder), "--degrade", "none",
                                                   "--degrade", "jpeg50", "--json"]).stdout)
    assert list(only_degrades["weights"]) == ["camera"] and len(only_degrades["rows"]) == 2  # the default model


def test_eval_takes_one_image_and_scores_it_as_in_a_folder(image_folder, tiny_checkpoint):
    """A single grabbed frame is a data set of one: the same numbers as that image among others."""
    ckpt = str(tiny_checkpoint(3))
    folder = json.loads(runner.invoke(app, ["eval", "--data", str(image_folder), "-w", ckpt, "--json"]).stdout)
    first = folder["images"][0]
    one = sorted(image_folder.iterdir())[0]
    assert one.stem == first["name"]
    res = runner.invoke(app, ["eval", "--data", str(one), "-w", ckpt, "--degrade", "none", "--json"])
    assert res.exit_code == 0, res.output
    single = json.loads(res.stdout)
    assert single["count"] == 1 and single["images"][0]["name"] == one.stem
    for key in ("bicubic_psnr", "model_psnr", "model_ssim"):
        assert single["mean"][key] == pytest.approx(first[key], abs=1e-9)


def test_commands_that_take_a_checkpoint_take_its_scale(tmp_path, image_folder, tiny_checkpoint):
    """A x2 checkpoint needs no --scale 2 beside it (eval, compare, export); checkpoints of two scales
    in one command are refused in one line, and an explicit --scale still wins (and is checked)."""
    x2 = str(tiny_checkpoint(2, "mine-x2.pt"))
    res = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", x2, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["scale"] == 2
    table = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", f"mine={x2}", "-w", "fast", "--json"])
    assert table.exit_code == 0 and json.loads(table.stdout)["scale"] == 2, table.output
    pic = tmp_path / "c.png"
    res = runner.invoke(app, ["compare", str(image_folder / "img0.png"), "-w", x2, "--out", str(pic), "--crop", "32"])
    assert res.exit_code == 0 and pic.exists(), res.output
    res = runner.invoke(app, ["export", "-w", x2, "--out", str(tmp_path / "exp"), "--no-fp16", "--no-engine"])
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "exp").glob("*-x2.onnx")), res.output
    one = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", f"mine={x2}"])  # a label on one model
    assert one.exit_code == 0 and "mine (" in one.output, one.output
    onnx = next((tmp_path / "exp").glob("*-x2.onnx"))
    res = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", str(onnx)])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "is an exported model, not a checkpoint; expected the srx checkpoint (.pt)")
    from srx.checkpoint import load_checkpoint

    common = ["--data", str(image_folder), "--patch-size", "24", "--stride", "12", "--max-steps", "1", "--no-progress",
              "--threads", "1"]
    res = runner.invoke(app, ["train", *common, "--scale", "2", "--out", str(tmp_path / "x2run")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", *common, "--init", str(tmp_path / "x2run" / "last.pt"), "--out",
                              str(tmp_path / "from-x2")])  # a new run from x2 weights trains x2 unless told otherwise
    assert res.exit_code == 0, res.output
    assert load_checkpoint(tmp_path / "from-x2" / "last.pt")["train_config"]["scale"] == 2
    mixed = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", x2, "-w", str(tiny_checkpoint(3))])
    assert mixed.exit_code == 1
    assert_one_error_line(mixed.output, "models given are of different scales (")
    assert "mine-x2.pt: x2, " in mixed.output and "tiny.pt: x3); expected models of one scale in one command" in mixed.output
    asked = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", x2, "--scale", "3"])
    assert asked.exit_code == 1
    assert_one_error_line(asked.output, "holds a x2 model but x3 was asked for; pass --scale 2")


@pytest.mark.parametrize("args,match", [
    (["train", "--data", "/nonexistent/folder", "--epochs", "1"], "does not exist"),
    (["train", "--data", "{empty}", "--epochs", "1"], "holds no images"),
    (["train", "--data", "{images}", "--epochs", "1", "--scale", "5"], "unsupported scale"),
    (["train", "--epochs", "1"], "--data is required"),
    (["train", "--data", "{images}"], "say how long to train: --epochs N, --time-budget (e.g. 20m) and/or --max-steps N"),
    (["train", "--data", "{images}", "--time-budget", "soon"], "expected a duration"),
    (["train", "--data", "{images}", "--epochs", "1", "--out", "{file}/sub"], "is a file, expected a folder"),
    (["eval", "--data", "{images}", "--weights", "{file}"], "not a readable srx checkpoint"),
    (["eval", "--data", "{images}", "--scale", "7"], "unsupported scale"),
    (["eval", "--data", "{images}", "--every", "5"], "--every 5 applies to a video"),
])
def test_bad_input_gets_one_clear_line_and_exit_1(tmp_path, image_folder, args, match):
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    subs = {"{empty}": str(tmp_path / "empty"), "{images}": str(image_folder), "{file}": str(tmp_path / "afile")}
    args = [a.replace(k, v) if k in a else a for a in args for k, v in [next(((k, v) for k, v in subs.items() if k in a), ("", ""))]]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, match)


def test_train_names_its_folder_and_an_interrupted_run_exits_130(tmp_path, image_folder, monkeypatch):
    """Without --out the run goes to the next free runs/train-N and the last line says which; a run
    stopped by Ctrl-C (here: the loop's own stop after 2 steps, as an interrupt stops it) ends with
    the resume hint and status 130, so `srx train ... && deploy` does not go on."""
    import functools

    import srx.train.loop

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", str(image_folder), "--scale", "2", "--patch-size", "24", "--stride", "12",
            "--batch-size", "4", "--max-steps", "2", "--no-progress", "--threads", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.strip().splitlines()[-1] == (f"outputs in {Path('runs/train')}: best.pt, last.pt, metrics.csv, "
                                                     "training.png, summary.txt")
    monkeypatch.setattr(srx.train.loop, "train", functools.partial(srx.train.loop.train, stop_after=2))
    stopped = runner.invoke(app, [*args[:-5], "--max-steps", "9", "--no-progress", "--threads", "1"])
    assert stopped.exit_code == 130, stopped.output
    out = Path("runs/train-2")
    assert "2 steps, 0." in stopped.output and ", interrupted; val PSNR" in stopped.output
    assert stopped.output.strip().splitlines()[-1] == f"interrupted; continue with: srx train --resume {out / 'last.pt'} --out {out}"


def test_train_takes_one_degradation(tmp_path, image_folder):
    res = runner.invoke(app, ["train", "--data", str(image_folder), "--degrade", "camera", "--degrade", "jpeg50",
                              "--max-steps", "1", "--out", str(tmp_path / "run")])
    assert_one_error_line(res.output, "--degrade given 2 times (camera, jpeg50); training takes one spec. Several "
                                      "codecs in one spec are mixed")
    assert not (tmp_path / "run").exists()


def test_train_then_resume_needs_only_the_checkpoint(tmp_path, image_folder, monkeypatch, caplog):
    """The interrupt hint says `srx train --resume last.pt`: that alone must work (recipe, data and
    output folder come from the checkpoint), and may extend the stopping rule."""
    from srx.checkpoint import load_checkpoint

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", "--data", str(image_folder), "--scale", "2", "--patch-size", "24",
                                "--stride", "12", "--batch-size", "4", "--max-steps", "3", "--out", str(out),
                                "--no-progress", "--threads", "1"])
    assert first.exit_code == 0, first.output
    assert load_checkpoint(out / "last.pt")["step"] == 3
    again = runner.invoke(app, ["train", "--resume", str(out / "last.pt"), "--max-steps", "5", "--no-progress",
                                "--scale", "4", "--lr", "5"])  # the run's recipe stands, and that is said
    assert again.exit_code == 0, again.output
    assert "--resume continues the run with its own recipe; --scale, --lr ignored" in caplog.text
    assert f"resuming at step 3 (epoch 0) from {out / 'last.pt'}" in caplog.text
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 5 and state["train_config"]["scale"] == 2
    assert state["train_config"]["data"] == [str(image_folder)]

    # the data moved: --data beside --resume is its new place (taken, and said), and only then
    moved = tmp_path / "moved"
    image_folder.rename(moved)
    caplog.clear()
    lost = runner.invoke(app, ["train", "--resume", str(out / "last.pt"), "--max-steps", "6", "--no-progress"])
    assert lost.exit_code == 1, lost.output
    assert_one_error_line(lost.output, f"the run's training data ({image_folder}) is not there any more; if it has "
                          "moved, give its new place with --data beside --resume")
    two = runner.invoke(app, ["train", "--resume", str(out / "last.pt"), "--max-steps", "6", "--no-progress",
                              "--data", str(moved), "--data", str(moved)])
    assert two.exit_code == 1 and "one path for each of the 1 it had, got 2" in two.output, two.output
    on = runner.invoke(app, ["train", "--resume", str(out / "last.pt"), "--max-steps", "6", "--no-progress",
                             "--data", str(moved)])
    assert on.exit_code == 0, on.output
    assert f"the run's training data {image_folder} is not there; reading it from {moved}" in caplog.text
    assert "ignored" not in caplog.text
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 6 and state["train_config"]["data"] == [str(moved)]


def test_a_signal_while_the_interpreter_tears_down_ends_srx_without_a_traceback():
    """A second Ctrl-C or SIGTERM that lands after the command is over, during the interpreter's exit
    cleanup (torch's, registered while the command ran, takes a moment), ends the process at once,
    with the command's own status: no SystemExit traceback from teardown, no 143 for a run that
    finished (a stream's second SIGTERM)."""
    import subprocess
    import sys

    code = ("import atexit, os, signal, sys, time\n"
            "import importlib\n"
            "cli = importlib.import_module('srx.cli.app')\n"
            "command = cli.app\n"
            "def with_cleanup(*args, **kwargs):  # as importing torch inside a command registers its own\n"
            "    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(2), print('not reached')))\n"
            "    return command(*args, **kwargs)\n"
            "cli.app = with_cleanup\n"
            "sys.argv = ['srx', '--version']\n"
            "cli.main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert __version__ in proc.stdout and "not reached" not in proc.stdout  # printed output is kept
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("20m", 1200), ("1.5h", 5400), ("1h30m", 5400),
                                          ("2m30s", 150), ("1h 5s", 3605)])
def test_durations_may_combine_units(text, seconds):
    from srx.cli.app import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "soon", "30s2m", "-1", "1h30"])
def test_bad_durations_say_what_is_expected(text):
    from srx.cli.app import parse_duration
    from srx.errors import SrxError

    with pytest.raises(SrxError, match=re.escape(f"--time-budget {text!r}: expected a duration like 90, 30s, 20m, 1.5h, "
                                                 "1h30m or 7d (seconds, or units d, h, m, s in that order)")):
        parse_duration(text)


def test_a_missing_dependency_is_one_error_line():
    """A broken or partial install (torch gone): one `error:` line naming what to install, exit 1, no traceback."""
    import subprocess
    import sys

    code = "import sys; sys.modules['torch'] = None; sys.argv = ['srx', 'models']; from srx.cli.app import main; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: srx needs PyTorch (torch), and it is not installed here")
    assert "Traceback" not in proc.stderr and "srx doctor" in proc.stderr


def test_more_threads_than_the_usable_cores_are_taken_with_a_warning(photo, tiny_checkpoint, tmp_path, caplog):
    """--threads larger than the cores the affinity mask leaves this process (`taskset -c 1`, a
    container's cpuset) runs, with one line saying the threads only share the cores; it was taken
    silently (4 ORT threads on one core, each model call slower). As many as there are: no line."""
    import os

    import cv2

    usable = len(os.sched_getaffinity(0))
    cv2.imwrite(str(tmp_path / "in.png"), photo)
    args = ["upscale", str(tmp_path / "in.png"), "--weights", str(tiny_checkpoint(3)), "--backend", "torch"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "many.png"), "--threads", str(usable + 2)])
    assert res.exit_code == 0, res.output
    cores = f"{usable} core{'s' if usable > 1 else ''}"
    warned = [r.getMessage() for r in caplog.records if "--threads" in r.getMessage()]
    assert warned == [f"--threads {usable + 2} is more than the {cores} this process may run on (its affinity mask): "
                      f"the threads share {'it' if usable == 1 else 'them'} and run no faster; at most --threads "
                      f"{usable}, or leave it out"], caplog.text
    assert [r.levelname for r in caplog.records if "--threads" in r.getMessage()] == ["WARNING"]
    caplog.clear()
    fits = runner.invoke(app, [*args, "--out", str(tmp_path / "fits.png"), "--threads", str(usable)])
    assert fits.exit_code == 0 and "--threads" not in caplog.text, caplog.text


def _option(command: str, name: str):
    """The click parameter of `srx COMMAND NAME`."""
    import typer.main

    group = typer.main.get_command(app)
    return next(p for p in group.commands[command].params if name in p.opts)


#: every option that takes a length of time
DURATION_OPTIONS = [("train", "--time-budget"), ("tune", "--time-budget"), ("stream", "--duration"),
                    ("stream", "--segment"), ("stream", "--keep"), ("stream", "--open-timeout"),
                    ("stream", "--reconnect-max-wait")]


def test_every_duration_option_takes_the_same_forms_and_says_them():
    """One grammar (srx.cli.app.parse_duration) for every length of time a command takes: stream's
    --open-timeout and --reconnect-max-wait took bare floats only (`30s` was Click's "Input should be a
    valid number", exit 2) while --duration beside them took 30s, 5m, 1h30m."""
    import typer.main

    from srx.cli.app import DURATION_FORMS

    group = typer.main.get_command(app)
    said = sorted((name, p.opts[0]) for name, command in group.commands.items() for p in command.params
                  if DURATION_FORMS in (p.help or ""))
    assert said == sorted(DURATION_OPTIONS)


def test_stream_timeouts_take_durations(monkeypatch):
    """--open-timeout 1m and --reconnect-max-wait 1h30m reach the stream as seconds; a bare number still works."""
    import srx.camera.stream
    import srx.runtime.upscaler
    from srx.errors import SrxError

    class Up:
        scale = 3

    def stream(spec, upscaler, outputs, **kwargs):
        raise SrxError(f"reached with open_timeout={kwargs['open_timeout']!r} "
                       f"reconnect_max_wait={kwargs['reconnect_max_wait']!r}")

    monkeypatch.setattr(srx.runtime.upscaler, "create_upscaler", lambda *a, **k: Up())
    monkeypatch.setattr(srx.camera.stream, "stream", stream)
    for given, said in ((["--open-timeout", "1m", "--reconnect-max-wait", "1h30m"], "open_timeout=60.0 reconnect_max_wait=5400.0"),
                        (["--open-timeout", "2.5", "--reconnect-max-wait", "45"], "open_timeout=2.5 reconnect_max_wait=45.0"),
                        ([], "open_timeout=10.0 reconnect_max_wait=30.0")):
        res = runner.invoke(app, ["stream", "--demo", "--no-window", "-q", *given])
        assert res.exit_code == 1, res.output
        assert_one_error_line(res.output, f"reached with {said}")
    bad = runner.invoke(app, ["stream", "--demo", "--no-window", "--open-timeout", "30sec"])
    assert bad.exit_code == 1
    assert_one_error_line(bad.output, "--open-timeout '30sec': expected a duration like 90, 30s, 20m, 1.5h, 1h30m or 7d")


@pytest.mark.parametrize("args,option,values", [
    (["export", "-w", "fast", "-w", "srcnn", "-s", "2", "--no-engine", "-o", "{tmp}/e"], "--weights", "fast, srcnn"),
    (["export", "-w", "fast", "-s", "2", "-s", "3", "--no-engine", "-o", "{tmp}/e"], "--scale", "2, 3"),
    (["upscale", "{image}", "-w", "fast", "--weights", "srcnn", "-o", "{tmp}/e.png"], "--weights", "fast, srcnn"),
    (["upscale", "{image}", "-s", "2", "--scale", "4", "-o", "{tmp}/e.png"], "--scale", "2, 4"),
    (["parity", "-w", "fast", "-w", "srcnn", "-s", "2", "--synthetic"], "--weights", "fast, srcnn"),
    (["parity", "-w", "fast", "-s", "2", "-s", "4", "--synthetic"], "--scale", "2, 4"),
    (["stream", "--demo", "--no-window", "-w", "fast", "-w", "srcnn"], "--weights", "fast, srcnn"),
    (["stream", "--demo", "--no-window", "-s", "2", "-s", "3"], "--scale", "2, 3"),
    (["eval", "--data", "{images}", "-s", "2", "-s", "3"], "--scale", "2, 3"),
    (["compare", "{image}", "-s", "2", "-s", "3", "-o", "{tmp}/e.png"], "--scale", "2, 3"),
    (["train", "--data", "{images}", "--max-steps", "1", "-s", "2", "-s", "3", "-o", "{tmp}/e"], "--scale", "2, 3"),
    (["tune", "{tmp}/v.avi", "--max-steps", "1", "-s", "2", "-s", "3", "-o", "{tmp}/e"], "--scale", "2, 3"),
    (["export", "-w", "fast", "--no-engine", "-o", "{tmp}/e", "--out", "{tmp}/f"], "--out", "{tmp}/e, {tmp}/f"),
    (["upscale", "{image}", "-w", "fast", "-o", "{tmp}/e.png", "-o", "{tmp}/f.png"], "--out", "{tmp}/e.png, {tmp}/f.png"),
    (["upscale", "{image}", "-m", "{tmp}/a.onnx", "-m", "{tmp}/b.onnx", "-o", "{tmp}/e.png"], "--model",
     "{tmp}/a.onnx, {tmp}/b.onnx"),
    (["compare", "{image}", "-o", "{tmp}/e.png", "-o", "{tmp}/f.png"], "--out", "{tmp}/e.png, {tmp}/f.png"),
    (["train", "--data", "{images}", "--max-steps", "1", "-o", "{tmp}/e", "-o", "{tmp}/f"], "--out", "{tmp}/e, {tmp}/f"),
    (["tune", "{tmp}/v.avi", "--max-steps", "1", "-o", "{tmp}/e", "-o", "{tmp}/f"], "--out", "{tmp}/e, {tmp}/f"),
    (["stream", "--demo", "--no-window", "-m", "{tmp}/a.onnx", "-m", "{tmp}/b.onnx"], "--model", "{tmp}/a.onnx, {tmp}/b.onnx"),
    (["serve", "-m", "{tmp}/a.onnx", "-m", "{tmp}/b.onnx"], "--model", "{tmp}/a.onnx, {tmp}/b.onnx"),
    (["parity", "--server", "127.0.0.1:1", "-m", "a", "-m", "b"], "--model", "a, b"),
])
def test_a_single_valued_option_given_twice_is_refused(tmp_path, image_folder, args, option, values):
    """A second -w, -s, -o or -m replaced the first without a word (`srx export -w fast -w srcnn`
    exported srcnn alone; `srx upscale -s 2 -s 4` ran x4; `-o a -o b` wrote b alone), though -w is
    repeatable in eval, bench, compare and serve: refused in one line, as a second --server, --degrade
    or --data is, before any work."""
    subs = {"{tmp}": str(tmp_path), "{images}": str(image_folder), "{image}": str(image_folder / "img0.png")}
    for key, value in subs.items():
        args = [a.replace(key, value) for a in args]
        values = values.replace(key, value)
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, f"srx {args[0]} takes one {option}; got 2 ({values}): run it once for each")
    assert not any((tmp_path / n).exists() for n in ("e", "e.png", "f", "f.png"))


def test_repeatable_weights_stay_repeatable(image_folder, tiny_checkpoint):
    """eval, bench, compare and serve take several -w by design; serve several -s."""
    for command in ("eval", "bench", "compare", "serve"):
        assert _option(command, "--weights").multiple, command
    assert _option("serve", "--scale").multiple
    res = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", "fast", "-w", "srcnn", "-s", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["weights"]) == {"fast", "srcnn"}


def test_tune_checks_time_budget_beside_max_steps(tmp_path, monkeypatch):
    """--max-steps dropped an explicit --time-budget unread (`--time-budget bogus` trained); now it is
    always checked, and both given stop at whichever comes first, as in srx train. --max-steps alone
    has no time limit, neither alone the default 20 minutes."""
    import srx.train.tune
    from srx.errors import SrxError

    def tune_on_footage(video, scale, out, **kwargs):
        raise SrxError(f"reached with time_budget={kwargs['time_budget']!r} max_steps={kwargs['max_steps']!r}")

    monkeypatch.setattr(srx.train.tune, "tune_on_footage", tune_on_footage)
    common = ["tune", str(tmp_path / "v.avi"), "--out", str(tmp_path / "t")]
    bogus = runner.invoke(app, [*common, "--max-steps", "2", "--time-budget", "bogus"])
    assert bogus.exit_code == 1
    assert_one_error_line(bogus.output, "--time-budget 'bogus': expected a duration")
    for given, said in ((["--max-steps", "2"], "time_budget=None max_steps=2"),
                        ([], "time_budget=1200 max_steps=None"),
                        (["--time-budget", "1h"], "time_budget=3600.0 max_steps=None"),
                        (["--max-steps", "2", "--time-budget", "90s"], "time_budget=90.0 max_steps=2")):
        res = runner.invoke(app, [*common, *given])
        assert res.exit_code == 1, res.output
        assert_one_error_line(res.output, f"reached with {said}")


def test_train_every_applies_to_videos(tmp_path, image_folder, monkeypatch):
    """--every picks video frames: with images only it was taken and ignored (`srx eval --every` and
    train's --frames / --val-frames are refused there); with a video among --data or --val it is taken."""
    import srx.train.loop
    from srx.errors import SrxError
    from tests.conftest import silent_video

    images = ["--data", str(image_folder), "--max-steps", "1", "--out", str(tmp_path / "run")]
    for extra in ([], ["--val", str(image_folder)]):
        res = runner.invoke(app, ["train", *images, *extra, "--every", "3"])
        assert res.exit_code == 1, res.output
        assert_one_error_line(res.output, "--every 3 applies to videos, and no --data or --val is one")
        assert not (tmp_path / "run").exists()

    def train(cfg, out, **kwargs):
        raise SrxError(f"reached with every={cfg.every}")

    monkeypatch.setattr(srx.train.loop, "train", train)
    video = str(silent_video(tmp_path / "v.avi", 3, (24, 20)))
    for extra, every in ((["--every", "3", "--val", video], 3), (["--data", video, "--every", "2"], 2), ([], 10)):
        res = runner.invoke(app, ["train", *images, *extra])
        assert_one_error_line(res.output, f"reached with every={every}")


def test_train_takes_the_architecture_name_srx_prints_for_a_preset(tmp_path, image_folder, monkeypatch):
    """`srx models`, export file names and the training summary say srcnn-9-1-5; --model took only srcnn-915."""
    from srx.checkpoint import load_checkpoint
    from srx.models import ModelConfig, config_from_preset
    from srx.presets import PRESET_ALIASES, PRESETS

    for alias, name in PRESET_ALIASES.items():  # each the printed name of its preset, at every scale
        assert config_from_preset(name, 2).name == f"{alias}-x2"
    for name in PRESETS:  # and each preset's printed name is taken: a preset, or an alias of this one
        printed = config_from_preset(name, 3).name.removesuffix("-x3")
        assert printed in PRESETS or PRESET_ALIASES.get(printed) == name, (name, printed)
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))
    res = runner.invoke(app, ["train", "--data", str(image_folder), "--model", "srcnn-9-1-5", "--scale", "2",
                              "--patch-size", "24", "--stride", "12", "--batch-size", "4", "--max-steps", "1",
                              "--out", str(tmp_path / "run"), "--no-progress", "--threads", "1"])
    assert res.exit_code == 0, res.output
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["train_config"]["model"] == "srcnn-915"
    assert ModelConfig.from_dict(dict(state["model_config"])).name == "srcnn-9-1-5-x2"


def test_stream_without_a_source_says_what_it_takes():
    res = runner.invoke(app, ["stream", "--no-window"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "no source given; expected --camera N, --source FILE|URL|PIPELINE or --demo "
                                      "(repeat --camera and --source for several sources)")


@pytest.mark.parametrize("columns", [80, 60])
def test_models_shows_every_name_and_number_whole_in_a_narrow_terminal(columns):
    """At 80 columns the name column (what --weights takes) came out blank and `100 / 105` as `100 / 1`:
    every column was no-wrap, so Rich cut them all. Each name and number must appear whole, within the width."""
    from srx.catalog import EVALUATIONS

    rows = json.loads(runner.invoke(app, ["models", "--json"]).stdout)["models"]
    res = runner.invoke(app, ["models"], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    assert max(len(ln) for ln in res.output.splitlines()) <= columns, res.output
    tokens = set(re.split(r"[\s│┃]+", res.output))
    for r in rows:
        assert re.search(rf"[│┃] {re.escape(r['name'])} +[│┃]", res.output), (r["name"], res.output)
        assert r["architecture"] in tokens, res.output
        for s in (2, 3, 4):
            for key in EVALUATIONS:
                assert f"{r['quality'][f'x{s}'][key]:.2f}" in tokens, (r["name"], s, key, res.output)
        assert f"{r['params']:,}" in tokens and f"{r['gmac_720p_x3']:.2f}" in tokens, res.output
        speed = r["speed_720p_x3"]
        assert f"{speed['model_ms']:.0f} / {speed['e2e_ms']:.0f}" in res.output, res.output
    for _, title in EVALUATIONS.values():
        assert title in res.output


def test_upscale_shows_no_progress_bar_in_a_log(tmp_path, image_folder, tiny_checkpoint):
    """Off a terminal (a log, a pipe, CliRunner) a bar left its last state behind as a line of box drawing."""
    res = runner.invoke(app, ["upscale", str(image_folder), "-o", str(tmp_path / "up"), "-w", str(tiny_checkpoint(3)),
                              "-b", "torch"])
    assert res.exit_code == 0, res.output
    assert "━" not in res.output and not re.search(r"^images ", res.output, re.M), res.output


@pytest.fixture
def read_only_folder(tmp_path, small_disk):
    """read_only_folder(fill) -> a folder srx may not create files in, holding what `fill(folder)`
    made there: a read-only tmpfs for root (permission bits do not stop root), else a 0555 folder."""
    import os
    import subprocess

    made: list[Path] = []

    def make(fill) -> Path:
        if os.geteuid() == 0:
            folder = small_disk(64, "ro")
            fill(folder)
            proc = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
            if proc.returncode:
                pytest.skip(f"cannot make the tmpfs read-only: {proc.stderr.strip()}")
        else:
            folder = tmp_path / "ro"
            folder.mkdir()
            fill(folder)
            folder.chmod(0o555)
            made.append(folder)
        return folder

    try:
        yield make
    finally:
        for folder in made:
            folder.chmod(0o755)


def test_json_summary_to_a_pipe_or_link_in_a_read_only_folder_is_taken(tmp_path, tiny_checkpoint, read_only_folder):
    """The up-front check of --json-summary created a test file beside the path, so a named pipe a
    monitor reads, or a link whose target's folder is writable, in a folder srx may not write (/dev
    for /dev/stdout) was refused before the run: now checked as it is written."""
    import os
    import threading

    from tests.conftest import silent_video

    reports = tmp_path / "reports"
    reports.mkdir()

    def fill(folder: Path) -> None:
        os.mkfifo(folder / "mon.fifo")
        (folder / "latest.json").symlink_to(reports / "cam.json")

    ro = read_only_folder(fill)
    video = silent_video(tmp_path / "in.avi", 3, (32, 24))
    args = ["stream", "--source", str(video), "--no-drop", "-w", str(tiny_checkpoint(2)), "--backend", "torch",
            "--threads", "1", "--no-window", "-q", "--json-summary"]
    res = runner.invoke(app, [*args, str(ro / "latest.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((reports / "cam.json").read_text())["frames_out"] == 3
    got: dict = {}
    reader = threading.Thread(target=lambda: got.update(text=(ro / "mon.fifo").read_text()), daemon=True)
    reader.start()
    res = runner.invoke(app, [*args, str(ro / "mon.fifo")])
    assert res.exit_code == 0, res.output
    reader.join(60)
    assert json.loads(got["text"])["frames_out"] == 3
    res = runner.invoke(app, [*args, str(ro / "new.json")])  # a new file there still cannot be
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"cannot write --json-summary {ro / 'new.json'}: folder {ro} is not writable")


def test_json_summary_dash_alone_is_stdout_and_dot_slash_dash_is_a_file(tmp_path, tiny_checkpoint, monkeypatch):
    """`--json-summary ./-` was taken as stdout (Path("./-") prints as "-"), so a file named - could
    not be named at all: only the argument - itself is stdout."""
    from tests.conftest import silent_video

    monkeypatch.chdir(tmp_path)
    video = silent_video(tmp_path / "in.avi", 3, (32, 24))
    args = ["stream", "--source", str(video), "--no-drop", "-w", str(tiny_checkpoint(2)), "--backend", "torch",
            "--threads", "1", "--no-window", "-q", "--json-summary"]
    res = runner.invoke(app, [*args, "./-"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "-").read_text())["frames_out"] == 3
    assert "stream summary" in res.stdout and '"frames_out"' not in res.stdout
    (tmp_path / "-").unlink()
    res = runner.invoke(app, [*args, "-"])
    assert res.exit_code == 0 and not (tmp_path / "-").exists()
    assert json.loads(res.stdout)["frames_out"] == 3 and "stream summary" in res.stderr


def test_the_same_value_given_twice_is_that_one_value(tmp_path, image_folder, tiny_checkpoint):
    """`--scale 2 -s 2` was refused as "takes one --scale; got 2 (2, 2)": the same value twice is one."""
    import cv2

    ckpt = str(tiny_checkpoint(2))
    res = runner.invoke(app, ["upscale", str(image_folder / "img0.png"), "-s", "2", "--scale", "2", "-w", ckpt,
                              "--weights", ckpt, "--backend", "torch", "-o", str(tmp_path / "up.png")])
    assert res.exit_code == 0, res.output
    h, w = cv2.imread(str(image_folder / "img0.png")).shape[:2]
    assert cv2.imread(str(tmp_path / "up.png")).shape[:2] == (2 * h, 2 * w)


def test_tune_names_what_a_folder_it_will_not_write_into_holds(tmp_path):
    """`srx tune --out` on an `srx train` run said it "already holds a tuning run"."""
    trained, tuned = tmp_path / "trained", tmp_path / "tuned"
    for folder, names in ((trained, ("last.pt", "best.pt", "metrics.csv")), (tuned, ("last.pt", "best.pt", "tune.json"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_text("x")
    res = runner.invoke(app, ["tune", str(tmp_path / "v.avi"), "--max-steps", "1", "--out", str(trained)])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"{trained} already holds a training run (last.pt, best.pt); pass another --out")
    res = runner.invoke(app, ["tune", str(tmp_path / "v.avi"), "--max-steps", "1", "--out", str(tuned)])
    assert_one_error_line(res.output, f"{tuned} already holds a tuning run (last.pt, best.pt, tune.json); pass another --out")


def test_the_same_stop_delivered_twice_cannot_cut_the_cleanup_short(monkeypatch) -> None:
    """The commands without a graceful stop end on SIGTERM or SIGHUP through their cleanup (SystemExit);
    a hangup's second SIGHUP (a login shell's job gets one from the kernel and one from the shell), or
    the same signal within a second, lands while that cleanup runs and is ignored; a SIGTERM a second
    or more later still ends it."""
    import importlib
    import signal

    app_module = importlib.import_module("srx.cli.app")  # the module: srx.cli.app is also the Typer app's name
    monkeypatch.setattr(app_module, "_terminated_at", [])
    with pytest.raises(SystemExit) as first:
        app_module._terminated(signal.SIGHUP, None)
    assert first.value.code == 129
    app_module._terminated(signal.SIGHUP, None)  # the shell's: ignored
    app_module._terminated(signal.SIGTERM, None)  # within the second: the same request
    app_module._terminated_at[0] -= 1.5
    with pytest.raises(SystemExit) as again:
        app_module._terminated(signal.SIGTERM, None)
    assert again.value.code == 143


@pytest.mark.parametrize("reader_left", [False, True])
def test_a_command_over_while_a_source_reader_is_still_busy_ends_at_once(tmp_path: Path, reader_left: bool) -> None:
    """A thread that reads a source (a camera's open inside OpenCV's C++, which does not heed a stop)
    may outlive the command. The interpreter's exit tore such a thread down and a C++ frame unwound so
    aborted srx with SIGABRT after its clean summary (6 of 24 stops of a trial during cameras' opens).
    Once the command is over, such a process ends at once with the command's status, its exit-time
    teardown (here an atexit handler) not run; without such a thread it ends as before."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import atexit, sys, threading, time\n"
        "atexit.register(lambda: print('teardown ran', flush=True))\n"
        "import srx.camera.capture\n"
        f"if {reader_left}:\n"
        "    threading.Thread(target=time.sleep, args=(60,), name='srx-open', daemon=True).start()\n"
        "sys.argv = ['srx', 'models']\n"
        "from srx.cli.app import main\n"
        "main()\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "camera" in res.stdout  # the command's own output came out whole
    assert ("teardown ran" in res.stdout) is not reader_left, res.stdout[-300:]



def test_a_full_disk_under_stdout_is_one_line_and_a_zero_width_is_none(tmp_path):
    """`srx eval --json > results.json` on a full disk (here /dev/full) was a 48-line traceback; and
    COLUMNS=0 (a terminal that says no width) made `srx models`, `doctor` and `eval` print nothing,
    exit 0: a script saw success and an empty result."""
    import os
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        pytest.skip("this system has no /dev/full")
    env = {**os.environ, "SRX_CACHE_DIR": str(tmp_path / "cache")}
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "srx", "models", "--json"], stdout=full, stderr=subprocess.PIPE,
                             text=True, env=env, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == "error: cannot write standard output: no space left on device (the disk is full)"
    res = subprocess.run([sys.executable, "-m", "srx", "models"], capture_output=True, text=True, timeout=120,
                         env={**env, "COLUMNS": "0"})
    assert res.returncode == 0 and "camera" in res.stdout and "fast" in res.stdout, res.stdout + res.stderr
