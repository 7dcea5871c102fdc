"""2x2 area downsampling of (H, W, C) images, uint8 or uint16: grey, RGB or RGBA, or 1 to 64
independent channels (a microscope's channels: each averaged on its own, none is alpha).

``downsample2x(image)`` halves both sides, rounding up: the output is (ceil(H/2), ceil(W/2), C).
Each output pixel is the mean of its 2x2 block of input pixels, rounded half up. An odd last row
or column averages the pixels that exist (a 2x1, 1x2 or 1x1 block). That is what Pillow's
``Image.reduce(2)`` does, and the uint8 results equal it byte for byte:

* grey and RGB: ``(a + b + c + d + 2) >> 2`` for a full block, ``(a + b + 1) >> 1`` for a half
  block at an odd edge, the pixel itself in an odd corner (Pillow's ``ImagingReduce2x2`` and
  ``ImagingReduceCorners``). Replicating the last row and column of an odd image and then
  averaging 2x2 gives exactly those numbers, so the kernels do that;
* RGBA: Pillow premultiplies the colour by alpha (``RGBA -> RGBa``, ``c * a / 255`` rounded),
  averages all four channels as above and divides again (``RGBa -> RGBA``, ``255 * c // a``,
  unchanged for alpha 0 or 255). The kernel does the same through two 64 KiB tables, so a fully
  transparent block gets colour 0, and colour never bleeds out of transparent pixels.

Independent channels (``independent=True``) are all averaged as grey is, so 4 of them are not
RGBA.

uint16 follows the same rules (Pillow has no 16-bit RGB or RGBA mode; its 32-bit ``I`` mode gives
the same grey values), except that RGBA is averaged with alpha weights at full precision:
``sum(c * a) / sum(a)`` rounded half up, colour 0 where the averaged alpha is 0.

``gamma_correct=True`` averages in linear light: sRGB codes are decoded to linear values
(IEC 61966-2-1, in fixed point, 2**24 = 1.0), averaged (alpha-weighted for RGBA) and encoded
again, rounding to the nearest code. A black-and-white checkerboard then becomes the grey of
half the light (188 for uint8), not 128. Alpha itself is always averaged plainly.

The kernels are integer arithmetic (plus float64 threshold comparisons in the gamma path), so
the results are the same on every machine and for every thread count. Rows are spread over
Numba's threads (``numba.set_num_threads``).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL

# The project's flags, plus nogil: a pyramid shard encodes tiles in Python threads while this
# thread computes the next level; holding the GIL here would stall them between tiles.
_KERNEL = {**NJIT_PARALLEL, "nogil": True}

LINEAR_ONE = 1 << 24  # fixed-point 1.0 of linear light in the gamma tables
MAX_CHANNELS = 64  # independent channels of one image


# -- plain 2x2 mean ---------------------------------------------------------------------------


@numba.njit(**NJIT_INLINE)
def _row_mean(r0, r1, o, width, C):
    """One output row from input rows r0, r1 (flattened, width * C values)."""
    half = width // 2
    for x in range(half):
        for c in range(C):
            i = 2 * C * x + c
            s = (
                np.uint32(r0[i])
                + np.uint32(r0[i + C])
                + np.uint32(r1[i])
                + np.uint32(r1[i + C])
                + np.uint32(2)
            )
            o[C * x + c] = s >> np.uint32(2)
    if width & 1:
        i = C * (width - 1)
        for c in range(C):
            s = np.uint32(r0[i + c]) + np.uint32(r1[i + c]) + np.uint32(1)
            o[C * half + c] = s >> np.uint32(1)


@numba.njit(**_KERNEL)
def _mean_2x2(src, dst):
    height, width, C = src.shape
    flat = src.reshape(height, width * C)
    out = dst.reshape(dst.shape[0], dst.shape[1] * C)
    for y in numba.prange(dst.shape[0]):
        r0 = flat[2 * y]
        r1 = flat[min(2 * y + 1, height - 1)]
        # A constant channel count per call lets LLVM unroll and vectorise the channel loop.
        if C == 1:
            _row_mean(r0, r1, out[y], width, 1)
        elif C == 3:
            _row_mean(r0, r1, out[y], width, 3)
        elif C == 4:
            _row_mean(r0, r1, out[y], width, 4)
        else:
            _row_mean(r0, r1, out[y], width, C)


# -- RGBA ---------------------------------------------------------------------------------------


@numba.njit(**_KERNEL)
def _rgba8_premultiplied(src, dst, premul, unpremul):
    """Pillow's RGBA reduce: premultiply, 2x2 mean of RGBa, un-premultiply (uint8)."""
    height, width, _ = src.shape
    for y in numba.prange(dst.shape[0]):
        r0 = src[2 * y]
        r1 = src[min(2 * y + 1, height - 1)]
        o = dst[y]
        for x in range(dst.shape[1]):
            xa = 2 * x
            xb = min(xa + 1, width - 1)
            a0 = np.int64(r0[xa, 3])
            a1 = np.int64(r0[xb, 3])
            a2 = np.int64(r1[xa, 3])
            a3 = np.int64(r1[xb, 3])
            alpha = (a0 + a1 + a2 + a3 + 2) >> 2
            for c in range(3):
                s = (
                    np.int64(premul[a0, r0[xa, c]])
                    + np.int64(premul[a1, r0[xb, c]])
                    + np.int64(premul[a2, r1[xa, c]])
                    + np.int64(premul[a3, r1[xb, c]])
                    + 2
                )
                o[x, c] = unpremul[alpha, s >> 2]
            o[x, 3] = alpha


@numba.njit(**_KERNEL)
def _rgba_weighted(src, dst):
    """Alpha-weighted 2x2 mean at full precision (uint16 RGBA)."""
    height, width, _ = src.shape
    for y in numba.prange(dst.shape[0]):
        r0 = src[2 * y]
        r1 = src[min(2 * y + 1, height - 1)]
        o = dst[y]
        for x in range(dst.shape[1]):
            xa = 2 * x
            xb = min(xa + 1, width - 1)
            a0 = np.int64(r0[xa, 3])
            a1 = np.int64(r0[xb, 3])
            a2 = np.int64(r1[xa, 3])
            a3 = np.int64(r1[xb, 3])
            total = a0 + a1 + a2 + a3
            alpha = (total + 2) >> 2
            for c in range(3):
                if alpha == 0:
                    o[x, c] = 0
                    continue
                s = (
                    np.int64(r0[xa, c]) * a0
                    + np.int64(r0[xb, c]) * a1
                    + np.int64(r1[xa, c]) * a2
                    + np.int64(r1[xb, c]) * a3
                )
                o[x, c] = (2 * s + total) // (2 * total)
            o[x, 3] = alpha


# -- linear light -----------------------------------------------------------------------------


@numba.njit(**NJIT_INLINE)
def _encode(total, weight, thresholds):
    """The code whose sRGB interval holds the linear mean ``total / weight``: the number of
    thresholds t with ``t * weight <= total`` (binary search; thresholds ascend)."""
    lo = 0
    hi = thresholds.shape[0]
    w = np.float64(weight)
    s = np.float64(total)
    while lo < hi:
        mid = (lo + hi) >> 1
        if thresholds[mid] * w <= s:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**_KERNEL)
def _gamma_mean(src, dst, linear, thresholds):
    """2x2 mean in linear light, no alpha (grey or RGB)."""
    height, width, C = src.shape
    for y in numba.prange(dst.shape[0]):
        r0 = src[2 * y]
        r1 = src[min(2 * y + 1, height - 1)]
        o = dst[y]
        for x in range(dst.shape[1]):
            xa = 2 * x
            xb = min(xa + 1, width - 1)
            for c in range(C):
                s = linear[r0[xa, c]] + linear[r0[xb, c]] + linear[r1[xa, c]] + linear[r1[xb, c]]
                o[x, c] = _encode(s, 4, thresholds)


@numba.njit(**_KERNEL)
def _gamma_rgba(src, dst, linear, thresholds):
    """2x2 mean in linear light, colour weighted by alpha; alpha averaged plainly."""
    height, width, _ = src.shape
    for y in numba.prange(dst.shape[0]):
        r0 = src[2 * y]
        r1 = src[min(2 * y + 1, height - 1)]
        o = dst[y]
        for x in range(dst.shape[1]):
            xa = 2 * x
            xb = min(xa + 1, width - 1)
            a0 = np.int64(r0[xa, 3])
            a1 = np.int64(r0[xb, 3])
            a2 = np.int64(r1[xa, 3])
            a3 = np.int64(r1[xb, 3])
            total = a0 + a1 + a2 + a3
            alpha = (total + 2) >> 2
            for c in range(3):
                if alpha == 0:
                    o[x, c] = 0
                    continue
                s = (
                    linear[r0[xa, c]] * a0
                    + linear[r0[xb, c]] * a1
                    + linear[r1[xa, c]] * a2
                    + linear[r1[xb, c]] * a3
                )
                o[x, c] = _encode(s, total, thresholds)
            o[x, 3] = alpha


# -- tables -----------------------------------------------------------------------------------


def srgb_to_linear(v: float) -> float:
    """IEC 61966-2-1 decoding of an sRGB value in [0, 1] to linear light in [0, 1]."""
    return v / 12.92 if v <= 0.04045 else math.pow((v + 0.055) / 1.055, 2.4)


def linear_to_srgb(v: float) -> float:
    """IEC 61966-2-1 encoding of linear light in [0, 1] to an sRGB value in [0, 1]."""
    return v * 12.92 if v <= 0.0031308 else 1.055 * math.pow(v, 1 / 2.4) - 0.055


@functools.lru_cache(maxsize=2)
def gamma_tables(top: int) -> tuple[np.ndarray, np.ndarray]:
    """``(linear, thresholds)`` for codes 0..top (255 or 65535).

    ``linear[v]`` is the linear light of code v in fixed point (int64, ``LINEAR_ONE`` = 1.0);
    ``thresholds[k]`` (float64, same scale) is the linear light of the sRGB value halfway between
    codes k and k + 1, so the nearest code to a linear mean m is the number of thresholds <= m.
    Computed with Python's ``math`` (correctly rounded pow on glibc), never vectorised libm, so
    the tables are the same on every machine.
    """
    linear = np.array(
        [round(srgb_to_linear(v / top) * LINEAR_ONE) for v in range(top + 1)], dtype=np.int64
    )
    thresholds = np.array(
        [srgb_to_linear((k + 0.5) / top) * LINEAR_ONE for k in range(top)], dtype=np.float64
    )
    return linear, thresholds


@functools.lru_cache(maxsize=1)
def premultiply_tables() -> tuple[np.ndarray, np.ndarray]:
    """Pillow's 8-bit conversions as (alpha, value) tables: ``premul[a, c]`` = RGBA->RGBa
    (``MULDIV255``: t = c * a + 128; (t + (t >> 8)) >> 8) and ``unpremul[a, p]`` = RGBa->RGBA
    (``min(255, 255 * p // a)``, p itself for a = 0 or 255)."""
    a = np.arange(256, dtype=np.int64)[:, None]
    c = np.arange(256, dtype=np.int64)[None, :]
    t = c * a + 128
    premul = ((t + (t >> 8)) >> 8).astype(np.uint8)
    safe = np.maximum(a, 1)
    unpremul = np.where((a == 0) | (a == 255), c, np.minimum(255, 255 * c // safe))
    return premul, unpremul.astype(np.uint8)


# -- public ---------------------------------------------------------------------------------


@numba.njit(**NJIT, nogil=True)
def _planes(src, dst):
    height, width, channels = src.shape
    for y in range(height):
        for c in range(channels):
            row = dst[c, y]
            for x in range(width):
                row[x] = src[y, x, c]


def planar(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) image as a new C-contiguous (C, H, W) array, channel plane after plane:
    how an OME-Zarr level (``c, y, x``) holds it. On the calling thread alone, off the GIL (a
    pyramid runs one per stored object in its pool). NumPy's own copy of the transposed view
    is 1.5x (uint8 RGB) to 14x (5 uint16 channels) slower."""
    out = np.empty((image.shape[2], *image.shape[:2]), dtype=image.dtype)
    _planes(image, out)
    return out


def output_shape(height: int, width: int) -> tuple[int, int]:
    """The size of a downsampled level: (ceil(height / 2), ceil(width / 2))."""
    return (height + 1) // 2, (width + 1) // 2


def downsample2x(
    image: np.ndarray,
    gamma_correct: bool = False,
    out: np.ndarray | None = None,
    independent: bool = False,
) -> np.ndarray:
    """Halve an (H, W, C) uint8/uint16 image with a 2x2 area mean (see the module docstring).

    ``C`` is 1 (grey), 3 (RGB) or 4 (RGBA, alpha last); with ``independent``, 1 to 64 channels
    each averaged on its own (no alpha). ``out``, when given, must be a C-contiguous array of
    shape (ceil(H/2), ceil(W/2), C) and the same dtype. Returns the downsampled image. Raises
    ``ValueError`` naming what is wrong with the input: another dtype (convert to uint8 or
    uint16 first), another channel count (convert to L, RGB or RGBA, or pass
    ``independent=True`` for a microscope's channels), or an empty image.
    """
    if image.ndim != 3:
        raise ValueError(
            f"expected an (height, width, channels) array, got shape {image.shape}; "
            f"add a channel axis to grey images: image[..., None]"
        )
    height, width, channels = image.shape
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {image.dtype}; convert first")
    if independent and not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"expected 1 to {MAX_CHANNELS} independent channels, got {channels}")
    if not independent and channels not in (1, 3, 4):
        raise ValueError(
            f"expected 1, 3 or 4 channels (L, RGB, RGBA), got {channels}; independent=True "
            f"averages each of up to {MAX_CHANNELS} channels on its own"
        )
    if height < 1 or width < 1:
        raise ValueError(f"the image is empty: {width}x{height}")
    src = np.ascontiguousarray(image)
    shape = (*output_shape(height, width), channels)
    if out is None:
        out = np.empty(shape, dtype=src.dtype)
    elif out.shape != shape or out.dtype != src.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be C-contiguous {src.dtype} of shape {shape}, got {out.dtype} {out.shape}"
        )
    top = 255 if src.dtype == np.uint8 else 65535
    alpha = channels == 4 and not independent
    if gamma_correct:
        linear, thresholds = gamma_tables(top)
        if alpha:
            _gamma_rgba(src, out, linear, thresholds)
        else:
            _gamma_mean(src, out, linear, thresholds)
    elif alpha and top == 255:
        premul, unpremul = premultiply_tables()
        _rgba8_premultiplied(src, out, premul, unpremul)
    elif alpha:
        _rgba_weighted(src, out)
    else:
        _mean_2x2(src, out)
    return out


__all__ = [
    "LINEAR_ONE",
    "MAX_CHANNELS",
    "downsample2x",
    "gamma_tables",
    "linear_to_srgb",
    "output_shape",
    "premultiply_tables",
    "srgb_to_linear",
]
