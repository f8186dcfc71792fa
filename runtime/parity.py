"""Parity of every exported form of a model against PyTorch, under the standard SR protocol.

Backends: PyTorch (the reference), ONNX Runtime on the FP32 graph, ONNX Runtime on the FP16 graph
(CPU provider: float16 weights and activations, FP32 I/O), and TensorRT when an engine is given or
can be built here. Inputs: Set5 (LR made by the protocol's MATLAB bicubic shrink, so PSNR against
the ground truth is the published number), or srx's own synthetic photos where Set5 is absent, plus
random LR frames of odd sizes (and one batch of two) through the same dynamic graph.

Per backend: PSNR of its HR Y against PyTorch's (the worst input, whole plane, 8-bit units), the
largest absolute difference (8-bit Y units, i.e. |ΔY/255| x 255), NaN/Inf count, the mean standard
PSNR against the ground truth (rounded 8-bit output, `scale` pixels shaved) and its difference from
PyTorch's. Gates: FP32 >= 60 dB vs PyTorch and |ΔPSNR| <= 0.01 dB; FP16 >= 45 dB and
|ΔPSNR| <= 0.05 dB; never a NaN or Inf.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from srx.errors import SrxError

GATES = {
    "fp32": {"min_psnr_vs_torch_db": 60.0, "max_abs_delta_psnr_db": 0.01},
    "fp16": {"min_psnr_vs_torch_db": 45.0, "max_abs_delta_psnr_db": 0.05},
}
#: LR sizes (h, w) of the random frames, and the batch of two (exercises the dynamic batch axis)
ODD_SIZES = [(37, 53), (101, 67)]
BATCH_SIZE_HW = (29, 41)


def default_set5() -> Path | None:
    """../shared/datasets/Set5 beside the working folder or the source checkout, when present."""
    here = Path(__file__).resolve().parents[1]
    for root in (Path.cwd().parent, here.parent):
        cand = root / "shared" / "datasets" / "Set5"
        if cand.is_dir():
            return cand
    return None


def _eval_images(set5: Path | None, synthetic: bool, seed: int,
                 skipped: list[dict[str, str]] | None = None) -> tuple[str, list[tuple[str, np.ndarray]]]:
    from srx.imageio import list_images, read_image
    from srx.samples import sample_images

    if synthetic and set5 is not None:
        raise SrxError(f"--data {set5} and --synthetic both name the pictures to check; pass one of them")
    folder = None if synthetic else (Path(set5) if set5 is not None else default_set5())
    if folder is None:
        why = "asked for" if synthetic else "Set5 not found"
        return f"synthetic photos (srx.samples; {why})", sample_images(3, seed=seed)
    if folder.exists() and not folder.is_dir():
        raise SrxError(f"parity data {folder} is a file; expected a folder of images such as Set5")
    if not folder.is_dir():
        raise SrxError(f"parity data folder {folder} does not exist; expected a folder of images such as Set5")
    paths = list_images(folder)
    if not paths:
        raise SrxError(f"parity data folder {folder} holds no images")
    imgs = []
    for p in paths:  # an unreadable one is named in the report's `skipped`, the rest are checked
        try:
            img = read_image(p)
        except SrxError as exc:
            if skipped is None:
                raise
            skipped.append({"name": p.name, "reason": str(exc)})
            continue
        imgs.append((p.stem, img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)))
    if not imgs:
        raise SrxError(f"none of the {len(paths)} images in parity data folder {folder} could be read: "
                       + "; ".join(s["reason"] for s in skipped or []))
    return f"{folder.name} ({folder})", imgs


def served_name(weights: Path | str | None, scale: int) -> str:
    """The Triton name `srx serve -w WEIGHTS` gives the model of `weights` at `scale`: srx_camera_x3
    for a shipped model, srx_<architecture>_x3 for a checkpoint (srx serve without --name)."""
    from srx.checkpoint import model_from_checkpoint, resolve_weights, shipped_name
    from srx.export.onnx import export_stem
    from srx.export.triton_repo import triton_model_name

    given = shipped_name(weights)
    if given is not None:
        return triton_model_name(export_stem("", scale, given), scale)
    _, config, _ = model_from_checkpoint(resolve_weights(weights, scale), scale)
    return triton_model_name(config.name, scale)


def check_served_model(served: Any, weights: Path | None, scale: int) -> None:
    """Refuse a Triton server's model (a TritonRunner) that is not the model of `weights`: another
    architecture, or, where the server records it, other weights. Parity against it would only
    fail, without saying why."""
    from srx.checkpoint import model_from_checkpoint, resolve_weights
    from srx.fsutil import sha256_file

    weights = resolve_weights(weights, scale)
    _, config, _ = model_from_checkpoint(weights, scale)
    where = f"model {served.model} on {served.url}"
    if served.config is not None and served.config != config:
        raise SrxError(f"{where} is {served.params.get('srx_model') or served.config.name} ({served.config.name}), "
                       f"not the model of {weights.name} ({config.name}); check the server against the weights it "
                       "serves (-w), or name the served model that matches with --model")
    sha = served.params.get("srx_source_sha256")
    ours = sha256_file(weights) if sha else None
    if sha and sha != ours:
        raise SrxError(f"{where} was made from other weights ({served.params.get('srx_source_name') or 'unnamed'}, "
                       f"sha256 {sha[:12]}…) than {weights.name} (sha256 {ours[:12]}…); check the server against "
                       "the weights it serves (-w)")


def _inputs(images: list[tuple[str, np.ndarray]], scale: int, seed: int,
            fixed_hw: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """[{name, lr (N,1,h,w) float32, hr_y uint8 or None}] in model units (Y/255).

    `fixed_hw`: the input size of a static graph; images are cropped to it (top left, HR crop to
    match; smaller images are left out) and the random frames take that size.
    """
    from srx.protocol import make_pair

    out = []
    for name, bgr in images:
        hr_y, lr_y = make_pair(bgr, scale)
        if fixed_hw is not None:
            h, w = fixed_hw
            if lr_y.shape[0] < h or lr_y.shape[1] < w:
                continue
            lr_y, hr_y = lr_y[:h, :w], hr_y[: scale * h, : scale * w]
        out.append({"name": name, "lr": (lr_y.astype(np.float32) / 255.0)[None, None], "hr_y": hr_y})
    rng = np.random.default_rng(seed)
    if fixed_hw is not None:
        for k in range(3):
            lr = rng.uniform(16, 235, (1, 1, *fixed_hw)) / 255.0
            out.append({"name": f"random {fixed_hw[0]}x{fixed_hw[1]} #{k}", "lr": lr.astype(np.float32), "hr_y": None})
        return out
    for h, w in ODD_SIZES:
        lr = rng.uniform(16, 235, (1, 1, h, w)) / 255.0
        out.append({"name": f"random {h}x{w}", "lr": lr.astype(np.float32), "hr_y": None})
    h, w = BATCH_SIZE_HW
    lr = rng.uniform(16, 235, (2, 1, h, w)) / 255.0
    out.append({"name": f"random batch 2x{h}x{w}", "lr": lr.astype(np.float32), "hr_y": None})
    return out


def _psnr_gt(hr_y: np.ndarray, out: np.ndarray, scale: int) -> float:
    from srx.protocol import psnr

    y = out[0, 0].astype(np.float64)
    y = np.where(np.isfinite(y), y, 0.0)  # as _score does; the NaN/Inf count fails such a backend
    sr = np.clip(np.floor(y * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return psnr(hr_y, sr, border=scale)


def _exported(weights: Path, scale: int, folder: Path, scratch: Path,
              graphs: tuple[Path, Path | None] | None = None) -> tuple[Path, Path]:
    """The FP32 and FP16 graphs to check. `graphs`: exactly these files (what `srx export` just
    wrote; without an FP16 one, it is converted from the FP32 graph into `scratch`). Else those of
    `weights` in `folder`, reused when they were exported from this very checkpoint (source
    sha256); missing or stale ones are exported into `scratch`."""
    from srx.export.onnx import check_srx_onnx, fp16_onnx_from_onnx, onnx_from_checkpoint
    from srx.fsutil import sha256_file
    from srx.checkpoint import model_from_checkpoint

    if graphs is not None:
        given = Path(graphs[0])
        if check_srx_onnx(given, scale)["precision"] != "fp32":
            raise SrxError(f"{given} is not an FP32 graph; the parity check takes the FP32 graph and its FP16 one")
        if graphs[1] is None:
            return given, fp16_onnx_from_onnx(given, scratch / f"{given.stem}-fp16.onnx")
        half = Path(graphs[1])
        if check_srx_onnx(half, scale)["precision"] != "fp16":
            raise SrxError(f"{half} is not an FP16 graph; the parity check takes the FP32 graph and its FP16 one")
        return given, half
    _, config, _ = model_from_checkpoint(weights, scale)
    digest = sha256_file(weights)
    fp32, fp16 = folder / f"{config.name}.onnx", folder / f"{config.name}-fp16.onnx"

    def fresh(path: Path, precision: str) -> bool:
        try:
            info = check_srx_onnx(path, scale)
        except SrxError:
            return False
        return info.get("source_sha256") == digest and info["precision"] == precision

    if not fresh(fp32, "fp32"):
        fp32 = onnx_from_checkpoint(weights, scratch, scale=scale)
    if not fresh(fp16, "fp16"):
        fp16 = fp16_onnx_from_onnx(fp32, scratch / fp16.name)
    return fp32, fp16


def _run(runner: Any, inputs: list[dict[str, Any]], single: bool) -> list[np.ndarray]:
    with runner:
        if not single:
            return [runner.infer(item["lr"]) for item in inputs]
        return [np.concatenate([runner.infer(item["lr"][i : i + 1]) for i in range(len(item["lr"]))]) for item in inputs]


def _score(backend: str, precision: str, outs: list[np.ndarray], refs: list[np.ndarray],
           inputs: list[dict[str, Any]], scale: int, ref_gt: float | None) -> dict[str, Any]:
    from srx.protocol import psnr

    worst, max_err, bad, gts = math.inf, 0.0, 0, []
    for out, ref, item in zip(outs, refs, inputs):
        if out.shape != ref.shape:
            raise SrxError(f"{backend} returned shape {out.shape} for {item['name']}, PyTorch {ref.shape}")
        finite = np.isfinite(out)
        bad += int(out.size - finite.sum())
        o = np.where(finite, out, 0).astype(np.float64) * 255.0
        r = ref.astype(np.float64) * 255.0
        worst = min(worst, psnr(r, o, data_range=255.0))
        max_err = max(max_err, float(np.abs(o - r).max()))
        if item["hr_y"] is not None:
            gts.append(_psnr_gt(item["hr_y"], out, scale))
    gt = float(np.mean(gts)) if gts else None
    row = {
        "backend": backend, "precision": precision, "status": "ok",
        "psnr_vs_torch_db": worst, "max_abs_err_8bit": max_err, "nonfinite": bad,
        "psnr_gt_db": gt, "delta_psnr_db": (gt - ref_gt) if gt is not None and ref_gt is not None else None,
    }
    gate = GATES.get(precision)
    if gate is not None:
        reasons = []
        if worst < gate["min_psnr_vs_torch_db"]:
            reasons.append(f"PSNR vs PyTorch {worst:.2f} dB < {gate['min_psnr_vs_torch_db']:g} dB")
        if row["delta_psnr_db"] is not None and abs(row["delta_psnr_db"]) > gate["max_abs_delta_psnr_db"]:
            reasons.append(f"|ΔPSNR| {abs(row['delta_psnr_db']):.4f} dB > {gate['max_abs_delta_psnr_db']:g} dB")
        if bad:
            reasons.append(f"{bad} NaN/Inf values")
        row["passed"] = not reasons
        row["status"] = "ok" if not reasons else "failed"
        if reasons:
            row["reason"] = "; ".join(reasons)
    return row


def parity_report(
    weights: Path | None,
    scale: int,
    *,
    onnx_dir: Path | None = None,
    graphs: tuple[Path, Path | None] | None = None,
    engine: Path | None = None,
    set5: Path | None = None,
    seed: int = 0,
    synthetic: bool = False,
    build_engines: bool = True,
    log: Callable[[str], None] | None = None,
    extra: Sequence[tuple[str, str, Callable[[], Any]]] = (),
) -> dict[str, Any]:
    """Run every backend on the same inputs and score it against PyTorch (module docstring).

    `onnx_dir`: where exported graphs are looked for (used when exported from this very checkpoint;
    missing ones are exported to a temporary folder, never into `onnx_dir`). `graphs`: the exact
    (FP32, FP16 or None) files to check instead, as `srx export --check` passes what it wrote: a
    static graph's inputs are cropped to its size. `engine`: a TensorRT
    engine to check; without one, FP32 and FP16 engines are built in the temporary folder when
    TensorRT and a GPU are present (`build_engines`). `set5`: the
    images (default ../shared/datasets/Set5 when present, else synthetic photos; `synthetic`
    forces those). `extra`: more backends as (label, precision, runner factory), e.g. a Triton
    server's model, scored under the same gates.
    """
    import torch

    from srx.checkpoint import model_from_checkpoint, resolve_weights
    from srx.protocol import check_scale

    say = log or (lambda _msg: None)
    check_scale(scale)
    weights = resolve_weights(weights, scale)
    model, config, _ = model_from_checkpoint(weights, scale)
    skipped: list[dict[str, str]] = []
    data_name, images = _eval_images(set5, synthetic, seed, skipped)

    with tempfile.TemporaryDirectory(prefix="srx-parity-") as tmp:
        folder = Path(onnx_dir) if onnx_dir is not None else Path(tmp)
        fp32, fp16 = _exported(weights, scale, folder, Path(tmp), graphs)
        from srx.export.onnx import check_srx_onnx
        from srx.runtime.onnxruntime_runner import OnnxRuntimeRunner

        shape = check_srx_onnx(fp32)["input_shape"]
        fixed = (int(shape[2]), int(shape[3])) if all(isinstance(d, int) and d > 0 for d in shape) else None
        if fixed is not None:
            data_name += f", cropped to the static {fixed[0]}x{fixed[1]} input of {fp32.name}"
        inputs = _inputs(images, scale, seed, fixed)
        with torch.no_grad():
            refs = [model(torch.from_numpy(item["lr"])).numpy() for item in inputs]
        rows = [_score("torch", "fp32-reference", refs, refs, inputs, scale, None)]
        ref_gt = rows[0]["psnr_gt_db"]
        rows[0].update(status="reference", delta_psnr_db=0.0 if ref_gt is not None else None, passed=None)

        for label, path, precision in (("onnxruntime", fp32, "fp32"), ("onnxruntime", fp16, "fp16")):
            say(f"parity: {label} {precision} ({path.name})")
            rows.append(_guarded(label, precision, lambda p=path: _run(OnnxRuntimeRunner(p), inputs, False),
                                 refs, inputs, scale, ref_gt))
        rows.extend(_tensorrt_rows(engine, fp32, fp16, Path(tmp), inputs, refs, scale, ref_gt, build_engines, say))
        for label, precision, make in extra:
            say(f"parity: {label} {precision}")
            rows.append(_guarded(label, precision, lambda m=make: _run(m(), inputs, False), refs, inputs, scale, ref_gt))

    failed = [r for r in rows if r.get("passed") is False]
    return {
        "scale": scale,
        "model": config.name,
        "weights": str(weights),
        "data": data_name,
        "inputs": [{"name": i["name"], "lr_shape": list(i["lr"].shape)} for i in inputs],
        "images": len(images),  # pictures read (the random inputs besides them are not counted)
        "skipped": skipped,  # images of the folder that could not be read: not checked ({name, reason})
        "units": {
            "psnr_vs_torch_db": "worst input; whole HR Y plane in 8-bit units (0-255)",
            "max_abs_err_8bit": "largest |HR Y - PyTorch HR Y| in 8-bit units (model units x 255)",
            "psnr_gt_db": "mean over the images with ground truth; 8-bit rounded Y, `scale` px shaved",
            "delta_psnr_db": "psnr_gt_db minus PyTorch's",
        },
        "gates": GATES,
        "backends": rows,
        "passed": not failed,
    }


def _guarded(backend: str, precision: str, run: Callable[[], list[np.ndarray]], refs: list[np.ndarray],
             inputs: list[dict[str, Any]], scale: int, ref_gt: float | None) -> dict[str, Any]:
    """Score one backend; a backend that raises is a failed row, not a crashed report."""
    try:
        return _score(backend, precision, run(), refs, inputs, scale, ref_gt)
    except SrxError as exc:
        return {"backend": backend, "precision": precision, "status": "failed", "passed": False, "reason": str(exc)}


def _tensorrt_rows(engine: Path | None, fp32: Path, fp16: Path, folder: Path, inputs: list[dict[str, Any]],
                   refs: list[np.ndarray], scale: int, ref_gt: float | None, build: bool,
                   say: Callable[[str], None]) -> list[dict[str, Any]]:
    from srx.export.tensorrt import check_engine_sidecar, engine_from_onnx, tensorrt_status

    def skipped(reason: str) -> list[dict[str, Any]]:
        return [{"backend": "tensorrt", "precision": "-", "status": "skipped", "passed": None, "reason": reason}]

    try:
        from srx.runtime.tensorrt_runner import TensorRTRunner
    except ImportError as exc:
        return skipped(f"the TensorRT runner is not available ({exc})")
    if engine is not None:
        info = check_engine_sidecar(Path(engine))
        if int(info.get("scale", scale)) != scale:
            raise SrxError(f"engine {engine} is x{info.get('scale')} but the parity check is for x{scale}")
        engines = [(Path(engine), str(info.get("precision", "fp32")))]
    else:
        ok, why = tensorrt_status()
        if not ok:
            return skipped(f"no engine given and none can be built here: {why}")
        if not build:
            return skipped("no engine given (engine builds switched off)")
        hs = [i["lr"].shape[2] for i in inputs]
        ws = [i["lr"].shape[3] for i in inputs]
        prof = {"min_hw": (min(hs), min(ws)), "opt_hw": (max(hs), max(ws)), "max_hw": (max(hs), max(ws))}
        engines = []
        for path, precision in ((fp32, "fp32"), (fp16, "fp16")):
            say(f"parity: building a {precision} TensorRT engine from {path.name}")
            engines.append((engine_from_onnx(path, folder / f"{path.stem}-parity.engine", log=say, **prof), precision))
    return [
        _guarded("tensorrt", precision, lambda e=path: _run(TensorRTRunner(e), inputs, True), refs, inputs, scale, ref_gt)
        for path, precision in engines
    ]


def report_to_json(report: dict[str, Any]) -> str:
    """One JSON object; infinite PSNRs (identical outputs: the reference against itself) are null,
    as in every srx JSON (they were the string "inf" in a field that is a number in other rows)."""
    from srx.jsonout import json_text

    return json_text(report, None)


def format_parity_table(report: dict[str, Any]) -> Any:
    """A rich Table of the report, one row per backend."""
    from rich.markup import escape
    from rich.table import Table

    def num(v: Any, fmt: str) -> str:
        if v is None:
            return "-"
        if isinstance(v, float) and math.isinf(v):
            return "inf"
        return format(v, fmt)

    weights = Path(report["weights"]).name  # camera-x3.pt: `fast` and `camera` share an architecture
    table = Table(title=f"parity {weights} ({report['model']}) x{report['scale']} on {report['data']}")
    for col in ("backend", "precision", "PSNR vs torch (dB, worst)", "max |err| (8-bit)", "NaN/Inf",
                "PSNR vs GT (dB, mean)", "ΔPSNR (dB)", "result"):
        table.add_column(col, justify="left" if col in ("backend", "precision", "result") else "right")
    for r in report["backends"]:
        result = {"reference": "reference", "ok": "[green]pass[/green]", "failed": "[red]FAIL[/red]",
                  "skipped": "skipped"}.get(r["status"], r["status"])
        if r.get("reason"):
            result += f": {escape(r['reason'])}"
        table.add_row(
            r["backend"], r["precision"], num(r.get("psnr_vs_torch_db"), ".2f"), num(r.get("max_abs_err_8bit"), ".5f"),
            num(r.get("nonfinite"), "d"), num(r.get("psnr_gt_db"), ".4f"), num(r.get("delta_psnr_db"), "+.5f"), result,
        )
    return table
