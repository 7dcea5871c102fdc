"""CUDA twins of the imaging kernels: 2x2 downsampling and RGB <-> YCbCr, byte-equal to the CPU.

:func:`downsample2x` computes what :func:`tessera.kernels.imaging.downsample.downsample2x`
computes, for every case it handles (grey/RGB mean, RGBA premultiplied as Pillow for uint8,
alpha-weighted for uint16, and the linear-light ``gamma_correct`` paths with the same tables);
:func:`rgb_to_ycbcr` / :func:`ycbcr_to_rgb` are those of :mod:`tessera.kernels.imaging.color`
(libjpeg's fixed-point BT.601). All of it is integer arithmetic, plus float64 threshold comparisons
in the gamma path (exact products of a table value and a small integer), so the bytes are the same
on every device. One thread computes one output pixel (all its channels); a grid-stride loop covers
any image with a grid sized to the device.

Arrays may be NumPy arrays (copied to the device and back) or CUDA device arrays (kept on the
device: nothing is copied, and the result is a device array). Imports ``numba.cuda``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from tessera.kernels import cuda_device
from tessera.kernels.config import CUDA_DEVICE, CUDA_IMAGE_THREADS, CUDA_KERNEL
from tessera.kernels.imaging import color
from tessera.kernels.imaging.downsample import gamma_tables, output_shape, premultiply_tables

# -- downsample kernels (one thread per output pixel) -----------------------------------------


@cuda.jit(**CUDA_DEVICE)
def _corners(i, ow, height, width):
    """Input rows and columns of output pixel ``i``: the last row/column repeats at odd edges."""
    y = i // ow
    x = i - y * ow
    ya = 2 * y
    xa = 2 * x
    return ya, min(ya + 1, height - 1), xa, min(xa + 1, width - 1), y, x


@cuda.jit(**CUDA_KERNEL)
def _mean_2x2(src, dst):
    height, width, channels = src.shape
    oh, ow = dst.shape[0], dst.shape[1]
    for i in range(cuda.grid(1), oh * ow, cuda.gridsize(1)):
        ya, yb, xa, xb, y, x = _corners(i, ow, height, width)
        for c in range(channels):
            s = (
                np.uint32(src[ya, xa, c])
                + np.uint32(src[ya, xb, c])
                + np.uint32(src[yb, xa, c])
                + np.uint32(src[yb, xb, c])
                + np.uint32(2)
            )
            dst[y, x, c] = s >> np.uint32(2)


@cuda.jit(**CUDA_KERNEL)
def _rgba8_premultiplied(src, dst, premul, unpremul):
    height, width, _ = src.shape
    oh, ow = dst.shape[0], dst.shape[1]
    for i in range(cuda.grid(1), oh * ow, cuda.gridsize(1)):
        ya, yb, xa, xb, y, x = _corners(i, ow, height, width)
        a0 = np.int64(src[ya, xa, 3])
        a1 = np.int64(src[ya, xb, 3])
        a2 = np.int64(src[yb, xa, 3])
        a3 = np.int64(src[yb, xb, 3])
        alpha = (a0 + a1 + a2 + a3 + 2) >> 2
        for c in range(3):
            s = (
                np.int64(premul[a0, src[ya, xa, c]])
                + np.int64(premul[a1, src[ya, xb, c]])
                + np.int64(premul[a2, src[yb, xa, c]])
                + np.int64(premul[a3, src[yb, xb, c]])
                + 2
            )
            dst[y, x, c] = unpremul[alpha, s >> 2]
        dst[y, x, 3] = alpha


@cuda.jit(**CUDA_KERNEL)
def _rgba_weighted(src, dst):
    height, width, _ = src.shape
    oh, ow = dst.shape[0], dst.shape[1]
    for i in range(cuda.grid(1), oh * ow, cuda.gridsize(1)):
        ya, yb, xa, xb, y, x = _corners(i, ow, height, width)
        a0 = np.int64(src[ya, xa, 3])
        a1 = np.int64(src[ya, xb, 3])
        a2 = np.int64(src[yb, xa, 3])
        a3 = np.int64(src[yb, xb, 3])
        total = a0 + a1 + a2 + a3
        alpha = (total + 2) >> 2
        for c in range(3):
            if alpha == 0:
                dst[y, x, c] = 0
                continue
            s = (
                np.int64(src[ya, xa, c]) * a0
                + np.int64(src[ya, xb, c]) * a1
                + np.int64(src[yb, xa, c]) * a2
                + np.int64(src[yb, xb, c]) * a3
            )
            dst[y, x, c] = (2 * s + total) // (2 * total)
        dst[y, x, 3] = alpha


@cuda.jit(**CUDA_DEVICE)
def _encode(total, weight, thresholds):
    """The number of thresholds t with ``t * weight <= total`` (as the CPU's ``_encode``)."""
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


@cuda.jit(**CUDA_KERNEL)
def _gamma_mean(src, dst, linear, thresholds):
    height, width, channels = src.shape
    oh, ow = dst.shape[0], dst.shape[1]
    for i in range(cuda.grid(1), oh * ow, cuda.gridsize(1)):
        ya, yb, xa, xb, y, x = _corners(i, ow, height, width)
        for c in range(channels):
            s = (
                linear[src[ya, xa, c]]
                + linear[src[ya, xb, c]]
                + linear[src[yb, xa, c]]
                + linear[src[yb, xb, c]]
            )
            dst[y, x, c] = _encode(s, 4, thresholds)


@cuda.jit(**CUDA_KERNEL)
def _gamma_rgba(src, dst, linear, thresholds):
    height, width, _ = src.shape
    oh, ow = dst.shape[0], dst.shape[1]
    for i in range(cuda.grid(1), oh * ow, cuda.gridsize(1)):
        ya, yb, xa, xb, y, x = _corners(i, ow, height, width)
        a0 = np.int64(src[ya, xa, 3])
        a1 = np.int64(src[ya, xb, 3])
        a2 = np.int64(src[yb, xa, 3])
        a3 = np.int64(src[yb, xb, 3])
        total = a0 + a1 + a2 + a3
        alpha = (total + 2) >> 2
        for c in range(3):
            if alpha == 0:
                dst[y, x, c] = 0
                continue
            s = (
                linear[src[ya, xa, c]] * a0
                + linear[src[ya, xb, c]] * a1
                + linear[src[yb, xa, c]] * a2
                + linear[src[yb, xb, c]] * a3
            )
            dst[y, x, c] = _encode(s, total, thresholds)
        dst[y, x, 3] = alpha


# -- colour kernels -----------------------------------------------------------------------------

_SB = color._SCALEBITS
_HALF1 = color._ONE_HALF


@cuda.jit(**CUDA_KERNEL)
def _rgb_to_ycbcr(src, out, center, maxval):
    h, w = src.shape[0], src.shape[1]
    offset = np.int64(center) << _SB
    for i in range(cuda.grid(1), h * w, cuda.gridsize(1)):
        y = i // w
        x = i - y * w
        r = np.int64(src[y, x, 0])
        g = np.int64(src[y, x, 1])
        b = np.int64(src[y, x, 2])
        yy = (color._Y_R * r + color._Y_G * g + color._Y_B * b + _HALF1) >> _SB
        cb = (-color._CB_R * r - color._CB_G * g + color._HALF * b + offset + _HALF1 - 1) >> _SB
        cr = (color._HALF * r - color._CR_G * g - color._CR_B * b + offset + _HALF1 - 1) >> _SB
        out[y, x, 0] = min(max(yy, 0), maxval)
        out[y, x, 1] = min(max(cb, 0), maxval)
        out[y, x, 2] = min(max(cr, 0), maxval)


@cuda.jit(**CUDA_KERNEL)
def _ycbcr_to_rgb(src, out, center, maxval):
    h, w = src.shape[0], src.shape[1]
    for i in range(cuda.grid(1), h * w, cuda.gridsize(1)):
        y = i // w
        x = i - y * w
        yy = np.int64(src[y, x, 0])
        cb = np.int64(src[y, x, 1]) - center
        cr = np.int64(src[y, x, 2]) - center
        r = yy + ((color._R_CR * cr + _HALF1) >> _SB)
        g = yy + ((-color._G_CB * cb + _HALF1 - color._G_CR * cr) >> _SB)
        b = yy + ((color._B_CB * cb + _HALF1) >> _SB)
        out[y, x, 0] = min(max(r, 0), maxval)
        out[y, x, 1] = min(max(g, 0), maxval)
        out[y, x, 2] = min(max(b, 0), maxval)


# -- public -------------------------------------------------------------------------------------

_TABLES: dict[str, Any] = {}  # device copies of the lookup tables, made once per process


def _device_table(name: str, make: Any) -> Any:
    if name not in _TABLES:
        _TABLES[name] = cuda.to_device(np.ascontiguousarray(make()))
    return _TABLES[name]


def _launch(n: int) -> tuple[int, int]:
    # The simulator runs each thread as a Python thread: a warp's worth keeps tests fast (and
    # makes the grid-stride loops do several rounds); the results do not depend on it.
    threads = 32 if cuda_device.simulated() else CUDA_IMAGE_THREADS
    return cuda_device.grid_size(max(1, -(-n // threads))), threads


def _device_view(array: Any) -> Any:
    """A Numba device array over a device array (Numba's, or any ``__cuda_array_interface__``
    array such as CuPy's); the simulator's own fake device arrays as they are."""
    return array if cuda_device.simulated() else cuda.as_cuda_array(array)


def _on_device(image: Any, what: str) -> tuple[Any, bool]:
    """``(device array, was it one already)`` of a NumPy array (copied over) or a C-contiguous
    device array (used in place)."""
    if isinstance(image, np.ndarray):
        return cuda.to_device(np.ascontiguousarray(image)), False
    arr = _device_view(image)
    if not arr.is_c_contiguous():
        raise ValueError(f"{what}: the device array must be C-contiguous")
    return arr, True


def _check(shape: tuple[int, ...], dtype: Any, channels: tuple[int, ...], what: str) -> None:
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise ValueError(f"{what}: expected uint8 or uint16 pixels, got {dtype}; convert first")
    if len(shape) != 3 or shape[2] not in channels:
        raise ValueError(
            f"{what}: expected shape (height, width, {' or '.join(map(str, channels))}), "
            f"got {shape}"
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{what}: the image is empty: {shape[1]}x{shape[0]}")


def downsample2x(image: Any, gamma_correct: bool = False, out: Any = None) -> Any:
    """:func:`tessera.kernels.imaging.downsample.downsample2x` on the device, byte-equal to it.

    ``image`` is an (H, W, C) uint8/uint16 NumPy or CUDA array, C in 1, 3, 4. Returns a NumPy
    array for a NumPy input, a device array for a device input (or ``out``, a C-contiguous
    device array of shape (ceil(H/2), ceil(W/2), C) and the same dtype, when given). Raises
    ``ValueError`` naming what is wrong with the input, ``NoDeviceError`` without a device.
    """
    cuda_device.require()
    _check(tuple(image.shape), image.dtype, (1, 3, 4), "downsample2x")
    src, device_in = _on_device(image, "downsample2x")
    height, width, channels = src.shape
    shape = (*output_shape(height, width), channels)
    if out is not None:
        contiguous = (
            out.flags.c_contiguous
            if isinstance(out, np.ndarray)
            else _device_view(out).is_c_contiguous()
        )
        if tuple(out.shape) != shape or out.dtype != src.dtype or not contiguous:
            raise ValueError(
                f"out must be C-contiguous {src.dtype} of shape {shape}, got {out.dtype} "
                f"{tuple(out.shape)}"
            )
    if out is not None and not isinstance(out, np.ndarray):
        dst = _device_view(out)
    else:
        dst = cuda.device_array(shape, dtype=src.dtype)
    launch = _launch(shape[0] * shape[1])
    top = 255 if src.dtype == np.uint8 else 65535
    if gamma_correct:
        linear = _device_table(f"linear{top}", lambda: gamma_tables(top)[0])
        thresholds = _device_table(f"thresholds{top}", lambda: gamma_tables(top)[1])
        if channels == 4:
            _gamma_rgba[launch](src, dst, linear, thresholds)
        else:
            _gamma_mean[launch](src, dst, linear, thresholds)
    elif channels == 4 and top == 255:
        premul = _device_table("premul", lambda: premultiply_tables()[0])
        unpremul = _device_table("unpremul", lambda: premultiply_tables()[1])
        _rgba8_premultiplied[launch](src, dst, premul, unpremul)
    elif channels == 4:
        _rgba_weighted[launch](src, dst)
    else:
        _mean_2x2[launch](src, dst)
    if out is not None:
        if isinstance(out, np.ndarray):
            dst.copy_to_host(out)
        return out
    return dst if device_in else dst.copy_to_host()


def _convert(image: Any, channels: tuple[int, ...], what: str, kernel: Any) -> Any:
    cuda_device.require()
    _check(tuple(image.shape), image.dtype, channels, what)
    src, device_in = _on_device(image, what)
    maxval = int(np.iinfo(src.dtype).max)
    dst = cuda.device_array((src.shape[0], src.shape[1], 3), dtype=src.dtype)
    kernel[_launch(src.shape[0] * src.shape[1])](src, dst, (maxval + 1) // 2, maxval)
    return dst if device_in else dst.copy_to_host()


def rgb_to_ycbcr(image: Any) -> Any:
    """:func:`tessera.kernels.imaging.color.rgb_to_ycbcr` on the device (RGB or RGBA in, alpha
    ignored), byte-equal to it; NumPy in, NumPy out; device in, device out."""
    return _convert(image, (3, 4), "rgb_to_ycbcr", _rgb_to_ycbcr)


def ycbcr_to_rgb(image: Any) -> Any:
    """:func:`tessera.kernels.imaging.color.ycbcr_to_rgb` on the device, byte-equal to it."""
    return _convert(image, (3,), "ycbcr_to_rgb", _ycbcr_to_rgb)
