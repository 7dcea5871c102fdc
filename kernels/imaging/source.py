"""Reading the pyramid's source image, region by region, through the engine's ``InputIO``.

Formats, told apart by their first bytes (a URL that is not a file is tried as a Zarr array; a
folder that is not one is refused, saying what was expected and naming the images in it):

* TIFF and BigTIFF, tiled or in strips, any compression tifffile and imagecodecs decode: only the
  tiles or strips that meet the region are read (in as few reads as possible) and decoded (in
  threads, outside the GIL). The first image of the file is used (for pyramidal TIFFs, the
  full-resolution one);
* PNG and JPEG: these formats have no random access, so the first ``read`` decodes the whole
  image (imagecodecs: libpng and libjpeg-turbo) and later reads slice it. For images of more than
  a few hundred megapixels, convert to a tiled TIFF first (``vips tiffsave in.png out.tif
  --tile --bigtiff``);
* a Zarr array (v2 or v3; an OME-Zarr image group means its first, full-resolution dataset), with
  axes ``(y, x)``, ``(y, x, c)`` or ``(c, y, x)`` (from its dimension names when it has them,
  else ``c`` is the axis of length 1, 3 or 4 at either end).

Pixels must be uint8 or uint16, grey, RGB or RGBA. Anything else raises ``SourceError`` saying
what the image is and how to convert it.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

from tessera.kernels.base import InputIO

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_CONVERT = "convert it to 8- or 16-bit L, RGB or RGBA first (e.g. `vips colourspace` or Pillow)"


class SourceError(ValueError):
    """The source image cannot be used: missing, not an image, or an unsupported pixel type."""


@dataclass(frozen=True)
class ImageInfo:
    """What a source holds: its format, size in pixels, channels (1, 3, 4) and dtype."""

    format: str  # tiff | png | jpeg | zarr
    width: int
    height: int
    channels: int
    dtype: str  # uint8 | uint16

    def describe(self) -> str:
        mode = {1: "grey", 3: "RGB", 4: "RGBA"}.get(self.channels, f"{self.channels}-channel")
        return f"{self.width}x{self.height} {mode} {self.dtype} {self.format.upper()}"


Progress = Callable[[np.ndarray, int], None]


class Source(Protocol):
    """An opened source image."""

    info: ImageInfo

    def read(
        self, y0: int, y1: int, x0: int, x1: int, progress: Progress | None = None
    ) -> np.ndarray:
        """Rows ``y0:y1``, columns ``x0:x1`` as a C-contiguous (h, w, channels) array.
        ``progress(out, n)``, when given, is called with the array being filled as soon as its
        first ``n`` rows are complete (n grows; the last call has n = y1 - y0), so that a caller
        can work on them while the rest is read."""

    def close(self) -> None:
        """Release the file handles."""


def _check(url: str, what: str, dtype: np.dtype[Any] | str, channels: int) -> str:
    """The dtype name, or ``SourceError`` for an unsupported pixel type."""
    name = np.dtype(dtype).name
    if name not in ("uint8", "uint16"):
        raise SourceError(
            f"{url}: {what} has {name} pixels; tessera reads uint8 or uint16: {_CONVERT}"
        )
    if channels not in (1, 3, 4):
        raise SourceError(f"{url}: {what} has {channels} channels; expected 1, 3 or 4: {_CONVERT}")
    return name


def open_source(url: str, io: InputIO, threads: int = 1) -> Source:
    """Open ``url`` (a path, file:// or s3:// URL) and read its header. ``threads`` decode
    compressed TIFF tiles in parallel. Raises ``SourceError`` naming the URL."""
    try:
        fh = io.open_input(url)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        try:
            return ZarrSource(url, io)
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
            return TiffSource(url, fh, threads)
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


# -- TIFF -------------------------------------------------------------------------------------


class TiffSource:
    """A TIFF or BigTIFF; regions read segment by segment through tifffile's decoders, or, for
    uncompressed pixels in a local file, copied straight out of a memory map of it."""

    def __init__(self, url: str, fh: BinaryIO, threads: int = 1) -> None:
        import tifffile

        self.url = url
        self._threads = max(1, threads)
        self._map: np.ndarray | None = None
        try:
            self._tif = tifffile.TiffFile(fh)
        except Exception as exc:  # tifffile raises several kinds on a corrupt header
            fh.close()
            raise SourceError(f"{url}: not a readable TIFF: {exc}") from None
        try:
            level = self._tif.series[0].levels[0]
            if len(level.pages) > 1:  # channels, z or time as pages: never read just the first
                raise SourceError(
                    f"{url}: the TIFF's image has axes {level.axes} and shape {level.shape}, "
                    f"{len(level.pages)} planes stored as pages (channels, z or time); tessera "
                    f"reads one 2-D grey, RGB or RGBA image and will not keep the first plane "
                    f"and drop the other {len(level.pages) - 1}: write one plane per file, or "
                    f"combine the channels into RGB first"
                )
            self._page = page = level.keyframe
            self.info = self._describe(page)
            self._map = self._mapping(fh, page)
        except BaseException:
            self._tif.close()
            raise

    @staticmethod
    def _mapping(fh: BinaryIO, page: Any) -> np.ndarray | None:
        """A read-only map of the file (as bytes) when its pixels can be copied as they are: a
        local file, uncompressed, no predictor, samples interleaved, whole bytes. A NumPy
        memmap, not an ``mmap``: it is unmapped when its last view goes, never while one is in
        use."""
        plain = (
            page.compression == 1
            and page.predictor == 1
            and page.planarconfig == 1
            and page.fillorder == 1
            and page.bitspersample in (8, 16)
        )
        if not plain:
            return None
        try:
            fh.fileno()
            return np.memmap(fh, dtype=np.uint8, mode="r").view(np.ndarray)
        except (AttributeError, OSError, ValueError):  # not a local file (S3), or empty
            return None

    def _describe(self, page: Any) -> ImageInfo:
        from tifffile import EXTRASAMPLE, PHOTOMETRIC

        url, what = self.url, "the TIFF"
        photometric, samples = page.photometric, page.samplesperpixel
        if photometric == PHOTOMETRIC.PALETTE:
            raise SourceError(f"{url}: {what} is a palette (colour-mapped) image: {_CONVERT}")
        if photometric in (PHOTOMETRIC.SEPARATED, PHOTOMETRIC.CIELAB, PHOTOMETRIC.ICCLAB):
            raise SourceError(f"{url}: {what} is {photometric.name} (e.g. CMYK): {_CONVERT}")
        if photometric == PHOTOMETRIC.MINISWHITE:
            raise SourceError(f"{url}: {what} is MINISWHITE (inverted grey): {_CONVERT}")
        if page.dtype is not None and np.dtype(page.dtype).kind != "u":
            _check(url, what, page.dtype, samples)  # raises, naming the pixel type
        if page.dtype is None or page.bitspersample not in (8, 16):
            raise SourceError(f"{url}: {what} has {page.bitspersample}-bit samples: {_CONVERT}")
        if page.is_subsampled and page.compression not in (6, 7):
            raise SourceError(f"{url}: {what} is chroma-subsampled YCbCr: {_CONVERT}")
        if photometric not in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR):
            raise SourceError(f"{url}: {what} has photometric {photometric!r}: {_CONVERT}")
        extras = tuple(page.extrasamples)
        if EXTRASAMPLE.ASSOCALPHA in extras:
            raise SourceError(
                f"{url}: {what} has premultiplied (associated) alpha; tessera reads straight "
                f"alpha: convert it to unassociated alpha RGBA first"
            )
        base = 1 if photometric == PHOTOMETRIC.MINISBLACK else 3
        if samples != base and not (base == 3 and samples == 4):
            kind = "grey" if base == 1 else "colour"
            raise SourceError(f"{url}: {what} is {kind} with {samples} samples: {_CONVERT}")
        if page.shaped[1] != 1:
            raise SourceError(f"{url}: {what} is a volume (depth {page.shaped[1]}): {_CONVERT}")
        dtype = _check(url, what, page.dtype, samples)
        return ImageInfo("tiff", page.imagewidth, page.imagelength, samples, dtype)

    def read(
        self, y0: int, y1: int, x0: int, x1: int, progress: Progress | None = None
    ) -> np.ndarray:
        page, info = self._page, self.info
        out = np.zeros((y1 - y0, x1 - x0, info.channels), dtype=page.dtype.newbyteorder("="))
        separate = page.planarconfig == 2
        planes = info.channels if separate else 1
        if page.is_tiled:
            seg_h, seg_w = page.tilelength, page.tilewidth
        else:
            seg_h, seg_w = page.rowsperstrip or info.height, info.width
        rows = -(-info.height // seg_h)
        cols = -(-info.width // seg_w)
        decode = page.decode
        tables = page.jpegtables

        def place(item: tuple[bytes | None, int]) -> None:
            data, index = item
            segment, (plane, _, sy, sx, _), _ = decode(data, index, jpegtables=tables)
            if segment is None:
                return  # an empty segment: zeros
            ya, yb = max(sy, y0), min(sy + segment.shape[1], y1)
            xa, xb = max(sx, x0), min(sx + segment.shape[2], x1)
            if ya >= yb or xa >= xb:
                return
            part = segment[0, ya - sy : yb - sy, xa - sx : xb - sx]
            if separate:
                out[ya - y0 : yb - y0, xa - x0 : xb - x0, plane] = part[..., 0]
            else:
                out[ya - y0 : yb - y0, xa - x0 : xb - x0] = part

        if self._map is not None:
            return self._read_mapped(out, y0, y1, x0, x1, seg_h, seg_w, rows, cols, progress)
        handle = self._tif.filehandle
        pool = None
        if page.compression != 1 and self._threads > 1:
            pool = ThreadPoolExecutor(self._threads)
        try:
            for r in range(y0 // seg_h, (y1 - 1) // seg_h + 1):  # a row of segments at a time
                wanted = [
                    plane * rows * cols + r * cols + c
                    for plane in range(planes)
                    for c in range(x0 // seg_w, (x1 - 1) // seg_w + 1)
                ]
                offsets = [page.dataoffsets[i] for i in wanted]
                counts = [page.databytecounts[i] for i in wanted]
                segments = handle.read_segments(
                    offsets, counts, wanted, sort=True, lock=handle.lock
                )
                if pool is None:
                    for item in segments:
                        place(item)
                else:
                    for _ in pool.map(place, segments):
                        pass
                if progress is not None:
                    progress(out, min((r + 1) * seg_h, y1) - y0)
        finally:
            if pool is not None:
                pool.shutdown()
        return out

    def _read_mapped(
        self,
        out: np.ndarray,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        seg_h: int,
        seg_w: int,
        rows: int,
        cols: int,
        progress: Progress | None,
    ) -> np.ndarray:
        """``read`` for plain pixels: one copy from the page cache into ``out``."""
        assert self._map is not None
        page, channels = self._page, self.info.channels
        dtype = np.dtype(page.dtype).newbyteorder(self._tif.byteorder)
        width = seg_w if page.is_tiled else self.info.width
        for r in range(y0 // seg_h, (y1 - 1) // seg_h + 1):
            for c in range(x0 // seg_w, (x1 - 1) // seg_w + 1):
                index = r * cols + c
                count = page.databytecounts[index] // dtype.itemsize
                if count == 0:
                    continue  # an empty segment: zeros
                lines = count // (width * channels)
                start = page.dataoffsets[index]
                stop = start + lines * width * channels * dtype.itemsize
                segment = self._map[start:stop].view(dtype).reshape(lines, width, channels)
                sy, sx = r * seg_h, c * seg_w
                ya, yb = max(sy, y0), min(sy + lines, y1)
                xa, xb = max(sx, x0), min(sx + width, x1)
                if ya < yb and xa < xb:
                    out[ya - y0 : yb - y0, xa - x0 : xb - x0] = segment[
                        ya - sy : yb - sy, xa - sx : xb - sx
                    ]
            if progress is not None:
                progress(out, min((r + 1) * seg_h, y1) - y0)
        return out

    def close(self) -> None:
        self._map = None
        self._tif.close()


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
        self, y0: int, y1: int, x0: int, x1: int, progress: Progress | None = None
    ) -> np.ndarray:
        out = np.ascontiguousarray(self._decode()[y0:y1, x0:x1])
        if progress is not None:
            progress(out, y1 - y0)
        return out

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._pixels = None


# -- Zarr -------------------------------------------------------------------------------------


def _input_store(io: InputIO, root: str) -> Any:
    """A read-only Zarr store whose keys are read through ``io.open_input`` (zarr is imported
    here only, when a Zarr source is used)."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest

    class InputStore(Store):
        supports_writes = False
        supports_deletes = False
        supports_partial_writes = False
        supports_listing = False

        def __init__(self) -> None:
            super().__init__(read_only=True)

        def __eq__(self, other: object) -> bool:
            return isinstance(other, InputStore) and other is self

        def _read(self, key: str, byte_range: Any) -> bytes | None:
            try:
                fh = io.open_input(f"{root}/{key}")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            with fh:
                if byte_range is None:
                    return fh.read()
                if isinstance(byte_range, RangeByteRequest):
                    fh.seek(byte_range.start)
                    return fh.read(byte_range.end - byte_range.start)
                if isinstance(byte_range, OffsetByteRequest):
                    fh.seek(byte_range.offset)
                    return fh.read()
                if isinstance(byte_range, SuffixByteRequest):
                    fh.seek(0, 2)
                    fh.seek(max(fh.tell() - byte_range.suffix, 0))
                    return fh.read()
                raise TypeError(f"unexpected byte range {byte_range!r}")

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            data = self._read(key, byte_range)
            return None if data is None else prototype.buffer.from_bytes(data)

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
            return [await self.get(key, prototype, rng) for key, rng in key_ranges]

        async def exists(self, key: str) -> bool:
            return self._read(key, RangeByteRequest(0, 1)) is not None

        async def set(self, key: str, value: Any) -> None:
            raise PermissionError("the source store is read-only")

        async def delete(self, key: str) -> None:
            raise PermissionError("the source store is read-only")

        async def list(self) -> Any:
            raise NotImplementedError
            yield  # pragma: no cover

        async def list_prefix(self, prefix: str) -> Any:
            raise NotImplementedError
            yield  # pragma: no cover

        async def list_dir(self, prefix: str) -> Any:
            raise NotImplementedError
            yield  # pragma: no cover

    return InputStore()


class ZarrSource:
    """A Zarr array (or the first dataset of an OME-Zarr image group)."""

    def __init__(self, url: str, io: InputIO) -> None:
        import zarr

        self.url = url
        root = url.rstrip("/")
        store = _input_store(io, root)
        try:
            node = zarr.open(store=store, mode="r")
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise FileNotFoundError(f"{url}: no Zarr array here ({exc})") from None
        if isinstance(node, zarr.Group):
            node = self._first_dataset(url, node)
        self._array = node
        names = self._axis_names(url, node)
        self._squeeze = tuple(0 if n in ("t", "z") else slice(None) for n in names)
        shape = dict(zip(names, node.shape))
        channels = shape.get("c", 1)
        dtype = _check(url, "the Zarr array", node.dtype, channels)
        self.info = ImageInfo("zarr", shape["x"], shape["y"], channels, dtype)

    @staticmethod
    def _first_dataset(url: str, group: Any) -> Any:
        attrs = dict(group.attrs)
        ome = attrs.get("ome", attrs)
        try:
            path = ome["multiscales"][0]["datasets"][0]["path"]
            return group[path]
        except (KeyError, IndexError, TypeError):
            raise SourceError(
                f"{url}: a Zarr group, not an array; give the URL of an array, or of an OME-Zarr "
                f"image group (with multiscales metadata)"
            ) from None

    @staticmethod
    def _axis_names(url: str, array: Any) -> list[str]:
        shape = tuple(array.shape)
        names = list(getattr(array.metadata, "dimension_names", None) or [])
        if names and set(names) <= {"t", "c", "z", "y", "x"} and {"y", "x"} <= set(names):
            for n, size in zip(names, shape):
                if n in ("t", "z") and size != 1:
                    raise SourceError(f"{url}: axis {n} has length {size}; expected one 2-D image")
            return names
        if len(shape) == 2:
            return ["y", "x"]
        if len(shape) == 3 and shape[2] in (1, 3, 4):
            return ["y", "x", "c"]
        if len(shape) == 3 and shape[0] in (1, 3, 4):
            return ["c", "y", "x"]
        raise SourceError(
            f"{url}: a Zarr array of shape {shape}; expected (y, x), (y, x, c) or (c, y, x) with "
            f"1, 3 or 4 channels (or dimension names from t, c, z, y, x)"
        )

    def read(
        self, y0: int, y1: int, x0: int, x1: int, progress: Progress | None = None
    ) -> np.ndarray:
        names = [n for n in self._axis_names(self.url, self._array) if n not in ("t", "z")]
        sel = list(self._squeeze)
        live = [i for i, s in enumerate(sel) if isinstance(s, slice)]
        for i, name in zip(live, names):
            sel[i] = {"y": slice(y0, y1), "x": slice(x0, x1)}.get(name, slice(None))
        block = np.asarray(self._array[tuple(sel)])
        order = [names.index(a) for a in ("y", "x", "c") if a in names]
        block = block.transpose(order)
        if block.ndim == 2:
            block = block[..., None]
        out = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("="))
        if progress is not None:
            progress(out, y1 - y0)
        return out

    def close(self) -> None:
        pass
