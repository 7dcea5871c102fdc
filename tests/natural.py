"""Deterministic, natural-looking test images: smooth fields, hard edges, fine detail, noise."""

from __future__ import annotations

import numpy as np


def natural(height: int, width: int, channels: int = 3, seed: int = 0, bits: int = 8) -> np.ndarray:
    """A (height, width, channels) uint8 (``bits=8``) or uint16 (``bits=16``) image: smooth
    sinusoidal fields per channel, a disc and a vertical step (hard edges), thin text-like
    strokes, and Gaussian noise. Values stay inside the range (about 8%-92% of full scale) so
    that resampling overshoot is not clipped."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = []
    for c in range(channels):
        f = 0.5 + 0.18 * np.sin(2 * np.pi * (x * (2 + c) + y * 1.5))
        f += 0.12 * np.cos(2 * np.pi * (y * 3 - x * c))
        f += np.where((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.04, 0.15, -0.05)
        f += (x > 0.7) * 0.1
        strokes = (np.sin(2 * np.pi * x * 40) > 0.9) & (np.abs(y - 0.8) < 0.05)
        f -= strokes * 0.2
        f += rng.normal(0.0, 0.03, (height, width))
        planes.append(f)
    img = np.clip(np.stack(planes, axis=-1), 0.08, 0.92)
    top = 255 if bits == 8 else 65535
    return np.rint(img * top).astype(np.uint8 if bits == 8 else np.uint16)
