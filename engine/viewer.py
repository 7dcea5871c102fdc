"""``tessera view``: serve a local store's viewer pages on localhost.

A kernel whose output can be looked at writes its own viewer page into the store in its final
step (``imaging.pyramid`` writes ``dzi/viewer.html`` beside its Deep Zoom output, see
``tessera.kernels.imaging.viewer``); the engine names no kernel. ``tessera view STORE`` finds
every ``viewer.html`` (and ``NAME.viewer.html``) in a local store or folder, writes a Deep Zoom
page beside any ``.dzi`` that has none (a folder of DZI output made elsewhere) and beside any
zip that holds a ``.dzi`` and has none (``vips dzsave --container zip``, or a pyramid made
before its final step wrote one), serves the folder on 127.0.0.1, prints the page addresses
and serves until Ctrl-C. A zip's members are served as if the zip were a folder
(``dzi/image.zip/image/image.dzi``, read from the archive on request), which is what a page
beside a zip opens. It does not serve S3 stores: copy the viewer's folder down first (the error
message gives the command).

``write_viewer`` writes a Deep Zoom page beside a ``.dzi`` in any store (path, ``file://`` or
``s3://``).
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import logging
import os
import posixpath
import threading
import zipfile
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

from tessera.engine import urls
from tessera.engine.io import write_bytes
from tessera.kernels.imaging.viewer import (
    ASSETS,
    CDN,
    LOCAL_COPY,
    PAGE,
    find_openseadragon,
    page_files,
    render_page,
)

__all__ = [
    "CDN",
    "find_openseadragon",
    "render_page",
    "serve",
    "start_server",
    "viewer_pages",
    "write_viewer",
    "zip_descriptors",
]

log = logging.getLogger(__name__)


def write_viewer(
    store: str,
    dzi_path: str,
    page: str = PAGE,
    openseadragon: str | os.PathLike[str] | None = None,
) -> str:
    """Write ``page`` (``viewer.html``) beside the Deep Zoom descriptor ``dzi_path`` (relative
    to ``store``, e.g. ``dzi/image.dzi``) and return the page's location (a path for local
    stores, else a URL). ``store`` is a path, ``file://`` or ``s3://`` URL.

    The local OpenSeadragon copy (``openseadragon``, or ``.cache/openseadragon`` of the source
    tree) is copied into an ``openseadragon/`` folder beside the page so that it works offline;
    without one the page uses the jsDelivr CDN. Raises ``ValueError`` when ``dzi_path`` is not
    a relative path to a ``.dzi`` file (a zip container cannot be opened by OpenSeadragon
    directly)."""
    dzi_path = dzi_path.strip("/")
    if not dzi_path.endswith(".dzi") or ".." in dzi_path.split("/"):
        raise ValueError(
            f"{dzi_path!r} is not a relative path to a .dzi file inside the store "
            f"(DZI zip containers are not viewable directly)"
        )
    root = store.rstrip("/")
    if urls.is_local(root):
        root = os.path.abspath(urls.local_path(root))
    folder, dzi_name = posixpath.split(dzi_path)
    base = urls.join(root, folder) if folder else root
    return _write_page(base, dzi_name, page, openseadragon)


def _write_page(
    base: str, source: str, page: str, openseadragon: str | os.PathLike[str] | None = None
) -> str:
    """Write ``page`` into the folder ``base`` (a path or URL), opening the Deep Zoom
    descriptor ``source`` (a URL relative to the page), with OpenSeadragon beside it when there
    is a local copy; return the page's location."""
    if find_openseadragon(openseadragon) is None:
        log.info("no local OpenSeadragon in %s: the viewer loads it from %s", LOCAL_COPY, CDN)
    for rel, data in page_files(source, page, openseadragon):
        write_bytes(urls.join(base, rel), data)
    return urls.join(base, page)


def zip_descriptors(path: str | os.PathLike[str]) -> list[str]:
    """The Deep Zoom descriptors in the zip at ``path`` (``image/image.dzi`` as vips and
    ``imaging.pyramid`` lay a zip out, or ``NAME.dzi`` at its top), sorted; ``[]`` when it is
    not a readable zip or holds none."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return []
    return sorted(n for n in names if n.endswith(".dzi") and n.count("/") <= 1)


def _is_array(folder: str) -> bool:
    """True for a Zarr array's folder (its chunks hold no pages: not worth walking)."""
    try:
        with open(os.path.join(folder, "zarr.json"), encoding="utf-8") as fh:
            return bool(json.load(fh).get("node_type") == "array")
    except (OSError, ValueError, AttributeError):
        return False


def _walk(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """``(folder, file names)`` below ``root``, sorted, skipping what holds no pages: tessera's
    own records (``_shards``, ...), hidden folders, DZI tile folders (``NAME_files``), copied
    viewer assets and Zarr arrays."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(("_", "."))
            and not d.endswith("_files")
            and d != ASSETS
            and not _is_array(os.path.join(dirpath, d))
        )
        yield Path(dirpath), sorted(filenames)


def _is_page(name: str) -> bool:
    return name == PAGE or name.endswith(f".{PAGE}")


def _sources(where: Path, names: list[str]) -> list[tuple[str, str]]:
    """The Deep Zoom pyramids in one folder as ``(label, descriptor URL relative to the
    folder)``: each ``.dzi``, and each ``.dzi`` inside a zip (``image.zip/image/image.dzi``)."""
    found = [(n.removesuffix(".dzi"), n) for n in names if n.endswith(".dzi")]
    labels = {label for label, _ in found}
    for name in names:
        if not name.endswith(".zip"):
            continue
        members = zip_descriptors(where / name)
        for member in members:
            label = name.removesuffix(".zip")
            if len(members) > 1:
                label = f"{label}.{posixpath.basename(member).removesuffix('.dzi')}"
            if label in labels:  # image.dzi and image.zip side by side
                label = f"{label}.zip"
            labels.add(label)
            found.append((label, f"{name}/{member}"))
    return found


def viewer_pages(folder: str | os.PathLike[str]) -> list[str]:
    """Paths (relative to ``folder``) of every viewer page below ``folder``: the pages there
    (``viewer.html``, ``NAME.viewer.html``, whichever kernel wrote them), and one for every
    Deep Zoom pyramid (a ``.dzi``, or a zip holding one) that has none, written now
    (``viewer.html`` when a folder has one pyramid, else ``NAME.viewer.html`` each)."""
    root = Path(folder)
    pages: set[str] = set()
    for where, names in _walk(root):
        rel = where.relative_to(root).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        pages.update(f"{prefix}{n}" for n in names if _is_page(n))
        sources = _sources(where, names)
        for label, source in sources:
            page = PAGE if len(sources) == 1 else f"{label}.{PAGE}"
            if page not in names:
                _write_page(str(where), source, page)
                pages.add(f"{prefix}{page}")
    return sorted(pages)


class _Archives:
    """The zips a server reads members from, each opened once (again when the file changes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[Path, tuple[tuple[int, int], zipfile.ZipFile]] = {}

    def read(self, path: Path, member: str) -> bytes | None:
        """The bytes of ``member`` of the zip at ``path``; ``None`` when it has no such member
        or is not a readable zip."""
        with self._lock:  # ZipFile reads seek one shared file: one member at a time
            try:
                st = path.stat()
                version = (st.st_mtime_ns, st.st_size)
                entry = self._open.get(path)
                if entry is None or entry[0] != version:
                    if entry is not None:
                        entry[1].close()
                    entry = (version, zipfile.ZipFile(path))
                    self._open[path] = entry
                return entry[1].read(member)
            except (KeyError, OSError, zipfile.BadZipFile):
                return None

    def close(self) -> None:
        """Close every archive."""
        with self._lock:
            for _, archive in self._open.values():
                archive.close()
            self._open.clear()


class _Server(http.server.ThreadingHTTPServer):
    """A threading HTTP server that also holds the zips its requests read from."""

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self.archives = _Archives()
        super().__init__(address, handler)

    def server_close(self) -> None:
        super().server_close()
        self.archives.close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".dzi": "application/xml",
        ".webp": "image/webp",
    }

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("%s %s", self.address_string(), format % args)

    def send_head(self) -> Any:
        """A file, or a member of a zip when the path goes through one
        (``dzi/image.zip/image/image.dzi``); the base class answers everything else."""
        found = self._zip_member()
        if found is None:
            return super().send_head()
        archive, member = found
        assert isinstance(self.server, _Server)
        data = self.server.archives.read(archive, member)
        if data is None:
            self.send_error(HTTPStatus.NOT_FOUND, f"{member} is not in {archive.name}")
            return None
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", self.guess_type(member))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Last-Modified", self.date_time_string(int(archive.stat().st_mtime)))
        self.end_headers()
        return io.BytesIO(data)

    def _zip_member(self) -> tuple[Path, str] | None:
        """``(zip file, member name)`` when the request's path is missing on disk and its
        nearest existing ancestor is a ``.zip`` file; else ``None``."""
        path = Path(self.translate_path(self.path))  # inside the served folder, no ".."
        if path.exists():
            return None
        for parent in path.parents:
            if parent.exists():
                if parent.is_file() and parent.suffix.lower() == ".zip":
                    return parent, path.relative_to(parent).as_posix()
                return None
        return None


def start_server(
    folder: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0
) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``folder`` on ``host``:``port`` (0: a free port), serving in a
    daemon thread; call ``shutdown()`` to stop it. ``server.server_address`` has the port."""
    handler = functools.partial(_Handler, directory=os.fspath(folder))
    server = _Server((host, port), handler)
    threading.Thread(target=server.serve_forever, name="tessera-view", daemon=True).start()
    return server


def local_folder(store: str) -> Path:
    """The local folder of a store location. Raises ``ValueError`` for remote stores (with the
    command that copies a viewer's folder down) and for a folder that does not exist."""
    if not urls.is_local(store):
        raise ValueError(
            f"tessera view serves local stores only; copy the folder holding the viewer first, "
            f"e.g. `aws s3 sync {store.rstrip('/')}/dzi ./dzi` for Deep Zoom output, then run "
            f"`tessera view ./dzi`"
        )
    folder = Path(urls.local_path(store)).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    return folder


def serve(store: str, host: str = "127.0.0.1", port: int = 0) -> int:
    """``tessera view``: find (or write) the viewer pages of ``store``, serve it on
    ``host``:``port``, print the page addresses and block until interrupted. Returns the exit
    code (0). Raises ``ValueError`` for a remote store or one without any viewer."""
    folder = local_folder(store)
    pages = viewer_pages(folder)
    if not pages:
        raise ValueError(
            f"no viewer page ({PAGE}) and no Deep Zoom output (.dzi, or a zip holding one) in "
            f"{folder}; run an imaging.pyramid job with dzi = {{...}} in its params"
        )
    server = start_server(folder, host, port)
    address = f"http://{host}:{int(server.server_address[1])}"
    print(f"serving {folder} on {address}/ (Ctrl-C to stop)", flush=True)
    for page in pages:
        print(f"viewer: {address}/{page}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0
