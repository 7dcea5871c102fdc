"""imaging.pyramid with microscopy inputs: 1 to 64 channels, uint16, z-stacks, OME-TIFF
metadata, series, pyramidal files, and what Deep Zoom does with them (a composite of chosen
channels, or a refusal that says how to get one)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from tessera.engine import spec
from tessera.engine.errors import SpecError
from tessera.engine.io import Inputs
from tessera.kernels.imaging import omexml
from tessera.kernels.imaging.downsample import downsample2x
from tessera.kernels.imaging.source import SourceError, open_source
from tests import imaging_reference as ref
from tests.jobs import run_ok

W, H, T = 457, 301, 64  # odd sides: partial tiles and 2x1 / 1x2 / 1x1 blocks at the edges
NAMES = ["DAPI", "GFP", "mCherry", "Cy5", "Brightfield"]
COLORS = [0x0000FFFF, 0x00FF00FF, -16776961, 0xFF00FFFF - 2**32, -1]  # OME: signed RGBA ints
HEX = ["0000FF", "00FF00", "FF0000", "FF00FF", "FFFFFF"]
ROOT = Path(__file__).resolve().parent.parent


def cells(channels: int = 5, height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """(c, y, x) uint16: smooth fields, hard-edged blobs and noise over the whole range (0 and
    65535 included, so rounding and overflow show)."""
    rng = np.random.default_rng([seed, channels, height, width])
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((channels, height, width), np.uint16)
    for c in range(channels):
        field = 20000 + 15000 * np.sin(x / (17 + 5 * c)) * np.cos(y / (23 + 3 * c))
        blobs = ((x - (c * 61) % width) ** 2 + (y - (c * 37) % height) ** 2) < (30 + 9 * c) ** 2
        noise = rng.integers(-3000, 3000, (height, width))
        out[c] = np.clip(field + 30000 * blobs + noise, 0, 65535)
    out[:, :3, :3] = 65535
    out[:, -2:, -3:] = 0
    return out


def write_ome(path: Path, data: np.ndarray, axes: str = "CYX", **metadata: Any) -> Path:
    """An OME-TIFF as tifffile writes it, tiled, with channel names and colours."""
    meta: dict[str, Any] = {"axes": axes, **metadata}
    tifffile.imwrite(path, data, ome=True, tile=(64, 64), metadata=meta)
    return path


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-channel uint16 OME-TIFF with names, colours and a pixel size of 0.325 um (given in
    nanometres, to show the conversion)."""
    root = tmp_path_factory.mktemp("five")
    return write_ome(
        root / "cells.ome.tif",
        cells(),
        Channel={"Name": NAMES, "Color": COLORS},
        PhysicalSizeX=325.0,
        PhysicalSizeXUnit="nm",
        PhysicalSizeY=325.0,
        PhysicalSizeYUnit="nm",
    )


def _job(store: Path, source: Path | str, **params: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"name": "cells", "kernel": "imaging.pyramid", "store": str(store)}
    for key in ("shards", "shard_size"):
        if key in params:
            job[key] = params.pop(key)
    return {"job": job, "params": {"source": str(source), "tile_size": T, **params}}


def _levels(store: Path) -> list[np.ndarray]:
    """Every OME-Zarr level as stored: (c, y, x) or (c, z, y, x)."""
    group = zarr.open_group(str(store / "image"), mode="r")
    n = len(group.attrs["ome"]["multiscales"][0]["datasets"])
    return [np.asarray(group[str(lv)][...]) for lv in range(n)]


def mean_chain(image: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` levels of the reference 2x2 mean of an (h, w, c) image, every channel on its own
    (half up; edge blocks average the pixels that exist)."""
    levels = [image]
    while len(levels) < n:
        levels.append(ref.mean2x2(levels[-1]))
    return levels


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- the 5-channel OME-TIFF -------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_runs(tmp_path_factory: pytest.TempPathFactory, five: Path) -> dict[str, Path]:
    """The 5-channel pyramid as 12 shards (128-px super-tiles), 4 shards and 1."""
    root = tmp_path_factory.mktemp("five-runs")
    run_ok(_job(root / "twelve", five, shard_size=128))
    run_ok(_job(root / "four", five, shard_size=256))
    run_ok(_job(root / "one", five, shards=1))
    return {name: root / name for name in ("twelve", "four", "one")}


def test_a_five_channel_uint16_ome_tiff_becomes_an_ome_zarr(
    five: Path, five_runs: dict[str, Path]
) -> None:
    """Every level equals the NumPy 2x2 mean; names, colours and micrometre scales are in the
    metadata; ome-zarr-models validates it."""
    from ome_zarr_models.v05.image import Image as OmeImage

    store = five_runs["twelve"]
    levels = _levels(store)
    assert len(levels) == 4  # 301 x 457 down to 38 x 58, the first level in one 64-px tile
    want = mean_chain(cells().transpose(1, 2, 0), len(levels))
    for lv, (got, expected) in enumerate(zip(levels, want, strict=True)):
        assert got.dtype == np.uint16 and got.shape == (5, *expected.shape[:2]), lv
        assert np.array_equal(got.transpose(1, 2, 0), expected), lv

    group = zarr.open_group(str(store / "image"), mode="r")
    model = OmeImage.from_zarr(group)
    multiscale = model.attributes.ome.multiscales[0]
    assert [(a.name, a.type, a.unit) for a in multiscale.axes] == [
        ("c", "channel", None),
        ("y", "space", "micrometer"),
        ("x", "space", "micrometer"),
    ]
    scales = [d.coordinateTransformations[0].scale for d in multiscale.datasets]
    assert scales == [[1.0, 0.325 * 2**lv, 0.325 * 2**lv] for lv in range(4)]
    omero = group.attrs["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == NAMES
    assert [c["color"] for c in omero["channels"]] == HEX
    assert all(c["window"] == {"min": 0, "max": 65535, "start": 0, "end": 65535}
               for c in omero["channels"])  # fmt: skip
    assert group["0"].chunks == (5, T, T) and group["0"].metadata.dimension_names == ("c", "y", "x")

    result = json.loads((store / "result.json").read_text())
    assert result["params"]["channel_names"] == NAMES
    assert result["params"]["channel_colors"] == HEX
    assert result["params"]["pixel_size"] == {"y": 0.325, "x": 0.325}
    assert result["image"] == {"width": W, "height": H, "channels": 5, "dtype": "uint16"}
    # the result's checksums are those of the reference levels (tiles' (y, x, c) bytes)
    full = mean_chain(cells().transpose(1, 2, 0), len(result["levels"]))
    assert [lv["checksum"] for lv in result["levels"]] == [ref.level_checksum(lv, T) for lv in full]


@pytest.mark.slow  # a LocalCluster: ~12 s
def test_the_pyramid_is_the_same_for_1_4_and_12_shards_local_and_dask(
    tmp_path: Path, five: Path, five_runs: dict[str, Path]
) -> None:
    dask = tmp_path / "dask"
    run_ok(_job(dask, five, shard_size=256), executor="dask")  # 4 shards on a LocalCluster
    results = {name: (path / "result.json").read_bytes() for name, path in five_runs.items()}
    assert len(set(results.values())) == 1
    assert (dask / "result.json").read_bytes() == results["four"]
    four = five_runs["four"]
    assert _files(four / "image") == _files(dask / "image")  # every object, byte for byte
    assert json.loads((four / "report.json").read_text())["n_shards"] == 4
    one = zarr.open_group(str(five_runs["one"] / "image"), mode="r")
    assert (five_runs["one"] / "image/zarr.json").read_bytes() == (
        four / "image/zarr.json"
    ).read_bytes()
    for name in one.array_keys():  # the same chunks, whatever the Zarr shards
        a, b = one[name], zarr.open_array(str(four / "image" / name), mode="r")
        for y in range(0, a.shape[1], T):
            for x in range(0, a.shape[2], T):
                sel = (slice(None), slice(y, y + T), slice(x, x + T))
                assert a[sel].tobytes() == b[sel].tobytes()


def test_its_own_ome_zarr_reads_back_with_names_colours_and_sizes(
    tmp_path: Path, five_runs: dict[str, Path]
) -> None:
    first = json.loads((five_runs["one"] / "result.json").read_text())
    outcome = run_ok(_job(tmp_path / "again", five_runs["one"] / "image", shard_size=256))
    assert outcome.result is not None
    params = outcome.result["params"]
    assert params["format"] == "zarr" and params["channel_names"] == NAMES
    assert params["channel_colors"] == HEX and params["pixel_size"] == {"y": 0.325, "x": 0.325}
    assert outcome.result["checksum"] == first["checksum"]


# -- z-stacks -------------------------------------------------------------------------------


def test_a_z_stack_keeps_z_at_every_level(tmp_path: Path) -> None:
    """z = 5, 2 channels (ZCYX pages), PhysicalSizeZ 1.5 um: levels are (c, z, y, x), z kept,
    y and x halved; each plane equals the 2-D reference."""
    from ome_zarr_models.v05.image import Image as OmeImage

    stack = np.stack([cells(2, 150, 201, seed=z) for z in range(5)])  # (z, c, y, x)
    path = write_ome(
        tmp_path / "stack.ome.tif", stack, "ZCYX", PhysicalSizeX=0.5, PhysicalSizeY=0.5,
        PhysicalSizeZ=1.5,
    )  # fmt: skip
    outcome = run_ok(_job(tmp_path / "s", path, shard_size=128))
    levels = _levels(tmp_path / "s")
    assert [lv.shape for lv in levels] == [(2, 5, 150, 201), (2, 5, 75, 101), (2, 5, 38, 51)]
    for z in range(5):
        want = mean_chain(stack[z].transpose(1, 2, 0), len(levels))
        for got, expected in zip(levels, want):
            assert np.array_equal(got[:, z].transpose(1, 2, 0), expected)
    group = zarr.open_group(str(tmp_path / "s" / "image"), mode="r")
    multiscale = OmeImage.from_zarr(group).attributes.ome.multiscales[0]
    assert [a.name for a in multiscale.axes] == ["c", "z", "y", "x"]
    assert [d.coordinateTransformations[0].scale for d in multiscale.datasets] == [
        [1.0, 1.5, 0.5 * 2**lv, 0.5 * 2**lv] for lv in range(3)
    ]
    assert group["0"].chunks == (2, 1, T, T)
    assert group["0"].metadata.dimension_names == ("c", "z", "y", "x")
    assert outcome.result is not None
    result = outcome.result
    assert result["image"]["depth"] == 5 and result["params"]["depth"] == 5
    assert result["ome_zarr"]["axes"] == ["c", "z", "y", "x"]
    assert [lv["shape"][0] for lv in result["levels"]] == [5] * len(result["levels"])
    again = run_ok(_job(tmp_path / "one", path, shards=1)).result
    assert again is not None and again["checksum"] == result["checksum"]


def test_a_z_stack_zarr_array_with_dimension_names(tmp_path: Path) -> None:
    data = np.stack([cells(3, 90, 130, seed=z) for z in range(4)], axis=1)  # (c, z, y, x)
    array = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, chunks=(1, 1, 50, 50),
                              dtype="uint16", dimension_names=("c", "z", "y", "x"))  # fmt: skip
    array[...] = data
    run_ok(_job(tmp_path / "s", tmp_path / "in.zarr", shard_size=128))
    levels = _levels(tmp_path / "s")
    assert levels[0].shape == (3, 4, 90, 130) and np.array_equal(levels[0], data)
    want = ref.mean2x2(data[:, 2].transpose(1, 2, 0))
    assert np.array_equal(levels[1][:, 2].transpose(1, 2, 0), want)


# -- inputs -------------------------------------------------------------------------------------


def test_four_independent_channels_are_not_rgba(tmp_path: Path) -> None:
    """Four fluorescence channels are averaged each on its own; the 4th is no alpha."""
    data = cells(4, 99, 77)
    data[3, :, ::2] = 0  # where an alpha channel would be 0, colour would be lost
    path = write_ome(tmp_path / "four.ome.tif", data)
    run_ok(_job(tmp_path / "s", path, shard_size=128))
    got = _levels(tmp_path / "s")[1].transpose(1, 2, 0)
    assert np.array_equal(got, ref.mean2x2(data.transpose(1, 2, 0)))
    assert not np.array_equal(got, ref.rgba_weighted(data.transpose(1, 2, 0)))


@pytest.mark.parametrize("channels", [1, 2, 64])
def test_one_to_64_channels(tmp_path: Path, channels: int) -> None:
    data = cells(channels, 70, 90).astype(np.uint8)
    path = write_ome(tmp_path / "c.ome.tif", data)
    outcome = run_ok(_job(tmp_path / "s", path, shard_size=64))
    levels = _levels(tmp_path / "s")
    assert levels[0].shape == (channels, 70, 90) and np.array_equal(levels[0], data)
    assert np.array_equal(levels[1].transpose(1, 2, 0), ref.mean2x2(data.transpose(1, 2, 0)))
    assert outcome.result is not None
    assert outcome.result["params"]["channel_names"] == [f"Channel {i}" for i in range(channels)]


def test_more_than_64_channels_float_and_time_are_refused(tmp_path: Path) -> None:
    cases = {
        "many.ome.tif": (np.zeros((65, 20, 30), np.uint16), "CYX", "has 65 channels; tessera "
                         "reads 1 to 64"),
        "float.ome.tif": (np.zeros((3, 20, 30), np.float32), "CYX", "has 3 channels of float32 "
                          "pixels; tessera reads uint8 or uint16"),
        "time.ome.tif": (np.zeros((2, 3, 4, 20, 30), np.uint16), "TCZYX", "axes TCZYX and shape "
                         "(2, 3, 4, 20, 30): a time series of 2 time points"),
    }  # fmt: skip
    for name, (data, axes, words) in cases.items():
        path = write_ome(tmp_path / name, data, axes)
        with pytest.raises(SpecError) as info:
            spec.from_dict(_job(tmp_path / "s", path))
        assert info.value.key == "params.source"
        assert str(path) in str(info.value) and words in str(info.value), str(info.value)


def test_a_series_of_a_multi_series_file_and_a_pyramidal_file(tmp_path: Path) -> None:
    """``series`` picks the image; a pyramidal OME-TIFF (SubIFDs) is read from its full
    resolution, never from a reduced level."""
    full = cells(3, 256, 320)
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(full, subifds=2, tile=(64, 64), metadata={"axes": "CYX",
                  "Channel": {"Name": ["a", "b", "c"]}})  # fmt: skip
        tif.write(full[:, ::2, ::2], subfiletype=1, tile=(64, 64))
        tif.write(full[:, ::4, ::4], subfiletype=1, tile=(64, 64))
        tif.write(cells(2, 60, 70, seed=9), metadata={"axes": "CYX", "PhysicalSizeX": 2.0})
    first = spec.from_dict(_job(tmp_path / "a", path)).params_dict()
    assert (first["width"], first["height"], first["channel_names"]) == (320, 256, ["a", "b", "c"])
    second = spec.from_dict(_job(tmp_path / "b", path, series=1)).params_dict()
    assert (second["width"], second["height"], second["channels"]) == (70, 60, 2)
    assert second["series"] == 1 and second["pixel_size"] == {"y": 2.0, "x": 2.0}
    run_ok(_job(tmp_path / "s", path, shard_size=128))
    assert np.array_equal(_levels(tmp_path / "s")[0], full)
    with pytest.raises(SpecError, match=r"series = 2, but the TIFF holds 2 image series") as info:
        spec.from_dict(_job(tmp_path / "c", path, series=2))
    assert info.value.key == "params.source"


def test_multi_page_tiffs_with_a_channel_axis(tmp_path: Path) -> None:
    """ImageJ hyperstacks (with their micrometre calibration) and tifffile's shaped files."""
    data = cells(3, 64, 80)
    ij = tmp_path / "hyper.tif"
    tifffile.imwrite(ij, data[None], imagej=True, resolution=(4.0, 4.0),
                     metadata={"axes": "ZCYX", "unit": "micron"})  # fmt: skip
    shaped = tmp_path / "shaped.tif"
    tifffile.imwrite(shaped, data, photometric="minisblack", metadata={"axes": "CYX"})
    for path, size in ((ij, (None, 0.25, 0.25)), (shaped, None)):
        source = open_source(str(path), Inputs())
        try:
            assert (source.info.channels, source.info.depth, source.info.pixel_size) == (3, 1, size)
            assert np.array_equal(source.read(5, 60, 7, 79), data[:, 5:60, 7:79].transpose(1, 2, 0))
        finally:
            source.close()


@pytest.mark.parametrize("compression", [None, "zlib", "zstd"])
def test_channel_pages_of_every_compression_read_in_threads(
    tmp_path: Path, compression: str | None
) -> None:
    data = np.stack([cells(3, 130, 150, seed=z) for z in range(2)])  # (z, c, y, x)
    path = tmp_path / "pages.ome.tif"
    tifffile.imwrite(path, data, ome=True, tile=(32, 48), compression=compression,
                     metadata={"axes": "ZCYX"})  # fmt: skip
    source = open_source(str(path), Inputs(), threads=2)
    try:
        assert (source.info.channels, source.info.depth) == (3, 2)
        for z in range(2):
            seen: list[int] = []
            got = source.read(17, 129, 5, 150, lambda out, n, seen=seen: seen.append(n), z=z)
            assert np.array_equal(got, data[z, :, 17:129, 5:].transpose(1, 2, 0))
            assert seen == sorted(seen) and seen[-1] == 112
    finally:
        source.close()


@pytest.mark.parametrize("planar", ["separate", "contig"])
def test_channels_stored_as_samples_of_one_page(tmp_path: Path, planar: str) -> None:
    data = cells(5, 64, 80)
    path = tmp_path / "samples.ome.tif"
    stored = data if planar == "separate" else data.transpose(1, 2, 0)
    tifffile.imwrite(path, stored, ome=True, planarconfig=planar, photometric="minisblack",
                     compression="zlib", tile=(32, 32))  # fmt: skip
    source = open_source(str(path), Inputs(), threads=2)
    try:
        assert source.info.channels == 5 and source.info.names is not None
        assert np.array_equal(source.read(3, 61, 1, 80), data[:, 3:61, 1:].transpose(1, 2, 0))
    finally:
        source.close()


# -- Deep Zoom ------------------------------------------------------------------------------


def test_dzi_of_many_channels_without_a_composite_is_refused(tmp_path: Path, five: Path) -> None:
    with pytest.raises(SpecError) as info:
        spec.from_dict(_job(tmp_path / "s", five, dzi={"format": "png"}))
    text = str(info.value)
    assert info.value.key == "params.dzi"
    assert str(five) in text and "5-channel uint16 TIFF" in text and "DAPI, GFP" in text
    assert "set dzi.channels to render a composite" in text and "remove the dzi table" in text
    stack = write_ome(tmp_path / "z.ome.tif", np.zeros((3, 40, 50), np.uint16), "ZYX")
    with pytest.raises(SpecError, match=r"3 z-planes.*Deep Zoom holds one 2-D image") as info:
        spec.from_dict(_job(tmp_path / "s", stack, dzi={}))
    assert info.value.key == "params.dzi"


def _composite_reference(pixels: np.ndarray, chosen: list[tuple[int, str, int, int]]) -> np.ndarray:
    """Additive blend, each channel through its window then tinted, in exact integers."""
    total = np.zeros((*pixels.shape[:2], 3), np.int64)
    for channel, color, low, high in chosen:
        v = np.clip(pixels[..., channel].astype(np.int64) - low, 0, high - low)
        level = (2 * 255 * v + (high - low)) // (2 * (high - low))
        for k in range(3):
            total[..., k] += level * int(color[2 * k : 2 * k + 2], 16)
    return np.minimum((total + 127) // 255, 255).astype(np.uint8)


def test_dzi_channels_render_a_composite(tmp_path: Path, five: Path) -> None:
    """``dzi.channels`` by name or index, colour and window (defaults: the channel's colour,
    the whole range): the PNG tiles are the composite of the reference levels."""
    params = {
        "format": "png",
        "overlap": 1,
        "channels": [
            "DAPI",
            {"channel": "GFP", "window": [10_000, 40_000]},
            {"channel": 4, "color": "#808080", "window": [0, 60_000]},
        ],
    }
    outcome = run_ok(_job(tmp_path / "s", five, shard_size=128, dzi=params))
    assert outcome.result is not None
    assert outcome.result["params"]["dzi"]["channels"] == [
        {"channel": 0, "color": "0000FF", "window": [0, 65535]},
        {"channel": 1, "color": "00FF00", "window": [10000, 40000]},
        {"channel": 4, "color": "808080", "window": [0, 60000]},
    ]
    chosen = [(0, "0000FF", 0, 65535), (1, "00FF00", 10_000, 40_000), (4, "808080", 0, 60_000)]
    levels = mean_chain(cells().transpose(1, 2, 0), 10)
    files = tmp_path / "s" / "dzi" / "image_files"
    for level, dzi_level, (r, c) in [
        (0, 9, (1, 2)),
        (0, 9, (4, 7)),
        (1, 8, (0, 1)),
        (6, 3, (0, 0)),
    ]:
        pixels = levels[level]
        y0, x0 = max(r * T - 1, 0), max(c * T - 1, 0)
        y1, x1 = min((r + 1) * T + 1, pixels.shape[0]), min((c + 1) * T + 1, pixels.shape[1])
        tile = np.asarray(Image.open(files / str(dzi_level) / f"{c}_{r}.png"))
        assert tile.shape == (y1 - y0, x1 - x0, 3)
        assert np.array_equal(tile, _composite_reference(pixels[y0:y1, x0:x1], chosen))
    assert (tmp_path / "s" / "image" / "zarr.json").is_file()  # the OME-Zarr keeps 5 channels


def test_a_one_channel_ome_tiff_tiles_as_grey(tmp_path: Path) -> None:
    """One channel needs no composite: its DZI tiles are grey, 16-bit in PNG."""
    data = cells(1, 80, 100)
    path = write_ome(tmp_path / "grey.ome.tif", data)
    run_ok(_job(tmp_path / "s", path, dzi={"format": "png"}))
    tile = np.asarray(Image.open(tmp_path / "s/dzi/image_files/7/1_0.png"))
    assert tile.dtype == np.uint16 and np.array_equal(tile, data[0, :64, 64:100])


@pytest.mark.parametrize(
    ("dzi", "key", "match"),
    [
        ({"channels": ["Venus"]}, "params.dzi.channels[0].channel", "'Venus' is not a channel"),
        ({"channels": [7]}, "params.dzi.channels[0].channel", "7 is out of range"),
        ({"channels": [{"channel": 0, "color": "blue"}]}, "params.dzi.channels[0].color", "hex"),
        ({"channels": [{"channel": 0, "window": [5, 5]}]}, "params.dzi.channels[0].window",
         "low < high"),
        ({"channels": []}, "params.dzi.channels", "a list of 1 to 64 channels"),
        ({"channels": [{"channel": 0, "gain": 2}]}, "params.dzi.channels[0].gain", "unknown key"),
    ],
)  # fmt: skip
def test_bad_composites_name_the_key(
    tmp_path: Path, five: Path, dzi: dict[str, Any], key: str, match: str
) -> None:
    with pytest.raises(SpecError, match=match) as info:
        spec.from_dict(_job(tmp_path / "s", five, dzi=dzi))
    assert info.value.key == key


def test_gamma_correct_is_refused_for_a_microscopes_channels(tmp_path: Path, five: Path) -> None:
    with pytest.raises(SpecError, match="measured intensities, not sRGB codes") as info:
        spec.from_dict(_job(tmp_path / "s", five, gamma_correct=True))
    assert info.value.key == "params.gamma_correct"


# -- pieces -------------------------------------------------------------------------------------


def test_ome_xml_units_and_colours() -> None:
    assert omexml.micrometres(325, "nm") == pytest.approx(0.325)
    assert omexml.micrometres(2, None) == 2.0 and omexml.micrometres(1, "Å") == pytest.approx(1e-4)
    assert omexml.micrometres(1, "pixel") is None
    assert [omexml.hex_color(c) for c in COLORS] == HEX
    xml = tifffile.OmeXml()
    xml.addimage("uint16", (3, 10, 20), (3, 1, 1, 10, 20, 1), axes="CYX", PhysicalSizeX=1.0,
                 PhysicalSizeXUnit="mm", Channel={"Name": ["a", "b", "c"]})  # fmt: skip
    meta = omexml.parse(xml.tostring())
    assert meta is not None and meta.names == ("a", "b", "c")
    assert meta.pixel_size == (None, None, 1000.0)
    assert omexml.parse("<not xml") is None and omexml.parse(xml.tostring(), image=3) is None


def test_downsample_independent_channels() -> None:
    rng = np.random.default_rng(3)
    for channels in (2, 4, 5, 64):
        image = rng.integers(0, 65536, (33, 17, channels), dtype=np.uint16)
        got = downsample2x(image, independent=True)
        assert np.array_equal(got, ref.mean2x2(image)), channels
    with pytest.raises(ValueError, match="1 to 64 independent channels, got 65"):
        downsample2x(np.zeros((4, 4, 65), np.uint8), independent=True)
    with pytest.raises(ValueError, match="1, 3 or 4 channels.*independent=True"):
        downsample2x(np.zeros((4, 4, 5), np.uint8))


def test_a_zarr_source_asks_for_axis_names_when_it_cannot_tell(tmp_path: Path) -> None:
    zarr.create_array(str(tmp_path / "a.zarr"), shape=(5, 40, 50), chunks=(5, 40, 50),
                      dtype="uint16")  # fmt: skip
    with pytest.raises(SourceError, match=r"shape \(5, 40, 50\) without axis names"):
        open_source(str(tmp_path / "a.zarr"), Inputs())


# -- memory -------------------------------------------------------------------------------------

_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB, of the child alone
sys.exit(done.returncode)
"""


def write_large(path: Path, side: int, channels: int = 5) -> None:
    """A tiled (256 px) uint16 OME-TIFF of ``side`` x ``side`` pixels, written tile by tile."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 65536, (channels, 256, 256), dtype=np.uint16)

    def tiles() -> Any:
        for c in range(channels):
            for ty in range(side // 256):
                for tx in range(side // 256):
                    yield np.roll(base[c], ty * 7 + tx, axis=1)

    tifffile.imwrite(path, tiles(), shape=(channels, side, side), dtype=np.uint16, tile=(256, 256),
                     ome=True, metadata={"axes": "CYX"})  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_8192_square_five_channel_pyramid_stays_under_2_gib_per_shard(tmp_path: Path) -> None:
    """The whole `tessera run` process (the local executor: its 16 default shards of 2048^2, two
    side by side, then the final step) peaks under 2 GiB, so each shard does."""
    source = tmp_path / "big.ome.tif"
    write_large(source, 8192)
    job = tmp_path / "job.json"
    job.write_text(json.dumps(_job(tmp_path / "store", source, tile_size=256)))
    command = [sys.executable, "-m", "tessera", "run", str(job), "--executor", "local"]
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True,
                          text=True, timeout=850, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    peak = int(done.stdout.strip().splitlines()[-1]) * 1024
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert report["n_shards"] == 16  # 4096^2 regions would hold 168 MB each (over 128 MiB)
    assert peak < 2 * 2**30, f"peak RSS {peak / 2**20:.0f} MiB"
    shutil.rmtree(tmp_path / "store")
