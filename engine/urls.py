"""URLs: the one place that says whether a location is local, what its scheme is, and whether one
location lies inside another (pure functions; no I/O beyond resolving local symlinks).

tessera takes plain paths, ``file://`` paths and ``s3://bucket/key`` URLs for stores, inputs and
outputs.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

GLOB_CHARS = frozenset("*?[")


def scheme(url: str) -> str:
    """``"file"`` for plain paths and ``file://``; otherwise the URL's scheme (``"s3"``)."""
    return url.split("://", 1)[0] if "://" in url else "file"


def is_local(url: str) -> bool:
    """True for a plain path or a ``file://`` URL."""
    return scheme(url) == "file"


def local_path(url: str) -> str:
    """The path of a local URL (``file://`` removed)."""
    return url.removeprefix("file://")


def is_absolute(url: str) -> bool:
    """True for any URL with a scheme and for an absolute path (as opposed to a key relative to
    a store)."""
    return "://" in url or os.path.isabs(url)


def join(base: str, key: str) -> str:
    """``key`` under ``base`` (a store URL or path)."""
    return f"{base.rstrip('/')}/{key}"


@dataclass(frozen=True)
class Where:
    """A location cut into comparable parts: the scheme, and the path components (for S3 the
    bucket first). Local paths are absolute and symlink-resolved."""

    scheme: str
    parts: tuple[str, ...]

    def within(self, other: Where) -> bool:
        """True when this location is ``other`` or lies inside it."""
        return self.scheme == other.scheme and self.parts[: len(other.parts)] == other.parts


def where(url: str) -> Where:
    """``url`` as comparable parts (see ``Where``)."""
    kind = scheme(url)
    if kind == "file":
        path = os.path.realpath(os.path.expanduser(local_path(url)))
        return Where("file", tuple(p for p in path.split("/") if p))
    return Where(kind, tuple(p for p in url.split("://", 1)[1].split("/") if p))


def glob_base(pattern: str) -> tuple[str, str]:
    """Split a glob into its folder without wildcards and the rest: ``("/d/frames", "*.png")``
    for ``/d/frames/*.png``; ``(pattern, "")`` when there is no wildcard."""
    head, sep, tail = pattern.partition("://")
    path = tail if sep else head
    parts = path.split("/")
    for i, part in enumerate(parts):
        if GLOB_CHARS & set(part):
            base = "/".join(parts[:i]) or ("/" if path.startswith("/") else ".")
            return (f"{head}://{base}" if sep else base), "/".join(parts[i:])
    return pattern, ""


def overlaps(store: str, location: str) -> bool:
    """True when a store at ``store`` would hold or sit inside ``location``: a file or folder a
    job reads or writes (a glob counts for every path it can match).

    A store holds a location that lies inside it. A store sits inside a concrete location (a
    Zarr source folder, an output folder) when it lies inside it, and inside a glob when the
    glob could match the store's folder itself or something in it (``d/*`` matches ``d/store``;
    ``d/**/*.png`` reaches every folder under ``d``).
    """
    s = where(store)
    base, rest = glob_base(location)
    b = where(base)
    if b.within(s):
        return True
    if not rest:
        return s.within(b)
    if not s.within(b) or s == b:
        return False
    below = s.parts[len(b.parts) :]
    pattern = rest.split("/")
    if "**" in pattern:
        return True
    # a non-recursive glob matches paths of exactly len(pattern) parts below its base: it takes
    # the store (or something inside it) when the store's first parts match the pattern's
    depth = min(len(below), len(pattern))
    return all(fnmatch.fnmatchcase(below[i], pattern[i]) for i in range(depth))
