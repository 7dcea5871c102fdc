"""Colour conversions for uint8/uint16 images: RGB <-> YCbCr, luma, alpha premultiplication.

YCbCr is ITU-R BT.601 full range as JPEG (JFIF) uses it, computed exactly as libjpeg and
libjpeg-turbo do (``jccolor.c`` / ``jdcolor.c``): 16-bit fixed-point coefficients
``FIX(c) = round(c * 2**16)`` and round-half-up, so a pixel gives the same bytes as the JPEG
codec's own colour conversion::

    Y  =  0.29900 R + 0.58700 G + 0.11400 B
    Cb = -0.16874 R - 0.33126 G + 0.50000 B + center
    Cr =  0.50000 R - 0.41869 G - 0.08131 B + center
    R = Y + 1.40200 (Cr - center)
    G = Y - 0.34414 (Cb - center) - 0.71414 (Cr - center)
    B = Y + 1.77200 (Cb - center)

with ``center`` 128 for uint8 and 32768 for uint16. Y of uint8 RGB equals Pillow's
``convert("L")`` byte for byte (Pillow uses the same three coefficients and rounding).
Pillow's own ``convert("YCbCr")`` uses 6-bit tables with truncation, so it differs from these
(and from libjpeg) by a little: ``tests/test_color.py`` measures and bounds the difference.

Premultiplication follows Pillow's ``RGBA -> RGBa -> RGBA`` conversions (``Convert.c``), which
``Image.resize`` applies around resampling images with alpha; with them ``resize`` reproduces
Pillow for RGBA and LA.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT_PARALLEL

_SCALEBITS = 16
_ONE_HALF = 1 << (_SCALEBITS - 1)


def _fix(c: float) -> int:
    return int(c * (1 << _SCALEBITS) + 0.5)


# Encoder coefficients (jccolor.c).
_Y_R, _Y_G, _Y_B = _fix(0.29900), _fix(0.58700), _fix(0.11400)
_CB_R, _CB_G, _HALF = _fix(0.16874), _fix(0.33126), _fix(0.5)
_CR_G, _CR_B = _fix(0.41869), _fix(0.08131)
# Decoder coefficients (jdcolor.c).
_R_CR, _B_CB = _fix(1.40200), _fix(1.77200)
_G_CR, _G_CB = _fix(0.71414), _fix(0.34414)


@njit(**NJIT_PARALLEL)
def _rgb_to_ycbcr(src, out, center, maxval):
    h, w = src.shape[0], src.shape[1]
    offset = np.int64(center) << _SCALEBITS
    for y in prange(h):
        for x in range(w):
            r = np.int64(src[y, x, 0])
            g = np.int64(src[y, x, 1])
            b = np.int64(src[y, x, 2])
            yy = (_Y_R * r + _Y_G * g + _Y_B * b + _ONE_HALF) >> _SCALEBITS
            cb = (-_CB_R * r - _CB_G * g + _HALF * b + offset + _ONE_HALF - 1) >> _SCALEBITS
            cr = (_HALF * r - _CR_G * g - _CR_B * b + offset + _ONE_HALF - 1) >> _SCALEBITS
            out[y, x, 0] = min(max(yy, 0), maxval)
            out[y, x, 1] = min(max(cb, 0), maxval)
            out[y, x, 2] = min(max(cr, 0), maxval)


@njit(**NJIT_PARALLEL)
def _ycbcr_to_rgb(src, out, center, maxval):
    h, w = src.shape[0], src.shape[1]
    for y in prange(h):
        for x in range(w):
            yy = np.int64(src[y, x, 0])
            cb = np.int64(src[y, x, 1]) - center
            cr = np.int64(src[y, x, 2]) - center
            r = yy + ((_R_CR * cr + _ONE_HALF) >> _SCALEBITS)
            g = yy + ((-_G_CB * cb + _ONE_HALF - _G_CR * cr) >> _SCALEBITS)
            b = yy + ((_B_CB * cb + _ONE_HALF) >> _SCALEBITS)
            out[y, x, 0] = min(max(r, 0), maxval)
            out[y, x, 1] = min(max(g, 0), maxval)
            out[y, x, 2] = min(max(b, 0), maxval)


@njit(**NJIT_PARALLEL)
def _luma(src, out):
    h, w = src.shape[0], src.shape[1]
    for y in prange(h):
        for x in range(w):
            r = np.int64(src[y, x, 0])
            g = np.int64(src[y, x, 1])
            b = np.int64(src[y, x, 2])
            out[y, x] = (_Y_R * r + _Y_G * g + _Y_B * b + _ONE_HALF) >> _SCALEBITS


@njit(**NJIT_PARALLEL)
def _premultiply(img, maxval):
    # uint8: Pillow's MULDIV255, round(v * a / 255); uint16 the same rounding by 65535.
    h, w, c = img.shape
    half = (maxval + 1) // 2
    for y in prange(h):
        for x in range(w):
            a = np.int64(img[y, x, c - 1])
            for k in range(c - 1):
                if maxval == 255:
                    t = np.int64(img[y, x, k]) * a + 128
                    img[y, x, k] = ((t >> 8) + t) >> 8
                else:
                    img[y, x, k] = (np.int64(img[y, x, k]) * a + half) // maxval


@njit(**NJIT_PARALLEL)
def _unpremultiply(img, maxval):
    # Pillow's rgba2rgbA: v * 255 / a truncated and clipped; alpha 0 and opaque unchanged.
    h, w, c = img.shape
    for y in prange(h):
        for x in range(w):
            a = np.int64(img[y, x, c - 1])
            if a == 0 or a == maxval:
                continue
            for k in range(c - 1):
                img[y, x, k] = min(np.int64(img[y, x, k]) * maxval // a, maxval)


def _check(image: np.ndarray, channels: tuple[int, ...], what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{what}: expected a uint8 or uint16 array, got {dtype}")
    if image.ndim != 3 or image.shape[2] not in channels:
        raise ValueError(
            f"{what}: expected shape (height, width, {' or '.join(map(str, channels))}), "
            f"got {image.shape}"
        )
    return np.ascontiguousarray(image)


def _maxval(image: np.ndarray) -> int:
    return int(np.iinfo(image.dtype).max)


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """RGB (height, width, 3) -> YCbCr, BT.601 full range as JPEG uses, same dtype (uint8 or
    uint16). A fourth (alpha) channel is ignored. Raises ``ValueError`` for other shapes or
    dtypes."""
    src = _check(image, (3, 4), "rgb_to_ycbcr")
    maxval = _maxval(src)
    out = np.empty(src.shape[:2] + (3,), dtype=src.dtype)
    _rgb_to_ycbcr(src, out, (maxval + 1) // 2, maxval)
    return out


def ycbcr_to_rgb(image: np.ndarray) -> np.ndarray:
    """YCbCr (height, width, 3) -> RGB, the inverse of :func:`rgb_to_ycbcr` as a JPEG decoder
    computes it (values clipped to the dtype's range). Raises ``ValueError`` for other shapes
    or dtypes."""
    src = _check(image, (3,), "ycbcr_to_rgb")
    maxval = _maxval(src)
    out = np.empty_like(src)
    _ycbcr_to_rgb(src, out, (maxval + 1) // 2, maxval)
    return out


def luma(image: np.ndarray) -> np.ndarray:
    """The Y of :func:`rgb_to_ycbcr` as a (height, width) image: RGB(A) to grey. For uint8 it
    equals Pillow's ``convert("L")``."""
    src = _check(image, (3, 4), "luma")
    out = np.empty(src.shape[:2], dtype=src.dtype)
    _luma(src, out)
    return out


def premultiply_alpha(image: np.ndarray) -> np.ndarray:
    """A copy of an image whose last channel is alpha (LA or RGBA), colour channels multiplied
    by alpha / max, rounded (Pillow's ``RGBA -> RGBa``)."""
    out = _check(image, (2, 4), "premultiply_alpha").copy()
    _premultiply(out, _maxval(out))
    return out


def unpremultiply_alpha(image: np.ndarray) -> np.ndarray:
    """The inverse of :func:`premultiply_alpha` as Pillow computes it (``RGBa -> RGBA``:
    colour * max // alpha, clipped; fully transparent pixels keep their values)."""
    out = _check(image, (2, 4), "unpremultiply_alpha").copy()
    _unpremultiply(out, _maxval(out))
    return out
