"""viewer.html beside DZI output, `tessera view`, and a headless Chromium screenshot that shows
the tiles were drawn."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tessera.engine.viewer import CDN, find_openseadragon, viewer_pages, write_viewer
from tests.dzi import quadrants, write_dzi

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
    assert empty.returncode == 1 and "no Deep Zoom output (.dzi)" in empty.stderr


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
