"""Parameters of ``imaging.pyramid``: validation of the job's ``[params]`` table.

Every error is a ``ParamError`` naming the key, the value and what was expected. ``width``,
``height``, ``channels``, ``dtype`` and ``format`` are filled in by the kernel's ``prepare`` from
the source image's header, and so are, for images that have them, ``depth`` (z-planes),
``channel_names`` and ``channel_colors`` (a microscope's independent channels) and
``pixel_size`` (micrometres); a job file need not set them, but a stored job carries them, so
they are part of the spec hash and a source image that changed since is refused on resume.
``prepare`` also resolves ``dzi.channels`` (names to indices, default colours and windows) and
refuses what Deep Zoom cannot hold (see :func:`with_source`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tessera.kernels.base import ParamError
from tessera.kernels.imaging.tiles import MAX_TILE, MIN_TILE, is_power_of_two
from tessera.kernels.validate import (
    boolean,
    bounded_integer,
    check_keys,
    expected,
    is_integer,
    is_number,
    not_one_of,
    shown,
)

if TYPE_CHECKING:  # the source module needs NumPy; validating params does not
    from tessera.kernels.imaging.source import ImageInfo

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
    "series",
    "depth",
    "channel_names",
    "channel_colors",
    "pixel_size",
)
DZI_KEYS = ("format", "quality", "overlap", "container", "channels")
COMPOSITE_KEYS = ("channel", "color", "window")
MAX_CHANNELS = 64
_HEX = re.compile(r"[0-9A-Fa-f]{6}")
FORMATS = ("jpeg", "png", "webp")
CONTAINERS = ("directory", "zip")
DTYPES = ("uint8", "uint16")
SOURCE_FORMATS = ("tiff", "png", "jpeg", "zarr")


@dataclass(frozen=True)
class CompositeChannel:
    """One channel of a Deep Zoom composite: ``channel`` (an index, or a name of the source's
    channels), ``color`` (``RRGGBB``; default the channel's own) and ``window`` (the pixel
    values shown as black and as full colour; default the dtype's whole range). ``prepare``
    resolves every field: ``channel`` to an index, ``color`` and ``window`` to values."""

    channel: int | str
    color: str | None = None
    window: tuple[int, int] | None = None


@dataclass(frozen=True)
class DziParams:
    """Deep Zoom output: tile ``format`` (jpeg, png, webp; ``jpg`` and upper case are accepted
    as ``imaging.transcode`` accepts them and recorded as ``jpeg``), ``quality`` 1-100 (JPEG,
    WebP), ``overlap`` 0 or 1 pixel, ``container`` directory or zip. ``channels``: render the
    tiles as an 8-bit RGB composite of these channels (added, each in its colour, after its
    window), the way to tile a microscope's image of 2 to 64 channels; ``None``: the pixels as
    they are (grey, RGB, RGBA)."""

    format: str = "jpeg"
    quality: int = 85
    overlap: int = 0
    container: str = "directory"
    channels: tuple[CompositeChannel, ...] | None = None


@dataclass(frozen=True)
class Params:
    """Validated pyramid parameters.

    ``source``: a path, file:// or s3:// URL of a TIFF/BigTIFF, PNG or JPEG, or of a Zarr array.
    ``tile_size``: OME-Zarr chunk and DZI tile edge in pixels, a power of two 64..4096.
    ``gamma_correct``: average in linear light (sRGB). ``ome_zarr``: write the OME-Zarr image
    (default true; false writes only the DZI). ``dzi``: Deep Zoom output, or ``None``.
    ``series``: the image of a multi-series TIFF or bioformats2raw Zarr (default 0, the first).
    ``width``, ``height``, ``channels`` (1-64), ``dtype`` (uint8, uint16), ``format`` (tiff,
    png, jpeg, zarr), ``depth`` (z-planes, 1 for a 2-D image), ``channel_names`` and
    ``channel_colors`` (set for independent channels, ``None`` for grey/RGB/RGBA),
    ``pixel_size`` ((z, y, x) micrometres, ``None`` where unknown): the source's, recorded by
    ``prepare``.
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
    series: int = 0
    depth: int = 1
    channel_names: tuple[str, ...] | None = None
    channel_colors: tuple[str, ...] | None = None
    pixel_size: tuple[float | None, float | None, float | None] | None = None

    @property
    def prepared(self) -> bool:
        """True once ``prepare`` has recorded the source's size and pixel type."""
        return None not in (self.width, self.height, self.channels, self.dtype, self.format)

    @property
    def independent(self) -> bool:
        """True when the channels are independent measurements (a microscope's), averaged
        each on its own: none of them is alpha, and they are not shown as RGB."""
        return self.channel_names is not None


def _choice(
    raw: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...], name: str
) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise not_one_of(name, value, str(list(choices)))
    return str(value)


def _color(value: Any, key: str) -> str:
    """``RRGGBB`` (a leading ``#`` is accepted), recorded in upper case."""
    if isinstance(value, str) and _HEX.fullmatch(value.removeprefix("#")):
        return value.removeprefix("#").upper()
    raise expected(key, 'a colour as "RRGGBB" hex, e.g. "00FF00"', value)


def _composite_channel(item: Any, key: str) -> CompositeChannel:
    if is_integer(item) or isinstance(item, str):
        item = {"channel": item}
    if not isinstance(item, Mapping):
        raise expected(
            key, 'a channel index or name, or a table like { channel = "GFP", color = '
            '"00FF00", window = [100, 4000] }', item)  # fmt: skip
    check_keys(item, COMPOSITE_KEYS, f"{key}.")
    channel = item.get("channel")
    if not (is_integer(channel) and 0 <= channel < MAX_CHANNELS) and not (
        isinstance(channel, str) and channel.strip()
    ):
        raise expected(
            f"{key}.channel", f"a channel index 0..{MAX_CHANNELS - 1} or a channel's name", channel
        )
    color = _color(item["color"], f"{key}.color") if "color" in item else None
    window = None
    if "window" in item:
        w = item["window"]
        if (
            not isinstance(w, (list, tuple))
            or len(w) != 2
            or not all(is_integer(v) and 0 <= v <= 65535 for v in w)
            or not w[0] < w[1]
        ):
            raise expected(
                f"{key}.window", "[low, high], pixel values with 0 <= low < high <= 65535", w
            )
        window = (int(w[0]), int(w[1]))
    return CompositeChannel(channel, color, window)


def _composite(raw: Any) -> tuple[CompositeChannel, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)) or not 1 <= len(raw) <= MAX_CHANNELS:
        raise expected("dzi.channels", f"a list of 1 to {MAX_CHANNELS} channels to composite", raw)
    return tuple(_composite_channel(item, f"dzi.channels[{i}]") for i, item in enumerate(raw))


def _strings(raw: Mapping[str, Any], key: str, color: bool = False) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_CHANNELS:
        raise expected(key, f"a list of 1 to {MAX_CHANNELS} strings, one per channel", value)
    if color:
        return tuple(_color(v, key) for v in value)
    if not all(isinstance(v, str) and v for v in value):
        raise expected(key, "a list of channel names (non-empty strings)", value)
    return tuple(value)


def _pixel_size(raw: Mapping[str, Any]) -> tuple[float | None, float | None, float | None] | None:
    value = raw.get("pixel_size")
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise expected("pixel_size", "a table like { x = 0.325, y = 0.325, z = 2.0 }", value)
    check_keys(value, ("z", "y", "x"), "pixel_size.")
    out: list[float | None] = []
    for axis in ("z", "y", "x"):
        v = value.get(axis)
        if v is not None and not (is_number(v) and 0 < v < 1e300):  # finite, float() of it too
            raise expected(f"pixel_size.{axis}", "a positive number of micrometres", v)
        out.append(None if v is None else float(v))
    return (out[0], out[1], out[2])


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
        channels=_composite(raw.get("channels")),
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
        channels=bounded_integer(raw, "channels", 1, MAX_CHANNELS, None),
        dtype=raw.get("dtype"),
        format=raw.get("format"),
        series=bounded_integer(raw, "series", 0, 2**31 - 1, 0),
        depth=bounded_integer(raw, "depth", 1, 2**31 - 1, 1),
        channel_names=_strings(raw, "channel_names"),
        channel_colors=_strings(raw, "channel_colors", color=True),
        pixel_size=_pixel_size(raw),
    )
    names, colors = params.channel_names, params.channel_colors
    if (names is None) != (colors is None) or (
        names is not None and colors is not None and len(names) != len(colors)
    ):
        raise ParamError("channel_colors", "expected one colour for each of channel_names")
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
    if params.series:
        out["series"] = params.series
    if params.dzi is not None:
        d = params.dzi
        out["dzi"] = {
            "format": d.format,
            "quality": d.quality,
            "overlap": d.overlap,
            "container": d.container,
        }
        if d.channels is not None:
            out["dzi"]["channels"] = [
                {
                    k: v
                    for k, v in (
                        ("channel", c.channel),
                        ("color", c.color),
                        ("window", None if c.window is None else list(c.window)),
                    )
                    if v is not None
                }
                for c in d.channels
            ]
    if params.prepared:
        out.update(
            width=params.width,
            height=params.height,
            channels=params.channels,
            dtype=params.dtype,
            format=params.format,
        )
        # only what a source has: a grey, RGB or RGBA 2-D image records none of these
        if params.depth > 1:
            out["depth"] = params.depth
        if params.channel_names is not None and params.channel_colors is not None:
            out["channel_names"] = list(params.channel_names)
            out["channel_colors"] = list(params.channel_colors)
        if params.pixel_size is not None:
            size = dict(zip(("z", "y", "x"), params.pixel_size))
            out["pixel_size"] = {k: v for k, v in size.items() if v is not None}
    return out


def describe(width: Any, height: Any, channels: Any, dtype: Any, fmt: Any) -> str:
    """``700x530, 3 channels, uint8, png``."""
    return f"{width}x{height}, {channels} channels, {dtype}, {fmt}"


def _recorded(params: Params) -> tuple[Any, ...]:
    return (
        params.width,
        params.height,
        params.channels,
        params.dtype,
        params.format,
        params.depth,
        params.channel_names,
        params.channel_colors,
        params.pixel_size,
    )


def _info_recorded(info: ImageInfo) -> tuple[Any, ...]:
    return (
        info.width,
        info.height,
        info.channels,
        info.dtype,
        info.format,
        info.depth,
        info.names,
        info.colors,
        info.pixel_size,
    )


def _recorded_text(values: tuple[Any, ...]) -> str:
    width, height, channels, dtype, fmt, depth, names, _, size = values
    text = describe(width, height, channels, dtype, fmt)
    if depth > 1:
        text += f", {depth} z-planes"
    if names is not None:
        text += f", channels {', '.join(names)}"
    if size is not None:
        text += f", pixel size (z, y, x) {size} um"
    return text


def with_source(params: Params, info: ImageInfo) -> Params:
    """``params`` with the source's numbers recorded (``info``: its header); ``ParamError``
    naming ``source`` when numbers recorded earlier (a stored job) differ: the image changed
    since the job was made.

    Recording them also checks what the image allows, and resolves ``dzi.channels``:
    ``ParamError`` for ``gamma_correct`` with independent channels (they are intensities, not
    sRGB codes), and for ``dzi`` with a z-stack (Deep Zoom is 2-D) or with 2 or more
    independent channels and no ``dzi.channels`` (Deep Zoom tiles are grey, RGB or RGBA: a
    composite must say which channels, colours and windows)."""
    new = _info_recorded(info)
    if params.prepared:
        old = _recorded(params)
        if old != new:
            raise ParamError(
                "source",
                f"{params.source} is now {_recorded_text(new)}, but the job recorded "
                f"{_recorded_text(old)}: the image changed since the job was planned; start a "
                f"new store (or restore the image)",
            )
        return _checked(params, info)  # resolving resolved channels changes nothing
    recorded = replace(
        params,
        width=info.width,
        height=info.height,
        channels=info.channels,
        dtype=info.dtype,
        format=info.format,
        depth=info.depth,
        channel_names=info.names,
        channel_colors=info.colors,
        pixel_size=info.pixel_size,
    )
    return _checked(recorded, info)


def _what(params: Params, info: ImageInfo) -> str:
    """``/data/cells.ome.tif is a 2050x1301 5-channel uint16 TIFF (channels DAPI, ...)``."""
    text = f"{params.source} is a {info.describe()}"
    if info.names is not None and info.channels > 1:
        text += f" (channels {', '.join(info.names)})"
    return text


def _checked(params: Params, info: ImageInfo) -> Params:
    """Refuse what the image does not allow; resolve ``dzi.channels``."""
    if params.gamma_correct and params.independent:
        raise ParamError(
            "gamma_correct",
            f"is true, but {_what(params, info)}: its channels are measured intensities, not "
            f"sRGB codes, and averaging them in sRGB linear light would distort them; remove "
            f"gamma_correct",
        )
    d = params.dzi
    if d is None:
        return params
    if params.depth > 1:
        raise ParamError(
            "dzi",
            f"{_what(params, info)}; Deep Zoom holds one 2-D image and has no z: remove the dzi "
            f"table (the OME-Zarr image keeps every z-plane), or write the plane to tile to a "
            f"file of its own",
        )
    if d.channels is None:
        if params.independent and info.channels > 1:
            first = (info.names or ("0",))[0]
            raise ParamError(
                "dzi",
                f"{_what(params, info)}; Deep Zoom tiles hold grey, RGB or RGBA only, not "
                f"{info.channels} independent channels: set dzi.channels to render a composite, "
                f'e.g. dzi = {{ channels = [{{ channel = "{first}", color = "0000FF", window = '
                f"[0, 4000] }}] }} (channel names or indices, colours RRGGBB, windows of pixel "
                f"values), or remove the dzi table (the OME-Zarr image keeps every channel)",
            )
        return params
    return replace(params, dzi=replace(d, channels=_resolved(params, info, d.channels)))


def _resolved(
    params: Params, info: ImageInfo, channels: tuple[CompositeChannel, ...]
) -> tuple[CompositeChannel, ...]:
    from tessera.kernels.imaging.ome import COLOUR_CHANNELS

    top = 255 if info.dtype == "uint8" else 65535
    names = info.names
    if names is not None:
        colors = info.colors or ()
    else:
        labels = COLOUR_CHANNELS.get(info.channels, ())
        names = tuple(label for label, _ in labels)
        colors = tuple(color for _, color in labels)
    out = []
    for i, c in enumerate(channels):
        key = f"dzi.channels[{i}]"
        index = c.channel
        if isinstance(index, str):
            if index not in names:
                raise ParamError(
                    f"{key}.channel",
                    f"{index!r} is not a channel of {params.source}; its channels are "
                    f"{', '.join(names) or 'unnamed'} (or give an index 0..{info.channels - 1})",
                )
            index = names.index(index)
        if not 0 <= index < info.channels:
            raise ParamError(
                f"{key}.channel",
                f"{index} is out of range: {params.source} has {info.channels} channels "
                f"(0..{info.channels - 1})",
            )
        window = c.window or (0, top)
        if window[1] > top:
            raise ParamError(
                f"{key}.window",
                f"{list(window)} goes past {top}, the largest {info.dtype} value",
            )
        color = c.color or (colors[index] if index < len(colors) else "FFFFFF")
        out.append(CompositeChannel(index, color, window))
    return tuple(out)
