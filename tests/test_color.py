"""RGB <-> YCbCr (BT.601 full range, as JPEG) against libjpeg's integer arithmetic, libjpeg-turbo
itself (through Pillow's JPEG codec) and Pillow's convert; alpha premultiplication."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tessera.kernels.imaging.color import (
    luma,
    premultiply_alpha,
    rgb_to_ycbcr,
    unpremultiply_alpha,
    ycbcr_to_rgb,
)
from tests.natural import natural


def _fix(c: float) -> int:
    return int(c * 65536 + 0.5)


def naive_rgb_to_ycbcr(rgb: np.ndarray, center: int) -> np.ndarray:
    """libjpeg's jccolor.c, written out in NumPy integers."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    half, off = 1 << 15, center << 16
    y = (_fix(0.299) * r + _fix(0.587) * g + _fix(0.114) * b + half) >> 16
    cb = (-_fix(0.16874) * r - _fix(0.33126) * g + _fix(0.5) * b + off + half - 1) >> 16
    cr = (_fix(0.5) * r - _fix(0.41869) * g - _fix(0.08131) * b + off + half - 1) >> 16
    return np.stack([y, cb, cr], axis=-1)


def naive_ycbcr_to_rgb(ycc: np.ndarray, center: int, top: int) -> np.ndarray:
    """libjpeg's jdcolor.c, written out in NumPy integers."""
    y = ycc[..., 0].astype(np.int64)
    cb = ycc[..., 1].astype(np.int64) - center
    cr = ycc[..., 2].astype(np.int64) - center
    half = 1 << 15
    r = y + ((_fix(1.402) * cr + half) >> 16)
    g = y + ((-_fix(0.34414) * cb + half - _fix(0.71414) * cr) >> 16)
    b = y + ((_fix(1.772) * cb + half) >> 16)
    return np.clip(np.stack([r, g, b], axis=-1), 0, top)


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    """Every third level of R, G and B (86**3 colours, both ends included) as a 2-D image."""
    v = np.append(np.arange(0, 256, 3), 255).astype(np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(len(v) ** 2, len(v), 3)


def test_rgb_to_ycbcr_is_libjpegs_arithmetic(cube: np.ndarray) -> None:
    assert np.array_equal(rgb_to_ycbcr(cube), naive_rgb_to_ycbcr(cube, 128))


def test_ycbcr_to_rgb_is_libjpegs_arithmetic(cube: np.ndarray) -> None:
    # every YCbCr triple of the cube, including ones outside the RGB gamut (clipped)
    assert np.array_equal(ycbcr_to_rgb(cube), naive_ycbcr_to_rgb(cube, 128, 255))


def test_uint16_uses_the_same_formulas() -> None:
    rgb = natural(64, 80, 3, seed=5, bits=16)
    ycc = rgb_to_ycbcr(rgb)
    assert ycc.dtype == np.uint16
    assert np.array_equal(ycc, naive_rgb_to_ycbcr(rgb, 32768))
    assert np.array_equal(ycbcr_to_rgb(ycc), naive_ycbcr_to_rgb(ycc, 32768, 65535))
    assert np.abs(ycbcr_to_rgb(ycc).astype(np.int64) - rgb).max() <= 2


def test_within_one_of_the_exact_bt601_formulas(cube: np.ndarray) -> None:
    f = cube.astype(np.float64)
    y = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    cb = 128 - 0.168736 * f[..., 0] - 0.331264 * f[..., 1] + 0.5 * f[..., 2]
    cr = 128 + 0.5 * f[..., 0] - 0.418688 * f[..., 1] - 0.081312 * f[..., 2]
    exact = np.stack([y, cb, cr], axis=-1)
    assert np.abs(rgb_to_ycbcr(cube) - exact).max() <= 1.0


def test_round_trip_is_within_one(cube: np.ndarray) -> None:
    back = ycbcr_to_rgb(rgb_to_ycbcr(cube))
    assert np.abs(back.astype(np.int64) - cube).max() <= 1


def test_luma_equals_pillow_convert_l(cube: np.ndarray) -> None:
    assert np.array_equal(luma(cube), np.asarray(Image.fromarray(cube).convert("L")))
    assert np.array_equal(luma(cube), rgb_to_ycbcr(cube)[..., 0])


def test_against_pillow_convert_ycbcr(cube: np.ndarray) -> None:
    # Pillow converts with 6-bit tables and truncation: measured max difference 1 both ways.
    ours = rgb_to_ycbcr(cube).astype(np.int64)
    assert np.abs(ours - np.asarray(Image.fromarray(cube).convert("YCbCr"))).max() <= 1
    ycc = cube  # any triple is a valid YCbCr input
    pil_rgb = np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB"))
    assert np.abs(ycbcr_to_rgb(ycc).astype(np.int64) - pil_rgb).max() <= 1


@pytest.mark.parametrize("quality", [50, 85, 95])
def test_jpeg_codec_does_the_same_conversion(quality: int) -> None:
    """libjpeg-turbo's own colour conversion is ours: the JPEG of an RGB image equals the JPEG
    of our YCbCr, byte for byte, and decoding to RGB equals our conversion of its YCbCr."""
    rgb = natural(120, 160, 3, seed=6)
    from_rgb, from_ycc = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb).save(from_rgb, "JPEG", quality=quality)
    Image.fromarray(rgb_to_ycbcr(rgb), "YCbCr").save(from_ycc, "JPEG", quality=quality)
    assert from_rgb.getvalue() == from_ycc.getvalue()
    with Image.open(io.BytesIO(from_rgb.getvalue())) as im:
        im.draft("YCbCr", im.size)
        assert im.mode == "YCbCr"
        ycc = np.asarray(im)
    decoded = np.asarray(Image.open(io.BytesIO(from_rgb.getvalue())).convert("RGB"))
    assert np.array_equal(ycbcr_to_rgb(ycc), decoded)


@pytest.mark.parametrize(
    ("channels", "mode", "premultiplied"), [(4, "RGBA", "RGBa"), (2, "LA", "La")]
)
def test_premultiply_matches_pillow(channels: int, mode: str, premultiplied: str) -> None:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (128, 128, channels), dtype=np.uint8)
    img[0, :, -1] = 0
    img[1, :, -1] = 255
    pre = np.asarray(Image.fromarray(img).convert(premultiplied))
    assert np.array_equal(premultiply_alpha(img), pre)
    back = np.asarray(Image.fromarray(pre, premultiplied).convert(mode))
    assert np.array_equal(unpremultiply_alpha(pre), back)


def test_bad_shapes_and_dtypes_are_named() -> None:
    with pytest.raises(ValueError, match=r"rgb_to_ycbcr: expected shape \(height, width, 3 or 4\)"):
        rgb_to_ycbcr(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        ycbcr_to_rgb(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="premultiply_alpha"):
        premultiply_alpha(np.zeros((4, 4, 3), np.uint8))
