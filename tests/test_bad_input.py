"""Every command's bad input, through the real CLI: one line starting `error:`, exit status 1, never a
traceback. The checkpoint cases run for every option that takes one (--weights, --resume, --init,
--model) on every command that has it; output paths are checked before any work starts."""
from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from srx.cli import app
from tests.conftest import assert_one_error_line, silent_video, synthetic_photo

runner = CliRunner()

#: bad checkpoint files, and what the message must say about each
BAD_CHECKPOINTS = {
    "text": "it is a text file",
    "random": "binary data of another kind",
    "empty": "it is empty (0 bytes)",
    "truncated": "truncated or damaged",
    "pickled": "holds Python objects srx never writes",
}

#: (command line with {ckpt} for the bad checkpoint) for every option that takes a checkpoint
CHECKPOINT_USES = {
    "train --resume": ["train", "--resume", "{ckpt}", "--no-progress"],
    "tune --init": ["tune", "{video}", "--init", "{ckpt}", "--max-steps", "1", "--out", "{tmp}/t", "--no-progress"],
    "train --init": ["train", "--data", "{images}", "--init", "{ckpt}", "--epochs", "1", "--out", "{tmp}/run",
                     "--no-progress"],
    "eval --weights": ["eval", "--data", "{images}", "--weights", "{ckpt}"],
    "upscale --weights": ["upscale", "{image}", "--out", "{tmp}/o.png", "--weights", "{ckpt}"],
    "upscale --model": ["upscale", "{image}", "--out", "{tmp}/o.png", "--model", "{ckpt}"],
    "export --weights": ["export", "--weights", "{ckpt}", "--out", "{tmp}/exports"],
    "parity --weights": ["parity", "--weights", "{ckpt}", "--synthetic"],
    "bench --weights": ["bench", "--quick", "--backend", "torch", "--weights", "{ckpt}"],
    "stream --weights": ["stream", "--demo", "--max-frames", "1", "--no-window", "-q", "--weights", "{ckpt}"],
    "compare --weights": ["compare", "{image}", "--weights", "{ckpt}", "--out", "{tmp}/c.png"],
}

#: other bad input per command: (command line, what the message must say)
OTHER_CASES = {
    "train": [(["train", "--data", "/nonexistent/folder", "--epochs", "1"], "does not exist"),
              (["train", "--data", "{images}", "--threads", "0"], "--threads must be at least 1, got 0"),
              (["train", "--data", "{images}", "--model", "fsrcnn", "--epochs", "1"], "unknown model 'fsrcnn'"),
              (["train", "--data", "{images}", "--degrade", "jpeg=120", "--epochs", "1"], "out of range"),
              (["train", "--data", "{images}", "--degrade", " ", "--epochs", "1"], "--degrade is empty; expected a preset"),
              (["train", "--data", "{images}", "--time-budget", "soon"], "expected a duration"),
              (["train", "--data", "{images}", "--every", "3", "--epochs", "1", "--out", "{tmp}/never"],
               "--every 3 applies to videos, and no --data or --val is one"),
              (["train", "--data", "{images}", "--log-every", "0", "--epochs", "1", "--out", "{tmp}/never"], "--log-every must be at least 1 step, got 0"),
              (["train", "--data", "{images}", "--data", "{images}/", "--out", "{tmp}/never"], "given more than once"),
              (["train", "--data", "{video}", "--frames", "5:3", "--epochs", "1"], "--frames expects START:END"),
              (["train", "--data", "{images}", "--val", "{images}", "--val-frames", "0:2", "--epochs", "1"],
               "--val-frames 0:2 applies to a video --val"),
              (["train", "--data", "{images}", "--init", "camra", "--epochs", "1"], "--init 'camra' is neither a shipped model"),
              (["train", "--data", "{tmp}/typo.mp4", "--epochs", "1"], "typo.mp4 does not exist; expected a folder of images or a video"),
              (["train", "--data", "{images}", "--val", "{tmp}/typo.mp4", "--epochs", "1"], "typo.mp4 does not exist; expected a folder of images or a video"),
              (["train", "--data", "{images}", "--val", "{video}", "--val-frames", "9:", "--epochs", "1"],
               "has 3 frames: --val-frames 9: starts after its last"),
              (["train", "--data", "{images}", "--val", "{tinyfolder}", "--epochs", "1"], "--val: no usable images in"),
              (["train", "--data", "{images}", "--stride", "0", "--epochs", "1"],
               "--stride must be a positive multiple of the scale 3 (HR pixels), got 0"),
              (["train", "--data", "{images}", "--stride", "-3", "--epochs", "1"], "--stride must be a positive multiple"),
              (["train", "--data", "{images}", "--patch-size", "0", "--epochs", "1"],
               "--patch-size must be a positive multiple of the scale 3 (HR pixels), got 0"),
              (["train", "--data", "{images}", "--patch-size", "9", "--epochs", "1"],
               "--patch-size 9 leaves no pixels for the loss inside the 6-pixel border srcnn-915 leaves out at each "
               "edge; expected at least 15"),
              (["train", "--data", "{images}", "--device", "gpu", "--epochs", "1"],
               "--device 'gpu': expected auto, cpu, cuda or cuda:N"),
              (["train", "--data", "{images}", "--init", "camera", "--model", "srcnn-915", "--epochs", "1"],
               "holds lrnet-32x4-pw3 x3, which does not fit --model srcnn-915; train it with --model lrnet-32x4-pw3 "
               "(or leave --model out)")],
    "eval": [(["eval", "--data", "{images}", "--scale", "7"], "unsupported scale"),
             (["eval", "--data", "{images}", "--degrade", ""], "--degrade is empty; expected a preset"),
             (["eval", "--data", "{images}", "--degrade", "sharpen=2"], "unknown degradation key 'sharpen'"),
             (["eval", "--data", "{images}", "--degrade", "jpeg=90..30"], "reversed"),
             (["eval", "--data", "{images}", "--weights", "fsat"], "neither a shipped model"),
             (["eval", "--data", "{file}"], "is neither an image (.png"),
             (["eval", "--data", "{tiny}"], "tiny.png: it is 13x12, too small for x3: expected at least 18x18 pixels"),
             (["eval", "--data", "{images}", "-w", "fast", "-w", "fast"], "two --weights are labelled 'fast'"),
             (["eval", "--data", "{images}", "--degrade", "none", "--degrade", "jpeg=101"], "jpeg=101: out of range"),
             (["eval", "--data", "{video}", "--frames", "9:"], "has 3 frames: --frames 9: starts after its last"),
             (["eval", "--data", "{images}", "--frames", "0:2"], "--frames 0:2 applies to a video;"),
             (["eval", "--data", "{tmp}/typo.mp4"], "typo.mp4 does not exist; expected a folder of images or a video"),
             # the SSIM window (11 pixels) must fit once `scale` pixels are shaved from each side
             (["eval", "--data", "{tinyfolder}"], "no usable images in"),
             (["eval", "--data", "{tinyvideo}"], "its frames are 16x14, too small for x3: expected at least 18x18 pixels")],
    "tune": [(["tune", "{image}", "--out", "{tmp}/t"], "is not a video file srx reads"),
             (["tune", "{video}", "--degrade", "", "--out", "{tmp}/t"], "--degrade is empty; expected a preset"),
             (["tune", "{video}", "--device", "cuda:x", "--max-steps", "1", "--out", "{tmp}/t"],
              "--device 'cuda:x': expected auto, cpu, cuda or cuda:N"),
             (["tune", "{tmp}/typo.mp4", "--out", "{tmp}/t"], "typo.mp4 does not exist"),
             (["tune", "{video}", "--out", "{tmp}/t"], "has 3 frames: too few to train on"),
             (["tune", "{video}", "--out", "{file}/t"], "is a file, expected a folder"),
             (["tune", "{video}", "--time-budget", "soon", "--out", "{tmp}/t"], "expected a duration"),
             (["tune", "{video}", "--max-steps", "1", "--time-budget", "soon", "--out", "{tmp}/t"],
              "--time-budget 'soon': expected a duration")],
    "compare": [(["compare", "{tmp}/missing.png"], "does not exist"),
                (["compare", "{image}", "--degrade", "", "--out", "{tmp}/c.png"], "--degrade is empty; expected a preset"),
                (["compare", "{image}", "--degrade", "noise=-1", "--out", "{tmp}/c.png"], "noise=-1: out of range, expected values in 0..50"),
                (["compare", "{image}", "--out", "{tmp}/c.jpg"], "expected a .png"),
                (["compare", "{image}", "--frame", "3", "--out", "{tmp}/c.png"], "--frame applies to videos"),
                (["compare", "{tiny}", "--out", "{tmp}/c.png"], "too small for a comparison at x3; expected at least 15x15"),
                (["compare", "{dot}", "--out", "{tmp}/c.png"], "image is 1x1, too small for a comparison at x3"),
                (["compare", "{image}", "--out", "{image}"], "is the input itself, which would be overwritten"),
                (["compare", "{image}", "--zoom", "100000", "--out", "{tmp}/c.png"],
                 "--zoom 100000 makes panels"),
                (["compare", "{images}", "--out", "{tmp}/c.png"], "is a folder: expected an image or a video file"),
                (["compare", "{image}", "-w", "fast", "-w", "fast", "--out", "{tmp}/c.png"],
                 "--weights names fast more than once"),
                (["compare", "{image}", "--out", "{file}/c.png"], "is a file, expected a folder"),
                (["compare", "{image}", "--degrade", "none", "--degrade", "jpeg50", "-o", "{tmp}/c.png"],
                 "--degrade given 2 times (none, jpeg50); a picture shows one degradation")],
    "export": [(["export", "--opt-shape", "360by640"], "expected HEIGHTxWIDTH"),
               (["export", "--out", "{file}/sub"], "is a file, expected a folder"),
               (["export", "--timing-cache", "{tmp}", "--out", "{tmp}/exports"], "--timing-cache")],
    "parity": [(["parity", "--synthetic", "--engine", "{tmp}/missing.engine"], "does not exist"),
               (["parity", "--data", "{image}"], "parity data {image} is a file; expected a folder of images"),
               (["parity", "--data", "{images}", "--synthetic"], "--synthetic both name the pictures to check"),
               # a file named here was never checked: the default model passed in its place
               (["parity", "--model", "{tmp}/fast-x2-fp16.onnx", "--synthetic"],
                "names a model on a Triton server and applies with --server")],
    "serve": [(["serve", "--scale", "7"], "unsupported scale"),
              # the server's options before any model loads (the checkpoint named here does not exist)
              (["serve", "--max-batch", "0", "-w", "{tmp}/missing.pt"], "--max-batch must be at least 1, got 0"),
              (["serve", "--http-port", "70000", "-w", "{tmp}/missing.pt"], "--http-port 70000: expected a port 1-65535")],
    "upscale": [(["upscale", "{image}", "--out", "{file}/x.png"], "is a file, expected a folder"),
                (["upscale", "{image}", "--out", "{tmp}/x.jfif"], "srx reads .jfif images but writes .png, .jpg"),
                (["upscale", "{image}", "--out", "{image}"], "is the input itself, which would be overwritten"),
                (["upscale", "{video}", "--out", "{video}"], "is the input itself, which would be overwritten"),
                (["upscale", "{image}", "--out", "{tmp}/o", "--format", "gif"], "--format 'gif'"),
                (["upscale", "{video}", "--out", "{tmp}/o.webm"], "expected one of those, got .webm"),
                (["upscale", "{image}", "--out", "{tmp}/o.mp4"], "one.png is an image, so expected an image file"),
                (["upscale", "{image}", "--out", "{tmp}/o.xyz"], "or a folder, got a .xyz file"),
                (["upscale", "{video}", "--out", "{tmp}/o.png"], "clip.avi is a video, so expected a video file"),
                (["upscale", "{images}", "--out", "{tmp}/o.png"], "names an image file, but 4 inputs need a folder"),
                (["upscale", "{tmp}/missing", "--out", "{tmp}/o"], "missing does not exist"),
                (["upscale", "{tmp}/gone.png", "{file}", "--out", "{tmp}/o"],
                 "gone.png does not exist; {file} is not an image or video")],
    "bench": [(["bench", "--quick", "--backend", "warp-drive"], "unknown bench backend"),
              (["bench", "--quick", "--threads", "-2"], "--threads must be at least 1, got -2"),
              (["bench", "--quick", "--reps", "0"], "--reps must be at least 1, got 0"),
              (["bench", "--quick", "-w", "fast", "-w", "{file}"], "afile is not a readable srx checkpoint"),
              (["bench", "--quick", "--backend", "tensorrt", "--engine", "{tmp}/fast-x3.onnx"],
               "--engine fast-x3.onnx is not a TensorRT engine")],
    "stream": [(["stream", "--demo", "--no-window", "--json-summary", "{file}/x.json"], "is a file, expected a folder"),
               (["stream", "--demo", "--no-window", "--json-summary", "{tmp}"], "is a folder; expected a file name"),
               (["stream", "--source", "{tmp}/missing.avi"], "does not exist"),
               (["stream", "--demo", "--no-window", "--roi", "1,2,3"], "--roi '1,2,3': expected LEFT,TOP,WIDTH,HEIGHT"),
               (["stream", "--demo", "--no-window", "--roi", "0,0,4,40"], "width and height at least 8"),
               (["stream", "--source", "{video}", "--no-window", "-q", "--roi", "10,0,20,8"],
                "--roi 10,0,20,8 does not fit the 24x20 frames of file "),
               (["stream", "--demo", "--no-window", "-q", "--roi", "0,100,320,81"],
                "expected LEFT + WIDTH <= 320 and TOP + HEIGHT <= 180"),
               (["stream", "--demo", "--no-window", "--roi", "lobby=0,0,64,64"],
                "--roi 'lobby=0,0,64,64': no source is named 'lobby'; the sources are demo"),
               (["stream", "--demo", "--no-window", "--roi", "0,0,64,64", "--roi", "8,8,64,64"],
                "--roi given twice for every source"),
               # the run's bounds before the model loads (the checkpoint named here does not exist)
               (["stream", "--demo", "--no-window", "--max-frames", "0", "-w", "{tmp}/missing.pt"],
                "--max-frames must be at least 1, got 0"),
               (["stream", "--demo", "--no-window", "--duration", "0s", "-w", "{tmp}/missing.pt"],
                "--duration must be positive, got 0 s"),
               (["stream", "--demo", "--no-window", "--open-timeout", "-1"],
                "--open-timeout '-1': expected a duration like 90, 30s"),
               (["stream", "--demo", "--no-window", "--open-timeout", "nan"],
                "--open-timeout 'nan': expected a duration like 90, 30s"),
               (["stream", "--demo", "--no-window", "--open-timeout", "0s"],
                "--open-timeout must be a positive number of seconds, got 0"),
               (["stream", "--demo", "--no-window", "--reconnect-max-wait", "inf"],
                "--reconnect-max-wait 'inf': expected a duration like 90, 30s"),
               (["stream", "--demo", "--no-window", "--reconnect-max-wait", "9" * 400],
                "--reconnect-max-wait must be a positive number of seconds, got inf"),
               (["stream", "--no-window"], "no source given; expected --camera N, --source FILE|URL|PIPELINE or --demo"),
               # --config's file (tests/test_cli_config.py has the rest)
               (["stream", "--config", "{tmp}/cams.toml"], "cams.toml: no such file; expected a TOML file"),
               (["stream", "--config", "{file}"], "is not valid TOML"),
               # --serve before the checkpoint (which does not exist) is read
               (["stream", "--demo", "--no-window", "--serve", "::1:8080", "-w", "{tmp}/missing.pt"],
                "an IPv6 address in brackets")],
    "doctor": [(["doctor", "--no-such-option"], "No such option")],
    "models": [(["models", "--no-such-option"], "No such option")],
}
if Path("/proc/self").is_dir():  # a folder nobody can create files in, not even root
    OTHER_CASES["upscale"].append((["upscale", "{image}", "--out", "/proc/x.png"], "cannot write --out /proc/x.png"))
    OTHER_CASES["stream"].append((["stream", "--demo", "--no-window", "--json-summary", "/proc/x.json"],
                                  "cannot write --json-summary /proc/x.json"))


@pytest.fixture
def places(tmp_path, image_folder, monkeypatch):
    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "afile").write_text("x")
    image = tmp_path / "one.png"
    import cv2

    cv2.imwrite(str(image), synthetic_photo(20, 24))
    video = silent_video(tmp_path / "clip.avi", 3, (24, 20))
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), synthetic_photo(12, 13))
    cv2.imwrite(str(tmp_path / "dot.png"), synthetic_photo(1, 1))
    (tmp_path / "tinies").mkdir()
    cv2.imwrite(str(tmp_path / "tinies" / "small.png"), synthetic_photo(17, 40))  # crops to 15x39 at x3
    tiny_video = silent_video(tmp_path / "small.avi", 3, (16, 14))
    return {"{images}": str(image_folder), "{image}": str(image), "{file}": str(tmp_path / "afile"),
            "{tmp}": str(tmp_path), "{tiny}": str(tiny), "{video}": str(video),
            "{tinyfolder}": str(tmp_path / "tinies"), "{tinyvideo}": str(tiny_video),
            "{dot}": str(tmp_path / "dot.png")}


def _bad_checkpoint(kind: str, folder: Path) -> Path:
    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    path = folder / f"{kind}.pt"
    if kind == "text":
        path.write_text("these are my notes, not weights\n" * 3)
    elif kind == "random":
        path.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1)).tolist()))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        cfg = ModelConfig(scale=3, kernel_sizes=[5, 1, 3], widths=[8, 4])
        save_checkpoint(folder / "whole.pt", build_model(cfg), cfg)
        data = (folder / "whole.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickled":  # a real PyTorch archive holding an object the weights-only loader refuses
        torch.save({"when": datetime.date(2024, 1, 1)}, path)
    return path


def _fill(args: list[str], subs: dict[str, str]) -> list[str]:
    out = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        out.append(a)
    return out


def _check_one_error_line(res, match: str) -> None:
    assert res.exit_code == 1, res.output
    assert "Warning" not in res.output  # nothing computed on what turned out to be bad input
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert_one_error_line(res.output, match)


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
@pytest.mark.parametrize("use", sorted(CHECKPOINT_USES))
def test_a_bad_checkpoint_is_one_line_everywhere(places, tmp_path, kind, use):
    ckpt = _bad_checkpoint(kind, tmp_path)
    res = runner.invoke(app, _fill(CHECKPOINT_USES[use], {**places, "{ckpt}": str(ckpt)}))
    _check_one_error_line(res, BAD_CHECKPOINTS[kind])
    assert "is not a readable srx checkpoint" in res.output
    assert "weights_only" not in res.output  # PyTorch's advice to load unsafely is not passed on
    assert [ln for ln in res.output.splitlines() if ln.startswith("error:")] == \
        [ln for ln in res.output.splitlines() if "not a readable srx checkpoint" in ln]


@pytest.mark.parametrize("command,case", [(c, i) for c, cases in OTHER_CASES.items() for i in range(len(cases))])
def test_other_bad_input_is_one_line(places, tmp_path, command, case):
    args, match = OTHER_CASES[command][case]
    res = runner.invoke(app, _fill(args, places))
    if command in ("doctor", "models"):  # options only: an unknown one is Click's own usage error (exit 2), still no traceback
        assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output
        return
    _check_one_error_line(res, _fill([match], places)[0])
    assert "stream summary" not in res.output  # output paths are checked before the run starts
    assert not (tmp_path / "o").exists() and not (tmp_path / "exports").exists()


def test_bench_on_a_gpu_that_is_not_there_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("PyTorch sees a CUDA GPU here, so torch-cuda runs")
    res = runner.invoke(app, ["bench", "--quick", "--backend", "torch-cuda"])
    _check_one_error_line(res, "sees no CUDA GPU")
    assert "--backend torch" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output  # not a "skipping" line per case and model first


def test_every_command_has_bad_input_cases():
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    covered = set(OTHER_CASES) | {use.split()[0] for use in CHECKPOINT_USES}
    assert names <= covered, names - covered


def test_unwritable_outputs_fail_before_the_model_loads(places, tmp_path, caplog):
    """The single-file output and the JSON summary are checked first: no model is exported or loaded."""
    import logging

    caplog.set_level(logging.DEBUG, logger="srx")
    res = runner.invoke(app, ["upscale", places["{image}"], "--out", places["{file}"] + "/big.png"])
    _check_one_error_line(res, "is a file, expected a folder")
    res = runner.invoke(app, ["stream", "--demo", "--no-window", "--json-summary", places["{file}"] + "/s.json"])
    _check_one_error_line(res, "--json-summary")
    res = runner.invoke(app, ["upscale", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o")])
    _check_one_error_line(res, "nothing-here does not exist")  # no input: said before the model loads
    assert "backend:" not in caplog.text and "exporting" not in caplog.text
    assert not (tmp_path / "cache").exists()


def test_a_bad_video_or_url_is_one_line_with_no_library_chatter(tmp_path):
    """OpenCV and its FFmpeg write their own lines ("[mov,mp4,... @ 0x..] moov atom not found",
    "[ WARN:0@2.4] global cap.cpp:215 ...", "[tcp @ 0x..] Connection refused") straight to the
    process's stderr, past CliRunner: so the real CLI runs in a subprocess. A file OpenCV cannot
    decode gets the same message from every command, and nothing else shows."""
    import socket
    import subprocess
    import sys

    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video\n" * 200)
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cases = {
        "eval": (["eval", "--data", str(junk)], "video {junk} cannot be opened (corrupt"),
        "compare": (["compare", str(junk), "--out", str(tmp_path / "c.png")], "video {junk} cannot be opened (corrupt"),
        "upscale": (["upscale", str(junk), "--out", str(tmp_path / "u.mp4"), "--backend", "torch"],
                    "video {junk} cannot be opened (corrupt"),
        "stream": (["stream", "--source", f"rtsp://127.0.0.1:{port}/live", "--no-window", "-q", "--max-frames", "1",
                    "--backend", "torch"], "cannot open source rtsp://127.0.0.1"),
    }
    # srx's default, not a host's: a user's own OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL wins over srx's
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}
    for command, (args, match) in cases.items():
        res = subprocess.run([sys.executable, "-m", "srx", *args], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, env=env)
        said = res.stdout + res.stderr
        assert res.returncode == 1, (command, said)
        assert match.format(junk=junk) in said, (command, said)
        assert "Traceback" not in said, (command, said)
        chatter = [ln for ln in said.splitlines() if ln.lstrip().startswith("[")]
        assert not chatter, (command, chatter)
