"""What a pyramid keeps from a microscope's metadata: channel names and colours, pixel sizes.

:func:`parse` reads one ``Image`` of an OME-XML document (``tifffile.TiffFile.ome_metadata``),
:func:`micrometres` converts a length in any OME ``UnitsLength`` to micrometres, and
:func:`hex_color` turns OME's packed colour (a signed 32-bit RGBA integer) into the ``RRGGBB``
string that NGFF's ``omero`` metadata holds. Nothing here opens files; a document that does not
parse gives no metadata rather than an error (the pixels are still readable).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

# OME UnitsLength symbols -> micrometres per unit. "pixel" and "reference frame" are not
# lengths: a size in them is no physical size at all.
_UM_PER_UNIT = {
    "Ym": 1e30, "Zm": 1e27, "Em": 1e24, "Pm": 1e21, "Tm": 1e18, "Gm": 1e15, "Mm": 1e12,
    "km": 1e9, "hm": 1e8, "dam": 1e7, "m": 1e6, "dm": 1e5, "cm": 1e4, "mm": 1e3,
    "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "nm": 1e-3, "pm": 1e-6, "fm": 1e-9, "am": 1e-12, "zm": 1e-15, "ym": 1e-18,
    "Å": 1e-4, "thou": 25.4, "li": 25400.0 / 12, "in": 25400.0, "ft": 304800.0,
    "yd": 914400.0, "mi": 1.609344e9, "ua": 1.495978707e17, "ly": 9.4607304725808e21,
    "pc": 3.0856775814913673e22, "pt": 25400.0 / 72,
}  # fmt: skip
# NGFF (UDUNITS-2) length names -> micrometres per unit, for an OME-Zarr source's axes.
_UM_PER_NGFF_UNIT = {
    "angstrom": 1e-4, "attometer": 1e-12, "centimeter": 1e4, "decimeter": 1e5,
    "dekameter": 1e7, "exameter": 1e24, "femtometer": 1e-9, "foot": 304800.0, "gigameter": 1e15,
    "hectometer": 1e8, "inch": 25400.0, "kilometer": 1e9, "megameter": 1e12, "meter": 1e6,
    "micrometer": 1.0, "mile": 1.609344e9, "millimeter": 1e3, "nanometer": 1e-3,
    "parsec": 3.0856775814913673e22, "petameter": 1e21, "picometer": 1e-6, "terameter": 1e18,
    "yard": 914400.0, "yoctometer": 1e-18, "yottameter": 1e30, "zeptometer": 1e-15,
    "zettameter": 1e27,
}  # fmt: skip
# The colours viewers give channels when the file names none (napari's and Fiji's order).
DEFAULT_COLORS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def micrometres(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` (an OME UnitsLength symbol; ``None``: OME's default, µm) as
    micrometres, or ``None`` for a unit that is not a length (pixel, reference frame) or that
    OME does not define."""
    if unit is None:
        unit = "µm"
    scale = _UM_PER_UNIT.get(unit.strip())
    return None if scale is None else value * scale


def ngff_micrometres(value: float, unit: str | None) -> float | None:
    """``value`` in the NGFF axis unit ``unit`` (``micrometer``, ``nanometer``, ...) as
    micrometres, or ``None`` for no unit or one that is not a length."""
    scale = _UM_PER_NGFF_UNIT.get(unit) if isinstance(unit, str) else None
    return None if scale is None else value * scale


def hex_color(packed: int) -> str:
    """OME's ``Color`` (RGBA packed in a signed 32-bit integer, red in the high byte) as
    ``RRGGBB``; alpha is dropped (NGFF's omero colours have none)."""
    rgba = packed & 0xFFFFFFFF
    return f"{rgba >> 24:02X}{(rgba >> 16) & 0xFF:02X}{(rgba >> 8) & 0xFF:02X}"


def default_color(index: int, channels: int) -> str:
    """The colour of channel ``index`` of ``channels`` when the file names none: white for one
    channel, green and magenta for two, else blue, green, red, magenta, cyan, yellow, white in
    turn."""
    if channels == 1:
        return "FFFFFF"
    if channels == 2:
        return ("00FF00", "FF00FF")[index]
    return DEFAULT_COLORS[index % len(DEFAULT_COLORS)]


@dataclass(frozen=True)
class ImageMetadata:
    """What one OME ``Image`` says: ``names`` and ``colors`` (``RRGGBB``) of its channels,
    ``None`` where a channel has none, and ``pixel_size`` (z, y, x) in micrometres, ``None``
    where unknown."""

    names: tuple[str | None, ...]
    colors: tuple[str | None, ...]
    pixel_size: tuple[float | None, float | None, float | None]


def _length(pixels: ET.Element, axis: str) -> float | None:
    raw = pixels.get(f"PhysicalSize{axis}")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not value > 0 or value == float("inf"):
        return None
    return micrometres(value, pixels.get(f"PhysicalSize{axis}Unit"))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(xml: str | None, image: int = 0, name: str | None = None) -> ImageMetadata | None:
    """The metadata of ``Image`` number ``image`` of the OME-XML document ``xml`` (or of the one
    named ``name`` when exactly one has that name, as tifffile names its series), or ``None``
    when there is no document, it does not parse, or it has no such image."""
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = [e for e in root if _local(e.tag) == "Image"]
    named = [e for e in images if name is not None and e.get("Name") == name]
    if len(named) == 1:
        element = named[0]
    elif 0 <= image < len(images):
        element = images[image]
    else:
        return None
    pixels = next((e for e in element if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return None
    names: list[str | None] = []
    colors: list[str | None] = []
    for channel in (e for e in pixels if _local(e.tag) == "Channel"):
        label = channel.get("Name")
        names.append(label.strip() if label and label.strip() else None)
        try:
            colors.append(hex_color(int(channel.get("Color", ""))))
        except ValueError:
            colors.append(None)
    size = (_length(pixels, "Z"), _length(pixels, "Y"), _length(pixels, "X"))
    return ImageMetadata(tuple(names), tuple(colors), size)
