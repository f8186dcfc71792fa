"""The Upscaler: colour convention, tiling, and the pixel formats it accepts."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from srx.errors import SrxError
from srx.protocol import bgr2ycbcr, psnr, ycbcr2bgr
from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner
from srx.runtime.torch_runner import TorchRunner
from srx.runtime.upscaler import _FWD, _INV, Upscaler, bgr_from_planes, create_upscaler, halo_lr
from tests.conftest import SET5, need_shared, synthetic_photo


def _set5_photo() -> np.ndarray:
    need_shared(SET5)
    path = sorted(SET5.glob("*.png"))[0]
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def _reference_upscale(model_runner, bgr: np.ndarray, scale: int) -> np.ndarray:
    """The slow, obvious pipeline: srx.protocol's float64 BT.601, the model on Y, bicubic chroma."""
    ycc = bgr2ycbcr(bgr.astype(np.float64) / 255.0)  # float in [0, 255] units
    hr_y = model_runner.infer((ycc[..., 0] / 255.0).astype(np.float32)[None, None])[0, 0].astype(np.float64)
    h, w = bgr.shape[:2]
    cbcr = cv2.resize(ycc[..., 1:], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    hr = np.dstack([hr_y * 255.0, cbcr])
    return np.clip(np.floor(ycbcr2bgr(hr) * 255.0 + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("source", ["synthetic", "set5"])
def test_fast_colour_path_matches_the_protocol(source):
    img = synthetic_photo(57, 71, seed=4) if source == "synthetic" else _set5_photo()
    ycc = cv2.transform(img.astype(np.float32), _FWD)
    ref = bgr2ycbcr(img.astype(np.float64) / 255.0)
    assert np.abs(ycc[..., 0] * 255.0 - ref[..., 0]).max() < 1e-3
    assert np.abs(ycc[..., 1:] - ref[..., 1:]).max() < 1e-3
    back = cv2.add(cv2.transform(ycc, _INV), 0.0, dtype=cv2.CV_8U)
    assert np.array_equal(back, img)  # the round trip is lossless on 8-bit colour
    # the per-frame path (chroma folded into B, G, R on the LR grid) is the same map
    assert np.array_equal(bgr_from_planes(ycc[..., 0], ycc, 1), img)


@pytest.mark.parametrize("source", ["synthetic", "set5"])
def test_upscale_equals_the_reference_pipeline(ckpt, onnx_graphs, source):
    img = synthetic_photo(45, 61, seed=5) if source == "synthetic" else _set5_photo()[:120, :150]
    with TorchRunner(ckpt(3)) as ref_runner:
        expected = _reference_upscale(ref_runner, img, 3)
    with Upscaler(OnnxRuntimeRunner(onnx_graphs(3)[0]), 3) as up:
        got = up.upscale(img)
    assert got.shape == (img.shape[0] * 3, img.shape[1] * 3, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert psnr(expected, got) > 55


def test_tiles_equal_the_whole_frame_for_an_architecture_srx_does_not_know(tmp_path):
    """A graph whose model config this srx cannot read (a newer srx's architecture) names only its
    kernel sizes; its tiles still carry enough context for an LR-grid model such as `fast`."""
    import json

    import onnx

    from srx.checkpoint import resolve_weights
    from srx.export.onnx import onnx_from_checkpoint

    graph = onnx_from_checkpoint(resolve_weights("fast", 3), tmp_path)
    model = onnx.load(str(graph))
    for prop in model.metadata_props:
        if prop.key == "srx.model_config":
            prop.value = json.dumps({**json.loads(prop.value), "arch": "mystery"})
    onnx.save(model, str(graph))
    img = synthetic_photo(70, 90, seed=7)
    with OnnxRuntimeRunner(graph, threads=1) as runner:
        assert runner.config is None and runner.kernel_sizes == [5, 1, 3, 1, 3, 1, 3]
        tiled_up = Upscaler(runner, 3, tile=24)
        assert tiled_up.overlap == halo_lr(runner.kernel_sizes) == 7
        _same_but_rounding(tiled_up.upscale(img).astype(int), Upscaler(runner, 3).upscale(img).astype(int))


def test_tiles_equal_the_whole_frame(ckpt):
    img = synthetic_photo(70, 90, seed=6)
    with TorchRunner(ckpt(3)) as runner:
        ycc = cv2.transform(img.astype(np.float32), _FWD)
        y = np.ascontiguousarray(ycc[..., 0])
        whole = Upscaler(runner, 3, tile=512).upscale_y(y)
        tiled_up = Upscaler(runner, 3, tile=23)  # 4 x 4 tiles of uneven size
        assert tiled_up.overlap == runner.config.lr_halo == 4
        tiled = tiled_up.upscale_y(y)
        assert tiled.shape == whole.shape
        assert np.abs(tiled - whole).max() < 1e-5  # float rounding only
        frames = tiled_up.upscale(img).astype(int), Upscaler(runner, 3).upscale(img).astype(int)
        _same_but_rounding(frames[0], frames[1])
        # the check has teeth: one pixel of context too few shows seams
        seams = Upscaler(runner, 3, tile=23)
        seams.overlap = tiled_up.overlap - 1
        assert np.abs(seams.upscale_y(y) - whole).max() > 1e-5


def _same_but_rounding(a: np.ndarray, b: np.ndarray) -> None:
    """Two 8-bit frames from the same float result up to float rounding: a value near .5 may round
    either way, so at most a few pixels in a thousand may differ, and by one level."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000


class _Profiled(OnnxRuntimeRunner):
    """The ONNX Runtime runner with a TensorRT engine's profile, enforced as an engine does: an input
    outside `input_hw_range` is refused. It notes the (h, w) of every input it is given."""

    def __init__(self, path, hw_range=None):
        super().__init__(path)
        self.input_hw_range = hw_range
        self.inputs: list[tuple[int, int]] = []

    def infer_impl(self, lr_y):
        h, w = lr_y.shape[2:]
        self.inputs.append((h, w))
        if self.input_hw_range is not None:
            (min_h, min_w), (max_h, max_w) = self.input_hw_range
            assert min_h <= h <= max_h and min_w <= w <= max_w, f"{w}x{h} is outside the profile"
        return super().infer_impl(lr_y)


def test_a_backend_with_a_size_limit_gets_tiles_that_fit(onnx_graphs):
    img = synthetic_photo(70, 90, seed=8)
    with Upscaler(OnnxRuntimeRunner(onnx_graphs(3)[0]), 3) as up:
        whole = up.upscale(img)
    with _Profiled(onnx_graphs(3)[0], ((8, 8), (30, 30))) as runner:  # as a TensorRT profile declares it
        limited = Upscaler(runner, 3, tile=512)
        assert limited._tile_size() == 30 - 2 * limited.overlap
        _same_but_rounding(limited.upscale(img), whole)
        limited.upscale(synthetic_photo(100, 100, seed=9))
        assert max(h for h, _ in runner.inputs) <= 30 and max(w for _, w in runner.inputs) <= 30
        with pytest.raises(SrxError, match="engine accepts 8x8"):
            limited.upscale(synthetic_photo(6, 40))


@pytest.mark.parametrize("tile", [23, 30])
def test_no_tile_is_larger_than_tile(onnx_graphs, tile):
    """--tile bounds the model's input: each tile is at most `tile` LR pixels a side, plus its context
    (the overlap on each inner side), however the frame's sides divide by it."""
    with _Profiled(onnx_graphs(3)[0]) as runner:
        up = Upscaler(runner, 3, tile=tile)
        up.upscale(synthetic_photo(70, 90, seed=8))
        bound = tile + 2 * up.overlap
        assert max(h for h, _ in runner.inputs) <= bound and max(w for _, w in runner.inputs) <= bound
        assert len(runner.inputs) == (70 + tile - 1) // tile * ((90 + tile - 1) // tile)  # as few as that allows


def test_overlap_below_the_receptive_field_is_refused(ckpt):
    with pytest.raises(SrxError, match="receptive-field radius"):
        Upscaler(TorchRunner(ckpt(3)), 3, tile=32, overlap=1)


def test_grayscale_bgra_and_16_bit_frames(ckpt):
    colour = synthetic_photo(30, 40, seed=7)
    with Upscaler(TorchRunner(ckpt(2)), 2) as up:
        base = up.upscale(colour)
        gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        g = up.upscale(gray)
        assert g.shape == (60, 80) and g.dtype == np.uint8
        # a gray image is R = G = B: its output is the colour path's output on the gray image
        as_colour = up.upscale(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
        assert np.abs(g.astype(int) - as_colour[..., 1]).max() <= 1

        alpha = np.tile(np.linspace(0, 255, 40, dtype=np.float32), (30, 1)).astype(np.uint8)
        bgra = up.upscale(np.dstack([colour, alpha]))
        assert bgra.shape == (60, 80, 4)
        assert np.array_equal(bgra[..., :3], base)
        assert np.array_equal(bgra[..., 3], cv2.resize(alpha, (80, 60), interpolation=cv2.INTER_CUBIC))

        # the same picture in 16 bits: 16 bits out, the 8-bit result x 257 but not rounded to 8 bits
        deep = colour.astype(np.uint16) * 257
        deep_out = up.upscale(deep)
        assert deep_out.dtype == np.uint16 and deep_out.shape == base.shape
        assert np.abs(deep_out.astype(int) - 257 * base.astype(int)).max() <= 129  # half an 8-bit step
        assert np.abs(deep_out.astype(int) % 257).max() > 0  # finer than 8 bits somewhere
        deep_bgra = up.upscale(np.dstack([deep, alpha.astype(np.uint16) * 257]))
        assert deep_bgra.shape == (60, 80, 4) and np.array_equal(deep_bgra[..., :3], deep_out)
        assert np.array_equal(deep_bgra[..., 3], cv2.resize(alpha.astype(np.uint16) * 257, (80, 60),
                                                            interpolation=cv2.INTER_CUBIC))
        deep_gray = up.upscale(gray.astype(np.uint16) * 257)
        assert deep_gray.dtype == np.uint16 and np.abs(deep_gray.astype(int) - 257 * g.astype(int)).max() <= 129

        # a float image (a float TIFF, read as it is stored): upscaled as its 8-bit copy, each value
        # rounded to the nearest level (these lie 0.45 of a level below it), alpha kept
        flt = (np.dstack([colour, alpha]).astype(np.float32) - np.float32(0.45)) / np.float32(255)
        flt_out = up.upscale(flt)
        assert flt_out.dtype == np.uint8 and flt_out.shape == (60, 80, 4)
        assert np.array_equal(flt_out, bgra)


@pytest.mark.parametrize("shape,match", [((1, 1, 3), "too small"), ((0, 5, 3), "too small"),
                                         ((8, 8, 2), "grayscale, BGR or BGRA")])
def test_bad_frames_are_refused(ckpt, shape, match):
    with Upscaler(TorchRunner(ckpt(3)), 3) as up:
        with pytest.raises(SrxError, match=match):
            up.upscale(np.zeros(shape, np.uint8))


def test_create_upscaler_checks_the_scale(ckpt, onnx_graphs):
    with pytest.raises(SrxError, match="holds a x2 model but x3"):
        create_upscaler(3, model_file=onnx_graphs(2)[0])
    up = create_upscaler(None, model_file=onnx_graphs(2)[0])
    assert up.scale == 2
    with up:
        assert up.upscale(synthetic_photo(10, 12)).shape == (20, 24, 3)
    with pytest.raises(SrxError, match="upscales x3 but x2"):
        Upscaler(TorchRunner(ckpt(3)), 2)


def test_create_upscaler_sets_up_the_process_for_frames(ckpt, monkeypatch):
    """OpenCV on one thread (its pool only contends with the model's) and glibc keeping frame
    buffers (where the C library is glibc, as on every Linux machine srx targets)."""
    import platform

    from srx.runtime import upscaler as mod

    cv2.setNumThreads(2)
    calls = []
    monkeypatch.setattr(mod, "keep_frame_buffers", lambda: calls.append(True) or True)
    with create_upscaler(3, weights=ckpt(3), backend="onnxruntime") as up:
        assert up.upscale(synthetic_photo(20, 24)).shape == (60, 72, 3)
    assert cv2.getNumThreads() == 1 and calls == [True]
    monkeypatch.undo()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert mod.keep_frame_buffers() is True


def test_float_frames_are_0_to_1_whatever_each_one_holds(ckpt):
    """The library contract: a float frame is 0..1, never guessed from its own maximum, so one pixel
    of a float pipeline's overshoot (1.002) cannot darken the frame 255 times, and frames of one
    stream are all read alike. A little beyond 0..1 is clipped; well beyond (0..255 data, a max of
    1.6) and NaN or infinity are one SrxError, with no numpy warning printed before it."""
    import warnings

    colour = synthetic_photo(24, 28, seed=3)
    unit = colour.astype(np.float32) / np.float32(255)
    over = unit.copy()
    over[0, 0, 0], over[5, 7, 1], over[9, 9, 2] = 1.002, -0.003, 1.2  # clipped to 255, 0 and 255
    clipped = colour.copy()
    clipped[0, 0, 0], clipped[5, 7, 1], clipped[9, 9, 2] = 255, 0, 255
    with Upscaler(TorchRunner(ckpt(3)), 3) as up:
        base = up.upscale(colour)
        assert np.array_equal(up.upscale(unit), base)
        assert np.array_equal(up.upscale(over), up.upscale(clipped))
        assert np.array_equal(up.upscale(over.astype(np.float64)), up.upscale(clipped))
        gray = unit[..., 1]
        assert np.array_equal(up.upscale(gray), up.upscale(colour[..., 1]))
        assert [o.tobytes() for o in up.upscale_batch([unit, over, colour])] == \
            [o.tobytes() for o in (base, up.upscale(clipped), base)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's RuntimeWarnings would fail here
            for bad, match in [(unit * 255, r"values from 61 to 214; expected 0\.\.1 floats.*divide it by 255"),
                               (np.where(np.arange(28) == 3, 1.6, unit[..., 0]).astype(np.float32),
                                r"values from 0\.2\d* to 1\.6; expected 0\.\.1 floats"),
                               (unit - 0.8, r"values from -0\.56\d* to 0\.039\d*; expected 0\.\.1 floats"),
                               (np.full((8, 8, 3), np.nan, np.float32), "holds NaN; expected finite 0..1 floats"),
                               (np.where(unit > 0.5, np.inf, unit), "holds infinite values")]:
                with pytest.raises(SrxError, match=match):
                    up.upscale(bad)
                with pytest.raises(SrxError, match=match):
                    up.upscale_batch([colour, bad])
            with pytest.raises(SrxError, match="unsupported pixel type float16; expected uint8 or uint16"):
                up.upscale(unit.astype(np.float16))


def test_big_endian_16_bit_frames_are_16_bit_frames(ckpt):
    """A byte-swapped uint16 array (as FITS and some TIFF readers return) is the same picture."""
    deep = synthetic_photo(20, 24, seed=2).astype(np.uint16) * 257 + 100
    with Upscaler(TorchRunner(ckpt(2)), 2) as up:
        want = up.upscale(deep)
        got = up.upscale(deep.astype(">u2"))
        assert got.dtype == np.uint16 and np.array_equal(got, want)
        assert np.array_equal(up.upscale_batch([deep.astype(">u2")])[0], want)


def test_upscale_y_takes_one_plane(ckpt):
    with Upscaler(TorchRunner(ckpt(3)), 3) as up:
        with pytest.raises(SrxError, match=r"expects one Y plane, an H x W array, got an array of shape \(20, 20, 3\)"):
            up.upscale_y(np.zeros((20, 20, 3), np.uint8))
        with pytest.raises(SrxError, match="uint8 Y plane .* or a float one in model units .*got uint16"):
            up.upscale_y(np.zeros((20, 20), np.uint16))
        assert up.upscale_y(np.full((8, 8), 16, np.uint8)).shape == (24, 24)


@pytest.mark.parametrize("threads", [0, -1])
def test_create_upscaler_refuses_threads_below_1(ckpt, threads):
    """As the CLI's --threads: 0 is not "all cores" (None is) and -1 never reaches ONNX Runtime."""
    said = rf"threads must be at least 1 \(or None: one per physical core\), got {threads}$"
    with pytest.raises(SrxError, match=said):
        create_upscaler(3, weights=ckpt(3), backend="onnxruntime", threads=threads)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_one_upscaler_shared_by_threads_gives_what_one_thread_does(ckpt, onnx_graphs, backend):
    """What the Upscaler's docstring says of threads: one upscaler, activated lazily by whichever
    thread comes first, shared by four threads running upscale and upscale_batch (tiled too),
    gives every frame bit for bit as a single thread does, on PyTorch (concurrent_infer False) as
    on ONNX Runtime."""
    from concurrent.futures import ThreadPoolExecutor

    frames = [synthetic_photo(30 + 3 * i, 34, seed=i) for i in range(6)]
    make = (lambda: TorchRunner(ckpt(3))) if backend == "torch" else (lambda: OnnxRuntimeRunner(onnx_graphs(3)[0]))
    with Upscaler(make(), 3, tile=16) as alone:
        want = [alone.upscale(f).tobytes() for f in frames]
    shared = Upscaler(make(), 3, tile=16)
    assert not shared.runner.is_active

    def work(k: int) -> list[bytes]:  # each thread starts at another frame
        order = [(k + i) % len(frames) for i in range(len(frames))]
        single = {i: shared.upscale(frames[i]).tobytes() for i in order}
        batch = dict(zip(order, (o.tobytes() for o in shared.upscale_batch([frames[i] for i in order]))))
        return [single[i] for i in range(len(frames))] + [batch[i] for i in range(len(frames))]

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(work, range(4)))
    finally:
        shared.close()
    for got in results:
        assert got == want + want


def test_the_readmes_python_example_runs_and_gives_srx_upscales_pixels(tmp_path, monkeypatch, srx_cache_dir) -> None:
    """The README's "Use srx from Python" block, run as it is printed on a picture the test makes:
    what it writes equals `srx upscale in.png -w camera`, as it says."""
    import re

    from typer.testing import CliRunner

    from srx.cli import app
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text()
    section = text.split("### Use srx from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("in.png", synthetic_photo(40, 56, seed=3))
    exec(compile(code, "README.md", "exec"), {})
    result = CliRunner().invoke(app, ["upscale", "in.png", "-w", "camera", "--out", "cli.png"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(cv2.imread("out.png"), cv2.imread("cli.png"))
    assert cv2.imread("out.png").shape == (120, 168, 3)
