"""`srx export` and `srx parity` through the real CLI (Typer's CliRunner)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from srx.cli import app
from srx.export.onnx import check_srx_onnx
from srx.export.tensorrt import tensorrt_status
from tests.conftest import assert_one_error_line

runner = CliRunner()


def test_export_writes_graphs_and_says_why_no_engine(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    out = tmp_path / "exports"
    result = runner.invoke(app, ["export", "-w", str(weights), "--scale", "3", "--out", str(out), "--max-shape", "720x1280"])
    assert result.exit_code == 0, result.output
    assert check_srx_onnx(out / "srcnn-5-1-3-x3.onnx", 3)["precision"] == "fp32"
    assert check_srx_onnx(out / "srcnn-5-1-3-x3-fp16.onnx", 3)["precision"] == "fp16"
    ok, why = tensorrt_status()
    lines = [ln for ln in result.output.splitlines() if ln.startswith("no TensorRT engine built")]
    if ok:
        assert lines == [] and (out / "srcnn-5-1-3-x3-fp16.engine").is_file()
    else:
        assert len(lines) == 1
        assert why.split(";")[0] in lines[0]
        assert "on the target GPU run: srx export --scale 3" in lines[0]
        assert "--max-shape 720x1280 --engine" in lines[0]
        assert f"--weights {weights} " in lines[0]
        assert sorted(p.name for p in out.iterdir()) == ["srcnn-5-1-3-x3-fp16.onnx", "srcnn-5-1-3-x3.onnx"]


def test_the_engine_hint_names_a_shipped_model_by_name(tmp_path):
    """The command printed for the target GPU must work there: `--weights camera`, not this
    installation's path to its file."""
    if tensorrt_status()[0]:
        pytest.skip("TensorRT and a GPU are here: the engine is built, no hint is printed")
    result = runner.invoke(app, ["export", "-w", "camera", "-s", "2", "--out", str(tmp_path / "e"), "--no-fp16"])
    assert result.exit_code == 0, result.output
    hint = next(ln for ln in result.output.splitlines() if ln.startswith("no TensorRT engine built"))
    assert "srx export --scale 2 --weights camera --out" in hint and ".pt" not in hint


def test_the_engine_hint_carries_the_builder_options(tmp_path):
    """--workspace and --timing-cache shape the engine too: the printed command left them out, so on
    the GPU host it built with 1024 MiB and no cache. The default workspace needs no option."""
    from pathlib import Path

    from srx.cli.export import _rebuild_command

    cache = tmp_path / "tc.bin"
    cmd = _rebuild_command("fast", 2, Path("ex"), True, (None, None, "720x1280"), ["--opset", "13"], 4096, cache)
    assert cmd == (f"srx export --scale 2 --weights fast --out ex --fp16 --opset 13 --max-shape 720x1280 "
                   f"--workspace 4096 --timing-cache {cache} --engine")
    assert _rebuild_command("fast", 2, Path("ex"), True, None, []) == "srx export --scale 2 --weights fast --out ex --fp16 --engine"
    if tensorrt_status()[0]:
        return  # the engine is built here: no hint is printed
    result = runner.invoke(app, ["export", "-w", "fast", "-s", "2", "--out", str(tmp_path / "e"), "--no-fp16",
                                 "--workspace", "4096", "--timing-cache", str(cache)])
    assert result.exit_code == 0, result.output
    hint = next(ln for ln in result.output.splitlines() if ln.startswith("no TensorRT engine built"))
    assert hint.endswith(f" --workspace 4096 --timing-cache {cache} --engine"), hint


def test_models_of_one_architecture_export_side_by_side(tiny_checkpoint, tmp_path, caplog):
    """`fast` and `camera` share an architecture: each exports under its own name, and so does a
    checkpoint given --name; a file of other weights in the way is replaced, and the user is told."""
    out = tmp_path / "e"
    common = ["--out", str(out), "--no-engine", "--triton-repo", str(tmp_path / "repo")]
    for extra in (["-w", "fast"], []):  # the default is camera
        assert runner.invoke(app, ["export", *extra, *common]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["camera-x3-fp16.onnx", "camera-x3.onnx", "fast-x3-fp16.onnx", "fast-x3.onnx"]
    fast, camera = check_srx_onnx(out / "fast-x3.onnx"), check_srx_onnx(out / "camera-x3.onnx")
    assert (fast["name"], camera["name"]) == ("fast-x3", "camera-x3")
    assert fast["source_sha256"] != camera["source_sha256"] and fast["model_config"] == camera["model_config"]
    assert check_srx_onnx(out / "camera-x3-fp16.onnx")["name"] == "camera-x3"
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["srx_camera_x3", "srx_fast_x3"]

    tiny = str(tiny_checkpoint(3))
    mine = runner.invoke(app, ["export", "-w", tiny, "--name", "lobby.v2", "--no-fp16", *common])
    assert mine.exit_code == 0, mine.output
    assert check_srx_onnx(out / "lobby.v2-x3.onnx")["name"] == "lobby.v2-x3"
    assert (tmp_path / "repo" / "srx_lobby.v2_x3" / "config.pbtxt").is_file()

    caplog.clear()
    again = runner.invoke(app, ["export", "-w", tiny, "--name", "fast", "--no-fp16", "--out", str(out)])
    assert again.exit_code == 0, again.output
    notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(notes) == 1 and "replacing" in notes[0] and "fast-x3.onnx" in notes[0] and "fast-x3.pt" in notes[0]
    caplog.clear()
    assert runner.invoke(app, ["export", "-w", tiny, "--name", "fast", "--no-fp16", "--out", str(out)]).exit_code == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # the same weights again: nothing to say


@pytest.mark.parametrize("bad", ["-lead", "has space", "a/b", "../evil", "x" * 65])
def test_a_bad_export_name_is_one_line_before_any_work(tmp_path, bad):
    out = tmp_path / "never"
    result = runner.invoke(app, ["export", "--name", bad, "--out", str(out)])
    assert result.exit_code == 1
    assert_one_error_line(result.output, f"--name {bad!r}: expected up to 64 letters")
    assert "-x<scale>" not in result.output  # the scale hint is for a name that ends like one, not this
    assert not out.exists()


def test_an_export_name_with_its_own_scale_says_srx_adds_it(tmp_path):
    result = runner.invoke(app, ["export", "--name", "cam-x3", "--out", str(tmp_path / "never")])
    assert result.exit_code == 1
    assert_one_error_line(result.output, "--name 'cam-x3': expected a name without a -x<scale> ending; srx adds "
                                         "the scale itself (cam-x3-x3.onnx")


def test_export_static_no_fp16_and_check(tiny_checkpoint, tmp_path):
    out = tmp_path / "static"
    result = runner.invoke(app, [
        "export", "-w", str(tiny_checkpoint(2)), "-s", "2", "--out", str(out), "--no-fp16", "--static",
        "--height", "24", "--width", "32", "--no-engine", "--check",
    ])
    assert result.exit_code == 0, result.output
    assert "no TensorRT engine built" not in result.output
    assert "parity: all gates passed" in result.output
    assert [p.name for p in out.iterdir()] == ["srcnn-5-1-3-x2.onnx"]
    assert check_srx_onnx(out / "srcnn-5-1-3-x2.onnx")["input_shape"] == [1, 1, 24, 32]


def test_export_errors_are_one_line(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    out = tmp_path / "never"
    cases = [
        (["--min-shape", "720x1280", "--opt-shape", "360x640"], "min <= opt <= max"),
        (["--opt-shape", "360by640"], "expected HEIGHTxWIDTH"),
        (["--height", "24"], "--static"),
        (["--scale", "2"], "x3 model but x2"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["export", "-w", str(weights), "--out", str(out), *extra])
        assert result.exit_code == 1, (extra, result.output)
        assert_one_error_line(result.output, message)
    assert not out.exists()
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    result = runner.invoke(app, ["export", "-w", str(bad), "--out", str(out)])
    assert result.exit_code == 1 and "not a readable srx checkpoint" in result.output
    if not tensorrt_status()[0]:
        result = runner.invoke(app, ["export", "-w", str(weights), "--out", str(out), "--engine"])
        assert result.exit_code == 1 and "cannot build a TensorRT engine here" in result.output
        assert not out.exists()  # refused before writing anything


def test_parity_checks_the_readable_images_and_names_the_others(tiny_checkpoint, image_folder):
    """An unreadable picture in --data: the others are checked and shown, the unreadable one named in one
    error line after them, exit 1 (it stopped at the first such file, before checking any)."""
    (image_folder / "aaa-broken.png").write_bytes(b"xx")
    (image_folder / "zzz-empty.png").write_bytes(b"")
    weights = str(tiny_checkpoint(2))
    result = runner.invoke(app, ["parity", "-w", weights, "-s", "2", "--data", str(image_folder)])
    assert result.exit_code == 1, result.output
    assert "parity: all gates passed" in result.output
    assert_one_error_line(result.output, f"2 of the 6 images in {image_folder} could not be read and were not checked")
    error = next(ln for ln in result.output.splitlines() if ln.startswith("error:"))
    assert "aaa-broken.png" in error and "zzz-empty.png" in error and "empty (0 bytes)" in error
    as_json = runner.invoke(app, ["parity", "-w", weights, "-s", "2", "--data", str(image_folder), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output[:as_json.output.rindex("}") + 1])
    assert [s["name"] for s in report["skipped"]] == ["aaa-broken.png", "zzz-empty.png"]
    assert [i["name"] for i in report["inputs"]][:4] == ["img0", "img1", "img2", "img3"] and report["images"] == 4
    for p in image_folder.glob("img*"):
        p.unlink()
    result = runner.invoke(app, ["parity", "-w", weights, "-s", "2", "--data", str(image_folder)])
    assert_one_error_line(result.output, "none of the 2 images in parity data folder")


def test_parity_json(tiny_checkpoint):
    result = runner.invoke(app, ["parity", "-w", str(tiny_checkpoint(4)), "--scale", "4", "--synthetic", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True and report["scale"] == 4
    backends = {(r["backend"], r["precision"]): r for r in report["backends"]}
    assert backends[("onnxruntime", "fp32")]["psnr_vs_torch_db"] >= 60
    assert backends[("onnxruntime", "fp16")]["psnr_vs_torch_db"] >= 45


def test_parity_table_and_missing_engine(tiny_checkpoint, tmp_path):
    weights = tiny_checkpoint(3)
    result = runner.invoke(app, ["parity", "-w", str(weights), "--synthetic"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output and "all gates passed" in result.output
    result = runner.invoke(app, ["parity", "-w", str(weights), "--synthetic", "--engine", str(tmp_path / "x.engine")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_parity_exits_1_through_the_cli_when_a_gate_fails(tmp_path):
    """A model whose activations overflow float16 (weights scaled up 300x per layer): the FP32 graph
    passes, the FP16 graph cannot, and `srx parity` says so with exit status 1 (table and JSON)."""
    import torch

    from srx.checkpoint import save_checkpoint
    from srx.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(scale=2, kernel_sizes=[5, 1, 3], widths=[8, 4])
    model = build_model(cfg)
    with torch.no_grad():
        model.conv1.weight.mul_(300.0)
        model.conv2.weight.mul_(300.0)
        model.conv3.weight.normal_(0, 0.05)
    weights = tmp_path / "overflow.pt"
    save_checkpoint(weights, model, cfg)
    table = runner.invoke(app, ["parity", "-w", str(weights), "--scale", "2", "--synthetic"])
    assert table.exit_code == 1, table.output
    assert "parity: FAILED" in table.output and "all gates passed" not in table.output
    as_json = runner.invoke(app, ["parity", "-w", str(weights), "--scale", "2", "--synthetic", "--json"])
    assert as_json.exit_code == 1
    rows = {(r["backend"], r["precision"]): r for r in json.loads(as_json.stdout)["backends"]}
    assert json.loads(as_json.stdout)["passed"] is False
    assert rows[("onnxruntime", "fp32")]["passed"] is True
    assert rows[("onnxruntime", "fp16")]["passed"] is False and "PSNR vs PyTorch" in rows[("onnxruntime", "fp16")]["reason"]


def test_check_runs_the_parity_gates_on_the_files_written(tiny_checkpoint, tmp_path):
    """`--check` runs the graphs it wrote, whatever their name, layout or size: a named, static,
    plain-layout export is checked as written (cropped to its 24x32 input), never re-exported as a
    dynamic graph of the architecture's name into a temporary folder."""
    out = tmp_path / "named"
    result = runner.invoke(app, [
        "export", "-w", str(tiny_checkpoint(2)), "-s", "2", "--name", "lobby", "--out", str(out), "--static",
        "--height", "24", "--width", "32", "--layout", "plain", "--no-engine", "--check",
    ])
    assert result.exit_code == 0, result.output
    assert "parity: onnxruntime fp32 (lobby-x2.onnx)" in result.output
    assert "parity: onnxruntime fp16 (lobby-x2-fp16.onnx)" in result.output
    # only the table's title names the architecture, beside the weights file
    assert "srcnn-5-1-3" not in result.output.replace("parity tiny.pt (srcnn-5-1-3-x2) x2", "")
    assert "cropped to the static 24x32 input of lobby-x2.onnx" in " ".join(result.output.split())
    assert "parity: all gates passed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["lobby-x2-fp16.onnx", "lobby-x2.onnx"]


def test_a_static_export_suggests_an_engine_of_its_own_shape(tiny_checkpoint, tmp_path):
    """A static graph's engine takes the graph's shape (export/tensorrt.py), so the command printed
    for the target GPU gives no dynamic 16x16..360x640 profile beside --static."""
    if tensorrt_status()[0]:
        pytest.skip("TensorRT and a GPU are here: the engine is built, no hint is printed")
    result = runner.invoke(app, ["export", "-w", str(tiny_checkpoint(2)), "-s", "2", "--out", str(tmp_path / "e"),
                                 "--static", "--height", "24", "--width", "32", "--no-fp16"])
    assert result.exit_code == 0, result.output
    hint = next(ln for ln in result.output.splitlines() if ln.startswith("no TensorRT engine built"))
    assert hint.endswith("--no-fp16 --static --height 24 --width 32 --engine"), hint
    assert "-shape" not in hint


def test_triton_repo_says_when_it_replaces_a_model_of_other_weights(tiny_checkpoint, tmp_path, caplog):
    """Two checkpoints of one architecture exported into one repository without --name: the second
    replaces the first, with a warning naming the weights it came from; the same weights again
    replace it silently. A --triton-repo that is a file is refused before anything is written."""
    import torch

    from srx.checkpoint import load_checkpoint, save_checkpoint
    from srx.models import ModelConfig, build_model

    repo = tmp_path / "models"
    door = tiny_checkpoint(3, "door.pt")
    torch.manual_seed(77)  # other weights of the same architecture and scale
    cfg = ModelConfig.from_dict(dict(load_checkpoint(door)["model_config"]))
    lobby = tmp_path / "lobby.pt"
    save_checkpoint(lobby, build_model(cfg), cfg)
    common = ["--no-fp16", "--no-engine", "--triton-repo", str(repo)]
    assert runner.invoke(app, ["export", "-w", str(door), "--out", str(tmp_path / "a"), *common]).exit_code == 0
    caplog.clear()
    again = runner.invoke(app, ["export", "-w", str(door), "--out", str(tmp_path / "a"), *common])
    assert again.exit_code == 0 and not [r for r in caplog.records if r.levelname == "WARNING"]
    caplog.clear()
    other = runner.invoke(app, ["export", "-w", str(lobby), "--out", str(tmp_path / "b"), *common])
    assert other.exit_code == 0, other.output
    notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(notes) == 1, notes
    assert "replacing Triton model srx_srcnn-5-1-3_x3 in" in notes[0] and "other weights (door.pt)" in notes[0]

    afile = tmp_path / "afile"
    afile.write_text("")
    out = tmp_path / "never"
    refused = runner.invoke(app, ["export", "-w", str(door), "--out", str(out), "--triton-repo", str(afile)])
    assert refused.exit_code == 1
    assert_one_error_line(refused.output, f"--triton-repo {afile} is a file; expected a folder")
    assert not out.exists()  # checked before any work
