"""OME-Zarr (NGFF 0.5, the Zarr v3 version) metadata of the pyramid's ``image`` group.

NGFF 0.5 puts the metadata under ``attributes["ome"]`` with ``"version": "0.5"`` and requires the
axes in the order time, channel, space (z, y, x), so every level is stored as a ``(c, y, x)``
array, or ``(c, z, y, x)`` for a z-stack: one Zarr chunk holds all channels of one ``tile x
tile`` square of one plane (a viewer fetches a tile in one request), and each array's
``dimension_names`` are the axes' names, as 0.5 requires. Grey images have ``c`` of length 1.

Level ``l`` has a scale transform ``[1, 2**l, 2**l]`` (its pixels are 2**l level-0 pixels on a
side; ``[1, 1, 2**l, 2**l]`` for a z-stack, which is downsampled in y and x only) and no
translation, like ome-zarr-py and bioformats2raw write. When the source gives its pixel size
(OME-XML ``PhysicalSizeX/Y/Z``, ImageJ calibration, an OME-Zarr's own scale), the scales are in
micrometres and the spatial axes say ``"unit": "micrometer"``; otherwise they are in pixels
and carry no unit. ``omero`` rendering metadata names the channels with their colours and
full-range windows: red, green, blue (and alpha) for colour images, so that viewers show them
in colour; the source's channel names and colours for a microscope's channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

AXES = ("c", "y", "x")
AXES_Z = ("c", "z", "y", "x")
COLOUR_CHANNELS = {
    1: (("grey", "FFFFFF"),),
    3: (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")),
    4: (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"), ("alpha", "FFFFFF")),
}
UNIT = "micrometer"
Size = Sequence[float | None]  # (z, y, x) in micrometres, None where unknown


def axes(depth: int) -> tuple[str, ...]:
    """The axes of every level: ``c, y, x``, or ``c, z, y, x`` for a z-stack (depth > 1)."""
    return AXES_Z if depth > 1 else AXES


def multiscales(
    n_levels: int, name: str = "image", depth: int = 1, pixel_size: Size | None = None
) -> dict[str, Any]:
    """One NGFF 0.5 ``multiscales`` entry for levels ``0 .. n_levels - 1`` (paths "0", "1", ...);
    ``pixel_size`` (z, y, x) in micrometres puts the scales in micrometres."""
    pz, py, px = pixel_size if pixel_size is not None else (None, None, None)
    spatial = {"z": pz, "y": py, "x": px}
    entries: list[dict[str, Any]] = [{"name": "c", "type": "channel"}]
    for axis in axes(depth)[1:]:
        entry: dict[str, Any] = {"name": axis, "type": "space"}
        if spatial[axis] is not None:
            entry["unit"] = UNIT
        entries.append(entry)

    def scale(level: int) -> list[float]:
        factor = float(2**level)
        out = [1.0]
        if depth > 1:
            out.append(float(pz) if pz is not None else 1.0)
        out += [(py if py is not None else 1.0) * factor, (px if px is not None else 1.0) * factor]
        return out

    return {
        "name": name,
        "axes": entries,
        "datasets": [
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": scale(level)}],
            }
            for level in range(n_levels)
        ],
        "type": "mean",
        "metadata": {
            "description": (
                "2x2 area mean of the level above, odd sides rounded up"
                + (" (y and x only; z is kept)" if depth > 1 else "")
            ),
            "method": "tessera.kernels.imaging.downsample.downsample2x",
        },
    }


def omero(
    channels: int,
    dtype: str,
    names: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Transitional ``omero`` rendering metadata: channel names, colours, full-range windows.
    ``names`` and ``colors`` (``RRGGBB``) are a microscope's channels; without them the
    channels are grey, RGB or RGBA."""
    top = 255 if dtype == "uint8" else 65535
    if names is None:
        entries = COLOUR_CHANNELS[channels]
        model = "greyscale" if channels == 1 else "color"
    else:
        assert colors is not None and len(names) == len(colors) == channels
        entries = tuple(zip(names, colors))
        model = "color"
    return {
        "rdefs": {"model": model},
        "channels": [
            {
                "label": label,
                "color": color,
                "active": names is not None or label != "alpha",
                "window": {"min": 0, "max": top, "start": 0, "end": top},
            }
            for label, color in entries
        ],
    }


def image_attributes(
    n_levels: int,
    channels: int,
    dtype: str,
    depth: int = 1,
    names: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    pixel_size: Size | None = None,
) -> dict[str, Any]:
    """The ``image`` group's attributes: ``{"ome": {"version": "0.5", "multiscales": [...],
    "omero": {...}}}``."""
    return {
        "ome": {
            "version": "0.5",
            "multiscales": [multiscales(n_levels, depth=depth, pixel_size=pixel_size)],
            "omero": omero(channels, dtype, names, colors),
        }
    }
