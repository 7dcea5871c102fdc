"""The I/O the engine lends to kernels (kernels import no fsspec): inputs anywhere fsspec reaches,
outputs into the store or to absolute URLs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any, BinaryIO

import fsspec
import numpy as np

from engine.config import storage_options


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


INPUT_SCHEMES = ("file", "s3")


def _check_scheme(url: str) -> None:
    """Refuse a URL of another scheme before fsspec tries it (ftp:// or http:// would reach out
    to the network at validate time; unknown ones raise ValueError or ImportError)."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme not in INPUT_SCHEMES:
        raise OSError(
            f"{url}: unsupported URL scheme {scheme}://; inputs are local paths, file:// or "
            f"s3:// URLs"
        )


class Inputs:
    """``kernels.base.InputIO``: open and list inputs on local disk, file:// or s3://."""

    def open_input(self, url: str) -> BinaryIO:
        """A seekable binary file for ``url``; the caller closes it. ``OSError`` for a URL of
        another scheme."""
        _check_scheme(url)
        if _is_local(url):
            return open(url.removeprefix("file://"), "rb")
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
        handle: BinaryIO = fs.open(path, "rb")
        return handle

    def list_inputs(self, pattern: str) -> list[str]:
        """URLs matching the glob ``pattern``, sorted, keeping the scheme. ``OSError`` for a
        URL of another scheme."""
        _check_scheme(pattern)
        if _is_local(pattern):
            fs = fsspec.filesystem("file")
            return sorted(fs.glob(pattern.removeprefix("file://")))
        fs, path = fsspec.core.url_to_fs(pattern, **storage_options(pattern))
        fs.invalidate_cache()
        protocol = pattern.split("://", 1)[0]
        return sorted(f"{protocol}://{p}" for p in fs.glob(path))


class StoreIO(Inputs):
    """``kernels.base.ShardIO`` over an opened store: lazy output arrays, array and file writes."""

    def __init__(self, store: Any, device: str = "cpu") -> None:
        self._store = store
        self._device = device

    @property
    def arrays(self) -> Mapping[str, Any]:
        """Output arrays by name (lazy Zarr arrays: slicing reads)."""
        return _LazyArrays(self._store.group)

    @property
    def device(self) -> str:
        """Where the kernel computes: ``"cpu"`` or ``"cuda"`` (see ``Resources.device``)."""
        return self._device

    def write_array(self, name: str, selection: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``selection`` of the output array ``name``."""
        self._store.array(name)[selection] = data

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` in the store, or to an absolute URL / path."""
        if "://" in path or os.path.isabs(path):
            write_bytes(path, data)
        else:
            write_bytes(f"{self._store.url}/{path}", data)

    def read_file(self, path: str) -> bytes:
        """Read a file that ``write_file`` wrote (e.g. a kernel's partial results, gathered by its
        final step): ``path`` relative to the store, or an absolute URL / path."""
        url = path if "://" in path or os.path.isabs(path) else f"{self._store.url}/{path}"
        with self.open_input(url) as fh:
            return fh.read()


class _LazyArrays(Mapping[str, Any]):
    def __init__(self, group: Any) -> None:
        self._group = group

    def __getitem__(self, name: str) -> Any:
        try:
            return self._group[name]
        except KeyError:
            raise KeyError(name) from None

    def __iter__(self) -> Any:
        return iter(name for name, _ in self._group.arrays())

    def __len__(self) -> int:
        return sum(1 for _ in self._group.arrays())


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to a path or URL atomically: temporary name and rename on local disk, one
    PUT on object stores. Parent folders are created."""
    if _is_local(url):
        path = url.removeprefix("file://")
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise naming(exc, path) from exc
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    fs.pipe_file(path, data)


def naming(exc: OSError, path: str) -> OSError:
    """``exc`` if it names a file, else an ``OSError`` of the same errno naming ``path``: a failed
    ``write()`` (ENOSPC, EROFS, EIO) carries no file name, and the user must learn which store
    or folder is full or read-only."""
    if exc.filename is not None:
        return exc
    if exc.errno is None:
        return OSError(f"{exc} (writing {path})")
    return OSError(exc.errno, exc.strerror or str(exc), path)
