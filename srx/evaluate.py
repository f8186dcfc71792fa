"""Evaluation under the standard protocol, shared by `srx train` validation, `srx eval` and parity."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import nn

from srx.errors import SrxError
from srx.imageio import IMAGE_EXTENSIONS, VIDEO_SUFFIXES, FrameRange, check_data_path, is_video, list_images, read_image, video_frames
from srx.protocol import bicubic_upscale_y, make_pair, min_eval_side, psnr, ssim

if TYPE_CHECKING:
    from srx.degrade import Degradation

log = logging.getLogger("srx")


def too_small(shape: tuple[int, ...], scale: int) -> str | None:
    """Why an HR image of `shape` (height, width, ...) cannot be scored at `scale`, or None when it can."""
    h, w = shape[0] - shape[0] % scale, shape[1] - shape[1] % scale
    need = min_eval_side(scale)
    if min(h, w) < need:
        return f"{shape[1]}x{shape[0]}, too small for x{scale}: expected at least {need}x{need} pixels"
    return None


# A predictor maps an LR Y plane (uint8, h x w) to the HR Y plane (float in [0, 255], sh x sw).
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvalImage:
    name: str
    hr_y: np.ndarray  # uint8
    lr_y: np.ndarray  # uint8


def load_eval_video(path: Path, scale: int, every: int = 10, frames: FrameRange = FrameRange(),
                    option: str = "--frames") -> list[EvalImage]:
    """HR/LR Y pairs from every `every`-th frame of a video within `frames` (frame start, start +
    every, ...): a user's own camera footage as an evaluation set."""
    pairs = []
    for index, frame in video_frames(path, every, frames, option):
        if (why := too_small(frame.shape, scale)) is not None:
            raise SrxError(f"{path}: its frames are {why}")
        hr_y, lr_y = make_pair(frame, scale)
        pairs.append(EvalImage(f"frame_{index:05d}", hr_y, lr_y))
    return pairs


def load_eval_data(path: Path, scale: int, every: int = 10, frames: FrameRange = FrameRange(),
                   option: str = "--frames") -> list[EvalImage]:
    """A folder of images, one image, or a video file (every `every`-th frame within `frames`,
    which the user gave as `option`)."""
    path = check_data_path(path, "--data")
    if is_video(path):
        return load_eval_video(path, scale, every, frames, option)
    if not frames.whole:
        raise SrxError(f"{option} {frames} applies to a video; {path} is not one")
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return [load_eval_image(path, scale)]
    if path.is_file():
        raise SrxError(f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video srx reads "
                       f"({', '.join(VIDEO_SUFFIXES)}); expected a folder of images, an image or a video")
    return load_eval_set(path, scale)


def load_eval_image(path: Path, scale: int) -> EvalImage:
    """The HR/LR Y pair of one image: a frame grabbed from the user's camera, say."""
    img = read_image(path)
    if (why := too_small(img.shape, scale)) is not None:
        raise SrxError(f"{path}: it is {why}")
    hr_y, lr_y = make_pair(img, scale)
    return EvalImage(path.stem, hr_y, lr_y)


def degraded(pairs: list[EvalImage], spec: "Degradation", scale: int) -> list[EvalImage]:
    """The same pairs with the LR side degraded by `spec`, deterministically per image."""
    from srx.degrade import degrade_for_eval

    return [EvalImage(p.name, p.hr_y, degrade_for_eval(spec, p.hr_y, p.lr_y, scale, i)) for i, p in enumerate(pairs)]


def load_eval_set(folder: Path, scale: int) -> list[EvalImage]:
    """HR/LR Y pairs for every readable image in `folder` (unreadable ones are named and skipped)."""
    pairs = []
    for path in list_images(folder):
        try:
            pairs.append(load_eval_image(path, scale))
        except SrxError as exc:
            log.warning("skipping %s", exc)
    if not pairs:
        raise SrxError(f"no usable images in {folder}")
    return pairs


def torch_predictor(model: nn.Module) -> Predictor:
    def predict(lr_y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr_y.astype(np.float32) / 255.0)[None, None]
        with torch.inference_mode():
            y = model(x)
        return y[0, 0].numpy().astype(np.float64) * 255.0

    return predict


def quantize(y: np.ndarray) -> np.ndarray:
    """What a saved 8-bit image holds: clipped and rounded."""
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def evaluate(pairs: list[EvalImage], scale: int, predict: Predictor | None, with_ssim: bool = True) -> dict:
    """Per-image and mean PSNR/SSIM on Y (border `scale` shaved) for bicubic and, if given, the model."""
    rows = []
    for item in pairs:
        bic = bicubic_upscale_y(item.lr_y, scale)
        row = {"name": item.name, "height": int(item.hr_y.shape[0]), "width": int(item.hr_y.shape[1]),
               "bicubic_psnr": psnr(item.hr_y, bic, scale)}
        if with_ssim:
            row["bicubic_ssim"] = ssim(item.hr_y, bic, scale)
        if predict is not None:
            out = quantize(predict(item.lr_y))
            if out.shape != item.hr_y.shape:
                raise SrxError(f"model output {out.shape} does not match HR {item.hr_y.shape} for {item.name}")
            row["model_psnr"] = psnr(item.hr_y, out, scale)
            if with_ssim:
                row["model_ssim"] = ssim(item.hr_y, out, scale)
        rows.append(row)
    keys = [k for k in rows[0] if k.endswith(("_psnr", "_ssim"))]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return {"scale": scale, "count": len(rows), "mean": mean, "images": rows}


def robustness_rows(pairs: list[EvalImage], scale: int, specs: list["Degradation"],
                    predictors: dict[str, Predictor]) -> list[dict]:
    """Mean PSNR of bicubic and of each predictor on the same LR, once per degradation in `specs`:
    which model helps how much on this data under each kind of camera input (the README's table,
    `srx eval` with several --degrade or --weights)."""
    rows = []
    for spec in specs:
        lr = degraded(pairs, spec, scale)
        row = {"degrade": str(spec), "bicubic_psnr": evaluate(lr, scale, None, with_ssim=False)["mean"]["bicubic_psnr"]}
        row["model_psnr"] = {label: evaluate(lr, scale, predict, with_ssim=False)["mean"]["model_psnr"]
                             for label, predict in predictors.items()}
        rows.append(row)
    return rows
