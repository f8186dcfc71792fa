"""srx.media: a video's sound carried over to the upscaled copy, with real files FFmpeg wrote."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from srx.errors import SrxError
from srx.media import audio_codec, mux_audio
from tests.conftest import synthetic_photo, video_with_sound


def _video_only(path, frames=20, fps=10, size=(96, 64)):
    """What OpenCV writes for `srx upscale`: video alone."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        w.write(synthetic_photo(size[1], size[0], seed=100 + i))
    w.release()
    return path


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


def test_a_codec_the_container_refuses_is_reencoded_to_aac(tmp_path):
    src = video_with_sound(tmp_path / "cam.mkv", acodec="libopus")  # AVI cannot hold Opus
    video = tmp_path / "up.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(20):
        w.write(synthetic_photo(64, 96, seed=i))
    w.release()
    out = tmp_path / "out.avi"
    assert mux_audio(video, src, out) == "aac from opus"
    info, frames, samples, rate = _streams(out)
    assert info == {"video": "mjpeg", "audio": "aac"} and frames == 20
    assert abs(samples / rate - 2.0) < 0.1
    with av.open(str(out)) as c:  # still a tone, not silence
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert 0.15 < np.abs(sound).max() < 0.5


def test_no_sound_is_one_clear_error(tmp_path):
    src = video_with_sound(tmp_path / "mute.mp4", acodec=None)
    assert audio_codec(src) is None
    with pytest.raises(SrxError, match="mute.mp4 has no sound to carry over"):
        mux_audio(_video_only(tmp_path / "up.mp4"), src, tmp_path / "out.mp4")
    assert audio_codec(tmp_path / "missing.mp4") is None
