"""Checkpoint → ONNX graph (FP32), and FP32 graph → FP16 graph.

The graph follows the srx model contract: one input `lr_y` (N, 1, H, W) float32, Y/255 of MATLAB
BT.601 luma, one output `hr_y` (N, 1, sH, sW) float32 in the same units; the bicubic enlargement is
inside the graph (Pad(edge) + Conv + DepthToSpace), so every backend runs identical arithmetic.

Exporter: the TorchScript exporter (`dynamo=False`). In torch 2.13 the dynamo exporter needs the
extra `onnxscript` package and names the output axes by symbolic expressions it picks itself; the
TorchScript one gives us our own axis names with no extra dependency. It leaves the padding amounts
of the replicate-pad convolutions as small constant sub-graphs (ConstantOfShape/Concat/Slice/...:
torch refuses to fold a negative-step Slice), so `_fold_constants` evaluates every node whose inputs
are all constant with ONNX's reference evaluator. The final graph holds Pad, Conv, DepthToSpace,
Relu, Add and ReduceSum for the arithmetic, and a few int64 shape nodes (Shape, Gather, Unsqueeze,
Min, Max, Sub) with Slice and Concat that stitch the edge bands of `SRCNNBandedExport` onto its
interior (see srx.export.layouts), plus boundary Casts in the FP16 graph: nothing training-only,
all standard for ONNX Runtime and TensorRT parsers.

FP16 graph: initializers and all compute are float16, but the graph I/O stays float32, with a Cast
after `lr_y` and one before `hr_y`. Every host path (ONNX Runtime, the TensorRT runner's pinned
buffers, the camera pipeline) then feeds and reads the same float32 buffers whatever the precision,
and TensorRT's strongly typed build (the only kind in TensorRT 11) runs the two casts on the GPU
next to the first and last convolution, where they cost next to nothing.

Every file carries srx metadata (`metadata_props`, keys `srx.*`) so a runner can check that a graph is
ours and for which scale before it runs it.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from srx._version import __version__
from srx.errors import SrxError
from srx.fsutil import atomic_path, ensure_dir, sha256_file

FORMAT = "srx-onnx"
INPUT_NAME = "lr_y"
OUTPUT_NAME = "hr_y"
COLOUR = "MATLAB BT.601 Y (rgb2ycbcr, Y in [16, 235]), in Y/255 units, not clamped"
#: metadata keys every srx graph must carry (without the `srx.` prefix)
REQUIRED_KEYS = ("format", "version", "scale", "model_config", "colour", "precision", "input", "output", "source_sha256")
#: bumped whenever export writes a different graph for the same checkpoint, so caches re-export
#: (3: SRCNNBandedExport, phase-space interior with edge bands stitched on, bands batched in pairs)
GRAPH_REVISION = 3
#: the operators an exported srx graph may hold: what srx's models export to (Cast only in the FP16
#: graph), plus the elementwise activations a new model may use (ONNX Runtime, its FP16 conversion
#: and TensorRT run them all). Anything else is refused, so a graph that would surprise a backend
#: fails at export, not on a Jetson.
EXPECTED_OPS = {
    "Pad", "Conv", "DepthToSpace", "Relu", "Add", "ReduceSum", "Cast",
    "Slice", "Concat", "Shape", "Gather", "Unsqueeze", "Min", "Max", "Sub",  # edge bands (SRCNNBandedExport)
    "Tanh", "Sigmoid", "PRelu", "LeakyRelu", "Clip", "Mul", "HardSigmoid", "HardSwish",  # other activations
}


log = logging.getLogger("srx")

#: what --name may hold: it becomes a file stem and a Triton model name
#: one torch export at a time in a process (see onnx_from_checkpoint)
_EXPORT_LOCK = threading.Lock()
_EXPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def export_stem(config_name: str, scale: int, name: str | None = None) -> str:
    """The stem of the exported files and the model name in their metadata: `<name>-x<scale>`
    (`camera-x3`), or the architecture's own name (`lrnet-32x4-pw3-x3`) when no name is given."""
    if name is None:
        return config_name
    if not _EXPORT_NAME.fullmatch(name):
        raise SrxError(f"--name {name!r}: expected up to 64 letters, digits, '.', '_' or '-', starting with a "
                       "letter or digit (it names the files and the Triton model)")
    if re.search(r"-x\d+$", name):
        raise SrxError(f"--name {name!r}: expected a name without a -x<scale> ending; srx adds the scale itself "
                       f"({name}-x{scale}.onnx, srx_{name}_x{scale} on Triton)")
    return f"{name}-x{scale}"


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise SrxError(f"ONNX export needs the onnx package ({exc}); install it with `pip install onnx`") from None
    return onnx


def onnx_from_checkpoint(
    weights: Path,
    out_dir: Path,
    *,
    scale: int | None = None,
    opset: int = 17,
    dynamic: bool = True,
    height: int | None = None,
    width: int | None = None,
    layout: str = "fast",
    name: str | None = None,
) -> Path:
    """Export an srx checkpoint to `<out_dir>/<stem>.onnx` (FP32), written atomically; the stem is
    `<name>-x<scale>`, or the architecture's name without `name` (export_stem).

    `layout` picks how the graph computes the model (srx.export.layouts.LAYOUTS): "fast" (default)
    or "plain", layer by layer.

    `dynamic` (default) leaves batch, height and width free; `dynamic=False` fixes the input to
    (1, 1, height, width), which some edge compilers want.
    """
    onnx = _onnx()
    import torch

    from srx.checkpoint import model_from_checkpoint
    from srx.export.layouts import BAND_PARTS, SRCNNBandedExport, export_module

    weights = Path(weights)
    if not 13 <= int(opset) <= 21:
        raise SrxError(f"ONNX opset {opset} is not supported: expected 13..21 (17 is the default)")
    if dynamic and (height is not None or width is not None):
        raise SrxError("height/width fix the input size and need a static export (--static); got a dynamic one")
    if not dynamic:
        if height is None or width is None:
            raise SrxError("a static export needs both height and width (--height/--width) of the LR input")
        if height < 1 or width < 1:
            raise SrxError(f"static input size must be positive, got {height}x{width}")
    model, config, _payload = model_from_checkpoint(weights, scale)
    stem = export_stem(config.name, config.scale, name)
    out_dir = ensure_dir(Path(out_dir))
    out = out_dir / f"{stem}.onnx"
    source_sha = sha256_file(weights)
    s = config.scale

    ex_h, ex_w = (height, width) if not dynamic else (24, 32)
    example = torch.full((1, 1, ex_h, ex_w), 0.5)  # values do not matter; leaves the global RNG alone
    module = export_module(model, layout)
    banded = isinstance(module, SRCNNBandedExport)
    # A banded module returns its parts; _stitch_bands joins them into OUTPUT_NAME afterwards.
    outputs = [f"{_PART_PREFIX}{p}" for p in BAND_PARTS] if banded else [OUTPUT_NAME]
    axes = None
    if dynamic:
        axes = {INPUT_NAME: {0: "n", 2: "h", 3: "w"}}
        axes.update({o: {0: "n", 2: f"{o}_h", 3: f"{o}_w"} for o in outputs})
        if not banded:
            axes[OUTPUT_NAME] = {0: "n", 2: f"{s}*h", 3: f"{s}*w"}
    with tempfile.TemporaryDirectory(prefix="srx-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        # torch's exporter keeps its state in globals, and warnings' filters are the process's: one
        # export at a time (threads that each make an upscaler of a checkpoint export at once)
        with _EXPORT_LOCK, warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of dynamo (see the module docstring);
            # its constant-folding notes are about the pad sub-graphs we fold ourselves below.
            warnings.simplefilter("ignore")
            try:
                with torch.no_grad():
                    torch.onnx.export(
                        module, (example,), str(raw), dynamo=False, input_names=[INPUT_NAME],
                        output_names=outputs, opset_version=int(opset), dynamic_axes=axes,
                        do_constant_folding=True,
                    )
            except Exception as exc:  # torch raises many exception types from the exporter
                raise SrxError(f"torch could not export {weights} to ONNX opset {opset}: {str(exc).splitlines()[0]}") from None
        graph = onnx.load(str(raw))

    graph = _fold_constants(graph)
    if banded:
        _stitch_bands(graph, module.band, s, dynamic, (height, width))
    graph.producer_name = "srx"
    graph.producer_version = __version__
    graph.doc_string = f"srx {stem} ({config.name}): LR Y ({INPUT_NAME}) -> HR Y ({OUTPUT_NAME}), x{s}, {COLOUR}"
    _set_metadata(
        graph,
        {
            "format": FORMAT,
            "version": __version__,
            "scale": str(s),
            "model_config": json.dumps(config.to_dict(), sort_keys=True),
            "name": stem,
            "colour": COLOUR,
            "precision": "fp32",
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "source_sha256": source_sha,
            "source_name": weights.name,
            "opset": str(opset),
            "dynamic": "true" if dynamic else "false",
            "graph_revision": str(GRAPH_REVISION),
            "layout": type(module).__name__,
            "export_layout": layout,
        },
    )
    graph = _checked(graph, f"the ONNX graph exported from {weights}")
    _note_replacing(out, source_sha)
    _drop_stale_fp16(out.with_name(f"{stem}-fp16.onnx"), source_sha)
    _save(graph, out)
    return out


def _drop_stale_fp16(fp16: Path, source_sha: str) -> None:
    """Remove an FP16 graph of other weights under the name the new FP32 graph takes, before that is
    written: an export stopped between its two files (Ctrl-C, a closed pipe) left the new FP32 graph
    beside the old weights' FP16 one, which upscaled up to 63 levels off the checkpoint with nothing
    said (a user trial). `srx export` writes the FP16 graph again next."""
    try:
        old = read_srx_metadata(fp16) if fp16.is_file() else {}
    except SrxError:
        return
    if old.get("source_sha256") not in (None, source_sha):
        fp16.unlink(missing_ok=True)
        log.info("removed %s, the FP16 graph of the weights exported before under this name", fp16)


def _note_replacing(out: Path, source_sha: str) -> None:
    """Say so when `out` holds a graph of other weights: two models of one architecture export to the
    same name unless each has its own --name (re-exporting retrained weights is the usual case)."""
    try:
        old = read_srx_metadata(out) if out.is_file() else {}
    except SrxError:
        return
    if old.get("source_sha256") not in (None, source_sha):
        log.warning("replacing %s, exported before from other weights (%s); give each model its own --name "
                    "to keep both", out, old.get("source_name", "unknown"))


def fp16_onnx_from_onnx(src: Path, out: Path | None = None) -> Path:
    """Convert an srx FP32 graph to FP16 weights and compute, keeping FP32 I/O (module docstring).

    Writes `<src stem>-fp16.onnx` beside `src` unless `out` is given.
    """
    onnx = _onnx()
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    src = Path(src)
    info = check_srx_onnx(src)
    if info["precision"] != "fp32":
        raise SrxError(f"{src} is already an {info['precision']} graph; expected the FP32 graph from `srx export`")
    out = Path(out) if out is not None else src.with_name(f"{src.stem}-fp16.onnx")
    graph_model = onnx.load(str(src))
    g = graph_model.graph

    def to_half(t: Any) -> Any:
        arr = numpy_helper.to_array(t)
        if np.any(np.abs(arr[np.isfinite(arr)]) > 65504.0):
            raise SrxError(f"{src}: tensor {t.name!r} holds values beyond the FP16 range (65504); cannot convert")
        return numpy_helper.from_array(arr.astype(np.float16), t.name)

    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(to_half(init))
    for node in g.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(to_half(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16

    # Boundary casts: float32 lr_y -> float16, float16 -> float32 hr_y.
    half_in, half_out = f"{INPUT_NAME}_fp16", f"{OUTPUT_NAME}_fp16"
    for node in g.node:
        for k, name in enumerate(node.input):
            if name == INPUT_NAME:
                node.input[k] = half_in
            elif name == OUTPUT_NAME:
                node.input[k] = half_out
        for k, name in enumerate(node.output):
            if name == OUTPUT_NAME:
                node.output[k] = half_out
    cast_in = helper.make_node("Cast", [INPUT_NAME], [half_in], to=TensorProto.FLOAT16, name="srx_cast_input_fp16")
    cast_out = helper.make_node("Cast", [half_out], [OUTPUT_NAME], to=TensorProto.FLOAT, name="srx_cast_output_fp32")
    nodes = [cast_in, *g.node, cast_out]
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]

    props = read_srx_metadata(src)
    props.update(precision="fp16", fp32_sha256=sha256_file(src), io_dtype="float32")
    _set_metadata(graph_model, props)
    graph_model = _checked(graph_model, f"the FP16 graph converted from {src}")
    _save(graph_model, out)
    return out


def export_options(meta: dict[str, Any]) -> list[str]:
    """The `srx export` options, beyond --weights, --scale, --out and the precision, that write this
    graph again: --name, --opset, --static with its size and --layout, each only where it is not the
    default. `meta` is what check_srx_onnx returns (a graph from before srx recorded its --layout
    keeps the default one)."""
    from srx.models import ModelConfig

    scale = int(meta["scale"])
    options: list[str] = []
    stem = str(meta.get("name") or "")
    default = ModelConfig.from_dict(meta["model_config"]).name
    if stem and stem != default and stem.endswith(f"-x{scale}"):
        options += ["--name", stem[: -len(f"-x{scale}")]]
    if str(meta.get("opset", "17")) != "17":
        options += ["--opset", str(meta["opset"])]
    shape = meta.get("input_shape") or []
    if meta.get("dynamic") == "false" and len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape):
        options += ["--static", "--height", str(shape[2]), "--width", str(shape[3])]
    if meta.get("export_layout", "fast") != "fast":
        options += ["--layout", str(meta["export_layout"])]
    return options


def read_srx_metadata(path: Path) -> dict[str, str]:
    """The `srx.*` metadata of an ONNX file (prefix stripped, values as stored: strings).

    SrxError when the file is missing or not an ONNX model; an empty dict for a foreign graph.
    """
    return {k[4:]: v for k, v in _load_props(Path(path))[1].items() if k.startswith("srx.")}


def check_srx_onnx(path: Path, scale: int | None = None) -> dict[str, Any]:
    """Check that `path` is an srx graph (our I/O names, float32 I/O, srx metadata) for `scale`.

    Returns the parsed metadata: format, version, scale (int), model_config (dict), name,
    precision, colour, input, output, source_sha256, input_shape (ints, or names of free axes).
    """
    path = Path(path)
    model, props = _load_props(path)
    meta = {k[4:]: v for k, v in props.items() if k.startswith("srx.")}
    g = model.graph
    ins = [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
    outs = [o.name for o in g.output]
    if ins != [INPUT_NAME] or outs != [OUTPUT_NAME]:
        raise SrxError(
            f"{path} is not an srx graph: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
            f"found inputs {ins} and outputs {outs}; export one with `srx export`"
        )
    if meta.get("format") != FORMAT:
        raise SrxError(
            f"{path} has no srx metadata (srx.format={meta.get('format')!r}, expected {FORMAT!r}); "
            "it was not written by `srx export`: export the checkpoint again"
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise SrxError(f"{path} lacks srx metadata {', '.join('srx.' + k for k in missing)}; export it again with `srx export`")
    try:
        got_scale = int(meta["scale"])
        config = json.loads(meta["model_config"])
    except (ValueError, TypeError) as exc:
        raise SrxError(f"{path} has unreadable srx metadata ({exc}); export it again with `srx export`") from None
    if scale is not None and got_scale != int(scale):
        raise SrxError(f"{path} is a x{got_scale} graph but x{scale} was asked for")
    if meta["precision"] not in ("fp32", "fp16"):
        raise SrxError(f"{path} has srx.precision={meta['precision']!r}; expected fp32 or fp16")
    for vi in (*[i for i in g.input if i.name == INPUT_NAME], *g.output):
        if vi.type.tensor_type.elem_type != 1:  # TensorProto.FLOAT
            raise SrxError(f"{path}: {vi.name} is not float32 (elem_type {vi.type.tensor_type.elem_type}); srx graphs keep float32 I/O")
    dims = [i for i in g.input if i.name == INPUT_NAME][0].type.tensor_type.shape.dim
    shape: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return {
        **meta,
        "scale": got_scale,
        "model_config": config,
        "name": meta.get("name", path.stem),
        "input_shape": shape,
        "path": str(path),
    }


# -- helpers -----------------------------------------------------------------------------------------

def _load_props(path: Path) -> tuple[Any, dict[str, str]]:
    onnx = _onnx()
    if not path.exists():
        raise SrxError(f"ONNX file {path} does not exist")
    if path.is_dir():
        raise SrxError(f"{path} is a folder; expected an .onnx file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, onnx errors, OSError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SrxError(f"{path} is not a readable ONNX model (corrupt or another format): {first}") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise SrxError(f"{path} is not an ONNX model with a graph (empty or another format); expected an .onnx file from `srx export`")
    return model, {p.key: p.value for p in model.metadata_props}


def _save(model: Any, out: Path) -> None:
    """Write atomically: a failure leaves the previous file (or none), never a partial one."""
    onnx = _onnx()
    try:
        with atomic_path(out) as tmp_out:
            onnx.save(model, str(tmp_out))
    except OSError as exc:
        raise SrxError(f"cannot write {out}: {exc.strerror or exc}") from None


def _set_metadata(model: Any, props: dict[str, str]) -> None:
    kept = {p.key: p.value for p in model.metadata_props if not p.key.startswith("srx.")}
    kept.update({f"srx.{k}": str(v) for k, v in props.items()})
    del model.metadata_props[:]
    for key in sorted(kept):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, kept[key]


def _checked(model: Any, what: str) -> Any:
    """Full checker plus strict shape inference; returns the model with inferred value_info."""
    onnx = _onnx()
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise SrxError(f"{what} fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    ops = {n.op_type for n in inferred.graph.node}
    unexpected = ops - EXPECTED_OPS
    if unexpected:
        raise SrxError(f"{what} contains unexpected operators {sorted(unexpected)}; expected only {sorted(EXPECTED_OPS)} "
                       "(a new model's operator goes into srx.export.onnx.EXPECTED_OPS once ONNX Runtime, its FP16 "
                       "conversion and TensorRT are known to run it)")
    return inferred


_PART_PREFIX = "band_"


def _stitch_bands(model: Any, band: int, scale: int, dynamic: bool, hw: tuple[int | None, int | None]) -> None:
    """Join the parts of an SRCNNBandedExport graph into OUTPUT_NAME, in place.

    Along rows, then columns: the first min(band, n) lines come from the leading strip, the last
    ones (from max(that, n - band)) from the trailing strip, the rest from the interior; computed
    from the tensors' shapes at run time, so any frame size works, even one smaller than a band.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    consts = {
        "stitch.band": [band], "stitch.zero": [0], "stitch.end": [np.iinfo(np.int64).max],
        "stitch.axis2": [2], "stitch.axis3": [3], "stitch.axis4": [4],
    }
    for name, value in consts.items():
        g.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
    nodes: list[Any] = []

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=f"/stitch/{output}", **attrs))
        return output

    def length(tensor: str, axis: int, tag: str) -> str:
        shape = node("Shape", [tensor], f"{tag}_shape")
        return node("Slice", [shape, f"stitch.axis{axis}", f"stitch.axis{axis + 1}"], f"{tag}_len")

    def along(mid: str, lead: str, trail: str, axis: int, tag: str, out: str) -> str:
        n = length(mid, axis, f"{tag}_mid")
        trail_n = length(trail, axis, f"{tag}_trail")
        a = node("Min", ["stitch.band", n], f"{tag}_a")
        z = node("Max", [a, node("Sub", [n, "stitch.band"], f"{tag}_n_minus_band")], f"{tag}_z")
        trail_from = node("Sub", [z, node("Sub", [n, trail_n], f"{tag}_trail_offset")], f"{tag}_trail_from")
        ax = f"stitch.axis{axis}"
        parts = [
            node("Slice", [lead, "stitch.zero", a, ax], f"{tag}_lead"),
            node("Slice", [mid, a, z, ax], f"{tag}_mid"),
            node("Slice", [trail, trail_from, "stitch.end", ax], f"{tag}_trail"),
        ]
        return node("Concat", parts, out, axis=axis)

    from srx.export.layouts import BAND_PARTS

    p = {name: f"{_PART_PREFIX}{name}" for name in BAND_PARTS}
    rows = along(p["interior"], p["top"], p["bottom"], 2, "rows", "stitch_rows")
    along(rows, p["left"], p["right"], 3, "cols", OUTPUT_NAME)
    g.node.extend(nodes)
    if dynamic:
        dims: list[Any] = ["n", 1, f"{scale}*h", f"{scale}*w"]
    else:
        dims = [1, 1, scale * int(hw[0]), scale * int(hw[1])]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims))


def _fold_constants(model: Any) -> Any:
    """Replace every node whose inputs are all constant by initializers (ONNX reference evaluator)."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    consts: dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    weights = set(consts)  # the model's own parameters keep their names and stay as they are
    kept = []
    for node in g.node:
        live = [i for i in node.input if i]
        if all(i in consts for i in live):  # Constant nodes (no inputs) and pure-constant arithmetic
            feeds = {i: consts[i] for i in live}
            results = ReferenceEvaluator(_single(node, feeds, opset)).run(None, feeds)
            consts.update(zip(node.output, results))
            continue
        kept.append(node)
    kept = _drop_noop_pads(kept, consts, {o.name for o in g.output})
    _name_folded(kept, consts, weights)
    used = {i for n in kept for i in n.input if i} | {o.name for o in g.output}
    inits = [numpy_helper.from_array(consts[name], name) for name in sorted(used) if name in consts]
    # Keep the parameter initializers in their original order first (readable graphs), then folded ones.
    order = {t.name: k for k, t in enumerate(g.initializer)}
    inits.sort(key=lambda t: (order.get(t.name, len(order)), t.name))
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.value_info[:]
    graph_inputs = [i for i in g.input if i.name not in consts]
    del g.input[:]
    g.input.extend(graph_inputs)
    return model


def _drop_noop_pads(nodes: list[Any], consts: dict[str, Any], outputs: set[str]) -> list[Any]:
    """Remove Pads of zero width (a 1x1 conv's replicate padding), rewiring their consumers."""
    rename: dict[str, str] = {}
    kept = []
    for node in nodes:
        for k, name in enumerate(node.input):
            node.input[k] = rename.get(name, name)
        pads = consts.get(node.input[1]) if node.op_type == "Pad" and len(node.input) > 1 else None
        if pads is not None and not pads.any() and node.output[0] not in outputs:
            rename[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    return kept


def _name_folded(nodes: list[Any], consts: dict[str, Any], weights: set[str]) -> None:
    """Readable names for folded constants (`conv1.pads`, `upsample.weight`), for Netron users."""
    roles = {("Pad", 1): "pads", ("Conv", 1): "weight", ("Conv", 2): "bias"}
    taken = set(consts)
    for node in nodes:
        scope = node.name.strip("/").split("/")[0] or node.op_type.lower()
        for k, name in enumerate(node.input):
            role = roles.get((node.op_type, k))
            if role is None or name not in consts or name in weights or "." in name:
                continue
            new = f"{scope}.{role}"
            if new in taken:
                continue
            consts[new] = consts.pop(name)
            taken.add(new)
            for other in nodes:
                for j, inp in enumerate(other.input):
                    if inp == name:
                        other.input[j] = new


def _single(node: Any, feeds: dict[str, Any], opset: int) -> Any:
    """A one-node model over `feeds` (name -> array), for the reference evaluator."""
    from onnx import helper
    from onnx.helper import np_dtype_to_tensor_dtype

    inputs = [helper.make_tensor_value_info(n, np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
