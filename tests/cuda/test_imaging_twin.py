"""The CUDA imaging kernels against the CPU kernels: 2x2 downsampling (every path: mean, RGBA
premultiplied and alpha-weighted, linear light) and RGB <-> YCbCr, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

from tessera.kernels import cuda_device
from tessera.kernels.imaging import color, downsample
from tessera.kernels.imaging import gpu as imaging_gpu
from tests.natural import natural

SIMULATED = cuda_device.simulated()
# odd and even sides, single rows and columns, a single pixel
SHAPES = [(5, 7), (6, 4), (1, 1), (1, 3), (3, 1)] if SIMULATED else [(517, 1031), (1024, 768)]


def _image(shape: tuple[int, int], channels: int, bits: int, seed: int) -> np.ndarray:
    img = natural(*shape, channels, seed=seed, bits=bits)
    top = np.iinfo(img.dtype).max
    noise = np.random.default_rng(seed).integers(0, top + 1, size=img.shape)
    img[::2] = noise[::2].astype(img.dtype)  # full-range values, not only natural ones
    if channels == 4:  # transparent, opaque and partial alpha
        img[0, :, 3] = 0
        img[-1, ::2, 3] = top
    return img


@pytest.mark.parametrize("gamma", [False, True], ids=["mean", "linear-light"])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("bits", [8, 16])
def test_downsample_is_byte_equal_to_the_cpu(bits, channels, gamma):
    for i, shape in enumerate(SHAPES):
        img = _image(shape, channels, bits, seed=i)
        got = imaging_gpu.downsample2x(img, gamma_correct=gamma)
        want = downsample.downsample2x(img, gamma_correct=gamma)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=f"shape {shape}")


def test_device_arrays_stay_on_the_device_and_out_is_filled():
    img = _image((9, 11), 3, 8, seed=4)
    want = downsample.downsample2x(img)
    on_device = imaging_gpu.downsample2x(cuda.to_device(img))
    assert not isinstance(on_device, np.ndarray)
    np.testing.assert_array_equal(on_device.copy_to_host(), want)
    host_out = np.zeros_like(want)
    assert imaging_gpu.downsample2x(img, out=host_out) is host_out
    np.testing.assert_array_equal(host_out, want)
    device_out = cuda.device_array(want.shape, dtype=want.dtype)
    imaging_gpu.downsample2x(cuda.to_device(img), out=device_out)
    np.testing.assert_array_equal(device_out.copy_to_host(), want)


def test_bad_inputs_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        imaging_gpu.downsample2x(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="1 or 3 or 4"):
        imaging_gpu.downsample2x(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        imaging_gpu.downsample2x(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        imaging_gpu.downsample2x(np.zeros((4, 4, 3), np.uint8), out=np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(ValueError, match="shape"):
        imaging_gpu.ycbcr_to_rgb(np.zeros((4, 4, 4), np.uint8))


def test_ycbcr_both_ways_is_byte_equal_on_a_colour_cube():
    step = 15 if SIMULATED else 1
    v = np.append(np.arange(0, 256, step), 255).astype(np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    cube = np.stack([r, g, b], axis=-1).reshape(len(v) ** 2, len(v), 3)
    ycc = imaging_gpu.rgb_to_ycbcr(cube)
    np.testing.assert_array_equal(ycc, color.rgb_to_ycbcr(cube))
    # every triple of the cube read as YCbCr, including ones outside the RGB gamut (clipped)
    np.testing.assert_array_equal(imaging_gpu.ycbcr_to_rgb(cube), color.ycbcr_to_rgb(cube))


@pytest.mark.parametrize("channels", [3, 4])
def test_ycbcr_uint16_and_rgba_input(channels):
    img = _image(SHAPES[0], channels, 16, seed=9)
    ycc = imaging_gpu.rgb_to_ycbcr(img)
    assert ycc.dtype == np.uint16 and ycc.shape == img.shape[:2] + (3,)
    np.testing.assert_array_equal(ycc, color.rgb_to_ycbcr(img))
    np.testing.assert_array_equal(imaging_gpu.ycbcr_to_rgb(ycc), color.ycbcr_to_rgb(ycc))
