"""Checkpoints: a plain dict of tensors and primitives, loadable with `weights_only=True`.

The model config (and, for training checkpoints, the training config and optimiser state)
travel inside the file, so a checkpoint alone rebuilds its model.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srx.errors import SrxError
from srx.fsutil import atomic_write_bytes
from srx.models import ModelConfig, build_model
from srx.protocol import check_scale

FORMAT = "srx-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, model: nn.Module, config: ModelConfig, **extra: Any) -> None:
    """Write atomically: a kill mid-save leaves the previous file intact. Serialised in memory first
    (a checkpoint is a few MB at most), so a full disk is the OSError of writing it, said as such by
    atomic_path (torch.save to a file said it as "[enforce fail at inline_container.cc] unexpected pos")."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    # the bytes, not a view of the buffer: a failed write's traceback kept a memoryview of the BytesIO,
    # and Python 3.12.1's garbage collector freed the two in an order that crashed the process (SIGSEGV
    # in a later collection, after a save onto a full disk)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise SrxError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise SrxError(f"checkpoint {path} is a folder; expected a .pt file written by srx")
    if path.suffix.lower() in (".onnx", ".engine", ".plan"):
        raise SrxError(f"{path} is an exported model, not a checkpoint; expected the srx checkpoint (.pt) it was "
                       "exported from (srx upscale, stream and serve run exported models with --model)")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises anything (IndexError, KeyError, ...) on foreign bytes
        raise SrxError(f"{path} is not a readable srx checkpoint (corrupt or another format): {_why(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SrxError(f"{path} is not an srx checkpoint (no '{FORMAT}' marker); expected a file from `srx train`")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise SrxError(
            f"{path} has checkpoint format {payload.get('format_version')}, newer than this srx "
            f"understands ({FORMAT_VERSION}); upgrade srx"
        )
    return payload


def _check_archive(path: Path) -> None:
    """srx checkpoints are PyTorch's zip archives: name what a file is when it is not one (empty,
    cut short, text, something else) before the unpickler gets to fail on it in its own words."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise SrxError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    expected = "expected a .pt file written by `srx train`"
    if size == 0:
        raise SrxError(f"{path} is not a readable srx checkpoint: it is empty (0 bytes); {expected}")
    if head != b"PK\x03\x04":
        raise SrxError(f"{path} is not a readable srx checkpoint: it is {_looks_like(path)}, not a PyTorch "
                       f"archive; {expected}")
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise SrxError(f"{path} is not a readable srx checkpoint: it is truncated or damaged ({size} bytes, "
                       "a PyTorch archive without its end); copy it again or use another checkpoint") from None


def _looks_like(path: Path) -> str:
    with open(path, "rb") as fh:
        sample = fh.read(512)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of another kind"
    return "a text file" if sample.strip() else "blank"


def _why(exc: Exception) -> str:
    """The first line of a load error, without PyTorch's advice to retry with weights_only=False:
    srx checkpoints never need it, and loading an unknown file that way can run arbitrary code."""
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        return "it holds Python objects srx never writes (srx checkpoints are tensors and plain values only)"
    return text.splitlines()[0] if text else type(exc).__name__


def checkpoint_scale(path: Path) -> int | None:
    """The scale of the model an srx checkpoint holds; None for a file that is not one (the stage
    that loads it says what is wrong with it)."""
    try:
        scale = (load_checkpoint(path).get("model_config") or {}).get("scale")
    except SrxError:
        return None
    return scale if isinstance(scale, int) else None


def model_from_checkpoint(path: Path, scale: int | None = None) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, in eval mode; check its scale if one is asked for."""
    payload = load_checkpoint(path)
    config = ModelConfig.from_dict(dict(payload["model_config"]))
    if scale is not None and config.scale != scale:
        raise SrxError(f"{path} holds a x{config.scale} model but x{scale} was asked for; pass --scale {config.scale}")
    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise SrxError(f"{path} does not match its own model config {config.name}: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, config, payload


@dataclass(frozen=True)
class ShippedModel:
    name: str  # what --weights takes
    file: str  # srx/weights/<file.format(scale=...)>
    preset: str  # the model preset its weights were trained as (srx.models.PRESETS)
    summary: str
    #: what `srx models` says it was trained on, where its files' own records do not say it alone (a
    #: file that is a weighted mean of runs records the last run's recipe only); "" reads the files
    trained_on: str = ""


#: the weights packaged with srx, by the name every --weights option accepts
SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel("srcnn", "srcnn-915-x{scale}.pt", "srcnn-915", "SRCNN 9-1-5 (the reference; HR-grid convolutions)"),
        ShippedModel("fast", "fast-x{scale}.pt", "lrnet-32x4-pw3",
                     "lrnet-32x4-pw3: LR-grid 5x5+1x1+3x3+1x1+3x3+1x1+3x3 convs, 32 channels, pixel shuffle, bicubic skip"),
        ShippedModel("camera", "camera-x{scale}.pt", "lrnet-32x4-pw3",
                     "lrnet-32x4-pw3 (the fast architecture) trained on camera-like LR (JPEG compression, sensor noise)",
                     "jpeg=30..95,noise=0..2,clean=0.5 (x3 and x4: nine tenths; a tenth a jpeg=50 run)"),
    )
}
#: what a command runs without --weights: `camera` scores at least as well as `srcnn` on every row
#: of the README's tables, clean input included, and best of the three on compressed or noisy input
DEFAULT_SHIPPED = "camera"


def _weights_dir() -> Path:
    return Path(str(resources.files("srx") / "weights"))


def shipped_scales(name: str) -> list[int]:
    """The scales a shipped model has weights for in this installation."""
    model = SHIPPED[name]
    return [s for s in (2, 3, 4) if (_weights_dir() / model.file.format(scale=s)).exists()]


def shipped_weights(scale: int, name: str = DEFAULT_SHIPPED, option: str = "--weights") -> Path:
    """The packaged weights of shipped model `name` for `scale` (`option`: what the user gave it as)."""
    check_scale(scale)
    if name not in SHIPPED:
        raise SrxError(f"no shipped model named {name!r}: expected one of {', '.join(SHIPPED)} or a checkpoint file")
    path = _weights_dir() / SHIPPED[name].file.format(scale=scale)
    if not path.exists():
        have = shipped_scales(name)
        raise SrxError(f"the shipped {name!r} model has no x{scale} weights (it has "
                       f"{', '.join(f'x{s}' for s in have) or 'none in this installation'}); pass another "
                       f"--scale or {option}")
    return path


def shipped_name(weights: Path | str | None) -> str | None:
    """The shipped model a --weights value stands for (None: the default one), or None for a file."""
    if weights is None:
        return DEFAULT_SHIPPED
    text = str(weights)
    return text if text in SHIPPED and not Path(text).is_file() else None  # a file named `camera` is a file


def shipped_model_of(path: Path | str) -> str | None:
    """The shipped model whose packaged file `path` is (resolved `--weights`), or None for any other file."""
    path = Path(path)
    if not path.is_file() or path.resolve().parent != _weights_dir().resolve():
        return None
    return next((m.name for m in SHIPPED.values() for s in (2, 3, 4) if m.file.format(scale=s) == path.name), None)


def resolve_weights(weights: Path | str | None, scale: int, option: str = "--weights") -> Path:
    """--weights (or `option`, e.g. train's --init) as given: None (the default shipped model), a
    shipped model's name, or a file."""
    if (name := shipped_name(weights)) is not None:
        return shipped_weights(scale, name, option)
    text = str(weights)
    path = Path(weights)
    if not path.exists() and not path.suffix and len(path.parts) == 1:
        raise SrxError(f"{option} {text!r} is neither a shipped model ({', '.join(SHIPPED)}) nor an existing file")
    return path
