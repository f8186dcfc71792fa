"""Evaluation under the standard protocol, shared by `srx train` validation, `srx eval` and parity."""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from srx.errors import SrxError
from srx.imageio import (IMAGE_EXTENSIONS, VIDEO_SUFFIXES, FrameRange, check_data_path, is_video, list_images, read_image,
                         video_frames, warn_videos_left_out)
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
    frame: int | None = None  # its number in a video (what seeds its degradation), None for an image


def _video_items(path: Path, scale: int, every: int, frames: FrameRange, option: str) -> Iterator[EvalImage]:
    """HR/LR Y pairs from every `every`-th frame of a video within `frames` (frame start, start +
    every, ...), one frame at a time: a user's own camera footage as an evaluation set."""
    for index, frame in video_frames(path, every, frames, option):
        if (why := too_small(frame.shape, scale)) is not None:
            raise SrxError(f"{path}: its frames are {why}")
        hr_y, lr_y = make_pair(frame, scale)
        yield EvalImage(f"frame_{index:05d}", hr_y, lr_y, index)


def eval_items(path: Path, scale: int, every: int = 10, frames: FrameRange = FrameRange(),
               option: str = "--frames", skipped: list[dict[str, str]] | None = None) -> Iterator[EvalImage]:
    """The HR/LR Y pairs of a folder of images, one image, or a video file (every `every`-th frame
    within `frames`, which the user gave as `option`), made one at a time as they are scored, so an
    hour of 1080p footage costs the memory of one frame (`srx eval`); what a bad path or option is
    raises at the first item. A folder's images that cannot be scored (undecodable, too small) are
    left out: listed in `skipped` ({name, reason}) where given, else logged."""
    path = check_data_path(path, "--data")
    if is_video(path):
        yield from _video_items(path, scale, every, frames, option)
        return
    if not frames.whole:
        raise SrxError(f"{option} {frames} applies to a video; {path} is not one")
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        yield load_eval_image(path, scale)
        return
    if path.is_file():
        raise SrxError(f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video srx reads "
                       f"({', '.join(VIDEO_SUFFIXES)}); expected a folder of images, an image or a video")
    usable = 0
    images = list_images(path)
    warn_videos_left_out(path, "--data")
    stems = Counter(image.stem for image in images)
    for image in images:  # unreadable ones are named and skipped
        try:
            item = load_eval_image(image, scale)
            if stems[image.stem] > 1:  # rgb.bmp, rgb.tiff and rgb.webp were three rows called rgb
                item = dataclasses.replace(item, name=image.name)
        except SrxError as exc:
            if skipped is None:
                log.warning("skipping %s", exc)
            else:
                skipped.append({"name": image.name, "reason": str(exc)})
            continue
        usable += 1
        yield item
    if not usable:
        why = f": {'; '.join(s['reason'] for s in skipped)}" if skipped else ""
        raise SrxError(f"no usable images in {path}{why}")


def eval_count(path: Path, every: int = 10, frames: FrameRange = FrameRange()) -> int | None:
    """How many pairs eval_items will give, as far as can be told without decoding (a video's
    container may state no frame count, or a wrong one): for a progress bar, never for a result."""
    from srx.imageio import listed_frames, open_video

    path = Path(path)
    if not path.exists():
        return None
    if is_video(path):
        cap = open_video(path)
        try:
            listed = listed_frames(cap)
        finally:
            cap.release()
        end = listed if frames.end is None else min(frames.end, listed)
        return max(0, -(-(end - frames.start) // max(every, 1))) if listed else None
    if path.is_file():
        return 1
    try:
        return len(list_images(path))
    except SrxError:  # eval_items says why, with the first item
        return None


def load_eval_data(path: Path, scale: int, every: int = 10, frames: FrameRange = FrameRange(),
                   option: str = "--frames") -> list[EvalImage]:
    """eval_items, all held in memory: for sets scored again and again (validation every epoch)."""
    return list(eval_items(path, scale, every, frames, option))


def load_eval_image(path: Path, scale: int) -> EvalImage:
    """The HR/LR Y pair of one image: a frame grabbed from the user's camera, say."""
    img = read_image(path)
    if (why := too_small(img.shape, scale)) is not None:
        raise SrxError(f"{path}: it is {why}")
    hr_y, lr_y = make_pair(img, scale)
    return EvalImage(path.stem, hr_y, lr_y)


def degrade_each(pairs: Iterable[EvalImage], spec: "Degradation", scale: int) -> Iterator[EvalImage]:
    """The same pairs with the LR side degraded by `spec`, deterministically per image (seeded by
    its pixels, a video frame by its number), one at a time."""
    from srx.degrade import degrade_for_eval

    for p in pairs:
        yield EvalImage(p.name, p.hr_y, degrade_for_eval(spec, p.hr_y, p.lr_y, scale, p.frame), p.frame)


def degraded(pairs: Iterable[EvalImage], spec: "Degradation", scale: int) -> list[EvalImage]:
    return list(degrade_each(pairs, spec, scale))


def load_eval_set(folder: Path, scale: int) -> list[EvalImage]:
    """HR/LR Y pairs for every readable image in `folder` (unreadable ones are named and skipped)."""
    folder = Path(folder)
    if folder.is_file():
        raise SrxError(f"{folder} is a file; expected a folder of images")
    return load_eval_data(folder, scale)


def torch_predictor(model: nn.Module) -> Predictor:
    """The model as a Predictor, run on the device its weights are on (a GPU run's validation)."""
    device = next(model.parameters()).device

    def predict(lr_y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr_y.astype(np.float32) / 255.0)[None, None].to(device)
        with torch.inference_mode():
            y = model(x)
        return y[0, 0].float().cpu().numpy().astype(np.float64) * 255.0

    return predict


def quantize(y: np.ndarray) -> np.ndarray:
    """What a saved 8-bit image holds: clipped and rounded."""
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def evaluate(pairs: Iterable[EvalImage], scale: int, predict: Predictor | None, with_ssim: bool = True) -> dict:
    """Per-image and mean PSNR/SSIM on Y (border `scale` shaved) for bicubic and, if given, the
    model; `pairs` is gone through once (a generator is scored as it is read)."""
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
    if not rows:
        raise SrxError("no images to score")
    keys = [k for k in rows[0] if k.endswith(("_psnr", "_ssim"))]
    # a flat picture (a lens cap, a black night frame) is its own bicubic enlargement: its PSNR is
    # infinite and says nothing of a model; in the means it made them infinite (the gain +nan)
    flat = [r["name"] for r in rows if not np.isfinite(r["bicubic_psnr"])]
    scored = [r for r in rows if np.isfinite(r["bicubic_psnr"])] or rows
    if flat and len(scored) < len(rows):
        log.warning("left out of the means: %d picture(s) that bicubic enlarges exactly (flat, no detail to "
                    "restore): %s", len(flat), ", ".join(flat[:5]) + (f" and {len(flat) - 5} more" if len(flat) > 5 else ""))
    mean = {k: float(np.mean([r[k] for r in scored])) for k in keys}
    result = {"scale": scale, "count": len(rows), "mean": mean, "images": rows}
    if flat:
        result["flat"] = flat
    return result


def robustness_rows(pairs: Iterable[EvalImage], scale: int, specs: list["Degradation"],
                    predictors: dict[str, Predictor]) -> list[dict]:
    """Mean PSNR of bicubic and of each predictor on the same LR, once per degradation in `specs`:
    which model helps how much on this data under each kind of camera input (the README's table,
    `srx eval` with several --degrade or --weights). `pairs` is gone through once, every cell
    scored on an image before the next is read; each row gives the image `count`."""
    from srx.degrade import degrade_for_eval

    sums = [{"bicubic": 0.0, **{label: 0.0 for label in predictors}} for _ in specs]
    counts = [0] * len(specs)  # a flat picture (bicubic exact) is left out of a row's mean, as in evaluate
    count = 0
    for item in pairs:
        for i, (spec, total) in enumerate(zip(specs, sums)):
            lr_y = degrade_for_eval(spec, item.hr_y, item.lr_y, scale, item.frame)
            bicubic = psnr(item.hr_y, bicubic_upscale_y(lr_y, scale), scale)
            if not np.isfinite(bicubic):
                continue
            total["bicubic"] += bicubic
            for label, predict in predictors.items():
                total[label] += psnr(item.hr_y, quantize(predict(lr_y)), scale)
            counts[i] += 1
        count += 1
    if not count:
        raise SrxError("no images to score")
    return [{"degrade": str(spec.for_eval), "count": n, "bicubic_psnr": total["bicubic"] / n if n else float("inf"),
             "model_psnr": {label: total[label] / n if n else float("inf") for label in predictors}}
            for spec, total, n in zip(specs, sums, counts)]
