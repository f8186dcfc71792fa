"""srx/cli/config.py: `srx stream --config FILE` runs what the same options on the command line run
(a real stream of the demo and a video file, checked in its JSON summary), the command line wins
over the file, and every mistake in a file is one line naming the file and the key."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srx.cli import app
from tests.conftest import assert_one_error_line, silent_video

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))


def stream_context():
    """A click context of `srx stream`, as --config's callback gets it."""
    from typer.main import get_command

    group = get_command(app)
    parent = group.make_context("srx", ["stream", "--demo"])
    return group.get_command(parent, "stream").make_context("stream", ["--demo"], parent=parent)


def summary_of(args: list[str], tmp_path: Path, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    res = runner.invoke(app, ["stream", *args, "--json-summary", str(out)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def shape(summary: dict) -> dict:
    """What a run was asked to do, as its summary says it: per source its spec, region, rate and frames out."""
    return {"scale": summary["scale"], "backend": summary["backend"],
            "sources": {name: {k: s[k] for k in ("source", "max_fps", "input_size", "frames_out")}
                        for name, s in summary["sources"].items()}}


def test_a_file_runs_what_the_same_options_on_the_command_line_run(tmp_path: Path) -> None:
    clip = silent_video(tmp_path / "yard.avi", 12, (96, 64))
    (tmp_path / "cams.toml").write_text(f"""
weights = "fast"
scale = 2
max_frames = 3          # an underscore reads as the dash
window = false
quiet = true
no-drop = true
max-fps = 20            # every source's but the one whose table says its own
demo = true

[[source]]
name = "yard"
source = "{clip}"
roi = "8,8,64,48"
max-fps = 30
""")
    from_file = summary_of(["--config", str(tmp_path / "cams.toml")], tmp_path, "file")
    from_line = summary_of(["-w", "fast", "-s", "2", "--max-frames", "3", "--no-window", "-q", "--no-drop",
                            "--max-fps", "20", "--demo", "--source", f"yard={clip}", "--roi", "yard=8,8,64,48",
                            "--max-fps", "yard=30"], tmp_path, "line")
    assert shape(from_file) == shape(from_line)
    assert shape(from_file)["sources"]["yard"]["input_size"] == [64, 48]  # the table's region was taken
    assert {n: s["max_fps"] for n, s in from_file["sources"].items()} == {"demo": 20, "yard": 30}
    assert from_file["scale"] == 2 and "fast-x2" in from_file["backend"]


def test_the_command_line_replaces_the_files_value(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text('demo = true\nmax-frames = 40\nwindow = false\nquiet = true\nmax-fps = ["9"]\n')
    summary = summary_of(["--config", str(tmp_path / "one.toml"), "--max-frames", "2", "--max-fps", "50"],
                         tmp_path, "s")
    assert summary["frames_out"] == 2 and summary["max_fps"] == 50  # neither the file's 40 nor its 9


@pytest.mark.parametrize("form", ['["{clip}"]', '"{clip}"'], ids=["array", "string"])
def test_a_source_as_a_plain_value(tmp_path: Path, form: str) -> None:
    """source = ["FILE"] or source = "FILE" at the top: --source's own values, no table."""
    clip = silent_video(tmp_path / "a.avi", 6, (48, 32))
    (tmp_path / "c.toml").write_text(f'source = {form.format(clip=clip)}\nmax-frames = 2\nwindow = false\n'
                                     'quiet = true\nweights = "fast"\n')
    summary = summary_of(["--config", str(tmp_path / "c.toml")], tmp_path, "s")
    assert summary["frames_out"] == 2 and summary["source"] == f"file {clip}"


#: (file text, what its one error line must say)
BAD_FILES = [
    ("demo = true\nmax_fsp = 3\n", "unknown key 'max_fsp' (did you mean max-fps?); expected an option of `srx stream`"),
    ("demo = true\nbananas = 3\n", "unknown key 'bananas'; expected an option of `srx stream` without its dashes"),
    ("demo = yes\n", "is not valid TOML"),
    ("demo = \"yes\"\n", "demo = 'yes': expected true or false"),
    ("demo = true\nduration = [\"1s\", \"2s\"]\n", "duration = an array: expected one value, not an array"),
    ("demo = true\nweights = [\"fast\", \"srcnn\"]\n", "srx stream takes one --weights; got 2 (fast, srcnn)"),
    ("demo = true\nmax-fps = 5\nmax_fps = 6\n", "max-fps is given twice (as max-fps and max_fps)"),
    ("demo = true\nwindow = false\nno-window = true\n", "no-window is given twice (as window and no-window)"),
    ("demo = true\nthreads = \"two\"\n", "threads = 'two':"),
    ("demo = true\nmax-fps = true\n", "max-fps = true: expected a string or a number"),
    ("demo = true\nduration = {s = 3}\n", "duration = a table: expected a string or a number"),
    ("[[source]]\nname = \"door\"\n", "[[source]] 1 (door): expected one of source = or camera =, found neither"),
    ("[[source]]\nname = \"door\"\nsource = \"a.mp4\"\ncamera = 0\n", "found source and camera"),
    ("[[source]]\nsource = \"rtsp://10.0.0.5/live\"\nmax-fps = 5\n",
     "[[source]] 1: max-fps = ... is this source's own, so the source needs a name"),
    ("[[source]]\nname = \"door\"\nsource = \"rtsp://10.0.0.5/live\"\nmaxfps = 5\n",
     "[[source]] 1 (door): unknown key 'maxfps' (did you mean max-fps?); expected name, source, camera, roi"),
    ("[[source]]\nname = 3\nsource = \"a.mp4\"\n", "name = 3: expected a name in quotes"),
    ("[[source]]\nname = \"door\"\nsource = \"rtsp://10.0.0.5/live\"\nrtsp-transport = \"sctp\"\n",
     "[[source]] 1 (door): rtsp-transport = 'sctp': expected tcp"),
    ("[[source]]\nname = \"a\"\nsource = \"a.mp4\"\n[[source]]\nname = \"b\"\nsource = \"b.mp4\"\nmax-fps = \"fast\"\n",
     "[[source]] 2 (b): max-fps = 'fast': expected a positive number of frames a second"),
    ("demo = true\nroi = \"1,2,3\"\n", "roi = '1,2,3': expected LEFT,TOP,WIDTH,HEIGHT"),
    ("[[source]]\nname = \"a\"\nsource = \"a.mp4\"\n[[source]]\nname = \"a\"\nsource = \"b.mp4\"\n",
     "[[source]] 2 (a): name = 'a' is [[source]] 1's name too"),
    ("[[source]]\nname = \"front door\"\nsource = \"a.mp4\"\n",
     "[[source]] 1 (front door): name = 'front door': expected ASCII letters, digits, _ . -"),
    ("name = \"door\"\nsource = \"a.mp4\"\n", "a name belongs in a [[source]] table"),
    ("[[source]]\nname = \"a\"\nsource = \"a.mp4\"\noutput = \"rec/{name}.mp4\"\n",
     "[[source]] 1 (a): output is an option for every source, not one source's own: put it above the first"),
    ("# nothing yet\n", "no source given: --config "),
    ("[[source]]\nname = \"\"\nsource = \"a.mp4\"\n", "[[source]] 1: name = '': expected a name in quotes"),
    ("demo = true\nconfig = \"other.toml\"\n", "unknown key 'config'; expected an option of `srx stream`"),
    ("demo = true\nq = true\n", "unknown key 'q'; expected an option of `srx stream`"),  # long names only
    ("demo = true\nlo_drop = true\n", "unknown key 'lo_drop' (did you mean no-drop?)"),  # matched with dashes
    ("[[source]]\nname = \"yard\"\nsource = \"a.mp4\"\nmax_fps = 5\nmax-fps = 7\n",
     "[[source]] 1 (yard): max-fps is given twice (as max_fps and max-fps)"),
    # values the options check in the command itself, said with the file and the key all the same
    ("demo = true\nduration = \"soon\"\n", "duration = 'soon': expected a duration like 90, 30s"),
    ("demo = true\nkeep-free = \"lots\"\n", "keep-free = 'lots': expected"),
    ("demo = true\nserve = \"::1:8080\"\n", "serve = '::1:8080': expected HOST:PORT"),
    ("demo = true\nthreads = 0\n", "threads = '0': --threads must be at least 1, got 0"),
    ("demo = true\nmax-fps = [\"demo=fast\"]\n", "max-fps = 'fast': expected a positive number"),  # a named one's value
    ("max-fps = [\"a=2\"]\n[[source]]\nname = \"a\"\nsource = \"a.mp4\"\nmax-fps = 5\n",
     "max-fps is given twice for source 'a'"),
    ("demo = true\nscale = []\n", "scale = []: expected at least one value"),
    ("demo = true\nmax-frames = 0\n", "max-frames = '0': --max-frames must be at least 1, got 0"),
    ("demo = true\nbuffer = 0\n", "buffer = '0': --buffer must be at least 1 frame, got 0"),
    ("demo = true\nduration = \"0s\"\n", "duration = '0s': --duration must be positive"),
    ("demo = true\nopen-timeout = \"0s\"\n", "open-timeout = '0s': --open-timeout must be a positive number"),
    ("demo = true\nsegment = \"0\"\n", "segment = '0': expected at least 1 second"),
]


@pytest.mark.parametrize("text,match", BAD_FILES, ids=[m[:30] for _, m in BAD_FILES])
def test_a_bad_file_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str, match: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    res = runner.invoke(app, ["stream", "--config", str(bad), "--no-window", "-q", "--max-frames", "1"])
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, match)
    if not match.startswith("srx stream takes one"):  # the option's own check, after the file
        assert f"--config {bad}" in res.output


def test_a_file_that_is_not_there_or_a_folder(tmp_path: Path) -> None:
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "nope.toml: no such file; expected a TOML file of `srx stream` options")
    res = runner.invoke(app, ["stream", "--config", str(tmp_path)])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "is a folder; expected a TOML file")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX's")
def test_a_password_in_a_file_every_user_can_read_is_warned_of(tmp_path: Path, caplog) -> None:
    from tests.camera.conftest import free_port

    port = free_port()  # nothing listens there: the source fails to open at once, after the file was read
    cases = {"open": ("admin:hunter2@", 0o644, True), "private": ("admin:hunter2@", 0o600, False),
             "environment": ("admin:${CAM_PASSWORD}@", 0o644, False), "no password": ("", 0o644, False)}
    for name, (login, mode, warned) in cases.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(f'source = "rtsp://{login}127.0.0.1:{port}/live"\nwindow = false\nopen-timeout = "2s"\n')
        path.chmod(mode)
        caplog.clear()
        res = runner.invoke(app, ["stream", "--config", str(path)], env={"CAM_PASSWORD": "pw"})
        assert res.exit_code == 1, res.output  # the camera is not there
        said = [r.getMessage() for r in caplog.records if "every user of this machine can read it" in r.getMessage()]
        assert bool(said) == warned, (name, said)
        assert "hunter2" not in res.output + "".join(said)


def test_what_a_file_hands_each_option(tmp_path: Path) -> None:
    """The default_map a file becomes: a flag's other name negated, an underscore read as a dash, the
    top level's value of a per-source option first and each table's own as NAME=VALUE after it."""
    from srx.cli.camera import SOURCE_TABLES
    from srx.cli.config import options_from_file

    (tmp_path / "f.toml").write_text("""
no-window = true
no_drop = true
max-fps = 7
scale = 2
[[source]]
name = "a"
source = "rtsp://10.0.0.5/live"
rtsp_transport = "udp"
max-fps = 3
[[source]]
camera = 1
""")
    assert options_from_file(tmp_path / "f.toml", stream_context(), "stream", SOURCE_TABLES) == {
        "window": False, "no_drop": True, "scale": ["2"], "max_fps": ["7", "a=3"], "source": ["a=rtsp://10.0.0.5/live"],
        "camera": ["1"], "rtsp_transport": ["a=udp"]}


def test_a_file_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """Windows Notepad's UTF-8 begins with a byte-order mark, and its lines end in CR LF."""
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbfdemo = true\r\nmax-frames = 1\r\nwindow = false\r\nquiet = true\r\n")
    assert summary_of(["--config", str(tmp_path / "bom.toml")], tmp_path, "s")["frames_out"] == 1


def test_a_file_srx_may_not_read_says_which_user(tmp_path: Path, monkeypatch) -> None:
    """(Root reads any file, so the refusal is the OS error a user other than root gets, raised here.)"""
    (tmp_path / "cams.toml").write_text("demo = true\n")
    real = Path.read_text

    def refused(self, *args, **kwargs):
        if self.name == "cams.toml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refused)
    monkeypatch.setattr("getpass.getuser", lambda: "srx")
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "cams.toml")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "cams.toml: user srx may not read it; make it readable by the user srx runs as")


CAMERAS = """
max-fps = 20
no-drop = true
window = false
quiet = true
max-frames = 2
weights = "fast"
[[source]]
name = "a"
source = "{clip}"
max-fps = 30
roi = "0,0,32,32"
[[source]]
name = "b"
source = "{clip}"
"""


def test_a_sources_own_value_on_the_command_line_replaces_that_sources_alone(tmp_path: Path) -> None:
    clip = silent_video(tmp_path / "c.avi", 6, (48, 32))
    (tmp_path / "c.toml").write_text(CAMERAS.format(clip=clip))
    summary = summary_of(["--config", str(tmp_path / "c.toml"), "--max-fps", "b=7"], tmp_path, "one")
    assert {n: s["max_fps"] for n, s in summary["sources"].items()} == {"a": 30, "b": 7}
    summary = summary_of(["--config", str(tmp_path / "c.toml"), "--max-fps", "9"], tmp_path, "bare")
    assert {n: s["max_fps"] for n, s in summary["sources"].items()} == {"a": 30, "b": 9}  # a keeps its own
    summary = summary_of(["--config", str(tmp_path / "c.toml"), "--roi", "b=8,8,16,16"], tmp_path, "roi")
    assert {n: s["input_size"] for n, s in summary["sources"].items()} == {"a": [32, 32], "b": [16, 16]}


def test_sources_on_the_command_line_replace_all_of_the_files(tmp_path: Path) -> None:
    """--source (or --camera, or --demo) stands for every source of the file: its tables go, their own
    values with them (no error about a source that is not there), and the file's bare values stay."""
    clip = silent_video(tmp_path / "c.avi", 6, (48, 32))
    (tmp_path / "c.toml").write_text(CAMERAS.format(clip=clip) + "[[source]]\nname = \"desk\"\ncamera = 7\n")
    summary = summary_of(["--config", str(tmp_path / "c.toml"), "--source", f"new={clip}", "--demo"], tmp_path, "s")
    assert {n: s["max_fps"] for n, s in summary["sources"].items()} == {"new": 20, "demo": 20}


def test_the_files_quiet_can_be_undone_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "q.toml").write_text("demo = true\nmax-frames = 25\nwindow = false\nquiet = true\nweights = \"fast\"\n")
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "q.toml"), "--no-quiet"])
    assert res.exit_code == 0, res.output
    assert "fps" in res.output.split("stream summary")[0], res.output  # a status line before the summary


def test_a_tables_own_keys_read_with_underscores_too(tmp_path: Path) -> None:
    clip = silent_video(tmp_path / "yard.avi", 8, (64, 48))
    (tmp_path / "c.toml").write_text(f'weights = "fast"\nmax_frames = 2\nwindow = false\nquiet = true\ndemo = true\n'
                                     f'max-fps = 20\n[[source]]\nname = "yard"\nsource = "{clip}"\nmax_fps = 30\n')
    summary = summary_of(["--config", str(tmp_path / "c.toml")], tmp_path, "s")
    assert {n: s["max_fps"] for n, s in summary["sources"].items()} == {"demo": 20, "yard": 30}


def test_a_flag_on_the_command_line_replaces_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """window = true in the file asks for a window (none here: refused); --no-window overrules it."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (tmp_path / "w.toml").write_text('demo = true\nwindow = true\nquiet = true\nmax-frames = 2\nweights = "fast"\n')
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "w.toml")])
    assert res.exit_code == 1 and "--window asked for but no display" in res.output, res.output  # the file's is read
    assert summary_of(["--config", str(tmp_path / "w.toml"), "--no-window"], tmp_path, "s")["frames_out"] == 2


def test_a_file_not_in_utf8_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('source = "caf\xe9.mp4"\n'.encode("latin-1"))
    res = runner.invoke(app, ["stream", "--config", str(bad)])
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, f"--config {bad}: cannot be read (")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX's")
@pytest.mark.parametrize("login,mode,expected", [
    ("admin:hunter2@", 0o640, False),  # group-readable only is not "every user"
    ("admin:hunter2@", 0o604, True),   # readable by others though not by the group
    ("admin:$uper@", 0o644, True),     # a password starting with $ (not ${NAME}) is written out
    ("admin:pa:ss@", 0o644, True),     # a ':' inside the password
    (":hunter2@", 0o644, True),        # a password with no user name
], ids=["group-only", "others-only", "dollar-password", "colon-in-password", "no-user"])
def test_the_password_warning_is_for_files_others_can_read(tmp_path: Path, caplog, login: str, mode: int,
                                                           expected: bool) -> None:
    from tests.camera.conftest import free_port

    path = tmp_path / "cams.toml"
    path.write_text(f'source = "rtsp://{login}127.0.0.1:{free_port()}/live"\nwindow = false\nopen-timeout = "2s"\n')
    path.chmod(mode)
    res = runner.invoke(app, ["stream", "--config", str(path)])
    assert res.exit_code == 1, res.output  # nothing listens there
    said = [r.getMessage() for r in caplog.records if "every user of this machine can read it" in r.getMessage()]
    secret = login.split(":", 1)[1].rstrip("@")
    assert all(secret not in line for line in said) and secret not in res.output
    assert bool(said) == expected, said


def test_resilient_parsing_does_not_read_the_file(tmp_path: Path, caplog) -> None:
    """Shell completion parses the command line without acting on it: the file is not read then."""
    from typer.main import get_command

    path = tmp_path / "pw.toml"
    path.write_text('source = "rtsp://admin:hunter2@127.0.0.1:9/x"\n')
    path.chmod(0o644)
    group = get_command(app)
    parent = group.make_context("srx", ["stream"], resilient_parsing=True)
    ctx = group.get_command(parent, "stream").make_context("stream", ["--config", str(path)], parent=parent,
                                                           resilient_parsing=True)
    assert not ctx.default_map
    assert not [r for r in caplog.records if "every user of this machine" in r.getMessage()]


def test_a_files_value_for_a_camera_it_does_not_have_is_refused(tmp_path: Path) -> None:
    """A misspelt camera in a top-level NAME=VALUE: that camera would run without its own value; the
    same typo on the command line is refused, so it is in the file too, naming the file."""
    clip = silent_video(tmp_path / "c.avi", 6, (48, 32))
    (tmp_path / "typo.toml").write_text(CAMERAS.format(clip=clip).replace("max-fps = 20", 'max-fps = ["20", "bb=1"]'))
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "typo.toml")])
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, f"--config {tmp_path / 'typo.toml'}: max-fps = 'bb=1': no source is named 'bb'; "
                                      "the sources are a, b")


def test_a_command_line_source_of_a_files_name_is_a_new_source(tmp_path: Path) -> None:
    """--source a=... replaces the file's sources, a's table included: its roi (which would not fit the
    new source) and max-fps go; the file's bare max-fps stays."""
    clip = silent_video(tmp_path / "c.avi", 6, (48, 32))
    small = silent_video(tmp_path / "small.avi", 6, (24, 16))
    (tmp_path / "c.toml").write_text(CAMERAS.format(clip=clip))
    summary = summary_of(["--config", str(tmp_path / "c.toml"), "--source", f"a={small}"], tmp_path, "s")
    assert summary["max_fps"] == 20 and summary["roi"] is None and summary["input_size"] == [24, 16]


def test_an_empty_named_value_on_the_command_line_is_the_options_own_error(tmp_path: Path) -> None:
    clip = silent_video(tmp_path / "c.avi", 6, (48, 32))
    (tmp_path / "c.toml").write_text(CAMERAS.format(clip=clip))
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "c.toml"), "--max-fps", "b="])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "--max-fps 'b=': expected a positive number of frames a second")


def test_keep_as_a_bare_number_says_it_is_seconds(tmp_path: Path) -> None:
    (tmp_path / "k.toml").write_text(f'demo = true\noutput = "{tmp_path}/rec/{{name}}.mp4"\nsegment = "1h"\nkeep = 14\n')
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "k.toml")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "--keep 14 (a number alone is seconds) is not longer than --segment 1h")


def test_config_given_twice_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("demo = true\n")
    (tmp_path / "b.toml").write_text("demo = true\n")
    res = runner.invoke(app, ["stream", "--config", str(tmp_path / "a.toml"), "--config", str(tmp_path / "b.toml")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "--config given 2 times")


def test_a_dry_run_checks_the_file_and_says_what_would_run(tmp_path: Path, monkeypatch) -> None:
    """deploy/stream.toml itself, its recordings moved here: each camera with its settings, the model
    and the outputs are said; no camera is tried (10.0.0.5 is not reachable from here), nothing is
    created; a place a recording cannot go is the same error line as a real run's."""
    from tests.test_deploy import STREAM_TOML

    monkeypatch.setenv("DOOR_PASSWORD", "door-secret")
    monkeypatch.setenv("GATE_PASSWORD", "gate-secret")
    rec = tmp_path / "rec"
    mine = tmp_path / "stream.toml"
    mine.write_text(STREAM_TOML.read_text().replace("/var/lib/srx/rec", str(rec)))
    res = runner.invoke(app, ["stream", "--config", str(mine), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"dry run of --config {mine}: 2 sources, upscaled by camera x3 (") and \
        lines[0].endswith("camera-x3.pt); nothing was opened"), lines
    assert "  door: rtsp://admin:***@10.0.0.5:554/stream1, rtsp over tcp, at most 10 fps" in lines
    assert "  gate: rtsp://admin:***@10.0.0.6:554/stream1, rtsp over tcp, at most 5 fps" in lines
    assert f"  output: {rec}/door.mp4, {rec}/gate.mp4 in 1h segments, kept 14d, 10% kept free" in lines
    assert "  served at http://127.0.0.1:8080/" in lines
    assert not rec.exists() and "secret" not in res.output
    blocked = tmp_path / "file"
    blocked.write_text("")
    res = runner.invoke(app, ["stream", "--config", str(mine), "--dry-run", "--output", f"{blocked}/{{name}}.mp4"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"--output {blocked}/door.mp4")
    # a --keep-free the disk cannot give passed the dry run, and the service it vouched for failed at each
    # restart (trial readme2); a share, or a size the disk has, passes as before
    res = runner.invoke(app, ["stream", "--config", str(mine), "--dry-run", "--keep-free", "5000T"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"--keep-free 5000T: the disk of {rec}/door.mp4 holds ")
    assert runner.invoke(app, ["stream", "--config", str(mine), "--dry-run", "--keep-free", "1M"]).exit_code == 0
    # a publish URL's password was printed in the clear, and one the run refuses passed (trial recheck39)
    cams = ["--source", "door=rtsp://10.0.0.5/a", "--source", "gate=rtsp://10.0.0.6/a", "--dry-run"]
    res = runner.invoke(app, ["stream", *cams, "--output", "rtsp://pub:Zq9secret@h/{name}"])
    assert res.exit_code == 0 and "  output: rtsp://pub:***@h/door, rtsp://pub:***@h/gate" in res.output, res.output
    assert "Zq9secret" not in res.output
    res = runner.invoke(app, ["stream", *cams, "--output", "rtsp://pub:Zq/Wx@h/{name}"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "--output rtsp://pub:***@h/door: the password holds an unencoded '/'")


@pytest.mark.parametrize("entry, said", [
    ('[[source]]\nname = "yard"\nsource = "rtsp://127.0.0.1:86o3/clip"\n',
     "[[source]] 1 (yard): source = 'rtsp://127.0.0.1:86o3/clip': port '86o3' is not a number from 1 to 65535"),
    ('[[source]]\nname = "gate"\nsource = "rtsp//127.0.0.1:8603/clip"\n',
     "[[source]] 1 (gate): source = 'rtsp//127.0.0.1:8603/clip': a URL needs '://' after rtsp"),
    ('source = ["yard=rtsp://cam:99999/live"]\n',
     "source = 'yard=rtsp://cam:99999/live': port '99999' is not a number from 1 to 65535"),
    ('[[source]]\nname = "dock"\nsource = "rstp://10.0.0.7/live"\n',
     "[[source]] 1 (dock): source = 'rstp://10.0.0.7/live': unsupported URL scheme 'rstp'"),
    ('[[source]]\nname = "roof"\nsource = "rtsp://[::1/live"\n',
     "[[source]] 1 (roof): source = 'rtsp://[::1/live': the host's '[' has no closing ']'"),
])
def test_a_mistyped_camera_address_in_a_file_names_the_file_and_table(tmp_path: Path, entry: str, said: str) -> None:
    """A trial's `:86o3` passed --dry-run and was retried for the whole run; `rtsp//` was said as a
    file that does not exist, naming neither the file nor the table."""
    cams = tmp_path / "cams.toml"
    cams.write_text(entry)
    res = runner.invoke(app, ["stream", "--config", str(cams), "--dry-run"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"--config {cams}: {said}")


def test_a_dry_run_says_and_checks_where_the_summary_goes(tmp_path: Path) -> None:
    """--json-summary is one of a run's outputs: the dry run names each file (one a source with {name})
    and refuses one the run could not write, as the run would before it opens anything."""
    res = runner.invoke(app, ["stream", "--demo", "--source", "gate=rtsp://10.0.0.5/live", "--dry-run",
                              "--json-summary", str(tmp_path / "s-{name}.json")])
    assert res.exit_code == 0, res.output
    assert f"  summary: {tmp_path / 's-gate.json'}, {tmp_path / 's-demo.json'} (--json-summary)" in res.output
    assert not list(tmp_path.glob("s-*.json"))  # nothing written
    (tmp_path / "taken").mkdir()
    res = runner.invoke(app, ["stream", "--demo", "--dry-run", "--json-summary", str(tmp_path / "taken")])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"--json-summary {tmp_path / 'taken'}")
