"""Parameters of ``imaging.pyramid``: validation of the job's ``[params]`` table.

Every error is a ``ParamError`` naming the key, the value and what was expected. ``width``,
``height``, ``channels``, ``dtype`` and ``format`` are filled in by the kernel's ``prepare`` from
the source image's header; a job file need not set them, but a stored job carries them, so they
are part of the spec hash and a source image that changed since is refused on resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.imaging.tiles import MAX_TILE, MIN_TILE, is_power_of_two
from tessera.kernels.validate import boolean, bounded_integer, check_keys, not_one_of, shown

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
    """Deep Zoom output: tile ``format`` (jpeg, png, webp; ``jpg`` and upper case are accepted
    as ``imaging.transcode`` accepts them and recorded as ``jpeg``), ``quality`` 1-100 (JPEG,
    WebP), ``overlap`` 0 or 1 pixel, ``container`` directory or zip."""

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


def _choice(
    raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...], name: str
) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise not_one_of(name, value, str(list(choices)))
    return str(value)


def _dzi(raw: Any) -> DziParams | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ParamError("dzi", f'expected a table like {{ format = "jpeg" }}, got {shown(raw)}')
    check_keys(raw, DZI_KEYS, "dzi.")
    fmt = raw.get("format", "jpeg")
    if isinstance(fmt, str):  # as imaging.transcode reads its format: "JPG" is "jpeg"
        from tessera.kernels.imaging.formats import FORMAT_ALIASES

        known = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
        fmt = known if known in FORMATS else fmt  # a refusal shows what the job file says
    return DziParams(
        format=_choice({"format": fmt}, "format", "jpeg", FORMATS, "dzi.format"),
        quality=bounded_integer(raw, "quality", 1, 100, 85, "dzi.quality"),
        overlap=bounded_integer(raw, "overlap", 0, 1, 0, "dzi.overlap"),
        container=_choice(raw, "container", "directory", CONTAINERS, "dzi.container"),
    )


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate ``[params]``; ``ParamError`` naming the key on bad input."""
    check_keys(raw, KEYS)
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ParamError("source", f"is required: a path or URL of the image, got {shown(source)}")
    tile = bounded_integer(raw, "tile_size", MIN_TILE, MAX_TILE, 256)
    if not is_power_of_two(tile):
        raise ParamError(
            "tile_size", f"{tile} is not a power of two between {MIN_TILE} and {MAX_TILE}"
        )
    params = Params(
        source=source.strip(),
        tile_size=tile,
        gamma_correct=boolean(raw, "gamma_correct", False, typed=True),
        ome_zarr=boolean(raw, "ome_zarr", True, typed=True),
        dzi=_dzi(raw.get("dzi")),
        width=bounded_integer(raw, "width", 1, 2**31 - 1, None),
        height=bounded_integer(raw, "height", 1, 2**31 - 1, None),
        channels=bounded_integer(raw, "channels", 1, 4, None),
        dtype=raw.get("dtype"),
        format=raw.get("format"),
    )
    if params.dtype is not None and params.dtype not in DTYPES:
        raise not_one_of("dtype", params.dtype, str(list(DTYPES)))
    if params.format is not None and params.format not in SOURCE_FORMATS:
        raise not_one_of("format", params.format, str(list(SOURCE_FORMATS)))
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
