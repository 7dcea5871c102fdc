"""The pixels of plain 8-bit PNGs: inflated by libdeflate, unfiltered by Numba.

A PNG's pixels are its IDAT chunks joined, one zlib stream of filtered rows (a filter byte, then
the row's bytes), and the filters undone in row order (PNG specification, section 9). libpng
inflates with zlib, about 17 ms of a 1536 x 1024 RGB frame's 19; libdeflate (through
imagecodecs, which calls it only when the output size is known, as it is here) inflates the same
stream in 10, and the unfiltering below takes about 1 (Up rows, most of a photograph's,
vectorise). The pixels are the same bytes as libpng's (tests/test_png.py: every filter type on
rows the test filters itself, and files written by Pillow).

Only what libpng would give as is goes this way: 8 bits per sample, grey, grey and alpha, RGB
or RGBA, not interlaced, with no palette, no ``tRNS`` and no critical chunk PNG does not define.
Anything else gives ``None``: IHDR or an IDAT chunk whose CRC-32 is wrong, IHDR not first or
twice, IDAT chunks apart, a zlib stream that is short, long or fails its Adler-32, a filter byte
above 4, a file cut short.
The caller then decodes the file the slower way, whose error names the problem. Ancillary
chunks (gAMA, iCCP, text...) do not change the pixels libpng gives, and are skipped.
"""

from __future__ import annotations

import struct

import imagecodecs
import numpy as np
from numba import njit

from tessera.kernels.config import NJIT
from tessera.kernels.imaging.dzi import crc32

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BYTES_PER_PIXEL = {0: 1, 4: 2, 2: 3, 6: 4}  # colour type -> samples of 8 bits
AVAILABLE = bool(getattr(getattr(imagecodecs, "DEFLATE", None), "available", False))


def decode(data: bytes) -> np.ndarray | None:
    """``data``'s pixels as a C-contiguous (height, width, channels) uint8 array, or ``None``
    when the file is not a plain 8-bit PNG that is whole and intact (see the module
    docstring)."""
    if not AVAILABLE or not data.startswith(SIGNATURE):
        return None
    header = _header(data)
    if header is None:
        return None
    width, height, bpp, idat = header
    stride = width * bpp
    raw = np.empty(height * (stride + 1), dtype=np.uint8)
    try:
        imagecodecs.deflate_decode(idat, out=raw)
    except imagecodecs.DeflateError:  # bad stream, wrong length or Adler-32
        return None
    pixels = np.empty((height, width, bpp), dtype=np.uint8)
    if unfilter(raw, height, stride, bpp, pixels.reshape(height, stride)) >= 0:
        return None
    return pixels


def _header(data: bytes) -> tuple[int, int, int, bytes] | None:
    """(width, height, bytes per pixel, the IDAT chunks' data joined) of a non-interlaced 8-bit
    grey/colour PNG whose chunks are whole and whose IHDR and IDAT CRC-32s match, else
    ``None``."""
    view = memoryview(data)
    pos, end = len(SIGNATURE), len(data)
    width = height = bpp = 0
    idat: list[memoryview] = []
    idat_ended = False  # a chunk other than IDAT came after them: they must be consecutive
    while pos + 12 <= end:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        stop = pos + 8 + length
        if stop + 4 > end:
            return None  # truncated
        if kind in (b"IHDR", b"IDAT"):
            (stored,) = struct.unpack_from(">I", data, stop)
            if crc32(view[pos + 4 : stop]) != stored:
                return None
        if kind == b"IHDR":
            if length != 13 or pos != len(SIGNATURE):  # IHDR is the first chunk, and only once
                return None
            width, height, depth, colour, method, filtering, interlace = struct.unpack_from(
                ">IIBBBBB", data, pos + 8
            )
            if depth != 8 or method or filtering or interlace or colour not in _BYTES_PER_PIXEL:
                return None
            bpp = _BYTES_PER_PIXEL[colour]
        elif kind == b"IDAT":
            if idat_ended or not bpp:
                return None
            idat.append(view[pos + 8 : stop])
        elif kind == b"IEND":
            return (width, height, bpp, b"".join(idat)) if idat and width and height else None
        elif kind == b"tRNS" or not kind[0] & 0x20:  # transparency; PLTE or another critical
            return None
        idat_ended = idat_ended or (bool(idat) and kind != b"IDAT")
        pos = stop + 4
    return None  # no IEND: truncated


@njit(nogil=True, **NJIT)
def unfilter(raw, height, stride, bpp, out):  # pragma: no cover - compiled
    """Undo the rows' filters: ``raw`` holds ``height`` rows of a filter byte and ``stride``
    bytes, ``out`` (height, stride) gets the pixels' bytes. Returns -1, or the first row whose
    filter byte is not one of PNG's five.

    Every index in the loops is the loop's own variable over a slice (the byte to the left is
    the same index in the row's slice ``bpp`` bytes earlier), so Numba adds no handling of
    negative indices and LLVM vectorises Up (a tenth of the time of computed offsets) and
    None; Sub, Average and Paeth depend on the byte to the left, one pixel at a time."""
    for y in range(height):
        src = y * (stride + 1)
        kind = raw[src]
        line = raw[src + 1 : src + 1 + stride]
        row = out[y]
        up = out[y - 1] if y > 0 else out[y]  # not read on the first row
        cur, left, rest = row[bpp:], row[: stride - bpp], line[bpp:]
        if kind == 0 or (kind == 2 and y == 0):  # None, or Up from the zero row above
            row[:] = line
        elif kind == 1 or (kind == 4 and y == 0):  # Sub; Paeth from a zero row is Sub
            row[:bpp] = line[:bpp]
            for i in range(stride - bpp):
                cur[i] = np.uint8((rest[i] + left[i]) & 0xFF)
        elif kind == 2:  # Up
            for i in range(stride):
                row[i] = np.uint8((line[i] + up[i]) & 0xFF)
        elif kind == 3 and y == 0:  # Average of the left byte and a zero row
            row[:bpp] = line[:bpp]
            for i in range(stride - bpp):
                cur[i] = np.uint8((rest[i] + (left[i] >> 1)) & 0xFF)
        elif kind == 3:  # Average
            above = up[bpp:]
            for i in range(bpp):
                row[i] = np.uint8((line[i] + (up[i] >> 1)) & 0xFF)
            for i in range(stride - bpp):
                mean = (np.int32(left[i]) + np.int32(above[i])) >> 1
                cur[i] = np.uint8((rest[i] + mean) & 0xFF)
        elif kind == 4:  # Paeth
            above, corner = up[bpp:], up[: stride - bpp]
            for i in range(bpp):  # no left or upper-left byte: the byte above is nearest
                row[i] = np.uint8((line[i] + up[i]) & 0xFF)
            for i in range(stride - bpp):
                a, b, c = np.int32(left[i]), np.int32(above[i]), np.int32(corner[i])
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)  # |p - a|, ... p = a+b-c
                if pa <= pb and pa <= pc:
                    near = a
                elif pb <= pc:
                    near = b
                else:
                    near = c
                cur[i] = np.uint8((rest[i] + near) & 0xFF)
        else:
            return y
    return -1
