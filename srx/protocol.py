"""The standard SR evaluation protocol, shared by training, evaluation and every parity check.

Published SR numbers come from MATLAB: `modcrop`, `imresize(..., 'bicubic')` (a = -0.5 cubic,
antialiased when shrinking, symmetric borders), `rgb2ycbcr` (BT.601, Y in [16, 235]) and PSNR on
Y with `scale` pixels shaved from each border. Re-implementing them exactly is what makes our
numbers comparable with papers; OpenCV's and PyTorch's bicubic (a = -0.75, no antialias) are not.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from srx.errors import SrxError

SCALES = (2, 3, 4)

# MATLAB rgb2ycbcr for inputs in [0, 1]: ycbcr = offset + T @ rgb, outputs in [0, 255] units.
_T = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
    dtype=np.float64,
)
_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
_T_INV = np.linalg.inv(_T)


def check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise SrxError(f"unsupported scale {scale!r}: expected one of {', '.join(map(str, SCALES))}")
    return int(scale)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop so both sides are multiples of `scale` (bottom/right), as MATLAB's modcrop does."""
    if scale < 1:
        raise SrxError(f"modcrop crops to multiples of a scale of at least 1, got {scale}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
    far = (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def _resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense (out_len, in_len) weight matrix reproducing MATLAB's `contributions`."""
    kernel_width = 4.0
    if scale < 1 and antialias:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)  # MATLAB is 1-based
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: index i outside [1, n] is mirrored, edge pixel repeated.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), src.ravel()), weights.ravel())
    mat.setflags(write=False)
    return mat


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """MATLAB `imresize(img, scale, 'bicubic')` for 2-D or H x W x C arrays.

    uint8 in gives uint8 out (rounded and saturated, as MATLAB does); float in gives float64 out.
    """
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise SrxError(f"imresize expects an H x W or H x W x C image, got shape {img.shape}")
    is_uint8 = img.dtype == np.uint8
    x = img.astype(np.float64)
    h, w = x.shape[:2]
    out_h, out_w = int(math.ceil(h * scale)), int(math.ceil(w * scale))
    # MATLAB resizes along the dimension with the smaller scale first; equal scales: rows first.
    rows = _resize_matrix(h, out_h, float(scale), antialias)
    cols = _resize_matrix(w, out_w, float(scale), antialias)
    x = np.tensordot(rows, x, axes=([1], [0]))
    x = np.moveaxis(np.tensordot(cols, x, axes=([1], [1])), 0, 1)
    if is_uint8:
        return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)
    return x


# The same matrix in thousandths, for exact integer arithmetic on 8-bit input: ycbcr * 255000 =
# offset * 255000 + T_1000 @ rgb, with rgb in 0..255.
_T_1000 = np.rint(_T * 1000).astype(np.int32)
_OFFSET_255000 = np.rint(_OFFSET * 255000).astype(np.int32)


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2ycbcr`. uint8 RGB -> uint8 YCbCr (rounded); float RGB in [0,1] -> float in [0,255].

    On 8-bit input the result is exact, in integers, with halves rounded up: BT.601's coefficients
    have three decimals, so some colours land exactly on a half (R, G, B = 146, 124, 97 gives Y =
    125.5), and in floating point which way such a pixel rounds depended on the BLAS build that did
    the matrix product. Two numpy builds put one Set5 image two pixels apart, which moved every
    score seeded by the image's pixels (`srx.degrade.image_seed`)."""
    if rgb.dtype == np.uint8:
        r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))  # |sums| stay under 2**31
        out = np.empty(rgb.shape, np.uint8)
        for row in range(3):
            num = _T_1000[row, 0] * r + _T_1000[row, 1] * g + _T_1000[row, 2] * b + _OFFSET_255000[row]
            out[..., row] = np.clip((2 * num + 255000) // 510000, 0, 255)
        return out
    return rgb.astype(np.float64) @ _T.T + _OFFSET


def ycbcr2rgb(ycc: np.ndarray) -> np.ndarray:
    """MATLAB `ycbcr2rgb`. uint8 in -> uint8 out; float in [0,255] units -> float RGB in [0,1]."""
    is_uint8 = ycc.dtype == np.uint8
    rgb = (ycc.astype(np.float64) - _OFFSET) @ _T_INV.T
    if is_uint8:
        return np.clip(np.floor(rgb * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return rgb


def bgr2ycbcr(bgr: np.ndarray) -> np.ndarray:
    return rgb2ycbcr(bgr[..., ::-1])


def ycbcr2bgr(ycc: np.ndarray) -> np.ndarray:
    return ycbcr2rgb(ycc)[..., ::-1]


def y_channel(img: np.ndarray) -> np.ndarray:
    """uint8 Y in [16, 235] from a uint8 BGR (OpenCV order), BGRA or grayscale (H x W or H x W x 1)
    image; a float one in [0, 1] gives float Y in [0, 255] units. 16-bit images: 8 bits first
    (`srx.imageio.to_uint8`)."""
    if img.dtype != np.uint8 and img.dtype.kind != "f":
        raise SrxError(f"y_channel expects an 8-bit image (or floats in 0..1), got {img.dtype} pixels"
                       + (" (8 bits first: srx.imageio.to_uint8)" if img.dtype == np.uint16 else ""))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise SrxError(f"y_channel expects an H x W grayscale, BGR or BGRA image, got an array of shape {img.shape}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return bgr2ycbcr(img[..., :3])[..., 0]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    if border <= 0:
        return img
    return img[border:-border, border:-border]


def psnr(reference: np.ndarray, test: np.ndarray, border: int = 0, data_range: float = 255.0) -> float:
    """PSNR in dB with `border` pixels shaved from each side (inf for identical images)."""
    if reference.shape != test.shape:
        raise SrxError(f"PSNR needs equal shapes, got {reference.shape} and {test.shape}")
    a = shave(reference.astype(np.float64), border)
    b = shave(test.astype(np.float64), border)
    if a.size == 0:
        side = 2 * max(border, 0) + 1
        raise SrxError(f"PSNR of an image of shape {reference.shape} with {border} pixels shaved from each side "
                       f"leaves nothing to score; expected at least {side}x{side} pixels")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * math.log10(data_range**2 / mse)


#: SSIM's window side (Wang et al.), so the smallest image it scores after the shave.
SSIM_WINDOW = 11


def min_eval_side(scale: int) -> int:
    """The smallest HR side that the protocol scores, a multiple of `scale`: the SSIM window must still
    fit after `scale` pixels are shaved from each side."""
    return -(-(SSIM_WINDOW + 2 * scale) // scale) * scale


def ssim(reference: np.ndarray, test: np.ndarray, border: int = 0, data_range: float = 255.0) -> float:
    """SSIM as the SR literature computes it (Wang et al.: 11x11 Gaussian window, sigma 1.5), on
    one plane (H x W), which must hold the window after `border` pixels are shaved from each side."""
    from skimage.metrics import structural_similarity

    if reference.shape != test.shape:
        raise SrxError(f"SSIM needs equal shapes, got {reference.shape} and {test.shape}")
    if reference.ndim != 2:
        raise SrxError(f"SSIM is scored on one plane (H x W, the Y of srx's protocol), got shape {reference.shape}")
    kept = [n - 2 * max(border, 0) for n in reference.shape]
    if min(kept) < SSIM_WINDOW:
        side = SSIM_WINDOW + 2 * max(border, 0)
        raise SrxError(f"SSIM needs {SSIM_WINDOW}x{SSIM_WINDOW} pixels after {border} are shaved from each side, "
                       f"an image of at least {side}x{side}; got {reference.shape[1]}x{reference.shape[0]}")
    a = shave(reference.astype(np.float64), border)
    b = shave(test.astype(np.float64), border)
    return float(
        structural_similarity(
            a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, win_size=SSIM_WINDOW,
        )
    )


def make_pair(hr_bgr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(hr_y, lr_y) as uint8 under the standard protocol: Y of the modcropped HR, then MATLAB
    bicubic shrink of that Y plane (rounded to 8 bits, as a real LR image is)."""
    h, w = hr_bgr.shape[:2] if hr_bgr.ndim >= 2 else (0, 0)
    if scale >= 1 and (h < scale or w < scale):
        raise SrxError(f"make_pair needs an image of at least {scale}x{scale} pixels for x{scale} (one LR pixel), "
                       f"got {w}x{h}")
    hr_y = y_channel(modcrop(hr_bgr, scale))
    return hr_y, imresize(hr_y, 1.0 / scale)


def bicubic_upscale_y(lr_y: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline of the protocol: MATLAB bicubic enlargement, uint8."""
    return imresize(lr_y, float(scale))
