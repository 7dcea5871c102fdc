"""A Deep Zoom viewer page (``viewer.html`` with OpenSeadragon) beside a ``.dzi`` descriptor.

``page_files("image.dzi")`` gives the files to write into the descriptor's folder: the page,
and, when this machine has a local copy of OpenSeadragon (``make vendor-openseadragon``
unpacks the npm package into ``.cache/openseadragon/`` of the source tree; no third-party
code is committed), that copy (``openseadragon.min.js``, its button images and licence) under
``openseadragon/``, so the page works offline; otherwise the page loads OpenSeadragon from the
jsDelivr CDN. ``imaging.pyramid``'s final step writes them through the engine's I/O; ``tessera
view`` writes them beside a ``.dzi`` (or a DZI zip) that has no page. The descriptor may be a URL
relative to the page: ``image.zip/image/image.dzi`` opens a zip's descriptor, which ``tessera
view`` serves from inside the archive.

Pure apart from reading the local OpenSeadragon copy; imports nothing from the engine.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

OPENSEADRAGON_VERSION = "6.1.1"  # keep in step with OSD_VERSION in the Makefile
CDN = f"https://cdn.jsdelivr.net/npm/openseadragon@{OPENSEADRAGON_VERSION}/build/openseadragon"
# kernels/imaging/viewer.py -> the source tree's .cache/openseadragon (absent when installed)
LOCAL_COPY = Path(__file__).resolve().parents[2] / ".cache" / "openseadragon"
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
    ``images/``): ``folder`` when given, else :data:`LOCAL_COPY`; ``None`` when there is
    none."""
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


def page_files(
    dzi_name: str, page: str = PAGE, openseadragon: str | os.PathLike[str] | None = None
) -> list[tuple[str, bytes]]:
    """The files of a viewer for the descriptor ``dzi_name`` (``image.dzi``), as ``(path,
    bytes)`` relative to the descriptor's folder: the local OpenSeadragon copy (``openseadragon``
    or :data:`LOCAL_COPY`) under ``openseadragon/`` when there is one, then ``page``. Without a
    local copy the page loads OpenSeadragon from :data:`CDN`."""
    files: list[tuple[str, bytes]] = []
    local = find_openseadragon(openseadragon)
    if local is not None:
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            rel = path.relative_to(local).as_posix()
            if rel == "openseadragon.min.js" or rel.startswith("images/") or rel == "LICENSE.txt":
                files.append((f"{ASSETS}/{rel}", path.read_bytes()))
        script, prefix = f"{ASSETS}/openseadragon.min.js", f"{ASSETS}/images/"
    else:
        script, prefix = f"{CDN}/openseadragon.min.js", f"{CDN}/images/"
    files.append((page, render_page(dzi_name, script, prefix).encode()))
    return files
