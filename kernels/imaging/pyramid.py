"""The ``imaging.pyramid`` kernel: one large image -> OME-Zarr multiscale image and Deep Zoom.

A shard owns one super-tile of level 0 (``shard_size`` pixels on a side, default 4096, ``tile_size
* 2**k``). It reads its region (plus, with a DZI overlap, a margin of ``2**(shard_levels-1)``
pixels so that the overlap pixels are exact), computes levels ``0 .. shard_levels - 1`` inside it
with :func:`tessera.kernels.imaging.downsample.downsample2x`, and writes

* each level's footprint into the OME-Zarr array ``image/<l>`` (``(c, y, x)``, chunks of one
  tile, one Zarr shard per super-tile footprint, so a shard writes one object per level; a
  z-stack is ``(c, z, y, x)``, read, downsampled in y and x and written one z-plane at a time,
  one object per plane and level);
* the DZI tiles of those levels (for a microscope's channels, an RGB composite of
  ``dzi.channels``: :mod:`tessera.kernels.imaging.composite`): one file each in the directory
  container (written from the encoding threads), or, for the zip container, one file
  ``dzi/_parts/<shard>.bin`` per shard holding its tiles (see
  :func:`tessera.kernels.imaging.dzi.pack`), which the final step gathers;
* the CRC-32 of every tile it owns (pixels in (y, x, c) order) as its row of ``tile_crc32``,
  which the engine stores like any row-cut array.

After every shard has committed, ``reduce`` reads the last shard level, computes the smaller
levels down to 1x1 (OME-Zarr levels while a level is larger than a tile, DZI to the end), writes
them, the DZI descriptor (or, for the zip container, ``dzi/image.zip`` from the parts) and a
viewer page beside it (``dzi/viewer.html``, OpenSeadragon: see
:mod:`tessera.kernels.imaging.viewer`; for the zip it opens ``image.zip/image/image.dzi``, which
``tessera view`` serves from the archive). The result lists every level with its shape, tile
grid and a checksum: the SHA-256 of its tiles' CRC-32s (4 bytes big-endian each, tiles
row-major); the pyramid's ``checksum`` is ``sha256:`` and the SHA-256 of every level's CRC-32s,
level 0 first (``checksum_method`` says so in words). CRC-32 per tile is what zip and PNG use
against accidental change, and costs a quarter of a SHA-256 of every pixel (which would take
half as long as the JPEG encoding itself). Every byte depends only on the image and params,
never on the shard count. The result also names its ``outputs`` (paths in the store) and the
``next`` steps for a person (``{store}`` stands for the store's location), which ``tessera
run`` prints.

JPEG/WebP/PNG encoding, CRC-32 and the OME-Zarr writes run in a thread pool of
``numba.get_num_threads()`` threads (the encoders, the CRC and zarrs release the GIL), one
more when the shard writes OME-Zarr (a thread waiting on a direct write leaves its core to
the others), so a shard uses the cores the executor gives it: one on a Dask worker, all of
them on the local executor. The levels are computed on the calling thread meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from tessera.kernels.base import (
    ArraySpec,
    GroupSpec,
    InputIO,
    Layout,
    Location,
    ParamError,
    ShardIO,
    ShardOutput,
    cut_at,
)
from tessera.kernels.imaging import dzi, ome, viewer
from tessera.kernels.imaging.composite import composite
from tessera.kernels.imaging.downsample import downsample2x, planar
from tessera.kernels.imaging.pyramid_params import Params, parse, to_dict, with_source
from tessera.kernels.imaging.source import Progress, Source, SourceError, open_source
from tessera.kernels.imaging.tiles import (
    DEFAULT_SUPER_TILE,
    Geometry,
    dzi_tile_box,
    is_power_of_two,
    super_tile_for,
)
from tessera.kernels.threads import numba_on_this_thread_only, pool_threads
from tessera.kernels.validate import shown

DIGESTS = "tile_crc32"
HANDOFF = "pyramid_handoff"  # the last shard level by shard, when no OME-Zarr image is written
GROUP = "image"
# Rough in-process rates (an 8192^2 RGB TIFF, --executor local, 2 cores), for choosing the
# executor only (tessera.engine.choose): OME-Zarr levels in samples (pixels x channels) per
# second, DZI tiles in level-0 pixels per second
OME_ZARR_SAMPLES_PER_SECOND = 1e8
DZI_PIXELS_PER_SECOND = 1e8
PARTS = "dzi/_parts"
DESCRIPTOR = f"dzi/{dzi.NAME}.dzi"
ZIP = f"dzi/{dzi.NAME}.zip"
VIEWER = f"dzi/{viewer.PAGE}"  # an OpenSeadragon page beside the descriptor or the zip
# what the zip container's page opens: the descriptor inside the archive (served by `tessera view`)
ZIPPED_DESCRIPTOR = f"{dzi.NAME}.zip/{dzi.NAME}/{dzi.NAME}.dzi"
CHECKSUM_METHOD = (
    "sha256 of the CRC-32s of the tiles' pixels (y, x, c), 4 bytes big-endian each, level 0 "
    "first, tiles row-major"
)


def geometry(params: Params, n_shards: int) -> Geometry:
    """The tile geometry of a prepared job cut into ``n_shards`` super-tiles (or fewer)."""
    if not params.prepared:
        raise ValueError("params are not prepared: the source's size is not known yet")
    assert params.height is not None and params.width is not None
    size = super_tile_for(params.height, params.width, params.tile_size, n_shards)
    return Geometry(params.height, params.width, params.tile_size, size)


def level_array(level: int) -> str:
    """The array holding ``level`` in the store."""
    return f"{GROUP}/{level}"


_Box = tuple[int, int, int, int]
_Done = tuple[int, bytes, str | None, bytes | None, int]  # col, CRC-32, DZI name, bytes, size


class _Tiles:
    """Hashes and encodes tiles in a thread pool, a row of tiles per task (few futures, little
    Python per tile), and gathers the results."""

    def __init__(self, params: Params, io: ShardIO | None, pool: ThreadPoolExecutor) -> None:
        self.params = params
        self.io = io
        self.pool = pool
        self.futures: list[tuple[int, int, Future[list[_Done]]]] = []

    def submit_level(
        self,
        geo: Geometry,
        level: int,
        pixels: np.ndarray,
        origin: tuple[int, int],
        rows: range,
        cols: range,
    ) -> None:
        """Queue tiles ``rows x cols`` of ``level``; ``pixels`` holds the level from ``origin``
        (y, x) on, including any overlap pixels the DZI tiles need."""
        height, width = geo.shape(level)
        t = geo.tile
        oy, ox = origin
        d = self.params.dzi
        dzi_level = geo.dzi_level(level)
        for row in rows:
            work: list[tuple[int, _Box, _Box, str | None]] = []
            for col in cols:
                core = (
                    row * t - oy,
                    min((row + 1) * t, height) - oy,
                    col * t - ox,
                    min((col + 1) * t, width) - ox,
                )
                box, name = core, None
                if d is not None:
                    y0, y1, x0, x1 = dzi_tile_box(col, row, height, width, t, d.overlap)
                    box = (y0 - oy, y1 - oy, x0 - ox, x1 - ox)
                    name = dzi.tile_name(dzi_level, col, row, d.format)
                work.append((col, core, box, name))
            self.futures.append((level, row, self.pool.submit(self._row, pixels, work)))

    def _row(
        self, pixels: np.ndarray, work: list[tuple[int, _Box, _Box, str | None]]
    ) -> list[_Done]:
        d = self.params.dzi
        done: list[_Done] = []
        for col, core, box, name in work:
            tile = np.ascontiguousarray(pixels[core[0] : core[1], core[2] : core[3]])
            digest = dzi.crc32(tile).to_bytes(4, "big")
            if d is None or name is None:
                done.append((col, digest, None, None, 0))
                continue
            if box != core:
                tile = pixels[box[0] : box[1], box[2] : box[3]]
            if d.channels is not None:  # a microscope's channels, drawn as one RGB tile
                tile = composite(tile, d.channels)
            data = dzi.encode_tile(tile, d.format, d.quality)
            if d.container == "directory" and self.io is not None:
                self.io.write_file(dzi.directory_path(name), data)
                done.append((col, digest, name, None, len(data)))
            else:
                done.append((col, digest, name, data, len(data)))
        return done

    def collect(self) -> tuple[dict[tuple[int, int, int], bytes], dict[str, bytes], int]:
        """Wait for every tile: CRC-32s by (level, row, col), encoded tiles kept for a zip by
        name, and the bytes encoded."""
        digests: dict[tuple[int, int, int], bytes] = {}
        encoded: dict[str, bytes] = {}
        nbytes = 0
        for level, row, future in self.futures:
            for col, digest, name, data, size in future.result():
                digests[level, row, col] = digest
                nbytes += size
                if name is not None and data is not None:
                    encoded[name] = data
        self.futures.clear()
        return digests, encoded, nbytes


class _Writes:
    """Writes a plane's shard levels into their OME-Zarr arrays from the shard's pool, one
    stored object (Zarr shard) a task, so that the calling thread reads and downsamples while
    the pool compresses. A task copies its piece into channel planes (``planar``, off the GIL)
    and writes it whole: no two tasks touch one object, whatever grid the array has (a store
    made before keeps its own)."""

    def __init__(self, params: Params, io: ShardIO, pool: ThreadPoolExecutor, plane: int):
        self.params = params
        self.io = io
        self.pool = pool
        self.plane = plane
        self.futures: list[Future[None]] = []

    def bands(self, level: int, box: _Box) -> list[tuple[int, int]]:
        """The rows of ``box`` (level coordinates) cut at the array's stored objects: each
        band's writes can go once its rows are there."""
        edge = self._grid(level)[0]
        return cut_at(box[0], box[1], edge)

    def submit(self, level: int, pixels: np.ndarray, origin: tuple[int, int], box: _Box) -> None:
        """Queue the writes of ``box`` (y0, y1, x0, x1 of ``level``), which ``pixels`` holds
        from ``origin`` (y, x) on."""
        oy, ox = origin
        rows, cols = self._grid(level)
        for y0, y1 in cut_at(box[0], box[1], rows):
            for x0, x1 in cut_at(box[2], box[3], cols):
                piece = pixels[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
                self.futures.append(self.pool.submit(self._write, level, (y0, y1, x0, x1), piece))

    def wait(self) -> None:
        """Wait for every queued write; raise the first one's error once all have ended."""
        futures, self.futures = self.futures, []
        wait(futures)
        for future in futures:
            future.result()

    def _grid(self, level: int) -> tuple[int, int]:
        array = self.io.arrays[level_array(level)]
        shape = array.shards or array.chunks  # the stored objects
        return shape[-2], shape[-1]

    def _write(self, level: int, box: _Box, piece: np.ndarray) -> None:
        y0, y1, x0, x1 = box
        self.io.write_array(
            level_array(level),
            _selection(self.params, self.plane, slice(y0, y1), slice(x0, x1)),
            _level_data(self.params, piece),
        )


# A default shard's level-0 pixels at most. Measured on 2 cores (README, "Memory"): a 5-channel
# uint16 8192^2 OME-TIFF in 2048^2 shards (42 MB regions) instead of 4096^2 (168 MB) peaked at
# 0.8 GB RSS instead of 1.9 and ran no slower (median 2.41 s against 2.55, seven pairs); RGB
# uint16 16384^2 keeps 4096^2 shards (100 MB), which beat 2048^2 (4.9 s against 5.7).
_DEFAULT_REGION_BYTES = 128 << 20


def _selection(params: Params, plane: int, y: slice, x: slice) -> tuple[slice, ...]:
    """Where a plane's (y, x) region goes in a level array: ``(c, y, x)``, or ``(c, z, y, x)``
    for a z-stack."""
    if params.depth > 1:
        return (slice(None), slice(plane, plane + 1), y, x)
    return (slice(None), y, x)


def _level_data(params: Params, pixels: np.ndarray) -> np.ndarray:
    """A plane's (h, w, c) pixels as the level array holds them, C-contiguous: (c, h, w), or
    (c, 1, h, w)."""
    cyx = planar(pixels)
    return cyx[:, None] if params.depth > 1 else cyx


def _pixel_bytes(params: Params) -> int:
    """Bytes of one pixel of the source (every channel), once ``prepare`` recorded them."""
    assert params.channels is not None
    return params.channels * (1 if params.dtype == "uint8" else 2)


def _downsample(params: Params, pixels: np.ndarray) -> np.ndarray:
    return downsample2x(pixels, params.gamma_correct, independent=params.independent)


def _outputs(params: Params) -> dict[str, str]:
    """What the pyramid wrote, for a person: a label and its path in the store."""
    out: dict[str, str] = {}
    if params.ome_zarr:
        out["OME-Zarr image (NGFF 0.5)"] = GROUP
    d = params.dzi
    if d is not None:
        if d.container == "directory":
            out["Deep Zoom descriptor"] = DESCRIPTOR
            out["Deep Zoom tiles"] = f"dzi/{dzi.NAME}_files/"
        else:
            out["Deep Zoom zip"] = ZIP
        out["viewer page"] = VIEWER
    return out


def _next_steps(params: Params) -> list[str]:
    """What a person can do with the output (``{store}``: the store's location)."""
    if params.dzi is not None:
        return [f"tessera view {{store}}    # serves {VIEWER} on localhost and prints its address"]
    return [f"open {{store}}/{GROUP} in an OME-Zarr (NGFF 0.5) viewer, e.g. napari"]


class PyramidKernel:
    """``imaging.pyramid``: see the module docstring and
    :mod:`tessera.kernels.imaging.pyramid_params`."""

    name = "imaging.pyramid"
    uses_every_core = True  # a shard's tiles are encoded on every core
    # In-process, two shards at a time: the next one reads its region while the last one's
    # pool drains and writes its part (tessera.engine.executors.local)
    shard_lanes = 2
    work_unit = "pixels"

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``[params]``; ``ParamError`` naming the key on bad input."""
        return parse(raw)

    def locations(self, params: Params) -> tuple[Location, ...]:
        """The source image (a file, or a Zarr array's folder)."""
        return (Location("source", params.source),)

    def warm(self, params: Params) -> None:
        """The 2x2 downsample on a 2x2 image of the source's pixel type, and the copy into a
        level's channel planes (of a view and of a whole array): compiles them (or loads
        Numba's cache). Nothing before ``prepare`` recorded the pixel type."""
        if params.channels is None or params.dtype is None:
            return
        image = np.zeros((2, 3, params.channels), dtype=params.dtype)
        _downsample(params, np.zeros((2, 2, params.channels), dtype=params.dtype))
        if params.ome_zarr:  # a level's footprint is a view, a last level a whole array
            planar(image[:, :2])
            planar(image)

    def prepare(self, params: Params, io: InputIO) -> Params:
        """Read the source's header and record its size, channels, dtype, format and, where
        it has them, its z-planes, channel names and colours and pixel size. ``ParamError``
        naming ``source`` when it is missing, not an image, of an unsupported pixel type, or
        different from what a stored job recorded; naming ``dzi`` or ``gamma_correct`` when
        the image cannot have them (see :func:`pyramid_params.with_source`)."""
        try:
            source = open_source(params.source, io, series=params.series)
        except SourceError as exc:
            raise ParamError("source", str(exc)) from None
        try:
            info = source.info
        finally:
            source.close()
        return with_source(params, info)

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Canonical params (defaults filled in, the source's numbers once recorded)."""
        return to_dict(params)

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """Shards when each owns a super-tile of ``shard_size`` level-0 pixels on a side, which
        must be ``tile_size`` times a power of two (so that every shard level is whole tiles).
        Raises ``ParamError`` otherwise."""
        t = params.tile_size
        if (
            isinstance(shard_size, bool)
            or not isinstance(shard_size, int)
            or shard_size < t
            or shard_size % t
            or not is_power_of_two(shard_size // t)
        ):
            raise ParamError(
                "shard_size",
                f"{shown(shard_size)} is not tile_size ({t}) times a power of two; use e.g. "
                f"{max(DEFAULT_SUPER_TILE, t)} (pixels on a side of the level-0 region a shard "
                f"owns)",
            )
        assert params.height is not None and params.width is not None
        return Geometry(params.height, params.width, t, shard_size).n_shards

    def default_shards(self, params: Params) -> int:
        """Super-tiles of 4096 pixels (or one tile, if larger), halved while a region's
        pixels would take more than 128 MiB (4096 up to 8 bytes a pixel, such as RGBA uint16; 2048
        up to 32, 16 uint16 channels; 1024 for 64 uint16 channels)."""
        pixel = _pixel_bytes(params)
        size = max(DEFAULT_SUPER_TILE, params.tile_size)
        while size > params.tile_size and size * size * pixel > _DEFAULT_REGION_BYTES:
            size //= 2
        return self.shards_for_size(params, size)

    def layout(self, params: Params, n_shards: int) -> Layout:
        """The OME-Zarr levels (written by the kernel itself), the per-shard tile digests
        (row-cut), and the ``image`` group with its NGFF 0.5 attributes. Asking for N shards
        gives the smallest super-tile with at most N of them."""
        geo = geometry(params, n_shards)
        c, dtype, t = params.channels, str(params.dtype), params.tile_size
        assert c is not None
        depth = params.depth
        # a z-stack's z axis: every plane, one plane per chunk (and per Zarr shard)
        zs, z1 = ((depth,), (1,)) if depth > 1 else ((), ())
        arrays: list[ArraySpec] = []
        groups: list[GroupSpec] = []
        if params.ome_zarr:
            attrs = ome.image_attributes(
                geo.n_ome,
                c,
                dtype,
                depth=depth,
                names=params.channel_names,
                colors=params.channel_colors,
                pixel_size=params.pixel_size,
            )
            groups.append(GroupSpec(GROUP, attrs))
        for level in range(geo.n_ome if params.ome_zarr else 0):
            arrays.append(
                ArraySpec(
                    name=level_array(level),
                    shape=(c, *zs, *geo.shape(level)),
                    dtype=dtype,
                    chunks=(c, *z1, t, t),
                    shards=(c, *z1, *geo.zarr_shard_shape(level)),
                    dimension_names=ome.axes(depth),
                )
            )
        bounds: list[tuple[int, ...]] = [() for _ in arrays]
        n = geo.n_shards
        slots = geo.tiles_per_super_tile() * depth  # every plane's tiles, plane after plane
        arrays.append(ArraySpec(DIGESTS, (n, slots, 4), "uint8", (1, slots, 4)))
        if not params.ome_zarr:  # the final step's input: each shard's last level, as a row
            edge = self._handoff_edge(geo)
            arrays.append(ArraySpec(HANDOFF, (n, edge, edge, c), dtype, (1, edge, edge, c)))
        bounds += [tuple(range(n + 1))] * (len(arrays) - len(bounds))
        work = []
        for shard in range(n):
            y0, y1, x0, x1 = geo.footprint(shard, 0)
            work.append((y1 - y0) * (x1 - x0) * depth)
        return Layout(
            arrays=tuple(arrays),
            bounds=tuple(bounds),
            shard_work=tuple(work),
            work_unit=self.work_unit,
            groups=tuple(groups),
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Read the shard's region, compute and write its levels and tiles (see the module
        docstring), z-plane after z-plane for a z-stack; return its row of tile digests and
        stats ``{"levels", "tiles", "dzi_bytes", "read_pixels"}``. Raises ``ValueError`` when
        ``io`` is missing or the source no longer matches the params."""
        if io is None:
            raise ValueError("imaging.pyramid writes its levels itself and needs the engine's io")
        geo = geometry(params, layout.n_shards)
        overlap = params.dzi.overlap if params.dzi is not None else 0
        ry0, ry1, rx0, rx1 = geo.read_box(shard, overlap)
        # One thread more than the cores for the OME-Zarr writes: on local disk zarrs writes
        # with direct I/O (tessera.engine.codecs), and a thread waiting on the device leaves
        # its core to the others (measured: 3.6 s instead of 4.1 for the default outputs of a
        # 16384^2 slide on 2 cores, with 1.1 regions more at the peak; 4 threads: no faster)
        threads = pool_threads() + (1 if params.ome_zarr else 0)
        planes: list[Mapping[tuple[int, int, int], bytes]] = []
        encoded: dict[str, bytes] = {}
        nbytes = 0
        source = self._open(params, io, threads)
        try:
            with ThreadPoolExecutor(threads) as pool, numba_on_this_thread_only():
                for plane in range(params.depth):
                    tiles = _Tiles(params, io, pool)
                    core = self._plane(params, geo, shard, plane, source, tiles, io)
                    digests, more, size = tiles.collect()  # one plane's pixels at a time
                    planes.append(digests)
                    encoded.update(more)
                    nbytes += size
        finally:
            source.close()
        out = {DIGESTS: self._digest_row(geo, shard, planes)}
        if not params.ome_zarr:
            edge = self._handoff_edge(geo)
            handoff = np.zeros((1, edge, edge, core.shape[2]), dtype=core.dtype)
            handoff[0, : core.shape[0], : core.shape[1]] = core  # ``core`` is the last level's
            out[HANDOFF] = handoff
        if params.dzi is not None and params.dzi.container == "zip":
            part = dzi.pack(sorted(encoded.items(), key=lambda kv: dzi.sort_key(kv[0])))
            io.write_file(f"{PARTS}/{shard}.bin", part)
        stats = {
            "levels": geo.shard_levels,
            "tiles": sum(map(len, planes)),
            "dzi_bytes": nbytes,
            "read_pixels": (ry1 - ry0) * (rx1 - rx0) * params.depth,
        }
        return ShardOutput(arrays=out, stats=stats)

    def _plane(
        self,
        params: Params,
        geo: Geometry,
        shard: int,
        plane: int,
        source: Source,
        tiles: _Tiles,
        io: ShardIO,
    ) -> np.ndarray:
        """Read z-plane ``plane`` of the shard's region, compute its shard levels, write them
        and queue their tiles; return the last level's footprint (h, w, c)."""
        overlap = params.dzi.overlap if params.dzi is not None else 0
        ry0, ry1, rx0, rx1 = box = geo.read_box(shard, overlap)
        rows0, cols0 = geo.shard_tiles(shard, 0)
        waiting = list(rows0)
        writes = _Writes(params, io, tiles.pool, plane) if params.ome_zarr else None
        footprint = geo.footprint(shard, 0)
        bands = writes.bands(0, footprint) if writes is not None else []

        def submit_ready(pixels: np.ndarray, done: int) -> None:
            # Level-0 tiles go to the pool as soon as their rows (and overlap) are read, and
            # so do the level-0 writes of a band of stored objects.
            while waiting:
                needs = min((waiting[0] + 1) * geo.tile + overlap, geo.height)
                if needs > ry0 + done:
                    break
                row = waiting.pop(0)
                tiles.submit_level(geo, 0, pixels, (ry0, rx0), range(row, row + 1), cols0)
            while writes is not None and bands and bands[0][1] <= ry0 + done:
                y0, y1 = bands.pop(0)
                writes.submit(0, pixels, (ry0, rx0), (y0, y1, footprint[2], footprint[3]))

        try:
            pixels = self._read(params, source, box, plane, submit_ready)
            submit_ready(pixels, ry1 - ry0)
            for level in range(geo.shard_levels):
                origin = (ry0 >> level, rx0 >> level)
                fy0, fy1, fx0, fx1 = geo.footprint(shard, level)
                if level:
                    pixels = _downsample(params, pixels)
                    rows, cols = geo.shard_tiles(shard, level)
                    tiles.submit_level(geo, level, pixels, origin, rows, cols)
                    if writes is not None:
                        writes.submit(level, pixels, origin, (fy0, fy1, fx0, fx1))
                core = pixels[fy0 - origin[0] : fy1 - origin[0], fx0 - origin[1] : fx1 - origin[1]]
        finally:
            if writes is not None:
                writes.wait()
        return core

    @staticmethod
    def _handoff_edge(geo: Geometry) -> int:
        """Pixels on a side of a super-tile's footprint at the last shard level."""
        return geo.super_tile >> (geo.shard_levels - 1)

    @staticmethod
    def _digest_row(
        geo: Geometry, shard: int, planes: Sequence[Mapping[tuple[int, int, int], bytes]]
    ) -> np.ndarray:
        """The shard's row of ``tile_crc32``: each tile's CRC-32 in its slot (z-plane after
        z-plane: plane ``p``'s slots follow the ``p`` planes before it)."""
        per_plane = geo.tiles_per_super_tile()
        row = np.zeros((1, per_plane * len(planes), 4), dtype=np.uint8)
        for plane, digests in enumerate(planes):
            for (level, r, c), digest in digests.items():
                owner, slot = geo.slot(level, r, c)
                if owner != shard:
                    raise AssertionError(
                        f"tile {level}/{r}/{c} belongs to shard {owner}, not {shard}"
                    )
                row[0, plane * per_plane + slot] = np.frombuffer(digest, dtype=np.uint8)
        return row

    def _last_shard_level(
        self, params: Params, geo: Geometry, arrays: Mapping[str, Any], plane: int = 0
    ) -> np.ndarray:
        """The last level the shards computed (of z-plane ``plane``), as one (h, w, c) array."""
        last = geo.shard_levels - 1
        if params.ome_zarr:
            selection = _selection(params, plane, slice(None), slice(None))
            block = np.asarray(arrays[level_array(last)][selection])
            if params.depth > 1:
                block = block[:, 0]
            return np.ascontiguousarray(block.transpose(1, 2, 0))
        blocks = np.asarray(arrays[HANDOFF][...])
        pixels = np.empty((*geo.shape(last), blocks.shape[3]), dtype=blocks.dtype)
        for shard in range(geo.n_shards):
            y0, y1, x0, x1 = geo.footprint(shard, last)
            pixels[y0:y1, x0:x1] = blocks[shard, : y1 - y0, : x1 - x0]
        return pixels

    @staticmethod
    def _open(params: Params, io: InputIO, threads: int) -> Source:
        """The source, opened once for every plane of a shard; ``ValueError`` when it no
        longer matches what the job recorded."""
        source = open_source(params.source, io, threads, params.series)
        try:
            with_source(params, source.info)
        except ParamError as exc:
            source.close()
            raise ValueError(exc.message) from None
        except BaseException:
            source.close()
            raise
        return source

    @staticmethod
    def _read(
        params: Params,
        source: Source,
        box: tuple[int, int, int, int],
        plane: int,
        progress: Progress | None = None,
    ) -> np.ndarray:
        y0, y1, x0, x1 = box
        try:
            return source.read(y0, y1, x0, x1, progress, plane)
        except SourceError:
            raise
        except Exception as exc:  # a decoder's error on damaged data: name the file and region
            where = f" of z-plane {plane}" if params.depth > 1 else ""
            raise SourceError(
                f"{params.source}: cannot read rows {y0}:{y1}, columns {x0}:{x1}{where} "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """Compute the levels below the shard levels, write them and the DZI descriptor (or
        the zip) with its viewer page, and return the pyramid's description: the image, its
        checksum, then for every level its shape, tile grid, DZI level, whether it is in the
        OME-Zarr image, and its checksum; then the outputs and the next steps for a person."""
        if io is None:
            raise ValueError("imaging.pyramid's final step writes files and needs the engine's io")
        table = np.asarray(arrays[DIGESTS][...])
        geo = geometry(params, int(table.shape[0]))
        per_plane = geo.tiles_per_super_tile()
        planes: list[dict[tuple[int, int, int], bytes]] = []
        encoded: dict[str, bytes] = {}
        with ThreadPoolExecutor(pool_threads()) as pool, numba_on_this_thread_only():
            for plane in range(params.depth):
                digests: dict[tuple[int, int, int], bytes] = {}
                for level in range(geo.shard_levels):
                    rows, cols = geo.tiles(level)
                    for r in range(rows):
                        for c in range(cols):
                            owner, slot = geo.slot(level, r, c)
                            digests[level, r, c] = table[owner, plane * per_plane + slot].tobytes()
                pixels = self._last_shard_level(params, geo, arrays, plane)
                tiles = _Tiles(params, io, pool)
                for level in range(geo.shard_levels, geo.n_levels):
                    pixels = _downsample(params, pixels)
                    rows, cols = geo.tiles(level)
                    tiles.submit_level(geo, level, pixels, (0, 0), range(rows), range(cols))
                    if params.ome_zarr and level < geo.n_ome:
                        whole = _selection(params, plane, slice(None), slice(None))
                        io.write_array(level_array(level), whole, _level_data(params, pixels))
                more, tiled, _ = tiles.collect()
                digests.update(more)
                encoded.update(tiled)
                planes.append(digests)
        self._write_dzi(params, geo, io, encoded)
        return self._describe(params, geo, planes)

    @staticmethod
    def _write_dzi(params: Params, geo: Geometry, io: ShardIO, encoded: dict[str, bytes]) -> None:
        d = params.dzi
        if d is None:
            return
        xml = dzi.descriptor(geo.width, geo.height, geo.tile, d.overlap, d.format).encode()
        folder, name = DESCRIPTOR.rsplit("/", 1)
        if d.container == "directory":
            io.write_file(DESCRIPTOR, xml)
        else:
            members = dict(encoded)
            for shard in range(geo.n_shards):
                members.update(dzi.unpack(io.read_file(f"{PARTS}/{shard}.bin")))
            ordered = sorted(members, key=dzi.sort_key)
            entries = [(f"{dzi.NAME}/{dzi.NAME}.dzi", xml)]
            entries += [(dzi.zip_member(tile), members[tile]) for tile in ordered]
            io.write_file(ZIP, dzi.zip_pieces(entries))
            name = ZIPPED_DESCRIPTOR
        for path, data in viewer.page_files(name):  # the page and OpenSeadragon, if local
            io.write_file(f"{folder}/{path}", data)

    @staticmethod
    def _describe(
        params: Params, geo: Geometry, planes: Sequence[Mapping[tuple[int, int, int], bytes]]
    ) -> dict[str, Any]:
        levels = []
        whole = hashlib.sha256()
        z = [params.depth] if params.depth > 1 else []
        for level in range(geo.n_levels):
            rows, cols = geo.tiles(level)
            h = hashlib.sha256()
            for digests in planes:  # z-plane after z-plane
                for r in range(rows):
                    for c in range(cols):
                        h.update(digests[level, r, c])
                        whole.update(digests[level, r, c])
            levels.append(
                {
                    "level": level,
                    "shape": [*z, *geo.shape(level), params.channels],
                    "tiles": [rows, cols],
                    "dzi_level": geo.dzi_level(level),
                    "ome_zarr": params.ome_zarr and level < geo.n_ome,
                    "checksum": h.hexdigest(),
                }
            )
        d = params.dzi
        image: dict[str, Any] = {
            "width": geo.width,
            "height": geo.height,
            "channels": params.channels,
            "dtype": params.dtype,
        }
        method = CHECKSUM_METHOD
        if params.depth > 1:
            image["depth"] = params.depth
            method += ", z-planes in order within each level"
        axes = list(ome.axes(params.depth))
        return {
            "image": image,
            "tile_size": geo.tile,
            "checksum": f"sha256:{whole.hexdigest()}",
            "checksum_method": method,
            "levels": levels,
            "ome_zarr": (
                {"path": GROUP, "ngff": "0.5", "levels": geo.n_ome, "axes": axes}
                if params.ome_zarr
                else None
            ),
            "dzi": (
                {
                    "path": DESCRIPTOR if d.container == "directory" else ZIP,
                    "viewer": VIEWER,
                    "levels": geo.n_dzi,
                    "tiles": sum(r * c for r, c in map(geo.tiles, range(geo.n_levels))),
                }
                if d is not None
                else None
            ),
            "outputs": _outputs(params),
            "next": _next_steps(params),
        }

    def projected_seconds(self, params: Params, layout: Layout, shard: int) -> float:
        """Seconds ``shard`` takes on one core, roughly: its level-0 pixels at the measured
        rates of each output (``OME_ZARR_SAMPLES_PER_SECOND`` per channel, then
        ``DZI_PIXELS_PER_SECOND``)."""
        assert params.channels is not None
        per_pixel = params.channels / OME_ZARR_SAMPLES_PER_SECOND if params.ome_zarr else 0.0
        if params.dzi is not None:
            per_pixel += 1.0 / DZI_PIXELS_PER_SECOND
        return layout.shard_work[shard] * per_pixel

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """Projected peak bytes of one shard: its region (with margin) ``REGION_COPIES`` times
        over (the region, the smaller levels, Zarr's chunk copies and the encoded tiles) and
        ``SHARD_OVERHEAD`` more, plus, for PNG and JPEG sources (no random access), the whole
        decoded image and the file's bytes."""
        geo = geometry(params, layout.n_shards)
        overlap = params.dzi.overlap if params.dzi is not None else 0
        y0, y1, x0, x1 = geo.read_box(shard, overlap)
        pixel = _pixel_bytes(params)
        nbytes = REGION_COPIES * (y1 - y0) * (x1 - x0) * pixel + SHARD_OVERHEAD
        if params.format in ("png", "jpeg"):
            nbytes += 2 * geo.height * geo.width * pixel
        return nbytes


# A shard's peak over its region's bytes, rounded up, and what does not grow with the region:
# benchmarks/imaging.py --processes measured a shard's peak RSS, less the ~170-210 MiB of a
# process with tessera imported, at up to 5.4 regions for 4096^2 RGB (OME-Zarr and DZI zip) and
# 5.3 for 4096^2 of 5 uint16 channels (OME-Zarr): the level writes run beside the next levels,
# and a run keeps the memory it frees. Small regions add a part of their own: 2048^2 of 5 uint16
# channels (40 MiB) peaked at 195 MiB above the process for the first shard and 300 for the
# last of 16 (one lane), 287 a shard with two lanes (`tessera run`, /usr/bin/time): 6 regions
# and 64 MiB cover every case measured, where 6 regions alone fell short by up to 60 MiB.
REGION_COPIES = 6
SHARD_OVERHEAD = 64 << 20

KERNEL = PyramidKernel()
