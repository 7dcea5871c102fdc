"""What a person reads after an imaging.pyramid job: the table `tessera run` prints, the outputs
and where they are, what to do next; and the messages of a job file that is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tessera.engine import executors, spec
from tessera.engine.report import render, render_answer, render_next
from tessera.engine.run import run_job
from tests.dzi import quadrants

ROOT = Path(__file__).resolve().parent.parent

JOB = """\
[job]
name = "small-pyramid"
kernel = "imaging.pyramid"
store = "store"
shards = 2

[params]
source = "{source}"
tile_size = 64
{extra}
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
    )


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "slide.png"
    Image.fromarray(quadrants(300, 200)).save(path)
    return path


def test_a_pyramid_run_prints_a_short_table_and_what_to_do_next(
    tmp_path: Path, image: Path
) -> None:
    """`tessera run` of a 300 x 200 pyramid, end to end: the answer is a table of levels with
    their sizes and tiles, the outputs with their locations, and the next step last."""
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(source=image.name, extra='dzi = { format = "jpg" }'))
    done = _cli(tmp_path, "run", str(job), "--executor", "local")
    assert done.returncode == 0, done.stderr
    store = tmp_path / "store"
    result = json.loads((store / "result.json").read_text())
    sums = [lv["checksum"][:12] for lv in result["levels"]]
    answer = done.stdout.split("\n\n")[0]
    assert answer == "\n".join(
        [
            "image: width 300; height 200; channels 3; dtype uint8",
            "tile_size: 64",
            f"checksum: {result['checksum']}",
            "checksum_method: sha256 of the CRC-32s of the tiles' pixels (y, x, c), 4 bytes "
            "big-endian each, level 0 first, tiles row-major",
            "levels: 10 entries",
            "  level          shape  tiles  dzi_level  ome_zarr         checksum",
            f"      0  200 x 300 x 3  4 x 5          9       yes  {sums[0]}...",
            f"      1  100 x 150 x 3  2 x 3          8       yes  {sums[1]}...",
            f"      2    50 x 75 x 3  1 x 2          7       yes  {sums[2]}...",
            f"      3    25 x 38 x 3  1 x 1          6       yes  {sums[3]}...",
            f"      4    13 x 19 x 3  1 x 1          5        no  {sums[4]}...",
            f"      5     7 x 10 x 3  1 x 1          4        no  {sums[5]}...",
            f"      6      4 x 5 x 3  1 x 1          3        no  {sums[6]}...",
            f"      7      2 x 3 x 3  1 x 1          2        no  {sums[7]}...",
            f"      8      1 x 2 x 3  1 x 1          1        no  {sums[8]}...",
            f"      9      1 x 1 x 3  1 x 1          0        no  {sums[9]}...",
            "ome_zarr: path image; ngff 0.5; levels 4; axes c, y, x",
            "dzi: path dzi/image.dzi; viewer dzi/viewer.html; levels 10; tiles 35",
            "outputs:",
            f"  OME-Zarr image (NGFF 0.5)  {store}/image",
            f"  Deep Zoom descriptor       {store}/dzi/image.dzi",
            f"  Deep Zoom tiles            {store}/dzi/image_files/",
            f"  viewer page                {store}/dzi/viewer.html",
        ]
    )
    assert done.stdout.endswith(
        f"\n\nnext:\n  tessera view {store}    # serves dzi/viewer.html on localhost and prints "
        f"its address\nresult: {store}/result.json\n"
    )
    assert "None" not in done.stdout and "{'" not in done.stdout and "[" not in answer
    assert max(map(len, answer.splitlines())) <= 126
    # the files the lines name are there; "jpg" was read as "jpeg"
    for path in (
        "image/zarr.json",
        "dzi/image.dzi",
        "dzi/viewer.html",
        "dzi/image_files/9/4_3.jpeg",
    ):
        assert (store / path).is_file(), path
    assert result["params"]["dzi"]["format"] == "jpeg"
    # result.json holds "{store}", not this store's path: it stays the same wherever it is
    assert result["next"] == [
        "tessera view {store}    # serves dzi/viewer.html on localhost and prints its address"
    ]
    status = _cli(tmp_path, "status", "store")
    assert status.returncode == 0 and f"next:\n  tessera view {store}    # serves" in status.stdout


def _outcome(tmp_path: Path, image: Path, **params: Any) -> Any:
    data = {
        "job": {"name": "p", "kernel": "imaging.pyramid", "store": str(tmp_path / "store")},
        "params": {"source": str(image), "tile_size": 64, **params},
    }
    outcome = run_job(spec.from_dict(data), executors.create("local"), lambda e: None)
    assert outcome.ok and outcome.result is not None
    return outcome


def test_a_zip_pyramid_names_the_zip_and_its_viewer(tmp_path: Path, image: Path) -> None:
    outcome = _outcome(tmp_path, image, ome_zarr=False, dzi={"container": "zip"})
    store = tmp_path / "store"
    text = render(outcome.result, outcome.report)
    assert (
        f"outputs:\n  Deep Zoom zip  {store}/dzi/image.zip\n  viewer page    "
        f"{store}/dzi/viewer.html\n" in text
    )
    assert text.endswith(
        f"next:\n  tessera view {store}    # serves dzi/viewer.html on localhost and prints its "
        f"address"
    )
    assert "\nome_zarr:" not in text and "OME-Zarr" not in text  # nothing written, not said
    assert (store / "dzi" / "viewer.html").is_file() and not (store / "image").exists()


def test_an_ome_zarr_only_pyramid_says_where_the_image_is(tmp_path: Path, image: Path) -> None:
    outcome = _outcome(tmp_path, image)
    store = tmp_path / "store"
    text = render(outcome.result, outcome.report)
    assert f"outputs:\n  OME-Zarr image (NGFF 0.5)  {store}/image\n" in text
    assert text.endswith(
        f"next:\n  open {store}/image in an OME-Zarr (NGFF 0.5) viewer, e.g. napari"
    )
    assert "\ndzi:" not in text and "Deep Zoom" not in text and "tessera view" not in text


def test_outputs_and_next_are_any_kernels() -> None:
    """The convention is the engine's, for every kernel: ``outputs`` label -> path in the store,
    ``next`` with ``{store}`` (quoted for a shell), shown last."""
    answer = {
        "kernel": "mine.table",
        "params": {},
        "seed": 0,
        "rows": 3,
        "outputs": {"table": "out/table.csv", "plot": "out/plot.png"},
        "next": ["open {store}/out/plot.png", "tessera status {store}"],
    }
    assert render_answer(answer, store="/data/my runs/x") == [
        "rows: 3",
        "outputs:",
        "  table  /data/my runs/x/out/table.csv",
        "  plot   /data/my runs/x/out/plot.png",
    ]
    assert render_next(answer, "/data/my runs/x") == [
        "next:",
        "  open '/data/my runs/x'/out/plot.png",
        "  tessera status '/data/my runs/x'",
    ]
    assert render_next(answer, "s3://bucket/runs/x")[2] == "  tessera status s3://bucket/runs/x"
    assert render_answer(answer)[2] == "  table  out/table.csv"  # no store: relative paths
    assert render_next({"rows": 3}, "/x") == [] and render_next(None, "/x") == []


def test_toml_mistakes_are_told_in_toml_words(tmp_path: Path, image: Path) -> None:
    """`tessera validate`: a boolean where a number belongs is shown as `true`, as the job file
    wrote it; a folder as the source says what was expected."""
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(source=image.name, extra="").replace("= 64", "= true"))
    done = _cli(tmp_path, "validate", str(job))
    assert done.returncode == 2
    assert "params.tile_size: expected an integer, got bool true" in done.stderr
    assert "True" not in done.stderr
    (tmp_path / "images").mkdir()
    image.rename(tmp_path / "images" / "slide.png")
    job.write_text(JOB.format(source="images", extra=""))
    done = _cli(tmp_path, "validate", str(job))
    assert done.returncode == 2
    assert (
        "params.source: images is a folder, not an image file nor a Zarr array (Zarr finds no "
        "array or group metadata in it); expected the path or URL of one TIFF, PNG or JPEG "
        "file, or of a Zarr array's folder. It holds one image: source = "
        '"images/slide.png" makes its pyramid' in done.stderr
    ), done.stderr
