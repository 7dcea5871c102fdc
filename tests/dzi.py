"""A tiny Deep Zoom (DZI) writer for tests, independent of the imaging.pyramid kernel.

Layout as ``vips dzsave`` writes it: ``NAME.dzi`` and ``NAME_files/<level>/<col>_<row>.<ext>``,
levels 0 (1x1) .. ceil(log2(max(w, h))), each level the next one halved (rounded up).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image


def quadrants(width: int, height: int) -> np.ndarray:
    """An RGB test image of four flat, well-separated colours (red, green, blue, yellow)."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2] = (220, 30, 30)
    img[:h2, w2:] = (30, 200, 40)
    img[h2:, :w2] = (30, 60, 220)
    img[h2:, w2:] = (240, 220, 30)
    return img


def write_dzi(folder: Path, image: np.ndarray, name: str = "image", tile: int = 256) -> Path:
    """Write ``image`` as ``folder/NAME.dzi`` with PNG tiles (overlap 0); returns the .dzi."""
    height, width = image.shape[:2]
    top = math.ceil(math.log2(max(width, height))) if max(width, height) > 1 else 0
    full = Image.fromarray(image)
    for level in range(top, -1, -1):
        factor = 2 ** (top - level)
        w, h = max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor))
        level_img = full.resize((w, h), Image.Resampling.BOX) if (w, h) != full.size else full
        out = folder / f"{name}_files" / str(level)
        out.mkdir(parents=True, exist_ok=True)
        for col in range(math.ceil(w / tile)):
            for row in range(math.ceil(h / tile)):
                box = (col * tile, row * tile, min(w, (col + 1) * tile), min(h, (row + 1) * tile))
                level_img.crop(box).save(out / f"{col}_{row}.png")
    dzi = folder / f"{name}.dzi"
    dzi.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="png" Overlap="0" '
        f'TileSize="{tile}">\n  <Size Width="{width}" Height="{height}"/>\n</Image>\n'
    )
    return dzi
