"""srx.media: a video's sound carried over to the upscaled copy, with real files FFmpeg wrote."""
from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from srx.errors import SrxError
from srx.media import audio_codec, mux_audio
from tests.conftest import fill_disk, frame_times_ms, silent_video, stored_frames, synthetic_photo, video_with_sound


def _video_only(path, frames=20, fps=10, size=(96, 64)):
    """What srx writes before the sound goes in: video alone."""
    return silent_video(path, frames, size, fps, fourcc="mp4v")


def _streams(path):
    with av.open(str(path)) as c:
        info = {s.type: s.codec_context.name for s in c.streams}
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0)) if c.streams.audio else 0
        rate = c.streams.audio[0].codec_context.sample_rate if c.streams.audio else None
    return info, frames, samples, rate


def test_sound_is_copied_next_to_the_video_untouched(tmp_path):
    src = video_with_sound(tmp_path / "cam.mp4", acodec="aac")
    video = _video_only(tmp_path / "up.mp4")
    out = tmp_path / "out.mp4"
    assert audio_codec(src) == "aac" and audio_codec(video) is None
    assert mux_audio(video, src, out) == "aac copied"
    info, frames, samples, rate = _streams(out)
    assert info == {"video": "mpeg4", "audio": "aac"} and frames == 20
    assert abs(samples / rate - 2.0) < 0.05  # two seconds of sound, like the frames
    with av.open(str(video)) as a, av.open(str(out)) as b:  # the video packets are the very same bytes
        assert [bytes(p) for p in a.demux(video=0) if p.size] == [bytes(p) for p in b.demux(video=0) if p.size]


def test_a_sound_is_named_by_its_codec_not_ffmpegs_decoder(tmp_path):
    """MP3 was said as 'mp3float' (the name of FFmpeg's decoder for it) in srx upscale's lines."""
    src = video_with_sound(tmp_path / "cam.mkv", acodec="libmp3lame")
    assert audio_codec(src) == "mp3"
    assert mux_audio(_video_only(tmp_path / "up.mkv"), src, tmp_path / "out.mkv") == "mp3 copied"


def test_a_codec_the_container_refuses_is_reencoded_to_aac(tmp_path):
    src = video_with_sound(tmp_path / "cam.mkv", acodec="libopus")  # AVI cannot hold Opus
    video = silent_video(tmp_path / "up.avi", 20, (96, 64))
    out = tmp_path / "out.avi"
    assert mux_audio(video, src, out) == "opus re-encoded to aac"
    info, frames, samples, rate = _streams(out)
    assert info == {"video": "mjpeg", "audio": "aac"} and frames == 20
    assert abs(samples / rate - 2.0) < 0.1
    # AAC's lead-in packet, stamped before 0, is left out where AVI cannot store it: FFmpeg moved every
    # stream later by it, and the frames after the first a slot late (0, 0.2, 0.3 s, ...)
    assert frame_times_ms(out) == pytest.approx([i * 100 for i in range(20)], abs=0.5)
    with av.open(str(out)) as c:  # still a tone, not silence
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert 0.15 < np.abs(sound).max() < 0.5


def test_no_sound_is_one_clear_error(tmp_path):
    src = video_with_sound(tmp_path / "mute.mp4", acodec=None)
    assert audio_codec(src) is None
    with pytest.raises(SrxError, match="mute.mp4 has no sound to carry over"):
        mux_audio(_video_only(tmp_path / "up.mp4"), src, tmp_path / "out.mp4")
    assert audio_codec(tmp_path / "missing.mp4") is None


def test_h264_writer_codes_what_it_is_given(tmp_path):
    """H.264 at CRF 18 that OpenCV (another FFmpeg reader) opens at the right size and rate; the Y
    plane coded is srx's BT.601 Y of the frames given (no level shift: swscale's RGB -> YUV would
    darken it by 1.5-3 levels), up to x264's loss; an odd side loses its last pixel (4:2:0)."""
    from srx.media import H264Writer
    from srx.protocol import psnr, y_channel

    frames = [synthetic_photo(33, 51, seed=i) for i in range(6)]
    writer = H264Writer(tmp_path / "x.mp4", 12.5, (51, 33))
    for f in frames:
        writer.write(f)
    writer.close()
    cap = cv2.VideoCapture(str(tmp_path / "x.mp4"))
    n, shape = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, shape = n + 1, f.shape
    assert (n, shape) == (6, (32, 50, 3)) and abs(cap.get(cv2.CAP_PROP_FPS) - 12.5) < 0.01
    cap.release()
    with av.open(str(tmp_path / "x.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert cc.name == "h264"
        # tagged as what it holds, BT.601 limited range, so a player that follows the tags shows
        # the colours srx computed (tagged BT.709 full range they read 3-5 levels off)
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (6, 6, 6, 1)
        planes = [f.to_ndarray(format="yuv420p")[:32] for f in c.decode(video=0)]  # the Y plane as coded
    for a, y in zip(frames, planes):
        want = y_channel(a[:32, :50]).astype(float)
        assert psnr(want, y.astype(float), 0) > 38 and abs(np.mean(want - y)) < 0.3


@pytest.mark.parametrize("times", [[0.0] * 6, [0.0, 100.0, 100.0, 50.0, 400.0, None]], ids=["all-zero", "repeated"])
def test_frames_without_times_of_their_own_come_one_interval_on(tmp_path, times):
    """A frame whose time does not advance past the last one's (OpenCV says 0.0 ms for every frame of
    a raw .h264 stream) comes 1/fps after the one before it, not at the same time: six such frames at
    10 fps play 0.5 s, not 0; a later own time (400 ms) is kept."""
    from srx.media import H264Writer
    from tests.conftest import frame_times_ms

    writer = H264Writer(tmp_path / "x.mp4", 10, (48, 32))
    for i, at_ms in enumerate(times):
        writer.write(synthetic_photo(32, 48, seed=i), at_ms=at_ms)
    writer.close()
    assert frame_times_ms(tmp_path / "x.mp4") == pytest.approx([0.0, 100.0, 200.0, 300.0, 400.0, 500.0], abs=1)


def _first_sound_s(path):
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        first = next(p for p in c.demux(a) if p.size)
        return float((first.pts if first.pts is not None else first.dts) * a.time_base)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_h264_video_with_sound_keeps_every_frame(tmp_path, suffix):
    """srx's own H.264 output, muxed with sound: every frame decodes, in Matroska too (whose packets
    carry no dts; the first ones were lost once)."""
    from srx.media import H264Writer

    src = video_with_sound(tmp_path / "cam.mp4", frames=30)
    video = tmp_path / f"up{suffix}"
    writer = H264Writer(video, 10, (96, 64))
    for i in range(30):
        writer.write(synthetic_photo(64, 96, seed=i))
    writer.close()
    out = tmp_path / f"out{suffix}"
    assert mux_audio(video, src, out) == "aac copied"
    info, frames, samples, rate = _streams(out)
    assert info == {"video": "h264", "audio": "aac"} and frames == 30
    assert abs(samples / rate - 3.0) < 0.1


@pytest.mark.parametrize("writer", ["FFV1Writer", "H264Writer"])
def test_a_matroska_file_with_sound_keeps_its_frame_rate(tmp_path, writer):
    """Remuxed with its sound, an upscaled .mkv still reads as 10 fps and 30 frames to OpenCV (once it
    read as 30000 fps and 91260 frames, and srx took its own output for a damaged file)."""
    import srx.media

    src = video_with_sound(tmp_path / "cam.mp4", frames=30)
    video = tmp_path / "up.mkv"
    w = getattr(srx.media, writer)(video, 10, (96, 64))
    for i in range(30):
        w.write(synthetic_photo(64, 96, seed=i), at_ms=100.0 * i)
    w.close()
    out = tmp_path / "out.mkv"
    assert mux_audio(video, src, out) == "aac copied"
    cap = cv2.VideoCapture(str(out))
    try:
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10) and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 30
    finally:
        cap.release()


def test_unnamed_layouts_are_reencoded(tmp_path):
    """PCM in AVI states only a channel count ("2 channels"); AAC needs a named layout."""
    src = video_with_sound(tmp_path / "cam.avi", vcodec="mjpeg", acodec="pcm_s16le", channels=2, rate=44100)
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.channels == 2
    out = tmp_path / "out.mp4"
    assert mux_audio(_video_only(tmp_path / "up.mp4"), src, out, aac=True) == "pcm_s16le re-encoded to aac"
    info, frames, samples, rate = _streams(out)
    assert info["audio"] == "aac" and rate == 44100 and abs(samples / rate - 2.0) < 0.1
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.channels == 2


@pytest.mark.parametrize("aac", [False, True])
def test_sound_that_starts_late_stays_late(tmp_path, aac):
    """Sound that starts 0.5 s after the first frame in the source does so in the output too, copied
    or re-encoded (AAC's priming moves the first packet by up to one frame, 21 ms)."""
    src = video_with_sound(tmp_path / "cam.mkv", acodec="aac", audio_start=0.5)
    assert abs(_first_sound_s(src) - 0.5) < 0.03
    out = tmp_path / "out.mkv"
    mux_audio(_video_only(tmp_path / "up.mp4"), src, out, aac=aac)
    assert abs(_first_sound_s(out) - 0.5) < 0.03


def test_aac_into_avi_leaves_every_frame_in_its_slot(tmp_path):
    """AAC's first packet (its priming) sits before 0; AVI cannot store that, and FFmpeg moved every
    stream later to make room, which in AVI's frame-numbered video put frames 1, 2, ... a slot late
    (pts 0, 2, 3, ...: 100 ms behind the sound). The lead-in is left out instead."""
    src = video_with_sound(tmp_path / "cam.mp4", acodec="aac", frames=20)
    with av.open(str(src)) as c:
        assert next(p.pts for p in c.demux(audio=0) if p.size) < 0  # the priming this is about
    video = silent_video(tmp_path / "up.avi", 20, (96, 64))
    out = tmp_path / "out.avi"
    assert mux_audio(video, src, out) == "aac copied"
    with av.open(str(out)) as c:
        assert [p.pts for p in c.demux(video=0) if p.size] == list(range(20))
    info, frames, samples, rate = _streams(out)
    assert frames == 20 and abs(samples / rate - 2.0) < 0.05


def test_pyav_installed_but_not_loading_is_not_called_missing(monkeypatch):
    """A PyAV whose FFmpeg libraries cannot be mapped (a small box's memory limit: 'failed to map
    segment from shared object') is said as installed but failing to load, with the loader's
    reason, not as missing with `pip install av` (which would change nothing); absent, it is missing."""
    import subprocess
    import sys

    code = """
import resource, sys
import numpy, cv2  # noqa: F401
from srx.errors import SrxError
from srx.media import pyav_module
size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + (8 << 20), resource.RLIM_INFINITY))
try:
    pyav_module()
except SrxError as exc:
    print(exc)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "needs PyAV, which is installed but failed to load: " in res.stdout, res.stdout + res.stderr
    assert "failed to map segment from shared object (most likely too little memory)" in res.stdout
    assert "pip install av" not in res.stdout
    monkeypatch.setitem(sys.modules, "av", None)  # Python's own way of an absent module: ModuleNotFoundError
    from srx.media import pyav_module

    with pytest.raises(SrxError, match="it is missing: pip install av"):
        pyav_module()


#: a child process (a crash must fail the test, not end pytest): frames into the writer for ARGV[1]
#: until a write fails, one more write, then close; what happened, one line each
_FULL_DISK_CHILD = """
import sys
import numpy as np
from srx.errors import SrxError
from srx.media import FFV1Writer, H264Writer, MJPEGWriter
path = sys.argv[1]
make = {".avi": lambda: MJPEGWriter(path, 10, (320, 240)), ".mkv": lambda: FFV1Writer(path, 10, (320, 240)),
        "frag": lambda: H264Writer(path, 10, (320, 240), preset="ultrafast", threads=1, fragmented=True)}
writer = make.get("frag" if "frag" in path else path[-4:], lambda: H264Writer(path, 10, (320, 240), preset="ultrafast"))()
noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
for i in range(30):
    try:
        writer.write(noise, i * 100.0)
    except SrxError as exc:
        print("write failed:", exc)
        try:
            writer.write(noise, (i + 1) * 100.0)
        except SrxError as again:
            print("again:", again)
        break
try:
    writer.close()
except SrxError as exc:
    print("close failed:", exc)
print("closed")
"""


@pytest.mark.parametrize("name", ["rec.mp4", "rec-frag.mp4", "rec.mov", "rec.m4v", "rec.mkv", "rec.avi"])
def test_a_writer_on_a_full_disk_fails_in_an_error_and_closes(small_disk, name):
    """A disk full when a recording opens (a box whose card filled up, restarted): the first packet
    fails with the container's header, and the H.264 writers' close then crashed the process
    (segmentation fault: FFmpeg's torn-down muxer given a second header by the encoder's flush),
    every other recording and the summary with it. Now the failed write is an SrxError, a second one
    is refused without reaching FFmpeg, and close() returns. The MJPEG .avi writer (OpenCV's before,
    which said nothing of a failed write) says it as the others do."""
    import subprocess
    import sys

    card = small_disk(3072, "card")
    fill_disk(card)
    res = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD, str(card / name)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)  # -11: the crash
    lines = res.stdout.splitlines()
    assert lines[0] == f"write failed: cannot write the video {card / name}: No space left on device", lines
    assert lines[1].startswith(f"again: cannot write the video {card / name}: an earlier write failed")
    assert lines[-1] == "closed"


def test_mjpeg_avi_is_a_fixed_rate_mjpeg_video_that_opencv_reads(tmp_path):
    """The .avi writer: Motion JPEG at a fixed rate (a frame without a time in the next slot, one with
    a time in the slot of its time, one whose time does not advance in the next), the rate as OpenCV
    and FFmpeg read it back, a repeated frame decoded equal to the one before, an odd side cropped to
    even (4:2:0), and each frame within JPEG's loss of what was given."""
    from srx.media import MJPEGWriter

    path = tmp_path / "view.avi"
    pictures = [synthetic_photo(63, 75, seed=i) for i in range(3)]
    writer = MJPEGWriter(path, 15 / 2.6, (75, 63))
    assert writer.size == (74, 62)
    for f, at_ms in ((pictures[0], None), (pictures[0], None), (pictures[1], 1040.0), (pictures[2], 100.0)):
        writer.write(f, at_ms)  # 1.04 s is slot 6 at 75/13 fps; 0.1 s, before the last, the next slot
    writer.close()
    assert frame_times_ms(path) == pytest.approx([0, 173.3, 1040, 1213.3], abs=0.1)
    cap = cv2.VideoCapture(str(path))
    fps, fourcc = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
    cap.release()
    got = stored_frames(path)
    assert fourcc == b"MJPG" and fps == pytest.approx(5.769, abs=1e-3) and len(got) == 4
    assert np.array_equal(got[0], got[1]) and got[0].shape == (62, 74, 3)
    for shown, given in zip(got[1:], pictures):
        err = np.abs(shown.astype(int) - given[:62, :74].astype(int)).mean()
        assert err < 7.5, err  # measured 5.8-6.1 levels on these small photos; OpenCV's writer 5.7-6.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "mjpeg" and stream.average_rate == Fraction(75, 13)
        assert [p.pts for p in c.demux(stream) if p.size] == [0, 1, 6, 7]


@pytest.mark.parametrize("fragmented", [True, False])
def test_a_video_the_disk_cut_short_is_never_called_finished(small_disk, fragmented):
    """The disk fills while a recording is written: FFmpeg's buffered writes fail without the mux call
    saying so, and a fragmented .mp4 segment was called finished ('recorded 10 frames') holding none.
    A writer whose file holds fewer bytes than it coded now fails: at a write or at close, never a
    quiet close over a short file."""
    from srx.errors import SrxError
    from srx.media import H264Writer

    card = small_disk(1024, "card")
    fill_disk(card, leave_kib=16)  # the header and a little: the rest stays in FFmpeg's buffers until close
    path = card / "rec.mp4"
    writer = H264Writer(path, 10, (320, 240), preset="ultrafast", threads=1, fragmented=fragmented)
    failed = None
    try:
        for i in range(9):
            writer.write(synthetic_photo(240, 320, seed=i), i * 100.0)
        writer.close()
    except SrxError as exc:
        failed = str(exc)
    assert failed is not None and "No space left on device" in failed, (failed, writer.coded_bytes)
