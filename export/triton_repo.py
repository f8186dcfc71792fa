"""srx models for Triton Inference Server: the contract, and a model repository for a stock server.

The contract, shared by `srx export --triton-repo`, `srx serve` and the `triton` runner:

- model name `srx_<name>_x<scale>` (`srx_srcnn-9-1-5_x3`), an FP16 graph or engine too (its
  `srx_precision` says which), so a client and a pool of boxes find it by the name they look for;
- one input `lr_y` and one output `hr_y`, FP32, dims `[1, -1, -1]` after the batch dimension
  (`max_batch_size` > 0), the model contract of DEVELOPERS.md;
- dynamic batching with a small queue delay, so requests from many cameras or hosts that arrive
  together run as one batch;
- config `parameters` that say it is srx's: `srx_scale`, `srx_model` (the model's name),
  `srx_model_config` (JSON: layers, kernel sizes), `srx_precision`, `srx_version`, for an
  engine the profile's `srx_min_hw` / `srx_max_hw` (the shape limits; frames above run in tiles)
  and, in an exported repository, `srx_source_sha256` / `srx_source_name` (the checkpoint it came
  from, so a later export can say when it replaces a model of other weights).
  The runner refuses a model without `srx_scale`.

`triton_repo_from_model()` writes `DIR/<model name>/config.pbtxt` and `DIR/<model name>/1/model.onnx`
(platform `onnxruntime_onnx`) for an srx ONNX graph, or `1/model.plan` (platform `tensorrt_plan`)
for an srx TensorRT engine, which a stock `tritonserver --model-repository DIR` serves. The
config is protobuf text format; the tests parse it into Triton's own `ModelConfig` message.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from srx.errors import SrxError
from srx.fsutil import WriteError, temporary_sibling

log = logging.getLogger("srx")

INPUT, OUTPUT = "lr_y", "hr_y"
DEFAULT_MAX_BATCH = 8
#: how long Triton holds a request for others to batch with (microseconds): a few ms at ~100 ms frames
DEFAULT_QUEUE_DELAY_US = 2000
PARAM_SCALE = "srx_scale"


def triton_model_name(name: str, scale: int) -> str:
    """'srcnn-9-1-5-x3', 3 -> 'srx_srcnn-9-1-5_x3', for either precision (it is the srx_precision
    parameter, so a client and a pool of boxes find an FP16 engine and an FP32 graph by one name)."""
    base = re.sub(r"-x\d+$", "", str(name)) or "model"
    return f"srx_{re.sub(r'[^A-Za-z0-9_.-]+', '-', base)}_x{int(scale)}"


def srx_parameters(info: dict[str, Any]) -> dict[str, str]:
    """The config parameters that mark a model as srx's, from an ONNX graph's metadata
    (check_srx_onnx) or an engine sidecar."""
    params = {
        PARAM_SCALE: str(int(info["scale"])),
        "srx_model": str(info.get("name", "")),
        "srx_model_config": json.dumps(info.get("model_config") or {}, sort_keys=True),
        "srx_precision": str(info.get("precision", "fp32")),
        "srx_version": str(info.get("version") or info.get("srx_version") or ""),
    }
    if info.get("tensorrt_version"):  # a plan loads only in a Triton built with this very TensorRT
        params["srx_tensorrt_version"] = str(info["tensorrt_version"])
        params["srx_gpu"] = str(info.get("gpu_name") or "")
    prof = info.get("profile") or {}
    if prof.get("min") and prof.get("max"):
        params["srx_min_hw"] = "x".join(str(int(v)) for v in prof["min"][2:])
        params["srx_max_hw"] = "x".join(str(int(v)) for v in prof["max"][2:])
    if info.get("source_sha256"):  # an exported graph's metadata or an engine's sidecar
        params["srx_source_sha256"] = str(info["source_sha256"])
        source = info.get("source_name") or (Path(str(info["weights"])).name if info.get("weights") else "")
        if source:
            params["srx_source_name"] = str(source)
    return params


def check_triton_repo(repo: Path) -> Path:
    """--triton-repo before any work: an existing folder, or a name one can be made under."""
    from srx.fsutil import check_output_dir

    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise SrxError(f"--triton-repo {repo} is a file; expected a folder (a Triton model repository)")
    return check_output_dir(repo, "--triton-repo")


def _source_of(folder: Path) -> tuple[str | None, str | None]:
    """(sha256, file name) of the checkpoint a model folder in a repository was exported from:
    from its config's srx_source_* parameters, else its ONNX graph's metadata; (None, None) when
    neither says."""
    try:
        text = (folder / "config.pbtxt").read_text(encoding="utf-8")
    except OSError:
        text = ""
    found = dict(re.findall(r'key:\s*"(srx_source_(?:sha256|name))",\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text))
    if found.get("srx_source_sha256"):
        return found["srx_source_sha256"], found.get("srx_source_name")
    graph = folder / "1" / "model.onnx"
    if graph.is_file():
        from srx.export.onnx import read_srx_metadata

        try:
            meta = read_srx_metadata(graph)
        except SrxError:
            return None, None
        return meta.get("source_sha256"), meta.get("source_name")
    return None, None


def _q(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)  # a protobuf text-format string: double quotes, backslash escapes


def config_pbtxt(name: str, platform: str, parameters: dict[str, str], *, max_batch: int = DEFAULT_MAX_BATCH,
                 queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig) for an srx model."""
    lines = [
        f"name: {_q(name)}",
        f"platform: {_q(platform)}",
        f"max_batch_size: {int(max_batch)}",
        "input [",
        f"  {{ name: {_q(INPUT)}, data_type: TYPE_FP32, dims: [ 1, -1, -1 ] }}",
        "]",
        "output [",
        f"  {{ name: {_q(OUTPUT)}, data_type: TYPE_FP32, dims: [ 1, -1, -1 ] }}",
        "]",
    ]
    if max_batch > 1:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {int(queue_delay_us)}", "}"]
    for key, value in parameters.items():
        lines.append(f"parameters {{ key: {_q(key)}, value: {{ string_value: {_q(value)} }} }}")
    return "\n".join(lines) + "\n"


def triton_repo_from_model(model_file: Path, repo: Path, *, max_batch: int = DEFAULT_MAX_BATCH,
                           queue_delay_us: int = DEFAULT_QUEUE_DELAY_US) -> Path:
    """Write the model folder for `model_file` (an srx .onnx graph or .engine/.plan) into `repo`;
    returns the folder. An existing folder of that name is replaced whole (written beside it
    first, then renamed), so a server polling the repository never sees half a model."""
    model_file = Path(model_file)
    if max_batch < 1:
        raise SrxError(f"--max-batch must be at least 1, got {max_batch}")
    if queue_delay_us < 0:
        raise SrxError(f"the queue delay must be zero or more microseconds, got {queue_delay_us}")
    suffix = model_file.suffix.lower()
    if suffix == ".onnx":
        from srx.export.onnx import check_srx_onnx

        info = check_srx_onnx(model_file)
        platform, target = "onnxruntime_onnx", "model.onnx"
    elif suffix in (".engine", ".plan", ".trt"):
        from srx.export.tensorrt import check_engine_sidecar

        info = check_engine_sidecar(model_file)
        platform, target = "tensorrt_plan", "model.plan"
        prof = info.get("profile") or {}
        if prof.get("max"):
            max_batch = min(max_batch, int(prof["max"][0]))  # the engine's batch limit
    else:
        raise SrxError(f"--triton-repo needs an srx .onnx graph or TensorRT .engine, got {model_file.name}")
    name = triton_model_name(info["name"], int(info["scale"]))  # as srx serve names it, FP16 too
    repo = check_triton_repo(repo)
    final = repo / name
    if final.exists() and not (final / "config.pbtxt").is_file():
        raise SrxError(f"{final} exists and is not a Triton model folder; remove it or pick another --triton-repo")
    if final.exists():
        old_sha, old_name = _source_of(final)
        if old_sha is not None and old_sha != info.get("source_sha256"):
            log.warning("replacing Triton model %s in %s, exported before from other weights (%s); give each model "
                        "its own --name to keep both", name, repo, old_name or "unknown")
    repo.mkdir(parents=True, exist_ok=True)
    # folders of srx's own under new names (O_EXCL): never a link planted at a fixed name, which
    # would have had the model copied wherever it pointed
    tmp = temporary_sibling(final, prefix=f".{name}.partial.", suffix="", folder=True)
    writing = final / "1" / target  # what a failed write names (a full disk): the file the user will look for
    try:
        (tmp / "1").mkdir()
        shutil.copyfile(model_file, tmp / "1" / target)
        writing = final / "config.pbtxt"
        text = config_pbtxt(name, platform, srx_parameters(info), max_batch=max_batch, queue_delay_us=queue_delay_us)
        (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise WriteError(writing, exc, tmp / writing.relative_to(final)) from None
        raise
    old = None
    try:
        if final.exists():
            old = temporary_sibling(final, prefix=f".{name}.old.", suffix="", folder=True)
            final.rename(old)  # onto the new empty folder
        tmp.rename(final)
    except (OSError, WriteError) as exc:  # a rename that needs room the directory has not got
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if final.exists():
                old.rmdir()  # the empty folder made for the model that was there, which stays
            else:
                old.rename(final)  # that model, back
        raise exc if isinstance(exc, WriteError) else WriteError(final, exc) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
