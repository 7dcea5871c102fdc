"""A Deep Zoom composite of a microscope's channels: 2 to 64 channels drawn as one RGB tile.

Deep Zoom tiles are grey, RGB or RGBA. An image of independent channels (fluorescence: DAPI,
GFP, ...) is shown the way napari and OMERO show it: each chosen channel is mapped through its
window (``low`` and below black, ``high`` and above full colour, linear between), tinted with
its colour, and the tinted channels are added, each sum clipped to 255. In integers, so the
bytes are the same on every machine:

* ``level = round_half_up(255 * clip(v - low, 0, high - low) / (high - low))``, 0..255;
* ``out[k] = min(255, round_half_up(sum(level_i * color_i[k]) / 255))`` for red, green, blue.

The window's levels are looked up in a table of every pixel value (256 or 65536 entries).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from tessera.kernels.imaging.pyramid_params import CompositeChannel


@functools.lru_cache(maxsize=64)
def window_table(low: int, high: int, top: int) -> np.ndarray:
    """``level`` (uint16, 0..255) of every pixel value 0..top for the window ``[low, high]``."""
    span = high - low
    values = np.clip(np.arange(top + 1, dtype=np.int64) - low, 0, span)
    return ((values * 510 + span) // (2 * span)).astype(np.uint16)


def rgb(color: str) -> tuple[int, int, int]:
    """``RRGGBB`` as three integers 0..255."""
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def composite(pixels: np.ndarray, channels: Sequence[CompositeChannel]) -> np.ndarray:
    """The (h, w, 3) uint8 composite of the (h, w, C) uint8/uint16 ``pixels``' ``channels``
    (resolved: an index, a colour and a window each; see the module docstring)."""
    top = 255 if pixels.dtype == np.uint8 else 65535
    total = np.zeros((*pixels.shape[:2], 3), dtype=np.int32)
    for c in channels:
        assert isinstance(c.channel, int) and c.color is not None and c.window is not None
        level = window_table(c.window[0], c.window[1], top)[pixels[..., c.channel]]
        level = level.astype(np.int32)
        for k, weight in enumerate(rgb(c.color)):
            if weight:
                total[..., k] += level * weight
    return np.minimum((total + 127) // 255, 255).astype(np.uint8)
