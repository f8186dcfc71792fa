"""Shared fixtures: tiny images and models made on the spot, and the ../shared data when present."""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: ../shared beside the checkout (dev machines, CI), else a copy inside it (scripts/gpu-wheels.sh makes
#: one to travel to a lent GPU machine, where nothing sits beside the checkout)
SHARED = next((p for p in (REPO.parent / "shared", REPO / "shared") if p.is_dir()), REPO.parent / "shared")
SET5 = SHARED / "datasets" / "Set5"
T91 = SHARED / "datasets" / "T91"
CCTV = SHARED / "media" / "cctv_480x360.avi"


#: set by .ci/run: on CI everything the suite drives for real (../shared, an RTSP server, Chromium)
#: must be there, so a test that would skip for want of it fails instead
REQUIRE_ALL = os.environ.get("SRX_REQUIRE_ALL", "") not in ("", "0")


@pytest.fixture(autouse=True)
def _terminal_size_unset(monkeypatch):
    """Every test sees the terminal a plain `pytest` run sees: none. pytest-xdist's workers set
    COLUMNS=80, under which rich folds srx's tables to 80 columns (the whole suite failed on a lent
    GPU host under `-n`, where `srx models` lost its column titles); a test about width sets its own."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


def skip_or_fail(reason: str) -> None:
    """pytest.skip(reason), or a failure under SRX_REQUIRE_ALL=1 (CI), where the piece must exist."""
    if REQUIRE_ALL:
        pytest.fail(f"SRX_REQUIRE_ALL is set, so this cannot be skipped: {reason}")
    pytest.skip(reason)


def need_shared(path: Path) -> None:
    """Skip (with the reason) where ../shared is absent, as on a user's fresh machine; fail on CI."""
    if not path.exists():
        skip_or_fail(f"{path} not found: the ../shared datasets exist on srx CI and dev machines only")


def assert_one_error_line(output: str, match: str) -> None:
    """What srx promises for bad input: exactly one `error:` line, saying `match`, and no traceback
    (a command may print its usual lines, such as the backend it chose, before it)."""
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, output
    assert match in errors[0], output
    assert "Traceback" not in output


def foreign_onnx(path: Path, op: str = "Relu", inp: str = "x", out: str = "y") -> Path:
    """A valid one-node ONNX graph that srx did not write (no metadata), for the refusal tests."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node(op, [inp], [out])], path.stem,
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 1, 4, 4])],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def synthetic_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured BGR uint8 image: gradients, edges and noise, like a small photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.02, 0.2), rng.uniform(0.02, 0.2), rng.uniform(0, 6.28)
        img[..., c] = 128 + 60 * np.sin(fx * xx + ph) * np.cos(fy * yy) + 30 * ((xx + yy * (c + 1)) % 37 > 18)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def silent_video(path: Path, frames: int, size: tuple[int, int], fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """A video OpenCV writes (no sound): `frames` synthetic photos of `size` (width, height)."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
    for i in range(frames):
        writer.write(synthetic_photo(h, w, seed=i))
    writer.release()
    return path


def portrait_phone_video(path: Path, frames: int = 6, size: tuple[int, int] = (48, 32)) -> Path:
    """An .mp4 as a phone records one held upright: landscape frames of `size` (width, height) and a
    track matrix that turns them 90° clockwise for display (the matrix iPhones write; FFmpeg reads
    it as a display rotation of -90°)."""
    import struct

    video_with_sound(path, vcodec="libx264", acodec=None, frames=frames, size=size)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0, "expected a version-0 track header"
    matrix = at + 8 + 20 + 8 + 8  # after the times, track id, duration, reserved, layer, group, volume
    assert struct.unpack(">9i", data[matrix:matrix + 36]) == (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def sound_only_file(path: Path) -> Path:
    """An .mp4 of one second of silent AAC and no video (a voice memo, an audio export)."""
    import av

    with av.open(str(path), "w") as box:
        st = box.add_stream("aac", rate=16000)
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in st.encode(frame):
                box.mux(packet)
        for packet in st.encode():
            box.mux(packet)
    return path


def variable_rate_video(path: Path, times_ms: list[int], size: tuple[int, int] = (48, 32)) -> Path:
    """An H.264 video whose frames come at the given times (ms), as a phone or an NVR that thins out
    quiet stretches records: synthetic photos of `size` (width, height), written by FFmpeg through PyAV."""
    from fractions import Fraction

    import av

    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        for i, at in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(synthetic_photo(h, w, seed=i)[..., ::-1].copy(), format="rgb24")
            frame.pts, frame.time_base = at, Fraction(1, 1000)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


def pyav_video(path: Path, codec: str, pix_fmt: str, size: tuple[int, int], frames: int, fmt: str | None = None) -> Path:
    """A video of `frames` synthetic photos of `size` (width, height) at 10 fps, coded by FFmpeg
    through PyAV with `codec` in `pix_fmt`; `fmt` names the container where the suffix does not
    (a raw .h264 stream: "h264")."""
    import av

    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=10)
        st.width, st.height, st.pix_fmt = w, h, pix_fmt
        for i in range(frames):
            for packet in st.encode(av.VideoFrame.from_ndarray(synthetic_photo(h, w, seed=i), format="bgr24")):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)
    return path


def frame_times_ms(path: Path) -> list[float]:
    """When each frame of a video is shown, in ms from the first (as OpenCV reports it)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    got = []
    while cap.read()[0]:
        got.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    return got


def stored_frames(path: Path) -> list[np.ndarray]:
    """A video's frames as coded, ignoring any rotation its container asks for."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    got = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        got.append(frame)
    cap.release()
    return got


def video_with_sound(path: Path, vcodec: str = "mpeg4", acodec: str | None = "aac", frames: int = 20, fps: int = 10,
                     size: tuple[int, int] = (48, 32), rate: int = 48000, channels: int = 1,
                     audio_start: float = 0.0) -> Path:
    """A real little video, written by FFmpeg through PyAV: `frames` synthetic photos, and (unless
    `acodec` is None) a 440 Hz tone on `channels` channels, as long as the frames, coded with
    `acodec` and starting `audio_start` seconds after the first frame."""
    from fractions import Fraction

    import av

    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream(vcodec, rate=fps)
        video.width, video.height = w, h
        video.pix_fmt = "yuvj420p" if vcodec == "mjpeg" else "yuv420p"
        sound = out.add_stream(acodec, rate=rate) if acodec is not None else None  # every stream before any packet
        if sound is not None:
            sound.layout = {1: "mono", 2: "stereo"}[channels]
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(synthetic_photo(h, w, seed=i), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate * frames // fps) / rate)).astype(np.float32)
            fit = av.AudioResampler(format=sound.codec_context.format.name, layout=sound.codec_context.layout.name,
                                    rate=rate)
            done = round(audio_start * rate)
            for k in range(0, tone.size, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="flt", layout="mono")
                chunk.sample_rate = rate
                for f in fit.resample(chunk):
                    f.pts, done = done, done + f.samples
                    for packet in sound.encode(f):
                        out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


@pytest.fixture
def photo() -> np.ndarray:
    return synthetic_photo(61, 83)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"img{i}.png"), synthetic_photo(72 + 8 * i, 96, seed=i))
    return folder


@pytest.fixture
def tiny_checkpoint(tmp_path: Path):
    """A small randomly initialised SRCNN x3 checkpoint (real format, tiny widths)."""
    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    def make(scale: int = 3, name: str = "tiny.pt") -> Path:
        torch.manual_seed(scale)
        cfg = ModelConfig(scale=scale, kernel_sizes=[5, 1, 3], widths=[8, 4])
        model = build_model(cfg)
        with torch.no_grad():
            model.conv3.weight.normal_(0, 0.05)
        path = tmp_path / name
        save_checkpoint(path, model, cfg)
        return path

    return make


#: the child of `run_srx_with_room`: the libraries srx loads are mapped first, then the address space
#: is limited to what they take plus `room` bytes, and the real CLI runs under that limit (a small
#: box's memory, the same on any host whatever its libraries reserve)
_ROOM_CHILD = """
import importlib, resource, sys
import numpy, cv2, onnxruntime, torch, av, rich, typer  # noqa: F401
importlib.import_module("srx.cli")
def vm_size():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm_size() + int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = ["srx", *sys.argv[2:]]
importlib.import_module("srx.cli.app").main()
"""


def run_srx_with_room(args: list[str], room: int, cwd: Path, timeout: float = 120):
    """`srx ARGS` in a subprocess whose address space is limited to what srx's libraries take plus
    `room` bytes (RLIMIT_AS, as `prlimit --as` sets it), on one thread, with the cache in `cwd`:
    the CompletedProcess (text)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SRX_CACHE_DIR": str(cwd / "cache"), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _ROOM_CHILD, str(int(room)), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


#: what a login shell runs the command through in srx_until_hangup(login_shell=True): srx as the
#: shell's job, its pid and then its status written to files (the shell itself dies of the hangup). A
#: handler, not SIG_IGN, keeps the wrapper alive: srx starts with SIGHUP at its default, as a job does.
_JOB_STATUS = ("import signal, subprocess, sys; signal.signal(signal.SIGHUP, lambda *_: None); "
               "p = subprocess.Popen(sys.argv[2:]); open(sys.argv[1] + '.pid', 'w').write(str(p.pid)); "
               "rc = p.wait(); open(sys.argv[1], 'w').write(str(rc))")


def on_terminal(argv: list[str], cwd: Path, env: dict[str, str], size: tuple[int, int] = (24, 80)):
    """`argv` started on a real pseudo-terminal of its own, `size` (rows, columns): the controlling
    terminal of its own session, as a program started at an SSH prompt has. Returns the process
    (subprocess.Popen) and the terminal's other end (a file descriptor to read and to close: closing
    it hangs the terminal up). Through subprocess, not pty.fork: Python 3.12 warns that fork() in a
    process with threads may deadlock the child."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    finally:
        os.close(slave)
    return proc, master


def srx_until_hangup(args: list[str], ready: bytes, cwd: Path, env: dict[str, str] | None = None,
                     timeout: float = 120, on_ready=None, login_shell: bool = False) -> tuple[int, bytes]:
    """`python -m srx ARGS` on a real pseudo-terminal of its own (its session's controlling terminal,
    as in an SSH login: `on_terminal`), until `ready` appears on it; then the terminal hangs up (its
    other end closed: the kernel sends SIGHUP, and writes to it fail with EIO). Returns the process's
    wait status and what it printed. The process is killed, and the test failed, if it goes on.
    `on_ready(pid)` is called just before the hangup (to note its child processes, say).
    `login_shell`: srx is typed into an interactive bash on that terminal, as at an SSH prompt, and
    runs as its job: at the hangup it gets SIGHUP twice, from the kernel and forwarded by bash."""
    import shlex
    import signal
    import sys
    import tempfile
    import time

    argv = [sys.executable, "-m", "srx", *args]
    status_file = Path(tempfile.mkdtemp()) / "status"
    proc, terminal = on_terminal(["/bin/bash", "--norc", "--noprofile", "-i"] if login_shell else argv, cwd,
                                 {**os.environ, **(env or {})})
    pid = proc.pid
    if login_shell:
        job = [sys.executable, "-c", _JOB_STATUS, str(status_file), *argv]
        os.write(terminal, (" ".join(shlex.quote(a) for a in job) + "\n").encode())
    seen = b""
    deadline = time.monotonic() + timeout
    while ready not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(terminal, 4096)
        except OSError:  # it ended before saying it
            break
    if on_ready is not None and ready in seen:
        on_ready(pid)
    os.close(terminal)  # the hangup
    def wait_status(rc: int) -> int:  # a return code as a wait status: os.WIFEXITED, os.WEXITSTATUS apply
        return rc << 8 if rc >= 0 else -rc

    while time.monotonic() < deadline + 60:
        done = proc.poll() is not None  # srx itself, or the shell it runs under
        if done and not login_shell:
            assert ready in seen, seen[-2000:]
            return wait_status(proc.returncode), seen
        if done and status_file.exists() and status_file.read_text():  # srx, the shell's job, ended
            assert ready in seen, seen[-2000:]
            return wait_status(int(status_file.read_text())), seen
        time.sleep(0.1)
    job_pid = Path(f"{status_file}.pid")
    for p in [pid] + ([int(job_pid.read_text())] if login_shell and job_pid.exists() else []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    proc.wait()
    pytest.fail(f"srx {' '.join(args[:1])} went on after its terminal hung up; it printed {seen[-400:]!r}")


@contextlib.contextmanager
def umask(mask: int):
    """The process umask set to `mask` for the block (the files srx makes in it get the mode it gives)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def small_disk(tmp_path: Path):
    """small_disk(kib, name="disk") -> a folder under tmp_path that is a real file system of that size
    (a tmpfs: needs root and `mount`; the test skips with the reason elsewhere), unmounted when the
    test ends. `fill_disk(folder)` makes it full."""
    import shutil
    import subprocess

    mounted: list[Path] = []

    def make(kib: int = 256, name: str = "disk") -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("a small disk here is a tmpfs mount: needs root and mount")
        folder = tmp_path / name
        folder.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(folder)
        return folder

    try:
        yield make
    finally:
        for folder in reversed(mounted):
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)  # a file still open there


def fill_disk(folder: Path, leave_kib: int = 0) -> Path:
    """Fill `folder`'s file system with a file of zeros, less `leave_kib` KiB (a disk full already,
    or one with that much room)."""
    filler = Path(folder) / "filler"
    with open(filler, "wb", buffering=0) as fh:
        block = bytes(4096)
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
        fh.truncate(max(0, fh.tell() - leave_kib * 1024))
    return filler
