"""imaging.pyramid: tile grids, params, inputs, OME-Zarr and DZI outputs, shard invariance, S3."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from examples.make_images import make_image, write_pillow, write_tiff
from tessera.engine import executors, spec
from tessera.engine.errors import SpecError, StoreMismatchError
from tessera.engine.run import run_job
from tessera.kernels.imaging import dzi
from tessera.kernels.imaging.tiles import (
    Geometry,
    dzi_level_count,
    dzi_tile_box,
    level_shape,
    ome_level_count,
    super_tile_for,
    tile_grid,
)
from tests import imaging_reference as ref
from tests.jobs import run_ok

W, H, T = 700, 530, 64  # odd sizes, partial last tiles; 3x3 super-tiles of 256


# -- tile-grid arithmetic ---------------------------------------------------------------------


def test_level_shapes_round_up_for_odd_sides() -> None:
    assert [level_shape(7001, 10000, lv) for lv in range(4)] == [
        (7001, 10000),
        (3501, 5000),
        (1751, 2500),
        (876, 1250),
    ]
    assert level_shape(7001, 10000, 14) == (1, 1)
    assert tile_grid(7001, 10000, 256) == (28, 40)  # 7001 = 27 * 256 + 89: a partial last row
    assert tile_grid(256, 257, 256) == (1, 2)


@pytest.mark.parametrize(
    ("width", "height"),
    [(1, 1), (2, 1), (1, 3), (64, 64), (65, 64), (700, 530), (10000, 7001), (4096, 1), (257, 3000)],
)
def test_level_counts(width: int, height: int) -> None:
    assert dzi_level_count(height, width) == ref.dzi_level_count(width, height)
    n_ome = ome_level_count(height, width, 256)
    assert max(level_shape(height, width, n_ome - 1)) <= 256
    assert n_ome == 1 or max(level_shape(height, width, n_ome - 2)) > 256
    assert level_shape(height, width, dzi_level_count(height, width) - 1) == (1, 1)


def test_dzi_tile_boxes_with_overlap_match_vips() -> None:
    """Numbers from `vips dzsave --tile-size 64 --overlap 1` of a 700x530 image, level 9."""
    assert dzi_tile_box(0, 0, 265, 350, 64, 1) == (0, 65, 0, 65)
    assert dzi_tile_box(1, 1, 265, 350, 64, 1) == (63, 129, 63, 129)
    assert dzi_tile_box(5, 4, 265, 350, 64, 1) == (255, 265, 319, 350)  # 10 x 31
    assert dzi_tile_box(5, 4, 265, 350, 64, 0) == (256, 265, 320, 350)


@pytest.mark.parametrize(("width", "height"), [(700, 530), (10000, 7001), (257, 255), (64, 64)])
@pytest.mark.parametrize("super_tile", [64, 256, 1024])
def test_every_tile_of_every_shard_level_has_exactly_one_owner(
    width: int, height: int, super_tile: int
) -> None:
    tile = 64
    geo = Geometry(height, width, tile, super_tile)
    for level in range(geo.shard_levels):
        owners = np.zeros(geo.tiles(level), dtype=np.int64)
        covered = np.zeros(geo.shape(level), dtype=np.int64) if width < 5000 else None
        for shard in range(geo.n_shards):
            rows, cols = geo.shard_tiles(shard, level)
            owners[rows.start : rows.stop, cols.start : cols.stop] += 1
            y0, y1, x0, x1 = geo.footprint(shard, level)
            assert y0 % tile == 0 and x0 % tile == 0
            assert y1 % tile == 0 or y1 == geo.shape(level)[0]
            if covered is not None:
                covered[y0:y1, x0:x1] += 1
            for r in rows:
                for c in cols:
                    assert geo.slot(level, r, c)[0] == shard
        assert (owners == 1).all()
        assert covered is None or (covered == 1).all()
    slots = {
        geo.slot(lv, r, c)
        for lv in range(geo.shard_levels)
        for r in range(geo.tiles(lv)[0])
        for c in range(geo.tiles(lv)[1])
    }
    assert len(slots) == sum(geo.tiles(lv)[0] * geo.tiles(lv)[1] for lv in range(geo.shard_levels))
    assert all(s < geo.tiles_per_super_tile() for _, s in slots)


def test_shard_size_and_shard_count_map_to_each_other() -> None:
    for size in (64, 128, 256, 512):
        n = Geometry(H, W, T, size).n_shards
        assert super_tile_for(H, W, T, n) == size
    assert Geometry(H, W, T, 4096).n_shards == 1
    assert super_tile_for(H, W, T, 1) == 1024  # the smallest super-tile holding the image
    assert super_tile_for(H, W, T, 5) == 512  # 2x2 = 4 shards: at most what was asked


def test_the_read_margin_is_aligned_and_only_there_with_overlap() -> None:
    geo = Geometry(7001, 10000, 256, 4096)
    assert geo.shard_levels == 5 and geo.margin(0) == 0 and geo.margin(1) == 16
    assert geo.read_box(0, 0) == (0, 4096, 0, 4096)
    assert geo.read_box(4, 1) == (4096 - 16, 7001, 4096 - 16, 8192 + 16)


# -- params -------------------------------------------------------------------------------------


def _job(
    store: Path | str,
    source: Path | str,
    *,
    shard_size: int | None = None,
    shards: int | None = None,
    memory_mib: int = 2048,
    **params: Any,
) -> dict[str, Any]:
    job: dict[str, Any] = {"name": "pyramid", "kernel": "imaging.pyramid", "store": str(store)}
    if shard_size is not None:
        job["shard_size"] = shard_size
    if shards is not None:
        job["shards"] = shards
    return {
        "job": job,
        "params": {"source": str(source), "tile_size": T, **params},
        "resources": {"memory_mib": memory_mib},
    }


@pytest.mark.parametrize(
    ("params", "key", "match"),
    [
        ({"tile_size": 100}, "params.tile_size", "not a power of two"),
        ({"tile_size": 8192}, "params.tile_size", r"out of range; expected 64..4096"),
        ({"tile_size": 32}, "params.tile_size", r"out of range"),
        ({"tile": 64}, "params.tile", "did you mean 'tile_size'"),
        ({"dzi": {"format": "gif"}}, "params.dzi.format", "'gif' is not one of"),
        ({"dzi": {"overlap": 2}}, "params.dzi.overlap", "out of range; expected 0..1"),
        ({"dzi": {"quality": 0}}, "params.dzi.quality", "out of range"),
        ({"dzi": {"containr": "zip"}}, "params.dzi.containr", "did you mean 'container'"),
        ({"ome_zarr": False}, "params.ome_zarr", "nothing to write"),
        ({"gamma_correct": "yes"}, "params.gamma_correct", "expected true or false"),
        # booleans as the job file writes them, not as Python prints them
        ({"tile_size": True}, "params.tile_size", r"expected an integer, got bool true$"),
        ({"dzi": True}, "params.dzi", r'expected a table like \{ format = "jpeg" \}, got true$'),
        ({"dzi": {"format": False}}, "params.dzi.format", r": false is not one of"),
        ({"dzi": {"quality": True}}, "params.dzi.quality", r"got bool true$"),
        ({"ome_zarr": [True]}, "params.ome_zarr", r"expected true or false, got list \[true\]$"),
        ({"dzi": {"format": "GIF"}}, "params.dzi.format", r": 'GIF' is not one of"),
    ],
)
def test_bad_params_name_the_key(
    tmp_path: Path, images: dict[str, Path], params: dict[str, Any], key: str, match: str
) -> None:
    with pytest.raises(SpecError, match=match) as info:
        spec.from_dict(_job(tmp_path / "s", images["tiff"], **params))
    assert info.value.key == key
    assert "True" not in str(info.value) and "False" not in str(info.value)


def test_a_boolean_source_is_shown_as_toml_writes_it(tmp_path: Path) -> None:
    job = _job(tmp_path / "s", "unused")
    job["params"]["source"] = True
    with pytest.raises(SpecError) as info:
        spec.from_dict(job)
    assert str(info.value) == "params.source: is required: a path or URL of the image, got true"


@pytest.mark.parametrize("fmt", ["jpg", "JPG", "Jpeg", "PNG", "webp"])
def test_dzi_format_is_read_as_transcode_reads_it(
    tmp_path: Path, images: dict[str, Path], fmt: str
) -> None:
    """``jpg`` is ``jpeg`` and case does not matter, as for imaging.transcode's ``format``; the
    job records the canonical name, so "jpg" and "jpeg" are one job (one spec hash)."""
    job = spec.from_dict(_job(tmp_path / "s", images["tiff"], dzi={"format": fmt}))
    canonical = {"jpg": "jpeg"}.get(fmt.lower(), fmt.lower())
    assert job.params_dict()["dzi"]["format"] == canonical
    same = spec.from_dict(_job(tmp_path / "s", images["tiff"], dzi={"format": canonical}))
    assert job.spec_hash == same.spec_hash


def test_a_folder_as_source_says_what_was_expected(tmp_path: Path, images: dict[str, Path]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError) as info:
        spec.from_dict(_job(tmp_path / "s", empty))
    assert info.value.key == "params.source"
    assert str(info.value) == (
        f"params.source: {empty} is a folder, not an image file nor a Zarr array (Zarr finds no "
        f"array or group metadata in it); expected the path or URL of one TIFF, PNG or JPEG file, "
        f"or of a Zarr array's folder"
    )
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(images["png"], one / "slide.png")
    with pytest.raises(SpecError, match="is a folder, not an image file") as info:
        spec.from_dict(_job(tmp_path / "s", one))
    assert str(info.value).endswith(f'. It holds one image: source = "{one}/slide.png" makes its '
                                    f"pyramid")  # fmt: skip
    shutil.copy(images["tiff"], one / "other.tif")
    with pytest.raises(SpecError, match=r"It holds 2 images: give one, e.g. source = ") as info:
        spec.from_dict(_job(tmp_path / "s", one))
    assert "imaging.transcode converts many files" in str(info.value)
    with pytest.raises(SpecError, match=r"not found \(FileNotFoundError") as info:
        spec.from_dict(_job(tmp_path / "s", tmp_path / "nowhere"))  # missing: still "not found"
    assert info.value.key == "params.source"


@pytest.mark.parametrize("size", [100, 192, 32, 96])
def test_shard_size_must_be_tile_size_times_a_power_of_two(
    tmp_path: Path, images: dict[str, Path], size: int
) -> None:
    with pytest.raises(SpecError, match=r"not tile_size \(64\) times a power of two") as info:
        spec.from_dict(_job(tmp_path / "s", images["tiff"], shard_size=size))
    assert info.value.key == "job.shard_size"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("float32.tif", "float32 pixels; tessera reads uint8 or uint16"),
        ("palette.png", r"the PNG is \d+-bit palette: convert it to 8- or 16-bit L, RGB or RGBA"),
        ("palette.tif", "palette"),
        ("cmyk.jpg", "the JPEG is 8-bit CMYK: convert"),
        ("la.png", "grey\\+alpha"),
        ("two.tif", "grey with 2 samples"),
        ("missing.tif", "not found"),
        ("truncated.jpg", "a JPEG without a frame header"),
        ("text.txt", "not a TIFF, PNG or JPEG image nor a Zarr array"),
    ],
)
def test_unsupported_sources_are_refused_at_validate_time(
    tmp_path: Path, bad_images: Path, name: str, match: str
) -> None:
    with pytest.raises(SpecError, match=match) as info:
        spec.from_dict(_job(tmp_path / "s", bad_images / name))
    assert info.value.key == "params.source"


def test_prepare_records_the_source_and_refuses_a_changed_image(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    source = tmp_path / "img.png"
    shutil.copy(images["png"], source)
    job = spec.from_dict(_job(tmp_path / "s", source, shard_size=256))
    assert job.params_dict() | {} == {
        "source": str(source),
        "tile_size": 64,
        "gamma_correct": False,
        "ome_zarr": True,
        "width": W,
        "height": H,
        "channels": 3,
        "dtype": "uint8",
        "format": "png",
    }
    stored = job.to_dict()
    write_pillow(source, make_image(W + 2, H, "RGB"))
    with pytest.raises(SpecError, match=r"is now 702x530.*recorded 700x530") as info:
        spec.from_dict(stored)  # a worker loading the stored job
    assert info.value.key == "params.source"
    assert spec.from_dict(_job(tmp_path / "s", source, shard_size=256)).spec_hash != job.spec_hash


def test_the_example_job_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/image-pyramid.toml, with an empty TIFF of the right size where it expects one."""
    example = Path(__file__).resolve().parent.parent / "examples" / "image-pyramid.toml"
    (tmp_path / "runs" / "images").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "runs/images/slide-10000x7001.tif", shape=(7001, 10000, 3),
                     dtype=np.uint8, tile=(256, 256), photometric="rgb")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    job = spec.load(example)
    assert job.kernel_name == "imaging.pyramid" and job.n_shards == 6  # 2 x 3 super-tiles
    assert job.params_dict()["width"] == 10000 and job.params_dict()["height"] == 7001


def test_too_large_a_shard_is_refused_at_plan_time(tmp_path: Path) -> None:
    """A 60000 x 60000 RGB Zarr array (no chunk written: a few bytes on disk)."""
    url = tmp_path / "huge.zarr"
    zarr.create_array(str(url), shape=(60_000, 60_000, 3), chunks=(1024, 1024, 3), dtype="uint8")
    with pytest.raises(
        SpecError, match=r"projected to need [\d,]+ MiB.*more than memory_mib = 2,048"
    ):
        spec.from_dict(_job(tmp_path / "s", url, shard_size=16384, tile_size=256))
    job = spec.from_dict(_job(tmp_path / "s", url, shard_size=4096, tile_size=256))
    assert job.n_shards == 15 * 15
    with pytest.raises(SpecError, match="memory_mib") as info:
        spec.from_dict(_job(tmp_path / "s", url, shard_size=4096, tile_size=256, memory_mib=256))
    assert info.value.key == "resources.memory_mib"


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 700x530 picture in every input format (JPEG is lossy: its own pixels)."""
    root = tmp_path_factory.mktemp("images")
    pixels = make_image(W, H, "RGB")
    paths = {
        "tiff": write_tiff(root / "tiled.tif", W, H, tile=64),
        "bigtiff": write_tiff(root / "big.tif", W, H, tile=128, bigtiff=True, compression="zlib"),
        "png": write_pillow(root / "image.png", pixels),
        "jpeg": write_pillow(root / "image.jpg", pixels),
        "rgba16": root / "rgba16.png",
        "grey16": write_pillow(root / "grey16.png", make_image(W, H, "L", bits=16)),
        "rgba": write_pillow(root / "rgba.png", make_image(W, H, "RGBA")),
    }
    tifffile.imwrite(root / "strips.tif", pixels, rowsperstrip=37, photometric="rgb")
    paths["strips"] = root / "strips.tif"
    import imagecodecs

    (root / "rgba16.png").write_bytes(imagecodecs.png_encode(make_image(W, H, "RGBA", bits=16)))
    zarr_path = root / "image.zarr"
    array = zarr.create_array(
        str(zarr_path),
        shape=(3, H, W),
        chunks=(3, 100, 100),
        dtype="uint8",
        dimension_names=("c", "y", "x"),
    )
    array[...] = pixels.transpose(2, 0, 1)
    paths["zarr"] = zarr_path
    return paths


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    tifffile.imwrite(root / "float32.tif", np.zeros((20, 30), np.float32))
    tifffile.imwrite(
        root / "two.tif",
        np.zeros((20, 30, 2), np.uint8),
        photometric="minisblack",
        planarconfig="contig",
    )
    tifffile.imwrite(
        root / "palette.tif",
        np.zeros((20, 30), np.uint8),
        photometric="palette",
        colormap=np.zeros((3, 256), np.uint16),
    )
    Image.new("P", (30, 20)).save(root / "palette.png")
    Image.new("CMYK", (30, 20)).save(root / "cmyk.jpg")
    Image.new("LA", (30, 20)).save(root / "la.png")
    (root / "text.txt").write_text("hello, not an image\n")
    (root / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    return root


def _levels(store: Path) -> list[np.ndarray]:
    group = zarr.open_group(str(store / "image"), mode="r")
    n = len(group.attrs["ome"]["multiscales"][0]["datasets"])
    return [np.asarray(group[str(lv)][...]).transpose(1, 2, 0) for lv in range(n)]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overlap_runs(
    tmp_path_factory: pytest.TempPathFactory, images: dict[str, Path]
) -> dict[str, Path]:
    """The same PNG-tiled pyramid with overlap 1, as 9 shards and as 1."""
    root = tmp_path_factory.mktemp("runs")
    params = {"dzi": {"format": "png", "overlap": 1}}
    run_ok(_job(root / "nine", images["tiff"], shard_size=256, **params))
    run_ok(_job(root / "one", images["tiff"], shards=1, **params))
    return {"nine": root / "nine", "one": root / "one"}


def test_one_shard_and_nine_give_the_same_bytes(overlap_runs: dict[str, Path]) -> None:
    nine, one = overlap_runs["nine"], overlap_runs["one"]
    assert (nine / "result.json").read_bytes() == (one / "result.json").read_bytes()
    assert json.loads((nine / "report.json").read_text())["n_shards"] == 9
    assert _files(nine / "dzi") == _files(one / "dzi")
    for a, b in zip(_levels(nine), _levels(one), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    g9, g1 = (zarr.open_group(str(p / "image"), mode="r") for p in (nine, one))
    for name in g9.array_keys():  # the same chunks, byte for byte, whatever the Zarr shards
        a, b = g9[name], g1[name]
        assert a.chunks == b.chunks == (3, T, T)
        for y in range(0, a.shape[1], T):
            for x in range(0, a.shape[2], T):
                sel = (slice(None), slice(y, y + T), slice(x, x + T))
                assert a[sel].tobytes() == b[sel].tobytes()


def test_a_viewer_is_written_beside_the_dzi(overlap_runs: dict[str, Path]) -> None:
    page = (overlap_runs["one"] / "dzi" / "viewer.html").read_text()
    assert "image.dzi" in page and "OpenSeadragon" in page


def test_every_level_equals_the_numpy_reference(
    overlap_runs: dict[str, Path], images: dict[str, Path]
) -> None:
    store = overlap_runs["nine"]
    levels = ref.pyramid(tifffile.imread(images["tiff"]))
    ome_levels = _levels(store)
    assert len(ome_levels) == 5 and len(levels) == 11
    for got, want in zip(ome_levels, levels):
        assert np.array_equal(got, want)
    result = json.loads((store / "result.json").read_text())
    assert [lv["checksum"] for lv in result["levels"]] == [
        ref.level_checksum(lv, T) for lv in levels
    ]
    assert [lv["shape"] for lv in result["levels"]] == [list(lv.shape) for lv in levels]
    assert [lv["dzi_level"] for lv in result["levels"]] == list(range(10, -1, -1))
    assert [lv["ome_zarr"] for lv in result["levels"]] == [True] * 5 + [False] * 6
    # Every DZI tile holds its level's pixels, with one overlap pixel towards each neighbour.
    files = store / "dzi" / "image_files"
    for level, pixels in enumerate(levels):
        rows, cols = tile_grid(*pixels.shape[:2], T)
        for r in range(rows):
            for c in range(cols):
                y0, y1, x0, x1 = dzi_tile_box(c, r, *pixels.shape[:2], T, 1)
                tile = np.asarray(Image.open(files / str(10 - level) / f"{c}_{r}.png"))
                assert np.array_equal(tile, pixels[y0:y1, x0:x1]), (level, r, c)


def test_dzi_descriptor_and_names(overlap_runs: dict[str, Path]) -> None:
    root = overlap_runs["nine"] / "dzi"
    assert (root / "image.dzi").read_text() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"\n'
        '  Format="png"\n  Overlap="1"\n  TileSize="64"\n  >\n'
        '  <Size \n    Height="530"\n    Width="700"\n  />\n</Image>\n'
    )
    names = {
        str(p.relative_to(root / "image_files")) for p in (root / "image_files").rglob("*.png")
    }
    assert names == ref.dzi_names(W, H, T, "png")


@pytest.mark.parametrize(("width", "height"), [(1, 1), (64, 64), (65, 1), (100, 300), (1000, 999)])
def test_dzi_names_for_several_sizes(width: int, height: int) -> None:
    geo = Geometry(height, width, T, 256)
    names = {
        dzi.tile_name(geo.dzi_level(lv), c, r, "jpeg")
        for lv in range(geo.n_levels)
        for r in range(geo.tiles(lv)[0])
        for c in range(geo.tiles(lv)[1])
    }
    assert names == ref.dzi_names(width, height, T, "jpeg")
    assert geo.n_dzi == ref.dzi_level_count(width, height) if max(width, height) > 1 else 1


def test_ome_zarr_metadata_validates_and_reads_back(overlap_runs: dict[str, Path]) -> None:
    from ome_zarr_models.v05.image import Image as OmeImage

    group = zarr.open_group(str(overlap_runs["nine"] / "image"), mode="r")
    model = OmeImage.from_zarr(group)
    multiscale = model.attributes.ome.multiscales[0]
    assert [a.name for a in multiscale.axes] == ["c", "y", "x"]
    assert [a.type for a in multiscale.axes] == ["channel", "space", "space"]
    assert [d.path for d in multiscale.datasets] == ["0", "1", "2", "3", "4"]
    scales = [d.coordinateTransformations[0].scale for d in multiscale.datasets]
    assert scales == [[1.0, 2.0**lv, 2.0**lv] for lv in range(5)]
    assert group.attrs["ome"]["version"] == "0.5"
    level0 = group["0"]
    assert level0.metadata.dimension_names == ("c", "y", "x")
    assert level0.shape == (3, H, W) and level0.chunks == (3, T, T)
    # a quarter of a tessera shard's 256^2 footprint: 4 objects that are encoded at once
    assert level0.shards == (3, 128, 128)
    objects = list((overlap_runs["nine"] / "image" / "0" / "c").rglob("*"))
    assert len([p for p in objects if p.is_file()]) == -(-H // 128) * -(-W // 128)
    assert group["1"].shards == (3, 128, 128)  # 128 = 2 tiles: one object per tessera shard


def test_ome_zarr_levels_are_blosc_zstd_and_read_the_same_through_both_pipelines(
    overlap_runs: dict[str, Path],
) -> None:
    """The levels were written by the zarrs pipeline with the engine's default codec (in each
    level's zarr.json on disk); zarr-python's own pipeline reads the same pixels."""
    from tessera.engine.codecs import DEFAULT_COMPRESSORS
    from tessera.engine.store import Store

    store = Store.open_existing(str(overlap_runs["nine"]))
    plain = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
    for level in range(5):
        meta = json.loads((overlap_runs["nine"] / "image" / str(level) / "zarr.json").read_bytes())
        inner = meta["codecs"][0]["configuration"]["codecs"]
        assert [c["name"] for c in inner] == ["bytes", "blosc"]
        assert DEFAULT_COMPRESSORS[0]["configuration"].items() <= inner[1]["configuration"].items()
        fast = store.array(f"image/{level}")
        assert type(fast.async_array.codec_pipeline).__name__ == "ZarrsCodecPipeline"
        with zarr.config.set(plain):
            slow = zarr.open_array(str(overlap_runs["nine"] / "image" / str(level)), mode="r")
            assert np.array_equal(slow[...], fast[...])


@pytest.mark.parametrize("fmt", ["tiff", "bigtiff", "strips", "png", "jpeg", "zarr"])
def test_every_input_format(tmp_path: Path, images: dict[str, Path], fmt: str) -> None:
    source = images[fmt]
    run_ok(_job(tmp_path / "s", source, shard_size=256))
    want = np.asarray(Image.open(images["jpeg"])) if fmt == "jpeg" else make_image(W, H, "RGB")
    levels = _levels(tmp_path / "s")
    assert np.array_equal(levels[0], want)
    assert np.array_equal(levels[2], ref.downsample(ref.downsample(want)))


def test_an_ome_zarr_image_and_a_zarr_v2_array_as_sources(
    tmp_path: Path, overlap_runs: dict[str, Path]
) -> None:
    """The pyramid's own output, read back through its multiscales metadata, gives itself."""
    first = json.loads((overlap_runs["nine"] / "result.json").read_text())
    run_ok(_job(tmp_path / "s", overlap_runs["nine"] / "image", shard_size=128))
    again = json.loads((tmp_path / "s" / "result.json").read_text())
    assert again["params"]["format"] == "zarr"
    assert [lv["checksum"] for lv in again["levels"]] == [lv["checksum"] for lv in first["levels"]]
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=(H, W), chunks=(100, 100),
                           dtype="uint16", zarr_format=2)  # fmt: skip
    grey = make_image(W, H, "L", bits=16)
    v2[...] = grey[..., 0]
    run_ok(_job(tmp_path / "g", tmp_path / "v2.zarr", shard_size=256))
    assert np.array_equal(_levels(tmp_path / "g")[1], ref.downsample(grey))


@pytest.mark.parametrize(
    "options",
    [
        {"tile": (64, 64)},
        {"tile": (32, 48), "byteorder": ">"},
        {"rowsperstrip": 7},
        {"rowsperstrip": 5, "byteorder": ">", "compression": "zlib"},
        {"tile": (64, 64), "planarconfig": "separate"},
        {"tile": (64, 64), "compression": "zlib", "predictor": True},
        {"rowsperstrip": 9, "bigtiff": True},
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_regions_equal_tifffile(tmp_path: Path, options: dict[str, Any], dtype: Any) -> None:
    """Memory-mapped (plain pixels) and decoded (everything else) reads alike."""
    from tessera.engine.io import Inputs
    from tessera.kernels.imaging.source import open_source

    pixels = make_image(150, 101, "RGB", bits=8 * np.dtype(dtype).itemsize)
    path = tmp_path / "x.tif"
    planar = options.get("planarconfig") == "separate"
    tifffile.imwrite(path, pixels.transpose(2, 0, 1) if planar else pixels, photometric="rgb",
                     **options)  # fmt: skip
    source = open_source(str(path), Inputs(), threads=2)
    try:
        mapped = source._map is not None  # type: ignore[attr-defined]
        plain = "compression" not in options and "planarconfig" not in options
        assert mapped == plain
        for y0, y1, x0, x1 in [(0, 101, 0, 150), (3, 70, 33, 149), (100, 101, 149, 150)]:
            seen: list[int] = []
            got = source.read(y0, y1, x0, x1, lambda out, n, seen=seen: seen.append(n))
            assert got.dtype == dtype and np.array_equal(got, pixels[y0:y1, x0:x1])
            assert seen == sorted(seen) and seen[-1] == y1 - y0
    finally:
        source.close()


@pytest.mark.parametrize(
    ("name", "mode", "bits"), [("grey16", "L", 16), ("rgba16", "RGBA", 16), ("rgba", "RGBA", 8)]
)
def test_grey_rgba_and_16_bit_sources(
    tmp_path: Path, images: dict[str, Path], name: str, mode: str, bits: int
) -> None:
    run_ok(_job(tmp_path / "s", images[name], shard_size=128, dzi={"format": "png"}))
    pixels = make_image(W, H, mode, bits)
    levels = ref.pyramid(pixels)
    got = _levels(tmp_path / "s")
    for lv, level in enumerate(got):
        assert np.array_equal(level, levels[lv])
    import imagecodecs  # Pillow reads 16-bit colour PNGs as 8-bit

    tile = imagecodecs.png_decode((tmp_path / "s" / "dzi/image_files/10/3_2.png").read_bytes())
    assert np.array_equal(tile.reshape(64, 64, -1), levels[0][128:192, 192:256])


@pytest.mark.parametrize(("width", "height"), [(1, 1), (300, 1), (1, 130), (64, 64), (65, 129)])
@pytest.mark.parametrize("ome_zarr", [True, False])
def test_tiny_and_thin_images(tmp_path: Path, width: int, height: int, ome_zarr: bool) -> None:
    pixels = make_image(width, height, "RGB", seed=width)
    source = write_pillow(tmp_path / "in.png", pixels)
    params = {"ome_zarr": ome_zarr, "dzi": {"format": "png", "overlap": 1}}
    outcome = run_ok(_job(tmp_path / "s", source, shard_size=64, **params))
    levels = ref.pyramid(pixels)
    assert outcome.result is not None
    assert [lv["checksum"] for lv in outcome.result["levels"]] == [
        ref.level_checksum(lv, T) for lv in levels
    ]
    names = {str(p.relative_to(tmp_path / "s/dzi/image_files")) for p in tmp_path.rglob("*.png")
             if "image_files" in str(p)}  # fmt: skip
    assert names == ref.dzi_names(width, height, T, "png")
    if ome_zarr:
        for got, want in zip(_levels(tmp_path / "s"), levels):
            assert np.array_equal(got, want)


def test_gamma_correct_zip_jpeg_without_ome_zarr(tmp_path: Path, images: dict[str, Path]) -> None:
    params = {"gamma_correct": True, "dzi": {"format": "jpeg", "quality": 90, "container": "zip"}}
    run_ok(_job(tmp_path / "a", images["tiff"], shard_size=128, **params))
    run_ok(_job(tmp_path / "b", images["tiff"], shard_size=128, ome_zarr=False, **params))
    run_ok(_job(tmp_path / "c", images["tiff"], shards=1, ome_zarr=False, **params))
    blobs = [(tmp_path / s / "dzi" / "image.zip").read_bytes() for s in "abc"]
    assert blobs[0] == blobs[1] == blobs[2]
    results = [json.loads((tmp_path / s / "result.json").read_text()) for s in "abc"]
    assert results[1]["levels"] == results[2]["levels"]
    assert [lv["checksum"] for lv in results[0]["levels"]] == [
        lv["checksum"] for lv in results[1]["levels"]
    ]
    assert not (tmp_path / "b" / "image").exists() and results[1]["ome_zarr"] is None
    levels = ref.pyramid(tifffile.imread(images["tiff"]), gamma_correct=True)
    with zipfile.ZipFile(tmp_path / "a" / "dzi" / "image.zip") as archive:
        names = archive.namelist()
        assert names[0] == "image/image.dzi" and 'Format="jpeg"' in archive.read(names[0]).decode()
        assert {n.removeprefix("image/image_files/") for n in names[1:]} == ref.dzi_names(
            W, H, T, "jpeg"
        )
        tile = np.asarray(Image.open(archive.open("image/image_files/9/1_1.jpeg")), dtype=float)
    assert np.abs(tile - levels[1][64:128, 64:128]).mean() < 3.0  # JPEG at quality 90


@pytest.mark.parametrize("count", [0, 3, 70_000])
def test_zip_bytes_are_those_python_zipfile_writes(count: int) -> None:
    """Including the ZIP64 records past 65,535 members."""
    rng = np.random.default_rng(count)
    members = [(f"image/image_files/{i % 15}/{i}_0.jpeg", rng.bytes(i % 50)) for i in range(count)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system, info.external_attr = 3, 0o644 << 16
            archive.writestr(info, data)
    blob = dzi.build_zip(members)
    assert blob == buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert archive.testzip() is None and len(archive.namelist()) == count


def test_pack_and_unpack_round_trip() -> None:
    members = [("10/0_0.jpeg", b"\xff\xd8abc"), ("9/1_2.jpeg", b""), ("0/0_0.jpeg", b"x" * 70)]
    assert dzi.unpack(dzi.pack(members)) == dict(members)
    with pytest.raises(ValueError, match="index covers"):
        dzi.unpack(dzi.pack(members) + b"junk")


def test_a_resumed_run_with_another_image_is_refused(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    source = tmp_path / "img.png"
    shutil.copy(images["png"], source)
    run_ok(_job(tmp_path / "s", source, shard_size=256))
    write_pillow(source, make_image(W, H + 1, "RGB"))
    job = spec.from_dict(_job(tmp_path / "s", source, shard_size=256))
    with pytest.raises(StoreMismatchError, match=r"params.height: stored 530, this job 531"):
        run_job(job, executors.create("local"), lambda e: None)


def test_a_corrupt_image_fails_its_shards_with_the_source_named(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    data = images["png"].read_bytes()
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(data[: len(data) // 2])  # the header is fine, the pixels are not
    job = spec.from_dict(_job(tmp_path / "s", corrupt, shard_size=256))
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert not outcome.ok and outcome.result is None
    assert sorted(outcome.failures) == list(range(9))
    assert all(f"{corrupt}: cannot decode the PNG" in r for r in outcome.failures.values())


def test_checksums_are_per_tile_digests(overlap_runs: dict[str, Path]) -> None:
    level = _levels(overlap_runs["nine"])[4]  # 34 x 44: one tile
    crc = zlib.crc32(np.ascontiguousarray(level).tobytes()).to_bytes(4, "big")
    result = json.loads((overlap_runs["nine"] / "result.json").read_text())
    assert result["levels"][4]["checksum"] == hashlib.sha256(crc).hexdigest()


def test_the_pyramid_checksum_is_a_hash_of_every_tile(
    overlap_runs: dict[str, Path], images: dict[str, Path]
) -> None:
    """``checksum`` is ``sha256:<hex>`` of every tile's CRC-32, level 0 first, tiles row-major
    (what ``checksum_method`` says), the same for 1 and 9 shards."""
    whole = hashlib.sha256()
    for level in ref.pyramid(tifffile.imread(images["tiff"])):
        for y in range(0, level.shape[0], T):
            for x in range(0, level.shape[1], T):
                tile = np.ascontiguousarray(level[y : y + T, x : x + T])
                whole.update(zlib.crc32(tile.tobytes()).to_bytes(4, "big"))
    for run in ("nine", "one"):
        result = json.loads((overlap_runs[run] / "result.json").read_text())
        assert result["checksum"] == f"sha256:{whole.hexdigest()}"
        assert result["checksum_method"] == (
            "sha256 of the CRC-32s of the tiles' pixels (y, x, c), 4 bytes big-endian each, "
            "level 0 first, tiles row-major"
        )


def test_dask_executor_gives_the_same_result(
    tmp_path: Path, images: dict[str, Path], overlap_runs: dict[str, Path]
) -> None:
    params = {"dzi": {"format": "png", "overlap": 1}}
    run_ok(_job(tmp_path / "d", images["tiff"], shard_size=128, **params), executor="dask")
    assert (tmp_path / "d" / "result.json").read_bytes() == (
        overlap_runs["one"] / "result.json"
    ).read_bytes()
    assert _files(tmp_path / "d" / "dzi") == _files(overlap_runs["one"] / "dzi")


# -- vips ---------------------------------------------------------------------------------------


def _vips() -> str | None:
    return shutil.which("vips")


@pytest.mark.skipif(_vips() is None, reason="vips (libvips-tools) is not installed")
@pytest.mark.parametrize("overlap", [0, 1])
def test_png_tiles_equal_vips_dzsave(
    tmp_path: Path, images: dict[str, Path], overlap_runs: dict[str, Path], overlap: int
) -> None:
    """vips's own 2x2 box shrink (`--region-shrink mean`, the default) gives the same pixels."""
    if overlap:
        ours = overlap_runs["nine"] / "dzi"
    else:
        run_ok(_job(tmp_path / "s", images["tiff"], shard_size=256, dzi={"format": "png"}))
        ours = tmp_path / "s" / "dzi"
    out = tmp_path / "vips" / "image"
    out.parent.mkdir()
    subprocess.run(
        [
            "vips",
            "dzsave",
            str(images["tiff"]),
            str(out),
            "--tile-size",
            str(T),
            "--overlap",
            str(overlap),
            "--suffix",
            ".png",
        ],
        check=True,
    )
    theirs = _files(out.parent)
    theirs.pop("image_files/vips-properties.xml")
    assert theirs.pop("image.dzi") == (ours / "image.dzi").read_bytes()
    mine = {k: v for k, v in _files(ours).items() if k.startswith("image_files/")}
    assert set(theirs) == set(mine)
    for name in theirs:
        a = np.asarray(Image.open(out.parent / name))
        b = np.asarray(Image.open(ours / name))
        assert np.array_equal(a, b), name


@pytest.mark.skipif(_vips() is None, reason="vips (libvips-tools) is not installed")
def test_jpeg_zip_is_laid_out_like_vips_dzsave(tmp_path: Path, images: dict[str, Path]) -> None:
    params = {"dzi": {"format": "jpeg", "quality": 85, "container": "zip", "overlap": 1}}
    run_ok(_job(tmp_path / "s", images["tiff"], shard_size=256, **params))
    subprocess.run(
        [
            "vips",
            "dzsave",
            str(images["tiff"]),
            str(tmp_path / "image.zip"),
            "--tile-size",
            str(T),
            "--overlap",
            "1",
            "--suffix",
            ".jpeg[Q=85]",
        ],
        check=True,
    )
    with (
        zipfile.ZipFile(tmp_path / "image.zip") as v,
        zipfile.ZipFile(tmp_path / "s" / "dzi" / "image.zip") as o,
    ):
        theirs = {n for n in v.namelist() if not n.endswith("vips-properties.xml")}
        assert theirs == set(o.namelist())
        assert v.read("image/image.dzi") == o.read("image/image.dzi")
        diffs = []
        for name in sorted(theirs - {"image/image.dzi"}):
            a = np.asarray(Image.open(v.open(name)), dtype=float)
            b = np.asarray(Image.open(o.open(name)), dtype=float)
            assert a.shape == b.shape, name
            diffs.append(np.abs(a - b).mean())
    assert max(diffs) < 1.0  # the same pixels, encoded by two libjpeg-turbo builds


# -- S3 -----------------------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize("container", ["zip", "directory"])
def test_pyramid_from_s3_to_s3(
    seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch, images: dict[str, Path], container: str
) -> None:
    import s3fs

    for key, value in seaweed_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = "tessera-pyramid"
    seaweed_s3.create_bucket(bucket)
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    fs.put_file(str(images["tiff"]), f"{bucket}/in/slide.tif")
    store = f"s3://{bucket}/runs/{container}"
    params = {"dzi": {"format": "jpeg", "container": container}}
    outcome = run_ok(_job(store, f"s3://{bucket}/in/slide.tif", shard_size=256, **params))
    assert outcome.result is not None and outcome.result["params"]["width"] == W
    fs.invalidate_cache()
    if container == "zip":
        with zipfile.ZipFile(io.BytesIO(fs.cat_file(f"{bucket}/runs/zip/dzi/image.zip"))) as z:
            names = {n.removeprefix("image/image_files/") for n in z.namelist()[1:]}
    else:
        root = f"{bucket}/runs/directory/dzi/image_files/"
        names = {p.removeprefix(root) for p in fs.find(root)}
        assert fs.cat_file(f"{bucket}/runs/directory/dzi/image.dzi").startswith(b"<?xml")
    assert names == ref.dzi_names(W, H, T, "jpeg")
    group = zarr.open_group(
        f"{store}/image", mode="r", storage_options=seaweed_s3.storage_options()
    )
    assert np.array_equal(np.asarray(group["0"][...]).transpose(1, 2, 0), make_image(W, H, "RGB"))
    levels = ref.pyramid(make_image(W, H, "RGB"))
    assert [lv["checksum"] for lv in outcome.result["levels"]] == [
        ref.level_checksum(lv, T) for lv in levels
    ]


def test_a_store_with_an_older_zarr_shard_grid_resumes_with_the_same_pixels(
    tmp_path: Path, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores made before the level arrays had 4 Zarr shards per tessera shard keep their one
    Zarr shard per footprint when resumed: the shards still to run write each stored object
    whole, by the array's own grid, and the levels and checksums are a fresh run's."""
    fresh = run_ok(_job(tmp_path / "fresh", images["tiff"], shard_size=256))
    old = tmp_path / "old"
    with monkeypatch.context() as m:  # the old layout: one Zarr shard per footprint

        def footprint_shards(geo: Geometry, level: int) -> tuple[int, int]:
            edge = geo.super_tile >> level if level < geo.shard_levels else geo.super_tile
            height, width = geo.shape(level)
            t = geo.tile
            return min(edge, -(-height // t) * t), min(edge, -(-width // t) * t)

        m.setattr(Geometry, "zarr_shard_shape", footprint_shards)
        run_ok(_job(old, images["tiff"], shard_size=256))
    assert zarr.open_array(str(old / "image" / "0"), mode="r").shards == (3, 256, 256)
    levels = Geometry(H, W, T, 256).shard_levels
    for shard in (1, 4, 8):  # pending again, their pixels gone: the run writes them again
        (old / "_shards" / f"{shard}.json").unlink()
        row, col = divmod(shard, 3)
        for level in range(levels):
            (old / "image" / str(level) / "c" / "0" / str(row) / str(col)).unlink()
    (old / "result.json").unlink()
    resumed = run_ok(_job(old, images["tiff"], shard_size=256))
    assert zarr.open_array(str(old / "image" / "0"), mode="r").shards == (3, 256, 256)
    assert resumed.result["checksum"] == fresh.result["checksum"]
    for ours, theirs in zip(_levels(old), _levels(tmp_path / "fresh"), strict=True):
        assert np.array_equal(ours, theirs)
