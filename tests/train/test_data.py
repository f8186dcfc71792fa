import cv2
import numpy as np
import pytest

from srx.errors import SrxError
from srx.protocol import imresize, y_channel
from srx.train.data import extract_patches
from tests.conftest import synthetic_photo


def test_patches_are_aligned_lr_hr_pairs_and_cached(image_folder, tmp_path):
    first = extract_patches([image_folder], 3, 24, 12, cache_dir=tmp_path / "cache")
    assert first.lr.shape[1:] == (8, 8) and first.hr.shape[1:] == (24, 24)
    assert len(first.lr) == len(first.hr) > 10 and not first.from_cache
    second = extract_patches([image_folder], 3, 24, 12, cache_dir=tmp_path / "cache")
    assert second.from_cache and np.array_equal(first.lr, second.lr)
    # The first patch is the top-left corner of the whole-image LR (made from the whole HR plane).
    hr_y = y_channel(cv2.imread(str(sorted(image_folder.iterdir())[0])))
    assert np.array_equal(first.hr[0], hr_y[:24, :24])
    assert np.array_equal(first.lr[0], imresize(hr_y[: 72 - 72 % 3, : 96 - 96 % 3], 1 / 3)[:8, :8])


def test_odd_inputs_are_handled_and_bad_ones_named(tmp_path, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    photo = synthetic_photo(64, 64)
    cv2.imwrite(str(folder / "gray.png"), photo[..., 0])
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([photo, np.full((64, 64), 200, np.uint8)]))
    # 16-bit values that round to the 8-bit ones (x 257, + 100 < 128.5): a conversion that took the
    # high or low byte, or divided by 256, would give other values
    cv2.imwrite(str(folder / "deep.png"), np.minimum(photo.astype(np.uint32) * 257 + 100, 65535).astype(np.uint16))
    cv2.imwrite(str(folder / "tiny.png"), photo[:10, :10])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    patches = extract_patches([folder], 2, 32, 16, cache_dir=tmp_path / "c")
    assert patches.images_used == 3 and patches.skipped_small == 1
    assert patches.skipped_corrupt == ["broken.jpg"]
    assert "broken.jpg" in caplog.text and "skipped 1 image(s) smaller than the 32-pixel patch: tiny.png" in caplog.text
    caplog.clear()  # a second run takes the patches from the cache and says the same again
    again = extract_patches([folder], 2, 32, 16, cache_dir=tmp_path / "c")
    assert again.from_cache and again.skipped_corrupt == ["broken.jpg"]
    assert "broken.jpg" in caplog.text and "skipped 1 image(s) smaller than the 32-pixel patch: tiny.png" in caplog.text
    # 16-bit input gives the same patches as its 8-bit original (deep.png is the first file read).
    (tmp_path / "eight").mkdir()
    cv2.imwrite(str(tmp_path / "eight" / "photo.png"), photo)
    ref = extract_patches([tmp_path / "eight"], 2, 32, 16, cache_dir=tmp_path / "c")
    n = len(ref.lr)
    assert n > 0 and len(patches.lr) == 3 * n
    assert np.array_equal(patches.lr[:n], ref.lr) and np.array_equal(patches.hr[:n], ref.hr)


@pytest.mark.parametrize("setup,match", [
    ("missing", "does not exist"),
    ("empty", "holds no images"),
    ("small", "no training patches"),
])
def test_unusable_data_folders_fail_clearly(tmp_path, setup, match):
    folder = tmp_path / "data"
    if setup != "missing":
        folder.mkdir()
    if setup == "small":
        cv2.imwrite(str(folder / "a.png"), synthetic_photo(10, 10))
    with pytest.raises(SrxError, match=match):
        extract_patches([folder], 3, 24, 12, cache_dir=tmp_path / "c")


def test_patch_size_must_be_a_multiple_of_the_scale(image_folder, tmp_path):
    with pytest.raises(SrxError, match="multiples of the scale"):
        extract_patches([image_folder], 3, 25, 12, cache_dir=tmp_path)


def test_a_video_is_a_source_of_frames_within_a_range(tmp_path):
    """Every Nth frame of a video within --frames is a training image: the same patches as those
    frames saved as images, and a range or step of its own is a cache entry of its own."""
    from tests.conftest import silent_video

    video = silent_video(tmp_path / "cam.avi", 12, (96, 72), fourcc="FFV1")  # lossless: frames as written
    frames = tmp_path / "frames"
    frames.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(12):
        ok, frame = cap.read()
        assert ok
        if i in (2, 5):
            cv2.imwrite(str(frames / f"{i:02d}.png"), frame)
    cap.release()
    from srx.imageio import FrameRange

    cache = tmp_path / "c"
    from_video = extract_patches([video], 3, 24, 12, cache_dir=cache, every=3, frames=FrameRange(2, 8))
    from_images = extract_patches([frames], 3, 24, 12, cache_dir=cache)
    assert from_video.images_used == 2 and not from_video.from_cache
    assert np.array_equal(from_video.lr, from_images.lr) and np.array_equal(from_video.hr, from_images.hr)
    again = extract_patches([video], 3, 24, 12, cache_dir=cache, every=3, frames=FrameRange(2, 8))
    assert again.from_cache and np.array_equal(again.lr, from_video.lr)
    whole = extract_patches([video, frames], 3, 24, 12, cache_dir=cache, every=3)
    assert whole.images_used == 4 + 2 and not whole.from_cache  # frames 0, 3, 6, 9 and the two images


@pytest.mark.parametrize("setup,match", [
    ("past-the-end", r"has 12 frames: --frames 20: starts after its last"),
    ("every-too-large", r"has 4 frames in --frames 8:, not more than --every 5, so only its first would be used"),
    ("range-on-folders", "--frames 0:4 applies to videos, and no --data is one"),
    ("not-a-video", "is a file but not a video srx reads"),
])
def test_unusable_video_sources_fail_clearly(tmp_path, image_folder, setup, match):
    from srx.imageio import FrameRange
    from tests.conftest import silent_video

    video = silent_video(tmp_path / "cam.avi", 12, (96, 72))
    source, kw = {
        "past-the-end": ([video], dict(frames=FrameRange(20))),
        "every-too-large": ([video], dict(frames=FrameRange(8), every=5)),
        "range-on-folders": ([image_folder], dict(frames=FrameRange(0, 4))),
        "not-a-video": ([tmp_path / "notes.txt"], {}),
    }[setup]
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SrxError, match=match):
        extract_patches(source, 3, 24, 12, cache_dir=tmp_path / "c", **kw)


def test_video_patches_that_would_not_fit_in_memory_are_refused_before_decoding(tmp_path, caplog, monkeypatch):
    """An hour of footage at a small --every would gather tens of GB of patches for hours before
    running out of memory: the estimate (exactly what extraction takes) is checked first, and the
    error names an --every that fits; past the 1 GB budget but within memory, a warning."""
    import logging

    import srx.train.data as data
    from srx.imageio import FrameRange
    from tests.conftest import silent_video

    video = silent_video(tmp_path / "cam.avi", 12, (96, 72), fourcc="FFV1")
    files = [video]
    per = data.patch_bytes_per_frame(96, 72, 3, 24, 12)
    got = extract_patches(files, 3, 24, 12, cache_dir=tmp_path / "c", every=3)
    assert got.lr.nbytes + got.hr.nbytes == 4 * per  # the estimate is what extraction takes
    monkeypatch.setattr(data, "PATCH_BUDGET_BYTES", 2 * per)  # as if the footage were hours long
    with pytest.raises(SrxError, match=r"one frame in 3 makes .* GB of training patches, more than the .* GB of memory "
                                       r"free here .*; expected --every 6 or more"):
        data.check_video_patches(files, 3, 24, 12, 3, FrameRange(), available=2 * per * 3)
    data.check_video_patches(files, 3, 24, 12, 6, FrameRange(), available=2 * per * 3)  # fits: 2 frames
    caplog.set_level(logging.WARNING, logger="srx")
    data.check_video_patches(files, 3, 24, 12, 3, FrameRange(), available=1 << 40)
    assert "training patches will take" in caplog.text and "one frame in 3" in caplog.text


def test_the_patch_cache_is_keyed_by_what_was_read(tmp_path):
    """Stale patches must never train: the same video under another --every or --frames, and an
    image rewritten with other pixels, are cache entries of their own."""
    import os

    from srx.imageio import FrameRange
    from tests.conftest import silent_video

    video = silent_video(tmp_path / "cam.avi", 12, (96, 72), fourcc="FFV1")
    cache = tmp_path / "c"
    base = extract_patches([video], 3, 24, 12, cache_dir=cache, every=3)
    assert base.images_used == 4 and not base.from_cache
    other_every = extract_patches([video], 3, 24, 12, cache_dir=cache, every=4)
    assert other_every.images_used == 3 and not other_every.from_cache
    other_range = extract_patches([video], 3, 24, 12, cache_dir=cache, every=3, frames=FrameRange(1, None))
    assert not other_range.from_cache and not np.array_equal(other_range.lr[:4], base.lr[:4])
    assert extract_patches([video], 3, 24, 12, cache_dir=cache, every=3).from_cache

    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.bmp"), synthetic_photo(48, 48, seed=1))  # BMP: the same bytes long whatever the pixels
    first = extract_patches([folder], 3, 24, 12, cache_dir=cache)
    cv2.imwrite(str(folder / "a.bmp"), synthetic_photo(48, 48, seed=2))  # the same name and size, new pixels
    st = (folder / "a.bmp").stat()
    os.utime(folder / "a.bmp", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a later time, even on a coarse clock
    second = extract_patches([folder], 3, 24, 12, cache_dir=cache)
    assert not second.from_cache and not np.array_equal(first.hr, second.hr)


def test_patches_reach_the_far_edges_of_every_image(tmp_path):
    """The patch grid ends flush with the right and bottom edges even where the stride does not
    land there, so no strip of an image goes untrained."""
    from srx.train.data import patch_grid

    assert patch_grid(11, 4, 3) == [0, 3, 6, 7] and patch_grid(10, 4, 3) == [0, 3, 6] and patch_grid(3, 4, 3) == []
    folder = tmp_path / "one"
    folder.mkdir()
    photo = synthetic_photo(66, 87, seed=3)  # HR 66x87: cropped to 66x87 at x3, LR 22x29
    cv2.imwrite(str(folder / "p.png"), photo)
    patches = extract_patches([folder], 3, 24, 12, cache_dir=tmp_path / "c")
    hr_y = y_channel(photo)
    # LR grid: 8-pixel patches at stride 4 on 22 rows (0..12, then 14) and 29 columns (0..20, then 21)
    assert len(patches.hr) == 5 * 7
    assert np.array_equal(patches.hr[-1], hr_y[42:66, 63:87])


def test_patches_too_many_for_the_memory_are_one_error_line(tmp_path):
    """`srx train` under a real address-space limit (tests.conftest.run_srx_with_room: 300 MB beyond
    the libraries) on two 1000x1000 images cut every 3 pixels (96,000 patches of 48 + 16 pixels
    squared each, some 0.5 GB): one `error:` line saying how far the patch extraction got and what
    helps, where it was numpy's _ArrayMemoryError traceback."""
    from tests.conftest import assert_one_error_line, run_srx_with_room

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        cv2.imwrite(str(data / f"{i}.png"), cv2.resize(synthetic_photo(100, 100, seed=i), (1000, 1000)))
    res = run_srx_with_room(["train", "--data", "data", "--scale", "3", "--stride", "3", "--max-steps", "1",
                             "--out", "run", "--no-progress", "--threads", "1"], 300 << 20, tmp_path)
    assert res.returncode == 1, res.stderr
    assert_one_error_line(res.stderr, "out of memory cutting training patches: ")
    assert "free some memory or use a machine with more, or train on less (fewer --data images)" in res.stderr


def test_video_patches_are_checked_against_the_memory_free_also_under_the_budget(tmp_path):
    """A small box: patches well under PATCH_BUDGET_BYTES that still do not fit what is free here are
    refused before decoding (the check once started past the budget only, and a 1 GB box crashed);
    `patch_budget` is a third of what is free where that is under the budget, and says so."""
    import srx.train.data as data
    from srx.imageio import FrameRange
    from tests.conftest import silent_video

    video = silent_video(tmp_path / "cam.avi", 12, (96, 72), fourcc="FFV1")
    per = data.patch_bytes_per_frame(96, 72, 3, 24, 12)
    assert 4 * per < data.PATCH_BUDGET_BYTES
    with pytest.raises(SrxError, match=r"one frame in 3 makes .* more than the .* GB of memory free here"):
        data.check_video_patches([video], 3, 24, 12, 3, FrameRange(), available=4 * per)
    data.check_video_patches([video], 3, 24, 12, 3, FrameRange(), available=8 * per)
    assert data.patch_budget(available=3 << 30) == (data.PATCH_BUDGET_BYTES, "1.0 GB")
    assert data.patch_budget(available=900 << 20) == (300 << 20, "0.3 GB, a third of the 0.9 GB of memory free here")


def test_a_patch_cache_on_a_full_disk_is_a_warning_and_said_not_written(image_folder, small_disk, caplog):
    """...and leaves nothing for the garbage collector to trip over: NumPy's savez left its zip archive
    open on the full disk, and when the collector came to it (in a later test of the full suite) it
    tried to finish it on the closed file: 'Exception ignored in ZipFile.__del__'."""
    import gc
    import sys

    from tests.conftest import fill_disk

    disk = small_disk(64)
    fill_disk(disk)
    ignored, hook = [], sys.unraisablehook
    sys.unraisablehook = ignored.append
    try:
        patches = extract_patches([image_folder], 3, 24, 12, cache_dir=disk / "cache")
        assert len(patches.lr) > 10 and not patches.from_cache and not patches.cache_written
        assert "patch cache not kept (cannot write" in caplog.text and "no space left on device (the disk is full)" in caplog.text
        assert [p.name for p in (disk / "cache").iterdir()] == []
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert not ignored, [f"{u.object}: {u.exc_value}" for u in ignored]


def test_the_patch_cache_reads_back_what_was_cut(image_folder, tmp_path):
    first = extract_patches([image_folder], 3, 24, 12, cache_dir=tmp_path)
    again = extract_patches([image_folder], 3, 24, 12, cache_dir=tmp_path)
    assert first.cache_written and again.from_cache
    assert np.array_equal(first.lr, again.lr) and np.array_equal(first.hr, again.hr)
    assert again.images_used == first.images_used
