"""Lanczos-3 and area resize against Pillow (the reference), and a NumPy block mean."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from PIL import Image

from tessera.kernels.imaging.resize import filter_taps, output_size, resize
from tests.natural import natural

LANCZOS = Image.Resampling.LANCZOS
BOX = Image.Resampling.BOX
# (width, height) targets for a 457 x 301 source: down, up, one axis only, odd factors, tiny.
SIZES = [(100, 67), (229, 151), (456, 300), (913, 602), (1200, 800), (457, 150), (37, 301), (1, 1)]


def _pillow(img: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    squeeze = img.ndim == 3 and img.shape[2] == 1
    out = np.asarray(
        Image.fromarray(img[:, :, 0] if squeeze else img).resize((width, height), resample)
    )
    return out[:, :, None] if squeeze else out


def _assert_close(ours: np.ndarray, ref: np.ndarray, tol: int) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= tol, f"max difference {diff.max()} > {tol}"
    assert np.mean(diff > 0) < 1e-3, f"{np.mean(diff > 0):.2%} of values differ"


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return natural(301, 457, 3, seed=1)


@pytest.mark.parametrize("size", SIZES)
def test_lanczos_rgb_within_one_of_pillow(rgb: np.ndarray, size: tuple[int, int]) -> None:
    width, height = size
    _assert_close(resize(rgb, height, width, "lanczos"), _pillow(rgb, width, height, LANCZOS), 1)


@pytest.mark.parametrize("size", SIZES)
def test_area_rgb_equals_pillow_box(rgb: np.ndarray, size: tuple[int, int]) -> None:
    width, height = size
    ours = resize(rgb, height, width, "area")
    assert np.array_equal(ours, _pillow(rgb, width, height, BOX))


@pytest.mark.parametrize("method", ["lanczos", "area"])
def test_grey_2d_and_one_channel(method: str) -> None:
    grey = natural(200, 150, 1, seed=2)
    resample = LANCZOS if method == "lanczos" else BOX
    for width, height in [(61, 80), (333, 421)]:
        ref = _pillow(grey, width, height, resample)
        _assert_close(resize(grey, height, width, method), ref, 1)
        flat = resize(grey[:, :, 0], height, width, method)
        assert flat.ndim == 2
        _assert_close(flat[:, :, None], ref, 1)


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_premultiplied_like_pillow(channels: int) -> None:
    img = natural(160, 240, channels, seed=3)
    img[:40, :60, -1] = 0  # fully transparent corner with colour underneath
    for width, height in [(97, 61), (500, 333)]:
        ours = resize(img, height, width, "lanczos", alpha=True)
        _assert_close(ours, _pillow(img, width, height, LANCZOS), 1)


@pytest.mark.parametrize("method", ["lanczos", "area"])
def test_uint16_within_one_of_pillow(method: str) -> None:
    img = natural(300, 400, 1, seed=4, bits=16)
    resample = LANCZOS if method == "lanczos" else BOX
    for width, height in [(123, 99), (800, 601), (400, 77)]:
        ref = np.asarray(Image.fromarray(img[:, :, 0]).resize((width, height), resample))
        assert ref.dtype == np.uint16
        _assert_close(resize(img, height, width, method)[:, :, 0], ref, 1)


def test_uint16_clips_overshoot_instead_of_wrapping() -> None:
    img = np.zeros((8, 64, 1), dtype=np.uint16)
    img[:, 32:] = 65535  # a full-scale step: Lanczos overshoots above 65535 beside it
    out = resize(img, 8, 150, "lanczos")
    assert out.max() == 65535 and out[:, -1].min() == 65535 and out[:, 0].max() == 0


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_area_integer_factor_is_the_block_mean(rgb: np.ndarray, factor: int) -> None:
    # Exact area averaging, up to the rounding of the separable passes (the horizontal pass is
    # rounded to uint8 before the vertical one, as in Pillow): within 1 of the true mean.
    h, w = rgb.shape[0] // factor, rgb.shape[1] // factor
    img = rgb[: h * factor, : w * factor]
    mean = img.reshape(h, factor, w, factor, 3).astype(np.float64).mean(axis=(1, 3))
    diff = np.abs(resize(img, h, w, "area").astype(np.float64) - mean)
    assert diff.max() <= 1.0


def test_same_size_is_a_copy(rgb: np.ndarray) -> None:
    out = resize(rgb, rgb.shape[0], rgb.shape[1])
    assert np.array_equal(out, rgb) and not np.shares_memory(out, rgb)


def test_threads_do_not_change_the_result(rgb: np.ndarray) -> None:
    before = numba.get_num_threads()
    expected = resize(rgb, 123, 345)
    try:
        numba.set_num_threads(1)
        assert np.array_equal(resize(rgb, 123, 345), expected)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize(("n_in", "n_out"), [(457, 100), (100, 457), (7, 3), (3, 7), (5, 5)])
@pytest.mark.parametrize("method", ["lanczos", "area"])
def test_taps_are_normalised_and_inside(n_in: int, n_out: int, method: str) -> None:
    bounds, weights = filter_taps(n_in, n_out, method)
    assert bounds.shape == (n_out, 2)
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert (bounds[:, 0] >= 0).all() and (bounds.sum(axis=1) <= n_in).all()
    # downscaling stretches the filter so that every input sample contributes
    covered = np.zeros(n_in, dtype=bool)
    for (start, count), row in zip(bounds, weights):
        covered[start : start + count] |= row[:count] != 0
    assert covered.all()


def test_output_size() -> None:
    assert output_size(4000, 3000, 1024, None) == (1024, 768)
    assert output_size(3000, 4000, 1024, None) == (768, 1024)
    assert output_size(800, 600, 1024, None) == (800, 600)  # never enlarged by max_edge
    assert output_size(801, 601, None, 0.5) == (401, 301)  # rounded half up
    assert output_size(10, 1, None, 0.01) == (1, 1)  # at least one pixel
    assert output_size(10, 20, None, 2.0) == (20, 40)
    assert output_size(10, 20, None, None) == (10, 20)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.zeros((4, 4, 3), np.float32)}, "uint8 or uint16"),
        ({"image": np.zeros((4, 4, 5), np.uint8)}, "1-4 channels"),
        ({"image": np.zeros((0, 4, 3), np.uint8)}, "empty image"),
        ({"height": 0}, "height 0 is out of range"),
        ({"width": 2.5}, "width must be an integer"),
        ({"method": "cubic"}, "'cubic' is not one of lanczos, area"),
        ({"alpha": True}, "alpha=True needs LA or RGBA"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    args = {"image": np.zeros((4, 4, 3), np.uint8), "height": 2, "width": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        resize(**args)
