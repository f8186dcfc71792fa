"""The stream loop with real parts: recordings read back equal Upscaler.upscale exactly, the
latest-frame policy holds with a slow model, size changes are handled, and a SIGTERM'd
`srx stream` finalises its recording."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from srx.camera.outputs import recording_output
from srx.camera.recording import PngSequenceOutput, VideoFileOutput
from srx.camera.sources import SourceSpec
from srx.camera.stream import stream
from srx.runtime.base import Runner
from srx.cli import app
from tests.camera.conftest import ThumbnailSink, camera_ts, frames, serve_folder, wait_until
from tests.conftest import assert_one_error_line, fill_disk, frame_times_ms, stored_frames

REPO = Path(__file__).resolve().parents[2]


def write_ffv1(path: Path, imgs: list[np.ndarray], fps: float = 10.0) -> None:
    import cv2

    h, w = imgs[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    assert writer.isOpened()
    for img in imgs:
        writer.write(img)
    writer.release()


read_video = stored_frames  # a recording's frames, as coded


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_lossless_recordings_equal_upscale(tmp_path: Path, make_upscaler, backend: str) -> None:
    """A file source with --no-drop: every frame is upscaled once, in order; the FFV1 .mkv and the
    PNG sequence read back with OpenCV equal Upscaler.upscale on the same input frames exactly."""
    import cv2

    src = tmp_path / "in.mkv"
    write_ffv1(src, frames(8))
    inputs = read_video(src)  # FFV1 is lossless: these are the frames the stream decodes
    assert len(inputs) == 8
    upscaler = make_upscaler(3, backend=backend)
    mkv, pngs = tmp_path / "out.mkv", tmp_path / "frames"
    summary = stream(SourceSpec("file", src), upscaler, [recording_output(mkv), recording_output(Path(str(pngs) + "/"))],
                     drop=False)
    assert (summary.frames_in, summary.frames_out, summary.dropped, summary.stopped_by) == (8, 8, 0, "end-of-input")
    assert summary.output_size == [144, 108]
    assert set(summary.stage_ms) == {"capture", "pre", "infer", "post", "output"}
    assert summary.stage_ms["infer"]["mean"] > 0 and summary.latency_ms["p95"] >= summary.latency_ms["p50"] > 0
    expected = [upscaler.upscale(img) for img in inputs]
    got_mkv = read_video(mkv)
    got_png = [cv2.imread(str(p)) for p in sorted(pngs.glob("frame_*.png"))]
    assert len(got_mkv) == len(got_png) == 8
    for exp, a, b in zip(expected, got_mkv, got_png):
        assert a.shape == b.shape == (108, 144, 3)
        assert np.array_equal(a, exp) and np.array_equal(b, exp)
    assert not list(tmp_path.glob(".*partial*"))  # temporary names were renamed into place


@pytest.mark.parametrize("suffix,scale", [(".mp4", ["--scale", "2"]), (".mov", [])])
def test_cli_records_and_writes_json_summary(tmp_path: Path, tiny_checkpoint, suffix, scale) -> None:
    """.mp4, .mov (H.264 both); without --scale the checkpoint's own (x2) is taken."""
    src = tmp_path / "in.mkv"
    write_ffv1(src, frames(5, 30, 40))
    out, summary_file = tmp_path / f"view{suffix}", tmp_path / "summary.json"
    result = CliRunner().invoke(app, [
        "stream", "--source", str(src), "--no-drop", "-w", str(tiny_checkpoint(2)), *scale,
        "--backend", "torch", "--threads", "1", "--output", str(out), "--compare", "--overlay",
        "--json-summary", str(summary_file), "--no-window", "-q"])
    assert result.exit_code == 0, result.output
    assert "stream summary" in result.output and "latency" in result.output
    data = json.loads(summary_file.read_text())
    assert data["frames_out"] == 5 and data["dropped"] == 0 and data["scale"] == 2
    assert data["output_size"] == [2 * 80 + 2, 60]  # bicubic | divider | model
    back = read_video(out)
    assert len(back) == 5 and back[0].shape == (60, 162, 3)


def test_a_lone_source_the_user_named_is_called_by_its_name(tmp_path: Path, tiny_checkpoint, caplog) -> None:
    """`--source door=URL` alone: /stats and /metrics said `door`, every log line the URL (trial readme2)."""
    src = tmp_path / "in.mkv"
    write_ffv1(src, frames(3, 30, 40))
    caplog.set_level("INFO", logger="srx")
    for given, said in ((f"door={src}", f"source door (file {src}): 40x30"), (str(src), f"source file {src}: 40x30")):
        caplog.clear()
        result = CliRunner().invoke(app, ["stream", "--source", given, "--no-drop", "-w", str(tiny_checkpoint(2)),
                                          "--backend", "torch", "--threads", "1", "--no-window", "-q"])
        assert result.exit_code == 0, result.output
        assert said in caplog.text, caplog.text


def test_json_summary_goes_where_its_name_leads_and_never_replaces_a_link_pipe_or_device(tmp_path: Path,
                                                                                        tiny_checkpoint) -> None:
    """--json-summary replaced what was at its path with a file: /dev/stdout's link (the JSON never
    reached stdout), a named pipe a monitor read (it got 0 bytes), a link (its target kept the old
    summary); `-` made a file named '-'. Now a link's target is written and the link stays, a pipe is
    written to, and `-` puts the JSON on stdout with the text summary on stderr."""
    import os

    src = tmp_path / "in.mkv"
    write_ffv1(src, frames(3, 24, 32))
    args = ["stream", "--source", str(src), "--no-drop", "-w", str(tiny_checkpoint(2)), "--backend", "torch",
            "--threads", "1", "--no-window", "-q", "--json-summary"]
    real = tmp_path / "reports" / "cam.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    assert CliRunner().invoke(app, [*args, str(link)]).exit_code == 0
    assert link.is_symlink() and json.loads(real.read_text())["frames_out"] == 3
    fifo = tmp_path / "monitor.pipe"
    os.mkfifo(fifo)
    got: dict = {}
    reader = threading.Thread(target=lambda: got.update(text=fifo.read_text()), daemon=True)
    reader.start()
    assert CliRunner().invoke(app, [*args, str(fifo)]).exit_code == 0
    reader.join(30)
    assert json.loads(got["text"])["frames_out"] == 3 and fifo.is_fifo()
    out = CliRunner().invoke(app, [*args, "-"])  # Typer's runner keeps stderr apart
    assert out.exit_code == 0 and not (Path.cwd() / "-").exists()
    assert json.loads(out.stdout)["frames_out"] == 3 and "stream summary" in out.stderr


def test_a_region_streams_as_if_the_frames_had_been_cut_to_it(tmp_path: Path, tiny_checkpoint) -> None:
    """--roi LEFT,TOP,WIDTH,HEIGHT: the recording equals, frame for frame, that of a clip cut to the
    region beforehand; the summary names the region and its sizes."""
    imgs = frames(4, 30, 40)
    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    write_ffv1(whole, imgs)
    write_ffv1(cut, [np.ascontiguousarray(img[6:6 + 18, 11:11 + 24]) for img in imgs])
    common = ["--no-drop", "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch", "--threads", "1",
              "--no-window", "-q"]
    zoomed = CliRunner().invoke(app, ["stream", "--source", str(whole), "--roi", "11,6,24,18",
                                      "--output", str(tmp_path / "a.mkv"), *common])
    assert zoomed.exit_code == 0, zoomed.output
    assert "region 24x18 at 11,6" in zoomed.output and "24x18 -> 48x36" in zoomed.output
    plain = CliRunner().invoke(app, ["stream", "--source", str(cut), "--output", str(tmp_path / "b.mkv"), *common])
    assert plain.exit_code == 0, plain.output
    a, b = read_video(tmp_path / "a.mkv"), read_video(tmp_path / "b.mkv")
    assert len(a) == len(b) == 4 and a[0].shape == (36, 48, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_each_source_gets_its_own_region_or_the_common_one(tmp_path: Path, tiny_checkpoint) -> None:
    """--roi a=... is source a's region; a bare --roi is every other source's."""
    clip = tmp_path / "clip.mkv"
    write_ffv1(clip, frames(3, 30, 40))
    res = CliRunner().invoke(app, ["stream", "--source", f"a={clip}", "--source", f"b={clip}", "--source", f"c={clip}",
                                   "--roi", "0,0,16,12", "--roi", "a=8,4,24,20", "--no-drop", "-w", str(tiny_checkpoint(2)),
                                   "--scale", "2", "--backend", "torch", "--threads", "1", "--no-window", "-q",
                                   "--output", str(tmp_path / "{name}.mkv")])
    assert res.exit_code == 0, res.output
    for name, shape in (("a", (40, 48, 3)), ("b", (24, 32, 3)), ("c", (24, 32, 3))):
        got = read_video(tmp_path / f"{name}.mkv")
        assert len(got) == 3 and got[0].shape == shape, name


@pytest.mark.parametrize("cap,kept", [(5.0, lambda i: i % 5 == 0), (10.0, lambda i: i % 5 in (0, 2)),
                                      (25.0, lambda i: True), (40.0, lambda i: True)])
def test_max_fps_passes_evenly_spaced_frames_and_counts_the_rest_as_skipped(make_upscaler, cap, kept) -> None:
    """A 25 fps source capped at 5 gives every fifth frame, at 10 two in five (10 a second, not
    every third frame's 8.3); at or above its rate, every frame. In the source's own time, so a
    file gives the same frames however fast it is read."""
    seen: list[int] = []
    spec = SourceSpec.from_frames(frames(50, 24, 32), fps=25.0)
    spec.max_fps = cap
    summary = stream(spec, make_upscaler(2), [], drop=False, on_frame=lambda f, out, t: seen.append(f.index))
    assert seen == [i for i in range(50) if kept(i)]
    assert (summary.frames_in, summary.frames_out, summary.dropped) == (50, len(seen), 0)
    assert summary.skipped == 50 - len(seen) and summary.queued_at_stop == 0
    assert (f"{50 - len(seen)} skipped by --max-fps {cap:g}" in summary.format()) == (len(seen) < 50)


def test_max_fps_of_a_live_source_follows_the_clock(monkeypatch) -> None:
    """A live source has no frame times of its own: the clock decides, and a frame that arrives
    after an outage starts the schedule again rather than letting a burst through."""
    import srx.camera.capture as capture_module
    from srx.camera.capture import CaptureThread
    from srx.camera.sources import IterReader

    clock = [100.0]
    monkeypatch.setattr(capture_module.time, "monotonic", lambda: clock[0])
    spec = SourceSpec("url", "rtsp://127.0.0.1/cam", max_fps=4.0)
    capture = CaptureThread(spec, IterReader(iter(()), fps=20.0))  # the rate the camera states
    passed = []
    for i in range(40):  # 20 fps for 2 s
        clock[0] = 100.0 + i * 0.05
        passed.append(not capture._over_rate(i))
    assert sum(passed) == 8 and [i for i, ok in enumerate(passed) if ok] == [0, 5, 10, 15, 20, 25, 30, 35]
    clock[0] = 200.0  # back after an outage: one frame, then the rate again
    assert [not capture._over_rate(100 + i) for i in range(3)] == [True, False, False]


def test_cli_max_fps_for_one_source_or_all(tmp_path: Path, tiny_checkpoint) -> None:
    clip = tmp_path / "c.mkv"
    write_ffv1(clip, frames(20, 30, 40), fps=10.0)
    common = ["--no-drop", "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch", "--threads", "1",
              "--no-window", "-q"]
    res = CliRunner().invoke(app, ["stream", "--source", f"a={clip}", "--source", f"b={clip}", "--max-fps", "a=2.5",
                                   "--output", str(tmp_path / "{name}.mkv"), "--json-summary", str(tmp_path / "s.json"),
                                   *common])
    assert res.exit_code == 0, res.output
    assert len(read_video(tmp_path / "a.mkv")) == 5 and len(read_video(tmp_path / "b.mkv")) == 20
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["sources"]["a"]["skipped"] == 15 and summary["sources"]["b"]["skipped"] == 0
    assert summary["total"]["skipped"] == 15 and "15 skipped by --max-fps 2.5" in res.output
    one = CliRunner().invoke(app, ["stream", "--source", str(clip), "--max-fps", "5", *common])
    assert one.exit_code == 0 and "20 in, 10 out, 0 dropped" in one.output and "10 skipped by --max-fps 5" in one.output
    # one named source: {name} in --json-summary becomes its name, as in --output
    named = CliRunner().invoke(app, ["stream", "--source", f"lobby={clip}", "--max-frames", "2",
                                     "--json-summary", str(tmp_path / "sum-{name}.json"), *common])
    assert named.exit_code == 0, named.output
    assert json.loads((tmp_path / "sum-lobby.json").read_text())["frames_out"] == 2
    assert not (tmp_path / "sum-{name}.json").exists()
    for bad, match in ((["--max-fps", "0"], "--max-fps '0': expected a positive number"),
                       (["--max-fps", "fast"], "--max-fps 'fast': expected a positive number"),
                       (["--max-fps", "nobody=3"], "no source is named 'nobody'"),
                       (["--max-fps", "3", "--max-fps", "4"], "--max-fps given twice for every source")):
        res = CliRunner().invoke(app, ["stream", "--source", str(clip), *bad, *common])
        assert res.exit_code == 1
        assert_one_error_line(res.output, match)


class SlowRunner(Runner):
    """A real model made slow on purpose: sleeps before each inference of the wrapped runner."""

    backend = "slow"

    def __init__(self, inner: Runner, delay: float) -> None:
        super().__init__("slow " + inner.name)
        self.inner, self.delay = inner, delay
        self.scale, self.config, self.kernel_sizes = inner.scale, inner.config, inner.kernel_sizes

    def activate_impl(self) -> None:
        self.inner.activate()

    def deactivate_impl(self) -> None:
        self.inner.deactivate()

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return self.inner.infer(lr_y)


def _run_slow(make_upscaler, drop: bool, outputs: list | None = None,
              buffer: int = 2) -> tuple[object, list[tuple[float, float | None, float]]]:
    upscaler = make_upscaler(2)
    upscaler.runner = SlowRunner(upscaler.runner, 0.08)
    seen: list[tuple[float, float | None, float]] = []
    spec = SourceSpec.from_frames(frames(30, 24, 32), fps=50.0)  # a "camera" at 50 fps, model ~10 fps
    summary = stream(spec, upscaler, outputs or [], drop=drop, buffer=buffer,
                     on_frame=lambda f, out, t_done: seen.append((f.t_capture, f.t_taken, t_done)))
    return summary, seen


@pytest.mark.parametrize("buffer", [1, 2])
def test_latest_frames_policy_bounds_latency(make_upscaler, tmp_path: Path, caplog, buffer: int) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="srx")
    view, exact = VideoFileOutput(tmp_path / "view.mp4"), VideoFileOutput(tmp_path / "exact.mkv")
    summary, seen = _run_slow(make_upscaler, drop=True, outputs=[view, exact], buffer=buffer)
    assert summary.frames_in == 30 and summary.buffer == buffer
    assert summary.dropped > 0 and summary.frames_out + summary.dropped == summary.frames_in
    assert f"{summary.dropped} dropped (newest {buffer} held)" in summary.format()
    # the summary says why: ~80 ms of model time per frame against the camera's 20 ms
    note = summary.keep_up()
    assert note.startswith("srx was slower than the source") and "ms in the model" in note
    assert note in summary.format() and summary.to_dict()["keep_up"] == note
    # the invariant behind bounded latency: every processed frame was grabbed after the frame
    # `buffer` places before it was taken, so at most `buffer` frames wait; its latency is under
    # the processing of the `buffer` frames before it plus its own
    for (_, taken_prev, _), (cap, _, _) in zip(seen, seen[buffer:]):
        assert cap > taken_prev
    assert summary.timing_note == "" and summary.stage_ms["infer"]["p50"] >= 80  # the sleep is model time
    # the .mp4 (for viewing) holds each upscaled frame once, at its source frame's time, so the
    # frames dropped between them keep their length and it plays in real time
    times = frame_times_ms(tmp_path / "view.mp4")
    assert len(times) == summary.frames_out == view.frames == view.distinct
    assert all(t % 20 == pytest.approx(0, abs=0.5) or t % 20 == pytest.approx(20, abs=0.5) for t in times)
    assert times[-1] == pytest.approx(580, abs=0.5) and len(set(np.diff(times).round())) > 1  # gaps where frames were dropped
    assert (f"recorded {summary.frames_out} frames, 0.6 s, each at its time to {tmp_path / 'view.mp4'}") in caplog.text
    assert frame_times_ms(tmp_path / "exact.mkv") == pytest.approx(times, abs=0.5)  # lossless, and in real time too
    # a recording without frame times (.avi: MJPEG at a fixed rate) repeats each frame over the dropped ones
    avi = VideoFileOutput(tmp_path / "view.avi")
    summary, _ = _run_slow(make_upscaler, drop=True, outputs=[avi], buffer=buffer)
    assert len(read_video(tmp_path / "view.avi")) == summary.frames_in == avi.frames
    assert avi.distinct == summary.frames_out < summary.frames_in
    assert (f"recorded {summary.frames_in} frames, {summary.frames_in / 50:.1f} s at 50 fps to {tmp_path / 'view.avi'}: "
            f"{summary.frames_out} distinct, the rest repeats of the one before") in caplog.text

    # without dropping, every frame is processed and frames queue up behind the slow model
    summary_all, seen_all = _run_slow(make_upscaler, drop=False)
    assert (summary_all.frames_out, summary_all.dropped) == (30, 0)
    assert summary_all.keep_up() == "" and "slower than the source" not in summary_all.format()
    assert any(cap <= taken_prev for (_, taken_prev, _), (cap, _, _) in zip(seen_all, seen_all[1:]))


class JitterRunner(SlowRunner):
    """A model that keeps up on average but is slow now and then: every `every`-th inference
    sleeps `spike` s, the others `base` s (a shared CPU, another process, a GC pause)."""

    def __init__(self, inner: Runner, base: float, spike: float, every: int) -> None:
        super().__init__(inner, base)
        self.base, self.spike, self.every, self.calls = base, spike, every, 0

    def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.delay = self.spike if self.calls % self.every == 0 else self.base
        return super().infer_impl(lr_y)


def test_a_two_frame_buffer_rides_out_a_one_off_slow_inference(make_upscaler) -> None:
    """A camera at 20 fps (50 ms a frame), a model at 5 ms but 120 ms every 5th frame: about two
    frames arrive during the slow one. Holding only the newest drops one of them; holding two
    (the default) drops none, and the model catches up within the next frame interval."""
    drops, notes = {}, {}
    for buffer in (1, 2):
        upscaler = make_upscaler(2)
        upscaler.runner = JitterRunner(upscaler.runner, base=0.005, spike=0.12, every=5)
        summary = stream(SourceSpec.from_frames(frames(30, 24, 32), fps=20.0), upscaler, [], buffer=buffer)
        assert summary.frames_in == 30 and summary.frames_out + summary.dropped == 30
        drops[buffer] = summary.dropped
        notes[buffer] = summary.keep_up()
    assert drops[1] > 0 and drops[2] == 0, drops
    # the one-frame buffer's drops came from the spikes, not from a model slower than the camera
    assert "dropped in slow spells" in notes[1] and "larger --buffer" in notes[1], notes[1]
    assert notes[2] == ""


def test_loop_file_and_http_mjpeg_source(tmp_path: Path, make_upscaler, caplog) -> None:
    """--loop restarts a file; and srx's own MJPEG server is a valid http:// source for another
    stream (FFmpeg reads multipart/x-mixed-replace), so streams can be chained. Such a stream states
    no frame rate: FFmpeg's 25 fps guess is not taken for the camera's (a trial's 10 fps camera was
    announced at 25 fps, its .avi written at 25, and --max-fps 3 gave 2.5)."""
    import logging

    from srx.camera.server import MjpegServer
    from srx.camera.sources import parse_source
    from srx.camera.stats import StreamStats

    src = tmp_path / "in.mkv"
    write_ffv1(src, frames(3))
    upscaler = make_upscaler(2)
    looped = stream(parse_source(source=str(src), loop=True), upscaler, [], max_frames=7, drop=False)
    assert (looped.frames_out, looped.stopped_by) == (7, "max-frames")
    # what the capture read ahead is said, so every frame in is accounted for
    assert looped.frames_in == looped.frames_out + looped.dropped + looped.queued_at_stop
    assert ("still queued at the stop" in looped.format()) == (looped.queued_at_stop > 0)
    assert [e["event"] for e in looped.events].count("loop") >= 2  # the capture may read ahead

    stats, stop = StreamStats(), threading.Event()
    server = MjpegServer("127.0.0.1:0", stats=stats.snapshot)
    spec = parse_source(source=str(src), loop=True)
    upstream = threading.Thread(target=stream, args=(spec, upscaler, [server]),
                                kwargs={"stats": stats, "stop_event": stop}, daemon=True)
    upstream.start()
    try:
        wait_until(lambda: stats.frames_out >= 1, 30, "the upstream stream")
        sink = ThumbnailSink()
        caplog.set_level(logging.INFO, logger="srx")
        chained = stream(parse_source(source=server.url + "stream.mjpg"), make_upscaler(3), [sink],
                         max_frames=3, open_timeout=10)
    finally:
        stop.set()
        upstream.join(10)
    assert chained.frames_out == 3 and chained.input_size == [96, 72] and sink.sizes[0] == (288, 216)
    assert chained.source_fps is None
    assert f"source {server.url}stream.mjpg: 96x72, mjpeg, no frame rate stated (srx measures it)" in caplog.text


def test_a_folder_of_images_is_upscaled_whole_even_by_a_slow_model(tmp_path: Path, make_upscaler, caplog) -> None:
    """The latest-frames policy is for cameras: a folder source gives every image to the model, in
    name order, however slow it is, and says where the images keep their names (srx upscale)."""
    import logging

    import cv2

    from srx.camera.sources import parse_source

    folder = tmp_path / "stills"
    folder.mkdir()
    imgs = frames(6, 24, 32)
    for i, img in enumerate(imgs):
        cv2.imwrite(str(folder / f"still{i}.png"), img)
    (folder / "still9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a broken one is skipped, with a warning
    cv2.imwrite(str(folder / "still3a.png"), imgs[0][:2, :2])  # so is one too small to upscale, mid-way, by name
    upscaler = make_upscaler(2)
    upscaler.runner = SlowRunner(upscaler.runner, 0.08)  # far slower than the folder's 25 frames a second
    caplog.set_level(logging.INFO, logger="srx")
    sink = ThumbnailSink()
    summary = stream(parse_source(source=str(folder)), upscaler, [sink], drop=True)
    assert (summary.frames_out, summary.dropped) == (6, 0)
    assert "skipping" in caplog.text and "still9.png" in caplog.text and "ended after" not in caplog.text
    assert f"skipping {folder / 'still3a.png'}: image is 2x2 pixels, too small to upscale" in caplog.text
    assert "every image upscaled" in caplog.text and f"srx upscale {folder}" in caplog.text


def test_a_variable_rate_file_keeps_its_frame_times_in_the_recording(tmp_path: Path, tiny_checkpoint) -> None:
    """A phone's or an NVR's variable-rate video streamed to .mp4: each upscaled frame at its source
    frame's own time (bursts and gaps kept), not at the container's average rate (which would play
    the clip 14 % short); a --max-fps cap passes frames by those times too."""
    from tests.conftest import variable_rate_video

    times = [0, 33, 67, 100, 400, 700, 1000, 1033, 1067, 1100, 1500, 2000, 2500, 3000, 3033]
    src = variable_rate_video(tmp_path / "vfr.mp4", times)
    common = ["-w", str(tiny_checkpoint(2)), "--backend", "torch", "--threads", "1", "--no-window", "-q", "--no-drop"]
    res = CliRunner().invoke(app, ["stream", "--source", str(src), "--output", str(tmp_path / "up.mp4"), *common])
    assert res.exit_code == 0, res.output
    assert frame_times_ms(tmp_path / "up.mp4") == pytest.approx(times, abs=1.0)
    # at a fixed rate (.avi: the clip's mean, 15 frames in 2.6 s, 5.769 fps; a slot is 173 ms) a burst
    # cannot keep its times, but every upscaled frame still goes in, a slot ahead, and the frames after
    # it catch up; none is shown before its own time (its slot: round(t x fps)), and the recording
    # ends two slots after the last one's (a burst of two there), 3.3 s for a 3.03 s clip
    res = CliRunner().invoke(app, ["stream", "--source", str(src), "--output", str(tmp_path / "up.avi"), *common])
    assert res.exit_code == 0, res.output
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "up.avi"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    kept = stored_frames(tmp_path / "up.avi")
    first = [i for i in range(len(kept)) if i == 0 or not np.array_equal(kept[i], kept[i - 1])]
    due = [round(t * fps / 1000) for t in times]
    assert fps == pytest.approx(5.769, abs=1e-3) and due == [0, 0, 0, 1, 2, 4, 6, 6, 6, 6, 9, 12, 14, 17, 17]
    assert first == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 18]  # 700 and 1500 ms one slot late, after bursts
    assert all(f >= d for f, d in zip(first, due)) and len(kept) == 19
    res = CliRunner().invoke(app, ["stream", "--source", str(src), "--output", str(tmp_path / "capped.mp4"),
                                   "--max-fps", "2", *common])
    assert res.exit_code == 0, res.output
    # never two frames closer than half a second of the source's own time (700 ms came late for the
    # 500 ms slot, so the next is at least 500 ms after it, not at 1000 to catch up), each at its time
    assert frame_times_ms(tmp_path / "capped.mp4") == pytest.approx([0, 700, 1500, 2000, 2500, 3000], abs=1.0)


def test_a_cut_off_file_source_is_said_to_end_short(tmp_path: Path, make_upscaler, caplog) -> None:
    """A recording cut off mid-copy (its container still lists every frame) streams what it has and
    says it ended short, rather than ending as if whole; a whole one says nothing of the kind."""
    import logging

    import cv2

    from srx.camera.sources import parse_source

    whole = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (48, 32))
    for img in frames(40, 32, 48):
        writer.write(img)
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 5])
    caplog.set_level(logging.WARNING, logger="srx")
    full = stream(parse_source(source=str(whole)), make_upscaler(2), [], drop=False)
    assert full.frames_out == 40 and "ended after" not in caplog.text
    short = stream(parse_source(source=str(cut)), make_upscaler(2), [], drop=False)
    assert 0 < short.frames_out < 30 and short.stopped_by == "end-of-input"
    assert f"ended after {short.frames_in} of the 40 frames its container lists (cut off or damaged?)" in caplog.text
    assert {"event": "cut-short", "frames": short.frames_in, "listed": 40} in [
        {k: v for k, v in e.items() if k != "t"} for e in short.events]  # --json-summary says so too
    assert not [e for e in full.events if e["event"] == "cut-short"]


def test_frame_size_change_midway(tmp_path: Path, make_upscaler) -> None:
    import cv2

    imgs = frames(4, 20, 24) + frames(4, 28, 36, seed=9)
    pngs, mkv, sink = PngSequenceOutput(tmp_path / "seq"), VideoFileOutput(tmp_path / "out.mkv"), ThumbnailSink()
    summary = stream(SourceSpec.from_frames(imgs), make_upscaler(2), [pngs, mkv, sink], drop=False)
    assert summary.frames_out == 8 and summary.output_size == [72, 56] and sink.closed
    assert sink.sizes == [(48, 40)] * 4 + [(72, 56)] * 4
    shapes = [cv2.imread(str(p)).shape for p in sorted((tmp_path / "seq").glob("*.png"))]
    assert shapes == [(40, 48, 3)] * 4 + [(56, 72, 3)] * 4  # PNG frames keep every size
    back = read_video(tmp_path / "out.mkv")
    assert len(back) == 8 and {b.shape for b in back} == {(40, 48, 3)}  # video keeps the first size


def test_stop_event_and_bounds(make_upscaler) -> None:
    import itertools

    still = frames(1, 24, 32)[0]
    spec = SourceSpec.from_frames(lambda: itertools.repeat(still), fps=30.0)
    upscaler = make_upscaler(2)
    assert stream(spec, upscaler, [], max_frames=3).stopped_by == "max-frames"
    assert stream(spec, upscaler, [], duration=0.3).stopped_by == "duration"
    stop = threading.Event()
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(s=stream(spec, upscaler, [], stop_event=stop)))
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join(10)
    assert not t.is_alive() and result["s"].stopped_by == "interrupted"
    assert not upscaler.runner.is_active  # stream() activated the runner, so it released it


class _DemoRun:
    """`srx stream --demo --loop` through a tiny model in a process of its own, recording to `out`
    (more options in `extra`): its status lines gathered as they come, for tests that signal it."""

    def __init__(self, tmp_path: Path, checkpoint: Path, out: Path, *extra: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "srx", "stream", "--demo", "--loop", "-w", str(checkpoint), "--scale", "2",
             "--backend", "torch", "--threads", "1", "--no-window", "--output", str(out), *extra],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._out: list[str] = []
        self._readers = [threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True),
                         threading.Thread(target=lambda: self._out.extend(self.proc.stdout), daemon=True)]
        for reader in self._readers:
            reader.start()

    def finish(self, timeout: float) -> str:
        """Its stdout once it has ended, with every stderr line in `lines` (communicate() read stderr
        too, racing the thread that gathers it, so lines went missing)."""
        self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return "".join(self._out)

    def wait_for(self, seen: Callable[[str], bool], what: str) -> None:
        wait_until(lambda: seen("".join(self.lines)) or self.proc.poll() is not None, 120, what)

    def wait_for_frames(self) -> None:
        self.wait_for(lambda text: "frames" in text and "fps" in text, "the first status line")

    def __enter__(self) -> "_DemoRun":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT (Ctrl-C)", "SIGHUP"])
def test_a_stop_signal_finalises_the_recording(tmp_path: Path, tiny_checkpoint, sig) -> None:
    out = tmp_path / "rec.mkv"
    with _DemoRun(tmp_path, tiny_checkpoint(2), out) as run:
        run.wait_for_frames()
        run.proc.send_signal(sig)
        stdout = run.finish(timeout=30)
    assert run.proc.returncode == 0, "".join(run.lines)
    assert "stopped by an interrupt (Ctrl-C, SIGTERM or SIGHUP)" in stdout and "Traceback" not in "".join(run.lines)
    back = read_video(out)
    assert len(back) > 0 and back[0].shape == (360, 640, 3)
    assert not list(tmp_path.glob(".rec.partial*"))


@pytest.mark.parametrize("login_shell", [False, True], ids=["alone", "job-of-bash"])
def test_a_terminal_that_hangs_up_stops_the_run_cleanly(tmp_path: Path, tiny_checkpoint, login_shell: bool) -> None:
    """The SSH session srx was started from closes: its terminal hangs up (the kernel sends SIGHUP to
    the session, and writes to the terminal fail with EIO). A real pseudo-terminal whose other end is
    closed, srx alone on it or a job of an interactive bash (SIGHUP twice): the recording is
    finalised and --json-summary written, though nothing can be printed."""
    from tests.conftest import srx_until_hangup

    out, summary = tmp_path / "rec.mkv", tmp_path / "summary.json"
    status, seen = srx_until_hangup(
        ["stream", "--demo", "--loop", "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch",
         "--threads", "1", "--no-window", "--output", str(out), "--json-summary", str(summary)],
        ready=b"fps", cwd=REPO, env={"OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")},
        login_shell=login_shell)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, seen[-2000:])  # not killed by SIGHUP
    assert json.loads(summary.read_text())["stopped_by"] == "interrupted"
    back = read_video(out)
    assert len(back) > 0 and back[0].shape == (360, 640, 3)
    assert not list(tmp_path.glob(".rec.partial*"))


def test_a_run_started_under_nohup_outlives_its_terminal(tmp_path: Path, tiny_checkpoint) -> None:
    """`nohup srx stream ...`: the process starts with SIGHUP ignored, which srx leaves as it is (it
    took it over, and stopped at the hangup nohup was meant to survive); SIGTERM still stops it."""
    out = tmp_path / "rec.mkv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srx", "stream", "--demo", "--loop", "-w", str(tiny_checkpoint(2)), "--scale", "2",
         "--backend", "torch", "--threads", "1", "--no-window", "--output", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what nohup does before it runs srx
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: "fps" in "".join(lines) or proc.poll() is not None, 120, "the first status line")
        proc.send_signal(signal.SIGHUP)
        time.sleep(2.0)
        assert proc.poll() is None, "".join(lines)  # still streaming
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    reader.join(10)
    assert proc.returncode == 0, "".join(lines)
    assert "stopped by an interrupt" in "".join(lines) and len(read_video(out)) > 0


def test_a_second_sigterm_while_stopping_still_finishes_the_run(tmp_path: Path, tiny_checkpoint) -> None:
    """A supervisor or a user that sends SIGTERM twice: the second, while the recordings are being
    finalised and the summary written (at any moment after the first), is noted and ignored, so the
    run ends as the first asked (the summary, --json-summary, exit 0), not killed half-way (143)."""
    import json

    for gap in (0.0, 0.05, 0.3):
        out, summary = tmp_path / f"rec{gap}.mkv", tmp_path / f"run{gap}.json"
        with _DemoRun(tmp_path, tiny_checkpoint(2), out, "--json-summary", str(summary)) as run:
            run.wait_for_frames()
            run.proc.send_signal(signal.SIGTERM)
            time.sleep(gap)
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGTERM)
            stdout = run.finish(timeout=30)
        assert run.proc.returncode == 0, (gap, "".join(run.lines))
        assert "stopped by an interrupt" in stdout and json.loads(summary.read_text())["stopped_by"] == "interrupted"
        assert len(read_video(out)) > 0 and "Traceback" not in "".join(run.lines)

def test_a_second_sigterm_while_finishing_is_noted_without_v(caplog) -> None:
    """The README says a second SIGTERM while a stream finishes is noted and ignored: noted as a
    warning, which the CLI shows without -v (it was INFO, so nothing appeared)."""
    import logging

    from srx.camera.stream import _WindDown

    handler = _WindDown({signal.SIGTERM: signal.SIG_DFL})
    handler.stopping = True  # the loop is over: the outputs and the summary are being finished
    with caplog.at_level(logging.WARNING, logger="srx"):
        handler(signal.SIGTERM, None)  # ignored: SIG_DFL would have ended this process
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "already stopping: finishing the outputs and the summary")]
    # and while the loop itself is still stopping (before the summary), the same word (it said nothing)
    from srx.camera.stream import _Signals

    caplog.clear()
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="srx"):
        signals = _Signals(stop)
        signals._handle(signal.SIGTERM, None)  # the first: the stream stops
        signals._handle(signal.SIGTERM, None)  # a second while it stops
    assert stop.is_set() and [r.getMessage() for r in caplog.records] == [
        "already stopping: finishing the outputs and the summary"]


def test_a_recording_cut_off_by_a_kill_plays_up_to_its_last_second(tmp_path: Path, tiny_checkpoint) -> None:
    """SIGKILL, a crash or a power cut never lets srx finish a recording: it stays under its
    temporary name, and an .mp4 there is written a fragment a second, so it plays up to about its
    last second (a plain MP4's index comes at the end, and without it nothing played). The run a
    supervisor restarts with the same --output keeps it (it wrote over it, with no word) and says
    where it is."""
    out = tmp_path / "rec.mp4"
    with _DemoRun(tmp_path, tiny_checkpoint(2), out) as run:
        # the demo runs at 10 fps: past 35 frames, three one-second fragments are on disk
        run.wait_for(lambda text: any(int(n) >= 35 for n in re.findall(r"frames (\d+)", text)), "35 frames recorded")
        run.proc.kill()
        run.proc.wait(10)
    assert not out.exists()  # never a cut-off file under the real name
    [partial] = tmp_path.glob(".rec.partial*.mp4")
    left = partial.read_bytes()
    frames_back = read_video(partial)
    assert len(frames_back) >= 10 and frames_back[0].shape == (360, 640, 3)
    with _DemoRun(tmp_path, tiny_checkpoint(2), out, "--max-frames", "3") as again:
        again.finish(timeout=120)
    log = "".join(again.lines)
    assert again.proc.returncode == 0, log
    assert log.count(str(partial)) == 1 and "up to where that run stopped" in log
    assert partial.read_bytes() == left and len(read_video(out)) == 3


def _engine_like(checkpoint: Path):
    """The real PyTorch model behind the all-GPU frame path's interface, as TensorRTRunner offers it
    (infer_frame takes the whole BGR frame; input_hw_range is its profile), here on the CPU."""
    from srx.runtime.torch_runner import TorchRunner

    class EngineLike(TorchRunner):
        backend = "engine-like"

        def __init__(self) -> None:
            super().__init__(checkpoint)
            self.input_hw_range = ((20, 20), (64, 64))
            self.frame_calls: list[tuple[int, ...]] = []
            self.frame_seconds: list[float] = []
            self.y_calls = 0

        @property
        def frames_on_device(self) -> bool:
            return self.is_active

        def infer_impl(self, lr_y: np.ndarray) -> np.ndarray:
            self.y_calls += 1
            return super().infer_impl(lr_y)

        def infer_frame(self, bgr: np.ndarray) -> np.ndarray:
            start = time.perf_counter()
            out = super().infer_frame(bgr)
            self.frame_seconds.append(time.perf_counter() - start)
            self.frame_calls.append(bgr.shape)
            return out

    return EngineLike()


def test_stream_uses_the_runners_frame_path_and_profile(tiny_checkpoint) -> None:
    """stream() wraps the runner to time it; the wrapper must pass on infer_frame (so the GPU colour
    kernels run), frames_on_device, and input_hw_range (frames wider than the tile size but within
    the engine's profile run whole; frames below its minimum are refused)."""
    from srx.errors import SrxError
    from srx.runtime.upscaler import Upscaler

    runner = _engine_like(tiny_checkpoint(2))
    upscaler = Upscaler(runner, 2, tile=16)  # 24x40 frames exceed the tile but fit the profile
    class KeepFrames(ThumbnailSink):
        frames: list[np.ndarray] = []

        def write(self, frame: np.ndarray) -> bool:
            self.frames.append(frame.copy())
            return super().write(frame)

    sink = KeepFrames()
    clip = frames(4, 24, 40)
    summary = stream(SourceSpec.from_frames(clip), upscaler, [sink], drop=False)
    assert summary.frames_out == 4
    assert runner.frame_calls == [(24, 40, 3)] * 4 and runner.y_calls == 0  # whole frames, through infer_frame
    assert upscaler.runner is runner  # the wrapper is taken off again
    # the frames out are the model's: what the Upscaler's own colour path makes of them, within a level
    with Upscaler(_engine_like(tiny_checkpoint(2)), 2, tile=16) as plain:
        plain.runner.input_hw_range = None
        for got, frame in zip(sink.frames, clip):
            assert np.abs(got.astype(int) - plain.upscale(frame)).max() <= 1
    # infer_frame's time is the model stage's: the stage covers (nearly) all of it, not the colour stages
    assert summary.stage_ms["infer"]["mean"] >= 0.9 * 1000 * float(np.mean(runner.frame_seconds))
    assert summary.timing_note == ""

    with pytest.raises(SrxError, match="engine accepts 20x20"):  # the engine's minimum size still holds
        stream(SourceSpec.from_frames(frames(2, 12, 16)), Upscaler(_engine_like(tiny_checkpoint(2)), 2), [], drop=False)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_landing_inside_the_first_ones_stop_does_not_deadlock(second) -> None:
    """A second signal that arrives while the first handler is inside Event.set() (which holds the
    event's own lock) once called set() again and waited on that lock for good: a stream that
    ignored every later SIGTERM. Here the second signal is delivered at exactly that point."""
    from srx.camera.stream import _Signals

    class SignalInsideSet(threading.Event):
        def set(self) -> None:
            with self._cond:
                if not getattr(self, "nested", False):
                    self.nested = True
                    try:
                        signals._handle(second, None)
                    except KeyboardInterrupt:  # a second Ctrl-C interrupts at once, as it should
                        self.interrupted = True
                self._flag = True
                self._cond.notify_all()

    stop = SignalInsideSet()
    signals = _Signals(stop)
    worker = threading.Thread(target=signals._handle, args=(signal.SIGTERM, None), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "the handler deadlocked on the stop event's lock"
    assert stop.is_set() and getattr(stop, "interrupted", False) == (second == signal.SIGINT)


def recorded_frames(folder: Path) -> list[np.ndarray]:
    import cv2

    return [cv2.imread(str(p)) for p in sorted(folder.glob("frame_*.png"))]


def test_a_placeholder_before_the_first_frame_does_not_set_the_recordings_size(tmp_path: Path) -> None:
    """A camera that is down when srx starts shows no-signal frames in a made-up size; recordings (whose
    size is fixed by their first frame) open on the first real frame instead, and a later frame of
    another shape is fitted in with its aspect ratio kept, not stretched. PNG frames, which keep each
    frame's size, start at the first real frame too (the README says so of every recording)."""
    import av

    from srx.camera.stream import _write_all

    out, pngs = recording_output(tmp_path / "door.mkv"), recording_output(f"{tmp_path / 'door'}/")
    thumbs = ThumbnailSink()
    placeholder = np.full((360, 640, 3), 40, np.uint8)
    assert _write_all([out, pngs, thumbs], placeholder, 1, 0.0, sized=False)
    real = np.zeros((90, 120, 3), np.uint8)
    real[:, :60] = 255  # left half white
    assert _write_all([out, pngs, thumbs], real, 1, 0.5)
    tall = np.full((120, 40, 3), 200, np.uint8)  # a camera back in portrait: 1:3, not 4:3
    assert _write_all([out, pngs, thumbs], tall, 1, 1.0)
    out.close()
    pngs.close()
    assert thumbs.sizes == [(640, 360), (120, 90), (40, 120)]  # a viewer sees every frame as it is
    # PNG frames, a recording too, start at the first real frame, each frame in its own size
    assert [f.shape for f in recorded_frames(tmp_path / "door")] == [(90, 120, 3), (120, 40, 3)]
    with av.open(str(tmp_path / "door.mkv")) as box:
        back = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    assert len(back) == 2 and back[0].shape == (90, 120, 3)
    assert np.array_equal(back[0], real)
    # the portrait frame, 30 wide at 90 high, centred; black bars either side
    assert back[1][:, :40].max() == 0 and back[1][:, 80:].max() == 0
    assert abs(int(back[1][45, 60, 0]) - 200) <= 2


def test_a_fixed_rate_recording_never_shows_a_frame_before_its_time(tmp_path: Path, tiny_checkpoint) -> None:
    """An .avi (MJPEG at a fixed rate) fills the slots of frames skipped by --max-fps with the frame
    before, so each upscaled frame first appears in the slot of its own source time, as in the .mkv."""
    from tests.conftest import silent_video

    clip = silent_video(tmp_path / "clip.avi", 20, (40, 32), fps=10)  # 20 distinct pictures, 100 ms apart
    common = ["-w", str(tiny_checkpoint(2)), "--backend", "torch", "--threads", "1", "--no-window", "-q",
              "--no-drop", "--max-fps", "2"]
    for name in ("view.avi", "exact.mkv"):
        res = CliRunner().invoke(app, ["stream", "--source", str(clip), "--output", str(tmp_path / name), *common])
        assert res.exit_code == 0, res.output
    shown = stored_frames(tmp_path / "view.avi")  # 10 fps: one slot per source frame
    exact = stored_frames(tmp_path / "exact.mkv")  # the frames passed, once each: source frames 0, 5, 10, 15
    assert len(exact) == 4 and len(shown) >= 16
    first_slot = [next(i for i, f in enumerate(shown) if np.abs(f.astype(int) - e).mean() < 3) for e in exact]
    assert first_slot == [0, 5, 10, 15]


def test_a_one_frame_recording_says_how_long_it_plays(tmp_path: Path, caplog) -> None:
    """One picture streamed into a recording plays for one frame's time (1/25 s); the log says
    so, not '0.0 s'."""
    import logging

    import av

    caplog.set_level(logging.INFO, logger="srx")
    out = VideoFileOutput(tmp_path / "one.mp4", fps=25)
    assert out.write(np.full((48, 64, 3), 90, np.uint8), 0.0)
    out.close()
    assert f"recorded 1 frame, 0.04 s, each at its time to {tmp_path / 'one.mp4'}" in caplog.text
    with av.open(str(tmp_path / "one.mp4")) as box:
        assert box.duration / av.time_base == pytest.approx(0.04, abs=1e-3)


def test_a_recording_whose_writer_did_not_open_says_so_not_that_no_frame_came(tmp_path: Path, caplog) -> None:
    """Frames were given to a recording but its writer could not be opened (here H.264 refuses a
    frame one pixel high; on a small box PyAV that fails to load): the log says the writer could not
    be opened and why, not 'no frame was upscaled for it', which the summary's frames out belie. A
    recording that never got a frame still says that."""
    from srx.camera.stream import _write_all

    out = VideoFileOutput(tmp_path / "thin.mp4")
    assert _write_all([out], np.zeros((1, 64, 3), np.uint8), 1, 0.0)  # the stream goes on without it
    assert out.failed is not None and "too small for an H.264 video" in out.failed
    said = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert said == [f"{tmp_path / 'thin.mp4'} not written: its writer could not be opened: {out.failed}"], said
    assert not (tmp_path / "thin.mp4").exists()
    caplog.clear()
    VideoFileOutput(tmp_path / "never.mp4").close()
    assert f"{tmp_path / 'never.mp4'} not written: no frame was upscaled for it" in caplog.text


def test_no_drop_reads_a_file_at_its_own_rate_for_a_published_stream(tmp_path: Path, make_upscaler) -> None:
    """--no-drop reads a file as fast as the model takes it (for measuring), but a published stream
    (an output that is `paced`, as RTSP publishing is) is played and recorded by its receivers as it
    arrives: the file is read at its own rate for it, so it does not play fast. Every frame still
    goes out, none dropped."""
    from srx.camera.outputs import Output
    from srx.camera.stream import paced_for
    from tests.conftest import silent_video

    class Feed(Output):
        paced = True

        def __init__(self) -> None:
            self.arrived: list[float] = []

        def write(self, frame: np.ndarray) -> bool:
            self.arrived.append(time.monotonic())
            return True

    clip = silent_video(tmp_path / "door.avi", 8, (64, 48), fps=10)
    feed = Feed()
    summary = stream(SourceSpec("file", str(clip)), make_upscaler(2), [feed], drop=False, quiet=True)
    assert summary.frames_out == 8 == len(feed.arrived) and summary.dropped == 0
    # frame k is due 100 ms after frame k-1: 7 intervals
    assert feed.arrived[-1] - feed.arrived[0] >= 0.65
    # the rule: only --no-drop with a paced output changes the capture's pacing; an image folder never
    recording = VideoFileOutput(tmp_path / "r.mkv")
    assert paced_for([recording], drop=False, every_frame_why=None) is None
    assert paced_for([recording, feed], drop=False, every_frame_why=None) is True
    assert paced_for([feed], drop=True, every_frame_why=None) is None
    assert paced_for([feed], drop=False, every_frame_why="a folder of images") is None


def test_a_recording_deleted_while_it_runs_starts_again(tmp_path: Path, caplog, monkeypatch) -> None:
    """A clean-up job deletes the recording mid-run: srx let go of the deleted file (its space came
    back only at exit, and ls could not see what filled the disk) and records again under its name,
    the frames from then on; the log says so."""
    import logging

    caplog.set_level(logging.INFO, logger="srx")
    monkeypatch.setattr(VideoFileOutput, "CHECK_S", 0.0)  # look at every frame, not once a second
    out = VideoFileOutput(tmp_path / "cam.mkv", fps=10)
    pictures = frames(6, 24, 32)
    for i, f in enumerate(pictures[:3]):
        assert out.write(f, i / 10)
    out.tmp.unlink()  # rm .cam.partial.mkv
    for i, f in enumerate(pictures[3:], start=3):
        assert out.write(f, i / 10)
    out.close()
    assert f"{tmp_path / 'cam.mkv'} was deleted while recording (the 3 frames in it went with it)" in caplog.text
    back = read_video(tmp_path / "cam.mkv")
    assert len(back) == 3 and all(np.array_equal(b, f) for b, f in zip(back, pictures[3:]))


def test_a_source_that_fails_mid_run_still_gets_its_summary(tmp_path: Path, tiny_checkpoint) -> None:
    """A looping file moved away mid-run ends a one-source stream: the recording is finalised, the
    summary and --json-summary say what happened, and then one error line (exit 1) says why. The
    error used to end the run before the summary, which was lost."""
    from tests.conftest import silent_video

    clip = silent_video(tmp_path / "door.avi", 10, (48, 36), fps=10)
    summary_file = tmp_path / "run.json"
    moved = threading.Timer(1.5, lambda: clip.rename(tmp_path / "away.avi"))
    moved.start()
    try:
        res = CliRunner().invoke(app, ["stream", "--source", str(clip), "--loop", "-w", str(tiny_checkpoint(2)),
                                       "--backend", "torch", "--threads", "1", "--no-window", "-q", "--duration", "60s",
                                       "--output", str(tmp_path / "rec.mkv"), "--json-summary", str(summary_file)])
    finally:
        moved.cancel()
    assert res.exit_code == 1
    assert "stopped when its source failed" in res.output and "source failed: file" in res.output
    assert_one_error_line(res.output, f"file {clip} was moved or deleted during the run")
    data = json.loads(summary_file.read_text())
    assert data["stopped_by"] == "source-failed" and "was moved or deleted" in data["source_error"]
    assert data["frames_out"] >= 10 and len(read_video(tmp_path / "rec.mkv")) == data["frames_out"]


def test_two_outputs_record_the_same_frames_and_one_given_twice_is_refused(tmp_path: Path, tiny_checkpoint) -> None:
    """--output repeated records (or publishes) to each: a lossless copy to measure and an .mp4 to
    watch from one run. A second --output once kept only the last, silently; the same one twice is
    one error line, before the model loads."""
    src = tmp_path / "in.mkv"
    write_ffv1(src, frames(6, 30, 40))
    common = ["stream", "--source", str(src), "--no-drop", "-w", str(tiny_checkpoint(2)), "--backend", "torch",
              "--threads", "1", "--no-window", "-q"]
    res = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "exact.mkv"), "-o", str(tmp_path / "view.mp4")])
    assert res.exit_code == 0, res.output
    exact, view = read_video(tmp_path / "exact.mkv"), read_video(tmp_path / "view.mp4")
    from srx.protocol import psnr

    # each .mp4 frame is x264's copy of the lossless one of the same moment, not of its neighbour
    assert len(exact) == len(view) == 6
    assert all(psnr(e, v) > psnr(exact[(i + 1) % 6], v) + 3 for i, (e, v) in enumerate(zip(exact, view)))
    twice = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "a.mkv"), "--output", str(tmp_path / "a.mkv")])
    assert twice.exit_code == 1 and "backend:" not in twice.output
    assert_one_error_line(twice.output, f"--output {tmp_path / 'a.mkv'} given more than once")


def test_a_stream_out_of_memory_prints_its_summary_then_one_error_line(tmp_path: Path, tiny_checkpoint) -> None:
    """Under a real address-space limit (tests.conftest.run_srx_with_room) a frame too large for
    the memory left ends the stream as a failed source does: the summary and --json-summary
    (stopped_by out-of-memory), then one `error:` line saying what the frame needs; it was a
    cv2.error traceback with neither."""
    from tests.conftest import run_srx_with_room, silent_video

    weights = tiny_checkpoint()
    silent_video(tmp_path / "big.avi", 3, (2000, 2000))
    res = run_srx_with_room(["stream", "--source", "big.avi", "-w", str(weights), "--threads", "1", "--no-window",
                             "-q", "--no-drop", "--json-summary", "s.json"], 300 << 20, tmp_path)
    assert res.returncode == 1, res.stderr
    assert "stream summary:" in res.stdout and "stopped when the upscale ran out of memory" in res.stdout
    assert_one_error_line(res.stderr, "out of memory upscaling a 2000x2000 image x3 (its 6000x6000 output needs about")
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["stopped_by"] == "out-of-memory" and written["run_error"].startswith("out of memory upscaling")


def _stream_child(tmp_path: Path, checkpoint: Path, *args: str) -> subprocess.CompletedProcess:
    """`srx stream --demo --no-drop` through a tiny model in a process of its own (a crash there is a
    failed test, not the end of pytest): the CompletedProcess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "srx", "stream", "--demo", "--no-drop", "-w", str(checkpoint),
                           "--scale", "2", "--backend", "torch", "--threads", "1", "--no-window", "-q", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_recordings_onto_a_full_disk_fail_alone_and_keep_what_was_there(tmp_path: Path, tiny_checkpoint,
                                                                          small_disk) -> None:
    """A box whose card is full when srx starts (a service restarted): the .mp4 recording's first write
    fails, and closing it crashed the process (exit 139: no summary, the healthy .mkv on another disk
    left unfinished); the PNG output's failed empty folder replaced the complete frames of the run
    before. Now both fail alone, named after the summary (exit 1); the other recording is whole; the
    earlier recording and frames stay as they were; and the failed outputs leave nothing behind (an
    empty partial file plays nothing), not even a 'wrote 0 frames'."""
    card = small_disk(3072, "card")
    earlier = PngSequenceOutput(card / "frames")  # the run before: two complete frames
    for f in frames(2, 24, 32):
        earlier.write(f)
    earlier.close()
    (card / "rec.mp4").write_bytes(b"the recording of the run before")
    fill_disk(card)
    res = _stream_child(tmp_path, tiny_checkpoint(2), "--max-frames", "10", "--output", str(card / "rec.mp4"),
                        "--output", f"{card / 'frames'}/", "--output", str(tmp_path / "ok.mkv"),
                        "--json-summary", str(tmp_path / "run.json"))
    assert res.returncode == 1, (res.returncode, res.stderr)  # 139 (-11): the crash
    assert "stream summary" in res.stdout and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: 2 outputs failed: ") and "No space left on device" in errors[0]
    assert len(read_video(tmp_path / "ok.mkv")) == 10
    assert json.loads((tmp_path / "run.json").read_text())["frames_out"] == 10
    assert (card / "rec.mp4").read_bytes() == b"the recording of the run before"
    assert [np.array_equal(a, b) for a, b in zip(recorded_frames(card / "frames"), frames(2, 24, 32))] == [True, True]
    assert sorted(p.name for p in card.iterdir()) == ["filler", "frames", "rec.mp4"], res.stderr  # no partial, no lock
    assert "wrote 0 frames" not in res.stderr and "libpng" not in res.stderr


def recorded_frames(folder: Path) -> list[np.ndarray]:
    import cv2

    return [cv2.imread(str(p)) for p in sorted(folder.glob("frame_*.png"))]


def test_a_recording_that_fills_the_disk_is_kept_under_its_partial_name(tmp_path: Path, tiny_checkpoint,
                                                                        small_disk) -> None:
    """The disk fills mid-run. An .avi (MJPEG, written through OpenCV, which says nothing of a failed
    write) came out cut short under the real name, 'recorded 100 frames' and exit 0; a PNG sequence
    swapped its part-filled folder in over the complete one of the run before. Now each fails (exit
    1, named after the summary), the file or folder it was to replace stays as it was, and what it
    wrote is kept under its partial name, named with how many frames went to it."""
    card = small_disk(3072, "card")
    earlier = PngSequenceOutput(card / "frames")
    for f in frames(2, 24, 32):
        earlier.write(f)
    earlier.close()
    (card / "rec.avi").write_bytes(b"the recording of the run before")
    for output in ("rec.avi", "frames/"):
        res = _stream_child(tmp_path, tiny_checkpoint(2), "--max-frames", "100", "--output", f"{card}/{output}")
        assert res.returncode == 1, (output, res.returncode, res.stderr)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "1 output failed" in errors[0] and "No space left on device" in errors[0], errors
        kept = re.search(r"recorded until then is in (\S+?)/? \((\d+) frames? went to it", res.stderr)
        assert kept, res.stderr
        partial, count = Path(kept[1]), int(kept[2])
        assert 0 < count < 100 and partial.parent == card and partial.name.startswith("." + output.strip("/").split(".")[0])
        assert partial.exists() and "libpng" not in res.stderr
        if output == "rec.avi":
            # it plays up to where the disk took no more (the frame it cut off, flushed in part, may decode too)
            assert 0 < len(read_video(partial)) <= count + 1
        else:
            assert len(list(partial.glob("frame_*.png"))) == count
        assert (card / "rec.avi").read_bytes() == b"the recording of the run before"
        assert [np.array_equal(a, b) for a, b in zip(recorded_frames(card / "frames"), frames(2, 24, 32))] == [True, True]
        (shutil.rmtree if partial.is_dir() else Path.unlink)(partial)


def test_a_second_run_recording_to_the_same_place_is_refused(tmp_path: Path, tiny_checkpoint) -> None:
    """Two runs recording to one --output at once (a second service, a cron job while the first runs):
    both renamed onto the same name and one recording vanished without a word, and the second run
    named the first's live partial file as what 'an earlier run' left. Now a recording claims its
    target while it runs (a lock beside it): a second run is refused at its start, naming the target
    and the process that records there; a segmented recording is claimed by its base name, a PNG
    folder as a file is; the claim is gone with the run."""
    cam, folder = tmp_path / "cam.mp4", tmp_path / "frames"
    with _DemoRun(tmp_path, tiny_checkpoint(2), cam, "--output", f"{folder}/", "--segment", "1h") as first:
        first.wait_for_frames()
        assert list(tmp_path.glob(".cam-*.partial.*.mp4")) and list(tmp_path.glob(".frames.partial.*"))
        for args in (["--output", str(cam), "--segment", "1h"], ["--output", str(cam)],
                     ["--output", str(tmp_path / "new.mkv"), "--output", f"{folder}/"]):
            res = CliRunner().invoke(app, ["stream", "--demo", "--no-window", "--max-frames", "1", *args])
            target = str(cam) if str(cam) in args else f"{folder}/"
            assert_one_error_line(res.output, f"--output {target}: another srx process (pid {first.proc.pid}) records to it")
            assert "earlier run" not in res.output
        assert not (tmp_path / "new.mkv").exists() and not (tmp_path / ".new.mkv.lock").exists()
        first.proc.send_signal(signal.SIGTERM)
        first.finish(timeout=60)
    assert first.proc.returncode == 0, "".join(first.lines)
    assert [p.name for p in tmp_path.glob(".*.lock")] == []  # gone with the run
    assert len(list(tmp_path.glob("cam-*.mp4"))) == 1 and list(folder.glob("frame_*.png"))


def test_a_recordings_lock_that_is_removed_while_it_runs_is_taken_again(tmp_path: Path, tiny_checkpoint) -> None:
    """The lock file went while the run recorded (an age-based clean-up, `find -mtime +7 -delete`, or the
    folder deleted, which the recording survives): a second run was then let in, and the two renamed
    over each other's files. The run now takes its lock again within a second, says so, and a second
    run is refused; its end removes only its own lock file."""
    cam = tmp_path / "rec" / "cam.mkv"
    with _DemoRun(tmp_path, tiny_checkpoint(2), cam, "--segment", "1h") as first:
        first.wait_for_frames()
        lock = cam.parent / ".cam.mkv.lock"
        for gone in ("the lock file", "the folder"):
            shutil.rmtree(cam.parent) if gone == "the folder" else lock.unlink()
            wait_until(lock.exists, 30, f"the lock taken again after {gone} went")
            res = CliRunner().invoke(app, ["stream", "--demo", "--no-window", "--max-frames", "1", "--output", str(cam)])
            assert_one_error_line(res.output, f"--output {cam}: another srx process (pid {first.proc.pid}) records to it")
        first.proc.send_signal(signal.SIGTERM)
        first.finish(timeout=60)
    assert "its lock file" in "".join(first.lines) and "it holds it again" in "".join(first.lines)
    assert not lock.exists()


def test_a_source_that_cannot_be_opened_leaves_its_outputs_unclaimed(tmp_path: Path, make_upscaler, caplog) -> None:
    """A camera that is down when a stream starts: the recording's lock file and the folders made for
    it stayed (a service restarting against it left them behind), and a library caller that tried
    again in the same process was refused by its own earlier attempt. Nor is each output said to be
    'not written: no frame was upscaled for it' before the error that says why (it was)."""
    from srx.errors import SrxError

    upscaler = make_upscaler(2)
    target = tmp_path / "new" / "d1" / "cam.mkv"
    for attempt in range(2):
        with pytest.raises(SrxError, match="cannot open source|does not exist"):
            stream(str(tmp_path / "missing.avi"), upscaler, [VideoFileOutput(target)], max_frames=3, open_timeout=1)
    assert not (tmp_path / "new").exists()
    assert "not written" not in caplog.text, caplog.text


def test_the_runs_time_ends_at_its_stop_not_after_its_outputs_close(make_upscaler) -> None:
    """The summary's time (`wall_s`, "in N s") is the run's, from its start to its stop: an output
    that takes long to finish (a recording's last write to a slow disk; 2 s here) is not in it."""

    class SlowToClose(ThumbnailSink):
        def close(self) -> None:
            time.sleep(2.0)
            super().close()

    sink = SlowToClose()
    summary = stream(SourceSpec.from_frames(frames(5, 24, 32), fps=25.0), make_upscaler(2), [sink])
    assert sink.closed and summary.frames_out == 5
    assert summary.wall_s < 1.5, summary.format()


@pytest.mark.parametrize("size", [(480, 360), (320, 180), (1920, 1080)])
def test_a_no_signal_frames_text_fits_the_frame(size: tuple[int, int]) -> None:
    """A small camera's no-signal frame cut its address and the reconnect's state off at the right
    edge (a trial's 480x360: `door: rtsp://admin:***@127.0.0.1:8601/`): each line is made smaller,
    then cut with "...", to fit."""
    import cv2

    from srx.camera.outputs import fit_text, nosignal_frame

    source = "door: rtsp://admin:***@camera-at-the-north-gate.example.com:8554/Streaming/Channels/101"
    status = "reconnecting: attempt 12, next in 30 s"
    w, h = size
    fs = max(0.5, h / 360)
    for text in (source, f"14:40:08  {status}"):
        fitted, scale = fit_text(text, 0.7 * fs, int(w * 0.9))
        width = cv2.getTextSize(fitted, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(round(2 * scale))))[0][0]
        assert width + 8 <= int(w * 0.9), (text, fitted, scale)
        assert fitted == text or fitted.endswith("...")
        assert fitted[:12] == text[:12]  # what it is about stays readable
    frame = nosignal_frame(size, source, status)
    assert frame.shape == (h, w, 3)
    edge = frame[:, int(w * 0.96):]  # the labels' black boxes end before the right edge
    assert not (edge.max(axis=2) == 0).any()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_before_the_stream_began_ends_it_cleanly(tmp_path, tiny_checkpoint, sig) -> None:
    """`systemctl stop` just after a start, while the camera still opens (or the model loads): the
    run ends at once through its cleanup with exit 0 and a line that says so, as a stop during the
    stream does. It was exit 143 (SIGTERM; systemd counts it a failure) or 130 (Ctrl-C), no line."""
    import socket

    hole = socket.socket()  # a camera whose address takes the connection and never answers
    hole.bind(("127.0.0.1", 0))
    hole.listen(4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srx", "stream", "--source", f"rtsp://127.0.0.1:{hole.getsockname()[1]}/live",
         "-w", str(tiny_checkpoint(2)), "--scale", "2", "--backend", "torch", "--threads", "1", "--no-window",
         "--open-timeout", "60", "--output", str(tmp_path / "rec.mp4"), "--json-summary", str(tmp_path / "s.json")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        taken: list = []
        wait_until(lambda: len(_connections(hole, taken)) > 0 or proc.poll() is not None, 120, "srx to try the camera")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        hole.close()
    name = signal.Signals(sig).name
    assert proc.returncode == 0, out
    assert f"stopped before the stream began ({name}): nothing was upscaled or recorded" in out, out
    assert "Traceback" not in out and list(tmp_path.glob("*rec*")) == []
    # its --json-summary says so (none was written: a script reading it after exit 0 found nothing)
    assert json.loads((tmp_path / "s.json").read_text()) == {"stopped_by": "interrupted", "signal": name,
                                                             "began": False, "frames_in": 0, "frames_out": 0}


def test_a_stop_while_the_command_reads_its_options_is_one_before_the_stream(monkeypatch) -> None:
    """The stop handlers came only after the command had loaded its modules and read its options:
    seconds on a small box, in which SIGTERM was exit 143 and Ctrl-C 130, nothing said. Now from the
    command's start; the line goes to stderr, the --json-summary - JSON to stdout."""
    from typer.testing import CliRunner

    import srx.camera.multi
    from srx.cli import app

    def stopped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)  # the handler raises in this thread before it returns
        raise AssertionError("the stop did not end the run")

    monkeypatch.setattr(srx.camera.multi, "parse_sources", stopped)
    res = CliRunner().invoke(app, ["stream", "--demo", "--no-window", "--json-summary", "-"])
    assert res.exit_code == 0, res.output
    assert "stopped before the stream began (SIGTERM): nothing was upscaled or recorded" in res.stderr
    assert json.loads(res.stdout)["began"] is False


def test_a_stream_with_stderr_closed_still_gives_its_json(tmp_path) -> None:
    """`2>&-` leaves Python no sys.stderr: srx stream failed after its run on `sys.stderr.isatty()`,
    exit 1, its summary and `--json-summary -` JSON lost."""
    res = subprocess.run(f"{sys.executable} -m srx stream --demo --max-frames 3 --no-window --threads 1 --json-summary - "
                         "2>&- </dev/null", shell=True, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SRX_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stdout
    assert json.loads(res.stdout)["frames_out"] == 3


def _connections(listening, taken: list) -> list:
    """The connections a listening socket has taken so far (accepted into `taken`, held open)."""
    import select

    while select.select([listening], [], [], 0)[0]:
        taken.append(listening.accept()[0])
    return taken


def test_damaged_frames_of_a_network_stream_are_counted_and_said(tmp_path: Path, make_upscaler, caplog) -> None:
    """A network camera's frames that come damaged (packets lost or broken on the way: the decoder
    hides the gap with the frame before, and the picture smears until the next keyframe) were
    upscaled and recorded without a word: now each is counted (the summary, JSON, /stats' and
    /metrics' srx_frames_damaged_total), said in a warning at the first and then at most once a
    minute. A real FFmpeg reads a real HTTP server's MPEG-TS; the same stream unbroken counts none."""
    import logging

    from srx.camera.sources import parse_source
    from srx.camera.stats import StreamStats, prometheus_text, sources_stats

    camera_ts(tmp_path / "broken.ts", broken=(4, 14))
    camera_ts(tmp_path / "whole.ts")
    server = serve_folder(tmp_path)
    caplog.set_level(logging.WARNING, logger="srx")
    upscaler = make_upscaler(2)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        stats = StreamStats()
        broken = stream(parse_source(source=f"{url}/broken.ts"), upscaler, [], duration=3.0, stats=stats)
        said = [r.getMessage() for r in caplog.records if "came damaged" in r.getMessage()]
        caplog.clear()
        whole = stream(parse_source(source=f"{url}/whole.ts"), upscaler, [], duration=3.0)
    finally:
        server.shutdown()
        server.server_close()
    assert whole.damaged == 0 and "damaged" not in whole.format() and "came damaged" not in caplog.text
    # each reading of the file (the source ends and is reconnected) brings its two broken packets,
    # the one the duration cut short none, one or both
    readings = broken.reconnects + 1
    assert broken.frames_in >= 30 and 2 * max(1, readings - 1) <= broken.damaged <= 2 * readings, broken.format()
    assert f"{broken.damaged} damaged (packets lost or broken on the way)" in broken.format()
    assert broken.to_dict()["damaged"] == broken.damaged
    assert [e for e in broken.events if e["event"] == "damaged"][0]["frames"] == 1
    assert len(said) == 1 and said[0].startswith(f"source {url}/broken.ts: a frame came damaged"), said
    snap = stats.snapshot()
    assert snap["damaged"] == broken.damaged
    assert f'srx_frames_damaged_total{{source="{url}/broken.ts"}} {broken.damaged}' in prometheus_text(
        sources_stats({f"{url}/broken.ts": snap})), "the counter on /metrics"


def _comb(img: np.ndarray) -> float:
    """How combed a picture is: the mean of each row against the mean of the rows either side."""
    y = img.astype(np.float64).mean(axis=2)
    return float(np.abs(2 * y[1:-1] - y[:-2] - y[2:]).mean())


def test_a_pal_camera_is_deinterlaced_and_shown_with_its_pixels_shape(tmp_path: Path, make_upscaler, caplog) -> None:
    """An analogue PAL camera behind an encoder (a trial's D1 camera): fields coded interlaced, pixels
    12:11 wide, a sound track. Its fields were upscaled combed and its recordings played 8 % too
    narrow, without a word. Now FFmpeg's yadif deinterlaces it before the model (a frame for a frame,
    at its own times), the output is resampled to square pixels (what a player shows of the camera),
    and the first lines say what the source is, and that its sound is not recorded. Real FFmpeg
    reading a real HTTP server's stream, sent at its own pace."""
    import logging

    import av

    from srx.camera.sources import parse_source

    camera_ts(tmp_path / "pal.ts", parts=((48, 36, 30),), sar=(12, 11), interlaced=True, audio=True)
    raw = [f.to_ndarray(format="bgr24") for f in av.open(str(tmp_path / "pal.ts")).decode(video=0)]
    assert all(f.interlaced_frame for f in av.open(str(tmp_path / "pal.ts")).decode(video=0))
    server = serve_folder(tmp_path, seconds=3.0)
    caplog.set_level(logging.INFO, logger="srx")
    seen: list[tuple[np.ndarray, tuple[int, ...]]] = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/pal.ts"
        summary = stream(parse_source(source=url), make_upscaler(2), [], max_frames=12, buffer=30,
                         on_frame=lambda frame, out, t: seen.append((frame.image, out.shape)))
    finally:
        server.shutdown()
        server.server_close()
    assert summary.frames_out == 12 and summary.output_size == [105, 72], summary.format()  # 96 x 12/11 = 104.7
    assert all(shape == (72, 105, 3) for _, shape in seen)
    combed = np.mean([_comb(f) for f in raw[5:25]])
    assert np.mean([_comb(image) for image, _ in seen[2:]]) < 0.6 * combed, "the model saw the fields combed"
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"source {url}")]
    assert said[0] == (f"source {url}: 48x36, h264, 10 fps, pixels 12:11 wide, shown as 52x36: the upscaled frames are "
                       "resampled to square pixels to match, interlaced, deinterlaced (FFmpeg's yadif) before it is "
                       "upscaled"), said
    assert said[1] == f"source {url} also sends sound (mp2); srx stream records the picture only", said
    assert summary.sends == summary.to_dict()["sends"] == said[0].split(": ", 1)[1] + ", sound (mp2) not recorded"


def test_a_camera_that_changes_its_size_is_followed_and_said(tmp_path: Path, make_upscaler, caplog) -> None:
    """An installer reconfigures a camera mid-stream (a trial: 640x360, then 1280x720): srx followed
    it, but the summary and --json-summary named only the last size, and nothing said when it
    changed. Now a warning and a `size` event say it, and the summary lists each size from when."""
    import logging

    from srx.camera.sources import parse_source

    camera_ts(tmp_path / "cam.ts", parts=((48, 36, 40), (64, 48, 20)))
    server = serve_folder(tmp_path, seconds=6.0)
    caplog.set_level(logging.INFO, logger="srx")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cam.ts"
        summary = stream(parse_source(source=url), make_upscaler(2), [], duration=5.5, buffer=30)
    finally:
        server.shutdown()
        server.server_close()
    assert summary.input_size == [64, 48] and [(z["width"], z["height"]) for z in summary.sizes] == [(48, 36), (64, 48)]
    changed = summary.sizes[1]["t"]
    assert 1.0 < changed < 5.0, summary.sizes  # the 41st frame of a 10 fps camera, 4 s into its stream
    assert [e for e in summary.events if e["event"] == "size"] == [
        {"event": "size", "t": pytest.approx(changed, abs=0.05), "width": 64, "height": 48}], summary.events
    assert (f"the source changed size: 48x36 at first, then 64x48 from {changed:.1f} s (recordings keep their first "
            "size, later frames fitted in)") in summary.format()
    assert summary.to_dict()["sizes"] == summary.sizes
    assert f"source {url} now sends 64x48, h264, 10 fps (was 48x36)" in caplog.text
    assert summary.sends == "64x48, h264, 10 fps"  # the latest


def test_an_interlaced_file_is_said_to_be_read_combed(tmp_path: Path, make_upscaler, caplog) -> None:
    """A file is read through OpenCV, which passes interlaced fields on combed and does not say
    they are fields: the first line of such a source says so, as a warning with what to do, once
    (not again at each --loop); a progressive file's first line is information only."""
    import logging

    from srx.camera.sources import parse_source

    camera_ts(tmp_path / "d1.ts", parts=((48, 36, 6),), interlaced=True)
    camera_ts(tmp_path / "plain.ts", parts=((48, 36, 6),))
    caplog.set_level(logging.INFO, logger="srx")
    stream(parse_source(source=str(tmp_path / "d1.ts"), loop=True), make_upscaler(2), [], max_frames=14, drop=False)
    combed = [r for r in caplog.records if "NOT deinterlaced" in r.getMessage()]
    assert len(combed) == 1 and combed[0].levelname == "WARNING", [r.getMessage() for r in caplog.records]
    assert combed[0].getMessage() == (f"source file {tmp_path / 'd1.ts'}: 48x36, 10 fps, interlaced and NOT deinterlaced (a "
                                      "file is read through OpenCV, which passes the fields on combed): deinterlace "
                                      "it first, e.g. ffmpeg -i IN -vf yadif OUT")
    caplog.clear()
    stream(parse_source(source=str(tmp_path / "plain.ts")), make_upscaler(2), [], drop=False)
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("source ")] == [
        ("INFO", f"source file {tmp_path / 'plain.ts'}: 48x36, 10 fps")]
