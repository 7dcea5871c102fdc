"""OME-Zarr (NGFF 0.5, the Zarr v3 version) metadata of the pyramid's ``image`` group.

NGFF 0.5 puts the metadata under ``attributes["ome"]`` with ``"version": "0.5"`` and requires the
axes in the order time, channel, space (z, y, x), so every level is stored as a ``(c, y, x)``
array: one Zarr chunk holds all channels of one ``tile x tile`` square (a viewer fetches a tile
in one request), and each array's ``dimension_names`` are ``["c", "y", "x"]`` as 0.5 requires.
Grey images have ``c`` of length 1.

Level ``l`` has a scale transform ``[1, 2**l, 2**l]`` (its pixels are 2**l level-0 pixels on a
side) and no translation, like ome-zarr-py and bioformats2raw write. ``omero`` rendering metadata
names the channels (red, green, blue, alpha) with their colours and full-range windows so that
viewers show RGB images in colour.
"""

from __future__ import annotations

from typing import Any

AXES = ("c", "y", "x")
_CHANNELS = {
    1: (("grey", "FFFFFF"),),
    3: (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")),
    4: (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"), ("alpha", "FFFFFF")),
}


def multiscales(n_levels: int, name: str = "image") -> dict[str, Any]:
    """One NGFF 0.5 ``multiscales`` entry for levels ``0 .. n_levels - 1`` (paths "0", "1", ...)."""
    return {
        "name": name,
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space"},
            {"name": "x", "type": "space"},
        ],
        "datasets": [
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, float(2**level), float(2**level)]}
                ],
            }
            for level in range(n_levels)
        ],
        "type": "mean",
        "metadata": {
            "description": "2x2 area mean of the level above, odd sides rounded up",
            "method": "tessera.kernels.imaging.downsample.downsample2x",
        },
    }


def omero(channels: int, dtype: str) -> dict[str, Any]:
    """Transitional ``omero`` rendering metadata: channel names, colours, full-range windows."""
    top = 255 if dtype == "uint8" else 65535
    return {
        "rdefs": {"model": "greyscale" if channels == 1 else "color"},
        "channels": [
            {
                "label": label,
                "color": color,
                "active": label != "alpha",
                "window": {"min": 0, "max": top, "start": 0, "end": top},
            }
            for label, color in _CHANNELS[channels]
        ],
    }


def image_attributes(n_levels: int, channels: int, dtype: str) -> dict[str, Any]:
    """The ``image`` group's attributes: ``{"ome": {"version": "0.5", "multiscales": [...],
    "omero": {...}}}``."""
    return {
        "ome": {
            "version": "0.5",
            "multiscales": [multiscales(n_levels)],
            "omero": omero(channels, dtype),
        }
    }
