"""Make deterministic, realistic-looking test images for the imaging kernels.

The pictures look like a stained slide or an aerial scene rather than noise: smooth colour fields
(low-frequency waves), blobs with hard edges, lines of small text-like glyphs, fine stripes and a
little sensor noise. Every pixel is a function of its coordinates and the seed only, generated in
bands of ``BAND`` rows, so the same arguments always give the same pixels, whatever the size of
the machine.

    python examples/make_images.py OUTDIR [--size 8192x8192] [--formats tiff,png,jpeg]
        [--mode RGB|L|RGBA] [--bits 8|16] [--tile 256] [--bigtiff] [--compression none|zlib|jpeg]
        [--seed 0]

writes ``OUTDIR/slide-<W>x<H>.<ext>`` (``.tif`` is tiled, ``--tile`` pixels; PNG and JPEG are
written whole, so keep them below a few hundred megapixels). Imported, ``make_image`` returns the
array and ``write_tiff`` / ``write_pillow`` write it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BAND = 256  # rows generated at once; a constant so that the noise never depends on the caller
_GLYPHS = 64  # distinct 5x7 glyph bitmaps


def _palette(rng: np.random.Generator) -> np.ndarray:
    """Background, stain and ink colours (RGB, 0..1) of one picture."""
    base = np.array([0.93, 0.90, 0.94])
    stain = np.array([0.75, 0.35, 0.60]) + rng.uniform(-0.08, 0.08, 3)
    nuclei = np.array([0.30, 0.20, 0.55]) + rng.uniform(-0.05, 0.05, 3)
    ink = np.array([0.08, 0.07, 0.10])
    return np.stack([base, stain, nuclei, ink])


class _Scene:
    """The random but fixed content of one picture (seeded), evaluated band by band."""

    def __init__(self, width: int, height: int, seed: int) -> None:
        rng = np.random.default_rng([seed, width, height])
        self.width, self.height, self.seed = width, height, seed
        self.colors = _palette(rng)
        scale = max(width, height)
        # Smooth field: a few separable waves, periods of 1/8 to 1/2 of the image.
        self.waves = [
            (
                rng.uniform(1, 8) * 2 * math.pi / scale,
                rng.uniform(0, 2 * math.pi),
                rng.uniform(1, 8) * 2 * math.pi / scale,
                rng.uniform(0, 2 * math.pi),
                rng.uniform(0.2, 0.5),
            )
            for _ in range(4)
        ]
        # Blobs ("tissue" and "nuclei"): centres, radii, which colour.
        n_blobs = max(8, int(width * height / 8_000))
        self.blobs = np.column_stack(
            [
                rng.uniform(0, width, n_blobs),
                rng.uniform(0, height, n_blobs),
                rng.uniform(4, 30, n_blobs) * (1 + (rng.uniform(0, 1, n_blobs) < 0.03) * 4),
                rng.integers(1, 3, n_blobs),
            ]
        )
        self.glyphs = rng.uniform(0, 1, (_GLYPHS, 7, 5)) < 0.45
        # Text blocks: rectangles holding lines of 7-px glyphs (a slide label, map lettering).
        n_text = max(1, int(width * height / 2_000_000))
        self.text = np.column_stack(
            [
                rng.uniform(0, width * 0.9, n_text),
                rng.uniform(0, height * 0.9, n_text),
                rng.uniform(80, 600, n_text),
                rng.uniform(20, 200, n_text),
            ]
        ).astype(np.int64)

    def band(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` as float32 RGB in 0..1, shape (y1 - y0, width, 3)."""
        w = self.width
        y = np.arange(y0, y1, dtype=np.float64)[:, None]
        x = np.arange(w, dtype=np.float64)[None, :]
        field = np.zeros((y1 - y0, w), dtype=np.float64)
        for kx, px, ky, py, amp in self.waves:
            field += amp * np.cos(ky * y + py) * np.cos(kx * x + px)
        field = 0.5 + 0.25 * field  # 0..1, smooth
        colors = self.colors
        img = colors[0] + (colors[1] - colors[0]) * (0.35 * field)[..., None]
        # Blobs near this band: hard edges, a soft inside.
        cx, cy, r, kind = (self.blobs[:, i] for i in range(4))
        near = (cy + r >= y0) & (cy - r < y1)
        for bx, by, br, bk in zip(cx[near], cy[near], r[near], kind[near]):
            xa, xb = max(int(bx - br), 0), min(int(bx + br) + 1, w)
            if xa >= xb:
                continue
            d2 = (x[:, xa:xb] - bx) ** 2 + (y - by) ** 2
            inside = d2 <= br * br
            shade = 0.75 + 0.25 * np.sqrt(np.minimum(d2 / (br * br), 1.0))
            color = colors[int(bk)]
            patch = img[:, xa:xb]
            patch[inside] = (color * shade[inside][:, None])[:, :]
        # Text-like detail: lines of glyphs, 9 px apart, 6 px advance.
        for tx, ty, tw, th in self.text:
            ya, yb = max(ty, y0), min(ty + th, y1)
            if ya >= yb:
                continue
            xa, xb = tx, min(tx + tw, w)
            rows = np.arange(ya, yb) - ty
            cols = np.arange(xa, xb) - tx
            line, gy = rows // 9, rows % 9
            char, gx = cols // 6, cols % 6
            ids = (line[:, None] * 131 + char[None, :] * 17 + self.seed) % _GLYPHS
            on = (gy[:, None] < 7) & (gx[None, :] < 5)
            bits = self.glyphs[ids, np.minimum(gy, 6)[:, None], np.minimum(gx, 4)[None, :]]
            ink = on & bits
            region = img[ya - y0 : yb - y0, xa:xb]
            region[ink] = colors[3]
            region[~ink] = 0.97
        # Fine stripes (a scan pattern) and noise, seeded per band of BAND rows.
        img *= (1.0 - 0.03 * ((np.arange(w) // 3) % 2))[None, :, None]
        out = np.empty((y1 - y0, w, 3), dtype=np.float32)
        for b0 in range(y0 - y0 % BAND, y1, BAND):
            rng = np.random.default_rng([self.seed, self.width, self.height, b0])
            noise = rng.normal(0.0, 0.015, (BAND, w, 3))
            lo, hi = max(b0, y0), min(b0 + BAND, y1)
            out[lo - y0 : hi - y0] = img[lo - y0 : hi - y0] + noise[lo - b0 : hi - b0]
        return out


def _convert(rgb: np.ndarray, mode: str, bits: int, scene: _Scene) -> np.ndarray:
    """Float RGB band -> (h, w, C) uint8/uint16 in ``mode`` (L, RGB or RGBA)."""
    top = 65535 if bits == 16 else 255
    if mode == "L":
        pix = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    elif mode == "RGBA":
        # Alpha: opaque "tissue", transparent margins at the left and right tenth.
        x = np.arange(rgb.shape[1], dtype=np.float32)
        edge = np.clip((np.minimum(x, scene.width - 1 - x) / (0.1 * scene.width)), 0.0, 1.0)
        alpha = np.broadcast_to(edge[None, :, None], (*rgb.shape[:2], 1))
        pix = np.concatenate([rgb, alpha], axis=-1)
    else:
        pix = rgb
    out = np.clip(np.rint(pix * top), 0, top)
    return out.astype(np.uint16 if bits == 16 else np.uint8)


def make_image(
    width: int, height: int, mode: str = "RGB", bits: int = 8, seed: int = 0
) -> np.ndarray:
    """The whole picture as an (height, width, C) array, C = 1, 3 or 4 for L, RGB, RGBA."""
    return np.concatenate(list(bands(width, height, mode, bits, seed)), axis=0)


def bands(
    width: int, height: int, mode: str = "RGB", bits: int = 8, seed: int = 0
) -> Iterator[np.ndarray]:
    """The picture in bands of ``BAND`` rows (the last may be shorter), top to bottom."""
    if mode not in ("L", "RGB", "RGBA") or bits not in (8, 16):
        raise ValueError(f"mode must be L, RGB or RGBA and bits 8 or 16, got {mode} {bits}")
    scene = _Scene(width, height, seed)
    for y0 in range(0, height, BAND):
        y1 = min(y0 + BAND, height)
        yield _convert(scene.band(y0, y1), mode, bits, scene)


def write_tiff(
    path: str | Path,
    width: int,
    height: int,
    mode: str = "RGB",
    bits: int = 8,
    seed: int = 0,
    tile: int = 256,
    bigtiff: bool = False,
    compression: str | None = None,
) -> Path:
    """Write a tiled TIFF band by band (memory: one band of ``tile`` rows); returns the path."""
    import tifffile

    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    dtype = np.uint16 if bits == 16 else np.uint8

    def row_of_tiles(strip: np.ndarray) -> Iterator[np.ndarray]:
        for x0 in range(0, width, tile):
            block = np.zeros((tile, tile, channels), dtype=dtype)
            part = strip[:, x0 : x0 + tile]
            block[: part.shape[0], : part.shape[1]] = part
            yield block

    def tiles() -> Iterator[np.ndarray]:
        pending = np.empty((0, width, channels), dtype=dtype)
        for band in bands(width, height, mode, bits, seed):
            pending = np.concatenate([pending, band])
            while pending.shape[0] >= tile:
                yield from row_of_tiles(pending[:tile])
                pending = pending[tile:]
        if pending.shape[0]:
            yield from row_of_tiles(pending)

    extra = "unassalpha" if mode == "RGBA" else None
    tifffile.imwrite(
        path,
        tiles(),
        shape=(height, width, channels) if channels > 1 else (height, width),
        dtype=dtype,
        tile=(tile, tile),
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=[extra] if extra else None,
        planarconfig="contig",
        bigtiff=bigtiff,
        compression=compression,
        metadata=None,
    )
    return Path(path)


def write_pillow(path: str | Path, image: np.ndarray, quality: int = 90) -> Path:
    """Write an (h, w, C) uint8 array (or uint16 grey) as PNG or JPEG by the path's suffix."""
    from PIL import Image

    suffix = Path(path).suffix.lower()
    if image.dtype == np.uint16:
        if image.shape[2] != 1 or suffix != ".png":
            raise ValueError("16-bit images go to PNG only, and only grey (Pillow's I;16)")
        Image.fromarray(image[..., 0]).save(path)  # mode I;16
        return Path(path)
    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
    if suffix in (".jpg", ".jpeg"):
        pil.convert("L" if image.shape[2] == 1 else "RGB").save(path, quality=quality)
    else:
        pil.save(path)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT (default 4000x3000)")
    parser.add_argument("--formats", default="tiff", help="comma list of tiff, png, jpeg")
    parser.add_argument("--mode", default="RGB", choices=["L", "RGB", "RGBA"])
    parser.add_argument("--bits", type=int, default=8, choices=[8, 16])
    parser.add_argument("--tile", type=int, default=256, help="TIFF tile edge (multiple of 16)")
    parser.add_argument("--bigtiff", action="store_true", help="write BigTIFF")
    parser.add_argument("--compression", default="none", choices=["none", "zlib", "jpeg"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    args.outdir.mkdir(parents=True, exist_ok=True)
    stem = f"slide-{width}x{height}"
    for fmt in args.formats.split(","):
        fmt = fmt.strip().lower()
        if fmt in ("tif", "tiff"):
            path = write_tiff(
                args.outdir / f"{stem}.tif",
                width,
                height,
                args.mode,
                args.bits,
                args.seed,
                args.tile,
                args.bigtiff,
                None if args.compression == "none" else args.compression,
            )
        elif fmt in ("png", "jpeg", "jpg"):
            image = make_image(width, height, args.mode, args.bits, args.seed)
            path = write_pillow(args.outdir / f"{stem}.{'png' if fmt == 'png' else 'jpg'}", image)
        else:
            parser.error(f"unknown format {fmt!r}; expected tiff, png or jpeg")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
