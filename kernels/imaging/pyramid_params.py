"""Parameters of ``imaging.pyramid``: validation of the job's ``[params]`` table.

Every error is a ``ParamError`` naming the key, the value and what was expected. ``width``,
``height``, ``channels``, ``dtype`` and ``format`` are filled in by the kernel's ``prepare`` from
the source image's header; a job file need not set them, but a stored job carries them, so they
are part of the spec hash and a source image that changed since is refused on resume.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kernels.base import ParamError
from kernels.imaging.tiles import MAX_TILE, MIN_TILE, is_power_of_two

KEYS = (
    "source",
    "tile_size",
    "gamma_correct",
    "ome_zarr",
    "dzi",
    "width",
    "height",
    "channels",
    "dtype",
    "format",
)
DZI_KEYS = ("format", "quality", "overlap", "container")
FORMATS = ("jpeg", "png", "webp")
CONTAINERS = ("directory", "zip")
DTYPES = ("uint8", "uint16")
SOURCE_FORMATS = ("tiff", "png", "jpeg", "zarr")


@dataclass(frozen=True)
class DziParams:
    """Deep Zoom output: tile ``format`` (jpeg, png, webp), ``quality`` 1-100 (JPEG, WebP),
    ``overlap`` 0 or 1 pixel, ``container`` directory or zip."""

    format: str = "jpeg"
    quality: int = 85
    overlap: int = 0
    container: str = "directory"


@dataclass(frozen=True)
class Params:
    """Validated pyramid parameters.

    ``source``: a path, file:// or s3:// URL of a TIFF/BigTIFF, PNG or JPEG, or of a Zarr array.
    ``tile_size``: OME-Zarr chunk and DZI tile edge in pixels, a power of two 64..4096.
    ``gamma_correct``: average in linear light (sRGB). ``ome_zarr``: write the OME-Zarr image
    (default true; false writes only the DZI). ``dzi``: Deep Zoom output, or ``None``.
    ``width``, ``height``, ``channels`` (1, 3, 4), ``dtype`` (uint8, uint16), ``format`` (tiff,
    png, jpeg, zarr): the source's, recorded by ``prepare``.
    """

    source: str
    tile_size: int = 256
    gamma_correct: bool = False
    ome_zarr: bool = True
    dzi: DziParams | None = None
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    dtype: str | None = None
    format: str | None = None

    @property
    def prepared(self) -> bool:
        """True once ``prepare`` has recorded the source's size and pixel type."""
        return None not in (self.width, self.height, self.channels, self.dtype, self.format)


def _unknown(key: str, allowed: tuple[str, ...], prefix: str = "") -> ParamError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {list(allowed)}"
    return ParamError(f"{prefix}{key}", f"unknown key; {hint}")


def _int(raw: Mapping[str, Any], key: str, default: int | None, lo: int, hi: int, name: str) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(name, f"expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ParamError(name, f"{value} is out of range; expected {lo}..{hi}")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ParamError(key, f"expected true or false, got {type(value).__name__} {value!r}")
    return value


def _choice(
    raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...], name: str
) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ParamError(name, f"{value!r} is not one of {list(choices)}")
    return str(value)


def _dzi(raw: Any) -> DziParams | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ParamError("dzi", f'expected a table like {{ format = "jpeg" }}, got {raw!r}')
    for key in raw:
        if key not in DZI_KEYS:
            raise _unknown(str(key), DZI_KEYS, "dzi.")
    return DziParams(
        format=_choice(raw, "format", "jpeg", FORMATS, "dzi.format"),
        quality=_int(raw, "quality", 85, 1, 100, "dzi.quality"),
        overlap=_int(raw, "overlap", 0, 0, 1, "dzi.overlap"),
        container=_choice(raw, "container", "directory", CONTAINERS, "dzi.container"),
    )


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate ``[params]``; ``ParamError`` naming the key on bad input."""
    for key in raw:
        if key not in KEYS:
            raise _unknown(str(key), KEYS)
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ParamError("source", f"is required: a path or URL of the image, got {source!r}")
    tile = _int(raw, "tile_size", 256, MIN_TILE, MAX_TILE, "tile_size")
    if not is_power_of_two(tile):
        raise ParamError(
            "tile_size", f"{tile} is not a power of two between {MIN_TILE} and {MAX_TILE}"
        )
    params = Params(
        source=source.strip(),
        tile_size=tile,
        gamma_correct=_bool(raw, "gamma_correct", False),
        ome_zarr=_bool(raw, "ome_zarr", True),
        dzi=_dzi(raw.get("dzi")),
        width=_int(raw, "width", None, 1, 2**31 - 1, "width"),
        height=_int(raw, "height", None, 1, 2**31 - 1, "height"),
        channels=_int(raw, "channels", None, 1, 4, "channels"),
        dtype=raw.get("dtype"),
        format=raw.get("format"),
    )
    if params.dtype is not None and params.dtype not in DTYPES:
        raise ParamError("dtype", f"{params.dtype!r} is not one of {list(DTYPES)}")
    if params.format is not None and params.format not in SOURCE_FORMATS:
        raise ParamError("format", f"{params.format!r} is not one of {list(SOURCE_FORMATS)}")
    if not params.ome_zarr and params.dzi is None:
        raise ParamError("ome_zarr", "is false and there is no dzi table: nothing to write")
    return params


def to_dict(params: Params) -> dict[str, Any]:
    """Canonical params: every key, defaults filled in (``dzi`` only when given, the source's
    numbers only once recorded)."""
    out: dict[str, Any] = {
        "source": params.source,
        "tile_size": params.tile_size,
        "gamma_correct": params.gamma_correct,
        "ome_zarr": params.ome_zarr,
    }
    if params.dzi is not None:
        d = params.dzi
        out["dzi"] = {
            "format": d.format,
            "quality": d.quality,
            "overlap": d.overlap,
            "container": d.container,
        }
    if params.prepared:
        out.update(
            width=params.width,
            height=params.height,
            channels=params.channels,
            dtype=params.dtype,
            format=params.format,
        )
    return out


def describe(width: Any, height: Any, channels: Any, dtype: Any, fmt: Any) -> str:
    """``700x530, 3 channels, uint8, png``."""
    return f"{width}x{height}, {channels} channels, {dtype}, {fmt}"


def with_source(
    params: Params, width: int, height: int, channels: int, dtype: str, fmt: str
) -> Params:
    """``params`` with the source's numbers recorded; ``ParamError`` naming ``source`` when
    numbers recorded earlier (a stored job) differ: the image changed since the job was made."""
    new = (width, height, channels, dtype, fmt)
    if params.prepared:
        old = (params.width, params.height, params.channels, params.dtype, params.format)
        if old != new:
            raise ParamError(
                "source",
                f"{params.source} is now {describe(*new)}, but the job recorded "
                f"{describe(*old)}: the image changed since the job was planned; start a new "
                f"store (or restore the image)",
            )
        return params
    return replace(params, width=width, height=height, channels=channels, dtype=dtype, format=fmt)
