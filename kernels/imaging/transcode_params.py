"""Parameters of ``imaging.transcode``: validation of the job's ``[params]`` table, and the
output names.

Every error is a ``ParamError`` naming the key, the value and what was expected. ``files`` and
``headers`` are filled in by the kernel's ``prepare`` (the resolved inputs and their sizes); a
job file does not set them. ``files`` is part of the canonical params (so of the spec hash and of
the stored job: workers never list the inputs again). ``headers`` is not: it is plan data, read
from the files each time the job is planned, for the plan-time memory check, so fixing a file in
place does not make the job another one (README, "Batch transcoding").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.imaging import formats as codec
from tessera.kernels.imaging.formats import MAX_EDGE, METHODS
from tessera.kernels.validate import choice, expected, integer_in, is_number, shown, suggest

KEYS: tuple[str, ...] = (
    "inputs",
    "output",
    "format",
    "quality",
    "max_edge",
    "scale",
    "mode",
    "resample",
    "files",
    "headers",
)
DEFAULT_QUALITY = 85
MAX_SCALE = 64.0


@dataclass(frozen=True)
class Params:
    """Validated transcode parameters.

    ``inputs``: a glob (``s3://b/frames/*.png``, ``/data/**/*.tif``) or a manifest file with one
    URL or path a line. ``output``: the folder (path or URL) the converted files go to.
    ``format``: jpeg, png, webp or tiff; ``quality`` 1-100 for JPEG and WebP. ``max_edge``
    (pixels; images whose longest side is larger are shrunk to it, never enlarged) or
    ``scale`` (factor on both sides, up or down), not both. ``mode``: the output's colour mode
    (``None``: the source's, or the nearest the format can store). ``resample``: ``lanczos`` or
    ``area``. ``files``/``headers``: the resolved inputs and their (width, height, Pillow mode),
    set by ``prepare`` (``(0, 0, "")`` for a header that could not be read); ``headers`` is plan
    data, left out of the canonical params (``to_dict``).
    """

    inputs: str
    output: str
    format: str
    quality: int = DEFAULT_QUALITY
    max_edge: int | None = None
    scale: float | None = None
    mode: str | None = None
    resample: str = "lanczos"
    files: tuple[str, ...] | None = None
    headers: tuple[tuple[int, int, str], ...] | None = None

    @property
    def file_list(self) -> tuple[str, ...]:
        """The resolved input URLs; ``ValueError`` before ``prepare``."""
        if self.files is None:
            raise ValueError("imaging.transcode: inputs are not resolved yet (call prepare)")
        return self.files

    @property
    def header_list(self) -> tuple[tuple[int, int, str], ...]:
        """(width, height, Pillow mode) per input; ``ValueError`` before ``prepare``."""
        if self.headers is None:
            raise ValueError("imaging.transcode: headers are not read yet (call prepare)")
        return self.headers


def _location(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ParamError(key, f"expected a path or URL (string), got {shown(value)}")
    value = value.strip()
    if "://" not in value:
        value = os.path.abspath(os.path.expanduser(value))
    return value


def _files(raw: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = raw.get("files")
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise ParamError("files", f"expected a non-empty list of URLs, got {shown(value)}")
    if not all(isinstance(v, str) and v for v in value):
        raise ParamError("files", "expected a list of URLs (strings)")
    return tuple(value)


def _headers(raw: Mapping[str, Any], files: tuple[str, ...] | None) -> Any:
    value = raw.get("headers")
    if value is None:
        return None
    if files is None:
        raise ParamError("headers", "given without files; both are set by prepare")
    if not isinstance(value, (list, tuple)) or len(value) != len(files):
        raise ParamError("headers", f"expected one [width, height, mode] per file ({len(files)})")
    out = []
    for item in value:
        ok = isinstance(item, (list, tuple)) and len(item) == 3
        if ok:
            w, h, m = item
            ok = (
                isinstance(w, int)
                and isinstance(h, int)
                and not isinstance(w, bool)
                and not isinstance(h, bool)
                and w >= 0
                and h >= 0
                and isinstance(m, str)
            )
        if not ok:
            raise ParamError("headers", f"expected [width, height, mode], got {shown(item)}")
        out.append((int(w), int(h), str(m)))
    return tuple(out)


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate a ``[params]`` table into ``Params``. Raises ``ParamError`` naming the key."""
    for key in raw:
        if key not in KEYS:
            raise ParamError(
                str(key), f"unknown parameter{suggest(str(key), KEYS)}; expected one of {KEYS}"
            )
    for key in ("inputs", "output", "format"):
        if key not in raw:
            raise ParamError(key, "is required")
    inputs = _location(raw, "inputs")
    output = _location(raw, "output").rstrip("/")
    fmt = raw["format"]
    if isinstance(fmt, str):
        fmt = codec.FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    fmt = choice({"format": fmt}, "format", codec.FORMATS, None)
    quality = integer_in(raw, "quality", 1, 100, DEFAULT_QUALITY)

    if raw.get("max_edge") is not None and raw.get("scale") is not None:
        raise ParamError("scale", "give either max_edge or scale, not both")
    max_edge = raw.get("max_edge")
    if max_edge is not None:
        max_edge = integer_in(raw, "max_edge", 1, MAX_EDGE)
    scale = raw.get("scale")
    if scale is not None:
        what = f"a number in (0, {MAX_SCALE:g}]"
        if not is_number(scale):
            raise expected("scale", what, scale)
        try:
            scale = float(scale)
        except OverflowError:  # an integer of more than 308 digits
            digits = len(str(abs(scale)))
            raise ParamError(
                "scale", f"expected {what}, got an integer of {digits} digits"
            ) from None
        if not 0.0 < scale <= MAX_SCALE:  # NaN and infinity fail too
            raise expected("scale", what, scale)

    mode = choice(raw, "mode", codec.OUTPUT_MODES, None)
    if mode is not None and mode not in codec.FORMAT_MODES[fmt]:
        raise ParamError(
            "mode",
            f"{fmt} cannot store mode {mode}; expected one of {', '.join(codec.FORMAT_MODES[fmt])}",
        )
    resample = choice(raw, "resample", METHODS, "lanczos")
    files = _files(raw)
    return Params(
        inputs=inputs,
        output=output,
        format=fmt,
        quality=quality,
        max_edge=max_edge,
        scale=scale,
        mode=mode,
        resample=resample,
        files=files,
        headers=_headers(raw, files),
    )


def to_dict(params: Params) -> dict[str, Any]:
    """Canonical params: every key with its default filled in; ``max_edge``, ``scale`` and
    ``mode`` only when set; ``files`` once resolved. ``headers`` are left out: they are read
    from the files whenever the job is planned and determine no output byte, so a file fixed in
    place keeps the spec hash (and ``result.json`` does not carry one header per file)."""
    out: dict[str, Any] = {
        "inputs": params.inputs,
        "output": params.output,
        "format": params.format,
        "quality": params.quality,
        "resample": params.resample,
    }
    for key in ("max_edge", "scale", "mode"):
        if getattr(params, key) is not None:
            out[key] = getattr(params, key)
    if params.files is not None:
        out["files"] = list(params.files)
    return out


def _parts(url: str) -> list[str]:
    scheme, path = url.split("://", 1) if "://" in url else ("file", url)
    return [scheme, *(p for p in path.split("/") if p)]


def _with_extension(name: str, ext: str) -> str:
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem + ext


def output_names(params: Params) -> tuple[str, ...]:
    """Per input, its output path relative to ``output``: the path below the folder common to
    all inputs, with the format's extension (``/in/a/x.png``, ``/in/b/y.png`` -> ``a/x.jpg``,
    ``b/y.jpg``). Raises ``ParamError`` naming ``inputs`` when two inputs give one name and
    ``output`` when an output would overwrite its input."""
    files = params.file_list
    parts = [_parts(f) for f in files]
    common = parts[0][:-1]
    for p in parts[1:]:
        n = 0
        while n < min(len(common), len(p) - 1) and common[n] == p[n]:
            n += 1
        common = common[:n]
    ext = codec.EXTENSIONS[params.format]
    names: list[str] = []
    seen: dict[str, str] = {}
    out_parts = _parts(params.output)
    for url, p in zip(files, parts):
        rel = p[len(common) :]
        name = "/".join([*rel[:-1], _with_extension(rel[-1], ext)])
        if name in seen:
            raise ParamError(
                "inputs", f"{seen[name]} and {url} would both be written as {name} in the output"
            )
        seen[name] = url
        if out_parts + name.split("/") == p:
            raise ParamError("output", f"{params.output}/{name} would overwrite its input {url}")
        names.append(name)
    return tuple(names)
