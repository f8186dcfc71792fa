import os
from pathlib import Path

import pytest
import torch

from srx.checkpoint import (load_checkpoint, model_from_checkpoint, resolve_weights, save_checkpoint,
                            shipped_model_of, shipped_name, shipped_weights)
from srx.errors import SrxError
from srx.models import ModelConfig, build_model


def test_round_trip_restores_config_and_weights(tmp_path):
    cfg = ModelConfig(scale=2, kernel_sizes=[5, 1, 3], widths=[8, 4])
    model = build_model(cfg)
    save_checkpoint(tmp_path / "m.pt", model, cfg, note="hello")
    loaded, cfg2, payload = model_from_checkpoint(tmp_path / "m.pt")
    assert cfg2 == cfg and payload["note"] == "hello"
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    cfg = ModelConfig(scale=3, kernel_sizes=[3, 1, 3], widths=[4, 4])
    path = tmp_path / "last.pt"
    save_checkpoint(path, build_model(cfg), cfg, step=1)
    real_write = Path.write_bytes

    def dying_write(self, data):
        real_write(self, bytes(data)[:100])  # half-written file, then the "kill"
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, build_model(cfg), cfg, step=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary left behind


def test_a_save_onto_a_full_disk_says_so_and_keeps_the_earlier_checkpoint(small_disk):
    """torch.save into a file on a full disk raised "[enforce fail at inline_container.cc:672] unexpected
    pos" (a traceback that never said "disk"); the write is now the file's own, its ENOSPC said as such."""
    from tests.conftest import fill_disk

    cfg = ModelConfig(scale=3, kernel_sizes=[9, 1, 5], widths=[64, 32])  # 80 KB
    disk = small_disk(256)
    path = disk / "run" / "last.pt"
    save_checkpoint(path, build_model(cfg), cfg, step=1)
    before = path.read_bytes()
    fill_disk(disk, leave_kib=24)
    with pytest.raises(SrxError, match=rf"^cannot write {path}: no space left on device \(the disk is full\)$"):
        save_checkpoint(path, build_model(cfg), cfg, step=2)
    assert path.read_bytes() == before and os.listdir(path.parent) == ["last.pt"]


def test_corrupt_foreign_and_mismatched_checkpoints_fail_clearly(tmp_path, tiny_checkpoint):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(SrxError, match="not a readable srx checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    good = tiny_checkpoint(3)
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(SrxError, match="not a readable srx checkpoint"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(SrxError, match=r"empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SrxError, match="binary data of another kind"):
        load_checkpoint(tmp_path / "random.pt")
    import datetime

    torch.save({"when": datetime.date(2024, 1, 1)}, tmp_path / "pickled.pt")  # refused by the weights-only loader
    with pytest.raises(SrxError, match="holds Python objects srx never writes") as caught:
        load_checkpoint(tmp_path / "pickled.pt")
    assert "weights_only" not in str(caught.value)  # PyTorch's advice to load unsafely is not passed on
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(SrxError, match="not an srx checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(SrxError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(SrxError, match="x3 model but x2"):
        model_from_checkpoint(good, scale=2)
    payload = load_checkpoint(good)
    payload["model_config"]["widths"] = [16, 4]  # weights of another model
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(SrxError, match="does not match its own model config"):
        model_from_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name,arch", [("srcnn", "srcnn-9-1-5"), ("fast", "lrnet-32x4-pw3"), ("camera", "lrnet-32x4-pw3")])
def test_shipped_weights_load(scale, name, arch):
    model, cfg, payload = model_from_checkpoint(shipped_weights(scale, name), scale)
    assert cfg.name == f"{arch}-x{scale}"
    assert "optimizer" not in payload  # shipped files carry weights and their record only
    assert payload["eval"]["set5"]["model_psnr"] > payload["eval"]["set5"]["bicubic_psnr"]


def test_the_default_weights_are_camera_and_a_file_of_a_shipped_name_is_a_file(tmp_path, monkeypatch):
    assert resolve_weights(None, 3) == shipped_weights(3, "camera")
    assert shipped_name(None) == "camera" and shipped_name("fast") == "fast"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast").write_bytes(b"")
    assert shipped_name("fast") is None and resolve_weights("fast", 3) == Path("fast")
    (tmp_path / "camera").mkdir()  # a folder of that name does not shadow the model
    assert shipped_name("camera") == "camera"


def test_a_packaged_file_is_known_by_its_model_and_a_copy_is_just_a_file(tmp_path):
    for name in ("srcnn", "fast", "camera"):
        assert shipped_model_of(shipped_weights(2, name)) == name
        assert shipped_model_of(str(shipped_weights(4, name))) == name
    copy = tmp_path / "camera-x3.pt"
    copy.write_bytes(shipped_weights(3, "camera").read_bytes())
    assert shipped_model_of(copy) is None and shipped_model_of(tmp_path / "missing.pt") is None


#: SRCNN 9-1-5 (Dong et al. 2016, trained on T91), Set5 PSNR on Y: the bar the shipped weights aim at
PAPER_SET5 = {2: 36.34, 3: 32.39, 4: 30.09}
PUBLISHED_BICUBIC_SET5 = {2: 33.66, 3: 30.39, 4: 28.42}
#: and its SSIM (VDSR paper, Table 2, Set5 bicubic: 0.9299 / 0.8682 / 0.8104), MATLAB's ssim on Y
PUBLISHED_BICUBIC_SSIM_SET5 = {2: 0.9299, 3: 0.8682, 4: 0.8104}
#: Scales whose shipped weights do not reach that bar yet (the README says so, with the figures).
#: Strict: once better weights are shipped, the xfail turns into a failure until this is updated.
BELOW_PAPER: dict[int, str] = {}


@pytest.fixture(scope="module")
def set5_eval():
    """`srx eval --json` on Set5 per scale, re-measured from scratch rather than read from the file."""
    import json

    from typer.testing import CliRunner

    from srx.cli import app
    from tests.conftest import SET5, need_shared

    need_shared(SET5)
    cache: dict[int, dict] = {}

    def run(scale: int) -> dict:
        if scale not in cache:
            result = CliRunner().invoke(app, ["eval", "--data", str(SET5), "--scale", str(scale), "-w", "srcnn", "--json"])
            assert result.exit_code == 0, result.output
            cache[scale] = json.loads(result.stdout)["mean"]
        return cache[scale]

    return run


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_score_what_they_record_on_set5(scale, set5_eval):
    mean = set5_eval(scale)
    recorded = load_checkpoint(shipped_weights(scale, "srcnn"))["eval"]["set5"]
    # The README's figure is what the file scores. Not bit-exact: the thread count changes float
    # summation order, which flips the 8-bit rounding of a few pixels (~3e-5 dB seen).
    assert abs(recorded["model_psnr"] - mean["model_psnr"]) < 1e-3
    assert abs(recorded["model_ssim"] - mean["model_ssim"]) < 1e-5
    # Whatever the bar, never further than 0.1 dB below the paper.
    assert mean["model_psnr"] >= PAPER_SET5[scale] - 0.10, mean
    # The comparison above is srx against srx; the bicubic column is pinned to the published numbers
    # (SRCNN paper, Set5: 33.66 / 30.39 / 28.42 dB), so a protocol drift shows here too.
    assert abs(mean["bicubic_psnr"] - PUBLISHED_BICUBIC_SET5[scale]) <= 0.02, mean
    assert abs(mean["bicubic_ssim"] - PUBLISHED_BICUBIC_SSIM_SET5[scale]) <= 1e-3, mean  # 1.3-3.1e-4 off here


@pytest.mark.parametrize("scale", [
    pytest.param(s, marks=pytest.mark.xfail(reason=BELOW_PAPER[s], strict=True)) if s in BELOW_PAPER else s
    for s in (2, 3, 4)
])
def test_shipped_weights_reach_the_paper_on_set5(scale, set5_eval):
    assert set5_eval(scale)["model_psnr"] >= PAPER_SET5[scale]
