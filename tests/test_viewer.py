"""viewer.html beside DZI output, `tessera view` (folders and zips), and a headless Chromium
screenshot that shows the tiles were drawn."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tessera.engine import executors, spec
from tessera.engine.run import run_job
from tessera.engine.viewer import CDN, find_openseadragon, start_server, viewer_pages, write_viewer
from tests.dzi import quadrants, write_dzi
from tests.jobs import default_sigint

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
}


@pytest.fixture
def fake_osd(tmp_path: Path) -> Path:
    """A stand-in OpenSeadragon build with the files the real one has."""
    folder = tmp_path / "osd"
    (folder / "images").mkdir(parents=True)
    (folder / "openseadragon.min.js").write_text("/* osd */")
    (folder / "images" / "home_rest.png").write_bytes(b"png")
    (folder / "LICENSE.txt").write_text("BSD")
    (folder / "openseadragon.js.map").write_text("not copied")
    return folder


def test_page_uses_the_local_copy_and_carries_it(tmp_path: Path, fake_osd: Path) -> None:
    store = tmp_path / "store"
    write_dzi(store / "dzi", quadrants(300, 200))
    page = write_viewer(str(store), "dzi/image.dzi", openseadragon=fake_osd)
    assert page == str(store / "dzi" / "viewer.html")
    html = Path(page).read_text()
    assert '<script src="openseadragon/openseadragon.min.js"></script>' in html
    assert 'tileSources: "image.dzi"' in html and 'prefixUrl: "openseadragon/images/"' in html
    copied = sorted(
        p.relative_to(store / "dzi" / "openseadragon").as_posix()
        for p in (store / "dzi" / "openseadragon").rglob("*")
        if p.is_file()
    )
    assert copied == ["LICENSE.txt", "images/home_rest.png", "openseadragon.min.js"]


def test_page_falls_back_to_the_cdn(tmp_path: Path) -> None:
    page = write_viewer(str(tmp_path), "image.dzi", openseadragon=tmp_path / "nothing-here")
    html = Path(page).read_text()
    assert f'<script src="{CDN}/openseadragon.min.js"></script>' in html
    assert not (tmp_path / "openseadragon").exists()


@pytest.mark.parametrize("bad", ["dzi/image.zip", "../image.dzi", "dzi/image_files"])
def test_only_dzi_descriptors_inside_the_store(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a relative path to a .dzi file"):
        write_viewer(str(tmp_path), bad)


def test_viewer_pages_writes_missing_pages(tmp_path: Path) -> None:
    write_dzi(tmp_path / "dzi", quadrants(64, 64), name="a", tile=64)
    write_dzi(tmp_path / "dzi", quadrants(64, 64), name="b", tile=64)
    write_dzi(tmp_path / "other", quadrants(64, 64), name="c", tile=64)
    pages = viewer_pages(tmp_path)
    assert pages == ["dzi/a.viewer.html", "dzi/b.viewer.html", "other/viewer.html"]
    assert all((tmp_path / p).is_file() for p in pages)


@pytest.mark.s3
def test_write_viewer_to_s3(
    seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch, fake_osd: Path
) -> None:
    import s3fs

    for key, value in seaweed_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = seaweed_s3.create_bucket("tessera-viewer")
    page = write_viewer(f"s3://{bucket}/store/", "dzi/image.dzi", openseadragon=fake_osd)
    assert page == f"s3://{bucket}/store/dzi/viewer.html"
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    assert b"image.dzi" in fs.cat_file(f"{bucket}/store/dzi/viewer.html")
    assert fs.cat_file(f"{bucket}/store/dzi/openseadragon/openseadragon.min.js") == b"/* osd */"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_view_refuses_s3_and_folders_without_dzi(tmp_path: Path) -> None:
    remote = _cli("view", "s3://bucket/store")
    assert remote.returncode == 1
    assert (
        "serves local stores only" in remote.stderr
        and "aws s3 sync s3://bucket/store/dzi" in remote.stderr
    )
    empty = _cli("view", str(tmp_path))
    assert empty.returncode == 1
    assert "no Deep Zoom output (.dzi, or a zip holding one)" in empty.stderr


def _zip_folder(folder: Path, zip_path: Path) -> dict[str, bytes]:
    """Zip ``folder`` as vips lays out a DZI zip (``image/image.dzi``, ``image/image_files/..``);
    return the members."""
    members = {
        f"image/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return members


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def test_viewer_pages_for_zips_made_elsewhere(tmp_path: Path) -> None:
    """A DZI zip without a page (vips dzsave --container zip) gets one that opens the
    descriptor inside the zip; beside a .dzi of the same name, each gets its own page."""
    made = tmp_path / "made"
    write_dzi(made, quadrants(100, 80), tile=64)
    store = tmp_path / "store"
    (store / "dzi").mkdir(parents=True)
    members = _zip_folder(made, store / "dzi" / "image.zip")
    assert viewer_pages(store) == ["dzi/viewer.html"]
    assert 'tileSources: "image.zip/image/image.dzi"' in (store / "dzi/viewer.html").read_text()
    both = tmp_path / "both"
    write_dzi(both, quadrants(100, 80), tile=64)
    _zip_folder(made, both / "image.zip")
    assert viewer_pages(both) == ["image.viewer.html", "image.zip.viewer.html"]
    assert (
        'tileSources: "image.zip/image/image.dzi"' in (both / "image.zip.viewer.html").read_text()
    )
    server = start_server(store)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/dzi"
        status, body, kind = _get(f"{base}/image.zip/image/image.dzi")
        assert (status, body, kind) == (200, members["image/image.dzi"], "application/xml")
        tile = "image/image_files/6/0_0.png"
        assert _get(f"{base}/image.zip/{tile}")[:2] == (200, members[tile])
        assert _get(f"{base}/image.zip/image/image_files/6/9_9.png")[0] == 404
        assert _get(f"{base}/image.zip")[:2] == (200, (store / "dzi/image.zip").read_bytes())
    finally:
        server.shutdown()
        server.server_close()


def test_view_serves_a_zip_pyramid(tmp_path: Path) -> None:
    """`tessera view` of a pyramid with dzi.container = "zip": the page it prints opens, and
    the descriptor and tiles it asks for are the zip's members, byte for byte."""
    source = tmp_path / "slide.png"
    Image.fromarray(quadrants(300, 200)).save(source)
    store = tmp_path / "store"
    job = {
        "job": {"name": "zipped", "kernel": "imaging.pyramid", "store": str(store), "shards": 2},
        "params": {"source": str(source), "tile_size": 64, "dzi": {"container": "zip"}},
    }
    outcome = run_job(spec.from_dict(job), executors.create("local"), lambda e: None)
    assert outcome.ok and outcome.result is not None
    assert outcome.result["dzi"]["viewer"] == "dzi/viewer.html"
    server = subprocess.Popen(
        [sys.executable, "-m", "tessera.engine.cli", "view", str(store), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0].startswith(f"serving {store} on http://127.0.0.1:"), lines
        url = re.fullmatch(r"viewer: (http://127\.0\.0\.1:\d+/dzi/viewer\.html)\n", lines[1])
        assert url is not None, lines
        status, page, kind = _get(url.group(1))
        assert status == 200 and kind == "text/html"
        source_url = re.search(r'tileSources: "([^"]+)"', page.decode())
        assert source_url is not None and source_url.group(1) == "image.zip/image/image.dzi"
        base = url.group(1).rsplit("/", 1)[0]
        with zipfile.ZipFile(store / "dzi" / "image.zip") as archive:
            names = archive.namelist()
            status, body, kind = _get(f"{base}/{source_url.group(1)}")
            assert (status, kind) == (200, "application/xml")
            assert body == archive.read("image/image.dzi")
            tiles = [n for n in names if n.endswith(".jpeg")]
            assert len(tiles) == outcome.result["dzi"]["tiles"]
            for name in (tiles[0], tiles[-1]):  # 0/0_0.jpeg (1x1) and the last full-size tile
                status, body, kind = _get(f"{base}/image.zip/{name}")
                assert (status, kind) == (200, "image/jpeg")
                assert body == archive.read(name)
        missing = _get(f"{base}/image.zip/image/image_files/0/5_5.jpeg")
        assert missing[0] == 404 and b"is not in image.zip" in missing[1]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""


def _colour_share(shot: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> float:
    return float(np.mean(np.all(np.abs(shot.astype(np.int64) - rgb) <= tol, axis=-1)))


def test_chromium_draws_the_tiles(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "Debian's chromium is not installed (`make ensure-chromium` installs it with apt)"
        )
    if find_openseadragon() is None:
        pytest.skip(
            "no local OpenSeadragon in .cache/openseadragon: run `make vendor-openseadragon` "
            "(npm, once, with network access); offline the page cannot load it from the CDN"
        )
    store = tmp_path / "store"
    write_dzi(store / "dzi", quadrants(700, 500))
    server = subprocess.Popen(
        [sys.executable, "-m", "tessera.engine.cli", "view", str(store), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0].startswith(f"serving {store} on http://127.0.0.1:"), lines
        url = re.fullmatch(r"viewer: (http://127\.0\.0\.1:\d+/dzi/viewer\.html)\n", lines[1])
        assert url is not None, lines
        assert (store / "dzi" / "openseadragon" / "openseadragon.min.js").is_file()  # offline copy
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=800,600",
            "--virtual-time-budget=8000",
        ]
        png = tmp_path / "shot.png"
        shot = subprocess.run(
            [chromium, *flags, f"--screenshot={png}", url.group(1)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert png.is_file(), shot.stderr[-2000:]
        pixels = np.asarray(Image.open(png).convert("RGB"))
        shares = {name: _colour_share(pixels, rgb) for name, rgb in COLOURS.items()}
        if min(shares.values()) < 0.05:  # say what the page said, for the failure message
            dom = subprocess.run(
                [chromium, *flags, "--dump-dom", url.group(1)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            body = re.findall(r"<body[^>]*>|<div id=\"message\">[^<]*", dom.stdout)
            pytest.fail(
                f"tiles not drawn: colour shares {shares}, page {body}, std {pixels.std():.1f}"
            )
        assert pixels.std() > 20  # not a blank page
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""
    assert os.path.isfile(store / "dzi" / "viewer.html")
