"""TIFF and BigTIFF sources, OME-TIFF and ImageJ hyperstacks included.

One image of the file (``series``, default the first; for a pyramidal file its full-resolution
level) is read region by region: only the tiles or strips that meet the region, decoded in
threads, or, for uncompressed pixels in a local file, copied straight out of a memory map.

The image may be several pages: channels (axis ``C``) and z-planes (``Z``), in any order, as
OME-TIFF, ImageJ and tifffile's own files name them. Each page is grey (one channel), or one
page holds every channel as samples (an OME-TIFF with ``planarconfig`` separate or contig).
Such channels are independent (a microscope's fluorescence channels); their names and colours,
and the pixel sizes, come from the OME-XML (``PhysicalSizeX/Y/Z`` and their units, in
micrometres) or from ImageJ's calibration. Refused, with the file, axes and shape named: time
series (``T`` longer than 1), pages of unknown meaning (``I``, ``Q``, ...), images spread over
several files, more than 64 channels, and anything but uint8 or uint16.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import numpy as np

from tessera.kernels.imaging import omexml
from tessera.kernels.imaging.source import (
    _CONVERT,
    ImageInfo,
    PixelSize,
    Progress,
    SourceError,
    channel_colors,
    channel_names,
    check_pixels,
    known_size,
)

_NAMED = "e.g. tifffile.imwrite(path, data, metadata={'axes': 'CZYX'}, ome=True)"


def _plane_pages(url: str, what: str, level: Any) -> tuple[list[list[Any]], int]:
    """The pages of each z-plane, one per channel page (``[z][c]``, ``None`` for a page the
    file lacks), and the number of channel pages (1 when the channels are samples)."""
    axes, shape = str(level.axes), tuple(level.shape)
    pages = list(level.pages)
    key = level.keyframe
    y = axes.find("Y")
    if y < 0 or "X" not in axes[y:]:
        raise SourceError(f"{url}: {what} has axes {axes}; expected Y and X: {_CONVERT}")
    start = y
    if y > 0 and key.planarconfig == 2 and key.samplesperpixel > 1:
        start = y - 1  # samples stored as planes: the axis before Y is in the page
    prefix = list(zip(axes[:start], shape[:start]))
    described = f"{what} has axes {axes} and shape {shape}"
    if math.prod(n for _, n in prefix) != len(pages):
        raise SourceError(
            f"{url}: {described} in {len(pages)} pages, a layout tessera does not know: {_NAMED}"
        )
    sizes: dict[str, int] = {}
    for axis, n in prefix:
        if n == 1:
            continue
        if axis == "T":
            raise SourceError(
                f"{url}: {described}: a time series of {n} time points; tessera makes the "
                f"pyramid of one 2-D image or z-stack and leaves time out: write one file per "
                f"time point"
            )
        if axis not in ("C", "Z") or axis in sizes:
            raise SourceError(
                f"{url}: {described}, {len(pages)} planes stored as pages along axis {axis!r} "
                f"of unknown meaning; tessera reads channels (C) and z-planes (Z) and will not "
                f"keep the first plane and drop the other {len(pages) - 1}: name the axes, "
                f"{_NAMED}"
            )
        sizes[axis] = n
    strides = [math.prod(n for _, n in prefix[i + 1 :]) for i in range(len(prefix))]

    def index(z: int, c: int) -> int:
        at = {"Z": z, "C": c}
        return sum(at.get(axis, 0) * s for (axis, _), s in zip(prefix, strides))

    depth, pages_c = sizes.get("Z", 1), sizes.get("C", 1)
    planes = [[pages[index(z, c)] for c in range(pages_c)] for z in range(depth)]
    return planes, pages_c


def _imagej_size(tif: Any, page: Any) -> PixelSize | None:
    """ImageJ's calibration: pixels per ``unit`` in the resolution tags, ``spacing`` in z."""
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    if not isinstance(unit, str):
        return None
    unit = {"micron": "µm", "\\u00B5m": "µm", "u": "µm"}.get(unit, unit)
    try:
        x_res, y_res = page.get_resolution()
    except Exception:  # no resolution tags
        return None
    y = omexml.micrometres(1.0 / y_res, unit) if y_res and y_res > 0 else None
    x = omexml.micrometres(1.0 / x_res, unit) if x_res and x_res > 0 else None
    spacing = meta.get("spacing")
    ok = isinstance(spacing, (int, float)) and spacing > 0
    z = omexml.micrometres(float(spacing), unit) if ok else None
    return known_size((z, y, x))


class TiffSource:
    """A TIFF or BigTIFF; regions read segment by segment through tifffile's decoders, or, for
    uncompressed pixels in a local file, copied straight out of a memory map of it."""

    def __init__(self, url: str, fh: BinaryIO, threads: int = 1, series: int = 0) -> None:
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
            found = self._tif.series
            if not 0 <= series < len(found):
                raise SourceError(
                    f"{url}: series = {series}, but the TIFF holds {len(found)} image series "
                    f"(0 to {len(found) - 1})"
                )
            chosen = found[series]
            what = "the TIFF" if len(found) == 1 else f"series {series} of the TIFF"
            level = chosen.levels[0]  # the full resolution of a pyramidal file
            self._page = page = level.keyframe
            self._planes, pages_c = _plane_pages(url, what, level)
            for plane in self._planes:
                for p in plane:
                    if p is not None and p.parent is not self._tif:
                        raise SourceError(
                            f"{url}: {what} has pages in another file (a multi-file "
                            f"OME-TIFF); tessera reads one file: combine them first (e.g. "
                            f"bfconvert or tifffile)"
                        )
            self.info = self._describe(page, what, chosen, series, pages_c)
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

    def _describe(self, page: Any, what: str, chosen: Any, series: int, pages_c: int) -> ImageInfo:
        from tifffile import EXTRASAMPLE, PHOTOMETRIC

        url = self.url
        photometric, samples = page.photometric, page.samplesperpixel
        if photometric == PHOTOMETRIC.PALETTE:
            raise SourceError(f"{url}: {what} is a palette (colour-mapped) image: {_CONVERT}")
        if photometric in (PHOTOMETRIC.SEPARATED, PHOTOMETRIC.CIELAB, PHOTOMETRIC.ICCLAB):
            raise SourceError(f"{url}: {what} is {photometric.name} (e.g. CMYK): {_CONVERT}")
        if photometric == PHOTOMETRIC.MINISWHITE:
            raise SourceError(f"{url}: {what} is MINISWHITE (inverted grey): {_CONVERT}")
        grey = photometric == PHOTOMETRIC.MINISBLACK
        # a microscope's channels: several grey pages, or an OME-TIFF's grey samples
        independent = pages_c > 1 or (grey and self._tif.is_ome)
        channels = pages_c * samples
        if page.dtype is not None and np.dtype(page.dtype).kind != "u":
            check_pixels(url, what, page.dtype, channels, True)  # raises, naming the type
        if page.dtype is None or page.bitspersample not in (8, 16):
            raise SourceError(f"{url}: {what} has {page.bitspersample}-bit samples: {_CONVERT}")
        if page.is_subsampled and page.compression not in (6, 7):
            raise SourceError(f"{url}: {what} is chroma-subsampled YCbCr: {_CONVERT}")
        if photometric not in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR):
            raise SourceError(f"{url}: {what} has photometric {photometric!r}: {_CONVERT}")
        if pages_c > 1 and samples > 1:
            raise SourceError(
                f"{url}: {what} has {pages_c} channels of {samples} samples each (axes "
                f"{chosen.axes}); tessera reads grey channels: write one channel per sample"
            )
        extras = tuple(page.extrasamples)
        if not independent and EXTRASAMPLE.ASSOCALPHA in extras:
            raise SourceError(
                f"{url}: {what} has premultiplied (associated) alpha; tessera reads straight "
                f"alpha: convert it to unassociated alpha RGBA first"
            )
        base = 1 if grey else 3
        if not independent and samples != base and not (base == 3 and samples == 4):
            kind = "grey" if base == 1 else "colour"
            raise SourceError(f"{url}: {what} is {kind} with {samples} samples: {_CONVERT}")
        if page.shaped[1] != 1:
            raise SourceError(f"{url}: {what} is a volume (depth {page.shaped[1]}): {_CONVERT}")
        dtype = check_pixels(url, what, page.dtype, channels, independent)
        names = colors = None
        size: PixelSize | None = None
        if self._tif.is_ome:
            meta = omexml.parse(self._tif.ome_metadata, series, getattr(chosen, "name", None))
            if meta is not None:
                size = known_size(meta.pixel_size)
                if independent:
                    names = channel_names(channels, meta.names)
                    colors = channel_colors(channels, meta.colors)
        elif self._tif.is_imagej:
            size = _imagej_size(self._tif, page)
        if independent and names is None:
            names, colors = channel_names(channels, None), channel_colors(channels, None)
        depth = len(self._planes)
        return ImageInfo(
            "tiff", page.imagewidth, page.imagelength, channels, dtype, depth, names, colors, size
        )

    def read(
        self,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        progress: Progress | None = None,
        z: int = 0,
    ) -> np.ndarray:
        page, info = self._page, self.info
        if not 0 <= z < info.depth:
            raise IndexError(f"{self.url}: z-plane {z} of {info.depth}")
        pages = self._planes[z]
        per_page = page.samplesperpixel  # channels of each page
        out = np.zeros((y1 - y0, x1 - x0, info.channels), dtype=page.dtype.newbyteorder("="))
        separate = page.planarconfig == 2
        planes = per_page if separate else 1
        if page.is_tiled:
            seg_h, seg_w = page.tilelength, page.tilewidth
        else:
            seg_h, seg_w = page.rowsperstrip or info.height, info.width
        rows = -(-info.height // seg_h)
        cols = -(-info.width // seg_w)
        segments_per_page = planes * rows * cols
        decode = page.decode
        tables = page.jpegtables

        def place(item: tuple[bytes | None, int]) -> None:
            data, index = item
            k, index = divmod(index, segments_per_page)  # the page, its segment
            segment, (plane, _, sy, sx, _), _ = decode(data, index, jpegtables=tables)
            if segment is None:
                return  # an empty segment: zeros
            ya, yb = max(sy, y0), min(sy + segment.shape[1], y1)
            xa, xb = max(sx, x0), min(sx + segment.shape[2], x1)
            if ya >= yb or xa >= xb:
                return
            part = segment[0, ya - sy : yb - sy, xa - sx : xb - sx]
            where = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
            if separate:
                out[(*where, k * per_page + plane)] = part[..., 0]
            else:
                out[(*where, slice(k * per_page, (k + 1) * per_page))] = part

        if self._map is not None:
            return self._read_mapped(out, pages, y0, y1, x0, x1, seg_h, seg_w, cols, progress)
        handle = self._tif.filehandle
        pool = None
        if page.compression != 1 and self._threads > 1:
            pool = ThreadPoolExecutor(self._threads)
        try:
            for r in range(y0 // seg_h, (y1 - 1) // seg_h + 1):  # a row of segments at a time
                wanted = [
                    (k, plane * rows * cols + r * cols + c)
                    for k, p in enumerate(pages)
                    if p is not None
                    for plane in range(planes)
                    for c in range(x0 // seg_w, (x1 - 1) // seg_w + 1)
                ]
                offsets = [pages[k].dataoffsets[i] for k, i in wanted]
                counts = [pages[k].databytecounts[i] for k, i in wanted]
                indices = [k * segments_per_page + i for k, i in wanted]
                segments = handle.read_segments(
                    offsets, counts, indices, sort=True, lock=handle.lock
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
        pages: list[Any],
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        seg_h: int,
        seg_w: int,
        cols: int,
        progress: Progress | None,
    ) -> np.ndarray:
        """``read`` for plain pixels: one copy from the page cache into ``out``."""
        assert self._map is not None
        page = self._page
        per_page = page.samplesperpixel
        dtype = np.dtype(page.dtype).newbyteorder(self._tif.byteorder)
        width = seg_w if page.is_tiled else self.info.width
        for r in range(y0 // seg_h, (y1 - 1) // seg_h + 1):
            for k, source in enumerate(pages):
                if source is None:
                    continue  # a page the file lacks: zeros
                for c in range(x0 // seg_w, (x1 - 1) // seg_w + 1):
                    index = r * cols + c
                    count = source.databytecounts[index] // dtype.itemsize
                    if count == 0:
                        continue  # an empty segment: zeros
                    lines = count // (width * per_page)
                    start = source.dataoffsets[index]
                    stop = start + lines * width * per_page * dtype.itemsize
                    segment = self._map[start:stop].view(dtype).reshape(lines, width, per_page)
                    sy, sx = r * seg_h, c * seg_w
                    ya, yb = max(sy, y0), min(sy + lines, y1)
                    xa, xb = max(sx, x0), min(sx + width, x1)
                    if ya < yb and xa < xb:
                        into = out[ya - y0 : yb - y0, xa - x0 : xb - x0]
                        into[..., k * per_page : (k + 1) * per_page] = segment[
                            ya - sy : yb - sy, xa - sx : xb - sx
                        ]
            if progress is not None:
                progress(out, min((r + 1) * seg_h, y1) - y0)
        return out

    def close(self) -> None:
        self._map = None
        self._tif.close()
