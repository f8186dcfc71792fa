"""srx ONNX graph → TensorRT engine (TensorRT 10 and 11, named-tensor API only).

The network is strongly typed (TensorRT 11 knows no other kind; on TensorRT 10 we ask for it with
NetworkDefinitionCreationFlag.STRONGLY_TYPED), so the precision of an engine is the precision of
its ONNX graph: the FP32 graph gives an FP32 engine (TF32 switched off so it matches PyTorch to
FP32 rounding), the FP16 graph from `fp16_onnx_from_onnx` an FP16 engine with FP32 I/O. No
BuilderFlag.FP16 (gone in TensorRT 11).

An engine only runs on the TensorRT version and GPU it was built with, so every plan gets a sidecar
`<engine>.json` (srx/TensorRT versions, GPU name and compute capability, precision, profile, the
sha256 of the ONNX and of the plan, the model config) that `check_engine_sidecar` compares with the
running machine before a runner deserializes anything. The plan itself is the raw serialized engine,
no header, so trtexec and Triton load it as is.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from srx._version import __version__
from srx.errors import SrxError
from srx.fsutil import atomic_path, atomic_write_text, ensure_dir, sha256_file

#: every tensorrt attribute srx uses (export/ and srx.runtime.tensorrt_runner), as paths on the
#: tensorrt module: a test checks them against the installed bindings.
TENSORRT_API = [
    "__version__",
    "Logger", "Logger.WARNING",
    "Builder", "Builder.create_network", "Builder.create_builder_config",
    "Builder.create_optimization_profile", "Builder.build_serialized_network",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "OnnxParser", "OnnxParser.parse", "OnnxParser.num_errors", "OnnxParser.get_error",
    "INetworkDefinition.num_inputs", "INetworkDefinition.get_input",
    "INetworkDefinition.num_outputs", "INetworkDefinition.get_output",
    "ITensor.name",
    "IBuilderConfig.set_memory_pool_limit", "MemoryPoolType.WORKSPACE",
    "IBuilderConfig.clear_flag", "BuilderFlag.TF32",
    "IBuilderConfig.add_optimization_profile", "IBuilderConfig.create_timing_cache",
    "IBuilderConfig.set_timing_cache", "IBuilderConfig.get_timing_cache",
    "ITimingCache.serialize", "IOptimizationProfile.set_shape",
    "Runtime", "Runtime.deserialize_cuda_engine",
    "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_profile_shape",
    "ICudaEngine.create_execution_context",
    "IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3",
    "TensorIOMode.INPUT", "TensorIOMode.OUTPUT",
    "float32",
]

DEFAULT_MIN_HW = (16, 16)
DEFAULT_OPT_HW = (360, 640)
#: the largest profile srx picks by itself (1080p LR: a 4K-and-up output)
DEFAULT_MAX_HW = (1080, 1920)
#: LR sizes tried, largest first, when no max shape is given: the largest whose activations fit
MAX_HW_LADDER = [(1080, 1920), (720, 1280), (540, 960), (360, 640), (240, 426)]
#: when the GPU's memory cannot be read: 720p LR, ~1.6 GiB of FP16 activations for 9-1-5 x3
FALLBACK_MAX_HW = (720, 1280)
#: share of the GPU's memory the largest inference's activations may take (the rest: TensorRT's
#: workspace, the runner's frame buffers, other processes, and on a Jetson the CPU's own memory)
ACTIVATION_SHARE = 0.25
SIDECAR_FORMAT = "srx-engine"


def trt_module() -> Any:
    """Import tensorrt (10 or newer) with the fix in the error."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise SrxError(
            f"tensorrt is not importable ({exc}); install it with `pip install 'srx[gpu]'` "
            "(on a Jetson use JetPack's python3-libnvinfer)"
        ) from None
    if int(str(trt.__version__).split(".")[0]) < 10:
        raise SrxError(f"TensorRT {trt.__version__} is too old: srx needs TensorRT 10 or newer (named-tensor API; "
                       "on a Jetson, JetPack 6.1 or newer); run the ONNX graph with --backend onnxruntime instead")
    return trt


def gpu_identity() -> tuple[str, str] | None:
    """(GPU name, compute capability "8.7") of device 0, or None when no CUDA GPU can be seen.

    Asks pycuda (the runtime's CUDA binding) first, then nvidia-smi; Jetsons have no nvidia-smi
    but have pycuda with JetPack.
    """
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() > 0:
            dev = cuda.Device(0)
            major, minor = dev.compute_capability()
            return str(dev.name()), f"{major}.{minor}"
        return None
    except Exception:  # ImportError, or pycuda's LogicError/RuntimeError without a driver
        pass
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()] if proc.returncode == 0 else []
    if not lines or "," not in lines[0]:
        return None
    name, cap = (part.strip() for part in lines[0].rsplit(",", 1))
    return name, cap


def gpu_memory_bytes() -> int | None:
    """Total memory of CUDA device 0 in bytes (pycuda, else nvidia-smi), or None when unknown."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() > 0:
            return int(cuda.Device(0).total_memory())
    except Exception:  # ImportError, or pycuda's errors without a driver
        pass
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20, check=False)
        first = proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else ""
        return int(float(first)) << 20 if first.replace(".", "", 1).isdigit() else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def activation_bytes(model_config: dict[str, Any], scale: int, precision: str, hw: tuple[int, int]) -> int:
    """Bytes of the two widest consecutive feature maps for one LR frame of size `hw`: the peak an
    inference holds. SRCNN's export layouts keep widths x scale² values per LR pixel (phase space on
    the LR grid, or the plain HR maps), e.g. 9-1-5 x3 FP16 at 1080x1920 LR: (64 + 32) x 9 x 2 B x
    2.07 M = 3.6 GB, of which the first layer's output alone is 2.2 GiB. lrnet's features are on the
    LR grid, one value per channel, and only its output and bicubic skip hold scale² phases:
    (32 + 32 + 2 x 9) x 2 B x 2.07 M = 0.34 GB for `fast` x3 FP16 at the same size."""
    config = model_config or {}
    widths = [int(w) for w in config.get("widths") or [64, 32]]
    widest = sum(sorted(widths)[-2:])
    from srx.models import MODELS

    arch = MODELS.get(str(config.get("arch", "srcnn")))
    lr_grid = bool(arch is not None and arch.lr_grid)  # an architecture this srx does not know: costed as SRCNN
    values = widest + 2 * int(scale) ** 2 if lr_grid else widest * int(scale) ** 2
    return values * (2 if precision == "fp16" else 4) * int(hw[0]) * int(hw[1])


def default_max_hw(model_config: dict[str, Any], scale: int, precision: str,
                   gpu_memory: int | None) -> tuple[tuple[int, int], str]:
    """The largest LR size of MAX_HW_LADDER whose activations (activation_bytes) fit in
    ACTIVATION_SHARE of the GPU's memory, and why; FALLBACK_MAX_HW when the memory is unknown."""
    gib = 2.0**30
    if not gpu_memory:
        need = activation_bytes(model_config, scale, precision, FALLBACK_MAX_HW)
        return FALLBACK_MAX_HW, (f"the GPU's memory is unknown, so the fixed default ({need / gib:.1f} GiB of "
                                 f"activations at {fmt_hw(FALLBACK_MAX_HW)})")
    budget = ACTIVATION_SHARE * gpu_memory
    for hw in MAX_HW_LADDER:
        need = activation_bytes(model_config, scale, precision, hw)
        if need <= budget:
            break
    return hw, (f"the largest that fits {ACTIVATION_SHARE:.0%} of the GPU's {gpu_memory / gib:.1f} GiB "
                f"({need / gib:.1f} GiB of activations at {fmt_hw(hw)})")


def tensorrt_status() -> tuple[bool, str]:
    """Can an engine be built here? (True, "TensorRT 10.x on <GPU> (sm 8.7)") or (False, why)."""
    try:
        trt = trt_module()
    except SrxError as exc:
        return False, str(exc)
    gpu = gpu_identity()
    if gpu is None:
        return False, f"TensorRT {trt.__version__} is installed but no CUDA GPU was found"
    return True, f"TensorRT {trt.__version__} on {gpu[0]} (compute capability {gpu[1]})"


def check_profile(min_hw: tuple[int, int], opt_hw: tuple[int, int], max_hw: tuple[int, int]) -> None:
    """min <= opt <= max per dimension, all positive; SrxError saying which dimension is wrong."""
    for label, hw in (("min", min_hw), ("opt", opt_hw), ("max", max_hw)):
        if len(tuple(hw)) != 2 or any(int(v) < 1 for v in hw):
            raise SrxError(f"profile {label} shape {hw} must be two positive sizes (height, width)")
    for axis, name in ((0, "height"), (1, "width")):
        lo, opt, hi = int(min_hw[axis]), int(opt_hw[axis]), int(max_hw[axis])
        if not lo <= opt <= hi:
            raise SrxError(
                f"optimisation profile {name}s must satisfy min <= opt <= max, got "
                f"{lo} / {opt} / {hi} (min {fmt_hw(min_hw)}, opt {fmt_hw(opt_hw)}, max {fmt_hw(max_hw)})"
            )


def fmt_hw(hw: tuple[int, int]) -> str:
    return f"{int(hw[0])}x{int(hw[1])}"


def default_engine_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".engine")


def sidecar_path(engine_path: Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def rebuild_fields(graph_info: dict[str, Any], weights: Path | None) -> dict[str, Any]:
    """What an engine's sidecar records so that export_command can write the same files again:
    `weights`, a shipped model by its name (the path of its packaged file means nothing on the
    machine that rebuilds) or a checkpoint by its path, and `export_options`, those that made the
    graph (`graph_info`: check_srx_onnx of it)."""
    from srx.checkpoint import shipped_model_of
    from srx.export.onnx import export_options

    named = None if weights is None else shipped_model_of(weights) or str(weights)
    return {"weights": named, "export_options": export_options(graph_info)}


def export_command(info: dict[str, Any], engine_path: Path) -> str:
    """The `srx export` command that rebuilds this engine on the running machine: the same weights,
    file names, graph (name, opset, static size, layout: the sidecar's `export_options`) and profile,
    so that it writes the very engine path that failed its check."""
    prof = info.get("profile") or {}
    parts = ["srx", "export", "--scale", str(info.get("scale", 3))]
    weights = info.get("weights")
    parts += ["--weights", str(weights) if weights else "<the checkpoint it came from>"]
    parts += ["--out", str(Path(engine_path).parent), "--fp16" if info.get("precision") == "fp16" else "--no-fp16"]
    parts += [str(o) for o in info.get("export_options") or []]
    if not info.get("static"):  # a static graph's engine takes the graph's own shape
        for key in ("min", "opt", "max"):
            if key in prof:
                parts += [f"--{key}-shape", fmt_hw(prof[key][2:])]
    parts += ["--engine"]
    return " ".join(shlex.quote(p) if not p.startswith("<") else p for p in parts)


def engine_from_onnx(
    onnx_path: Path,
    engine_path: Path | None = None,
    *,
    min_hw: tuple[int, int] = DEFAULT_MIN_HW,
    opt_hw: tuple[int, int] = DEFAULT_OPT_HW,
    max_hw: tuple[int, int] | None = None,
    workspace_mib: int = 1024,
    timing_cache: Path | None = None,
    log: Callable[[str], None] = print,
    weights: Path | None = None,
) -> Path:
    """Build a TensorRT engine from an srx ONNX graph; writes the plan and its sidecar atomically.

    The optimisation profile covers LR inputs (1, 1, h, w) from min_hw to max_hw, tuned for opt_hw
    (a static graph uses its own shape). Without `max_hw` the largest size whose activations fit a
    quarter of the GPU's memory is chosen (default_max_hw; opt_hw is lowered to it if need be), and
    the profile in use is logged. `timing_cache` is loaded when it exists and saved after the
    build, so rebuilds (other profiles, the other precision) take seconds. `weights` only goes into
    the sidecar, for the rebuild command.
    """
    from srx.export.onnx import INPUT_NAME, OUTPUT_NAME, check_srx_onnx

    onnx_path = Path(onnx_path)
    check_profile(min_hw, opt_hw, max_hw if max_hw is not None else tuple(map(max, opt_hw, min_hw)))
    if int(workspace_mib) < 1:
        raise SrxError(f"workspace must be at least 1 MiB, got {workspace_mib}")
    info = check_srx_onnx(onnx_path)
    engine_path = Path(engine_path) if engine_path is not None else default_engine_path(onnx_path)
    ensure_dir(engine_path.parent)
    trt = trt_module()
    gpu = gpu_identity()
    if gpu is None:
        raise SrxError("building a TensorRT engine needs a CUDA GPU, and none was found here; run `srx export` on the target")
    static = all(isinstance(d, int) and d > 0 for d in info["input_shape"])
    if max_hw is None and not static:
        max_hw, why = default_max_hw(info["model_config"], int(info["scale"]), info["precision"], gpu_memory_bytes())
        opt_hw = (min(opt_hw[0], max_hw[0]), min(opt_hw[1], max_hw[1]))
        min_hw = (min(min_hw[0], opt_hw[0]), min(min_hw[1], opt_hw[1]))
        log(f"profile max {fmt_hw(max_hw)} LR: {why}; --max-shape sets another")
    if static:
        shape = tuple(int(d) for d in info["input_shape"])
        profile = {"min": list(shape), "opt": list(shape), "max": list(shape)}
    else:
        profile = {k: [1, 1, int(hw[0]), int(hw[1])] for k, hw in (("min", min_hw), ("opt", opt_hw), ("max", max_hw))}
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 11:  # 11: always strongly typed, the flag is deprecated
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    log(f"parsing {onnx_path.name} ({info['precision']}, x{info['scale']}) with TensorRT {trt.__version__}")
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise SrxError(f"TensorRT cannot parse {onnx_path}: " + "; ".join(errors or ["no error reported"]))
    names_in = [network.get_input(i).name for i in range(network.num_inputs)]
    names_out = [network.get_output(i).name for i in range(network.num_outputs)]
    if names_in != [INPUT_NAME] or names_out != [OUTPUT_NAME]:
        raise SrxError(f"{onnx_path} parsed to inputs {names_in} and outputs {names_out}; expected {INPUT_NAME} -> {OUTPUT_NAME}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if info["precision"] == "fp32" and hasattr(getattr(trt, "BuilderFlag", None), "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # an FP32 engine must match PyTorch FP32, not TF32
    if not static:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(INPUT_NAME, tuple(profile["min"]), tuple(profile["opt"]), tuple(profile["max"]))
        config.add_optimization_profile(opt_profile)
    cache_bytes = b""
    if timing_cache is not None and Path(timing_cache).is_file():
        cache_bytes = Path(timing_cache).read_bytes()
        log(f"timing cache: {timing_cache} ({len(cache_bytes)} bytes)")
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, False) and cache_bytes:
        log(f"timing cache {timing_cache} does not fit this TensorRT/GPU; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), False)

    log(f"building the engine on {gpu[0]} (profile {profile['min'][2:]}..{profile['max'][2:]}, "
        f"opt {profile['opt'][2:]}; this can take minutes on a Jetson)")
    start = time.monotonic()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise SrxError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    seconds = time.monotonic() - start
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(memoryview(plan)))
    if timing_cache is not None:
        with atomic_path(Path(timing_cache)) as tmp:
            tmp.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    sidecar = {
        "format": SIDECAR_FORMAT,
        "srx_version": __version__,
        "tensorrt_version": str(trt.__version__),
        "gpu_name": gpu[0],
        "compute_capability": gpu[1],
        "precision": info["precision"],
        "io_dtype": "float32",
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "profile": profile,
        "static": static,
        "workspace_mib": int(workspace_mib),
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "engine_sha256": sha256_file(engine_path),
        "source_sha256": info.get("source_sha256"),
        "source_name": info.get("source_name"),
        **rebuild_fields(info, weights),
        "scale": info["scale"],
        "model_config": info["model_config"],
        "name": info["name"],
        "build_seconds": round(seconds, 1),
    }
    atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    log(f"engine {engine_path} written in {seconds:.1f} s")
    return engine_path


def check_engine_sidecar(
    engine_path: Path,
    *,
    trt_version: str | None = None,
    gpu_name: str | None = None,
    compute_capability: str | None = None,
) -> dict[str, Any]:
    """The sidecar of `engine_path`, checked against the running TensorRT and GPU.

    The running values are detected when not given (tests inject them); one that cannot be
    detected is not compared. SrxError, with the `srx export` command that rebuilds, on a missing
    or unreadable sidecar, a plan that is not the one the sidecar describes, or a mismatch.
    """
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    if not engine_path.is_file():
        raise SrxError(f"TensorRT engine {engine_path} does not exist; build it with `srx export --engine`")
    if not side.is_file():
        raise SrxError(
            f"{engine_path} has no sidecar {side.name}, so its TensorRT version and GPU are unknown; "
            f"rebuild it here with `srx export --scale <N> --weights <checkpoint> --out {engine_path.parent} --engine`"
        )
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SrxError(f"engine sidecar {side} is unreadable ({exc}); rebuild the engine with `srx export --engine`") from None
    if not isinstance(info, dict) or info.get("format") != SIDECAR_FORMAT:
        raise SrxError(f"{side} is not an srx engine sidecar (format {SIDECAR_FORMAT!r} expected); rebuild with `srx export --engine`")
    rebuild = export_command(info, engine_path)
    if info.get("engine_sha256") and sha256_file(engine_path) != info["engine_sha256"]:
        raise SrxError(f"{engine_path} is not the engine its sidecar describes (sha256 differs); rebuild it: {rebuild}")
    if trt_version is None:
        try:
            trt_version = str(trt_module().__version__)
        except SrxError:
            trt_version = None
    if gpu_name is None or compute_capability is None:
        gpu = gpu_identity()
        if gpu is not None:
            gpu_name = gpu_name if gpu_name is not None else gpu[0]
            compute_capability = compute_capability if compute_capability is not None else gpu[1]
    checks = (
        ("TensorRT", "tensorrt_version", trt_version),
        ("GPU", "gpu_name", gpu_name),
        ("compute capability", "compute_capability", compute_capability),
    )
    for label, key, running in checks:
        built = info.get(key)
        if running is not None and built is None:
            raise SrxError(f"{side.name} does not record the {label} that {engine_path.name} was built for, so it "
                           f"cannot be checked against this machine's {running}; rebuild it here with `{rebuild}`")
        if running is not None and str(built) != str(running):
            raise SrxError(
                f"{engine_path.name} was built for {label} {built} but this machine has {label} {running}; "
                f"a TensorRT engine only runs where it was built: rebuild it here with `{rebuild}`"
            )
    return info
