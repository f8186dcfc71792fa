"""Frame ranges of videos (`--frames`, `--val-frames`): parsing and which frames are read."""
import pytest

from srx.errors import SrxError
from srx.imageio import FrameRange, parse_frame_range, video_frames
from tests.conftest import silent_video


@pytest.mark.parametrize("text,expected", [
    (None, FrameRange()), ("", FrameRange()), (":", FrameRange()), ("0:480", FrameRange(0, 480)),
    ("520:", FrameRange(520, None)), (":480", FrameRange(0, 480)), (" 3 : 9 ", FrameRange(3, 9)),
])
def test_frame_ranges_parse(text, expected):
    assert parse_frame_range(text) == expected
    assert str(expected) == (f"{expected.start}:{expected.end if expected.end is not None else ''}")


@pytest.mark.parametrize("text", ["480", "a:b", "5:3", "4:4", "-1:5", "1.5:3", "0:480:2"])
def test_bad_frame_ranges_say_what_was_expected(text):
    with pytest.raises(SrxError, match=r"--val-frames expects START:END frame numbers .* got") as err:
        parse_frame_range(text, "--val-frames")
    assert repr(text) in str(err.value)


def test_video_frames_reads_the_range_every_nth(tmp_path):
    video = silent_video(tmp_path / "v.avi", 10, (32, 24))
    assert [i for i, _ in video_frames(video)] == list(range(10))
    assert [i for i, _ in video_frames(video, 3)] == [0, 3, 6, 9]
    assert [i for i, _ in video_frames(video, 2, FrameRange(3, 8))] == [3, 5, 7]
    assert [i for i, _ in video_frames(video, 1, FrameRange(7))] == [7, 8, 9]
    frames = [f for _, f in video_frames(video, 1, FrameRange(4, 5))]
    assert len(frames) == 1 and frames[0].shape == (24, 32, 3)
    with pytest.raises(SrxError, match="--every must be at least 1"):
        list(video_frames(video, 0))


def test_video_frames_says_when_a_video_was_cut_off(tmp_path, caplog):
    whole = silent_video(tmp_path / "whole.avi", 30, (48, 32))
    cut = tmp_path / "cut.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # its header still lists 30 frames
    with caplog.at_level("WARNING", logger="srx"):
        assert len(list(video_frames(whole))) == 30
    assert not caplog.records
    with caplog.at_level("WARNING", logger="srx"):
        decoded = len(list(video_frames(cut)))
    assert 0 < decoded < 28
    assert f"stopped decoding after {decoded} of the 30 frames its container lists" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="srx"):  # a range that ends before the cut is whole
        assert len(list(video_frames(cut, 1, FrameRange(0, decoded)))) == decoded
    assert not caplog.records
