"""Decoding, colour-mode conversion and encoding of single images, with Pillow as the codec.

Pixels travel between the steps as NumPy arrays (height, width, channels) in one of five modes:
``L`` (grey, uint8), ``LA``, ``RGB``, ``RGBA`` (uint8) and ``I;16`` (grey, uint16); ``YCbCr``
(uint8) is an output mode only. Decoding maps Pillow's other modes onto these: 1-bit to ``L``,
palette to ``RGB`` or ``RGBA`` (when it has transparency), CMYK, LAB, HSV and YCbCr to ``RGB``,
16-bit grey to ``I;16``, 32-bit integer grey to ``I;16`` when its values fit. Only the first
frame of multi-frame files (GIF, animated WebP, multi-page TIFF) is read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO

import imagecodecs
import numpy as np
from PIL import Image, UnidentifiedImageError

from tessera.kernels.imaging import png
from tessera.kernels.imaging.color import luma, rgb_to_ycbcr
from tessera.kernels.imaging.formats import (
    CHANNELS,
    EXTENSIONS,
    FORMAT_ALIASES,
    FORMAT_MODES,
    FORMATS,
    MODES,
    OUTPUT_MODES,
)

__all__ = [
    "CHANNELS",
    "EXTENSIONS",
    "FORMAT_ALIASES",
    "FORMAT_MODES",
    "FORMATS",
    "MODES",
    "OUTPUT_MODES",
]

_FALLBACK: dict[str, dict[str, str]] = {
    "jpeg": {"LA": "L", "RGBA": "RGB", "I;16": "L"},
    "webp": {"L": "RGB", "LA": "RGBA", "I;16": "RGB"},
    "png": {},
    "tiff": {},
}
_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF"}

# Bytes per pixel of Pillow's in-memory image, by Pillow mode (RGB is stored 4 bytes wide).
_PIL_BYTES: dict[str, int] = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
# Decoded mode (one of MODES) that each Pillow mode becomes; palette images may become RGBA.
_DECODED: dict[str, str] = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "PA": "RGBA",
    "P": "RGBA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "I": "I;16",
    "I;16": "I;16",
    "I;16B": "I;16",
    "I;16L": "I;16",
    "I;16N": "I;16",
}


@dataclass(frozen=True)
class Decoded:
    """A decoded image: ``pixels`` (height, width, channels) uint8 or uint16, ``mode`` one of
    ``MODES`` and the embedded ICC profile (``None`` when there is none)."""

    pixels: np.ndarray
    mode: str
    icc_profile: bytes | None


def bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of an array in ``mode`` (one of ``OUTPUT_MODES``)."""
    return CHANNELS[mode] * (2 if mode == "I;16" else 1)


def supported(pil_mode: str) -> bool:
    """Whether :func:`decode` handles images of this Pillow mode."""
    return pil_mode in _DECODED


SUPPORTED_TYPES = "8-bit grey/RGB/RGBA/CMYK/palette, 16-bit grey"


def read_header(fh: BinaryIO) -> tuple[int, int, str]:
    """``(width, height, Pillow mode)`` of an image file without decoding its pixels (Pillow
    reads only the header). Raises ``OSError`` / ``ValueError`` for what Pillow cannot open."""
    with Image.open(fh) as im:
        return int(im.width), int(im.height), str(im.mode)


def projected_bytes(width: int, height: int, pil_mode: str, out_width: int, out_height: int) -> int:
    """Projected peak bytes of transcoding one image of ``pil_mode`` from ``width`` x
    ``height`` to ``out_width`` x ``out_height``: the file's bytes (at most its decoded size),
    Pillow's decoded image, four working arrays at the input size at most (pixels,
    premultiplied copy, and two of the horizontal pass's three: the columns made rows, the
    filtered rows, the pass's result), four at the output size (resized, converted, Pillow's
    copy, encoded)."""
    decoded = _DECODED.get(pil_mode, "RGBA")
    bpp = max(bytes_per_pixel(decoded), 1)
    pil_bpp = _PIL_BYTES.get(pil_mode, 4)
    out_bpp = max(bpp, 4)
    return width * height * (bpp + pil_bpp + 4 * bpp) + out_width * out_height * 4 * out_bpp


def decode(data: bytes) -> Decoded:
    """Decode the first frame of an image file held in ``data``. Raises ``OSError`` or
    ``ValueError`` (Pillow's, or "unsupported pixel type ...") for what cannot be decoded."""
    try:
        opened = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        kind = "an empty file" if not data else f"first bytes {data[:8]!r}"
        raise ValueError(
            f"not a decodable image: unknown format or corrupt header ({kind})"
        ) from None
    with opened:
        icc = opened.info.get("icc_profile") or None
        icc = icc if isinstance(icc, bytes) else None
        fast = _libpng(opened, data)
        if fast is not None:
            return Decoded(fast, opened.mode, icc)
        opened.load()
        im = opened
        mode = im.mode
        if mode not in _DECODED:
            raise ValueError(f"unsupported pixel type {mode}; expected {SUPPORTED_TYPES}")
        target = _DECODED[mode]
        if mode in ("P", "PA"):
            target = "RGBA" if mode == "PA" or im.has_transparency_data else "RGB"
        if target == "I;16":
            pixels = np.asarray(im)
            if mode == "I" and pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
                raise ValueError(
                    f"32-bit integer pixels from {pixels.min()} to {pixels.max()} do not fit "
                    f"16 bits"
                )
            pixels = pixels.astype(np.uint16)[:, :, None]
        else:
            if mode != target:
                im = im.convert(target)
            pixels = np.asarray(im)
            if pixels.ndim == 2:
                pixels = pixels[:, :, None]
        return Decoded(np.ascontiguousarray(pixels), target, icc)


# Pillow's raw modes of the PNGs that libpng decodes instead: 8 bits, no palette, not
# interlaced (Pillow's args are then a tuple), and no tRNS chunk (checked apart).
_LIBPNG_RAWMODES = ("L", "LA", "RGB", "RGBA")


def _libpng(opened: Image.Image, data: bytes) -> np.ndarray | None:
    """The pixels of an 8-bit grey or colour PNG, or ``None`` for any other file: the same
    pixels as Pillow's, decoded by libdeflate and Numba (:mod:`tessera.kernels.imaging.png`),
    else by libpng (imagecodecs), in 0.7 and 0.86 of Pillow's time on 1536x1024 RGB frames
    (``benchmarks/transcode.py``). A file both refuse is left to Pillow, whose error names the
    problem as for every other format."""
    tile = opened.tile[0] if len(opened.tile) == 1 else None
    if (
        opened.format != "PNG"
        or tile is None
        or tile.codec_name != "zip"
        or tile.args not in _LIBPNG_RAWMODES
        or tile.args != opened.mode
        or "transparency" in opened.info
    ):
        return None
    pixels = png.decode(data)
    if pixels is None:
        try:
            pixels = imagecodecs.png_decode(data)
        except imagecodecs.PngError:
            return None
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    if pixels.shape != (opened.height, opened.width, CHANNELS[opened.mode]):
        return None
    if pixels.dtype != np.uint8:
        return None
    return np.ascontiguousarray(pixels)


def default_mode(source_mode: str, fmt: str) -> str:
    """The output mode when the job names none: the source's, or the nearest that ``fmt`` can
    store (alpha dropped for JPEG, grey made RGB for WebP, 16-bit made 8-bit for JPEG/WebP)."""
    return _FALLBACK[fmt].get(source_mode, source_mode)


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    # round(v * 255 / 65535), exact in integers
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def convert(pixels: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert ``pixels`` from mode ``src`` (one of ``MODES``) to ``dst`` (one of
    ``OUTPUT_MODES``). Grey from colour is the BT.601 luma (as Pillow's ``convert("L")``);
    YCbCr is JPEG's (see :mod:`tessera.kernels.imaging.color`); 16 to 8 bits is round(v * 255 /
    65535), 8 to 16 bits v * 257; alpha is dropped, or added opaque."""
    if src == dst:
        return pixels
    if src not in MODES or dst not in OUTPUT_MODES:
        raise ValueError(f"cannot convert mode {src} to {dst}")
    if src == "I;16":
        pixels, src = _to_8bit(pixels), "L"
        if dst == "L":
            return pixels
    has_alpha = src in ("LA", "RGBA")
    colour = pixels[:, :, :3] if src in ("RGB", "RGBA") else None
    grey = pixels[:, :, :1] if colour is None else None
    alpha = pixels[:, :, -1:] if has_alpha else None
    if dst in ("L", "LA", "I;16"):
        body = grey if grey is not None else luma(pixels)[:, :, None]
        if dst == "I;16":
            return body.astype(np.uint16) * np.uint16(257)
    elif dst in ("RGB", "RGBA"):
        body = colour if colour is not None else np.repeat(grey, 3, axis=2)
    else:  # YCbCr
        if colour is not None:
            return rgb_to_ycbcr(np.ascontiguousarray(colour))
        assert grey is not None
        body = np.concatenate([grey, np.full(grey.shape[:2] + (2,), 128, np.uint8)], axis=2)
        return body
    if dst in ("LA", "RGBA"):
        if alpha is None:
            alpha = np.full(body.shape[:2] + (1,), 255, dtype=np.uint8)
        return np.ascontiguousarray(np.concatenate([body, alpha], axis=2))
    return np.ascontiguousarray(body)


def encode(
    pixels: np.ndarray, mode: str, fmt: str, quality: int, icc_profile: bytes | None = None
) -> bytes:
    """Encode ``pixels`` in ``mode`` as ``fmt`` (jpeg, png, webp, tiff). ``quality`` (1-100)
    applies to JPEG and WebP; PNG uses zlib level 6, TIFF is written uncompressed. The ICC
    profile, when given, is embedded."""
    arr = pixels[:, :, 0] if CHANNELS[mode] == 1 else pixels
    im = Image.fromarray(np.ascontiguousarray(arr), mode if mode == "YCbCr" else None)
    if im.mode != mode:
        raise ValueError(f"internal: encoding {mode} pixels gave a {im.mode} image")
    options: dict[str, Any] = {}
    if fmt in ("jpeg", "webp"):
        options["quality"] = quality
    if fmt == "png":
        options["compress_level"] = 6
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    buf = io.BytesIO()
    im.save(buf, format=_PIL_FORMAT[fmt], **options)
    return buf.getvalue()
