import numpy as np
import pytest

from srx.errors import SrxError
from srx.protocol import (
    _cubic, bicubic_upscale_y, check_scale, imresize, make_pair, min_eval_side, modcrop, psnr, rgb2ycbcr, ssim,
    y_channel, ycbcr2rgb,
)
from tests.conftest import SET5, need_shared, synthetic_photo


def test_cubic_kernel_is_keys_a_minus_half():
    assert _cubic(np.array([0.0]))[0] == 1.0
    assert np.allclose(_cubic(np.array([1.0, 2.0, 2.5, -1.0])), 0.0)
    # Interpolating: samples at integer offsets reproduce the input; partition of unity.
    for d in np.linspace(0, 1, 7):
        assert np.isclose(_cubic(d - np.arange(-2, 4)).sum(), 1.0)
    assert np.isclose(_cubic(np.array([0.5]))[0], 0.5625)  # (a+2)/8 - (a+3)/4 + 1 for a = -0.5


def test_modcrop():
    assert modcrop(np.zeros((10, 11, 3)), 3).shape == (9, 9, 3)
    assert modcrop(np.zeros((12, 12)), 4).shape == (12, 12)


def test_imresize_shapes_and_constants():
    img = np.full((30, 45), 123, np.uint8)
    assert imresize(img, 1 / 3).shape == (10, 15)
    assert (imresize(img, 1 / 3) == 123).all() and (imresize(img, 2.0) == 123).all()
    assert imresize(np.zeros((7, 9, 3)), 2.0).shape == (14, 18, 3)


def test_imresize_reproduces_linear_ramps_when_enlarging():
    ramp = np.tile(np.arange(20, dtype=np.float64), (6, 1))
    up = imresize(ramp, 3.0)
    # MATLAB's half-pixel mapping: output x samples input (x + 0.5)/3 - 0.5; cubic keeps lines exact.
    expect = (np.arange(60) + 0.5) / 3 - 0.5
    assert np.allclose(up[0, 6:-6], expect[6:-6])


def test_imresize_antialiases_when_shrinking():
    """At 1/4 Nyquist-rate stripes average to a flat 127.5 with or without antialiasing (ptp 0.0 both
    ways), so the old test at 1/4 could not fail; at 1/3 they differ: 3.15 antialiased, 255 without."""
    stripes = np.tile(np.array([0, 255], np.float64), (9, 16))  # Nyquist-rate pattern
    small = imresize(stripes, 1 / 3)
    aliased = imresize(stripes, 1 / 3, antialias=False)
    assert np.ptp(small[:, 2:-2]) < 10.0  # the widened kernel averages the stripes to near-flat grey
    assert abs(small[:, 2:-2].mean() - 127.5) < 2.0
    assert np.ptp(aliased[:, 2:-2]) > 200.0  # plain cubic samples them: full-swing aliasing


def test_rgb2ycbcr_matches_matlab_reference_points():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    ycc = rgb2ycbcr(rgb)
    assert ycc[0, 0].tolist() == [16, 128, 128]
    assert ycc[0, 1].tolist() == [235, 128, 128]
    assert ycc[0, 2].tolist() == [81, 90, 240]  # MATLAB: rgb2ycbcr(uint8([255 0 0]))


def test_8_bit_ycbcr_is_exact_with_halves_rounded_up():
    """BT.601's coefficients have three decimals, so 194 8-bit colours have a Y exactly on a half
    (Cb and Cr have their own): (146, 124, 97) gives Y = 125.5. In floating point the way they rounded
    depended on numpy's BLAS build (numpy 1.26 here gave 125 for that pixel of Set5's butterfly,
    numpy 2 on a GPU host 126), which moved scores seeded by the pixels. Checked against exact
    fractions: every tie of Y in the colour cube (the old float code fails on one), and random colours."""
    from fractions import Fraction

    coef = [[Fraction(c).limit_denominator(1000) for c in row] for row in
            ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))]
    offset = (16, 128, 128)

    def exact(rgb):  # MATLAB's round: halves away from zero (all values here are positive)
        out = []
        for row, off in zip(coef, offset):
            v = off + sum(c * int(x) for c, x in zip(row, rgb)) / 255
            out.append(min(255, max(0, int(v + Fraction(1, 2)))))
        return out

    assert exact((146, 124, 97))[0] == 126 and rgb2ycbcr(np.array([[[146, 124, 97]]], np.uint8))[0, 0, 0] == 126
    r, g = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    ties = []
    for b in range(256):  # 255000 * Y = 65481 R + 128553 G + 24966 B + 4080000
        hit = (65481 * r + 128553 * g + 24966 * b + 4080000) % 255000 == 127500
        ties += [(int(x), int(y), b) for x, y in zip(r[hit], g[hit])]
    assert len(ties) == 194  # the whole cube's
    got = rgb2ycbcr(np.array([ties], np.uint8))[0]
    for colour, y in zip(ties, got[:, 0]):
        assert y == exact(colour)[0], colour
    colours = np.random.default_rng(1).integers(0, 256, (1, 2000, 3), dtype=np.uint8)
    got = rgb2ycbcr(colours)[0]
    for i in range(0, 2000, 7):
        assert got[i].tolist() == exact(colours[0, i]), colours[0, i]


def test_colour_round_trip_on_a_photo():
    img = synthetic_photo(40, 50)[..., ::-1]
    back = ycbcr2rgb(rgb2ycbcr(img.astype(np.float64) / 255))
    assert np.abs(back * 255 - img).max() < 1e-9
    assert np.abs(ycbcr2rgb(rgb2ycbcr(img)).astype(int) - img).max() <= 2  # 8-bit YCbCr rounding


def test_psnr_and_ssim_basics():
    a = synthetic_photo(48, 48)[..., 0]
    assert psnr(a, a) == float("inf")
    b = a.astype(np.float64) + 1.0
    assert np.isclose(psnr(a, b), 10 * np.log10(255**2))
    assert np.isclose(ssim(a, a, border=3), 1.0)
    with pytest.raises(SrxError):
        psnr(a, a[:10])


def test_check_scale_rejects_unsupported():
    with pytest.raises(SrxError, match="expected one of 2, 3, 4"):
        check_scale(5)


@pytest.mark.parametrize("scale,expected", [(2, 33.66), (3, 30.39), (4, 28.42)])
def test_bicubic_on_set5_reproduces_the_published_baseline(scale, expected):
    need_shared(SET5)
    import cv2

    scores = []
    for path in sorted(SET5.glob("*.png")):
        hr_y, lr_y = make_pair(cv2.imread(str(path)), scale)
        scores.append(psnr(hr_y, bicubic_upscale_y(lr_y, scale), border=scale))
    assert abs(np.mean(scores) - expected) <= 0.02


def test_psnr_shaves_exactly_border_pixels_from_each_side():
    """The protocol's shave: `scale` pixels off every side, no more and no less (an error in the
    outermost kept ring counts, one a ring further out does not)."""
    from srx.protocol import psnr

    ref = np.full((20, 24), 100.0)
    for y, x in ((2, 10), (17, 10), (10, 2), (10, 21)):  # the third ring from each side
        out = ref.copy()
        out[y, x] += 10
        assert psnr(ref, out, border=3) == float("inf")
        assert psnr(ref, out, border=2) == pytest.approx(10 * np.log10(255**2 / (100 / (16 * 20))))
    out = ref.copy()
    out[3, 3] += 10  # the first pixel kept at border 3: 14 x 18 of them
    assert psnr(ref, out, border=3) == pytest.approx(10 * np.log10(255**2 / (100 / (14 * 18))))


@pytest.mark.parametrize("call,match", [
    (lambda a: ssim(a, a[:19]), r"SSIM needs equal shapes, got \(20, 20\) and \(19, 20\)"),
    (lambda a: ssim(a, a, 5), r"SSIM needs 11x11 pixels after 5 are shaved from each side, an image of at least "
                              r"21x21; got 20x20"),
    (lambda a: ssim(a[:10], a[:10]), r"an image of at least 11x11; got 20x10"),
    (lambda a: ssim(np.dstack([a] * 3), np.dstack([a] * 3)), r"SSIM is scored on one plane .*got shape \(20, 20, 3\)"),
    (lambda a: psnr(a, a + 1, 10), r"PSNR of an image of shape \(20, 20\) with 10 pixels shaved from each side "
                                   r"leaves nothing to score; expected at least 21x21 pixels"),
    (lambda a: y_channel(np.full((8, 8, 3), 65535, np.uint16)),
     r"y_channel expects an 8-bit image \(or floats in 0\.\.1\), got uint16 pixels \(8 bits first"),
    (lambda a: y_channel(np.zeros((8, 8, 2), np.uint8)), r"grayscale, BGR or BGRA image, got .* shape \(8, 8, 2\)"),
    (lambda a: modcrop(a, 0), "modcrop crops to multiples of a scale of at least 1, got 0"),
    (lambda a: make_pair(np.zeros((2, 2, 3), np.uint8), 3),
     r"make_pair needs an image of at least 3x3 pixels for x3 \(one LR pixel\), got 2x2"),
])
def test_bad_input_to_the_protocol_is_one_srx_error(call, match):
    """What the protocol's helpers are given wrong is said as one SrxError, expected against found,
    with no numpy warning first: not scikit-image's "at least 7x7" (srx's window is 11), a nan PSNR,
    an IndexError, a ZeroDivisionError or a shape the caller never passed."""
    import warnings

    a = np.zeros((20, 20), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SrxError, match=match):
            call(a)


def test_protocol_edges_that_still_score():
    """The smallest images the checks let through still score, and a gray image may come as
    H x W x 1 (as OpenCV returns one): its Y is the 2-D image's."""
    photo = synthetic_photo(30, 40)
    gray = photo[..., 1]
    assert np.array_equal(y_channel(gray[..., None]), y_channel(gray))
    assert np.array_equal(y_channel(np.dstack([photo, gray])), y_channel(photo))  # BGRA: the alpha left out
    side = min_eval_side(3)
    img = gray[:side, :side]
    assert np.isfinite(ssim(img, 255 - img, 3)) and np.isfinite(psnr(img, 255 - img, 3))
    hr_y, lr_y = make_pair(photo[:3, :3], 3)
    assert hr_y.shape == (3, 3) and lr_y.shape == (1, 1)
