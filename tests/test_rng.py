"""Philox4x32-10 against Random123's known answers, randomgen, and a NumPy re-implementation;
the normal transform against NumPy and against its distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tessera.kernels import rng
from tests import naive

# Random123 kat_vectors, "philox4x32 10" lines: counter (4 words), key (2 words), expected.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answer_vectors(counter, key, expected):
    out = rng.philox4x32(np.array(counter, np.uint32), np.array(key, np.uint32))
    assert out.dtype == np.uint32 and out.shape == (4,)
    assert tuple(int(v) for v in out) == expected
    # the NumPy re-implementation used by the references agrees too
    assert tuple(int(v) for v in naive.philox4x32(np.array([counter]), key)[0]) == expected


def _words(value: int, n: int) -> list[int]:
    return [(value >> (32 * i)) & 0xFFFFFFFF for i in range(n)]


@pytest.mark.parametrize(
    "counter,key",
    [
        (0, 0),
        (2**32 - 3, 12345),  # carries from word 0 into word 1
        (2**64 - 2, 2**64 - 1),  # carries into word 2
        (2**128 - 3, 7),  # wraps around 2**128
        (None, None),  # random, below
    ],
)
def test_matches_randomgen_stream(counter, key):
    """randomgen.Philox(number=4, width=32, counter=c, key=k) packs words little-endian
    (c = c0 + c1 2**32 + ...; k = k0 + k1 2**32) and increments the 128-bit counter *before*
    each block: its raw stream is philox4x32(c + 1), philox4x32(c + 2), ... word by word."""
    randomgen = pytest.importorskip("randomgen")
    if counter is None:
        gen = np.random.default_rng(20240611)
        counter = int.from_bytes(gen.bytes(16), "little")
        key = int.from_bytes(gen.bytes(8), "little")
    n_blocks = 20_000
    bg = randomgen.Philox(number=4, width=32, counter=counter, key=key)
    raw = bg.random_raw(4 * n_blocks).astype(np.uint32).reshape(n_blocks, 4)
    counters = np.array(
        [_words((counter + 1 + i) % 2**128, 4) for i in range(n_blocks)], dtype=np.uint32
    )
    ours = rng.philox4x32_blocks(counters, np.array(_words(key, 2), np.uint32))
    np.testing.assert_array_equal(ours, raw)


def test_bad_shapes_and_values_are_rejected():
    with pytest.raises(ValueError, match="counter must have shape"):
        rng.philox4x32(np.zeros(3, np.uint32), np.zeros(2, np.uint32))
    with pytest.raises(ValueError, match="key must have shape"):
        rng.philox4x32(np.zeros(4, np.uint32), np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="32-bit"):
        rng.philox4x32(np.array([2**32, 0, 0, 0]), np.zeros(2, np.uint32))
    with pytest.raises(ValueError, match="seed"):
        rng.seed_key(-1)
    with pytest.raises(ValueError, match="seed"):
        rng.seed_key(2**64)


def test_seed_key_words():
    assert rng.seed_key(0) == (0, 0)
    assert rng.seed_key(2**64 - 1) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert rng.seed_key(5 * 2**32 + 7) == (7, 5)


def test_uniform_is_strictly_inside_unit_interval():
    assert rng.uniform(np.uint64(0)) == 2.0**-33
    top = rng.uniform(np.uint64(2**32 - 1))
    assert top == 1.0 - 2.0**-33 and top < 1.0


@pytest.mark.parametrize("seed", [0, 42, 2**64 - 1])
def test_normals_match_numpy_reference(seed):
    """Same counters and words as tests/naive.py, which uses np.log/np.cos/np.sin: the only
    differences are the last-bit errors of the polynomial log/sin/cos."""
    samples = np.concatenate([np.arange(300), [2**32 - 1, 2**32, 2**40 + 3, 2**53 - 1]])
    ours = rng.sample_normals(seed, samples, 11)  # 11 steps: a partial last group
    ref = naive.kernel_normals(seed, samples, 11)
    assert ours.shape == (samples.size, 11)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-14)


def test_normal_moments():
    n_samples, steps = 65_536, 8
    z = rng.sample_normals(7, np.arange(n_samples), steps).ravel()
    n = z.size
    mean, var = z.mean(), z.var()
    skew = np.mean(z**3)
    kurt = np.mean(z**4)
    # standard errors under N(0, 1): mean 1/sqrt(n), variance sqrt(2/n), third moment
    # sqrt(15/n), fourth moment sqrt(96/n)
    assert abs(mean) < 4 / math.sqrt(n)
    assert abs(var - 1) < 4 * math.sqrt(2 / n)
    assert abs(skew) < 4 * math.sqrt(15 / n)
    assert abs(kurt - 3) < 4 * math.sqrt(96 / n)
    # tails: P(|z| > 3) = 0.0026998
    p3 = np.mean(np.abs(z) > 3)
    assert abs(p3 - 0.0026998) < 4 * math.sqrt(0.0027 / n)


def test_normals_uncorrelated_across_steps_and_paths():
    z = rng.sample_normals(11, np.arange(32_768), 8)
    n = z.shape[0]
    c = np.corrcoef(z, rowvar=False)  # steps 0..7: includes both members of Box-Muller pairs
    off = c[~np.eye(8, dtype=bool)]
    assert np.max(np.abs(off)) < 4.5 / math.sqrt(n)
    # neighbouring samples (counters differing only in word 1)
    r = np.corrcoef(z[:-1, 0], z[1:, 0])[0, 1]
    assert abs(r) < 4 / math.sqrt(n)


def test_stream_depends_only_on_seed_sample_step():
    a = rng.sample_normals(3, np.array([5, 9, 1_000_000]), 13)
    b = rng.sample_normals(3, np.array([1_000_000, 5]), 6)
    np.testing.assert_array_equal(a[2, :6], b[0])
    np.testing.assert_array_equal(a[0, :6], b[1])
    c = rng.sample_normals(4, np.array([5]), 13)
    assert not np.array_equal(a[0], c[0])
