"""Reading the pyramid's source image, region by region, through the engine's ``InputIO``.

Formats, told apart by their first bytes (a URL that is not a file is tried as a Zarr array; a
folder that is not one is refused, saying what was expected and naming the images in it):

* TIFF and BigTIFF, OME-TIFF and ImageJ hyperstacks included (:mod:`.source_tiff`): tiled or in
  strips, any compression tifffile and imagecodecs decode; only the tiles or strips that meet
  the region are read (in as few reads as possible) and decoded (in threads, outside the GIL).
  ``series`` picks the image of a multi-series file (default the first); a pyramidal file is
  read from its full-resolution level. Channels and z-planes may be pages;
* PNG and JPEG: these formats have no random access, so the first ``read`` decodes the whole
  image (imagecodecs: libpng and libjpeg-turbo) and later reads slice it. For images of more than
  a few hundred megapixels, convert to a tiled TIFF first (``vips tiffsave in.png out.tif
  --tile --bigtiff``);
* a Zarr array (v2 or v3; an OME-Zarr image group means its first, full-resolution dataset; a
  bioformats2raw folder its image ``series``) (:mod:`.source_zarr`).

Pixels must be uint8 or uint16: grey, RGB or RGBA, or 1 to 64 independent channels (a
microscope's fluorescence channels: names, colours and pixel sizes come from OME metadata),
and may be a z-stack. Anything else raises ``SourceError`` naming the source, what it is and
how to convert it.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

from tessera.kernels.base import InputIO

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_CONVERT = "convert it to 8- or 16-bit L, RGB or RGBA first (e.g. `vips colourspace` or Pillow)"
MAX_CHANNELS = 64
PixelSize = tuple[float | None, float | None, float | None]  # (z, y, x) in micrometres


class SourceError(ValueError):
    """The source image cannot be used: missing, not an image, or an unsupported pixel type."""


@dataclass(frozen=True)
class ImageInfo:
    """What a source holds: its format, size in pixels, channels and dtype; ``depth``, its
    z-planes (1: a 2-D image). ``names`` and ``colors`` (``RRGGBB``) are set, one per channel,
    when the channels are independent measurements (a microscope's channels, averaged each on
    its own), and ``None`` for grey, RGB and RGBA (1, 3 or 4 channels, the 4th alpha).
    ``pixel_size`` is (z, y, x) in micrometres, each ``None`` where unknown, or ``None``."""

    format: str  # tiff | png | jpeg | zarr
    width: int
    height: int
    channels: int
    dtype: str  # uint8 | uint16
    depth: int = 1
    names: tuple[str, ...] | None = None
    colors: tuple[str, ...] | None = None
    pixel_size: PixelSize | None = None

    def describe(self) -> str:
        """``205x130 5-channel uint16 TIFF, 3 z-planes``."""
        if self.names is None:
            mode = {1: "grey", 3: "RGB", 4: "RGBA"}.get(self.channels, f"{self.channels}-channel")
        else:
            mode = f"{self.channels}-channel"
        text = f"{self.width}x{self.height} {mode} {self.dtype} {self.format.upper()}"
        return text + (f", {self.depth} z-planes" if self.depth > 1 else "")


Progress = Callable[[np.ndarray, int], None]


class Source(Protocol):
    """An opened source image."""

    info: ImageInfo

    def read(
        self,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        progress: Progress | None = None,
        z: int = 0,
    ) -> np.ndarray:
        """Rows ``y0:y1``, columns ``x0:x1`` of z-plane ``z`` as a C-contiguous (h, w,
        channels) array. ``progress(out, n)``, when given, is called with the array being
        filled as soon as its first ``n`` rows are complete (n grows; the last call has n = y1 -
        y0), so that a caller can work on them while the rest is read."""

    def close(self) -> None:
        """Release the file handles."""


def check_pixels(
    url: str, what: str, dtype: np.dtype[Any] | str, channels: int, independent: bool = False
) -> str:
    """The dtype name, or ``SourceError`` for an unsupported pixel type: not uint8/uint16, or
    a channel count other than 1, 3, 4 (grey, RGB, RGBA) or, for ``independent`` channels,
    outside 1..64."""
    name = np.dtype(dtype).name
    if name not in ("uint8", "uint16") and independent:
        raise SourceError(
            f"{url}: {what} has {channels} channel{'s' if channels > 1 else ''} of {name} "
            f"pixels; tessera reads uint8 or uint16: scale the values into 0..65535 and write "
            f"them as uint16 first (e.g. numpy's astype('uint16'))"
        )
    if name not in ("uint8", "uint16"):
        raise SourceError(
            f"{url}: {what} has {name} pixels; tessera reads uint8 or uint16: {_CONVERT}"
        )
    if channels > MAX_CHANNELS:
        raise SourceError(
            f"{url}: {what} has {channels} channels; tessera reads 1 to {MAX_CHANNELS}: write "
            f"the channels to several files of at most {MAX_CHANNELS} and make a pyramid of each"
        )
    if not independent and channels not in (1, 3, 4):
        raise SourceError(f"{url}: {what} has {channels} channels; expected 1, 3 or 4: {_CONVERT}")
    return name


def channel_names(count: int, given: tuple[str | None, ...] | None) -> tuple[str, ...]:
    """``given`` (one per channel) with ``Channel <i>`` where a name is missing."""
    names = list(given) if given is not None and len(given) == count else [None] * count
    return tuple(n if n else f"Channel {i}" for i, n in enumerate(names))


def channel_colors(count: int, given: tuple[str | None, ...] | None) -> tuple[str, ...]:
    """``given`` (``RRGGBB``, one per channel) with a default colour where one is missing."""
    from tessera.kernels.imaging.omexml import default_color

    colors = list(given) if given is not None and len(given) == count else [None] * count
    return tuple(c if c else default_color(i, count) for i, c in enumerate(colors))


def known_size(size: PixelSize | None) -> PixelSize | None:
    """``size`` with y and x made equal when only one is known (square pixels, as viewers
    assume), or ``None`` when nothing is known."""
    if size is None:
        return None
    z, y, x = size
    y, x = (y if y is not None else x), (x if x is not None else y)
    return None if z is None and y is None and x is None else (z, y, x)


def open_source(url: str, io: InputIO, threads: int = 1, series: int = 0) -> Source:
    """Open ``url`` (a path, file:// or s3:// URL) and read its header. ``threads`` decode
    compressed TIFF tiles in parallel; ``series`` picks the image of a multi-series TIFF or
    bioformats2raw Zarr (0, the first, for files that have one). Raises ``SourceError``
    naming the URL."""
    from tessera.kernels.imaging.source_tiff import TiffSource
    from tessera.kernels.imaging.source_zarr import ZarrSource

    try:
        fh = io.open_input(url)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        try:
            return ZarrSource(url, io, series)
        except FileNotFoundError:
            inside = _folder_listing(url, io)
            if isinstance(exc, IsADirectoryError) or inside:
                raise SourceError(_not_an_image_folder(url, inside or [])) from None
            raise SourceError(f"{url}: not found ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise SourceError(f"{url}: cannot open: {exc}") from None
    try:
        head = fh.read(16)
        fh.seek(0)
        if head[:4] in _TIFF_MAGIC:
            return TiffSource(url, fh, threads, series)
        if series:
            raise SourceError(f"{url}: series = {series}, but a PNG or JPEG holds one image")
        if head[:8] == _PNG_MAGIC:
            return PillowSource(url, fh, "png")
        if head[:3] == _JPEG_MAGIC:
            return PillowSource(url, fh, "jpeg")
    except BaseException:
        fh.close()
        raise
    fh.close()
    kind = "an empty file" if not head else f"first bytes {head[:8]!r}"
    raise SourceError(f"{url}: not a TIFF, PNG or JPEG image nor a Zarr array ({kind})")


_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def _folder_listing(url: str, io: InputIO) -> list[str] | None:
    """What is directly inside ``url`` when it is a folder (or an S3 prefix) with something in
    it; ``None`` when nothing is listed there (or it cannot be listed)."""
    try:
        found = io.list_inputs(f"{url.rstrip('/')}/*")
    except Exception:  # a URL with glob characters, or no listing: say "not found" instead
        return None
    return found or None


def _not_an_image_folder(url: str, inside: list[str]) -> str:
    """The message for a source that is a folder but not a Zarr array: what was expected, and
    the images in it, if any (the pyramid of one of them may be what was meant)."""
    # the files as the job file would name them: the folder as given, then the file's name
    images = [f"{url.rstrip('/')}/{u.rsplit('/', 1)[-1]}" for u in inside]
    images = [u for u in images if u.lower().endswith(_IMAGE_SUFFIXES)]
    message = (
        f"{url} is a folder, not an image file nor a Zarr array (Zarr finds no array or group "
        f"metadata in it); expected the path or URL of one TIFF, PNG or JPEG file, or of a Zarr "
        f"array's folder"
    )
    if len(images) == 1:
        message += f". It holds one image: source = {json.dumps(images[0])} makes its pyramid"
    elif images:
        message += (
            f". It holds {len(images)} images: give one, e.g. source = {json.dumps(images[0])} "
            f"(imaging.transcode converts many files)"
        )
    return message


def probe(url: str, io: InputIO) -> ImageInfo:
    """The size and pixel type of ``url`` (reads the header only)."""
    source = open_source(url, io)
    try:
        return source.info
    finally:
        source.close()


# -- PNG and JPEG -----------------------------------------------------------------------------


def _png_header(url: str, head: bytes) -> tuple[int, int, int, str]:
    """(width, height, channels, dtype) from a PNG's IHDR chunk."""
    if len(head) < 29 or head[12:16] != b"IHDR":
        raise SourceError(f"{url}: a PNG without an IHDR header")
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    kinds = {0: ("grey", 1), 2: ("RGB", 3), 3: ("palette", 0), 4: ("grey+alpha", 2), 6: ("RGBA", 4)}
    name, channels = kinds.get(color, (f"colour type {color}", 0))
    if depth not in (8, 16) or channels not in (1, 3, 4):
        raise SourceError(f"{url}: the PNG is {depth}-bit {name}: {_CONVERT}")
    return width, height, channels, "uint8" if depth == 8 else "uint16"


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(url: str, fh: BinaryIO) -> tuple[int, int, int, str]:
    """(width, height, channels, dtype) from a JPEG's frame header (read marker by marker, so a
    huge image is never decoded, nor refused as a decompression bomb as Pillow would)."""
    if fh.read(2) != b"\xff\xd8":
        raise SourceError(f"{url}: not a JPEG (no start-of-image marker)")
    while True:
        marker = fh.read(2)
        while marker[:1] == b"\xff" and marker[1:2] == b"\xff":  # fill bytes
            marker = marker[1:] + fh.read(1)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise SourceError(f"{url}: a JPEG without a frame header (truncated or corrupt)")
        if marker[1] in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            continue
        size = int.from_bytes(fh.read(2), "big")
        if marker[1] in _SOF:
            body = fh.read(6)
            if len(body) < 6:
                break
            bits, height, width, components = struct.unpack(">BHHB", body)
            if bits != 8 or components not in (1, 3):
                kind = {4: "CMYK"}.get(components, f"{components}-component")
                raise SourceError(f"{url}: the JPEG is {bits}-bit {kind}: {_CONVERT}")
            return width, height, components, "uint8"
        if marker[1] == 0xDA or size < 2:  # scan data before any frame header
            break
        fh.seek(size - 2, 1)
    raise SourceError(f"{url}: a JPEG without a frame header (truncated or corrupt)")


class PillowSource:
    """A PNG or JPEG: the header at once, the whole image at the first ``read`` (decoded by
    imagecodecs: libpng keeps 16-bit colour, which Pillow reduces to 8 bits)."""

    def __init__(self, url: str, fh: BinaryIO, fmt: str) -> None:
        self.url = url
        self._fh: BinaryIO | None = fh
        self._pixels: np.ndarray | None = None
        self._lock = threading.Lock()
        if fmt == "png":
            width, height, channels, dtype = _png_header(url, fh.read(64))
        else:
            width, height, channels, dtype = _jpeg_header(url, fh)
        fh.seek(0)
        self.info = ImageInfo(fmt, width, height, channels, dtype)

    def _decode(self) -> np.ndarray:
        import imagecodecs

        with self._lock:
            if self._pixels is None:
                assert self._fh is not None
                data = self._fh.read()
                decode: Callable[..., np.ndarray] = (
                    imagecodecs.png_decode
                    if self.info.format == "png"
                    else imagecodecs.jpeg8_decode
                )
                try:
                    pixels = decode(data)
                except Exception as exc:  # imagecodecs raises its own error classes
                    raise SourceError(
                        f"{self.url}: cannot decode the {self.info.format.upper()}: {exc}"
                    ) from None
                pixels = pixels.reshape(self.info.height, self.info.width, self.info.channels)
                self._pixels = pixels
                self._fh.close()
                self._fh = None
            return self._pixels

    def read(
        self,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        progress: Progress | None = None,
        z: int = 0,
    ) -> np.ndarray:
        if z != 0:
            raise IndexError(f"{self.url}: z-plane {z} of a 2-D image")
        out = np.ascontiguousarray(self._decode()[y0:y1, x0:x1])
        if progress is not None:
            progress(out, y1 - y0)
        return out

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._pixels = None
