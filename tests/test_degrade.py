"""Camera-like degradations: spec parsing, determinism, real effect, and the eval/compare/train paths."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from srx.cli import app
from srx.degrade import Degradation, degrade_batch, degrade_for_eval, h264_y, h265_y, jpeg_y, parse_degradation
from srx.errors import SrxError
from srx.protocol import make_pair, psnr
from tests.conftest import assert_one_error_line, synthetic_photo

runner = CliRunner()


def test_spec_round_trip_and_presets():
    d = parse_degradation("jpeg=30..95, noise=0..8,blur=0.2..1.5,shrink=aa|aliased,clean=0.1")
    assert d == Degradation(jpeg=(30, 95), noise=(0, 8), blur=(0.2, 1.5), shrink=("aa", "aliased"), clean=0.1)
    assert parse_degradation(d.spec) == d
    assert parse_degradation("jpeg=50").jpeg == (50, 50) and parse_degradation("jpeg=50").spec == "jpeg=50"
    assert parse_degradation("camera").jpeg is not None and not parse_degradation("camera").is_clean
    assert parse_degradation("none").is_clean and parse_degradation(None).is_clean and str(parse_degradation("")) == "none"


@pytest.mark.parametrize("spec,match", [
    ("jpeg=120", "out of range"),
    ("noise=-1", r"noise=-1: out of range, expected values in 0\.\.50"),
    ("blur=-1..2", "out of range"),
    ("noise=abc", "expected a number or a range"),
    ("jpeg=90..30", "reversed"),
    ("jpeg=30...95", r"jpeg=30\.\.\.95: expected a number or a range a\.\.b"),
    ("sharpen=2", "unknown degradation key 'sharpen'"),
    ("jpeg", "expected key=value"),
    ("shrink=nearest", "expected aa or aliased"),
    ("jpeg=50,jpeg=60", "given twice"),
    ("clean=2", "out of range"),
    ("noise=0..1e9", r"noise=0\.\.1e9: out of range"),
    ("jpeg=50.5", r"JPEG quality is a whole number; expected whole numbers, e\.g\. jpeg=50 or jpeg=30\.\.95"),
    ("h264=20..34.5", "x264's CRF is a whole number"),
    ("camera,jpeg=50", "a preset stands alone; 'camera' is 'jpeg=30..95,noise=0..2,clean=0.5'"),
    ("bogus", r"or a preset \(none, camera, jpeg50\)"),
    ("jpeg=50;noise=2", "keys are separated by commas"),
    ("fps=10", "expected it beside h264= or h265="),
    ("jpeg=50,fps=10", "expected it beside h264= or h265="),
    ("h264=30,fps=5..10", "expected one frame rate"),
    ("h264=30,fps=0", "out of range"),
])
def test_bad_specs_are_named(spec, match):
    with pytest.raises(SrxError, match=match):
        parse_degradation(spec)


def test_preset_names_are_read_in_any_case():
    assert parse_degradation("JPEG50") == parse_degradation("jpeg=50")
    assert parse_degradation(" Camera ") == parse_degradation("camera")
    assert parse_degradation("JPEG=50,Noise=0..2") == parse_degradation("jpeg=50,noise=0..2")  # keys too
    assert str(parse_degradation("noise=-0")) == "noise=0"


def _pair(scale=3, seed=0):
    return make_pair(synthetic_photo(96, 120, seed), scale)


def test_degradation_is_deterministic_under_a_seed():
    hr, lr = _pair()
    hrs, lrs = np.stack([hr[:72, :72]] * 4), np.stack([lr[:24, :24]] * 4)
    d = parse_degradation("camera")
    a = degrade_batch(d, hrs, lrs, 3, seed=0, step=5)
    assert np.array_equal(a, degrade_batch(d, hrs, lrs, 3, seed=0, step=5))
    assert not np.array_equal(a, degrade_batch(d, hrs, lrs, 3, seed=0, step=6))  # another step draws anew
    assert not np.array_equal(a, degrade_batch(d, hrs, lrs, 3, seed=1, step=5))
    assert np.array_equal(degrade_for_eval(d, hr, lr, 3), degrade_for_eval(d, hr, lr, 3))


def test_evaluation_draws_by_the_image_not_by_its_place_in_a_list():
    """Under a ranged spec an image gets the same LR whatever is scored beside it (once it was
    seeded by its index, and one Set5 picture scored 1 dB apart alone and in its folder); another
    image draws anew."""
    hr, lr = _pair()
    d = parse_degradation("jpeg=30..95,noise=0..8")
    alone = degrade_for_eval(d, hr, lr, 3)
    assert np.array_equal(alone, degrade_for_eval(d, hr.copy(), lr.copy(), 3))
    others = [_variant(hr, i) for i in range(1, 5)]
    assert not all(np.array_equal(alone - lr, degrade_for_eval(d, o, lr, 3) - lr) for o in others)


def test_a_video_frame_draws_by_its_number_not_by_how_a_decoder_coloured_it(tmp_path) -> None:
    """OpenCV 4 and 5 decode the CCTV clip's colours about 1.8 levels apart; seeded by the pixels,
    every frame drew another JPEG quality and noise under the `camera` preset there, and the row
    moved by up to 0.43 dB between installs. A frame is seeded by its number: the same draw from
    pixels a decoder shifted, another draw for another frame; frames read by `srx eval` carry it."""
    from srx.evaluate import degrade_each, eval_items

    hr, lr = _pair()
    d = parse_degradation("jpeg=30..95,noise=0..8")
    shifted = np.clip(hr.astype(int) + 2, 0, 255).astype(np.uint8)  # the same frame, another decoder
    at7 = degrade_for_eval(d, hr, lr, 3, frame=7)
    assert np.array_equal(at7, degrade_for_eval(d, shifted, lr, 3, frame=7))
    assert not np.array_equal(degrade_for_eval(d, hr, lr, 3), degrade_for_eval(d, shifted, lr, 3))  # by pixels
    assert not np.array_equal(at7, degrade_for_eval(d, hr, lr, 3, frame=8))
    clip = _video(tmp_path / "cam.avi", 12)
    items = list(eval_items(clip, 3, every=4))
    assert [i.frame for i in items] == [0, 4, 8]
    got = list(degrade_each(items, d, 3))
    assert [g.frame for g in got] == [0, 4, 8]
    assert np.array_equal(got[1].lr_y, degrade_for_eval(d, items[1].hr_y, items[1].lr_y, 3, frame=4))


def _variant(hr: np.ndarray, i: int) -> np.ndarray:
    """`hr` with one pixel changed: another image to the seed, the same picture to the eye."""
    out = hr.copy()
    out[0, 0] = (int(out[0, 0]) + i) % 256
    return out


def test_jpeg_really_changes_the_lr_and_more_at_low_quality():
    hr, lr = _pair()
    q30 = psnr(lr, degrade_for_eval(parse_degradation("jpeg=30"), hr, lr, 3))
    q50 = psnr(lr, degrade_for_eval(parse_degradation("jpeg=50"), hr, lr, 3))
    q95 = psnr(lr, degrade_for_eval(parse_degradation("jpeg=95"), hr, lr, 3))
    assert 22 < q30 < q50 < q95 < 50, (q30, q50, q95)  # visible damage, yet still the same picture
    assert np.array_equal(jpeg_y(lr, 50), degrade_for_eval(parse_degradation("jpeg=50"), hr, lr, 3))
    # the other kinds act too, and a clean spec is the standard protocol exactly
    for spec in ("noise=5", "blur=1.2", "shrink=aliased"):
        out = degrade_for_eval(parse_degradation(spec), hr, lr, 3)
        assert out.shape == lr.shape and 20 < psnr(lr, out) < 60, spec
    assert np.array_equal(degrade_for_eval(parse_degradation("none"), hr, lr, 3), lr)


def test_training_moves_the_block_grid_and_eval_keeps_it_at_the_origin():
    """Training patches are coded with the 8x8 grid at a random offset (a camera frame's grid is
    not at a patch's corner); evaluation codes whole images with the grid at the origin."""
    hr, lr = _pair()
    n = 16
    hrs, lrs = np.stack([hr[:72, :72]] * n), np.stack([lr[:24, :24]] * n)
    d = parse_degradation("jpeg=50")
    out = degrade_batch(d, hrs, lrs, 3, seed=0, step=0)
    at_corner = jpeg_y(lrs[0], 50)
    moved = [not np.array_equal(o, at_corner) for o in out]
    assert sum(moved) >= n - 2  # 63 of the 64 offsets move the grid
    # where the grid moved, the blocks are still JPEG's: each sample is the corner coding of its own
    # mirror-padded plane, cropped back, and stays close to the clean patch
    assert all(out.shape[1:] == (24, 24) and 24 < psnr(lrs[0], o) < 50 for o in out)
    assert np.array_equal(degrade_for_eval(d, hr, lr, 3), jpeg_y(lr, 50))


def _video(path, frames: int, size=(96, 72)):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        w.write(np.roll(synthetic_photo(size[1], size[0], 1), 2 * i, axis=1))
    w.release()
    return path


def test_eval_scores_an_image_the_same_alone_and_in_its_folder_under_a_ranged_spec(image_folder, tiny_checkpoint):
    ckpt = tiny_checkpoint(3)

    def scores(data):
        res = runner.invoke(app, ["eval", "--data", str(data), "-w", str(ckpt), "--degrade", "camera", "--json"])
        assert res.exit_code == 0, res.output
        return {r["name"]: (r["bicubic_psnr"], r["model_psnr"]) for r in json.loads(res.stdout)["images"]}

    folder = scores(image_folder)
    assert scores(image_folder / "img2.png")["img2"] == folder["img2"]
    assert scores(image_folder / "img3.png")["img3"] == folder["img3"]


def test_eval_degrade_on_a_folder_and_a_video(image_folder, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint(3)
    clean = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", str(ckpt), "--json"])
    jpeg = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", str(ckpt), "--json", "--degrade", "jpeg=30"])
    assert clean.exit_code == 0 and jpeg.exit_code == 0, jpeg.output
    c, j = json.loads(clean.stdout), json.loads(jpeg.stdout)
    assert j["degrade"] == "jpeg=30" and c["degrade"] == "none"
    # bicubic and model score the same degraded LR, which costs bicubic too
    assert j["mean"]["bicubic_psnr"] < c["mean"]["bicubic_psnr"] - 0.3
    video = _video(tmp_path / "clip.avi", 12)
    res = runner.invoke(app, ["eval", "--data", str(video), "-w", str(ckpt), "--every", "5", "--json", "--degrade", "jpeg50"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["name"] for r in data["images"]] == ["frame_00000", "frame_00005", "frame_00010"]
    # --frames: the later footage only (what a fine-tuning run kept out of training)
    later = runner.invoke(app, ["eval", "--data", str(video), "-w", str(ckpt), "--every", "2", "--frames", "7:", "--json"])
    assert later.exit_code == 0, later.output
    assert [r["name"] for r in json.loads(later.stdout)["images"]] == ["frame_00007", "frame_00009", "frame_00011"]
    short = runner.invoke(app, ["eval", "--data", str(_video(tmp_path / "short.avi", 3)), "-w", str(ckpt), "--every", "5"])
    assert short.exit_code == 1 and "3 frames, not more than --every 5, so only its first would be used: lower --every" in short.output
    assert "Traceback" not in short.output
    # a range no longer than --every is said before a frame is decoded (the default --every is 10)
    one = runner.invoke(app, ["eval", "--data", str(video), "-w", str(ckpt), "--frames", "6:7"])
    assert one.exit_code == 1 and "--frames 6:7 is 1 frame, not more than --every 10" in one.output
    assert "--every 1 takes each of them" in one.output and len(one.output.strip().splitlines()) == 1
    single = runner.invoke(app, ["eval", "--data", str(video), "-w", str(ckpt), "--frames", "6:7", "--every", "1", "--json"])
    assert single.exit_code == 0 and [r["name"] for r in json.loads(single.stdout)["images"]] == ["frame_00006"]
    bad = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", str(ckpt), "--degrade", "noise=-1"])
    assert bad.exit_code == 1 and bad.output.startswith("error:") and len(bad.output.strip().splitlines()) == 1


def test_compare_writes_the_expected_picture(tmp_path, tiny_checkpoint):
    import cv2

    img = tmp_path / "hr.png"
    cv2.imwrite(str(img), synthetic_photo(150, 180, 3))
    out = tmp_path / "cmp.png"
    a, b = tiny_checkpoint(3, "a.pt"), tiny_checkpoint(3, "b.pt")
    res = runner.invoke(app, ["compare", str(img), "-w", str(a), "-w", f"mine={b}", "--crop", "64", "--zoom", "2",
                              "--out", str(out), "--degrade", "jpeg=40"])
    assert res.exit_code == 0, res.output
    assert ": bicubic " in res.output and " a " in res.output and " mine " in res.output  # panel labels
    pic = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    # 4 panels (HR, bicubic, a, b) of 64 px zoomed x2, 6-px gaps; a 36-px title and 44-px labels;
    # as wide as the title where that is wider
    assert pic.shape[0] == 36 + 44 + 128 and pic.shape[1] >= 4 * 128 + 3 * 6
    assert (pic[:36, -8:] == 255).all() and (pic[:36, :-8] < 200).any()  # the title ends inside the picture
    assert res.output.count(" dB") == 3  # bicubic and the two models, each with its PSNR
    bad = runner.invoke(app, ["compare", str(img), "-w", str(a), "--out", str(tmp_path / "x.jpg")])
    assert bad.exit_code == 1 and "expected a .png" in bad.output


def test_compare_labels_each_panel_with_the_psnr_srx_eval_gives(tmp_path, tiny_checkpoint):
    """Each panel's dB is the standard protocol's (Y, `scale` pixels shaved) between the HR panel and
    that panel, computed here with srx.protocol.psnr, and it is what srx eval scores for the same
    image, degradation and weights: the bicubic column is scored on the same border as the models'."""
    import cv2

    from srx.checkpoint import model_from_checkpoint
    from srx.compare import compare_image
    from srx.evaluate import degraded, evaluate, load_eval_set, torch_predictor

    folder = tmp_path / "one"
    folder.mkdir()
    hr = synthetic_photo(100, 130, 5)
    cv2.imwrite(str(folder / "hr.png"), hr)
    ckpt = tiny_checkpoint(3, "a.pt")
    spec = parse_degradation("jpeg=40").for_eval
    _, panels = compare_image(hr, 3, [("a", ckpt)], spec, "hr.png", crop_size=48)
    assert [p.label for p in panels] == ["HR", "bicubic", "a"] and panels[0].psnr is None
    hr_y = panels[0].y
    assert hr_y.shape == (99, 129)  # the frame cut to a multiple of the scale, as srx eval cuts it
    for p in panels[1:]:
        assert p.psnr == pytest.approx(psnr(hr_y, p.y, 3), abs=1e-9), p.label
    # the shave tells on this frame: bicubic's edge rows score apart from its inside
    assert abs(psnr(hr_y, panels[1].y, 0) - panels[1].psnr) > 0.02  # measured: 0.047 dB
    scored = evaluate(degraded(load_eval_set(folder, 3), spec, 3), 3,
                      torch_predictor(model_from_checkpoint(ckpt, 3)[0]), with_ssim=False)["mean"]
    assert panels[1].psnr == pytest.approx(scored["bicubic_psnr"], abs=1e-6)
    assert panels[2].psnr == pytest.approx(scored["model_psnr"], abs=1e-6)


def test_compare_of_a_cut_off_video_takes_the_middle_of_the_frames_that_decode(tmp_path, tiny_checkpoint, caplog):
    """A Matroska file cut in half still lists 20 frames; without --frame, compare takes the middle of
    the 9 that decode (it once refused with a '--frame 10 is past its end' the user never gave)."""
    from srx.media import FFV1Writer

    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    writer = FFV1Writer(whole, 10, (96, 64))
    for i in range(20):
        writer.write(synthetic_photo(64, 96, seed=i), at_ms=100.0 * i)
    writer.close()
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    ckpt = tiny_checkpoint(3, "a.pt")
    with caplog.at_level("WARNING", logger="srx"):
        res = runner.invoke(app, ["compare", str(cut), "-w", str(ckpt), "--crop", "48", "--out", str(tmp_path / "c.png")])
    assert res.exit_code == 0, res.output
    assert "cut.mkv decodes to 9 frames where its container lists 20; comparing on frame 4, the middle one" in caplog.text
    assert "the crop is 48 px" not in caplog.text
    with caplog.at_level("WARNING", logger="srx"):
        wide = runner.invoke(app, ["compare", str(cut), "-w", str(ckpt), "--crop", "100", "--out", str(tmp_path / "w.png")])
    assert wide.exit_code == 0, wide.output
    assert "the crop is 57 px, what a 96x63 frame holds inside its 3-px border (--crop 100)" in caplog.text
    asked = runner.invoke(app, ["compare", str(cut), "-w", str(ckpt), "--frame", "12", "--out", str(tmp_path / "d.png")])
    assert_one_error_line(asked.output, "cut.mkv ended after 9 frames; --frame 12 is past its end")


def test_compare_panel_labels_fit_over_a_panel(tmp_path):
    from srx.compare import labelled_weights

    run = tmp_path / "my-camera" / "last.pt"
    run.parent.mkdir()
    run.write_bytes(b"")
    assert labelled_weights("camera") == ("camera", "camera")
    assert labelled_weights(str(run)) == ("my-camera/last", str(run))
    assert labelled_weights(str(tmp_path / "weights.pt")) == ("weights", str(tmp_path / "weights.pt"))
    assert labelled_weights(f"tuned={run}") == ("tuned", str(run))
    odd = tmp_path / "a=b.pt"  # an existing file whose name holds "=" is a file, not a label
    odd.write_bytes(b"")
    assert labelled_weights(str(odd)) == ("a=b", str(odd))


def test_train_with_degrade_records_the_spec_and_resumes_with_it(image_folder, tmp_path, caplog):
    """The spec goes into the checkpoint and the resume takes it from there; the run says at its
    start where it writes and what it trains under (both were said only at its end, or never)."""
    import torch

    out = tmp_path / "run"
    base = ["train", "--data", str(image_folder), "--val", str(image_folder), "--scale", "3", "--model", "lrnet-24x5",
            "--patch-size", "24", "--stride", "12", "--batch-size", "4", "--degrade", "camera", "--no-progress",
            "--out", str(out), "--max-steps", "6", "--threads", "1"]
    with caplog.at_level("INFO", logger="srx"):
        res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    assert f"training into {out}: " in caplog.text
    assert f"the LR degraded by {parse_degradation('camera').spec}" in caplog.text
    payload = torch.load(out / "last.pt", weights_only=True)
    assert payload["train_config"]["degrade"] == parse_degradation("camera").spec
    res = runner.invoke(app, ["train", "--resume", str(out / "last.pt"), "--max-steps", "9", "--no-progress"])
    assert res.exit_code == 0, res.output
    payload = torch.load(out / "last.pt", weights_only=True)
    assert payload["step"] == 9 and payload["train_config"]["degrade"] == parse_degradation("camera").spec
    bad = runner.invoke(app, [a if a != "camera" else "jpeg=0..200" for a in base[:-4]] + ["--max-steps", "1"])
    assert bad.exit_code == 1 and "out of range" in bad.output and not (tmp_path / "run2").exists()


def test_h264_is_a_real_encoder_and_lower_crf_keeps_more():
    hr, lr = _pair()
    lr = lr[:31, :39]  # odd sides: padded for 4:2:0 and cropped back
    hi = degrade_for_eval(parse_degradation("h264=18"), hr, lr, 3)
    lo = degrade_for_eval(parse_degradation("h264=40"), hr, lr, 3)
    assert hi.shape == lo.shape == lr.shape
    assert 20 < psnr(lr, lo) < psnr(lr, hi) < 60, (psnr(lr, lo), psnr(lr, hi))
    assert parse_degradation("h264=20..40").spec == "h264=20..40"
    with pytest.raises(SrxError, match="out of range"):
        parse_degradation("h264=60")


def test_the_video_codecs_code_a_frame_of_the_stream_rate_the_spec_gives_on_two_threads():
    """x264's and x265's CRF spend more bits a frame at a lower frame rate: a 10 fps camera's CRF 30
    is a milder coding than the 25 fps the rows assume without fps=. x264 codes a little differently
    on one thread than on two or more, so it is given two on every host (auto picks one on a
    one-core box)."""
    from srx.degrade import _video_coded_y

    hr, lr = _pair()
    at25, at10 = (degrade_for_eval(parse_degradation(s), hr, lr, 3) for s in ("h264=30", "h264=30,fps=10"))
    assert psnr(lr, at10) > psnr(lr, at25) + 0.3, (psnr(lr, at10), psnr(lr, at25))
    assert np.array_equal(at25, degrade_for_eval(parse_degradation("h264=30,fps=25"), hr, lr, 3))
    assert psnr(lr, h265_y(lr, 35, fps=10)) > psnr(lr, h265_y(lr, 35)) + 0.3
    d = parse_degradation("h264=30, fps=10")
    assert d.fps == 10 and d.spec == "h264=30,fps=10" and parse_degradation(d.spec) == d
    assert parse_degradation("h264=30,fps=25").spec == "h264=30"  # the default goes without saying
    assert parse_degradation("h264=30,fps=29.97").spec == "h264=30,fps=29.97"
    from srx.samples import sample_image

    lr = make_pair(sample_image(510, 510, seed=1), 3)[1]  # a Set5-sized plane: smaller ones code alike
    options = {"crf": "30", "preset": "medium"}
    on_two = _video_coded_y(lr, "libx264", "h264", {**options, "threads": "2"})
    assert not np.array_equal(on_two, _video_coded_y(lr, "libx264", "h264", {**options, "threads": "1"}))
    cpus = os.sched_getaffinity(0)
    try:  # a one-core host, as x264 sees it
        os.sched_setaffinity(0, {min(cpus)})
        alone = h264_y(lr, 30)
    finally:
        os.sched_setaffinity(0, cpus)
    assert np.array_equal(alone, on_two) and np.array_equal(h264_y(lr, 30), on_two)


def test_an_evaluation_degrades_every_image_whatever_share_training_left_clean():
    """`clean=0.5` (the camera preset) leaves half the training samples clean; scored under the
    preset, no image is: `srx compare` and training's validation take the spec as it is."""
    hr, lr = _pair()
    d = parse_degradation("jpeg=30..40,clean=0.99")
    outs = [degrade_for_eval(d, _variant(hr, i), lr, 3) for i in range(8)]
    assert not any(np.array_equal(o, lr) for o in outs)


def test_h265_is_a_real_encoder_that_keeps_more_than_h264_at_the_same_crf():
    """x265 through PyAV: lower CRF keeps more, and at one CRF it keeps more than x264 (its CRF scale
    sits about 5 points lower: the README's table pairs 28 with x264's 23)."""
    hr, lr = _pair()
    lr = lr[:31, :39]
    hi = degrade_for_eval(parse_degradation("h265=18"), hr, lr, 3)
    lo = degrade_for_eval(parse_degradation("h265=40"), hr, lr, 3)
    assert hi.shape == lo.shape == lr.shape
    assert 20 < psnr(lr, lo) < psnr(lr, hi) < 60, (psnr(lr, lo), psnr(lr, hi))
    assert psnr(lr, h265_y(lr, 30)) > psnr(lr, h264_y(lr, 30))
    assert parse_degradation("h265=20..40").spec == "h265=20..40"
    assert parse_degradation("jpeg=50,h264=30,h265=30").spec == "jpeg=50,h264=30,h265=30"
    with pytest.raises(SrxError, match="out of range"):
        parse_degradation("h265=52")
    # training patches: the 64-pixel coding-tree grid starts at a random offset, the patch comes back whole
    n = 8
    out = degrade_batch(parse_degradation("h265=28..36"), np.stack([hr[:72, :72]] * n), np.stack([lr[:24, :24]] * n),
                        3, seed=0, step=0)
    assert all(o.shape == (24, 24) and 22 < psnr(lr[:24, :24], o) < 55 for o in out)
    assert len({o.tobytes() for o in out}) > n // 2


def test_a_spec_with_both_codecs_codes_each_sample_with_one_of_them():
    """A camera codes a frame once: with jpeg and h264 both named, each LR goes through exactly one."""
    hr, lr = _pair()
    d = parse_degradation("jpeg=50,h264=30")
    assert d.codecs == ["jpeg", "h264"] and parse_degradation("camera").codecs == ["jpeg"]
    by_jpeg, by_h264 = jpeg_y(lr, 50), h264_y(lr, 30)
    kinds = []
    for index in range(12):
        out = degrade_for_eval(d, _variant(hr, index), lr, 3)
        kinds.append("jpeg" if np.array_equal(out, by_jpeg) else "h264" if np.array_equal(out, by_h264) else "both")
    assert "both" not in kinds and {"jpeg", "h264"} <= set(kinds), kinds
    three = parse_degradation("jpeg=50,h264=30,h265=30")
    by_h265 = h265_y(lr, 30)
    seen = {"jpeg" if np.array_equal(o, by_jpeg) else "h264" if np.array_equal(o, by_h264)
            else "h265" if np.array_equal(o, by_h265) else "other"
            for o in (degrade_for_eval(three, _variant(hr, i), lr, 3) for i in range(18))}
    assert seen == {"jpeg", "h264", "h265"}, seen
    # training patches go through the same path, each with its own draw of codec, level and grid offset
    n = 16
    hrs, lrs = np.stack([hr[:72, :72]] * n), np.stack([lr[:24, :24]] * n)
    out = degrade_batch(d, hrs, lrs, 3, seed=0, step=0)
    assert all(out.shape[1:] == (24, 24) and 22 < psnr(lrs[0], o) < 50 for o in out)
    assert len({o.tobytes() for o in out}) > n // 2


def test_without_pyav_an_h264_spec_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    for spec in ("h264=30", "jpeg=50,h264=20..30", "h265=28"):
        with pytest.raises(SrxError, match="pip install av"):
            parse_degradation(spec)
    assert parse_degradation("camera").codecs == ["jpeg"]  # JPEG alone needs only OpenCV


@pytest.mark.parametrize("codec", ["h264=30", "h265=30"])
def test_video_codecs_take_planes_smaller_than_their_smallest_frame(codec):
    """x265 opens no encoder for a side under 16 px (a 48-px patch at x4 has a 12-px LR side): the
    plane is padded to 16 and cropped back, in training batches and in evaluation."""
    rng = np.random.default_rng(3)
    hr = (rng.random((4, 48, 48)) * 255).astype(np.uint8)
    lr = (rng.random((4, 12, 12)) * 255).astype(np.uint8)
    out = degrade_batch(parse_degradation(codec), hr, lr, 4, seed=0, step=0)
    assert out.shape == lr.shape and not np.array_equal(out, lr)
    tiny = degrade_for_eval(parse_degradation(codec), hr[0][:21, :39], np.tile(lr[0], (1, 2))[:7, :13], 3)
    assert tiny.shape == (7, 13)


def test_compare_of_a_small_image_widens_panels_to_their_labels():
    """A crop narrower than its label (a 24-px image) gets a panel as wide as the label, and the
    title its own width: no label runs into the next panel, none is cut off."""
    import cv2

    from srx.compare import Panel, compose

    y = synthetic_photo(24, 24)[..., 1]
    labels = [Panel("HR", y, None), Panel("bicubic", y, 27.5), Panel("camera", y, 29.25)]
    title = "a-long-file-name.png, x3, LR: jpeg=50; Y channel, PSNR on the whole frame"
    pic = compose(labels, (3, 3, 18), 2, title)
    needs = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2)[0][0] + 16
             for t in ("HR", "bicubic  27.50 dB", "camera  29.25 dB")]
    assert pic.shape[1] >= max(sum(max(n, 36) for n in needs) + 2 * 6,
                               cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)[0][0] + 16)
    assert pic.shape[0] == 36 + 44 + 36
    # each panel's label ends before the next panel starts: a white gap column under every label row
    x = needs[0]
    assert (pic[36:36 + 44, x:x + 6] == 255).all()


def test_training_draws_the_clean_share_and_each_shrink_at_their_odds():
    """`clean=0.1` leaves about one training sample in ten as the standard protocol makes it, and
    `shrink=aa|aliased` shrinks about half without antialiasing (a fixed seed: the same counts
    every run)."""
    from srx.protocol import imresize

    hr, lr = _pair()
    n = 200
    hrs, lrs = np.stack([hr[:72, :72]] * n), np.stack([lr[:24, :24]] * n)
    out = degrade_batch(parse_degradation("noise=3,clean=0.1"), hrs, lrs, 3, seed=0, step=0)
    clean = sum(np.array_equal(o, lrs[0]) for o in out)
    assert 8 <= clean <= 35, clean
    aliased = np.clip(np.floor(imresize(hr[:72, :72].astype(np.float64), 1 / 3, antialias=False) + 0.5), 0, 255)
    out = degrade_batch(parse_degradation("shrink=aa|aliased"), hrs, lrs, 3, seed=0, step=0)
    kinds = [("aliased" if np.array_equal(o, aliased) else "aa" if np.array_equal(o, lrs[0]) else "?") for o in out]
    assert "?" not in kinds and 70 <= kinds.count("aliased") <= 130, kinds.count("aliased")
