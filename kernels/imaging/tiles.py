"""Tile-grid arithmetic of an image pyramid: level sizes, tiles, super-tiles (shards), DZI boxes.

Levels are numbered from full resolution: level 0 is the image, level ``l`` is ``ceil(H / 2**l)``
by ``ceil(W / 2**l)`` (each level is the 2x2 mean of the one above, odd sides rounded up, see
:mod:`tessera.kernels.imaging.downsample`). The chain goes down to 1x1:

* the OME-Zarr image holds levels ``0 .. n_ome - 1``, down to the first level that fits in one
  tile (both sides <= ``tile``);
* Deep Zoom holds every level, ``ceil(log2(max(W, H))) + 1`` of them, numbered the other way:
  DZI level ``d`` is pyramid level ``n_dzi - 1 - d`` (DZI 0 is 1x1, the last DZI level is full
  size).

A shard owns one super-tile: a square of ``super_tile`` level-0 pixels (the job's
``shard_size``), ``super_tile = tile * 2**k``. At level ``l <= k`` the super-tile covers
``super_tile >> l`` pixels, a whole number of tiles, so every tile, Zarr chunk, Zarr shard and
DZI tile of those levels belongs to exactly one shard. Shards compute levels ``0 ..
shard_levels - 1``; the smaller levels, where a super-tile would cover less than a tile, are
computed by the final step from the last shard level.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SUPER_TILE = 4096
MIN_TILE, MAX_TILE = 64, 4096


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for non-negative a and positive b."""
    return -(-a // b)


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return n > 0 and n & (n - 1) == 0


def level_shape(height: int, width: int, level: int) -> tuple[int, int]:
    """(height, width) of pyramid level ``level``: each side ceil(side / 2**level)."""
    return ceil_div(height, 1 << level), ceil_div(width, 1 << level)


def dzi_level_count(height: int, width: int) -> int:
    """Deep Zoom levels: ceil(log2(max(width, height))) + 1 (1 for a 1x1 image)."""
    return (max(height, width) - 1).bit_length() + 1


def ome_level_count(height: int, width: int, tile: int) -> int:
    """OME-Zarr levels: down to the first level whose sides both fit in one tile."""
    tiles_along = ceil_div(max(height, width), tile)  # level L fits when this <= 2**L
    return (tiles_along - 1).bit_length() + 1


def tile_grid(height: int, width: int, tile: int) -> tuple[int, int]:
    """(rows, cols) of tiles covering a level; the last row and column may be partial."""
    return ceil_div(height, tile), ceil_div(width, tile)


def dzi_tile_box(
    col: int, row: int, height: int, width: int, tile: int, overlap: int
) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of DZI tile ``col_row`` in a level of ``height`` x ``width``: the
    ``tile`` square plus ``overlap`` pixels on every side that has a neighbour, clipped to the
    level (as ``vips dzsave`` cuts them)."""
    y0 = max(row * tile - overlap, 0)
    x0 = max(col * tile - overlap, 0)
    y1 = min((row + 1) * tile + overlap, height)
    x1 = min((col + 1) * tile + overlap, width)
    return y0, y1, x0, x1


def shard_grid(height: int, width: int, super_tile: int) -> tuple[int, int]:
    """(rows, cols) of super-tiles (shards) covering level 0."""
    return ceil_div(height, super_tile), ceil_div(width, super_tile)


def super_tile_for(height: int, width: int, tile: int, n_shards: int) -> int:
    """The smallest ``tile * 2**k`` whose super-tile grid has at most ``n_shards`` cells.

    The count falls strictly as ``k`` grows until it reaches 1, so a ``shard_size`` maps to a
    shard count and back to itself (except that every size covering the whole image gives one
    shard, and then the smallest such size is chosen)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    size = tile
    while True:
        rows, cols = shard_grid(height, width, size)
        if rows * cols <= n_shards:
            return size
        size *= 2


@dataclass(frozen=True)
class Geometry:
    """Everything about the tiles of one pyramid job that follows from its numbers."""

    height: int
    width: int
    tile: int
    super_tile: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"empty image {self.width}x{self.height}")
        if not is_power_of_two(self.tile) or not is_power_of_two(self.super_tile // self.tile):
            raise ValueError(f"super_tile {self.super_tile} is not tile {self.tile} * 2**k")
        if self.super_tile % self.tile:
            raise ValueError(f"super_tile {self.super_tile} is not a multiple of {self.tile}")

    # -- levels ---------------------------------------------------------------------------

    @property
    def n_ome(self) -> int:
        """Levels in the OME-Zarr image."""
        return ome_level_count(self.height, self.width, self.tile)

    @property
    def n_dzi(self) -> int:
        """Levels in the Deep Zoom pyramid (= every level of the chain, down to 1x1)."""
        return dzi_level_count(self.height, self.width)

    @property
    def n_levels(self) -> int:
        """Levels of the whole chain (0 .. n_levels - 1), the DZI count (>= n_ome)."""
        return self.n_dzi

    @property
    def shard_levels(self) -> int:
        """Levels computed by the shards: 0 .. shard_levels - 1 (at least 1, at most n_ome).
        Level ``l`` qualifies while the super-tile still covers a whole tile:
        ``super_tile >> l >= tile``."""
        k = (self.super_tile // self.tile).bit_length() - 1
        return min(k + 1, self.n_ome)

    def shape(self, level: int) -> tuple[int, int]:
        """(height, width) of ``level``."""
        return level_shape(self.height, self.width, level)

    def tiles(self, level: int) -> tuple[int, int]:
        """(rows, cols) of tiles of ``level``."""
        return tile_grid(*self.shape(level), self.tile)

    def dzi_level(self, level: int) -> int:
        """The DZI level number of pyramid level ``level``."""
        return self.n_dzi - 1 - level

    # -- shards ---------------------------------------------------------------------------

    @property
    def shard_rows_cols(self) -> tuple[int, int]:
        return shard_grid(self.height, self.width, self.super_tile)

    @property
    def n_shards(self) -> int:
        rows, cols = self.shard_rows_cols
        return rows * cols

    def footprint(self, shard: int, level: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` that ``shard`` owns at ``level`` (level 0: its region)."""
        rows, cols = self.shard_rows_cols
        if not 0 <= shard < rows * cols:
            raise IndexError(f"shard {shard} is out of range for {rows * cols} shards")
        sy, sx = divmod(shard, cols)
        edge = self.super_tile >> level
        height, width = self.shape(level)
        y0, x0 = sy * edge, sx * edge
        return y0, min(y0 + edge, height), x0, min(x0 + edge, width)

    def margin(self, overlap: int) -> int:
        """Level-0 pixels a shard reads beyond its region on each side: none for the 2x2 box
        filter itself; with a DZI overlap, ``2**(shard_levels - 1)`` so that the overlap pixel
        of the last shard level is exact (a multiple of every level's block size, so the
        blocks stay aligned to the image's)."""
        return (1 << (self.shard_levels - 1)) if overlap else 0

    def read_box(self, shard: int, overlap: int) -> tuple[int, int, int, int]:
        """The level-0 box ``shard`` reads: its region plus the margin, clipped to the image."""
        y0, y1, x0, x1 = self.footprint(shard, 0)
        m = self.margin(overlap)
        return max(y0 - m, 0), min(y1 + m, self.height), max(x0 - m, 0), min(x1 + m, self.width)

    def shard_tiles(self, shard: int, level: int) -> tuple[range, range]:
        """Tile rows and columns of ``level`` that ``shard`` owns (level < shard_levels)."""
        y0, y1, x0, x1 = self.footprint(shard, level)
        t = self.tile
        return range(y0 // t, ceil_div(y1, t)), range(x0 // t, ceil_div(x1, t))

    def tiles_per_super_tile(self) -> int:
        """Tile slots of one full super-tile over the shard levels (the digest rows per shard)."""
        return sum(
            ((self.super_tile >> level) // self.tile) ** 2 for level in range(self.shard_levels)
        )

    def slot(self, level: int, row: int, col: int) -> tuple[int, int]:
        """``(shard, index)``: which shard owns tile ``row, col`` of shard level ``level`` and its
        slot in that shard's digest list (levels in order, tiles row-major in the super-tile)."""
        per = (self.super_tile >> level) // self.tile
        _, cols = self.shard_rows_cols
        shard = (row // per) * cols + col // per
        base = sum(((self.super_tile >> lv) // self.tile) ** 2 for lv in range(level))
        return shard, base + (row % per) * per + col % per

    def zarr_shard_shape(self, level: int) -> tuple[int, int]:
        """Zarr v3 shard (y, x) of ``level``: for shard levels a quarter of a super-tile's
        footprint (half its edge) while that is 2 tiles or more, so that a tessera shard's
        write of a level is 4 objects that the store encodes on every core (one thread each,
        ``tessera.engine.store``), else the footprint (one object per tessera shard and level);
        after them the whole level (at most a super-tile); rounded up to whole tiles."""
        height, width = self.shape(level)
        t = self.tile
        edge = self.super_tile >> level if level < self.shard_levels else self.super_tile
        if level < self.shard_levels and edge >= 4 * t:
            edge //= 2
        return min(edge, ceil_div(height, t) * t), min(edge, ceil_div(width, t) * t)
