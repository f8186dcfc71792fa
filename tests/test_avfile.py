"""BT.709 videos read in their own colours (srx.avfile): OpenCV's reader turned them to BGR with
BT.601's weights, and srx wrote what it got (a user trial: saturated red 254 came out 231)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

#: colour bars (RGB): saturated primaries and secondaries, grey and a skin tone
BARS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 255], [0, 255, 255], [255, 255, 0],
                 [128, 128, 128], [200, 100, 50]], np.uint8)


def bars_video(path: Path, colour: str = "709", times_ms: list[int] | None = None, size: tuple[int, int] = (128, 48),
               codec: str = "libx264", fmt: str | None = None, grain: bool = False) -> Path:
    """Colour bars coded with `colour`'s weights (709 or 601) and tagged so, as a camera or a phone
    codes HD (BT.709) and SD (BT.601) video; each frame at its time in `times_ms` (10 fps by default);
    `grain`: the lower half of each frame noise (so the frames take room in the file)."""
    import av

    w, h = size
    rgb = np.ascontiguousarray(np.repeat(np.repeat(BARS[None], h, 0), w // len(BARS), 1))
    space = 1 if colour == "709" else 6
    times = times_ms if times_ms is not None else [i * 100 for i in range(6)]
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=10)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        tick = Fraction(1, 10) if path.suffix == ".avi" else Fraction(1, 1000)  # an AVI's is its frame rate's
        st.time_base = tick
        if codec == "libx264":
            st.options = {"crf": "1"}
        cc = st.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = space, space, space, 1
        rng = np.random.default_rng(0)
        for t in times:
            if grain:
                rgb[h // 2:] = rng.integers(0, 256, rgb[h // 2:].shape, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709" if colour == "709" else "ITU601", dst_color_range="MPEG")
            frame.pts, frame.time_base = int(t * Fraction(1, 1000) / tick), tick
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)
    return path


def bar_colours(bgr: np.ndarray) -> np.ndarray:
    """Each bar's colour (RGB) at the middle of the picture, away from the bars' edges."""
    h, w = bgr.shape[:2]
    step = w // len(BARS)
    return np.array([bgr[h // 2, i * step + step // 2][::-1] for i in range(len(BARS))], int)


def test_opencv_is_measured_not_assumed(tmp_path: Path) -> None:
    """Whether this OpenCV turns BT.709 with BT.601's weights is what its own reading of a BT.709 clip
    says: where it does, its red bar is about 232 (as the trial saw); where not, near 255."""
    import cv2

    from srx.avfile import opencv_ignores_bt709

    cap = cv2.VideoCapture(str(bars_video(tmp_path / "b.mp4")))
    ok, frame = cap.read()
    cap.release()
    red = bar_colours(frame)[0, 0]
    assert ok and (red < 240) == opencv_ignores_bt709(), red


@pytest.mark.parametrize("colour", ["709", "601"])
def test_every_video_is_read_in_the_colours_it_is_tagged_with(tmp_path: Path, colour: str) -> None:
    """Through open_video (upscale, eval, compare, train, tune) and a stream's file source alike."""
    from srx.camera.sources import open_reader, parse_source
    from srx.imageio import open_video

    clip = bars_video(tmp_path / f"b{colour}.mp4", colour)
    cap = open_video(clip)
    ok, frame = cap.read()
    cap.release()
    assert ok and np.abs(bar_colours(frame) - BARS).max() <= 3, bar_colours(frame)
    reader = open_reader(parse_source(source=str(clip)), timeout=5.0)
    try:
        streamed = reader.read()
    finally:
        reader.release()
    assert np.abs(bar_colours(streamed) - BARS).max() <= 3, bar_colours(streamed)


def test_an_upscaled_bt709_video_plays_in_its_colours(tmp_path: Path) -> None:
    """`srx upscale` of a BT.709 clip: its output, decoded as a player decodes it (by its own tag),
    shows the source's colours (saturated red was 231, green and cyan 18-20 levels red)."""
    import av
    import cv2
    from typer.testing import CliRunner

    from srx.cli import app

    clip = bars_video(tmp_path / "hd.mp4")
    res = CliRunner().invoke(app, ["upscale", str(clip), "--out", str(tmp_path / "up.mp4"), "-w", "camera", "-s", "2",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    with av.open(str(tmp_path / "up.mp4")) as box:
        frames = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape[:2] == (96, 256)
    shown = bar_colours(cv2.resize(frames[0], (128, 48), interpolation=cv2.INTER_AREA))
    assert np.abs(shown - BARS).max() <= 6, shown


def test_a_bt709_video_keeps_its_frame_times_count_and_turn(tmp_path: Path) -> None:
    """Read through PyAV, a video answers as OpenCV's reader did: each frame's time (a variable-rate
    one's gap kept), the frames its container lists, the rate, the size as shown; an AVI's B-frames
    (no picture times in the file) at their places at the rate; a cut file ends at what decodes."""
    import cv2

    from srx.avfile import AvFileCapture
    from srx.imageio import listed_frames, video_frames, video_rate

    times = [0, 100, 200, 1500, 1600, 1700, 1800]
    clip = bars_video(tmp_path / "vfr.mp4", times_ms=times)
    cap = AvFileCapture(clip)
    assert listed_frames(cap) == 7 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 128
    assert cap.get(cv2.CAP_PROP_FRAME_HEIGHT) == 48 and video_rate(clip, cap) == pytest.approx(7 / 1.9, rel=0.2)
    got = []
    while cap.read()[0]:
        got.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    assert got == pytest.approx(times, abs=1)
    assert len(list(video_frames(clip))) == 7

    avi = bars_video(tmp_path / "b.avi", times_ms=[i * 100 for i in range(12)], grain=True)  # H.264 with B-frames
    cap = AvFileCapture(avi)
    got = []
    while cap.read()[0]:
        got.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    assert got == pytest.approx([i * 100 for i in range(12)], abs=1)

    long = bars_video(tmp_path / "long.mkv", times_ms=[i * 100 for i in range(40)], grain=True)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(long.read_bytes()[: len(long.read_bytes()) // 2])
    cap = AvFileCapture(cut)
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert 5 < n < 40


def test_a_phones_bt709_video_is_turned_upright(tmp_path: Path) -> None:
    """A portrait phone video tagged BT.709 (as phones tag theirs) reads upright through PyAV too."""
    import struct

    import cv2

    from srx.avfile import AvFileCapture

    clip = bars_video(tmp_path / "phone.mp4")
    data = bytearray(clip.read_bytes())
    at = data.find(b"tkhd")
    matrix = at + 8 + 20 + 8 + 8
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    clip.write_bytes(bytes(data))
    cap = AvFileCapture(clip)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 128)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[:2] == (128, 48)
    # turned 90° clockwise for display: the first bar (red), at the left as coded, is at the top
    assert np.abs(frame[8, 24][::-1].astype(int) - BARS[0]).max() <= 3, frame[8, 24]
