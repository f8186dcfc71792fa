"""`srx serve` (a real Triton Inference Server through PyTriton, started by the test on free ports)
and the `triton` runner: parity with ONNX Runtime, streams and upscales through the server, eight
concurrent clients and Triton's batch statistics, bad servers, a server that dies mid-stream and
comes back, and a shutdown that leaves no server process behind."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from srx.cli import app
from srx.runtime.triton_server import pytriton_status
from tests.conftest import assert_one_error_line, skip_or_fail
from tests.camera.conftest import free_port, in_background, wait_until

OK, WHY = pytriton_status()


@pytest.fixture(autouse=True)
def _need_pytriton() -> None:
    """Skip with the reason where PyTriton is absent; fail on CI (SRX_REQUIRE_ALL), which installs it."""
    if not OK:
        skip_or_fail(f"{WHY} (CI installs it through scripts/test.sh)")
REPO = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), alive now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.update(kids)
        todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def left_behind(pids: set[int], grace: float = 5.0) -> dict[int, str]:
    """Those of `pids` still running `grace` seconds on (Python's multiprocessing resource tracker
    ends a moment after the process that started it), with their command lines."""
    import time

    end = time.monotonic() + grace
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    left = {}
    for p in pids:
        if alive(p):
            try:
                left[p] = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
            except OSError:
                pass
    return left


class Serve:
    """`python -m srx serve` on the given ports, its output collected; ready once it prints `serving`."""

    def __init__(self, ckpt: Path | None, ports: dict[str, int], name: str | None = None,
                 models: list[str] | None = None) -> None:
        self.ports = ports
        self.lines: list[str] = []
        which = models if models is not None else ["-w", str(ckpt), "--scale", "3"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "srx", "serve", *which, "--threads", "1",
             "--grpc-port", str(ports["grpc"]), "--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"]), *(["--name", name] if name else [])],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        wait_until(lambda: any(line.startswith("serving ") for line in self.lines) or self.proc.poll() is not None,
                   240, "srx serve to announce its model")
        assert self.proc.poll() is None, "".join(self.lines)
        self.url = f"127.0.0.1:{ports['grpc']}"
        self.children = descendants(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.children |= descendants(self.proc.pid)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                pytest.fail("srx serve did not stop within 60 s of SIGTERM:\n" + "".join(self.lines))
        return self.proc.returncode


@pytest.fixture(scope="module")
def served(ckpt):
    if not OK:
        skip_or_fail(f"{WHY} (CI installs it through scripts/test.sh)")
    ports = {"grpc": free_port(), "http": free_port(), "metrics": free_port()}
    box = {"server": Serve(ckpt(3), ports)}
    yield box
    box["server"].stop()


def test_runner_matches_onnxruntime(served, ckpt) -> None:
    from srx.protocol import psnr
    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from srx.runtime.select import cached_onnx
    from srx.runtime.triton_runner import TritonRunner

    server = served["server"]
    line = next(line for line in server.lines if line.startswith("serving "))
    assert "srx_srcnn-9-1-5_x3" in line and "Triton Inference Server 2." in line
    runner = TritonRunner(server.url)  # picks the server's srx model; scale and layers from its config
    assert (runner.model, runner.scale, runner.max_batch, runner.kernel_sizes) == ("srx_srcnn-9-1-5_x3", 3, 8, [9, 1, 5])
    rng = np.random.default_rng(0)
    with runner, OnnxRuntimeRunner(cached_onnx(ckpt(3)), threads=1) as local:
        for shape in [(1, 1, 37, 53), (3, 1, 29, 41), (10, 1, 16, 16)]:  # 10 > the model's max batch of 8
            x = rng.random(shape, dtype=np.float32)
            got, want = runner.infer(x), local.infer(x)
            assert got.shape == want.shape == (shape[0], 1, 3 * shape[2], 3 * shape[3])
            assert psnr(want * 255.0, got * 255.0, data_range=255.0) >= 60.0  # the FP32 parity gate


def test_stream_upscale_and_parity_through_the_server(served, ckpt, tmp_path: Path) -> None:
    import cv2

    from tests.camera.test_stream import read_video, write_ffv1
    from tests.conftest import synthetic_photo

    url = served["server"].url
    clip = tmp_path / "clip.mkv"
    write_ffv1(clip, [synthetic_photo(30, 40, seed=i) for i in range(5)])
    cli = CliRunner()
    common = ["--no-drop", "--no-window", "-q", "--scale", "3"]
    remote = cli.invoke(app, ["stream", "--source", f"a={clip}", "--source", f"b={clip}", "--server", url,
                              "--output", str(tmp_path / "t-{name}.mkv"), *common])
    assert remote.exit_code == 0, remote.output
    assert "on triton (srx_srcnn-9-1-5_x3" in remote.output
    local = cli.invoke(app, ["stream", "--source", str(clip), "-w", str(ckpt(3)), "--backend", "onnxruntime",
                             "--threads", "1", "--output", str(tmp_path / "local.mkv"), *common])
    assert local.exit_code == 0, local.output
    want = read_video(tmp_path / "local.mkv")
    assert len(want) == 5
    for name in "ab":
        got = read_video(tmp_path / f"t-{name}.mkv")
        assert len(got) == 5 and all(np.abs(g.astype(int) - w).max() <= 1 for g, w in zip(got, want))
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), synthetic_photo(41, 57, seed=9))
    up = cli.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "up.png"), "--server", url])
    assert up.exit_code == 0 and "x3" in up.output, up.output
    assert cv2.imread(str(tmp_path / "up.png")).shape == (123, 171, 3)
    par = cli.invoke(app, ["parity", "--scale", "3", "-w", str(ckpt(3)), "--synthetic", "--json", "--server", url])
    assert par.exit_code == 0, par.output
    rows = {r["backend"]: r for r in json.loads(par.stdout.strip().splitlines()[-1])["backends"]}
    assert rows["triton"]["passed"] is True and float(rows["triton"]["psnr_vs_torch_db"]) >= 60.0


def test_eight_clients_and_batch_statistics(served) -> None:
    from srx.runtime.triton_runner import TritonRunner, batch_statistics

    url = served["server"].url
    before = batch_statistics(url, "srx_srcnn-9-1-5_x3")
    x = np.random.default_rng(1).random((1, 1, 48, 64), dtype=np.float32)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with TritonRunner(url) as r:
                for _ in range(4):
                    results.append(r.infer(x))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 32
    assert all(np.array_equal(r, results[0]) for r in results)
    after = batch_statistics(url, "srx_srcnn-9-1-5_x3")
    assert after["inference_count"] - before["inference_count"] == 32
    formed = {b: n - before["batches"].get(b, 0) for b, n in after["batches"].items()}
    assert sum(b * n for b, n in formed.items()) == 32  # the batches Triton formed hold every request
    assert after["execution_count"] - before["execution_count"] == sum(formed.values())


def test_bad_servers_are_one_line(served, tmp_path: Path) -> None:
    import cv2

    from tests.conftest import synthetic_photo

    cli = CliRunner()
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), synthetic_photo(20, 20))
    nobody = cli.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "o.png"), "--server", f"127.0.0.1:{free_port()}"])
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        in_use = cli.invoke(app, ["serve", "--grpc-port", str(busy.getsockname()[1]), "--http-port", str(free_port()),
                                  "--metrics-port", str(free_port())])
    finally:
        busy.close()
    wrong_scale = cli.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "o.png"), "--server",
                                   served["server"].url, "--scale", "2"])
    for res, message in ((nobody, "no Triton server answers at 127.0.0.1:"),
                         (in_use, "the port is already in use (another srx or server is on it); pick another port with --grpc-port"),
                         (wrong_scale, "(none of srx_camera_x2, srx_srcnn_x2, srx_fast_x2, srx_lrnet-32x4-pw3_x2, srx_srcnn-9-1-5_x2;")):
        assert res.exit_code == 1, res.output
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output


def test_serve_names_the_model_and_a_client_finds_it_by_that_name(ckpt, tmp_path: Path) -> None:
    """`srx serve --name lobby` serves srx_lobby_x3. PyTriton lists no models, so a client that is not
    told the name says which names it looked for and how to give one; told it, it upscales."""
    import cv2

    from tests.conftest import synthetic_photo

    server = Serve(ckpt(3), {"grpc": free_port(), "http": free_port(), "metrics": free_port()}, name="lobby")
    try:
        assert "serving srx_lobby_x3 " in "".join(server.lines)
        assert f"clients: srx stream --server 127.0.0.1:{server.ports['grpc']} --model srx_lobby_x3 ..." in "".join(server.lines)
        img = tmp_path / "in.png"
        cv2.imwrite(str(img), synthetic_photo(20, 24))
        cli = CliRunner()
        lost = cli.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "a.png"), "--server", server.url])
        assert lost.exit_code == 1 and "none of srx_camera_x3, " in lost.output and "--model NAME" in lost.output
        found = cli.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "b.png"), "--server", server.url,
                                 "--model", "srx_lobby_x3"])
        assert found.exit_code == 0, found.output
        assert cv2.imread(str(tmp_path / "b.png")).shape == (60, 72, 3)
        bench = cli.invoke(app, ["bench", "--quick", "--backend", "triton", "--server", server.url,
                                 "--model", "srx_lobby_x3", "--json"])
        assert bench.exit_code == 0, bench.output
        rows = json.loads(bench.stdout)["rows"]
        assert [(r["model"], r["case"]) for r in rows] == [("srx_lobby_x3", "quick x3")], rows
    finally:
        assert server.stop() == 0, "".join(server.lines)


def test_one_server_serves_every_scale_and_each_client_finds_its_own(tmp_path: Path) -> None:
    """`srx serve -s 2 -s 3`: the shipped camera weights at both scales behind one server; a client
    of each scale finds its model unnamed and gets what ONNX Runtime computes locally, and the stop
    reports Triton's batches per model."""
    from srx.checkpoint import shipped_weights
    from srx.protocol import psnr
    from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner
    from srx.runtime.select import cached_onnx
    from srx.runtime.triton_runner import TritonRunner

    server = Serve(None, {"grpc": free_port(), "http": free_port(), "metrics": free_port()},
                   models=["-s", "2", "-s", "3"])
    try:
        assert "serving srx_camera_x2, srx_camera_x3 (" in "".join(server.lines)
        rng = np.random.default_rng(1)
        for scale in (2, 3):
            x = rng.random((2, 1, 23, 31), dtype=np.float32)
            with TritonRunner(server.url, scale=scale) as remote, \
                    OnnxRuntimeRunner(cached_onnx(shipped_weights(scale, "camera")), threads=1) as local:
                assert (remote.model, remote.scale) == (f"srx_camera_x{scale}", scale)
                got, want = remote.infer(x), local.infer(x)
            assert got.shape == want.shape == (2, 1, 23 * scale, 31 * scale)
            assert psnr(want * 255.0, got * 255.0, data_range=255.0) >= 60.0
    finally:
        assert server.stop() == 0, "".join(server.lines)
    for scale in (2, 3):
        assert any(line.startswith(f"stopped srx_camera_x{scale}: 2 requests in 1 model runs") for line in server.lines), \
            "".join(server.lines)
    # everything of Triton's ended by itself: srx serve's own resource tracker is not mistaken for one of them
    assert not any("still running after the stop" in line for line in server.lines), "".join(server.lines)


def test_serving_several_models_refuses_what_names_one(tmp_path: Path) -> None:
    for args, match in ((["-s", "2", "-s", "3", "--name", "lobby"], "--name names one model"),
                        (["--model", str(tmp_path / "m.onnx"), "-s", "2", "-s", "3"], "--model serves one model file"),
                        (["-s", "3", "-s", "5"], "unsupported scale")):
        res = CliRunner().invoke(app, ["serve", *args])
        assert res.exit_code == 1
        assert_one_error_line(res.output, match)


def test_a_model_that_is_not_srx(tmp_path: Path) -> None:
    """A Triton server (PyTriton, in this process) whose only model is not srx's."""
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    from srx.runtime.triton_server import use_own_libpython

    @batch
    def double(x):
        return {"y": x * 2}

    use_own_libpython()
    grpc = free_port()
    cfg = TritonConfig(http_address="127.0.0.1", http_port=free_port(), grpc_address="127.0.0.1", grpc_port=grpc,
                       metrics_port=free_port(), allow_gpu_metrics=False, exit_timeout_secs=5,
                       log_file=tmp_path / "triton.log")
    triton = Triton(config=cfg, workspace=tmp_path / "ws", security_config=TritonSecurityConfig(restricted_endpoints=[]))
    try:
        triton.bind(model_name="double", infer_func=double, inputs=[Tensor(name="x", dtype=np.float32, shape=(-1,))],
                    outputs=[Tensor(name="y", dtype=np.float32, shape=(-1,))], config=ModelConfig(max_batch_size=4))
        triton.run()
        cli = CliRunner()
        img = tmp_path / "in.png"
        import cv2

        cv2.imwrite(str(img), np.full((20, 20, 3), 128, np.uint8))
        for extra, message in ((["--model", "double"], "model 'double' on 127.0.0.1:"),
                               ([], "has no srx model that srx can find")):
            res = cli.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "o.png"), "--server", f"127.0.0.1:{grpc}", *extra])
            assert res.exit_code == 1 and message in res.output, res.output
            assert len([line for line in res.output.splitlines() if line.strip()]) == 1, res.output
        assert "is not an srx model" in cli.invoke(
            app, ["upscale", str(img), "--out", str(tmp_path / "o.png"), "--server", f"127.0.0.1:{grpc}", "--model", "double"]).output
    finally:
        triton.stop()


def test_server_dies_mid_stream_comes_back_and_leaves_nothing(served, ckpt, tmp_path: Path, caplog) -> None:
    """SIGTERM to srx serve mid-stream: it stops its Triton processes, all of them; the stream keeps
    its outputs going (bicubic, labelled), retries with backoff, and the model's frames come back
    when a new srx serve answers on the same port."""
    import logging

    from srx.camera.sources import SourceSpec
    from srx.camera.stats import StreamStats
    from srx.camera.stream import stream
    from srx.runtime.upscaler import create_upscaler
    from tests.camera.conftest import ThumbnailSink
    from tests.conftest import synthetic_photo

    caplog.set_level(logging.WARNING, logger="srx")
    server = served["server"]
    upscaler = create_upscaler(None, server=server.url)
    sink, stats, stop = ThumbnailSink(), StreamStats(), threading.Event()
    spec = SourceSpec.from_frames([synthetic_photo(24, 32, seed=i) for i in range(10)], fps=10.0, loop=True)
    thread, result = in_background(lambda: stream(spec, upscaler, [sink], stats=stats, stop_event=stop,
                                                  reconnect_max_wait=1.0))
    try:
        wait_until(lambda: stats.frames_out >= 3 or "error" in result, 60, "frames through the server")
        children = descendants(server.proc.pid)
        assert children, "srx serve started no server process"
        assert server.stop() == 0, "".join(server.lines)
        assert any(line.startswith("stopped srx_srcnn-9-1-5_x3: ") for line in server.lines), "".join(server.lines)
        left = left_behind(server.children | children)
        assert not left, f"processes left behind by srx serve: {left}"
        before = stats.frames_out
        wait_until(lambda: stats.frames_out >= before + 5 or "error" in result, 30, "frames while the server is down")
        assert "error" not in result, result.get("error")
        served["server"] = server = Serve(ckpt(3), server.ports)  # the same ports again
        wait_until(lambda: any(m.startswith("backend is back") for m in [r.getMessage() for r in caplog.records])
                   or "error" in result, 60, "the stream to use the restarted server")
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    events = [e["event"] for e in summary.events if e["event"].startswith("backend")]
    assert events[:2] == ["backend-lost", "backend-back"] and summary.fallback_frames >= 5
    assert len(sink.thumbs) == summary.frames_out  # the output got a frame for every source frame taken
    assert server.stop() == 0
    assert not left_behind(server.children)
