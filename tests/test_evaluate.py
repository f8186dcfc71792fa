"""Evaluation sets read one pair at a time: `srx eval` on long footage holds one frame, and scores
what holding them all scored."""
import numpy as np
import pytest

from srx.checkpoint import model_from_checkpoint
from srx.degrade import parse_degradation
from srx.errors import SrxError
from srx.evaluate import (degrade_each, degraded, eval_count, eval_items, evaluate, load_eval_data, robustness_rows,
                          torch_predictor)
from tests.conftest import silent_video, synthetic_photo


def test_a_video_is_scored_as_it_is_decoded(tmp_path, monkeypatch):
    """The first pair comes out after one decoded frame, not after the whole video."""
    import srx.evaluate as evaluate_module

    video = silent_video(tmp_path / "long.avi", 12, (72, 54))
    decoded = []
    real = evaluate_module.video_frames

    def counting(*args, **kwargs):
        for index, frame in real(*args, **kwargs):
            decoded.append(index)
            yield index, frame

    monkeypatch.setattr(evaluate_module, "video_frames", counting)
    items = eval_items(video, 3, every=2)
    first = next(items)
    assert first.name == "frame_00000" and decoded == [0]
    assert [first.name] + [item.name for item in items] == [f"frame_{i:05d}" for i in range(0, 12, 2)]


def test_one_pass_scores_what_a_held_set_scores(image_folder, tiny_checkpoint):
    predict = torch_predictor(model_from_checkpoint(tiny_checkpoint(3))[0])
    held = load_eval_data(image_folder, 3)
    specs = [parse_degradation("none"), parse_degradation("jpeg=40,noise=2")]
    once = robustness_rows(iter(eval_items(image_folder, 3)), 3, specs, {"m": predict})  # a generator: read once
    for spec, row in zip(specs, once):
        alone = evaluate(degraded(held, spec, 3), 3, predict, with_ssim=False)["mean"]
        assert row["count"] == len(held) == 4 and row["degrade"] == str(spec)
        assert row["bicubic_psnr"] == pytest.approx(alone["bicubic_psnr"], abs=1e-9)
        assert row["model_psnr"]["m"] == pytest.approx(alone["model_psnr"], abs=1e-9)
        streamed = evaluate(degrade_each(eval_items(image_folder, 3), spec, 3), 3, predict, with_ssim=False)["mean"]
        assert streamed == pytest.approx(alone, abs=1e-12)


def test_a_folder_without_usable_images_and_an_empty_set_say_so(tmp_path, caplog):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    (folder / "b.png").write_bytes(np.zeros(10, np.uint8).tobytes())
    with pytest.raises(SrxError, match=f"no usable images in {folder}"):
        list(eval_items(folder, 3))
    assert "skipping" in caplog.text and "a.png" in caplog.text
    with pytest.raises(SrxError, match="no images to score"):
        evaluate(iter([]), 3, None)
    with pytest.raises(SrxError, match="no images to score"):
        robustness_rows(iter([]), 3, [parse_degradation("none")], {})


@pytest.mark.parametrize("table", [False, True])
def test_eval_scores_the_readable_images_and_fails_naming_the_others(tmp_path, image_folder, tiny_checkpoint, table):
    """A folder where some images cannot be read: the readable ones are scored and shown, the
    others named in one `error:` line after them (and under `skipped` in JSON), exit 1, as
    `srx upscale` fails on inputs it could not do."""
    import json
    import shutil

    from typer.testing import CliRunner

    from srx.cli import app

    folder = tmp_path / "mixed"
    shutil.copytree(image_folder, folder)
    (folder / "zz_text.png").write_text("not a picture")
    extra = ["-w", str(tiny_checkpoint(3)), *(["--degrade", "none", "--degrade", "jpeg50"] if table else [])]
    res = CliRunner().invoke(app, ["eval", "--data", str(folder), *extra])
    assert res.exit_code == 1, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 1 of the 5 images in {folder} could not be scored and are not in the means: cannot "
                      f"decode image {folder / 'zz_text.png'} (corrupt, truncated or not an image)"]
    assert "mean" in res.output or "bicubic" in res.output  # the scores of the four came first
    res = CliRunner().invoke(app, ["eval", "--data", str(folder), *extra, "--json"])
    assert res.exit_code == 1
    result = json.loads(res.output[:res.output.index("error:")])
    assert result["count"] == 4 and [s["name"] for s in result["skipped"]] == ["zz_text.png"]


def test_videos_in_a_data_folder_are_named_not_dropped_unsaid(tmp_path, image_folder, caplog):
    """A folder is read for its images: one of videos alone is refused with the way out, and the
    videos beside images are named as left out (they once vanished without a word)."""
    import logging

    from srx.train.data import _sources

    videos = tmp_path / "nvr"
    videos.mkdir()
    silent_video(videos / "door.mp4", 3, (32, 24), fourcc="mp4v")
    silent_video(videos / "yard.avi", 3, (32, 24))
    with pytest.raises(SrxError, match=r"holds no images but 2 videos; a folder is read for its images: pass each "
                                       r"video on its own \(e\.g\. .*door\.mp4\)"):
        list(eval_items(videos, 3))
    silent_video(image_folder / "door.avi", 3, (32, 24))
    with caplog.at_level(logging.WARNING, logger="srx"):
        assert len(list(eval_items(image_folder, 3))) == 4
        assert len(_sources([image_folder])) == 4
    assert caplog.text.count("1 video in it left out (a folder is read for its images; pass each video with --data") == 2


def test_eval_count_tells_a_progress_bar_how_many_pairs_come(tmp_path, image_folder):
    from srx.imageio import FrameRange

    video = silent_video(tmp_path / "clip.avi", 25, (72, 54))
    assert eval_count(video, 10) == 3 == len(list(eval_items(video, 3, every=10)))
    assert eval_count(video, 4, FrameRange(5, 20)) == 4 == len(list(eval_items(video, 3, 4, FrameRange(5, 20))))
    assert eval_count(image_folder) == 4 and eval_count(sorted(image_folder.iterdir())[0]) == 1
    assert eval_count(tmp_path / "missing") is None


def test_eval_shows_progress_on_a_terminal_only_and_never_in_its_output(tmp_path, tiny_checkpoint, monkeypatch):
    import json

    from typer.testing import CliRunner

    from srx.cli import app

    video = silent_video(tmp_path / "clip.avi", 25, (72, 54))
    args = ["eval", "--data", str(video), "--every", "5", "-w", str(tiny_checkpoint(3)), "--json"]
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["count"] == 5 and "scoring" in shown.stderr and "/5" in shown.stderr
    quiet = CliRunner().invoke(app, [*args, "--no-progress"])
    assert quiet.exit_code == 0 and "scoring" not in quiet.stderr
    assert json.loads(quiet.stdout) == json.loads(shown.stdout)


def test_images_of_one_name_in_several_formats_are_told_apart(tmp_path):
    """rgb.bmp, rgb.tiff and rgb.webp were three rows called 'rgb'; a stem of its own keeps its stem."""
    import cv2

    from srx.evaluate import eval_items

    for i, name in enumerate(("rgb.bmp", "rgb.tiff", "alone.png")):
        cv2.imwrite(str(tmp_path / name), synthetic_photo(36, 36, seed=i))
    assert sorted(item.name for item in eval_items(tmp_path, 3)) == ["alone", "rgb.bmp", "rgb.tiff"]


def test_a_flat_picture_leaves_the_means_finite_and_the_json_strict(tmp_path, tiny_checkpoint):
    """A flat picture (a lens cap, a night's black frame) is its own bicubic enlargement: its PSNR is
    infinite. `srx eval --json` wrote `Infinity` (not JSON: strict parsers refuse the document) and the
    folder's mean became inf, the gain +nan. It is left out of the means, named, and null in JSON."""
    import json

    import cv2
    from typer.testing import CliRunner

    from srx.cli import app

    for i in range(2):
        cv2.imwrite(str(tmp_path / f"photo{i}.png"), synthetic_photo(36, 36, seed=i))
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((36, 36, 3), 128, np.uint8))
    res = CliRunner().invoke(app, ["eval", "--data", str(tmp_path), "-s", "3", "-w", str(tiny_checkpoint(3)), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert result["flat"] == ["grey"] and result["count"] == 3
    alone = json.loads(CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "photo0.png"), "-s", "3", "-w",
                                                str(tiny_checkpoint(3)), "--json"]).stdout)
    other = json.loads(CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "photo1.png"), "-s", "3", "-w",
                                                str(tiny_checkpoint(3)), "--json"]).stdout)
    for key in ("bicubic_psnr", "model_psnr"):
        assert result["mean"][key] == pytest.approx((alone["mean"][key] + other["mean"][key]) / 2, abs=1e-9)
    grey = next(r for r in result["images"] if r["name"] == "grey")
    assert grey["bicubic_psnr"] is None
