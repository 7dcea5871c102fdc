"""The image formats, modes and resize limits that the transcode's params name: plain data, with
no import of Pillow, NumPy or Numba, so that job files can be validated where those are not
installed (the S3 trigger's Lambda, ``engine/trigger.py``)."""

from __future__ import annotations

MODES: tuple[str, ...] = ("L", "LA", "RGB", "RGBA", "I;16")
OUTPUT_MODES: tuple[str, ...] = (*MODES, "YCbCr")
CHANNELS: dict[str, int] = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1, "YCbCr": 3}

FORMATS: tuple[str, ...] = ("jpeg", "png", "webp", "tiff")
FORMAT_ALIASES: dict[str, str] = {"jpg": "jpeg", "tif": "tiff"}
EXTENSIONS: dict[str, str] = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif"}
# The output modes each format can store, and the one used when the source's mode is not one.
FORMAT_MODES: dict[str, tuple[str, ...]] = {
    "jpeg": ("L", "RGB", "YCbCr"),
    "png": ("L", "LA", "RGB", "RGBA", "I;16"),
    "webp": ("RGB", "RGBA"),
    "tiff": ("L", "LA", "RGB", "RGBA", "I;16", "YCbCr"),
}

# Resampling filters of kernels/imaging/resize.py, and the longest side it takes: larger sides
# would overflow the 8-bit path's int32-sized sums, as in Pillow.
METHODS: tuple[str, ...] = ("lanczos", "area")
MAX_EDGE = 1 << 20
