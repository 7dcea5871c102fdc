"""tessera.kernels.imaging.png against libpng (imagecodecs) and Pillow: the same pixels for every
filter type and pixel type it takes, and ``None`` (the slower way) for everything else."""

from __future__ import annotations

import io
import struct
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from tessera.kernels.imaging import codec, png
from tests.natural import natural

COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    value = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", value)


def _filtered(pixels: np.ndarray, kinds: list[int]) -> bytes:
    """The rows of ``pixels`` (h, w, c) uint8 filtered with ``kinds[y]`` each (PNG section 9),
    computed here in NumPy: the encoder's side, which the decoders must undo."""
    h, w, c = pixels.shape
    img = pixels.reshape(h, w * c).astype(np.int32)
    out = bytearray()
    for y in range(h):
        row = img[y]
        above = img[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(c, np.int32), row[:-c]])
        upper_left = np.concatenate([np.zeros(c, np.int32), above[:-c]])
        kind = kinds[y]
        if kind == 0:
            pred = np.zeros_like(row)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = above
        elif kind == 3:
            pred = (left + above) >> 1
        else:
            p = left + above - upper_left
            pa, pb, pc = np.abs(p - left), np.abs(p - above), np.abs(p - upper_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left))
        out.append(kind)
        out += ((row - pred) & 0xFF).astype(np.uint8).tobytes()
    return bytes(out)


def _png(
    pixels: np.ndarray,
    kinds: list[int],
    *,
    idat_parts: int = 3,
    depth: int = 8,
    interlace: int = 0,
    extra: tuple[bytes, ...] = (),
    stream: bytes | None = None,
) -> bytes:
    h, w, c = pixels.shape
    header = struct.pack(">IIBBBBB", w, h, depth, COLOUR_TYPES[c], 0, 0, interlace)
    z = zlib.compress(_filtered(pixels, kinds), 6) if stream is None else stream
    cut = [len(z) * i // idat_parts for i in range(idat_parts + 1)]
    body = b"".join(_chunk(b"IDAT", z[a:b]) for a, b in zip(cut, cut[1:], strict=False))
    return png.SIGNATURE + _chunk(b"IHDR", header) + b"".join(extra) + body + _chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("width", [1, 2, 37])
def test_every_filter_type_gives_libpngs_pixels(channels: int, width: int) -> None:
    rng = np.random.default_rng(channels * 100 + width)
    pixels = rng.integers(0, 256, size=(41, width, channels), dtype=np.uint8)
    kinds = [int(k) for k in rng.integers(0, 5, size=41)]
    kinds[1:6] = [4, 3, 2, 1, 0]
    for first in range(5):  # each type on the first row too (the zero row above it)
        kinds[0] = first
        data = _png(pixels, kinds)
        expected = imagecodecs.png_decode(data).reshape(pixels.shape)  # libpng
        assert np.array_equal(expected, pixels)  # the test's own encoder is right
        got = png.decode(data)
        assert got is not None and got.dtype == np.uint8 and got.flags.c_contiguous
        assert np.array_equal(got, pixels)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_files_written_by_pillow_give_pillows_pixels(mode: str) -> None:
    image = Image.fromarray(natural(203, 331, 4, seed=3)).convert(mode)
    for options in ({}, {"optimize": True}, {"compress_level": 1}):
        buf = io.BytesIO()
        image.save(buf, "PNG", **options)
        got = png.decode(buf.getvalue())
        assert got is not None
        assert np.array_equal(got.reshape(np.asarray(image).shape), np.asarray(image))


def test_ancillary_chunks_are_skipped() -> None:
    pixels = natural(30, 20, 3, seed=1)
    text = _chunk(b"tEXt", b"Comment\x00hello") + _chunk(b"gAMA", struct.pack(">I", 45455))
    got = png.decode(_png(pixels, [4] * 30, extra=(text,)))
    assert got is not None and np.array_equal(got, pixels)


def _broken() -> dict[str, bytes]:
    pixels = natural(24, 16, 3, seed=2)
    good = _png(pixels, [1] * 24, idat_parts=2)
    z = zlib.compress(_filtered(pixels, [1] * 24))
    first_idat = good.index(b"IDAT") - 4
    crc_at = first_idat + 8 + struct.unpack_from(">I", good, first_idat)[0]
    bad_filter = bytearray(_filtered(pixels, [1] * 24))
    bad_filter[(16 * 3 + 1) * 5] = 5  # row 5's filter byte
    idat = good[first_idat:].split(b"IEND")[0][:-4]
    return {
        "IDAT CRC-32": good[:crc_at] + b"\0\0\0\0" + good[crc_at + 4 :],
        "cut short": good[: len(good) // 2],
        "no IEND": good[: good.index(b"IEND") - 4],
        "16 bits": _png(np.repeat(pixels, 2, axis=1), [0] * 24, depth=16),
        "interlaced": _png(pixels, [0] * 24, interlace=1),
        "tRNS": _png(pixels, [0] * 24, extra=(_chunk(b"tRNS", b"\0\1\0\2\0\3"),)),
        "PLTE": _png(pixels, [0] * 24, extra=(_chunk(b"PLTE", bytes(range(12))),)),
        "unknown critical chunk": _png(pixels, [0] * 24, extra=(_chunk(b"ABCD", b"x"),)),
        "filter byte 5": _png(pixels, [1] * 24, stream=zlib.compress(bytes(bad_filter))),
        "stream too long": _png(pixels, [1] * 24, stream=zlib.compress(bytes(bad_filter) + b"x")),
        "stream too short": _png(pixels, [1] * 24, stream=z[:-40]),
        "Adler-32": _png(pixels, [1] * 24, stream=z[:-1] + bytes([z[-1] ^ 1])),
        "IDAT apart": good.replace(idat, _split_idat(idat)),
        "IHDR twice": good[:33] + good[8:33] + good[33:],
    }


def _split_idat(idat: bytes) -> bytes:
    """Two IDAT chunks with a text chunk between them."""
    (length,) = struct.unpack_from(">I", idat, 0)
    first = idat[: 12 + length]
    return first + _chunk(b"tEXt", b"a\x00b") + idat[12 + length :]


@pytest.mark.parametrize("case", list(_broken()))
def test_anything_else_is_left_to_the_slower_way(case: str) -> None:
    assert png.decode(_broken()[case]) is None


def test_a_broken_file_still_fails_as_before() -> None:
    """A truncated PNG meets Pillow's error in ``codec.decode``, as it did before this decoder."""
    buf = io.BytesIO()
    Image.fromarray(natural(64, 64, 3, seed=4)).save(buf, "PNG")
    with pytest.raises(OSError, match="[Tt]runcated|image file"):
        codec.decode(buf.getvalue()[:-200])
