"""Slow, literal NumPy references for the imaging kernels (the tests compare against these).

They follow the definitions, not the kernels' tricks: a 2x2 block at an odd edge is averaged
over the pixels that exist (counted), never by replicating the edge.
"""

from __future__ import annotations

import hashlib
import math
import zlib

import numpy as np


def _blocks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) of the 2x2 blocks of an (H, W, C) array as int64 (H, W padded with 0)."""
    h, w = image.shape[:2]
    padded = np.zeros((h + h % 2, w + w % 2, image.shape[2]), dtype=np.int64)
    padded[:h, :w] = image
    present = np.zeros(padded.shape[:2], dtype=np.int64)
    present[:h, :w] = 1
    sums = padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
    counts = present[0::2, 0::2] + present[1::2, 0::2] + present[0::2, 1::2] + present[1::2, 1::2]
    return sums, counts[..., None]


def _block_sum(values: np.ndarray) -> np.ndarray:
    sums, _ = _blocks(values)
    return sums


def mean2x2(image: np.ndarray) -> np.ndarray:
    """Grey/RGB: mean of the pixels of each block, rounded half up."""
    sums, counts = _blocks(image)
    return ((sums + counts // 2) // counts).astype(image.dtype)


def muldiv255(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Pillow's MULDIV255: c * a / 255 rounded (t = c*a + 128; (t + (t >> 8)) >> 8)."""
    t = c.astype(np.int64) * a + 128
    return (t + (t >> 8)) >> 8


def rgba8_pillow(image: np.ndarray) -> np.ndarray:
    """What Pillow's RGBA reduce(2) does: RGBA -> RGBa, mean, RGBa -> RGBA."""
    alpha = image[..., 3:].astype(np.int64)
    premul = np.concatenate([muldiv255(image[..., :3], alpha), alpha], axis=-1)
    sums, counts = _blocks(premul)
    mean = (sums + counts // 2) // counts
    a = mean[..., 3:]
    color = mean[..., :3]
    straight = np.where(
        (a == 0) | (a == 255), color, np.minimum(255, 255 * color // np.maximum(a, 1))
    )
    return np.concatenate([straight, a], axis=-1).astype(np.uint8)


def rgba_weighted(image: np.ndarray) -> np.ndarray:
    """uint16 RGBA: alpha-weighted colour mean sum(c*a)/sum(a) rounded half up; alpha mean."""
    alpha = image[..., 3:].astype(np.int64)
    weights = _block_sum(alpha)
    counts = _blocks(alpha)[1]
    a = (weights + counts // 2) // counts
    weighted = _block_sum(image[..., :3].astype(np.int64) * alpha)
    color = np.where(a == 0, 0, (2 * weighted + weights) // np.maximum(2 * weights, 1))
    return np.concatenate([color, a], axis=-1).astype(image.dtype)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def gamma_mean(image: np.ndarray) -> np.ndarray:
    """Mean in linear light (float64), alpha-weighted for RGBA, encoded back and rounded."""
    top = 255 if image.dtype == np.uint8 else 65535
    has_alpha = image.shape[2] == 4
    color = image[..., :3] if has_alpha else image
    linear = srgb_to_linear(color.astype(np.float64) / top)
    if has_alpha:
        alpha = image[..., 3:].astype(np.float64)
        weights = _block_sum(alpha.astype(np.int64)).astype(np.float64)
        counts = _blocks(alpha)[1]
        a = (weights.astype(np.int64) + counts // 2) // counts
        pad = np.zeros(
            (linear.shape[0] + linear.shape[0] % 2, linear.shape[1] + linear.shape[1] % 2, 3)
        )
        pad[: linear.shape[0], : linear.shape[1]] = linear * alpha
        sums = pad[0::2, 0::2] + pad[1::2, 0::2] + pad[0::2, 1::2] + pad[1::2, 1::2]
        mean = sums / np.maximum(weights, 1e-300)
        out = np.floor(linear_to_srgb(mean) * top + 0.5)
        out = np.where(a == 0, 0, out)
        return np.concatenate([out, a], axis=-1).astype(image.dtype)
    h, w = linear.shape[:2]
    pad = np.zeros((h + h % 2, w + w % 2, linear.shape[2]))
    pad[:h, :w] = linear
    sums = pad[0::2, 0::2] + pad[1::2, 0::2] + pad[0::2, 1::2] + pad[1::2, 1::2]
    counts = _blocks(image)[1]
    return np.floor(linear_to_srgb(sums / counts) * top + 0.5).astype(image.dtype)


def downsample(image: np.ndarray, gamma_correct: bool = False) -> np.ndarray:
    """The reference 2x2 downsample of an (H, W, C) uint8/uint16 image."""
    if gamma_correct:
        return gamma_mean(image)
    if image.shape[2] == 4:
        return rgba8_pillow(image) if image.dtype == np.uint8 else rgba_weighted(image)
    return mean2x2(image)


def pyramid(image: np.ndarray, gamma_correct: bool = False) -> list[np.ndarray]:
    """Every level of the 2x chain down to 1x1, level 0 first."""
    levels = [image]
    while max(levels[-1].shape[:2]) > 1:
        levels.append(downsample(levels[-1], gamma_correct))
    return levels


def level_checksum(level: np.ndarray, tile: int) -> str:
    """sha256 of the tiles' CRC-32s (4 bytes big-endian; (y, x, c) bytes), tiles row-major."""
    h = hashlib.sha256()
    for y in range(0, level.shape[0], tile):
        for x in range(0, level.shape[1], tile):
            crc = zlib.crc32(np.ascontiguousarray(level[y : y + tile, x : x + tile]).tobytes())
            h.update(crc.to_bytes(4, "big"))
    return h.hexdigest()


def dzi_level_count(width: int, height: int) -> int:
    """ceil(log2(max(w, h))) + 1, with floats, as the Deep Zoom documentation states it."""
    return int(math.ceil(math.log2(max(width, height)))) + 1


def dzi_names(width: int, height: int, tile: int, ext: str) -> set[str]:
    """Every tile name ``<level>/<col>_<row>.<ext>`` of a Deep Zoom pyramid."""
    names = set()
    n = dzi_level_count(width, height)
    for level in range(n):
        scale = 2 ** (n - 1 - level)
        w, h = math.ceil(width / scale), math.ceil(height / scale)
        for col in range(math.ceil(w / tile)):
            for row in range(math.ceil(h / tile)):
                names.add(f"{level}/{col}_{row}.{ext}")
    return names
