"""`srx upscale`, `srx bench` and `srx doctor` through the real CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from srx.cli import app
from tests.conftest import (assert_one_error_line, frame_times_ms, portrait_phone_video, pyav_video, silent_video,
                            stored_frames, synthetic_photo, variable_rate_video, video_with_sound)

runner = CliRunner()


def _video(path: Path, frames: int, size: tuple[int, int], fps: float = 8.0) -> Path:
    return silent_video(path, frames, size, fps)


def _frames(path: Path) -> tuple[int, tuple[int, ...], float]:
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, ()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, shape, fps


def test_upscale_folder_keeps_stems_and_writes_png(image_folder, ckpt, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(image_folder), "--out", str(out), "--weights", str(ckpt(3)),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"img{i}.png" for i in range(4)]
    for i in range(4):
        src = cv2.imread(str(image_folder / f"img{i}.png"))
        got = cv2.imread(str(out / f"img{i}.png"))
        assert got.shape == (src.shape[0] * 3, src.shape[1] * 3, 3)
    assert "upscaled 4 of 4" in res.output
    jpg = runner.invoke(app, ["upscale", str(image_folder / "img1.png"), "--out", str(tmp_path / "jpgs"),
                              "--weights", str(ckpt(3)), "--format", "jpg", "--backend", "torch"])
    assert jpg.exit_code == 0, jpg.output
    assert (tmp_path / "jpgs" / "img1.jpg").is_file()


def test_upscale_folder_onto_a_disk_that_fills_goes_on_and_names_each_image_not_written(image_folder, ckpt, tmp_path,
                                                                                       small_disk):
    """write_image's OSError on a full disk was a traceback that stopped the folder at its first failed
    image; now each image is tried, those that fit are written, and one line names the others."""
    from tests.conftest import fill_disk

    args = ["--weights", str(ckpt(3)), "--no-progress"]
    assert runner.invoke(app, ["upscale", str(image_folder / "img0.png"), "--out", str(tmp_path / "one")] + args).exit_code == 0
    first = (tmp_path / "one" / "img0.png").stat().st_size
    disk = small_disk(1024)
    fill_disk(disk, leave_kib=-(-first // 4096) * 4)  # room for img0's pages; the others are larger
    res = runner.invoke(app, ["upscale", str(image_folder), "--out", str(disk / "up")] + args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    written = sorted(p.name for p in (disk / "up").iterdir())
    assert written and all(not n.startswith(".") for n in written)  # no temporary file left
    failed = [f"img{i}.png" for i in range(4) if f"img{i}.png" not in written]
    assert failed, written
    error = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith(f"error: {len(failed)} of 4 inputs could not be upscaled: ")
    for name in failed:  # each one tried, after the first that failed too
        assert f"cannot write {disk / 'up' / name}: no space left on device (the disk is full)" in error[0]


def test_upscale_recursive_mirrors_an_nvr_export_and_skips_its_own_output(ckpt, tmp_path):
    """An export by day and camera: --recursive finds every image and video below the folder and
    writes each at the same place under --out; a hidden folder and --out itself (inside the input
    here, from an earlier run) are not input. Without it, the message says where the files are."""
    export = tmp_path / "export"
    for rel, seed in (("2026-12-01/gate/a.png", 1), ("2026-12-01/door/a.png", 2), ("2026-12-02/gate/b.jpg", 3),
                      (".thumbs/t.png", 4)):
        (export / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(export / rel), synthetic_photo(20, 24, seed=seed))
    silent_video(export / "2026-12-02" / "gate" / "clip.avi", 3, (24, 20))
    res = runner.invoke(app, ["upscale", str(export), "--out", str(export / "up"), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 1 and "its subfolders may: add --recursive" in res.output
    out = export / "up"
    (out / "2026-12-01" / "gate").mkdir(parents=True)
    cv2.imwrite(str(out / "2026-12-01" / "gate" / "old.png"), synthetic_photo(20, 24))  # an earlier run's output
    for _ in range(2):  # a second run finds the same inputs, not the first run's outputs
        res = runner.invoke(app, ["upscale", str(export), "--out", str(out), "-r", "-w", str(ckpt(2)), "--no-progress"])
        assert res.exit_code == 0, res.output
        assert "upscaled 4 of 4" in res.output
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == ["2026-12-01/door/a.png", "2026-12-01/gate/a.png", "2026-12-01/gate/old.png",
                   "2026-12-02/gate/b.png", "2026-12-02/gate/clip.avi"]
    assert cv2.imread(str(out / "2026-12-01" / "door" / "a.png")).shape == (40, 48, 3)
    door, gate = (cv2.imread(str(out / "2026-12-01" / cam / "a.png")) for cam in ("door", "gate"))
    assert not np.array_equal(door, gate)  # the two a.png went each to its own place
    # two broken files of one name in two cameras' folders: the error tells them apart
    for cam in ("gate", "door"):
        (export / "2026-12-03" / cam).mkdir(parents=True)
        (export / "2026-12-03" / cam / "c.png").write_bytes(b"")
    res = runner.invoke(app, ["upscale", str(export), "--out", str(out), "-r", "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 1 and "2 of 6 inputs could not be upscaled" in res.output
    for cam in ("gate", "door"):
        assert f"image {export / '2026-12-03' / cam / 'c.png'} is empty (0 bytes)" in res.output.replace("\n", "")


def test_upscale_single_file_to_a_named_output(ckpt, onnx_graphs, tmp_path):
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), synthetic_photo(21, 27))
    out = tmp_path / "big.png"
    res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "--model", str(onnx_graphs(2)[0])])
    assert res.exit_code == 0, res.output
    assert cv2.imread(str(out)).shape == (42, 54, 3)  # the model's scale, no --scale needed


def test_upscale_names_same_named_inputs_by_their_folder_and_does_each_file_once(ckpt, tmp_path, caplog):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.png"), synthetic_photo(21, 27, seed=len(folder)))
    cv2.imwrite(str(tmp_path / "x" / "a.jpg"), synthetic_photo(21, 27))
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="srx"):
        res = runner.invoke(app, ["upscale", str(tmp_path / "x" / "a.png"), str(tmp_path / "y" / "a.png"),
                                  str(tmp_path / "x" / "a.jpg"), str(tmp_path / "x" / "a.png"), "--out", str(out),
                                  "--weights", str(ckpt(3)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["a-jpg.png", "a-y.png", "a.png"]
    assert "upscaled 3 of 3 inputs" in res.output
    assert "given twice; upscaling it once" in caplog.text and f"a-y.png ({out / 'a.png'} is the output of" in caplog.text


def test_upscale_into_the_inputs_folder_writes_over_no_input(ckpt, tmp_path):
    """`srx upscale . --out .` wrote photo.jpg's output over the original photo.png, then upscaled that
    again (a nine-times picture), and scan.tif's over scan.png, which it had just refused to write over
    with its own (a user trial lost its originals). Any output that is an input is refused before any
    work; an input that already has its output's name keeps it (a.png, not a.jpg, becomes a.png)."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, name in enumerate(("photo.png", "photo.jpg", "scan.png", "scan.tif", "clip.JPG")):
        cv2.imwrite(str(folder / name), synthetic_photo(21, 27, seed=i))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    res = runner.invoke(app, ["upscale", str(folder), "--out", str(folder), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 1
    assert_one_error_line(res.output, f"--out {folder} would write over 2 of the inputs with their outputs: "
                                      f"{folder / 'photo.png'}, {folder / 'scan.png'}; expected a folder where")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(folder), "--out", str(out), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["clip.png", "photo-jpg.png", "photo.png", "scan-tif.png", "scan.png"]
    assert cv2.imread(str(out / "photo.png")).shape == (42, 54, 3)


def test_upscale_turns_phone_pictures_upright(ckpt, tmp_path):
    """A phone's portrait photo (EXIF orientation) and video (a rotation in the container) come out
    upright: srx's outputs carry no orientation of their own, so a sideways copy would stay sideways."""
    from PIL import Image

    photo = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    Image.fromarray(synthetic_photo(20, 30)[..., ::-1]).save(photo, exif=exif.tobytes(), quality=95)
    video = portrait_phone_video(tmp_path / "portrait.mp4", frames=3, size=(48, 32))
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(photo), str(video), "--out", str(out), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert cv2.imread(str(out / "portrait.png")).shape == (60, 40, 3)
    assert [f.shape for f in stored_frames(out / "portrait.mp4")] == [(96, 64, 3)] * 3


def test_upscale_keeps_each_frame_of_a_variable_rate_video_at_its_time(ckpt, tmp_path):
    """Bursts and gaps (what a phone, or an NVR thinning out a quiet night, records): at a constant
    rate the clip would play about 14 % short and drift from its sound; each frame keeps its own time.
    An .avi too (it put every frame 1/fps after the one before, the frame of 3.0 s at 2.4 s): there
    each frame goes to the slot of its time at the source's base rate (30 fps here), to the nearest
    slot, the slots between empty."""
    times = [0, 33, 67, 100, 400, 700, 1000, 1033, 1067, 1100, 1500, 2000, 2500, 3000, 3033]
    src = variable_rate_video(tmp_path / "vfr.mp4", times)
    assert frame_times_ms(src) == pytest.approx(times, abs=0.5)
    for suffix in (".mp4", ".mkv", ".avi"):
        out = tmp_path / f"up{suffix}"
        res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "-w", str(ckpt(2)), "--no-progress"])
        assert res.exit_code == 0, res.output
        assert frame_times_ms(out) == pytest.approx(times, abs=1.0 if suffix != ".avi" else 1000 / 30 / 2), suffix
        assert [f.shape for f in stored_frames(out)] == [(64, 96, 3)] * len(times)


def test_upscale_video_keeps_frame_count_and_fps(ckpt, tmp_path):
    src = _video(tmp_path / "clip.avi", frames=7, size=(40, 30), fps=8.0)
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "--weights", str(ckpt(2)), "--scale", "2"])
    assert res.exit_code == 0, res.output
    n, shape, fps = _frames(out / "clip.avi")
    assert (n, shape) == (7, (60, 80, 3))
    assert abs(fps - 8.0) < 1e-3
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind
    named = tmp_path / "big.mp4"  # a single video to a named file, another container
    res = runner.invoke(app, ["upscale", str(src), "--out", str(named), "--weights", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert _frames(named)[:2] == (7, (60, 80, 3))



def test_a_video_of_non_square_pixels_is_upscaled_to_square_ones(ckpt, tmp_path, caplog):
    """A PAL camera's recording (pixels 12:11 wide, as an NVR exports a D1 channel): the upscaled
    video said nothing of the pixels' shape, so every player showed it 8 % too narrow. Now the
    output is resampled to square pixels, as a player shows the source, and the log line says so."""
    import logging

    from tests.camera.conftest import camera_ts

    caplog.set_level(logging.INFO, logger="srx")
    src = tmp_path / "d1.ts"
    camera_ts(src, parts=((44, 36, 6),), sar=(12, 11))
    out = tmp_path / "d1_x2.mp4"
    res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "--weights", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert _frames(out)[:2] == (6, (72, 96, 3)), "88x72 at 12:11 is 96x72 in square pixels"
    assert "d1.ts: 44x36 at 10 fps -> 96x72 (its pixels are 12:11 wide: resampled to square ones, as a player shows " \
           "it)" in caplog.text, caplog.text
    assert "interlaced" not in caplog.text
    camera_ts(src, parts=((44, 36, 6),), interlaced=True)  # an analogue camera's fields: said, not deinterlaced
    res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "--weights", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert ("d1.ts is interlaced: its fields are upscaled as they are, combed (srx reads videos through OpenCV, "
            "which does not deinterlace); deinterlace it first, e.g. ffmpeg -i d1.ts -vf yadif OUT") in caplog.text


def test_bad_inputs_fail_alone_and_are_listed(ckpt, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), synthetic_photo(20, 24))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    good_video = _video(folder / "good.avi", frames=4, size=(24, 16))
    data = _video(tmp_path / "long.avi", frames=30, size=(48, 32)).read_bytes()
    (folder / "cut.avi").write_bytes(data[: len(data) // 2])  # truncated: header says 30 frames
    (folder / "junk.mp4").write_bytes(b"not a video at all" * 10)
    missing = tmp_path / "missing.png"
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(folder), str(missing), str(notes), "--out", str(out),
                              "--weights", str(ckpt(3)), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert (out / "good.png").is_file() and _frames(out / good_video.name)[0] == 4  # the batch went on
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]  # one line names every failure
    assert len(errors) == 1 and errors[0].startswith("error: 7 of 9 inputs could not be upscaled: "), res.output
    listed = errors[0].split(": ", 2)[-1].split("; ")
    for name, why in [("corrupt.png", "cannot be decoded"), ("empty.jpg", "empty"), ("dot.png", "too small"),
                      ("cut.avi", "truncated"), ("junk.mp4", "cannot be opened"), ("missing.png", "does not exist"),
                      ("notes.txt", "not an image or video")]:
        line = next((ln for ln in listed if name in ln), "")
        assert why in line, (name, listed)
    assert "upscaled 2 of 9" in res.output
    one = runner.invoke(app, ["upscale", str(folder / "corrupt.png"), "--out", str(tmp_path / "x.png"),
                              "--weights", str(ckpt(3)), "--no-progress"])
    assert one.exit_code == 1 and "x.png" not in one.output  # it names no file it never wrote
    assert_one_error_line(one.output, f"1 of 1 inputs could not be upscaled: image {folder / 'corrupt.png'} cannot be decoded")
    assert res.output.count("cut.avi is truncated") == 1  # said once, in the list, not also as it happened


def test_upscale_says_what_a_file_loses(ckpt, tmp_path, caplog):
    """A multi-page TIFF gives its first page (and says so); an odd-sized video written as 4:2:0
    (.avi MJPEG, like .mp4 H.264) says it loses its last column and row."""
    pages = tmp_path / "scan.tif"
    cv2.imwritemulti(str(pages), [synthetic_photo(20, 24, seed=i) for i in range(3)])
    with caplog.at_level("INFO", logger="srx"):
        res = runner.invoke(app, ["upscale", str(pages), "--out", str(tmp_path / "scan_x3.tif"), "--weights",
                                  str(ckpt(3)), "--backend", "torch"])
    assert res.exit_code == 0, res.output
    assert "scan.tif holds 3 pages; the first is upscaled" in caplog.text
    assert cv2.imread(str(tmp_path / "scan_x3.tif")).shape == (60, 72, 3)
    from PIL import Image  # an animated WebP gave its first frame unsaid

    frames = [Image.fromarray(synthetic_photo(20, 24, seed=i)) for i in range(2)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    with caplog.at_level("INFO", logger="srx"):
        res = runner.invoke(app, ["upscale", str(tmp_path / "anim.webp"), "--out", str(tmp_path / "anim_x3.png"),
                                  "--weights", str(ckpt(3)), "--backend", "torch"])
    assert res.exit_code == 0 and "anim.webp holds 2 frames (an animation); the first is upscaled" in caplog.text
    clip = pyav_video(tmp_path / "odd.mkv", "ffv1", "bgr0", (25, 21), 3)  # 25x21: FFV1 keeps odd sides
    caplog.clear()
    with caplog.at_level("INFO", logger="srx"):
        res = runner.invoke(app, ["upscale", str(clip), "--out", str(tmp_path / "odd_x3.avi"), "--weights",
                                  str(ckpt(3)), "--backend", "torch", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "odd_x3.avi: MJPEG (4:2:0) needs even sides; the last column/row of 75x63 is left out" in caplog.text


@pytest.mark.parametrize("case,match", [
    ("out-is-file", "exists as a file; expected a folder"),
    ("wrong-kind", "unknown kind"),
    ("scale-mismatch", "holds a x3 model but x2"),
    ("bad-scale", "unsupported scale"),
    ("bad-format", "--format 'gif'"),
])
def test_fatal_problems_are_one_line_and_exit_1(ckpt, image_folder, tmp_path, case, match):
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["upscale", str(image_folder), "--no-progress"]
    args = {
        "out-is-file": base + ["--out", str(afile), "--weights", str(ckpt(3))],
        "wrong-kind": base + ["--out", str(tmp_path / "o"), "--model", str(image_folder / "img0.png")],
        "scale-mismatch": base + ["--out", str(tmp_path / "o"), "--weights", str(ckpt(3)), "--scale", "2"],
        "bad-scale": base + ["--out", str(tmp_path / "o"), "--weights", str(ckpt(3)), "--scale", "5"],
        "bad-format": base + ["--out", str(tmp_path / "o"), "--weights", str(ckpt(3)), "--format", "gif"],
    }[case]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, match)


def test_a_wrong_scale_is_said_before_the_checkpoint_is_exported(ckpt, image_folder, tmp_path, caplog, monkeypatch):
    import logging

    monkeypatch.setenv("SRX_CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG, logger="srx")
    res = runner.invoke(app, ["upscale", str(image_folder / "img0.png"), "--out", str(tmp_path / "o.png"),
                              "--weights", str(ckpt(3)), "--scale", "2"])
    assert_one_error_line(res.output, "holds a x3 model but x2 was asked for; pass --scale 3")
    assert "exporting" not in caplog.text and not (tmp_path / "cache").exists()


def test_a_model_file_of_the_wrong_scale_prints_its_error_and_no_backend_line(onnx_graphs, image_folder, tmp_path,
                                                                              caplog):
    with caplog.at_level("INFO", logger="srx"):
        res = runner.invoke(app, ["upscale", str(image_folder / "img0.png"), "--out", str(tmp_path / "o.png"),
                                  "--model", str(onnx_graphs(2)[0]), "--scale", "4"])
    assert res.exit_code == 1, res.output
    assert_one_error_line(res.output, "holds a x2 model but x4 was asked for; pass --scale 2")
    assert "backend:" not in caplog.text + res.output


def test_upscale_reads_a_raw_h264_stream_as_eval_and_train_do(ckpt, tmp_path):
    """An NVR's raw H.264 export (.h264, no container): every command takes the same video suffixes."""
    from srx.imageio import VIDEO_SUFFIXES, is_video

    raw = pyav_video(tmp_path / "cam.h264", "libx264", "yuv420p", (48, 32), 6, fmt="h264")
    assert is_video(raw) and {".wmv", ".flv", ".h264", ".264"} <= set(VIDEO_SUFFIXES)
    res = runner.invoke(app, ["upscale", str(raw), "--out", str(tmp_path / "up.mkv"), "--weights", str(ckpt(3)),
                              "--backend", "torch", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(stored_frames(tmp_path / "up.mkv")) == 6
    # OpenCV gives every frame of a raw stream 0.0 ms: they come out 1/fps apart, not all at time 0
    res = runner.invoke(app, ["upscale", str(raw), "--out", str(tmp_path / "up.mp4"), "--weights", str(ckpt(3)),
                              "--backend", "torch", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert frame_times_ms(tmp_path / "up.mp4") == pytest.approx([0.0, 100.0, 200.0, 300.0, 400.0, 500.0], abs=1)


def test_notes_on_the_inputs_come_once_and_a_bad_tile_before_the_model(ckpt, image_folder, tmp_path, caplog):
    img = image_folder / "img0.png"
    both = tmp_path / "both"
    both.mkdir()
    (both / "a.png").write_bytes(img.read_bytes())
    (both / "a.jpg").write_bytes(img.read_bytes())  # a PNG's bytes under .jpg: OpenCV reads it by content
    with caplog.at_level("INFO", logger="srx"):
        res = runner.invoke(app, ["upscale", str(img), str(img), str(both), "--out", str(tmp_path / "o"),
                                  "--weights", str(ckpt(3)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert caplog.text.count("img0.png is given twice; upscaling it once") == 1
    assert caplog.text.count("a.jpg goes to") == 1  # a.png keeps its name
    caplog.clear()
    with caplog.at_level("INFO", logger="srx"):
        bad = runner.invoke(app, ["upscale", str(img), "--out", str(tmp_path / "t.png"), "--weights", str(ckpt(3)),
                                  "--tile", "0"])
    assert_one_error_line(bad.output, "--tile 0: expected a positive number of pixels")
    assert "backend:" not in caplog.text + bad.output


def test_bench_quick_json(ckpt):
    res = runner.invoke(app, ["bench", "--quick", "--json", "--backend", "torch", "--backend", "onnxruntime"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["gemm_gflops"] > 0 and data["threads"] >= 1
    # the floor uses the fastest GEMM library measured, and says which
    assert data["gemm_gflops"] == pytest.approx(max(data["gemm_gflops_by_library"].values()))
    assert data["gemm_library"] in data["gemm_gflops_by_library"]
    rows = {(r["model"], r["backend"], r["case"]) for r in data["rows"]}
    assert rows == {(m, b, c) for m in ("srcnn", "fast") for b in ("torch", "onnxruntime") for c in ("quick x2", "quick x3")}
    for r in data["rows"]:
        assert r["model_p50_ms"] > 0 and r["e2e_p50_ms"] > 0 and r["floor_ms"] > 0
        assert r["model_over_floor"] == pytest.approx(r["model_p50_ms"] / r["floor_ms"], rel=1e-6)
        assert r["floor_ms"] == pytest.approx(r["model_gflop"] / r["gemm_gflops"] * 1e3, rel=1e-6)
        assert r["graph_gflop"] > 0 and r["model_gflop"] > 0
        assert r["fps"] == pytest.approx(1e3 / r["e2e_p50_ms"], rel=1e-6)  # end to end, colour work included
    table = runner.invoke(app, ["bench", "--quick", "--backend", "onnxruntime"])
    assert table.exit_code == 0 and "GEMM" in table.output


@pytest.mark.parametrize("columns", ["100", "160"])
def test_bench_table_keeps_the_backend_whole_and_names_what_ran(ckpt, monkeypatch, columns):
    """FP16 and FP32 rows told apart at a normal width (the backend column was cut to
    `onnxruntime-…` at any width), and a title naming the models and backends of the rows."""
    monkeypatch.setenv("COLUMNS", columns)
    res = runner.invoke(app, ["bench", "--quick", "--backend", "onnxruntime-fp16", "--backend", "onnxruntime",
                              "-w", "fast", "--case", "quick x3", "--reps", "1"])
    assert res.exit_code == 0, res.output
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("│ fast")]
    assert len(rows) == 2 and "│ onnxruntime-fp16 │" in rows[0] and "│ onnxruntime      │" in rows[1], res.stdout
    assert "…" not in res.stdout
    assert "srx bench: fast on onnxruntime-fp16, onnxruntime," in " ".join(res.stdout.split())


def test_bench_quick_says_its_figures_are_rough_and_counts_its_threads_rightly(ckpt):
    """`srx bench --quick` (3 repetitions of tiny frames: an end-to-end p50 below the model's p50 was
    seen on a shared core) says in its note, under the table and in --json, that its times are rough;
    the title counts one thread as '1 thread' (it said '1 threads'). A full run's note does not."""
    rough = "--quick: tiny frames, few repetitions, a smoke test: its times are rough"
    args = ["bench", "--backend", "onnxruntime", "-w", "fast", "--reps", "1", "--threads", "1"]
    table = runner.invoke(app, [*args, "--quick", "--case", "quick x3"])
    assert table.exit_code == 0, table.output
    flat = " ".join(table.stdout.split())
    assert "srx bench: fast on onnxruntime, 1 thread; floors" in flat and "1 threads" not in flat
    assert rough in flat
    quick = json.loads(runner.invoke(app, [*args, "--quick", "--case", "quick x3", "--json"]).stdout)
    assert quick["note"].startswith(rough)
    full = json.loads(runner.invoke(app, [*args, "--case", "480p x2", "--json"]).stdout)
    assert "--quick" not in full["note"]


def test_bench_unknown_backend_is_one_line(ckpt):
    res = runner.invoke(app, ["bench", "--quick", "--backend", "warp-drive"])
    assert res.exit_code == 1 and "unknown bench backend" in res.output


def test_doctor_names_the_shipped_scales_that_are_missing(tmp_path, monkeypatch):
    import shutil

    import srx.checkpoint
    from srx.doctor import _weights_rows

    shutil.copy(srx.checkpoint._weights_dir() / "fast-x3.pt", tmp_path / "fast-x3.pt")
    monkeypatch.setattr(srx.checkpoint, "_weights_dir", lambda: tmp_path)  # an installation that lost files
    rows = {r.item: r for r in _weights_rows()}
    assert (rows["weights fast"].status, rows["weights fast"].detail) == ("warn", f"x3 in {tmp_path}")
    assert "--scale 2" in rows["weights fast"].fix
    assert (rows["weights camera"].status, rows["weights camera"].detail) == ("missing", "not in this installation")


def test_doctor_reports_every_section():
    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["item"]: r for r in json.loads(res.stdout)}
    for item in ("srx", "torch", "onnxruntime", "onnx", "opencv", "onnxruntime providers", "tensorrt",
                 "pycuda", "opencv FFMPEG", "opencv GStreamer", "weights srcnn", "weights fast", "weights camera",
                 "nvidia-pytriton (srx serve)", "tritonclient (--server clients)"):
        assert item in rows, item
    from srx.runtime.triton_server import pytriton_status

    ok, version = pytriton_status()  # the serve row says what `srx serve` itself finds
    assert rows["nvidia-pytriton (srx serve)"]["status"] == ("ok" if ok else "info")
    assert not ok or rows["nvidia-pytriton (srx serve)"]["detail"] == version
    assert rows["weights camera"]["status"] == "ok" and rows["weights camera"]["detail"].startswith("x2, x3, x4 in ")
    assert any(k.startswith("camera") for k in rows)
    assert "CPUExecutionProvider" in rows["onnxruntime providers"]["detail"]
    for r in rows.values():
        assert r["status"] in ("ok", "missing", "warn", "info")
        if r["status"] == "missing":
            assert r["fix"], r  # every gap comes with its fix
    screen = runner.invoke(app, ["doctor"])
    assert screen.exit_code == 0 and "srx doctor" in screen.output
    if rows["tensorrt"]["status"] == "missing":
        assert "srx[gpu]" in screen.output  # the fix survives the table's markup


def test_upscale_files_keep_gray_alpha_and_16_bit(ckpt, tmp_path, caplog):
    """The README's promises on files, through `srx upscale`: grayscale stays grayscale, an alpha
    channel is enlarged bicubic and kept, a 16-bit image stays 16-bit in a format that holds it
    (PNG, TIFF) and becomes the 8-bit result in one that does not (JPEG)."""
    from srx.runtime.upscaler import create_upscaler

    photo = synthetic_photo(21, 27, seed=4)
    alpha = np.tile(np.linspace(0, 255, 27).astype(np.uint8), (21, 1))
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "gray.png"), photo[..., 1])
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([photo, alpha]))
    cv2.imwrite(str(folder / "deep.png"), photo.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "plain.png"), photo)
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(folder), "--out", str(out), "--weights", str(ckpt(2)), "--scale", "2",
                              "--backend", "torch", "--no-progress"])
    assert res.exit_code == 0, res.output
    got = {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in out.iterdir()}
    with create_upscaler(2, weights=ckpt(2), backend="torch") as up:
        colour = up.upscale(photo)
        gray = up.upscale(photo[..., 1])
    assert got["gray"].shape == (42, 54) and np.array_equal(got["gray"], gray)
    assert got["rgba"].shape == (42, 54, 4) and np.array_equal(got["rgba"][..., :3], colour)
    assert np.array_equal(got["rgba"][..., 3], cv2.resize(alpha, (54, 42), interpolation=cv2.INTER_CUBIC))
    assert got["deep"].dtype == np.uint16 and got["deep"].shape == colour.shape
    assert np.abs(got["deep"].astype(int) - 257 * colour.astype(int)).max() <= 129
    assert np.array_equal(got["plain"], colour)
    with caplog.at_level("INFO", logger="srx"):
        as_jpeg = runner.invoke(app, ["upscale", str(folder / "deep.png"), "--out", str(tmp_path / "deep.jpg"),
                                      "--weights", str(ckpt(2)), "--scale", "2", "--backend", "torch"])
    assert as_jpeg.exit_code == 0, as_jpeg.output
    assert "holds 8 bits only" in caplog.text
    jpeg = cv2.imread(str(tmp_path / "deep.jpg"))
    # JPEG's own loss on top of the 8-bit picture, not OpenCV's clipping of 16-bit values (a white image)
    assert jpeg.dtype == np.uint8 and np.abs(jpeg.astype(float) - colour).mean() < 4


def test_upscaled_videos_keep_their_sound(ckpt, tmp_path):
    """`srx upscale` on videos FFmpeg wrote with sound: the sound comes along (copied into .mp4,
    re-encoded to AAC for Opus into .avi), frames and fps as before; a silent video stays silent."""
    import av

    folder = tmp_path / "in"
    folder.mkdir()
    video_with_sound(folder / "talk.mp4", acodec="aac")
    video_with_sound(folder / "opus.mkv", acodec="libopus")
    video_with_sound(folder / "mute.mp4", acodec=None)
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(folder / "talk.mp4"), str(folder / "mute.mp4"), "--out", str(out),
                              "--weights", str(ckpt(2)), "--scale", "2", "--backend", "torch", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["upscale", str(folder / "opus.mkv"), "--out", str(out / "opus.avi"),
                              "--weights", str(ckpt(2)), "--scale", "2", "--backend", "torch", "--no-progress"])
    assert res.exit_code == 0, res.output
    for name, sound in (("talk.mp4", "aac"), ("opus.avi", "aac"), ("mute.mp4", None)):
        n, shape, fps = _frames(out / name)
        assert (n, shape[:2], round(fps)) == (20, (64, 96), 10), name
        with av.open(str(out / name)) as c:
            assert (c.streams.audio[0].codec_context.name if c.streams.audio else None) == sound, name
            if sound:
                seconds = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].codec_context.sample_rate
                assert abs(seconds - 2.0) < 0.1, (name, seconds)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_sigterm_during_a_video_upscale_leaves_no_partial_file(ckpt, tmp_path):
    """`kill` (a service manager, `docker stop`) ends srx as Ctrl-C does: exit 143 and nothing left
    behind, neither the output nor its hidden temporary file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = _video(tmp_path / "long.avi", frames=400, size=(160, 120))
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, SRX_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "srx", "upscale", str(src), "--out", str(out / "up.mp4"),
                             "--weights", str(ckpt(3)), "--backend", "torch", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".up*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the upscale ended before it could be stopped: " + proc.stdout.read()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, text
    assert list(out.iterdir()) == [], (list(out.iterdir()), text)
    assert "Traceback" not in text


@pytest.mark.parametrize("login_shell", [False, True], ids=["alone", "job-of-bash"])
def test_a_terminal_that_hangs_up_during_a_video_upscale_leaves_no_partial_file(ckpt, tmp_path, login_shell):
    """The SSH session a video upscale was started from closes, srx alone on its terminal or a job of
    the interactive bash (SIGHUP twice, the second while the first's cleanup runs): exit 129 and
    nothing left behind, neither the output nor its hidden temporary file."""
    import os

    from tests.conftest import REPO, srx_until_hangup

    src = _video(tmp_path / "long.avi", frames=400, size=(160, 120))
    out = tmp_path / "out"
    out.mkdir()
    status, seen = srx_until_hangup(
        ["upscale", str(src), "--out", str(out / "up.mp4"), "--weights", str(ckpt(3)), "--backend", "torch"],
        ready=b"/400", cwd=REPO, env={"SRX_CACHE_DIR": str(tmp_path / "cache")}, login_shell=login_shell)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 129, (status, seen[-2000:])
    assert list(out.iterdir()) == [], list(out.iterdir())
    assert b"Traceback" not in seen


def test_upscale_reads_float_tiffs_in_0_to_1_and_0_to_255(ckpt, tmp_path):
    """srx upscale of float32 TIFFs: a file's range is guessed from the whole image (0..1 or
    0..255, one image at a time), then it is upscaled as its 8-bit copy. The Upscaler itself takes
    float frames as 0..1 only, so a 0..255 file reaches it as 8 bits (else it would be refused)."""
    photo = synthetic_photo(20, 24, seed=6)
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "bytes.png"), photo)
    lossless = [cv2.IMWRITE_TIFF_COMPRESSION, 1]  # OpenCV 4 codes float TIFFs as lossy LogLuv by default
    assert cv2.imwrite(str(src / "unit.tiff"), photo.astype(np.float32) / np.float32(255), lossless)
    assert cv2.imwrite(str(src / "wide.tiff"), photo.astype(np.float32), lossless)
    assert cv2.imread(str(src / "wide.tiff"), cv2.IMREAD_UNCHANGED).dtype == np.float32  # stored as floats
    out = tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(src), "--out", str(out), "--weights", str(ckpt(3)), "--no-progress"])
    assert res.exit_code == 0, res.output
    want = cv2.imread(str(out / "bytes.png"))
    assert want.shape == (60, 72, 3)
    for name in ("unit.png", "wide.png"):  # a folder's outputs are written as .png
        got = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and np.array_equal(got, want), name


@pytest.mark.parametrize("name,room", [("v.avi", 64), ("v.mp4", 0), ("v.mov", 0)])
def test_upscaling_a_video_onto_a_full_disk_is_one_error(ckpt, tmp_path, small_disk, name, room):
    """A video upscaled onto a disk that fills: an .avi (MJPEG through OpenCV, which says nothing of a
    failed write) was cut short, 5 of 40 frames, and reported as 'upscaled 1 of 1 inputs', exit 0; an
    .mp4 or .mov onto a disk full from the start crashed the process (the H.264 writer's close after a
    failed header). Now each is one error line naming the disk's reason, exit 1, nothing left behind."""
    import os
    import subprocess
    import sys

    src = silent_video(tmp_path / "clip.avi", 80, (120, 90), fps=10)  # past x264's look-ahead: packets before the end
    from tests.conftest import fill_disk

    card = small_disk(3072, "card")
    fill_disk(card, leave_kib=room)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SRX_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "srx", "upscale", str(src), "--out", str(card / name),
                          "-w", str(ckpt(3)), "--backend", "torch", "--threads", "1", "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)  # -11: the crash; 0: the silent cut
    assert_one_error_line(res.stdout + res.stderr, "No space left on device")
    assert str(card / name) in res.stdout + res.stderr
    assert sorted(p.name for p in card.iterdir()) == ["filler"]


def test_pictures_of_formats_srx_does_not_read_are_named(ckpt, tmp_path, caplog):
    """A GIF alone was 'not an image or video'; in a folder it was left out unsaid (the run said
    '11 of 14 inputs' of a folder of 15 pictures)."""
    folder = tmp_path / "shots"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), synthetic_photo(21, 27))
    (folder / "anim.gif").write_bytes(b"GIF89a" + bytes(64))
    (folder / "notes.txt").write_text("not a picture\n")
    with caplog.at_level("WARNING", logger="srx"):
        res = runner.invoke(app, ["upscale", str(folder), "--out", str(tmp_path / "o"), "-w", str(ckpt(2)),
                                  "--no-progress"])
    assert res.exit_code == 0 and "upscaled 1 of 1 inputs" in res.output, res.output
    assert caplog.text.count(f"{folder}: left out 1 picture(s) in a format srx does not read: anim.gif") == 1
    assert "notes.txt" not in caplog.text
    alone = runner.invoke(app, ["upscale", str(folder / "anim.gif"), "--out", str(tmp_path / "g.png"), "-w",
                                str(ckpt(2))])
    assert_one_error_line(alone.output, "anim.gif is a GIF picture, a format srx does not read; convert it to PNG or JPEG")


def test_a_jpeg_by_another_name_and_netpbm_pictures_are_read(ckpt, tmp_path):
    """.jfif (a browser's JPEG), .jpe and Netpbm's .ppm/.pgm were left out of a folder unsaid and
    'not an image or video' alone."""
    folder = tmp_path / "in"
    folder.mkdir()
    photo = synthetic_photo(21, 27)
    (folder / "web.jfif").write_bytes(cv2.imencode(".jpg", photo)[1].tobytes())
    cv2.imwrite(str(folder / "scan.ppm"), photo)
    cv2.imwrite(str(folder / "gray.pgm"), photo[..., 0])
    res = runner.invoke(app, ["upscale", str(folder), "--out", str(tmp_path / "o"), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0 and "upscaled 3 of 3 inputs" in res.output, res.output
    assert cv2.imread(str(tmp_path / "o" / "web.png")).shape == (42, 54, 3)
    assert cv2.imread(str(tmp_path / "o" / "gray.png"), cv2.IMREAD_UNCHANGED).shape == (42, 54)


def test_a_whole_variable_rate_matroska_video_is_not_called_truncated(ckpt, tmp_path, caplog):
    """Matroska states no frame count, and OpenCV's (its length times its mean rate) is more than a
    variable-rate clip's frames: a whole phone clip was 'truncated: decoded 25 of 37 frames', exit 1,
    in upscale, eval and train. Where no count is stated the last frame's time is weighed against the
    container's length; one cut off is still said."""
    from srx.imageio import video_frames

    times = [i * 100 for i in range(10)] + [2900 + i * 33 for i in range(15)]
    whole = variable_rate_video(tmp_path / "phone.mkv", times, size=(64, 48))
    res = runner.invoke(app, ["upscale", str(whole), "--out", str(tmp_path / "up.mkv"), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    with caplog.at_level("WARNING", logger="srx"):
        assert len(list(video_frames(whole))) == 25
    assert "stopped decoding" not in caplog.text
    long = variable_rate_video(tmp_path / "long.mkv", [i * 100 for i in range(80)], size=(64, 48))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    res = runner.invoke(app, ["upscale", str(cut), "--out", str(tmp_path / "cut-up.mkv"), "-w", str(ckpt(2)),
                              "--no-progress"])
    assert res.exit_code == 1 and "cut.mkv is truncated: decoded" in res.output, res.output


def test_a_recursive_run_says_what_its_output_folder_leaves_out(ckpt, tmp_path, caplog):
    """`-r --out` the input folder itself said the folder 'holds no images or videos'; `-r --out` a
    subfolder left the originals in it out unsaid. The output folder is still never read as input."""
    folder = tmp_path / "e"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.jpg"), synthetic_photo(21, 27))
    cv2.imwrite(str(folder / "sub" / "b.jpg"), synthetic_photo(21, 27, seed=1))
    res = runner.invoke(app, ["upscale", str(folder), "-r", "--out", str(folder), "-w", str(ckpt(2))])
    assert_one_error_line(res.output, f"folder {folder}: its 2 files of images and videos are all under --out")
    with caplog.at_level("WARNING", logger="srx"):
        res = runner.invoke(app, ["upscale", str(folder), "-r", "--out", str(folder / "sub"), "-w", str(ckpt(2)),
                                  "--no-progress"])
    assert res.exit_code == 0 and "upscaled 1 of 1 inputs" in res.output, res.output
    assert f"left out 1 file of images and videos under --out {folder / 'sub'}" in caplog.text


def test_an_input_whose_name_matches_exactly_keeps_it(ckpt, tmp_path):
    """a.PNG took a.png from the real a.png (case was folded first)."""
    folder = tmp_path / "c"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.PNG"), synthetic_photo(21, 27))
    cv2.imwrite(str(folder / "a.png"), synthetic_photo(21, 27, seed=1))
    res = runner.invoke(app, ["upscale", str(folder), "--out", str(tmp_path / "o"), "-w", str(ckpt(2)), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a-png.png", "a.png"]
    small = cv2.resize(cv2.imread(str(tmp_path / "o" / "a.png")), (27, 21), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - synthetic_photo(21, 27, seed=1).astype(int)).mean() < 12
