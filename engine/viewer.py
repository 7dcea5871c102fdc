"""A Deep Zoom viewer beside DZI output (``viewer.html`` with OpenSeadragon), and ``tessera view``.

``write_viewer(store, "dzi/image.dzi")`` writes ``<store>/dzi/viewer.html``, which opens
``image.dzi`` in OpenSeadragon. When tessera has a local copy of OpenSeadragon (``make
vendor-openseadragon`` unpacks the npm package into ``.cache/openseadragon/``; no third-party
code is committed), the copy (``openseadragon.min.js``, its button images and licence) is
written into ``<store>/dzi/openseadragon/`` and the page works offline; otherwise the page
loads OpenSeadragon from the jsDelivr CDN. Stores on S3 get the same files, so the folder can
be served as a static website.

``tessera view STORE`` serves a local store (or any folder holding ``.dzi`` files) on
127.0.0.1, writes a viewer beside any ``.dzi`` that has none, prints the viewer addresses and
serves until Ctrl-C. It does not serve S3 stores: copy the DZI folder down first (the error
message gives the command).
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import logging
import os
import posixpath
import threading
from pathlib import Path
from typing import Any

from engine.io import write_bytes

log = logging.getLogger(__name__)

OPENSEADRAGON_VERSION = "6.1.1"  # keep in step with OSD_VERSION in the Makefile
CDN = f"https://cdn.jsdelivr.net/npm/openseadragon@{OPENSEADRAGON_VERSION}/build/openseadragon"
LOCAL_COPY = Path(__file__).resolve().parent.parent / ".cache" / "openseadragon"
ASSETS = "openseadragon"  # folder beside viewer.html that receives the local copy
PAGE = "viewer.html"

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  html, body {{ margin: 0; height: 100%; background: #111; color: #ddd; font: 14px sans-serif; }}
  #viewer {{ position: absolute; inset: 0; }}
  #message {{ position: absolute; left: 1em; top: 1em; z-index: 10; }}
</style>
<script src={script}></script>
</head>
<body data-state="loading">
<div id="viewer"></div>
<div id="message"></div>
<script>
(function () {{
  var message = document.getElementById("message");
  function fail(text) {{
    document.body.dataset.state = "failed";
    message.textContent = text;
  }}
  if (typeof OpenSeadragon === "undefined") {{
    fail("OpenSeadragon could not be loaded from " + {script});
    return;
  }}
  var viewer = OpenSeadragon({{
    id: "viewer",
    prefixUrl: {prefix},
    tileSources: {source},
    showNavigator: true,
    maxZoomPixelRatio: 4
  }});
  viewer.addHandler("open", function () {{
    if (document.body.dataset.state === "loading") {{ document.body.dataset.state = "open"; }}
  }});
  var tiles = 0;
  viewer.addHandler("tile-loaded", function () {{
    tiles += 1;
    document.body.dataset.tiles = String(tiles);
    document.body.dataset.state = "loaded";
  }});
  viewer.addHandler("open-failed", function (event) {{
    fail("cannot open " + {source} + ": " + event.message);
  }});
}})();
</script>
</body>
</html>
"""


def find_openseadragon(folder: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder holding a local OpenSeadragon build (``openseadragon.min.js`` and
    ``images/``): ``folder`` when given, else ``.cache/openseadragon`` in the source tree;
    ``None`` when there is none."""
    candidate = Path(folder) if folder is not None else LOCAL_COPY
    if (candidate / "openseadragon.min.js").is_file() and (candidate / "images").is_dir():
        return candidate
    return None


def render_page(dzi_name: str, script: str, prefix: str, title: str = "") -> str:
    """The viewer page's HTML: OpenSeadragon from ``script`` (a URL or a path relative to the
    page), button images from ``prefix``, the Deep Zoom source ``dzi_name`` beside the page."""
    return _TEMPLATE.format(
        title=html.escape(title or f"tessera viewer: {dzi_name}"),
        script=json.dumps(script),
        prefix=json.dumps(prefix.rstrip("/") + "/"),
        source=json.dumps(dzi_name),
    )


def write_viewer(
    store: str,
    dzi_path: str,
    page: str = PAGE,
    openseadragon: str | os.PathLike[str] | None = None,
) -> str:
    """Write ``page`` (``viewer.html``) beside the Deep Zoom descriptor ``dzi_path`` (relative
    to ``store``, e.g. ``dzi/image.dzi``) and return the page's location (a path for local
    stores, else a URL). ``store`` is a path, ``file://`` or ``s3://`` URL.

    The local OpenSeadragon copy (``openseadragon`` or :data:`LOCAL_COPY`) is copied into an
    ``openseadragon/`` folder beside the page so that it works offline; without one the page
    uses the jsDelivr CDN. Raises ``ValueError`` when ``dzi_path`` is not a relative path to a
    ``.dzi`` file (a zip container cannot be opened by OpenSeadragon directly)."""
    dzi_path = dzi_path.strip("/")
    if not dzi_path.endswith(".dzi") or ".." in dzi_path.split("/"):
        raise ValueError(
            f"{dzi_path!r} is not a relative path to a .dzi file inside the store "
            f"(DZI zip containers are not viewable directly)"
        )
    root = store.rstrip("/")
    if "://" not in root:
        root = os.path.abspath(root)
    folder, dzi_name = posixpath.split(dzi_path)
    base = f"{root}/{folder}" if folder else root
    local = find_openseadragon(openseadragon)
    if local is not None:
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            rel = path.relative_to(local).as_posix()
            if rel == "openseadragon.min.js" or rel.startswith("images/") or rel == "LICENSE.txt":
                write_bytes(f"{base}/{ASSETS}/{rel}", path.read_bytes())
        script, prefix = f"{ASSETS}/openseadragon.min.js", f"{ASSETS}/images/"
    else:
        log.info("no local OpenSeadragon in %s: the viewer loads it from %s", LOCAL_COPY, CDN)
        script, prefix = f"{CDN}/openseadragon.min.js", f"{CDN}/images/"
    target = f"{base}/{page}"
    write_bytes(target, render_page(dzi_name, script, prefix).encode())
    return target


def _dzi_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        # tile folders (NAME_files) and copied assets hold no descriptors: do not walk them
        dirnames[:] = sorted(d for d in dirnames if not d.endswith("_files") and d != ASSETS)
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".dzi"))
    return found


def viewer_pages(folder: str | os.PathLike[str]) -> list[str]:
    """Paths (relative to ``folder``) of a viewer page for every ``.dzi`` below ``folder``,
    writing the pages that are missing: ``viewer.html`` when a folder has one ``.dzi``, else
    ``NAME.viewer.html`` each."""
    root = Path(folder)
    pages: list[str] = []
    dzis = _dzi_files(root)
    per_folder: dict[Path, int] = {}
    for dzi in dzis:
        per_folder[dzi.parent] = per_folder.get(dzi.parent, 0) + 1
    for dzi in dzis:
        page = PAGE if per_folder[dzi.parent] == 1 else f"{dzi.stem}.{PAGE}"
        rel = dzi.relative_to(root).as_posix()
        if not (dzi.parent / page).is_file():
            write_viewer(str(root), rel, page=page)
        pages.append(posixpath.join(posixpath.dirname(rel), page))
    return pages


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".dzi": "application/xml",
        ".webp": "image/webp",
    }

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("%s %s", self.address_string(), format % args)


def start_server(
    folder: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0
) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``folder`` on ``host``:``port`` (0: a free port), serving in a
    daemon thread; call ``shutdown()`` to stop it. ``server.server_address`` has the port."""
    handler = functools.partial(_Handler, directory=os.fspath(folder))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="tessera-view", daemon=True).start()
    return server


def local_folder(store: str) -> Path:
    """The local folder of a store location. Raises ``ValueError`` for remote stores (with the
    command that copies the DZI folder down) and for a folder that does not exist."""
    if "://" in store and not store.startswith("file://"):
        raise ValueError(
            f"tessera view serves local stores only; copy the Deep Zoom folder first, e.g. "
            f"`aws s3 sync {store.rstrip('/')}/dzi ./dzi`, then run `tessera view ./dzi`"
        )
    folder = Path(store.removeprefix("file://")).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    return folder


def serve(store: str, host: str = "127.0.0.1", port: int = 0) -> int:
    """``tessera view``: write missing viewer pages, serve ``store`` on ``host``:``port``,
    print the page addresses and block until interrupted. Returns the exit code (0). Raises
    ``ValueError`` for a remote store or one without ``.dzi`` output."""
    folder = local_folder(store)
    pages = viewer_pages(folder)
    if not pages:
        raise ValueError(
            f"no Deep Zoom output (.dzi) in {folder}; run an imaging.pyramid job with "
            f"dzi = {{...}} in its params"
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
