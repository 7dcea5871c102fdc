"""A TIFF whose image has several planes (a multichannel OME-TIFF, a z-stack written as pages):
every plane is read, as a channel or a z-plane; pages whose meaning the file does not say are
refused with the file, axes and shape named. No plane is ever silently dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tessera.engine.io import Inputs
from tessera.kernels.imaging.source import SourceError, open_source
from tests.jobs import to_toml


@pytest.mark.parametrize(("axes", "shape"), [("CYX", (5, 130, 205)), ("ZYX", (3, 64, 80))])
def test_planes_as_pages_are_all_read(tmp_path: Path, axes: str, shape: tuple[int, ...]) -> None:
    path = tmp_path / "planes.ome.tif"
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    tifffile.imwrite(path, data, metadata={"axes": axes}, ome=True)
    source = open_source(str(path), Inputs())
    try:
        info = source.info
        if axes == "CYX":
            assert (info.channels, info.depth) == (5, 1)
            assert np.array_equal(source.read(0, 130, 0, 205), data.transpose(1, 2, 0))
        else:
            assert (info.channels, info.depth) == (1, 3)
            for z in range(3):
                assert np.array_equal(source.read(0, 64, 0, 80, z=z)[..., 0], data[z])
    finally:
        source.close()


def test_pages_of_unknown_meaning_are_refused(tmp_path: Path) -> None:
    """A multi-page TIFF that does not say what its pages are (tifffile's axis ``I``)."""
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.zeros((5, 64, 80), np.uint16), metadata=None)
    with pytest.raises(SourceError) as exc:
        open_source(str(path), Inputs())
    text = str(exc.value)
    assert str(path) in text and "IYX" in text and "(5, 64, 80)" in text
    assert "5 planes" in text and "drop the other 4" in text


def test_rgb_tiff_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "rgb.tif"
    pixels = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    tifffile.imwrite(path, pixels, photometric="rgb", tile=(16, 16))
    source = open_source(str(path), Inputs())
    assert (source.info.channels, source.info.width, source.info.height) == (3, 80, 64)
    assert source.info.names is None  # colour, not independent channels
    assert np.array_equal(source.read(0, 64, 0, 80), pixels)


def test_validate_accepts_a_five_channel_ome_tiff(tmp_path: Path) -> None:
    """The case that was once reduced to its first channel, then refused: a 5-channel uint16
    CYX OME-TIFF. `tessera validate` now plans it with all 5 channels."""
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, np.zeros((5, 1301, 2050), np.uint16), metadata={"axes": "CYX"}, ome=True)
    job = tmp_path / "job.toml"
    store = tmp_path / "store"
    job.write_text(
        to_toml(
            {
                "job": {"name": "cells", "kernel": "imaging.pyramid", "store": str(store)},
                "params": {"source": str(path)},
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "validate", str(job)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not store.exists()
    source = open_source(str(path), Inputs())
    assert (source.info.channels, source.info.dtype) == (5, "uint16")
    source.close()
