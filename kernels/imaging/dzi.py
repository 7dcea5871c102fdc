"""Deep Zoom (DZI) output, laid out as ``vips dzsave`` lays it out.

``dzi/image.dzi`` is the XML descriptor (the same bytes vips writes), the tiles are
``dzi/image_files/<level>/<col>_<row>.<ext>``, level 0 is 1x1 and the last level is full size.
With ``container = "zip"`` everything goes into ``dzi/image.zip`` under the names vips uses in
its zips: ``image/image.dzi`` and ``image/image_files/<level>/<col>_<row>.<ext>``, stored
uncompressed (tiles are compressed already), entries in level, row, column order with fixed
timestamps, so the archive's bytes do not depend on how the job was sharded. (vips also writes
``vips-properties.xml``; tessera does not.)

Tiles are 8-bit for JPEG and WebP (uint16 is scaled, ``round(v / 257)``); JPEG has no alpha, so
RGBA is flattened onto black as vips does (``c * a / 255``). PNG keeps the source's depth and
channels. JPEG goes straight to libjpeg-turbo through imagecodecs (the same bytes as Pillow's
``save(..., quality=q)``, 1.4x faster: no copy into a PIL image), PNG and WebP through Pillow
(zlib, libwebp), with vips's defaults otherwise: JPEG 4:2:0 below quality 90 and no
optimisation passes, PNG compression 6, WebP effort 4.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tessera.kernels.imaging.downsample import premultiply_tables

EXTENSIONS = {"jpeg": "jpeg", "png": "png", "webp": "webp"}
NAME = "image"


def crc32(data: Any) -> int:
    """zlib's CRC-32 of ``data`` (bytes or a C-contiguous array), by zlib-ng through
    imagecodecs: the same values, 32 GB/s where zlib's measured 4 GB/s (a 256 x 256 RGB
    tile); zlib's own where imagecodecs was built without zlib-ng."""
    return _CRC32(data)


def _crc32_function() -> Callable[[Any], int]:
    import imagecodecs

    found = getattr(imagecodecs, "zlibng_crc32", None)
    return found if callable(found) else zlib.crc32


_CRC32 = _crc32_function()


def descriptor(width: int, height: int, tile: int, overlap: int, fmt: str) -> str:
    """The ``.dzi`` XML, byte for byte as ``vips dzsave`` writes it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"\n'
        f'  Format="{EXTENSIONS[fmt]}"\n'
        f'  Overlap="{overlap}"\n'
        f'  TileSize="{tile}"\n'
        "  >\n"
        "  <Size \n"
        f'    Height="{height}"\n'
        f'    Width="{width}"\n'
        "  />\n"
        "</Image>\n"
    )


def tile_name(dzi_level: int, col: int, row: int, fmt: str) -> str:
    """``<level>/<col>_<row>.<ext>``, relative to ``image_files/``."""
    return f"{dzi_level}/{col}_{row}.{EXTENSIONS[fmt]}"


def directory_path(name: str) -> str:
    """Store path of a tile (``name`` from ``tile_name``) in the directory container."""
    return f"dzi/{NAME}_files/{name}"


def zip_member(name: str) -> str:
    """Member name of a tile in the zip container (vips's layout)."""
    return f"{NAME}/{NAME}_files/{name}"


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 with round(v / 257); uint8 unchanged."""
    if pixels.dtype == np.uint8:
        return pixels
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def flatten_alpha(pixels: np.ndarray) -> np.ndarray:
    """RGBA uint8 -> RGB on black: ``c * a / 255`` rounded (Pillow's premultiplication)."""
    premul, _ = premultiply_tables()
    alpha = pixels[..., 3]
    return premul[alpha[..., None], pixels[..., :3]]


def encode_tile(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode one (h, w, C) tile as ``fmt`` (jpeg, png or webp) with ``quality`` (JPEG, WebP)."""
    from PIL import Image

    channels = pixels.shape[2]
    if fmt == "png" and pixels.dtype == np.uint16:
        if channels == 1:
            image = Image.fromarray(np.ascontiguousarray(pixels[..., 0]))  # I;16
        else:
            import imagecodecs  # Pillow cannot write 16-bit colour PNG

            return bytes(imagecodecs.png_encode(np.ascontiguousarray(pixels), level=6))
    else:
        tile = to_8bit(pixels)
        if fmt == "jpeg" and channels == 4:
            tile = flatten_alpha(tile)
        tile = np.ascontiguousarray(tile[..., 0] if tile.shape[2] == 1 else tile)
        if fmt == "jpeg":
            import imagecodecs

            return bytes(imagecodecs.jpeg8_encode(tile, level=quality))
        image = Image.fromarray(tile)
    buf = io.BytesIO()
    if fmt == "webp":
        image.save(buf, "WEBP", quality=quality, method=4)
    else:
        image.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory file header
_END = struct.Struct("<IHHHHIIH")  # end of central directory
_END64 = struct.Struct("<IQHHIIQQQQ")  # ZIP64 end of central directory
_LOCATOR64 = struct.Struct("<IIQI")  # ZIP64 end of central directory locator
_DOS_DATE = (1 << 5) | 1  # 1980-01-01, the earliest date a zip entry can carry; time 00:00:00
_LIMIT, _MAX32, _MAX16 = (1 << 31) - 1, 0xFFFFFFFF, 0xFFFF  # zipfile.ZIP64_LIMIT and field maxima


def build_zip(members: Iterable[tuple[str, bytes | memoryview]]) -> bytes:
    """A zip archive of ``(name, data)`` members, stored (tiles are compressed already), in the
    given order, dated 1980-01-01, mode 0644: the same members always give the same bytes.

    The bytes are those Python's ``zipfile`` writes for such entries (tested), with ZIP64
    records when there are more than 65,535 members or the archive passes 2 GiB; written here
    directly because ``zipfile`` spends 15 us of Python on each member (a third of the final
    step of a pyramid of 8192^2 pixels)."""
    return b"".join(zip_pieces(members))


def zip_pieces(members: Iterable[tuple[str, bytes | memoryview]]) -> list[bytes | memoryview]:
    """``build_zip``'s bytes as the pieces that make them, in order, the members' data among
    them as given: a writer can write them one after another without joining them first."""
    parts: list[bytes | memoryview] = []
    central: list[bytes] = []
    offset = 0
    count = 0
    for name, data in members:
        encoded = name.encode("ascii")  # tile names are ASCII; zipfile flags others 0x800
        crc = crc32(data)
        size = len(data)
        if size > _LIMIT:
            raise ValueError(f"zip member {name} is {size} bytes; tiles must be under 2 GiB")
        header = _LOCAL.pack(0x04034B50, 20, 0, 0, 0, _DOS_DATE, crc, size, size, len(encoded), 0)
        parts += (header, encoded, data)
        extra = b"" if offset <= _LIMIT else struct.pack("<HHQ", 1, 8, offset)
        version = 20 if not extra else 45
        central.append(
            _CENTRAL.pack(0x02014B50, (3 << 8) | version, version, 0, 0, 0, _DOS_DATE, crc, size,
                          size, len(encoded), len(extra), 0, 0, 0, 0o644 << 16,
                          offset if offset <= _LIMIT else _MAX32)
            + encoded
            + extra
        )  # fmt: skip
        offset += len(header) + len(encoded) + size
        count += 1
    directory = b"".join(central)
    tail = []
    if count > _MAX16 or offset > _LIMIT or len(directory) > _LIMIT:
        end64 = offset + len(directory)
        tail.append(_END64.pack(0x06064B50, 44, 45, 45, 0, 0, count, count, len(directory), offset))
        tail.append(_LOCATOR64.pack(0x07064B50, 0, end64, 1))
    tail.append(
        _END.pack(0x06054B50, 0, 0, min(count, _MAX16), min(count, _MAX16),
                  min(len(directory), _MAX32), min(offset, _MAX32), 0)
    )  # fmt: skip
    return [*parts, directory, *tail]


def pack(members: Iterable[tuple[str, bytes]]) -> bytes:
    """One shard's tiles for the zip container, cheap to write and to read back: an 8-byte
    big-endian length, a JSON list of ``[name, size]`` and the tiles' bytes in that order."""
    members = list(members)
    index = json.dumps([[name, len(data)] for name, data in members]).encode()
    return b"".join([len(index).to_bytes(8, "big"), index, *(data for _, data in members)])


def unpack(blob: bytes) -> dict[str, bytes | memoryview]:
    """The tiles of a ``pack`` blob by name: views into ``blob``, not copies."""
    view = memoryview(blob)
    size = int.from_bytes(view[:8], "big")
    offset = 8 + size
    out: dict[str, bytes | memoryview] = {}
    for name, length in json.loads(bytes(view[8:offset])):
        out[name] = view[offset : offset + length]
        offset += length
    if offset != len(blob):
        raise ValueError(f"a DZI part of {len(blob)} bytes whose index covers {offset}")
    return out


def sort_key(name: str) -> tuple[int, int, int]:
    """Order of tiles in the zip: level, then row, then column (``name`` from ``tile_name``)."""
    level, rest = name.split("/", 1)
    col, row = rest.rsplit(".", 1)[0].split("_")
    return int(level), int(row), int(col)
