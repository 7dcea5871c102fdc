"""The I/O the engine lends to kernels (kernels import no fsspec): inputs anywhere fsspec reaches,
outputs into the store or to absolute URLs."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, TypeVar, cast

import fsspec
import numpy as np

from tessera.engine import urls
from tessera.engine.config import storage_options
from tessera.engine.errors import LentIOError

T = TypeVar("T")


INPUT_SCHEMES = ("file", "s3")


class UnsupportedURL(OSError):
    """An input URL of a scheme tessera does not read (the job's fault: not retried)."""


def _check_scheme(url: str) -> None:
    """Refuse (``UnsupportedURL``, an ``OSError``) a URL of another scheme before fsspec tries it
    (ftp:// or http:// would reach out to the network at validate time; unknown ones raise
    ValueError or ImportError)."""
    scheme = urls.scheme(url)
    if scheme not in INPUT_SCHEMES:
        raise UnsupportedURL(
            f"{url}: unsupported URL scheme {scheme}://; inputs are local paths, file:// or "
            f"s3:// URLs"
        )


class Inputs:
    """``tessera.kernels.base.InputIO``: open and list inputs on local disk, file:// or s3://."""

    def open_input(self, url: str) -> BinaryIO:
        """A seekable binary file for ``url``; the caller closes it. ``UnsupportedURL`` for a
        URL of another scheme."""
        _check_scheme(url)
        if urls.is_local(url):
            return open(url.removeprefix("file://"), "rb")
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
        handle: BinaryIO = fs.open(path, "rb")
        return handle

    def list_inputs(self, pattern: str) -> list[str]:
        """URLs matching the glob ``pattern``, sorted, keeping the scheme. ``UnsupportedURL`` for a
        URL of another scheme."""
        _check_scheme(pattern)
        if urls.is_local(pattern):
            fs = fsspec.filesystem("file")
            return sorted(fs.glob(pattern.removeprefix("file://")))
        fs, path = fsspec.core.url_to_fs(pattern, **storage_options(pattern))
        fs.invalidate_cache()
        protocol = pattern.split("://", 1)[0]
        return sorted(f"{protocol}://{p}" for p in fs.glob(path))


# Errors that say an input is missing or unreadable: the job's fault, not the engine's. Every
# other failure of lent I/O (an outage, a full store) is retryable.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    UnsupportedURL,
)


class StoreIO(Inputs):
    """``tessera.kernels.base.ShardIO`` over an opened store: lazy output arrays, array and file
    writes, input reads.

    A failure of this I/O other than a missing or unreadable input is raised as
    ``LentIOError`` and remembered in ``failure``: the worker then retries the shard even if
    the kernel caught the error and raised another."""

    def __init__(self, store: Any, device: str = "cpu", fail_first: bool = False) -> None:
        self._store = store
        self._device = device
        self._fail_next = fail_first  # a scripted outage (TESSERA_FAULTS action "io")
        self.failure: LentIOError | None = None

    def _lent(self, what: str, call: Callable[[], T]) -> T:
        try:
            if self._fail_next:
                self._fail_next = False
                raise ConnectionError("injected I/O fault (TESSERA_FAULTS)")
            return call()
        except INPUT_ERRORS:
            raise
        except (KeyError, IndexError, TypeError):
            raise  # no such array, a selection out of bounds, a wrong call: the kernel's error
        except Exception as exc:
            if isinstance(exc, ValueError) and not _is_connection_error(exc):
                raise  # a bad URL or selection is the kernel's error
            error = LentIOError(f"{what}: {type(exc).__name__}: {exc}")
            self.failure = error
            raise error from exc

    def open_input(self, url: str) -> BinaryIO:
        """``Inputs.open_input``; an outage raises ``LentIOError``, on opening and on every read
        or seek after (s3fs fetches bytes when they are read)."""
        what = f"reading {url}"
        handle = self._lent(what, lambda: Inputs.open_input(self, url))
        return cast(BinaryIO, _LentFile(handle, lambda call: self._lent(what, call)))

    def list_inputs(self, pattern: str) -> list[str]:
        """``Inputs.list_inputs``; an outage raises ``LentIOError``."""
        return self._lent(f"listing {pattern}", lambda: Inputs.list_inputs(self, pattern))

    @property
    def arrays(self) -> Mapping[str, Any]:
        """Output arrays by name (lazy Zarr arrays: slicing reads; a read that fails for an
        outage raises ``LentIOError``, as every lent I/O does)."""
        return _LazyArrays(self._store, self._lent)

    @property
    def device(self) -> str:
        """Where the kernel computes: ``"cpu"`` or ``"cuda"`` (see ``Resources.device``)."""
        return self._device

    def write_array(self, name: str, selection: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``selection`` of the output array ``name``."""

        self._lent(f"writing array {name}", lambda: self._store.write_array(name, selection, data))

    def write_file(self, path: str, data: bytes | list[bytes | memoryview]) -> None:
        """Write ``data`` (bytes, or a list of pieces of them in order) to ``path`` in the store,
        or to an absolute URL / path."""
        url = self._url(path)
        self._lent(f"writing {url}", lambda: write_bytes(url, data))

    def read_file(self, path: str) -> bytes:
        """Read a file that ``write_file`` wrote (e.g. a kernel's partial results, gathered by its
        final step): ``path`` relative to the store, or an absolute URL / path."""
        url = self._url(path)

        def read() -> bytes:
            with Inputs.open_input(self, url) as fh:
                return fh.read()

        return self._lent(f"reading {url}", read)

    def _url(self, path: str) -> str:
        return path if urls.is_absolute(path) else urls.join(self._store.url, path)


class _LentArray:
    """A Zarr array whose reads (``array[selection]``) go through ``StoreIO._lent``; every
    other attribute (shape, dtype, chunks) is the array's."""

    def __init__(self, array: Any, name: str, lent: Callable[[str, Callable[[], Any]], Any]):
        self._array = array
        self._name = name
        self._lent = lent

    def __getitem__(self, selection: Any) -> Any:
        def read() -> Any:
            with os_errors():
                return self._array[selection]

        return self._lent(f"reading array {self._name}", read)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._array, name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return np.asarray(data, dtype=dtype)


class _LentFile:
    """A file object whose reads and seeks go through ``StoreIO._lent`` (everything else is
    the wrapped handle's)."""

    _GUARDED = frozenset(
        {"read", "read1", "readinto", "readinto1", "readline", "readlines", "seek"}
    )

    def __init__(self, handle: Any, guard: Callable[[Callable[[], Any]], Any]) -> None:
        self._handle = handle
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._handle, name)
        if name in self._GUARDED and callable(value):
            return lambda *args, **kwargs: self._guard(lambda: value(*args, **kwargs))
        return value

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __enter__(self) -> _LentFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _is_connection_error(exc: BaseException) -> bool:
    """botocore's connection errors (S3 down) are ValueErrors for no good reason in some
    versions; they are outages. botocore is looked up, never imported."""
    module = sys.modules.get("botocore.exceptions")
    return module is not None and isinstance(exc, module.BotoCoreError)


class _LazyArrays(Mapping[str, Any]):
    """The store's arrays by name, opened by the store (``Store.array``: its codec pipeline)."""

    def __init__(self, store: Any, lent: Callable[[str, Callable[[], Any]], Any]) -> None:
        self._store = store
        self._lent = lent

    def __getitem__(self, name: str) -> Any:
        try:
            array = self._lent(f"opening array {name}", lambda: self._store.array(name))
        except KeyError:
            raise KeyError(name) from None
        return _LentArray(array, name, self._lent)

    def __iter__(self) -> Any:
        return iter(name for name, _ in self._store.group.arrays())

    def __len__(self) -> int:
        return sum(1 for _ in self._store.group.arrays())


def write_bytes(url: str, data: bytes | list[bytes | memoryview]) -> None:
    """Write ``data`` (bytes, or a list of pieces of them in order) to a path or URL atomically:
    temporary name and rename on local disk, one PUT on object stores. Parent folders are
    created."""
    if urls.is_local(url):
        path = url.removeprefix("file://")
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            # mkstemp makes the file 0600; give it the mode open() would (0644 under umask 022)
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, list):
                    fh.writelines(data)
                else:
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
    fs.pipe_file(path, b"".join(data) if isinstance(data, list) else data)


_UMASK: list[int] = []


def _umask() -> int:
    """The process's umask, read once (without the thread-unsafe set-and-restore of
    ``os.umask`` when /proc tells it)."""
    if not _UMASK:
        try:
            with open("/proc/self/status") as fh:
                line = next(x for x in fh if x.startswith("Umask:"))
            _UMASK.append(int(line.split()[1], 8))
        except (OSError, StopIteration, ValueError):
            mask = os.umask(0o022)
            os.umask(mask)
            _UMASK.append(mask)
    return _UMASK[0]


# The zarrs codec pipeline (engine/codecs.py) reports a failed read or write of the store as a
# RuntimeError with the OS error's text ("No space left on device (os error 28)"), no file name
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextlib.contextmanager
def os_errors() -> Iterator[None]:
    """Re-raise a RuntimeError of zarrs that stands for an OS error as that ``OSError`` (its
    subclass for the errno: ``NotADirectoryError``, ...), as zarr-python's stores raise it;
    other errors pass unchanged."""
    try:
        yield
    except RuntimeError as exc:
        match = _OS_ERROR.search(str(exc))
        if match is None:
            raise
        number = int(match.group(1))
        raise OSError(number, os.strerror(number)) from exc


def naming(exc: OSError, path: str) -> OSError:
    """``exc`` if it names a file, else an ``OSError`` of the same errno naming ``path``: a failed
    ``write()`` (ENOSPC, EROFS, EIO) carries no file name, and the user must learn which store
    or folder is full or read-only."""
    if exc.filename is not None:
        return exc
    if exc.errno is None:
        return OSError(f"{exc} (writing {path})")
    return OSError(exc.errno, exc.strerror or str(exc), path)
