"""Shipped models by name: every command's --weights takes `srcnn`, `fast`, `camera`; `srx models`
lists them; each shipped file scores on Set5 what it records, and passes the parity gates."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from srx.catalog import EVALUATIONS
from srx.checkpoint import SHIPPED, load_checkpoint, resolve_weights, shipped_scales, shipped_weights
from srx.cli import app
from srx.errors import SrxError
from srx.models import ModelConfig, config_from_preset
from srx.samples import write_library_photos
from tests.conftest import SET5, need_shared, skip_or_fail, synthetic_photo

runner = CliRunner()
NAMES = ["srcnn", "fast", "camera"]
ALL = [(n, s) for n in NAMES for s in (2, 3, 4)]


@pytest.mark.parametrize("name,scale", ALL)
def test_every_shipped_model_has_every_scale(name, scale):
    path = shipped_weights(scale, name)
    payload = load_checkpoint(path)
    assert payload["model_config"]["scale"] == scale
    assert payload["model_config"]["arch"] == ("srcnn" if name == "srcnn" else "lrnet")
    # the preset `srx bench` builds where a scale is missing is the shipped architecture
    assert ModelConfig.from_dict(dict(payload["model_config"])) == config_from_preset(SHIPPED[name].preset, scale)
    assert resolve_weights(name, scale) == path == resolve_weights(Path(name), scale)
    if name == "camera":  # its training degradation travels with it
        assert payload["training"]["train_config"]["degrade"]


@pytest.mark.parametrize("name", list(SHIPPED))
def test_srx_models_says_what_every_scale_was_trained_on(name):
    """`srx models`' "trained on": where a model's files record different last recipes (a weighted mean
    of runs records its last run's), the shipped entry says it in words that name every one of them."""
    from srx.catalog import shipped_catalog, trained_on_text

    recorded = {s: (load_checkpoint(shipped_weights(s, name)).get("training") or {}).get("train_config", {}).get("degrade")
                or "clean" for s in shipped_scales(name)}
    shown = next(r["degrade"] for r in shipped_catalog() if r["name"] == name)
    assert shown == trained_on_text(SHIPPED[name].trained_on, recorded)
    if len(set(recorded.values())) > 1:
        assert SHIPPED[name].trained_on, f"{name}'s files record {recorded}: its entry must say what that means"
        assert all(d in shown for d in recorded.values()), (shown, recorded)
    assert trained_on_text("", {2: "a", 3: "b"}) == "x2: a; x3: b" and trained_on_text("", {2: "a", 3: "a"}) == "a"


def test_bad_names_and_scales_are_one_line(monkeypatch, tmp_path):
    with pytest.raises(SrxError, match="neither a shipped model .srcnn, fast, camera. nor an existing file"):
        resolve_weights("fsat", 3)
    with pytest.raises(SrxError, match="no shipped model named"):
        shipped_weights(3, "fsat")
    # a shipped name at a scale it lacks: a weights folder holding only x3
    (tmp_path / "fast-x3.pt").write_bytes(shipped_weights(3, "fast").read_bytes())
    monkeypatch.setattr("srx.checkpoint._weights_dir", lambda: tmp_path)
    assert shipped_scales("fast") == [3]
    res = runner.invoke(app, ["eval", "--data", "nowhere", "-s", "2", "-w", "fast"])
    assert res.exit_code == 1 and "has no x2 weights (it has x3)" in res.output
    cv2.imwrite(str(tmp_path / "x.png"), synthetic_photo(24, 24))
    res = runner.invoke(app, ["upscale", str(tmp_path / "x.png"), "--out", str(tmp_path / "o.png"), "-w", "fsat"])
    assert res.exit_code == 1 and "neither a shipped model" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.png").exists()


def test_unknown_model_at_training_lists_them(image_folder, tmp_path):
    res = runner.invoke(app, ["train", "--data", str(image_folder), "--model", "fsrcnn", "--max-steps", "1",
                              "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "unknown model 'fsrcnn'" in res.output and "lrnet-32x4" in res.output
    assert not (tmp_path / "run").exists()


def test_models_lists_every_shipped_model():
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)["models"]}
    assert set(rows) == set(SHIPPED)
    for name, r in rows.items():
        assert r["scales"] == [2, 3, 4] and r["params"] > 0 and r["gmac_720p_x3"] > 0
        for s in (2, 3, 4):
            q = r["quality"][f"x{s}"]
            assert q["set5"] > q["set5_bicubic"]
            for key in EVALUATIONS:
                assert q[key] is not None and q[f"{key}_bicubic"] is not None, (name, s, key)
            if name == "camera":  # trained for it: better than bicubic on the same compressed, noisy LR
                assert q["set5_jpeg50"] > q["set5_jpeg50_bicubic"] and q["set5_camera"] > q["set5_camera_bicubic"]
    # camera's limit on clean input (the camera issue, README): at most 0.5 dB under the clean weights of
    # its own architecture, `fast`, on Set5 at every scale (recorded by ship_weights.py, re-measured below)
    for s in (2, 3, 4):
        loss = rows["fast"]["quality"][f"x{s}"]["set5"] - rows["camera"]["quality"][f"x{s}"]["set5"]
        assert 0 < loss <= 0.5, (s, loss)
    # the target is end to end in at most 0.40x SRCNN's time (measured, README); the FLOPs stay under that share
    assert rows["fast"]["gmac_720p_x3"] < 0.40 * rows["srcnn"]["gmac_720p_x3"]
    # why `camera` is the default: at no scale and in no column is it below the reference it replaced
    default = json.loads(res.stdout)["default"]
    assert default == "camera"
    for s in (2, 3, 4):
        for key in ("set5", *EVALUATIONS):
            assert rows[default]["quality"][f"x{s}"][key] > rows["srcnn"]["quality"][f"x{s}"][key], (s, key)
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "fast" in table.output and "camera" in table.output
    assert "default (a command without --weights): camera" in table.output
    for _, title in EVALUATIONS.values():
        assert title in table.output


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fast_beats_srcnn_on_set5_as_recorded(scale):
    fast = load_checkpoint(shipped_weights(scale, "fast"))["eval"]["set5"]["model_psnr"]
    srcnn = load_checkpoint(shipped_weights(scale, "srcnn"))["eval"]["set5"]["model_psnr"]
    assert fast > srcnn


def _eval_means(data: Path):
    """`srx eval --json` of a shipped model on `data`, its "mean" record, each (name, scale, degrade) run once."""
    cache: dict = {}

    def run(name: str, scale: int, degrade: str = "none") -> dict:
        key = (name, scale, degrade)
        if key not in cache:
            res = runner.invoke(app, ["eval", "--data", str(data), "-s", str(scale), "-w", name, "--json",
                                      "--degrade", degrade])
            assert res.exit_code == 0, res.output
            cache[key] = json.loads(res.stdout)["mean"]
        return cache[key]

    return run


@pytest.fixture(scope="module")
def set5_eval_named():
    means = _eval_means(SET5)

    def run(name: str, scale: int, degrade: str = "none") -> dict:
        need_shared(SET5)
        return means(name, scale, degrade)

    return run


@pytest.mark.parametrize("name,scale", ALL)
def test_shipped_weights_score_what_they_record(name, scale, set5_eval_named):
    """Every recorded evaluation (clean, JPEG 50, camera preset), re-measured through `srx eval`."""
    recorded = load_checkpoint(shipped_weights(scale, name))["eval"]
    for key, (degrade, _) in EVALUATIONS.items():
        mean = set5_eval_named(name, scale, degrade)
        assert abs(recorded[key]["model_psnr"] - mean["model_psnr"]) < 1e-3, (key, mean)
        # the same arithmetic, but another CPU's float rounding: 1.2e-6 dB apart on an Intel Xeon
        # (2026-12-06) from what an AMD EPYC recorded
        assert abs(recorded[key]["bicubic_psnr"] - mean["bicubic_psnr"]) < 1e-4, (key, mean)


@pytest.fixture(scope="module")
def photos_eval(tmp_path_factory):
    """`srx eval` on the photos that ship inside scikit-image and matplotlib (`srx.samples.library_photos`):
    held out from every shipped model, and present on every machine, Set5 or not."""
    folder = tmp_path_factory.mktemp("photos")
    count = len(write_library_photos(folder))
    if count != 14:  # the figures below are means over all of them
        skip_or_fail(f"this scikit-image / matplotlib has {count} of the 14 photos the bounds were measured on")
    means = _eval_means(folder)

    def run(name: str, scale: int, degrade: str = "none") -> float:
        """Mean PSNR gain over bicubic, dB."""
        mean = means(name, scale, degrade)
        return mean["model_psnr"] - mean["bicubic_psnr"]

    return run


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_what_set5_shows_holds_on_photos_no_model_saw(scale, photos_eval):
    """Tuned for the general case, not for Set5. Measured 2026-12-06 (x2 / x3 / x4, mean gain over bicubic
    of the 14 photos): clean srcnn +1.70 / +1.38 / +1.07, fast +2.21 / +1.79 / +1.80, camera +1.91 / +1.58 /
    +1.58 (0.31 / 0.21 / 0.21 under fast: less than on Set5); at JPEG 50 fast -0.27 / -0.18 / -0.08 and camera
    +0.63 / +0.67 / +0.61. The bounds keep half of each margin."""
    assert photos_eval("fast", scale) > photos_eval("srcnn", scale) + 0.2 > 0.2
    assert 0 < photos_eval("fast", scale) - photos_eval("camera", scale) <= 0.5
    assert photos_eval("camera", scale, "jpeg50") > max(0.3, photos_eval("fast", scale, "jpeg50") + 0.3)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parity_gates_for_fast_and_camera(scale):
    """The README's gates, pinned here: FP32 >= 60 dB vs PyTorch, FP16 >= 45 dB and |dPSNR| <= 0.05."""
    for name in ("fast", "camera"):
        res = runner.invoke(app, ["parity", "-w", name, "--scale", str(scale), "--synthetic", "--json"])
        assert res.exit_code == 0, res.output
        report = json.loads(res.output)
        assert report["passed"] is True, report
        rows = {(r["backend"], r["precision"]): r for r in report["backends"]}
        assert rows[("onnxruntime", "fp32")]["psnr_vs_torch_db"] >= 60
        assert rows[("onnxruntime", "fp16")]["psnr_vs_torch_db"] >= 45
        assert abs(rows[("onnxruntime", "fp16")]["delta_psnr_db"]) <= 0.05


def test_weights_fast_through_every_command(tmp_path, image_folder):
    import cv2

    ev = runner.invoke(app, ["eval", "--data", str(image_folder), "-w", "fast", "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["model"] == "lrnet-32x4-pw3-x3"
    src = image_folder / "img0.png"
    up = runner.invoke(app, ["upscale", str(src), "--out", str(tmp_path / "up.png"), "-w", "fast", "--no-progress"])
    assert up.exit_code == 0, up.output
    assert cv2.imread(str(tmp_path / "up.png")).shape[:2] == (72 * 3, 96 * 3)
    ex = runner.invoke(app, ["export", "-w", "fast", "--scale", "2", "--out", str(tmp_path / "exp")])
    assert ex.exit_code == 0, ex.output
    assert (tmp_path / "exp" / "fast-x2.onnx").exists() and (tmp_path / "exp" / "fast-x2-fp16.onnx").exists()
    par = runner.invoke(app, ["parity", "-w", "fast", "--scale", "4", "--synthetic", "--json"])
    assert par.exit_code == 0, par.output
    assert json.loads(par.output)["model"] == "lrnet-32x4-pw3-x4"
    bench = runner.invoke(app, ["bench", "--quick", "--json", "--backend", "onnxruntime", "-w", "fast", "-w", "camera"])
    assert bench.exit_code == 0, bench.output
    assert {r["model"] for r in json.loads(bench.stdout)["rows"]} == {"fast", "camera"}
    video = tmp_path / "in.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for i in range(4):
        w.write(synthetic_photo(32, 48, i))
    w.release()
    summary = tmp_path / "s.json"
    st = runner.invoke(app, ["stream", "--source", str(video), "--no-drop", "-w", "camera", "--backend", "onnxruntime",
                             "--threads", "1", "--output", str(tmp_path / "o.mkv"), "--json-summary", str(summary),
                             "--no-window", "-q"])
    assert st.exit_code == 0, st.output
    data = json.loads(summary.read_text())
    assert data["frames_out"] == 4 and data["scale"] == 3


def test_a_folder_named_like_a_model_does_not_shadow_it(tmp_path, monkeypatch):
    (tmp_path / "camera").mkdir()  # e.g. a folder of footage; srx's own repo has one too
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("camera", 3) == shipped_weights(3, "camera")
