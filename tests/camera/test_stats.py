"""The stream summary's account of dropped frames (`StreamSummary.keep_up`), from the run's numbers."""
from __future__ import annotations

import pytest

from srx.camera.stats import StreamSummary


def _summary(infer: float, post: float, dropped: int, buffer: int | None = 2, p95: float = 150.0) -> StreamSummary:
    stage = lambda mean, p95=None: {"mean": mean, "p50": mean, "p95": p95 if p95 is not None else mean}  # noqa: E731
    return StreamSummary(
        source="file cam.avi", backend="onnxruntime", scale=3, stopped_by="end-of-input", wall_s=80.0,
        frames_in=800, frames_out=800 - dropped, dropped=dropped, nosignal_frames=0, fps_in=10.0, fps_out=9.9,
        latency_ms={"p50": 110.0, "p95": 250.0, "max": 300.0, "mean": 120.0},
        stage_ms={"capture": stage(3.0), "pre": stage(1.0), "infer": stage(infer, p95), "post": stage(post),
                  "output": stage(0.0)},
        input_size=[480, 360], output_size=[1440, 1080], buffer=buffer)


@pytest.mark.parametrize("infer,post,start", [
    (104.0, 12.7, "srx was slower than the source: 118 ms of work per frame (104 ms in the model) against 100 ms "
                  "between its frames, so 15% of the frames (120) were dropped"),
    (88.0, 10.0, "srx barely kept up with the source: 99 ms of work per frame (88 ms in the model) against 100 ms "
                 "between its frames leaves no room for slow spells, so 15% of the frames (120) were dropped"),
    (55.0, 8.0, "15% of the frames (120) were dropped in slow spells (model p95 150 ms): the mean work per frame "
                "(64 ms) fits the 100 ms between the source's frames. A larger --buffer rides such spells out"),
])
def test_dropped_frames_are_explained(infer, post, start):
    summary = _summary(infer, post, 120)
    note = summary.keep_up()
    assert note.startswith(start), note
    assert ("a faster model or backend" in note) == (infer + post + 1 >= 90)  # the advice fits the cause
    assert note in summary.format().splitlines()[-1] and summary.to_dict()["keep_up"] == note


def test_a_live_source_is_judged_by_the_rate_it_delivered():
    """An MJPEG or RTSP stream may claim OpenCV's default 25 fps while it sends 7: the verdict goes by the
    measured rate (here 10 fps, 100 ms between frames), so 64 ms of work is not "slower than the source"."""
    summary = _summary(55.0, 8.0, 120)
    summary.source_fps, summary.live = 25.0, True
    assert "fits the 100 ms between the source's frames" in summary.keep_up()
    summary.live = False  # a file: its own rate (40 ms a frame) is the one it is paced at
    assert summary.keep_up().startswith("srx was slower than the source: 64 ms of work per frame")


def test_a_source_capped_by_max_fps_is_judged_by_the_capped_rate():
    """--max-fps 2 on a 10 fps camera: the model is asked for a frame every 500 ms, not every 100 ms,
    so 117 ms of work fits it (the drops came in slow spells), and a faster model is not the advice."""
    summary = _summary(104.0, 12.7, 120)
    summary.max_fps = 2.0
    note = summary.keep_up()
    assert "fits the 500 ms between the source's frames" in note and "a faster model" not in note, note
    summary.max_fps = 20.0  # a cap above the source's rate changes nothing
    assert summary.keep_up().startswith("srx was slower than the source: 118 ms of work per frame (104 ms in the "
                                        "model) against 100 ms between its frames")


def test_nothing_to_explain_without_drops_or_without_dropping():
    assert _summary(104.0, 12.7, 0).keep_up() == ""
    assert _summary(104.0, 12.7, 120, buffer=None).keep_up() == ""  # --no-drop: no frame is dropped by policy
    assert _summary(104.0, 12.7, 0).to_dict()["keep_up"] == ""
    shared = _summary(104.0, 12.7, 120)
    shared.alone = False  # one of several sources sharing batched model calls: no verdict per source
    assert shared.keep_up() == "" and "alone" not in shared.to_dict()


def test_the_live_output_rate_falls_while_no_frame_comes():
    """The status line's `out N fps` over the last two seconds: 10 fps while frames come every 0.1 s,
    and less, not still 10, once they stop (an outage), down to 0 when none is left in the window."""
    from srx.camera.stats import StreamStats

    st = StreamStats()
    for i in range(20):
        st._recent.append(100.0 + 0.1 * i)  # frames out at 100.0 ... 101.9
    assert st.live_fps(now=101.95) == pytest.approx(10.0)
    assert st.live_fps(now=102.9) < 6.0  # a second without a frame
    assert st.live_fps(now=104.0) == 0.0
    # a slow stream (srcnn on 720p: a frame every 2 s) is 0.5 fps, not 0 for want of two frames in 2 s
    slow = StreamStats()
    for t in (0.0, 2.0, 4.0, 6.0):
        slow._recent.append(t)
    assert slow.live_fps(now=6.5) == pytest.approx(0.5)
    assert 0 < slow.live_fps(now=11.0) < 0.5 and slow.live_fps(now=12.5) == 0.0


def test_the_input_rate_of_a_file_read_unpaced_says_so():
    """With --no-drop a file is read as fast as the model takes it: `fps in` is then that rate, not
    the file's, and the summary says which (44 fps in for a 10 fps file read a user as wrong)."""
    summary = _summary(20.0, 2.0, 0, buffer=None)
    summary.fps_in, summary.source_fps, summary.paced = 44.32, 10.0, False
    assert "  fps: 44.32 in (read as fast as the model took them; its own rate 10.00), 9.90 out" in summary.format()
    assert summary.to_dict()["paced"] is False
    summary.paced = True  # paced (the default, or --no-drop publishing to rtsp://): the source's own rate
    assert "  fps: 44.32 in, 9.90 out" in summary.format()


def test_latency_max_and_mean_cover_the_run_and_the_percentiles_say_their_window() -> None:
    """p50/p95 come from the last `window` frames (bounded memory), but a 3 s freeze at frame 11,000
    of a 25,000-frame run must stay the max (it read 47.9 ms), and the summary says what p50/p95
    cover once more frames than the window went out."""
    from srx.camera.stats import StreamStats

    st = StreamStats(window=100)
    for i in range(250):
        lat = 3.0 if i == 110 else 0.04 + 0.001 * (i % 10)  # seconds from capture to output
        st.record(100.0 + i, 100.0 + i + lat, {"infer": 0.01}, (36, 48, 3), (72, 96, 3))
    got = st.latency_summary()
    assert got["max"] == 3000.0  # the freeze, 140 frames before the window
    assert got["mean"] == round((3000.0 + sum(40.0 + (i % 10) for i in range(250) if i != 110)) / 250, 2)
    assert got["p95"] < 50 and st.latency_window() == 100
    summary = _summary(55.0, 8.0, 0)
    summary.frames_out, summary.latency_ms, summary.latency_window = 250, got, st.latency_window()
    line = next(ln for ln in summary.format().splitlines() if "latency" in ln)
    assert line.endswith(", max 3000.0 (p50/p95 of the last 100 frames; max over the whole run)"), line
    assert summary.to_dict()["latency_window"] == 100
    few = StreamStats(window=100)
    few.record(0.0, 0.05, {}, (36, 48, 3), (72, 96, 3))
    assert few.latency_window() is None and "last" not in _summary(55.0, 8.0, 0).format()


def test_a_stream_summary_says_the_latency_window_and_keeps_the_max_of_the_run(make_upscaler) -> None:
    """Through a real stream: its summary's max is the largest latency of every frame, also one that
    left the percentiles' window, and `latency_window` says how many frames p50/p95 are of."""
    import time

    from srx.camera.sources import SourceSpec
    from srx.camera.stats import StreamStats
    from srx.camera.stream import stream
    from tests.camera.conftest import frames

    latencies: list[float] = []

    def seen(frame, out, t_done) -> None:  # the latency the stats recorded for this frame
        latencies.append((t_done - frame.t_capture) * 1000.0)
        if frame.index == 0:
            time.sleep(0.3)  # the frames queued meanwhile wait: the run's largest latencies, before the window

    summary = stream(SourceSpec.from_frames(frames(20)), make_upscaler(2), [], drop=False, stats=StreamStats(window=5),
                     on_frame=seen)
    assert summary.frames_out == 20 and summary.latency_window == 5
    assert summary.latency_ms["max"] == round(max(latencies), 2)  # of every frame, not only the last 5
    assert "(p50/p95 of the last 5 frames; max over the whole run)" in summary.format()


def test_a_json_summary_onto_a_full_disk_is_one_error_line_after_the_summary(tmp_path, small_disk, tiny_checkpoint):
    """It was a traceback (OSError from write_json) after the summary, and a failed recording's error
    line was lost behind it: now the summary, then the JSON's error line, then the run's own."""
    from typer.testing import CliRunner

    from srx.cli import app
    from tests.conftest import assert_one_error_line, fill_disk

    disk = small_disk(64)
    fill_disk(disk)
    args = ["stream", "--demo", "--max-frames", "3", "--no-drop", "--no-window", "-q", "-w", str(tiny_checkpoint(2)),
            "--scale", "2", "--backend", "torch", "--threads", "1", "--json-summary", str(disk / "sum.json")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"cannot write {disk / 'sum.json'}: no space left on device (the disk is full)")
    assert res.output.index("stream summary") < res.output.index("error:")
    res = CliRunner().invoke(app, args + ["--output", str(disk / "frames") + "/"])  # a recording on that disk too
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, res.output
    assert errors[0] == f"error: cannot write {disk / 'sum.json'}: no space left on device (the disk is full)"
    assert errors[1].startswith("error: 1 output failed: ")
    assert not (disk / "sum.json").exists()


def test_drops_in_bursts_a_source_handed_over_are_not_blamed_on_srx():
    """A camera behind a poor link hands over at once the frames it queued in a stall or a slow spell:
    with most drops in such bursts the verdict says so, where it said "dropped in slow spells ... a
    larger --buffer" (a bad-link trial: 56 of 69 drops came at link events)."""
    summary = _summary(55.0, 8.0, 120)
    summary.live, summary.dropped_in_bursts = True, 100
    assert summary.keep_up() == ("100 of the 120 dropped came in bursts the source handed over at once (the frames it "
                                 "queued in a stall or on a slow link), not in slow spells of srx's: a larger --buffer "
                                 "would only keep older frames")
    summary.dropped_in_bursts = 20  # a few: the slow spells are srx's
    assert "A larger --buffer rides such spells out" in summary.keep_up()
    summary.dropped_in_bursts = 100
    slow = _summary(104.0, 12.7, 120)  # slower than the source on average: that, whatever the bursts
    slow.dropped_in_bursts = 100
    assert slow.keep_up().startswith("srx was slower than the source")


def test_late_frames_are_in_the_summary_only_where_they_were_said():
    summary = _summary(55.0, 8.0, 0)
    summary.worst_lag_s = 2.4  # one frame at a rate change: no spell said
    assert "came late" not in summary.format()
    summary.worst_lag_s, summary.late_spells = 36.8, 2
    assert "  frames came late 2 times, at worst 36.8 s behind the camera's own clock" in summary.format()


def test_a_source_too_fast_for_the_model_is_told_of_max_fps_and_roi():
    """A trial's 720p camera at 30 fps that one srx could not keep up with (95 % dropped): the
    advice named a faster model, a lower scale or fewer streams, but not --max-fps (evenly spaced
    frames, none dropped: what the README recommends) nor --roi, which the advice for several
    sources names. The rate it suggests leaves a fifth of the work per frame to spare."""
    note = _summary(104.0, 12.7, 120).keep_up()  # 118 ms a frame: 6.8 frames a second, 80 % of it 6.7
    assert "To keep up: --max-fps 7 (evenly spaced frames, none dropped), --roi (the part of the picture that " \
           "matters), a faster model or backend" in note, note
    capped = _summary(104.0, 12.7, 120)
    capped.max_fps, capped.roi = 7.0, [0, 0, 240, 180]  # at the rate it would advise: the work fits it
    assert "To keep up" not in capped.keep_up() and "fits the 143 ms" in capped.keep_up()
    # a --max-fps still too high for the work: a lower one is the fix, and the cap is what was too fast
    # (the advice left --max-fps out whenever one was given, and blamed the source; trial readme2);
    # --roi, given already, is not advised again
    capped.max_fps = 9.0
    note = capped.keep_up()
    assert "--roi" not in note
    assert note.startswith("srx was slower than --max-fps 9: 118 ms of work per frame (104 ms in the model) against "
                           "111 ms between the frames it lets through"), note
    assert "To keep up: --max-fps 7 (evenly spaced frames, none dropped), a faster model" in note, note
    slow = _summary(1500.0, 20.0, 120)
    slow.live = True
    assert "--max-fps 0.5 (evenly" in slow.keep_up(), slow.keep_up()


def test_the_summary_says_a_size_change_and_damage_that_was_more_than_now_and_then():
    summary = _summary(55.0, 8.0, 0)
    assert "changed size" not in summary.format() and "came damaged" not in summary.format()
    summary.sizes = [{"t": 0.0, "width": 640, "height": 360}, {"t": 10.25, "width": 1280, "height": 720}]
    summary.damaged = 39  # 800 frames in: under 5 %, in the frames line only
    lines = summary.format().splitlines()
    assert ("  the source changed size: 640x360 at first, then 1280x720 from 10.2 s (recordings keep their first "
            "size, later frames fitted in)") in lines, lines
    assert "39 damaged (packets lost or broken on the way)" in lines[1] and "came damaged" not in summary.format()
    summary.damaged, summary.rtsp_transport = 40, "udp"
    assert ("  40 of the 800 frames read came damaged (5%), as FFmpeg flagged them (more may be broken unflagged): "
            "check the camera's link and its encoder settings (--rtsp-transport tcp carries every packet)"
            ) in summary.format().splitlines()
