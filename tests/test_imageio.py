"""Frame ranges of videos (`--frames`, `--val-frames`): parsing and which frames are read; images
read upright by their EXIF orientation."""
import cv2
import numpy as np
import pytest

from srx.errors import SrxError
from srx.imageio import FrameRange, cut_short, parse_frame_range, read_image, to_uint8, video_frames
from srx.runtime.batch import read_frame
from tests.conftest import portrait_phone_video, silent_video, sound_only_file, stored_frames, synthetic_photo


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


def test_a_video_missing_a_few_percent_is_cut_off_and_a_frame_or_two_short_is_not(tmp_path, caplog):
    """The rule: more than 2 frames or 2 % of those listed missing (whichever is more) is a cut-off
    video; a container's count may be an estimate a frame or two off."""
    assert not cut_short(98, 100) and cut_short(97, 100)
    assert not cut_short(490, 500) and cut_short(489, 500)
    assert not cut_short(8, 10) and cut_short(7, 10) and not cut_short(0, 0)
    whole = silent_video(tmp_path / "whole.avi", 100, (48, 32))
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 9 // 10])  # about a tenth of its frames lost
    with caplog.at_level("WARNING", logger="srx"):
        decoded = len(list(video_frames(cut)))
    assert 80 < decoded < 98
    assert f"stopped decoding after {decoded} of the 100 frames its container lists" in caplog.text


def test_16_bit_pixels_round_to_the_nearest_8_bit_level(tmp_path):
    """A 16-bit value v reads as round(v / 257): 257 k + 128 is k, 257 k + 129 and 257 k + 200 are
    k + 1 (cutting the low byte off would give k, half a level dark on average)."""
    k = np.arange(255, dtype=np.uint16)
    for extra, up in ((0, 0), (128, 0), (129, 1), (200, 1)):
        deep = np.tile(257 * k + extra, (4, 1))
        np.testing.assert_array_equal(to_uint8(deep), np.tile(k + up, (4, 1)).astype(np.uint8))
    deep = np.dstack([np.tile(257 * k + 200, (4, 1))] * 3)
    assert cv2.imwrite(str(tmp_path / "deep.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), np.dstack([np.tile(k + 1, (4, 1))] * 3))


def _tagged(path, pixels: np.ndarray, orientation: int):
    """`pixels` (RGB or RGBA) saved by Pillow with an EXIF Orientation tag, as a phone saves a photo."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **({"quality": 95} if path.suffix == ".jpg" else {}))
    return path


def _asymmetric(channels: int = 3) -> np.ndarray:
    """A picture no flip or turn maps onto itself: blocks of colour, wider than tall."""
    img = np.zeros((24, 40, channels), np.uint8)
    img[:8, :16, 0] = 255
    img[8:, 32:, 1] = 200
    img[16:, :8, 2] = 120
    if channels == 4:
        img[..., 3] = 255
        img[:4, 36:, 3] = 30
    return img


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_read_upright_as_opencv_shows_it(tmp_path, orientation):
    """OpenCV's own EXIF rotation (IMREAD_COLOR, which loses alpha and 16 bits) is the reference
    for what srx reads with both kept."""
    path = _tagged(tmp_path / "phone.jpg", _asymmetric(), orientation)
    want = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert want.shape[:2] == ((40, 24) if orientation >= 5 else (24, 40))
    np.testing.assert_array_equal(read_image(path), want)
    np.testing.assert_array_equal(read_frame(path), want)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_png_with_alpha_is_read_upright_as_pillow_shows_it(tmp_path, orientation):
    from PIL import Image, ImageOps

    rgba = _asymmetric(4)
    path = _tagged(tmp_path / "shot.png", rgba, orientation)
    with Image.open(path) as im:
        want_rgba = np.asarray(ImageOps.exif_transpose(im))
    got = read_frame(path)  # what srx upscale reads: alpha kept
    np.testing.assert_array_equal(got, want_rgba[..., [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_image(path), want_rgba[..., [2, 1, 0]])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_is_turned_upright_once(tmp_path, orientation):
    """OpenCV's TIFF decoder (libtiff) turns a TIFF by its Orientation tag itself, even unchanged:
    turning it again by the tag would undo that. Reference: Pillow's exif_transpose of the pixels."""
    from PIL import Image, ImageOps

    rgb = _asymmetric()
    path = _tagged(tmp_path / "scan.tif", rgb, orientation)
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im))[..., ::-1]
    assert want.shape[:2] == ((40, 24) if orientation >= 5 else (24, 40))
    np.testing.assert_array_equal(read_frame(path), want)
    np.testing.assert_array_equal(read_image(path), want)


def test_pixels_without_a_readable_header_keep_their_stored_orientation(tmp_path):
    img = _asymmetric()
    path = tmp_path / "plain.bmp"
    cv2.imwrite(str(path), img)
    np.testing.assert_array_equal(read_image(path), img)


def test_a_phone_video_is_read_upright(tmp_path):
    """A portrait phone recording: landscape frames and a rotation in the container, which the pip
    OpenCV wheels do not apply unless asked. Every srx reader of video files turns them upright."""
    path = portrait_phone_video(tmp_path / "phone.mp4", frames=4, size=(48, 32))
    stored = stored_frames(path)
    assert len(stored) == 4 and stored[0].shape == (32, 48, 3)
    got = [frame for _, frame in video_frames(path)]
    assert [g.shape for g in got] == [(48, 32, 3)] * 4
    for g, s in zip(got, stored):
        np.testing.assert_array_equal(g, cv2.rotate(s, cv2.ROTATE_90_CLOCKWISE))


def test_float_images_in_0_to_1_and_0_to_255_read_alike(tmp_path):
    """A float TIFF holds 0..1 (the usual) or 0..255 (8-bit values saved as floats): both read as
    the same 8-bit picture, not the second as nearly all white; beyond 255 is one clear error."""
    from PIL import Image

    photo = synthetic_photo(12, 16)[..., 1]
    for name, scale in (("unit.tif", 1 / 255), ("bytes.tif", 1.0)):
        Image.fromarray(photo.astype(np.float32) * np.float32(scale), mode="F").save(tmp_path / name)
        np.testing.assert_array_equal(read_image(tmp_path / name), photo)
    Image.fromarray(photo.astype(np.float32) * 300, mode="F").save(tmp_path / "hdr.tif")
    with pytest.raises(SrxError, match="float image with values up to .*; expected 0..1 or 0..255"):
        read_image(tmp_path / "hdr.tif")


def test_a_png_colour_profile_raises_no_libpng_warning(tmp_path):
    """libpng prints its complaint about a faulty embedded colour profile (iCCP) straight to stderr;
    srx reads the pixels without the profile, which OpenCV ignores anyway: the same pixels, and no
    line of library chatter in a command's output. Checked in a subprocess (the warning is written
    to the process's stderr, past pytest's capture), against OpenCV alone, which does warn."""
    import struct
    import subprocess
    import sys
    import zlib

    import cv2

    ok, buf = cv2.imencode(".png", _asymmetric())
    raw = buf.tobytes()
    body = b"ICC Profile\x00\x00" + zlib.compress(b"\x00" * 200)  # a profile libpng finds too short
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    after_header = 8 + 12 + 13  # the signature, then IHDR (13 bytes of data)
    path = tmp_path / "profiled.png"
    path.write_bytes(raw[:after_header] + chunk + raw[after_header:])
    code = ("import sys, cv2, numpy as np; from srx.imageio import read_image; "
            "img = read_image(sys.argv[1]) if sys.argv[2] == 'srx' else "
            "cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_UNCHANGED); "
            "np.save(sys.argv[3], img)")
    err = {}
    for how in ("srx", "opencv"):
        res = subprocess.run([sys.executable, "-c", code, str(path), how, str(tmp_path / f"{how}.npy")],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        err[how] = res.stderr
    assert "libpng warning: iCCP" in err["opencv"] and err["srx"] == ""
    np.testing.assert_array_equal(np.load(tmp_path / "srx.npy"), np.load(tmp_path / "opencv.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "srx.npy"), _asymmetric())



def test_a_folder_lists_its_own_images_not_hidden_ones_and_says_what_sub_folders_hold(tmp_path, caplog):
    """A folder's own images, sorted; hidden files (macOS's `._x.png` copies) left out; images in its
    sub-folders are not read, and a warning says how many (a folder of sub-folders only: an error)."""
    import logging

    import cv2

    from srx.errors import SrxError
    from srx.imageio import list_images

    picture = np.full((20, 20, 3), 128, np.uint8)
    (tmp_path / "cam1" / "day1").mkdir(parents=True)
    for name in ("cam1/day1/a.png", "cam1/day1/b.png"):
        cv2.imwrite(str(tmp_path / name), picture)
    with pytest.raises(SrxError, match=r"holds no images itself, but its sub-folders hold 2 images .*pass each "
                                       r"sub-folder \(e.g. .*cam1/day1\) as a folder of its own"):
        list_images(tmp_path)
    for name in ("z.png", "a.jpg", ".hidden.png", "._z.png"):
        cv2.imwrite(str(tmp_path / name), picture)
    caplog.set_level(logging.WARNING, logger="srx")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "z.png"]
    assert "2 images in its sub-folders left out" in caplog.text
    caplog.clear()
    list_images(tmp_path)
    assert caplog.text == ""  # said once
    assert [p.name for p in list_images(tmp_path / "cam1" / "day1")] == ["a.png", "b.png"]


def test_an_empty_or_broken_file_is_said_the_same_way_by_every_reader(tmp_path):
    """A zero-byte image is 'empty (0 bytes)' to eval, compare, parity and train as to upscale, and
    a broken one 'cannot be decoded'; each message names the file."""
    empty, broken = tmp_path / "zero.png", tmp_path / "broken.png"
    empty.write_bytes(b"")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    for reader in (read_image, read_frame):
        with pytest.raises(SrxError, match=f"image {empty} is empty \\(0 bytes\\)"):
            reader(empty)
        with pytest.raises(SrxError, match=f"{broken}.*corrupt, truncated or not an image"):
            reader(broken)


def test_a_float_image_file_is_guessed_whole_and_said(tmp_path, caplog):
    """A float image file's range (0..1 or 0..255) is guessed from the whole image and said in the
    log; `read_frame` (srx upscale) hands it over as 8 bits, alpha kept, since the Upscaler takes
    floats as 0..1 only. NaN alone or infinity is one SrxError, with no numpy warning first."""
    import warnings

    colour = synthetic_photo(12, 16, seed=1)
    alpha = np.tile(np.arange(16, dtype=np.uint8) * 17, (12, 1))
    bgra = np.dstack([colour, alpha])
    for name, scale, said in (("unit.tiff", 1 / 255, "read as 0..1"), ("bytes.tiff", 1.0, "read as 0..255")):
        path = tmp_path / name
        assert cv2.imwrite(str(path), bgra.astype(np.float32) * np.float32(scale))
        caplog.clear()
        with caplog.at_level("INFO", logger="srx"):
            got = read_frame(path)
        assert got.dtype == np.uint8 and np.array_equal(got, bgra)
        assert f"float image {name} with values up to" in caplog.text and said in caplog.text
        np.testing.assert_array_equal(read_image(path), colour)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # np.nanmax's "All-NaN slice encountered" would fail here
        with pytest.raises(SrxError, match="float image holds NaN only; expected 0..1 or 0..255"):
            to_uint8(np.full((4, 4), np.nan, np.float32))
        with pytest.raises(SrxError, match="float image holds infinite values"):
            to_uint8(np.where(np.eye(4) > 0, -np.inf, 0.5).astype(np.float32))


def test_big_endian_16_bit_pixels_are_16_bit_pixels():
    deep = synthetic_photo(6, 8).astype(np.uint16) * 257 + 128
    np.testing.assert_array_equal(to_uint8(deep.astype(">u2")), to_uint8(deep))


def test_a_0_to_1_float_file_that_overshoots_a_little_upscales_as_the_library_reads_it(tmp_path, tiny_checkpoint):
    """A 0..1 float TIFF with one pixel at 1.002 (a sharpening overshoot) was read as 0..255 and came
    out of `srx upscale` black, exit 0, while `Upscaler.upscale` takes the same pixels as 0..1
    (clipped, up to UNIT_FLOAT_SLACK). Through the real CLI: the same picture as the file with that
    pixel at 1.0; 0..255 data is still read as such, and beyond 255 is one error line. Written
    losslessly: OpenCV 4 codes float TIFFs as lossy LogLuv by default."""
    from typer.testing import CliRunner

    from srx.cli import app
    from srx.imageio import UNIT_FLOAT_SLACK
    from tests.conftest import assert_one_error_line

    ckpt = tiny_checkpoint(2)
    unit = synthetic_photo(20, 24).astype(np.float32) / 255
    cases = {"unit": unit, "white": unit.copy(), "over": unit.copy(), "slack": unit.copy(), "bytes": unit * 255}
    cases["white"][0, 0, 0] = 1.0
    cases["over"][0, 0, 0] = 1.002
    cases["slack"][0, 0, 0] = 1.0 + UNIT_FLOAT_SLACK  # the library's own limit: still 0..1
    runner, got = CliRunner(), {}
    for name, img in cases.items():
        src, out = tmp_path / f"{name}.tif", tmp_path / f"{name}.png"
        assert cv2.imwrite(str(src), img, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
        res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "-w", str(ckpt), "--backend", "torch",
                                  "--scale", "2"])
        assert res.exit_code == 0, res.output
        got[name] = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got["unit"].mean() > 60  # a picture, not black (the 1.002 file's mean was 0.5)
    for name, same_as in (("over", "white"), ("slack", "white"), ("bytes", "unit")):  # clipped to 1.0
        np.testing.assert_array_equal(got[name], got[same_as], err_msg=name)
    hdr = tmp_path / "hdr.tif"
    assert cv2.imwrite(str(hdr), unit * 300, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    res = runner.invoke(app, ["upscale", str(hdr), "--out", str(tmp_path / "hdr.png"), "-w", str(ckpt), "--backend",
                              "torch", "--scale", "2"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, "with values up to")


def test_a_float_beyond_its_limit_is_said_with_the_digits_that_show_it():
    """1.5001 was refused as "values from 1.5 to 1.5" (%.4g rounds it to the accepted 1.5)."""
    from srx.imageio import unit_float_to_uint8

    with pytest.raises(SrxError, match=r"values from 0\.2 to 1\.5001; expected 0\.\.1 floats"):
        unit_float_to_uint8(np.array([[0.2, 1.5001]], np.float64))
    with pytest.raises(SrxError, match=r"values from -0\.50001 to 0\.3; expected 0\.\.1 floats"):
        unit_float_to_uint8(np.array([[-0.50001, 0.3]], np.float64))
    with pytest.raises(SrxError, match=r"values from 1\.5001 to 1\.5001;"):  # both ends as precise
        unit_float_to_uint8(np.full((2, 2), 1.5001, np.float32))
    with pytest.raises(SrxError, match=r"float image with values up to 255\.002; expected 0\.\.1 or 0\.\.255"):
        to_uint8(np.full((2, 2), 255.002, np.float32))


def test_a_video_file_without_video_is_said_as_such(tmp_path):
    """An empty file and a file of sound alone (an .mp4 of a voice memo) were both 'cannot be opened
    (corrupt, truncated or a codec this OpenCV lacks)'."""
    from srx.errors import SrxError
    from srx.imageio import open_video

    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SrxError, match=r"video .*empty.mp4 is empty \(0 bytes\)$"):
        open_video(tmp_path / "empty.mp4")
    sound_only_file(tmp_path / "memo.mp4")
    with pytest.raises(SrxError, match=r"memo.mp4 holds sound but no video; expected a video$"):
        open_video(tmp_path / "memo.mp4")
