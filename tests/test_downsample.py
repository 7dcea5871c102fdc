"""The 2x2 area downsample: byte-equal to Pillow's reduce(2), and to the NumPy references."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from PIL import Image

from examples.make_images import make_image
from tessera.kernels.imaging.downsample import downsample2x, gamma_tables, output_shape, planar
from tests import imaging_reference as ref

SIZES = [(1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (2, 2), (3, 3), (5, 8), (8, 5), (33, 64), (64, 33)]
MODES = {"L": 1, "RGB": 3, "RGBA": 4}


def natural(width: int, height: int, mode: str, bits: int = 8, seed: int = 3) -> np.ndarray:
    """A realistic test picture: smooth fields, hard edges, glyphs, stripes, noise."""
    return make_image(width, height, mode, bits, seed)


def pillow_reduce(image: np.ndarray) -> np.ndarray:
    channels = image.shape[2]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    pil = Image.fromarray(image[..., 0] if channels == 1 else image, mode)
    out = np.asarray(pil.reduce(2))
    return out.reshape(out.shape[0], out.shape[1], channels)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("size", [(301, 203), (300, 200), (257, 128), (128, 257)])
def test_uint8_equals_pillow_reduce_on_natural_images(mode: str, size: tuple[int, int]) -> None:
    image = natural(*size, mode)
    assert np.array_equal(downsample2x(image), pillow_reduce(image))


@pytest.mark.parametrize("mode", list(MODES))
def test_uint8_equals_pillow_reduce_on_small_and_degenerate_sizes(mode: str) -> None:
    rng = np.random.default_rng(11)
    for height, width in SIZES:
        image = rng.integers(0, 256, (height, width, MODES[mode]), dtype=np.uint8)
        if mode == "RGBA":  # the alpha values where premultiplication rounds differently
            image[..., 3] = rng.choice([0, 1, 2, 127, 128, 254, 255], (height, width))
        assert np.array_equal(downsample2x(image), pillow_reduce(image)), (mode, height, width)


def test_uint8_pillow_reduce_over_a_whole_chain() -> None:
    """Each level of a pyramid from the previous one, as a Pillow script would make it."""
    image = natural(700, 530, "RGBA")
    pil = Image.fromarray(image, "RGBA")
    level = image
    while max(level.shape[:2]) > 1:
        pil = pil.reduce(2)
        level = downsample2x(level)
        assert np.array_equal(level, np.asarray(pil))


def test_uint16_grey_equals_pillow_reduce_in_mode_i() -> None:
    """Pillow has no reduce for I;16; its 32-bit I mode uses the same rounding (half up)."""
    image = natural(301, 203, "L", bits=16)
    pil = Image.fromarray(image[..., 0].astype(np.int32), "I").reduce(2)
    assert np.array_equal(downsample2x(image)[..., 0], np.asarray(pil).astype(np.uint16))


@pytest.mark.parametrize("mode", list(MODES))
def test_every_dtype_and_mode_equals_the_numpy_reference(mode: str) -> None:
    rng = np.random.default_rng(5)
    for bits, dtype, top in ((8, np.uint8, 255), (16, np.uint16, 65535)):
        for height, width in [*SIZES, (37, 53)]:
            image = rng.integers(0, top + 1, (height, width, MODES[mode]), dtype=dtype)
            if mode == "RGBA":
                image[..., 3] = rng.choice([0, 1, top // 2, top - 1, top], (height, width))
            assert np.array_equal(downsample2x(image), ref.downsample(image)), (bits, height, width)
        image = natural(301, 203, mode, bits=bits)
        assert np.array_equal(downsample2x(image), ref.downsample(image))


def test_rgba_transparent_blocks_get_colour_zero_and_colour_never_bleeds() -> None:
    image = np.zeros((2, 4, 4), dtype=np.uint8)
    image[:, :2] = (255, 0, 0, 0)  # red but fully transparent
    image[:, 2:] = (0, 0, 255, 255)
    image[0, 3] = (0, 255, 0, 0)  # green, transparent, next to opaque blue
    out = downsample2x(image)
    assert out[0, 0].tolist() == [0, 0, 0, 0]
    assert out[0, 1].tolist() == [0, 0, 255, 191]  # blue only; alpha (3 * 255 + 2) >> 2


def test_gamma_correct_checkerboard_is_half_the_light() -> None:
    board = np.array([[0, 255], [255, 0]], dtype=np.uint8)[..., None]
    assert downsample2x(board, gamma_correct=True)[0, 0, 0] == 188  # sRGB of 0.5 linear
    assert downsample2x(board)[0, 0, 0] == 128
    board16 = board.astype(np.uint16) * 257
    assert downsample2x(board16, gamma_correct=True)[0, 0, 0] == 48_192  # 0.735357 * 65535


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bits", [8, 16])
def test_gamma_correct_matches_the_float_reference(mode: str, bits: int) -> None:
    """The kernel works in fixed point (2**24 = 1.0); a float64 reference may round the other
    way only where the mean sits within ~1e-7 of a code boundary."""
    image = natural(301, 203, mode, bits=bits)
    got = downsample2x(image, gamma_correct=True).astype(np.int64)
    want = ref.gamma_mean(image).astype(np.int64)
    assert np.abs(got - want).max() <= 1
    assert (got == want).mean() > 0.999


def test_gamma_tables_are_monotonic_and_exact_at_the_ends() -> None:
    for top in (255, 65535):
        linear, thresholds = gamma_tables(top)
        assert linear[0] == 0 and linear[-1] == 1 << 24
        assert np.all(np.diff(linear) >= 0) and np.all(np.diff(thresholds) > 0)
        assert len(thresholds) == top


def test_a_region_aligned_to_the_block_grid_gives_a_slice_of_the_whole() -> None:
    """The property sharding relies on: blocks never straddle an even offset."""
    image = natural(301, 203, "RGB")
    whole = downsample2x(downsample2x(image))
    part = downsample2x(downsample2x(image[100:, 64:]))
    assert np.array_equal(part, whole[25:, 16:])


def test_results_do_not_depend_on_the_thread_count() -> None:
    image = natural(301, 203, "RGBA")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [downsample2x(image), downsample2x(image, gamma_correct=True)]
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = [downsample2x(image), downsample2x(image, gamma_correct=True)]
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(one, many))


def test_output_shape_rounds_up_and_out_is_filled() -> None:
    assert output_shape(7001, 10000) == (3501, 5000)
    image = natural(33, 21, "RGB")
    out = np.empty((11, 17, 3), dtype=np.uint8)
    assert downsample2x(image, out=out) is out
    assert np.array_equal(out, ref.mean2x2(image))


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8 or uint16 pixels, got float32"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "1, 3 or 4 channels"),
        (np.zeros((4, 4), dtype=np.uint8), r"add a channel axis"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty"),
    ],
)
def test_bad_inputs_say_what_to_do(image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        downsample2x(image)


def test_non_contiguous_input_is_accepted() -> None:
    image = natural(64, 48, "RGBA")
    view = image[:, ::-1]
    assert np.array_equal(downsample2x(view), ref.downsample(np.ascontiguousarray(view)))


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels", [1, 3, 5, 64])
def test_planar_is_the_transposed_image_c_contiguous(dtype: str, channels: int) -> None:
    """What an OME-Zarr level (c, y, x) holds, for a whole image and for a view of one (a
    shard's footprint, a stored object's piece)."""
    rng = np.random.default_rng(channels)
    image = rng.integers(0, np.iinfo(dtype).max, (37, 53, channels), dtype=dtype)
    for pixels in (image, image[3:30, 5:41], image[:, ::2]):
        out = planar(pixels)
        assert out.flags.c_contiguous and out.dtype == pixels.dtype
        assert np.array_equal(out, pixels.transpose(2, 0, 1))
