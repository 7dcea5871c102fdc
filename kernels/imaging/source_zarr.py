"""Zarr sources: an array (v2 or v3), an OME-Zarr image group (its first, full-resolution
dataset, with the group's axes, pixel sizes and channel names), or a bioformats2raw folder (its
image ``series``).

Axes come from the array's dimension names, else from the OME-Zarr group's ``axes``, else from
the shape: ``(y, x)``, ``(y, x, c)`` or ``(c, y, x)`` with ``c`` the axis of length 1, 3 or 4 at
either end. ``t`` must have length 1; ``z`` may be longer (a z-stack). Channels are grey, RGB or
RGBA when there are 1, 3 or 4 and the group's ``omero`` labels do not name them otherwise (so
tessera's own pyramids read back as they were made); else they are independent channels, named
by ``omero`` (or ``Channel <i>``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tessera.kernels.base import InputIO
from tessera.kernels.imaging import omexml
from tessera.kernels.imaging.source import (
    ImageInfo,
    PixelSize,
    Progress,
    SourceError,
    channel_colors,
    channel_names,
    check_pixels,
    known_size,
)

_AXES = {"t", "c", "z", "y", "x"}


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

    def __init__(self, url: str, io: InputIO, series: int = 0) -> None:
        import zarr

        self.url = url
        root = url.rstrip("/")
        store = _input_store(io, root)
        try:
            node = zarr.open(store=store, mode="r")
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise FileNotFoundError(f"{url}: no Zarr array here ({exc})") from None
        ome: dict[str, Any] = {}
        if isinstance(node, zarr.Group):
            node, ome = self._first_dataset(url, node, series)
        elif series:
            raise SourceError(f"{url}: series = {series}, but a Zarr array holds one image")
        self._array = node
        self._names = names = self._axis_names(url, node, ome)
        shape = dict(zip(names, node.shape))
        if shape.get("t", 1) != 1:
            raise SourceError(
                f"{url}: a Zarr array with axes {names} and shape {tuple(node.shape)}: a time "
                f"series of {shape['t']} time points; tessera makes the pyramid of one 2-D image "
                f"or z-stack and leaves time out: write one array per time point"
            )
        channels = shape.get("c", 1)
        labels = _omero(ome, "label", channels)
        own = labels is not None and tuple(labels) in _COLOUR_LABELS
        independent = channels not in (1, 3, 4) or (labels is not None and not own)
        dtype = check_pixels(url, "the Zarr array", node.dtype, channels, independent)
        names_, colors = None, None
        if independent:
            names_ = channel_names(channels, labels)
            colors = channel_colors(channels, _omero(ome, "color", channels))
        size = _pixel_size(ome)
        depth = shape.get("z", 1)
        self.info = ImageInfo(
            "zarr", shape["x"], shape["y"], channels, dtype, depth, names_, colors, size
        )

    @staticmethod
    def _first_dataset(url: str, group: Any, series: int) -> tuple[Any, dict[str, Any]]:
        """The full-resolution array of an OME-Zarr image group (or of image ``series`` of a
        bioformats2raw folder), and the group's OME attributes."""
        attrs = dict(group.attrs)
        ome = attrs.get("ome", attrs)
        if "multiscales" not in ome and "bioformats2raw.layout" in ome:
            try:
                image = group[str(series)]
            except KeyError:
                raise SourceError(
                    f"{url}: series = {series}, but the bioformats2raw folder has no image {series}"
                ) from None
            attrs = dict(image.attrs)
            ome, group = attrs.get("ome", attrs), image
        elif series:
            raise SourceError(f"{url}: series = {series}, but the OME-Zarr holds one image")
        try:
            path = ome["multiscales"][0]["datasets"][0]["path"]
            return group[path], dict(ome)
        except (KeyError, IndexError, TypeError):
            raise SourceError(
                f"{url}: a Zarr group, not an array; give the URL of an array, or of an OME-Zarr "
                f"image group (with multiscales metadata)"
            ) from None

    @staticmethod
    def _axis_names(url: str, array: Any, ome: dict[str, Any]) -> list[str]:
        shape = tuple(array.shape)
        names = list(getattr(array.metadata, "dimension_names", None) or [])
        if not names:
            names = _ome_axes(ome, len(shape))
        if set(names) <= _AXES and {"y", "x"} <= set(names) and len(set(names)) == len(names):
            return names
        if len(shape) == 2:
            return ["y", "x"]
        if len(shape) == 3 and shape[2] in (1, 3, 4):
            return ["y", "x", "c"]
        if len(shape) == 3 and shape[0] in (1, 3, 4):
            return ["c", "y", "x"]
        raise SourceError(
            f"{url}: a Zarr array of shape {shape} without axis names; expected (y, x), (y, x, c) "
            f"or (c, y, x) with 1, 3 or 4 channels, or dimension names from t, c, z, y, x (e.g. "
            f"zarr.create_array(..., dimension_names=['c', 'z', 'y', 'x']))"
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
        if not 0 <= z < self.info.depth:
            raise IndexError(f"{self.url}: z-plane {z} of {self.info.depth}")
        ranges = {"t": 0, "z": z, "y": slice(y0, y1), "x": slice(x0, x1), "c": slice(None)}
        block = np.asarray(self._array[tuple(ranges[n] for n in self._names)])
        kept = [n for n in self._names if n in ("y", "x", "c")]
        block = block.transpose([kept.index(a) for a in ("y", "x", "c") if a in kept])
        if block.ndim == 2:
            block = block[..., None]
        out = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("="))
        if progress is not None:
            progress(out, y1 - y0)
        return out

    def close(self) -> None:
        pass


def _colour_labels() -> set[tuple[str, ...]]:
    from tessera.kernels.imaging.ome import COLOUR_CHANNELS

    return {tuple(label for label, _ in entries) for entries in COLOUR_CHANNELS.values()}


_COLOUR_LABELS = _colour_labels()


def _ome_axes(ome: dict[str, Any], ndim: int) -> list[str]:
    """Axis names from an OME-Zarr group's multiscales (NGFF 0.4+: dicts; 0.3: strings)."""
    try:
        axes = ome["multiscales"][0]["axes"]
        names = [a["name"] if isinstance(a, dict) else a for a in axes]
    except (KeyError, IndexError, TypeError):
        return []
    return [str(n) for n in names] if len(names) == ndim else []


def _omero(ome: dict[str, Any], key: str, channels: int) -> tuple[str | None, ...] | None:
    """Each ``omero`` channel's ``key`` (``label`` or ``color``), or ``None`` when the group
    has no omero channels for every channel."""
    try:
        entries = ome["omero"]["channels"]
    except (KeyError, TypeError):
        return None
    if not isinstance(entries, list) or len(entries) != channels:
        return None
    values: list[str | None] = []
    for entry in entries:
        value = entry.get(key) if isinstance(entry, dict) else None
        if key == "color" and isinstance(value, str):
            value = value.upper() if len(value) == 6 else None
        values.append(value if isinstance(value, str) and value else None)
    return tuple(values)


def _pixel_size(ome: dict[str, Any]) -> PixelSize | None:
    """(z, y, x) in micrometres from the first dataset's scale and the axes' units."""
    try:
        multiscale = ome["multiscales"][0]
        axes = multiscale["axes"]
        scale = [1.0] * len(axes)
        for transforms in (multiscale["datasets"][0], multiscale):
            for t in transforms.get("coordinateTransformations", []):
                if t.get("type") == "scale":
                    scale = [a * float(b) for a, b in zip(scale, t["scale"])]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    size: dict[str, float | None] = {}
    for axis, factor in zip(axes, scale):
        if isinstance(axis, dict) and axis.get("name") in ("z", "y", "x"):
            um = omexml.ngff_micrometres(factor, axis.get("unit"))
            size[axis["name"]] = um if um is not None and um > 0 else None
    return known_size((size.get("z"), size.get("y"), size.get("x")))
