"""`srx compare`: one picture that shows which weights help on a given image or video frame.

HR crop | bicubic | one panel per model, on the same (optionally degraded) LR, each labelled with
its PSNR over the whole frame under the standard protocol (Y, `scale` pixels shaved). Panels show
the Y channel, which is what the models change and what the PSNR measures.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srx.errors import SrxError
from srx.words import counted

log = logging.getLogger(__name__)


@dataclass
class Panel:
    label: str
    y: np.ndarray  # uint8 HR-sized Y plane
    psnr: float | None


def labelled_weights(given: str) -> tuple[str, str]:
    """(panel label, weights) for one `srx compare -w`: `LABEL=WEIGHTS`, a shipped name, or a
    checkpoint, which is labelled by its file name (a run's best.pt/last.pt by its run's folder too),
    short enough to fit over a panel."""
    label, sep, weights = given.partition("=")
    if sep and label and weights and not Path(given).exists():
        return label, weights
    path = Path(given)
    if path.suffix and path.stem in ("best", "last") and path.parent.name:
        return f"{path.parent.name}/{path.stem}", given
    return (path.stem if path.suffix else given), given


def _frame_at(cap: Any, index: int) -> tuple[np.ndarray | None, int]:
    """Frame `index` of an opened video and how many frames were decoded to reach it (None and
    the count decoded where the video ends first)."""
    img, decoded = None, 0
    while decoded <= index:
        ok, img = cap.read()
        if not ok:
            return None, decoded
        decoded += 1
    return img, decoded


def read_hr_frame(path: Path, frame: int | None = None) -> tuple[np.ndarray, str, int | None]:
    """A BGR image from an image file, or frame `frame` (default: the middle one) of a video; its
    label, and its number in the video (None for an image)."""
    from srx.imageio import is_video, listed_frames, open_video, read_image

    path = Path(path)
    if not path.exists():
        raise SrxError(f"{path} does not exist: expected an image or a video file")
    if path.is_dir():
        raise SrxError(f"{path} is a folder: expected an image or a video file")
    if not is_video(path):
        if frame is not None:
            raise SrxError(f"--frame applies to videos; {path} is an image")
        return read_image(path), path.name, None
    cap = open_video(path)
    try:
        count = listed_frames(cap)
        want = frame if frame is not None else max(count // 2, 0)
        if want < 0 or (count and want >= count):
            raise SrxError(f"--frame {want}: {path} has {counted(count, 'frame')} (0..{count - 1})")
        img, decoded = _frame_at(cap, want)
    finally:
        cap.release()
    if img is None and frame is not None:
        raise SrxError(f"{path} ended after {counted(decoded, 'frame')}; --frame {want} is past its end")
    if img is None:  # the container lists more frames than decode (cut off, or a wrong count): their middle
        if not decoded:
            raise SrxError(f"video {path} holds no frame that decodes")
        want = decoded // 2
        log.warning("%s decodes to %s where its container lists %d; comparing on frame %d, the middle one",
                    path, counted(decoded, "frame"), count, want)
        cap = open_video(path)
        try:
            img, _ = _frame_at(cap, want)
        finally:
            cap.release()
    return img, f"{path.name} frame {want}", want


def check_comparable(h: int, w: int, scale: int) -> None:
    """SrxError unless an h x w image leaves at least 8 pixels a side, cropped to a multiple of the
    scale and shaved: the smallest crop worth a comparison."""
    need = -(-(8 + 2 * scale) // scale) * scale  # 8 pixels left after the shave, on a multiple of the scale
    if min(h - h % scale, w - w % scale) < need:
        raise SrxError(f"image is {w}x{h}, too small for a comparison at x{scale}; expected at least {need}x{need}")


#: the largest panel side `srx compare` draws (crop x --zoom), in pixels
MAX_PANEL_SIDE = 4096


def detail_crop(hr_y: np.ndarray, size: int, scale: int) -> tuple[int, int, int]:
    """(y, x, side) of the `size`-pixel square with the most high-frequency detail (where SR shows)."""
    import cv2

    h, w = hr_y.shape
    check_comparable(h, w, scale)
    side = min(size, h - 2 * scale, w - 2 * scale)
    if side < size:
        log.warning("the crop is %d px, what a %dx%d frame holds inside its %d-px border (--crop %d)",
                    side, w, h, scale, size)
    lap = np.abs(cv2.Laplacian(hr_y.astype(np.float32), cv2.CV_32F))
    integral = cv2.integral(lap)
    best, where = -1.0, (scale, scale)
    step = max(side // 4, 1)
    for y in range(scale, h - scale - side + 1, step):
        for x in range(scale, w - scale - side + 1, step):
            total = integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
            if total > best:
                best, where = total, (y, x)
    return where[0], where[1], side


def compose(panels: list[Panel], crop: tuple[int, int, int], zoom: int, title: str) -> np.ndarray:
    """Panels side by side (nearest-neighbour zoom, so pixels stay pixels), a label over each."""
    import cv2

    y, x, side = crop
    font = cv2.FONT_HERSHEY_SIMPLEX
    tiles = []
    for p in panels:
        tile = p.y[y : y + side, x : x + side]
        tile = cv2.resize(tile, (side * zoom, side * zoom), interpolation=cv2.INTER_NEAREST)
        text = p.label if p.psnr is None else f"{p.label}  {p.psnr:.2f} dB"
        width = max(tile.shape[1], cv2.getTextSize(text, font, 0.7, 2)[0][0] + 16)  # a small crop: room for its label
        head = np.full((44, width), 255, np.uint8)
        cv2.putText(head, text, (8, 30), font, 0.7, 0, 2, cv2.LINE_AA)
        body = np.full((tile.shape[0], width), 255, np.uint8)
        body[:, : tile.shape[1]] = tile
        tiles.append(np.vstack([head, body]))
        tiles.append(np.full((tiles[-1].shape[0], 6), 255, np.uint8))
    row = np.hstack(tiles[:-1])
    width = max(row.shape[1], cv2.getTextSize(title, font, 0.6, 1)[0][0] + 16)
    picture = np.full((36 + row.shape[0], width), 255, np.uint8)
    cv2.putText(picture, title, (8, 25), font, 0.6, 60, 1, cv2.LINE_AA)
    picture[36:, : row.shape[1]] = row
    return picture


def compare_image(hr_bgr: np.ndarray, scale: int, models: list[tuple[str, Path]], spec, source: str,
                  crop_size: int = 160, zoom: int = 2, frame: int | None = None) -> tuple[np.ndarray, list[Panel]]:
    """The comparison picture and its panels (PSNR over the whole frame) for `models`: (label, weights).
    `frame`: the picture's number in its video, which seeds a ranged degradation as `srx eval` does."""
    from srx.checkpoint import model_from_checkpoint
    from srx.degrade import degrade_for_eval
    from srx.evaluate import quantize, torch_predictor
    from srx.protocol import bicubic_upscale_y, make_pair, psnr

    check_comparable(hr_bgr.shape[0], hr_bgr.shape[1], scale)  # before the crop to a multiple of the scale
    hr_y, clean_lr = make_pair(hr_bgr, scale)
    crop = detail_crop(hr_y, crop_size, scale)  # first: it says when the frame is too small to compare
    if crop[2] * zoom > MAX_PANEL_SIDE:  # a picture to look at, not gigabytes of zoomed pixels
        raise SrxError(f"--zoom {zoom} makes panels {crop[2] * zoom} pixels wide (a {crop[2]}-pixel crop); expected "
                       f"crop x --zoom at most {MAX_PANEL_SIDE}")
    lr = degrade_for_eval(spec, hr_y, clean_lr, scale, frame)
    panels = [Panel("HR", hr_y, None)]
    bic = bicubic_upscale_y(lr, scale)
    panels.append(Panel("bicubic", bic, psnr(hr_y, bic, scale)))
    for label, weights in models:
        model, _, _ = model_from_checkpoint(weights, scale)
        out = quantize(torch_predictor(model)(lr))
        panels.append(Panel(label, out, psnr(hr_y, out, scale)))
    title = f"{source}, x{scale}, LR: {spec}; Y channel, PSNR on the whole frame"
    return compose(panels, crop, zoom, title), panels
